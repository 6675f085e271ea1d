//! Failpoints: named places where a test can stop a restore dead, to prove it resumes from
//! any of them. `FLOODGATE_FAILPOINT=NAME:N` makes the N-th arrival at NAME print
//! `floodgate: failpoint NAME reached` on stderr and then hang, so the test can `kill -9` the
//! process at exactly that moment. Unset (always, outside tests), a failpoint costs one
//! relaxed atomic load.
//!
//! Names: `schema.table` (a table was created), `data.load` (a chunk's rows are loaded but
//! not committed), `data.chunk` (a chunk committed), `index.build` (an index build is
//! running on the server), `post.statement` (a post-data statement ran, not yet recorded),
//! and `data.late:P`, where P is a percentage: the first committed chunk at or past P% of the
//! backup's bytes.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn armed(name: &str) -> bool {
    let armed = ARMED.get_or_init(|| {
        let value = std::env::var("FLOODGATE_FAILPOINT").ok()?;
        let (name, n) = value.rsplit_once(':')?;
        Some((name.to_string(), n.parse().ok()?))
    });
    armed.as_ref().is_some_and(|(n, _)| n == name)
}

fn nth_arrival() -> bool {
    let n = ARMED.get().and_then(|a| a.as_ref()).map(|(_, n)| *n).unwrap_or(0);
    HITS.fetch_add(1, Ordering::Relaxed) + 1 == n
}

async fn stop_here(name: &str) {
    eprintln!("floodgate: failpoint {name} reached");
    std::future::pending::<()>().await;
}

/// Arrives at failpoint `name`.
pub async fn hit(name: &str) {
    if armed(name) && nth_arrival() {
        stop_here(name).await;
    }
}

/// Arrives at a progress failpoint with `done` of `total`; it is due once `done` reaches the
/// armed percentage.
pub async fn passed(name: &str, done: u64, total: u64) {
    if !armed(name) || total == 0 {
        return;
    }
    let percent = ARMED.get().and_then(|a| a.as_ref()).map(|(_, n)| *n).unwrap_or(u64::MAX);
    if done.saturating_mul(100) >= percent.saturating_mul(total) && HITS.fetch_add(1, Ordering::Relaxed) == 0 {
        stop_here(name).await;
    }
}

/// Runs `work`; if failpoint `name` is due, stops while `work` is in flight on the server
/// (after a moment, so the statement has surely been sent), or right after it ended.
pub async fn during<T>(name: &str, work: impl Future<Output = T>) -> T {
    if !(armed(name) && nth_arrival()) {
        return work.await;
    }
    tokio::pin!(work);
    let early = tokio::time::timeout(Duration::from_millis(50), &mut work).await.ok();
    stop_here(name).await;
    match early {
        Some(out) => out,
        None => work.await,
    }
}
