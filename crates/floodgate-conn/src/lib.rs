//! Talking to MySQL and MariaDB servers, for every floodgate command.
//!
//! * [`ConnectOptions`]: where and how to log in, spelled like the `mysql` client's flags;
//!   [`TlsOptions`]: `--ssl-mode` and its files, the same for both clients ([`tls`]).
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
pub mod tls;

pub use error::{ConnError, Result};
pub use options::ConnectOptions;
pub use retry::{RetryPolicy, Transient};
pub use rows::{RowConn, RowConnector, RowRef, RowStream, Values};
pub use schema::{CheckpointSchema, Owner};
pub use tls::{SslMode, TlsOptions};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// Opens one connection and runs `init` statements on it. A statement refused for lack of a
/// privilege is a [`ConnError::Refused`] that names it.
pub async fn connect(options: &ConnectOptions, init: &[String]) -> Result<Conn> {
    let mut conn = log_in(options).await?;
    for statement in init {
        conn.query_drop(statement.as_str()).await.map_err(|e| ConnError::session(statement, e))?;
    }
    Ok(conn)
}

/// Logs in as `options` say. PREFERRED asks for TLS and, only when the server's greeting
/// offers none, connects again in clear: mysql_async cannot take the plain path on the same
/// connection, and nothing but the greeting has been exchanged by then.
async fn log_in(options: &ConnectOptions) -> Result<Conn> {
    let plan = options.tls_plan()?;
    match Conn::new(options.opts(plan.config())?).await {
        Ok(conn) => Ok(conn),
        Err(e) if matches!(plan, tls::Plan::Preferred(_)) && tls::offers_no_tls(&e) => {
            tracing::debug!("{} offers no TLS: connecting in clear (--ssl-mode PREFERRED)", options.describe());
            Conn::new(options.opts(None)?).await.map_err(|e| connect_error(options, e))
        }
        Err(e) => Err(connect_error(options, e)),
    }
}

fn connect_error(options: &ConnectOptions, source: mysql_async::Error) -> ConnError {
    if let mysql_async::Error::Driver(mysql_async::DriverError::ServerPublicKeyRequired) = source {
        return ConnError::Refused(format!(
            "cannot connect to {}: the server asks for the password in full (caching_sha2_password) over a \
             connection that is neither TLS nor a Unix socket, and floodgate does not send it in clear nor \
             fetch the server's RSA key unasked (a man in the middle could hand over his own). Connect with \
             TLS (--ssl-mode REQUIRED or stricter), give the key (--server-public-key-path FILE), or allow \
             fetching it (--get-server-public-key, on a network you trust).",
            options.describe()
        ));
    }
    tls::failure(options, &source).unwrap_or_else(|| ConnError::Connect { target: options.describe(), source })
}
