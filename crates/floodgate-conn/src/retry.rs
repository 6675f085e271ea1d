//! The one retry policy: which failures are transient, how many times and how long apart
//! the work is tried again, and how a lost connection is reopened (waiting for a target
//! that restarts). The loader's chunks, DDL and index builds, and binlog replay's batches
//! all go through it.

use std::time::{Duration, Instant};

use floodgate_wire::WireError;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::{connect, ConnError, ConnectOptions, Result};

/// What a transient failure needs before the work is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transient {
    /// The same connection can retry (after ROLLBACK): the server rolled the statement or
    /// transaction back.
    Retry,
    /// The connection is gone: open a new one (waiting for the server to come back).
    Reconnect,
}

/// An error that may be cured by trying again.
pub trait Retryable: std::fmt::Display {
    /// How a retry can cure it, if it can.
    fn transient(&self) -> Option<Transient>;
}

impl Retryable for ConnError {
    fn transient(&self) -> Option<Transient> {
        ConnError::transient(self)
    }
}

/// Deadlock, lock wait timeout, query interrupted (KILL QUERY): the connection is still good.
const RETRY_CODES: [u16; 3] = [1205, 1213, 1317];
/// Too many connections, server shutting down, connection killed, lost or reset.
const RECONNECT_CODES: [u16; 5] = [1040, 1053, 1927, 2006, 2013];

fn by_code(code: u16) -> Option<Transient> {
    if RETRY_CODES.contains(&code) {
        Some(Transient::Retry)
    } else if RECONNECT_CODES.contains(&code) {
        Some(Transient::Reconnect)
    } else {
        None
    }
}

/// Whether a driver error is transient, and how.
pub fn transient(e: &mysql_async::Error) -> Option<Transient> {
    use mysql_async::{DriverError, Error};
    match e {
        Error::Server(e) => by_code(e.code),
        Error::Io(_) => Some(Transient::Reconnect),
        Error::Driver(DriverError::ConnectionClosed | DriverError::PoolDisconnected) => Some(Transient::Reconnect),
        _ => None,
    }
}

/// Whether an error of floodgate's row reader is transient, and how.
pub fn wire_transient(e: &WireError) -> Option<Transient> {
    match e {
        WireError::Server { code, .. } => by_code(*code),
        WireError::Io(_) | WireError::Closed => Some(Transient::Reconnect),
        WireError::Protocol(_) | WireError::Unsupported(_) | WireError::NoTls | WireError::Tls(_) => None,
    }
}

/// How many times, and how far apart, transient failures are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Wait before the first retry; each next one waits twice as long...
    pub first_wait: Duration,
    /// ...up to this.
    pub max_wait: Duration,
}

/// The policy every floodgate command uses: 8 retries, 100 ms doubling up to 6.4 s (about
/// 25 s in all), enough for a deadlock storm or a failover's reconnect to pass.
pub const POLICY: RetryPolicy =
    RetryPolicy { retries: 8, first_wait: Duration::from_millis(100), max_wait: Duration::from_millis(6400) };

impl RetryPolicy {
    /// Wait before retry `n` (1-based).
    pub fn wait(&self, n: u32) -> Duration {
        let doubled = self.first_wait.saturating_mul(1u32 << n.clamp(1, 16).saturating_sub(1));
        doubled.min(self.max_wait)
    }

    /// Decides what to do after `error` on attempt `attempt` (0-based): the error back to
    /// give up (not transient, or retries spent), or, after the wait, what the connection
    /// needs before the next try. `what` names the work in the log.
    pub async fn before_retry<E: Retryable>(
        &self,
        error: E,
        attempt: u32,
        what: &str,
    ) -> std::result::Result<Transient, E> {
        let Some(kind) = error.transient() else { return Err(error) };
        if attempt >= self.retries {
            return Err(error);
        }
        tracing::warn!("{error}; retrying {what} ({}/{})", attempt + 1, self.retries);
        tokio::time::sleep(self.wait(attempt + 1)).await;
        Ok(kind)
    }
}

/// Opens a connection, waiting up to `wait` for a server that is down or restarting (refused
/// connections, "too many connections", "shutdown in progress"). Other errors, such as a wrong
/// password, fail at once.
pub async fn reconnect(target: &ConnectOptions, init: &[String], wait: Duration) -> Result<Conn> {
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        match connect(target, init).await {
            Ok(conn) => return Ok(conn),
            Err(e) if e.transient().is_some() && started.elapsed() < wait => {
                attempt += 1;
                if attempt == 1 || attempt.is_multiple_of(10) {
                    tracing::warn!("{e}; waiting for the target to come back (up to {}s)", wait.as_secs());
                }
                tokio::time::sleep(POLICY.wait(attempt).min(Duration::from_secs(2))).await;
            }
            Err(e) if e.transient().is_some() => {
                return Err(ConnError::Gone(format!(
                    "the target did not come back within {}s ({e}); run the same command again to resume",
                    wait.as_secs()
                )))
            }
            Err(e) => return Err(e),
        }
    }
}

/// Makes sure a connection held across a long phase still works, reopening it if the target
/// restarted meanwhile.
pub async fn refresh(conn: &mut Conn, target: &ConnectOptions, init: &[String], wait: Duration) -> Result<()> {
    if conn.query_drop("DO 1").await.is_err() {
        *conn = reconnect(target, init, wait).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let waits: Vec<u64> = (1..=9).map(|n| POLICY.wait(n).as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 6400, 6400, 6400]);
    }

    #[test]
    fn server_codes_are_classified() {
        let err = |code| {
            mysql_async::Error::Server(mysql_async::ServerError { code, message: String::new(), state: String::new() })
        };
        assert_eq!(transient(&err(1213)), Some(Transient::Retry));
        assert_eq!(transient(&err(2013)), Some(Transient::Reconnect));
        assert_eq!(transient(&err(1062)), None, "a duplicate key is not cured by trying again");
        assert_eq!(wire_transient(&WireError::Closed), Some(Transient::Reconnect));
    }
}
