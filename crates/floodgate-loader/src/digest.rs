//! Content digests computed from a server's rows, to compare with a native backup's.

use floodgate_format::ident::{qualified, quote};
use floodgate_format::native::ContentDigest;
use floodgate_pipeline::insert::escape_field;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use crate::{LoadError, Result};

/// A row in LOAD DATA's default format, without its line end: the bytes the content digest
/// is computed over, by `floodgate dump` and on a restored target alike. The connection must
/// use `SET NAMES binary`, so strings arrive as the column's bytes.
pub fn encode_row(row: &Row, columns: usize, out: &mut Vec<u8>) {
    for i in 0..columns {
        if i > 0 {
            out.push(b'\t');
        }
        match row.as_ref(i) {
            None | Some(Value::NULL) => encode_value(None, out),
            Some(Value::Bytes(b)) => encode_value(Some(b), out),
            Some(other) => encode_value(Some(other.as_sql(true).trim_matches('\'').as_bytes()), out),
        }
    }
}

/// One value as LOAD DATA's default format writes it: `\N` for NULL, else escaped bytes.
/// Rows are these joined by tabs; the dump and the target's digest both encode this way.
pub fn encode_value(value: Option<&[u8]>, out: &mut Vec<u8>) {
    match value {
        None => out.extend_from_slice(b"\\N"),
        Some(b) => escape_field(b, out),
    }
}

/// The content digest of `db`.`table` over `columns`, read from the server.
pub async fn table_digest(conn: &mut Conn, db: &str, table: &str, columns: &[String]) -> Result<(ContentDigest, u64)> {
    let name = qualified(db, table);
    conn.query_drop("SET NAMES binary").await.map_err(LoadError::sql("SET NAMES binary"))?;
    let list = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let mut result = conn
        .query_iter(format!("SELECT {list} FROM {name}"))
        .await
        .map_err(LoadError::sql(format!("reading {name}")))?;
    let mut digest = ContentDigest::default();
    let mut rows = 0;
    let mut buf = Vec::new();
    // The error's context is built only on error: this loop runs once per row.
    while let Some(row) = result.next().await.map_err(|e| LoadError::sql(format!("reading {name}"))(e))? {
        buf.clear();
        encode_row(&row, columns.len(), &mut buf);
        digest.add_row(&buf);
        rows += 1;
    }
    drop(result);
    conn.query_drop("SET NAMES utf8mb4").await.map_err(LoadError::sql("SET NAMES utf8mb4"))?;
    Ok((digest, rows))
}
