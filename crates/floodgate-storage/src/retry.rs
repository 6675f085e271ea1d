//! The retry policy of object requests. Throttling (503 SlowDown, 429), server errors,
//! refused or reset connections and stalled transfers (cut by the request timeout) are tried
//! again with doubling waits, like floodgate's server retries, but for as long as
//! [`crate::StoreOptions::retry_for`] says rather than a fixed count: a store that is
//! restarting or paused is waited for. A missing object, refused credentials and a changed
//! object are final at once.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::{Result, StorageError, StorageErrorKind};

/// First wait; each next one doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_millis(6400);

/// Doubling waits between tries of one request, until `deadline` has passed since the first.
pub(crate) struct Backoff {
    started: Instant,
    deadline: Duration,
    wait: Duration,
    tries: u32,
}

impl Backoff {
    pub fn new(deadline: Duration) -> Backoff {
        Backoff { started: Instant::now(), deadline, wait: FIRST_WAIT, tries: 0 }
    }

    /// After a failed try: how long to wait before the next one, or the error to give up
    /// with (a final one at once; a transient one once the deadline would pass).
    pub fn after(&mut self, error: StorageError, what: &str) -> std::result::Result<Duration, StorageError> {
        self.tries += 1;
        if error.kind != StorageErrorKind::Unreachable {
            return Err(error);
        }
        if self.started.elapsed() + self.wait > self.deadline {
            return Err(StorageError::new(
                error.kind,
                error.url,
                format!("{} (gave up after {} tries in {:.0?})", error.reason, self.tries, self.started.elapsed()),
            ));
        }
        tracing::warn!("{what}: {}; trying again in {:?}", error.reason, self.wait);
        let wait = self.wait;
        self.wait = (self.wait * 2).min(MAX_WAIT);
        Ok(wait)
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `deadline` has passed since the first
/// try. `what` names the request in the log and in the final error.
pub(crate) async fn retrying<T, F, Fut>(what: &str, deadline: Duration, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = Backoff::new(deadline);
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => tokio::time::sleep(backoff.after(e, what)?).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn failing(kind: StorageErrorKind) -> StorageError {
        StorageError::new(kind, "s3://b/k", "boom")
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_the_deadline_and_final_ones_are_not() {
        let calls = AtomicU32::new(0);
        let ok = retrying("get", Duration::from_secs(60), || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Err(failing(StorageErrorKind::Unreachable)),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(ok.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        let calls = AtomicU32::new(0);
        let denied = retrying("get", Duration::from_secs(60), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(failing(StorageErrorKind::Denied))
        })
        .await;
        assert_eq!(denied.unwrap_err().kind, StorageErrorKind::Denied);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let given_up =
            retrying("get", Duration::from_secs(10), || async { Err::<(), _>(failing(StorageErrorKind::Unreachable)) })
                .await
                .unwrap_err();
        assert!(given_up.reason.contains("gave up after"), "{given_up}");
    }
}
