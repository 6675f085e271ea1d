//! The machine-readable account of a restore (`--report FILE.json`).

use serde::Serialize;

/// Seconds spent in each phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseSeconds {
    /// Reading the backup, connecting, checking the target.
    pub checks: f64,
    /// Databases and tables.
    pub schema: f64,
    /// Rows (index builds of finished tables overlap this phase).
    pub data: f64,
    /// Waiting for the last index builds after the data phase.
    pub indexes: f64,
    /// Views, routines, events, triggers.
    pub post: f64,
    /// Row count verification.
    pub verify: f64,
}

/// One table's account.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableReport {
    /// Database.
    pub database: String,
    /// Table.
    pub table: String,
    /// Rows loaded.
    pub rows: u64,
    /// Rows the backup says it holds, if it says.
    pub expected_rows: Option<u64>,
    /// Bytes of its chunk files as stored.
    pub bytes: u64,
    /// Chunk files.
    pub chunks: usize,
    /// CREATE TABLE seconds.
    pub schema_seconds: f64,
    /// Seconds from its first chunk's start to its last chunk's commit.
    pub data_seconds: f64,
    /// Seconds to build its deferred indexes.
    pub index_seconds: f64,
    /// Indexes created after the data.
    pub deferred_indexes: Vec<String>,
    /// Statements that were executed as INSERT statements.
    pub insert_statements: u64,
    /// LOAD DATA statements.
    pub load_data_statements: u64,
    /// Chunks an earlier, interrupted run had already committed (skipped by this run).
    pub chunks_resumed: usize,
    /// A non-transactional table (MyISAM, Aria) an interrupted run had left partial,
    /// emptied and loaded again whole by this run.
    pub reloaded: bool,
}

/// The whole restore.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    /// True when this run continued an interrupted restore.
    pub resumed: bool,
    /// Chunks committed by earlier runs, not loaded again.
    pub chunks_skipped: usize,
    /// floodgate's version.
    pub tool_version: String,
    /// The backup path.
    pub source: String,
    /// Backup format.
    pub format: String,
    /// The target server's version.
    pub target_version: String,
    /// Loader connections.
    pub threads: usize,
    /// Wall seconds, start to end.
    pub seconds: f64,
    /// Per phase.
    pub phases: PhaseSeconds,
    /// Rows loaded in all tables.
    pub rows: u64,
    /// Bytes of chunk files.
    pub bytes: u64,
    /// Per table, in plan order.
    pub tables: Vec<TableReport>,
    /// Views created.
    pub views: usize,
    /// Files of routines and events applied.
    pub post_files: usize,
    /// Files of triggers applied.
    pub trigger_files: usize,
    /// What verification found (one line per check).
    pub verification: Vec<String>,
    /// Where the source's history stood at the backup's snapshot (binlog file and position,
    /// GTID set), when the backup records it.
    pub position: Option<floodgate_format::Position>,
    /// The statement `--set-gtid-purged` ran (or a resumed run found already run).
    pub gtid_set: Option<String>,
    /// GET requests made to object storage (0 for a backup on disk): a resumed restore
    /// fetches only what was not committed.
    pub object_gets: u64,
    /// What `--throttle` and `--max-rate` held the loaders for (absent when neither is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle: Option<crate::ThrottleReport>,
    /// What the restore told the user as it ran: a privilege it did without, a setting it
    /// changed and put back, a pause, a resume.
    pub notices: Vec<String>,
}
