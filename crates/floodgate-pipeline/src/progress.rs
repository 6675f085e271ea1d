//! Live counters a user interface polls while a restore runs.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

/// The restore's current phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Reading the backup and checking the target.
    Checks = 0,
    /// Creating databases and tables.
    Schema = 1,
    /// Loading rows (and building indexes of finished tables).
    Data = 2,
    /// Building the last deferred indexes.
    Indexes = 3,
    /// Views, routines, events, triggers.
    Post = 4,
    /// Verifying row counts.
    Verify = 5,
    /// Finished.
    Done = 6,
}

impl Phase {
    /// Lower-case name for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Checks => "checks",
            Phase::Schema => "schema",
            Phase::Data => "data",
            Phase::Indexes => "indexes",
            Phase::Post => "post-data",
            Phase::Verify => "verify",
            Phase::Done => "done",
        }
    }
}

/// Counters updated by the restore, read by anyone.
#[derive(Debug, Default)]
pub struct Progress {
    phase: AtomicU8,
    /// Bytes of chunk files (as stored) in the plan.
    pub bytes_total: AtomicU64,
    /// Bytes of chunk files loaded and committed.
    pub bytes_done: AtomicU64,
    /// Rows committed.
    pub rows_done: AtomicU64,
    /// Tables in the plan.
    pub tables_total: AtomicU64,
    /// Tables whose data and indexes are complete.
    pub tables_done: AtomicU64,
    /// Chunks in the plan.
    pub chunks_total: AtomicU64,
    /// Chunks committed.
    pub chunks_done: AtomicU64,
    /// Messages for the user (resuming, reloading a table) not yet shown.
    notices: Mutex<Vec<String>>,
    /// Why the loaders are held now (`--throttle`), if they are.
    paused: Mutex<Option<String>>,
    /// Every notice so far, for the report.
    history: Mutex<Vec<String>>,
}

impl Progress {
    /// The phase now running.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Checks,
            1 => Phase::Schema,
            2 => Phase::Data,
            3 => Phase::Indexes,
            4 => Phase::Post,
            5 => Phase::Verify,
            _ => Phase::Done,
        }
    }

    /// Moves to phase `p`.
    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
        tracing::info!(phase = p.name(), "phase started");
    }

    /// Tells the user something worth knowing, through whatever shows progress.
    pub fn notice(&self, message: String) {
        tracing::info!("{message}");
        if let Ok(mut h) = self.history.lock() {
            h.push(message.clone());
        }
        if let Ok(mut n) = self.notices.lock() {
            n.push(message);
        }
    }

    /// Every notice given so far, shown or not.
    pub fn notices_so_far(&self) -> Vec<String> {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Says why the loaders are held (`None`: they are not).
    pub fn set_paused(&self, reason: Option<String>) {
        if let Ok(mut p) = self.paused.lock() {
            *p = reason;
        }
    }

    /// Why the loaders are held now, if they are.
    pub fn paused(&self) -> Option<String> {
        self.paused.lock().ok().and_then(|p| p.clone())
    }

    /// The notices since the last call.
    pub fn take_notices(&self) -> Vec<String> {
        self.notices.lock().map(|mut n| std::mem::take(&mut *n)).unwrap_or_default()
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes `n` back from a counter (not below zero).
    pub fn sub(counter: &AtomicU64, n: u64) {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
    }
}
