//! A worker connection inside the dump's snapshot.
//!
//! Rows are read with floodgate-wire, which hands each value over as a slice of its read
//! buffer; mysql_async allocates a `Row` and a `Vec<u8>` per value, which was a quarter of
//! the dump's CPU. When the server wants a login floodgate-wire does not speak (ed25519,
//! PAM, ...), the workers use mysql_async instead: same rows, same files, more CPU.

use floodgate_loader::{connect, ConnectOptions};
use floodgate_wire::WireError;
use mysql_async::prelude::Queryable;

use crate::{sql, DumpError, Result};

pub(crate) enum Worker {
    Wire(floodgate_wire::Conn),
    Driver(mysql_async::Conn),
}

/// Which reader new workers use: floodgate-wire until a login shows it cannot.
pub(crate) struct Connector<'a> {
    source: &'a ConnectOptions,
    use_wire: bool,
}

pub(crate) fn wire(context: impl Into<String>) -> impl FnOnce(WireError) -> DumpError {
    let context = context.into();
    move |source| DumpError::Wire { context, source }
}

impl<'a> Connector<'a> {
    pub(crate) fn new(source: &'a ConnectOptions) -> Self {
        Connector { source, use_wire: true }
    }

    /// A new connection with `session` run on it.
    pub(crate) async fn connect(&mut self, session: &[String]) -> Result<Worker> {
        if self.use_wire {
            let s = self.source;
            match floodgate_wire::Conn::connect(&s.endpoint(), &s.user_name(), s.password.as_deref()).await {
                Ok(mut conn) => {
                    for statement in session {
                        conn.execute(statement).await.map_err(wire(format!("session setup `{statement}`")))?;
                    }
                    return Ok(Worker::Wire(conn));
                }
                Err(WireError::Unsupported(why)) => {
                    tracing::info!("workers read rows through mysql_async: floodgate-wire does not speak {why}");
                    self.use_wire = false;
                }
                Err(e) => return Err(wire(format!("connecting to {}", s.describe()))(e)),
            }
        }
        Ok(Worker::Driver(connect(self.source, session).await?))
    }
}

impl Worker {
    /// The first row of `query` as text: for small lookups such as key bounds.
    pub(crate) async fn query_first(&mut self, query: &str, context: &str) -> Result<Option<Vec<Option<String>>>> {
        match self {
            Worker::Wire(conn) => conn.query_first(query).await.map_err(wire(context)),
            Worker::Driver(conn) => {
                let row: Option<mysql_async::Row> = conn.query_first(query).await.map_err(sql(context))?;
                Ok(row.map(|row| {
                    (0..row.len())
                        .map(|i| match row.as_ref(i) {
                            None | Some(mysql_async::Value::NULL) => None,
                            Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                            Some(other) => Some(other.as_sql(true)),
                        })
                        .collect()
                }))
            }
        }
    }

    pub(crate) async fn close(self) {
        match self {
            Worker::Wire(conn) => conn.close().await,
            Worker::Driver(conn) => {
                let _ = conn.disconnect().await;
            }
        }
    }
}
