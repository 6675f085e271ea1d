//! Transient failures: deadlocks, lock waits, killed connections, a target that restarts.
//! A chunk is retried a bounded number of times with backoff; a lost connection is reopened,
//! waiting up to a limit for the server to come back.

use std::time::{Duration, Instant};

use mysql_async::Conn;

use crate::error::Transient;
use crate::{connect, ConnectOptions, LoadError, Result};

/// Times one chunk (or one index build) is tried again after a transient failure.
pub const RETRIES: u32 = 8;

/// Wait before retry `attempt` (1-based): 100 ms, doubling, at most 6.4 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 << attempt.clamp(1, 7) >> 1)
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
                tokio::time::sleep(backoff(attempt).min(Duration::from_secs(2))).await;
            }
            Err(e) if e.transient().is_some() => {
                return Err(LoadError::Refused(format!(
                    "the target did not come back within {}s ({e}); run the same command again to resume",
                    wait.as_secs()
                )))
            }
            Err(e) => return Err(e),
        }
    }
}

/// Decides what to do after `error` on attempt `attempt` (0-based): Err to give up, or what
/// the connection needs before the next try (after the backoff sleep this waits).
pub async fn before_retry(error: LoadError, attempt: u32, what: &str) -> Result<Transient> {
    let Some(kind) = error.transient() else { return Err(error) };
    if attempt >= RETRIES {
        return Err(error);
    }
    tracing::warn!("{error}; retrying {what} ({}/{RETRIES})", attempt + 1);
    tokio::time::sleep(backoff(attempt + 1)).await;
    Ok(kind)
}

/// Makes sure a connection held across a long phase still works, reopening it if the target
/// restarted meanwhile.
pub async fn refresh(conn: &mut Conn, target: &ConnectOptions, init: &[String], wait: Duration) -> Result<()> {
    use mysql_async::prelude::Queryable;
    if conn.query_drop("DO 1").await.is_err() {
        *conn = reconnect(target, init, wait).await?;
    }
    Ok(())
}
