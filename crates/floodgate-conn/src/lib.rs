//! Talking to MySQL and MariaDB servers, for every floodgate command.
//!
//! * [`ConnectOptions`]: where and how to log in, spelled like the `mysql` client's flags.
//! * [`connect`]: one mysql_async connection with its session set up; [`RowConnector`]: row
//!   readers that go through floodgate-wire's lean reader where the login allows, behind one
//!   row API ([`RowConn`], [`RowStream`], [`RowRef::values`]).
//! * [`retry`]: the one retry policy (which server errors are transient, how often and how
//!   long to try again, waiting for a target that restarts).
//! * [`server`]: version and capability detection, and the one definition of "user data on
//!   this server"; [`schema`]: floodgate's own schema there, which it never confuses with a
//!   user's database of the same name.
//!
//! Errors are [`ConnError`]s, classified like every floodgate error
//! ([`floodgate_format::Classify`]).

mod error;
mod options;
pub mod retry;
mod rows;
pub mod schema;
pub mod server;

pub use error::{ConnError, Result};
pub use options::ConnectOptions;
pub use retry::{RetryPolicy, Transient};
pub use rows::{RowConn, RowConnector, RowRef, RowStream, Values};
pub use schema::{CheckpointSchema, Owner};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// Opens one connection and runs `init` statements on it. A statement refused for lack of a
/// privilege is a [`ConnError::Refused`] that names it.
pub async fn connect(options: &ConnectOptions, init: &[String]) -> Result<Conn> {
    let mut conn =
        Conn::new(options.opts()).await.map_err(|source| ConnError::Connect { target: options.describe(), source })?;
    for statement in init {
        conn.query_drop(statement.as_str()).await.map_err(|e| ConnError::session(statement, e))?;
    }
    Ok(conn)
}
