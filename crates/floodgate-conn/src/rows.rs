//! Reading whole tables from a server: `floodgate dump`'s workers and the content-digest
//! check after a restore.
//!
//! Rows come through floodgate-wire, which hands each value over as a slice of its read
//! buffer; mysql_async allocates a `Row` and a `Vec<u8>` per value, which was 40% of the
//! dump's client CPU. When the server wants a login floodgate-wire does not speak (ed25519,
//! PAM, ...), mysql_async reads them instead: same values, more CPU.

use floodgate_wire::WireError;
use mysql_async::prelude::Queryable;
use mysql_async::{QueryResult, TextProtocol, Value};

use crate::{connect, ConnError, ConnectOptions, Result};

/// A connection for reading rows.
pub enum RowConn {
    Wire(floodgate_wire::Conn),
    Driver(mysql_async::Conn),
}

/// Opens `RowConn`s: floodgate-wire until a login shows it cannot, mysql_async from then on.
pub struct RowConnector<'a> {
    server: &'a ConnectOptions,
    use_wire: bool,
}

fn wire(context: impl Into<String>) -> impl FnOnce(WireError) -> ConnError {
    let context = context.into();
    move |source| ConnError::Wire { context, source }
}

impl<'a> RowConnector<'a> {
    pub fn new(server: &'a ConnectOptions) -> Self {
        RowConnector { server, use_wire: true }
    }

    /// A new connection with `session` run on it, through TLS as `--ssl-mode` says (either
    /// client: rows never travel in clear when TLS was asked for).
    pub async fn connect(&mut self, session: &[String]) -> Result<RowConn> {
        if self.use_wire {
            let s = self.server;
            let tls = s.tls_plan()?.for_wire(&s.host_name())?;
            match floodgate_wire::Conn::connect(&s.endpoint(), &tls, &s.user_name(), s.password.as_deref()).await {
                Ok(mut conn) => {
                    for statement in session {
                        conn.execute(statement).await.map_err(wire(format!("session setup `{statement}`")))?;
                    }
                    return Ok(RowConn::Wire(conn));
                }
                Err(WireError::Unsupported(why)) => {
                    tracing::info!("rows are read through mysql_async: floodgate-wire does not speak {why}");
                    self.use_wire = false;
                }
                Err(e) => {
                    return Err(crate::tls::failure(s, &e)
                        .unwrap_or_else(|| wire(format!("connecting to {}", s.describe()))(e)))
                }
            }
        }
        Ok(RowConn::Driver(connect(self.server, session).await?))
    }
}

impl RowConn {
    /// The first row of `query` as text (NULL as None): for small lookups.
    pub async fn query_first(&mut self, query: &str, context: &str) -> Result<Option<Vec<Option<String>>>> {
        let mut rows = self.rows(query, context).await?;
        let mut first = None;
        while let Some(row) = rows.next().await? {
            if first.is_none() {
                let values: Result<Vec<_>> =
                    row.values().map(|v| v.map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))).collect();
                first = Some(values?);
            }
        }
        Ok(first)
    }

    /// Streams the rows of `query`; errors say `context`.
    pub async fn rows(&mut self, query: &str, context: &str) -> Result<RowStream<'_>> {
        let context = context.to_string();
        match self {
            RowConn::Wire(conn) => match conn.query(query).await {
                Ok(rows) => Ok(RowStream::Wire { rows, context }),
                Err(e) => Err(wire(context)(e)),
            },
            RowConn::Driver(conn) => match conn.query_iter(query.to_string()).await {
                Ok(result) => {
                    let columns = result.columns_ref().len();
                    Ok(RowStream::Driver { result, columns, context })
                }
                Err(e) => Err(ConnError::sql(context)(e)),
            },
        }
    }

    pub async fn close(self) {
        match self {
            RowConn::Wire(conn) => conn.close().await,
            RowConn::Driver(conn) => {
                let _ = conn.disconnect().await;
            }
        }
    }
}

/// A result set being read.
pub enum RowStream<'c> {
    Wire { rows: floodgate_wire::Rows<'c>, context: String },
    Driver { result: QueryResult<'c, 'static, TextProtocol>, columns: usize, context: String },
}

impl RowStream<'_> {
    pub fn columns(&self) -> usize {
        match self {
            RowStream::Wire { rows, .. } => rows.columns(),
            RowStream::Driver { columns, .. } => *columns,
        }
    }

    /// Refuses a result set that does not have the `expected` columns, naming `table`.
    pub fn expect_columns(&self, expected: usize, table: &str) -> Result<()> {
        if self.columns() == expected {
            return Ok(());
        }
        Err(ConnError::Refused(format!("{table}: {} columns read, {expected} expected", self.columns())))
    }

    /// The next row, or None after the last.
    pub async fn next(&mut self) -> Result<Option<RowRef<'_>>> {
        match self {
            RowStream::Wire { rows, context } => match rows.next().await {
                Ok(row) => Ok(row.map(|row| RowRef::Wire(row, context))),
                // The context is copied only on error: this runs once per row.
                Err(e) => Err(wire(context.clone())(e)),
            },
            RowStream::Driver { result, context, columns } => match result.next().await {
                Ok(row) => Ok(row.map(|row| RowRef::Driver(row, *columns, context))),
                Err(e) => Err(ConnError::sql(context.clone())(e)),
            },
        }
    }
}

/// One row; a wire row is valid until the next is read.
pub enum RowRef<'r> {
    Wire(floodgate_wire::Row<'r>, &'r str),
    Driver(mysql_async::Row, usize, &'r str),
}

impl RowRef<'_> {
    /// The row's values in column order, NULL as None; a malformed row ends with an error.
    pub fn values(&self) -> Values<'_> {
        match self {
            RowRef::Wire(row, context) => Values::Wire(row.fields(), context),
            RowRef::Driver(row, columns, context) => Values::Driver { row, next: 0, columns: *columns, context },
        }
    }
}

/// Iterator over a row's values.
pub enum Values<'r> {
    Wire(floodgate_wire::Fields<'r>, &'r str),
    Driver { row: &'r mysql_async::Row, next: usize, columns: usize, context: &'r str },
}

impl<'r> Iterator for Values<'r> {
    type Item = Result<Option<&'r [u8]>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Values::Wire(fields, context) => fields.next().map(|f| f.map_err(|e| wire(*context)(e))),
            Values::Driver { row, next, columns, context } => {
                if *next >= *columns {
                    return None;
                }
                let i = *next;
                *next += 1;
                Some(match row.as_ref(i) {
                    None | Some(Value::NULL) => Ok(None),
                    Some(Value::Bytes(b)) => Ok(Some(b)),
                    // The text protocol sends every value as bytes.
                    Some(other) => Err(ConnError::Refused(format!(
                        "{context}: a value the text protocol does not send: {other:?}"
                    ))),
                })
            }
        }
    }
}
