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

/// Runs `attempt` until it succeeds, fails for good, or `deadline` has passed since the first
/// try. `what` names the request in the log and in the final error.
pub(crate) async fn retrying<T, F, Fut>(what: &str, deadline: Duration, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut wait = FIRST_WAIT;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let error = match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if e.kind != StorageErrorKind::Unreachable => return Err(e),
            Err(e) => e,
        };
        if started.elapsed() + wait > deadline {
            return Err(StorageError::new(
                error.kind,
                error.url,
                format!("{} (gave up after {tries} tries in {:.0?})", error.reason, started.elapsed()),
            ));
        }
        tracing::warn!("{what}: {}; trying again in {wait:?}", error.reason);
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_WAIT);
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
