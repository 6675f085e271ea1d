//! The one chunk queue: chunks waiting for a loader, and which one goes next.
//!
//! A source pushes chunks in its own order (a planned backup all at once, a dump stream one
//! table after another as it reads); the loaders should not follow that order, or all of them
//! work on the same table and contend for its B-tree while the next tables wait. So chunks
//! queue per table, and a free loader takes the next chunk of the table with the most queued
//! bytes per loader already on it: large tables get proportionally more loaders and small
//! ones still run beside them. The queue holds at most `limit` bytes: a stream's sequencer
//! waits when it is full, which bounds memory when chunks carry their statements and how far
//! the first read of a file runs ahead of the loads when they carry only a byte range.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::Notify;

/// How much a table needs the next free loader: its queued bytes per loader already on it (a
/// loader more, so an untouched table counts its whole size). The table with the most gets it.
fn share_per_loader(bytes: u64, active: usize) -> f64 {
    (bytes as f64 + 1.0) / (active as f64 + 1.0)
}

/// The loaders stopped (one failed): no more chunks are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped;

/// Chunks of type `J` queued per table.
pub(crate) struct ChunkQueue<J> {
    state: Mutex<State<J>>,
    changed: Notify,
    limit: u64,
}

struct State<J> {
    lanes: HashMap<usize, Lane<J>>,
    /// Bytes of all queued chunks.
    queued: u64,
    /// Chunks taken by a loader and not finished.
    active: usize,
    /// No more chunks will be pushed.
    closed: bool,
    /// The loaders stopped.
    stopped: bool,
}

struct Lane<J> {
    jobs: VecDeque<(J, u64)>,
    bytes: u64,
    active: usize,
}

impl<J> ChunkQueue<J> {
    /// A queue that holds at most `limit` bytes of chunks (and always at least one chunk).
    pub(crate) fn new(limit: u64) -> Self {
        ChunkQueue {
            state: Mutex::new(State { lanes: HashMap::new(), queued: 0, active: 0, closed: false, stopped: false }),
            changed: Notify::new(),
            limit,
        }
    }

    /// Queues a chunk of `table` weighing `bytes`, waiting while the queue is full.
    pub(crate) async fn push(&self, table: usize, bytes: u64, job: J) -> Result<(), Stopped> {
        let mut job = Some(job);
        self.wait_until(|s| {
            if s.stopped {
                return Some(Err(Stopped));
            }
            if s.queued > 0 && s.queued + bytes > self.limit {
                return None;
            }
            let lane = s.lanes.entry(table).or_insert_with(|| Lane { jobs: VecDeque::new(), bytes: 0, active: 0 });
            lane.jobs.push_back((job.take()?, bytes));
            lane.bytes += bytes;
            s.queued += bytes;
            Some(Ok(()))
        })
        .await
    }

    /// The next chunk for a free loader, with its table; None once the queue is closed and
    /// empty, or stopped. The caller reports it with [`ChunkQueue::finish`].
    pub(crate) async fn pop(&self) -> Option<(usize, J)> {
        self.wait_until(|s| {
            if s.stopped {
                return Some(None);
            }
            let share = |l: &Lane<J>| share_per_loader(l.bytes, l.active);
            let next = s
                .lanes
                .iter()
                .filter(|(_, l)| !l.jobs.is_empty())
                .max_by(|(ta, a), (tb, b)| share(a).total_cmp(&share(b)).then(tb.cmp(ta)))
                .map(|(&t, _)| t);
            let Some(table) = next else { return s.closed.then_some(None) };
            let lane = s.lanes.get_mut(&table)?;
            let (job, bytes) = lane.jobs.pop_front()?;
            lane.bytes -= bytes;
            lane.active += 1;
            s.queued -= bytes;
            s.active += 1;
            Some(Some((table, job)))
        })
        .await
    }

    /// A loader is done with a chunk of `table` (committed, or failed and stopping).
    pub(crate) fn finish(&self, table: usize) {
        self.update(|s| {
            if let Some(lane) = s.lanes.get_mut(&table) {
                lane.active = lane.active.saturating_sub(1);
                if lane.active == 0 && lane.jobs.is_empty() {
                    s.lanes.remove(&table);
                }
            }
            s.active = s.active.saturating_sub(1);
        });
    }

