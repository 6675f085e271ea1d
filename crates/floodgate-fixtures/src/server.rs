//! Small query helpers over one mysql_async connection, text protocol only: every value
//! arrives as the bytes the server sent, which is what Shell writes.

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Value};

use crate::ddl::escape_sql_string;
use crate::Error;

pub type Cell = Option<Vec<u8>>;

pub fn query_error(query: &str, source: mysql_async::Error) -> Error {
    Error::Query { query: query.to_string(), source }
}

/// Runs a statement, discarding any result.
pub async fn exec(conn: &mut Conn, query: &str) -> Result<(), Error> {
    conn.query_drop(query).await.map_err(|e| query_error(query, e))
}

fn cell(value: Value) -> Result<Cell, Error> {
    match value {
        Value::NULL => Ok(None),
        Value::Bytes(b) => Ok(Some(b)),
        other => Err(Error::Server(format!("binary value over the text protocol: {other:?}"))),
    }
}

/// Every row of a query, as raw cells.
pub async fn rows(conn: &mut Conn, query: &str) -> Result<Vec<Vec<Cell>>, Error> {
    let mut result = conn.query_iter(query).await.map_err(|e| query_error(query, e))?;
    let mut out = Vec::new();
    while let Some(row) = result.next().await.map_err(|e| query_error(query, e))? {
        out.push(row.unwrap().into_iter().map(cell).collect::<Result<Vec<_>, _>>()?);
    }
    Ok(out)
}

/// Streams the rows of a query into `each`, with the result's columns.
pub async fn for_each_row<F>(conn: &mut Conn, query: &str, mut each: F) -> Result<(), Error>
where
    F: FnMut(&[Column], Vec<Cell>) -> Result<(), Error>,
{
    let mut result = conn.query_iter(query).await.map_err(|e| query_error(query, e))?;
    let columns: Vec<Column> = result.columns_ref().to_vec();
    while let Some(row) = result.next().await.map_err(|e| query_error(query, e))? {
        let cells = row.unwrap().into_iter().map(cell).collect::<Result<Vec<_>, _>>()?;
        each(&columns, cells)?;
    }
    Ok(())
}

/// A cell as text; NULL is empty.
pub fn text(cell: &Cell) -> String {
    cell.as_deref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()
}

pub fn number(cell: &Cell) -> u64 {
    text(cell).trim().parse().unwrap_or(0)
}

/// A string literal for SQL text.
pub fn lit(s: &str) -> String {
    format!("'{}'", escape_sql_string(s))
}

/// One query's first row.
pub async fn first_row(conn: &mut Conn, query: &str) -> Result<Vec<Cell>, Error> {
    rows(conn, query).await?.into_iter().next().ok_or_else(|| Error::Server(format!("no row from {query}")))
}

/// Shell's `is_string_type` for a result column (`Result::map_data_type`).
pub fn is_string_type(column: &Column) -> bool {
    use ColumnType::*;
    matches!(
        column.column_type(),
        MYSQL_TYPE_DATE
            | MYSQL_TYPE_NEWDATE
            | MYSQL_TYPE_TIME
            | MYSQL_TYPE_TIME2
            | MYSQL_TYPE_DATETIME
            | MYSQL_TYPE_DATETIME2
            | MYSQL_TYPE_TIMESTAMP
            | MYSQL_TYPE_TIMESTAMP2
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_GEOMETRY
            | MYSQL_TYPE_JSON
            | MYSQL_TYPE_ENUM
            | MYSQL_TYPE_SET
    ) || column.flags().intersects(ColumnFlags::ENUM_FLAG | ColumnFlags::SET_FLAG)
}

pub fn is_bit(column: &Column) -> bool {
    column.column_type() == ColumnType::MYSQL_TYPE_BIT
}