    /// No more chunks: loaders stop once the queue is empty.
    pub(crate) fn close(&self) {
        self.update(|s| s.closed = true);
    }

    /// A loader failed: the others stop taking chunks and the source stops pushing them.
    pub(crate) fn stop(&self) {
        self.update(|s| s.stopped = true);
    }

    /// Waits until every chunk pushed so far has been taken and finished: what follows in
    /// the stream may depend on those rows (an UPDATE, an ALTER of the table).
    pub(crate) async fn drained(&self) -> Result<(), Stopped> {
        self.wait_until(|s| match () {
            _ if s.stopped => Some(Err(Stopped)),
            _ if s.queued == 0 && s.active == 0 => Some(Ok(())),
            _ => None,
        })
        .await
    }

    fn update(&self, change: impl FnOnce(&mut State<J>)) {
        if let Ok(mut s) = self.state.lock() {
            change(&mut s);
        }
        self.changed.notify_waiters();
    }

    /// Runs `step` on the state until it returns a value, waiting for a change in between.
    async fn wait_until<T>(&self, mut step: impl FnMut(&mut State<J>) -> Option<T>) -> T {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so a change between the look and the wait is seen.
            changed.as_mut().enable();
            let done = match self.state.lock() {
                Ok(mut s) => step(&mut s),
                Err(_) => None,
            };
            if let Some(value) = done {
                self.changed.notify_waiters();
                return value;
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn loaders_spread_over_tables_by_bytes_per_loader() {
        let q = ChunkQueue::new(u64::MAX);
        for n in 0..4 {
            q.push(0, 10, (0, n)).await.unwrap();
        }
        q.push(1, 10, (1, 0)).await.unwrap();
        q.push(2, 5, (2, 0)).await.unwrap();
        // Table 0 has the most bytes; with a loader on it, 30/2 still beats 10 and 5.
        assert_eq!(q.pop().await, Some((0, (0, 0))));
        assert_eq!(q.pop().await, Some((0, (0, 1))));
        // 20/3 < 10/1: the next loader goes to table 1, then 20/3 > 5/1 back to table 0.
        assert_eq!(q.pop().await, Some((1, (1, 0))));
        assert_eq!(q.pop().await, Some((0, (0, 2))));
        // 10/3 < 5: table 2's turn, though it was queued last.
        q.finish(0);
        q.close();
        assert_eq!(q.pop().await, Some((2, (2, 0))));
        assert_eq!(q.pop().await, Some((0, (0, 3))));
        assert_eq!(q.pop().await, None);
    }

    #[tokio::test]
    async fn a_full_queue_holds_the_sequencer_until_a_loader_takes_a_chunk() {
        let q = Arc::new(ChunkQueue::new(10));
        q.push(0, 6, 1).await.unwrap();
        let pusher = tokio::spawn({
            let q = q.clone();
            async move { q.push(0, 6, 2).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!pusher.is_finished(), "12 bytes do not fit in 10");
        assert_eq!(q.pop().await, Some((0, 1)));
        pusher.await.unwrap().unwrap();
        // One chunk larger than the limit still goes through an empty queue.
        assert_eq!(q.pop().await, Some((0, 2)));
        q.push(1, 100, 3).await.unwrap();
    }

    #[tokio::test]
    async fn drained_waits_for_chunks_taken_and_finished() {
        let q = Arc::new(ChunkQueue::new(u64::MAX));
        q.push(0, 1, ()).await.unwrap();
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.drained().await }
        });
        let (table, ()) = q.pop().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a chunk is still being loaded");
        q.finish(table);
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_stopped_queue_refuses_pushes_and_ends_pops() {
        let q = Arc::new(ChunkQueue::new(1));
        q.push(0, 1, ()).await.unwrap();
        let blocked = tokio::spawn({
            let q = q.clone();
            async move { q.push(0, 1, ()).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.stop();
        assert_eq!(blocked.await.unwrap(), Err(Stopped));
        assert_eq!(q.pop().await, None);
        assert_eq!(q.drained().await, Err(Stopped));
    }
}
