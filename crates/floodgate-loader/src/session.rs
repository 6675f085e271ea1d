//! What every task of a restore shares: the target, the options, the session every load
//! connection runs first, progress, the pipeline, the checkpoints as they were at start, and
//! the tables being restored.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use floodgate_conn::ConnectOptions;
use floodgate_pipeline::{Pipeline, Progress};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::checkpoint::Checkpoints;
use crate::tables::Tables;
use crate::{LoadError, Result};

/// How to check the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyMode {
    /// No check after the load (each statement's own checks still apply).
    None,
    /// Row counts against the backup's record, or against the rows loaded.
    #[default]
    Counts,
    /// Content digests where the backup carries them; row counts otherwise.
    Digest,
}

/// Knobs of a restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Loader connections (and as many for CREATEs and for index builds).
    pub threads: usize,
    /// Replace tables, views, routines and events that already exist on the target.
    pub overwrite: bool,
    /// Build secondary indexes after the data.
    pub defer_indexes: bool,
    /// Write the restore to the target's binary log.
    pub binlog: bool,
    /// What to verify after the load.
    pub verify: VerifyMode,
    /// Bytes the pipeline may hold in flight.
    pub memory_budget: usize,
    /// SQL text per chunk of a mysqldump stream (see [`crate::stream::CHUNK_BYTES`]).
    pub stream_chunk_bytes: usize,
    /// INSERT chunk files of a directory backup at least this large load as LOAD DATA rows
    /// (see [`crate::job::CONVERT_MIN_BYTES`]).
    pub convert_min_bytes: u64,
    /// Restore a mysqldump file that lacks its `-- Dump completed` trailer.
    pub allow_incomplete: bool,
    /// Restore into a server whose replication is running.
    pub allow_replica: bool,
    /// What to do with the `DEFINER=` of views, routines, triggers and events.
    pub definers: floodgate_format::objects::DefinerRule,
    /// Require an interrupted restore to continue; refuse to start a fresh one.
    pub resume: bool,
    /// Discard an unfinished restore's checkpoints and partial tables first.
    pub restart: bool,
    /// Keep the checkpoints after a complete restore.
    pub keep_checkpoints: bool,
    /// floodgate's schema on the target (`floodgate` unless `--checkpoint-schema`).
    pub checkpoint_schema: floodgate_conn::CheckpointSchema,
    /// How long to wait for a target that went away (restart, network) before giving up.
    pub reconnect_wait: Duration,
    /// A MySQL Shell dump still being written is followed until it ends, as long as a new
    /// data file appears at least this often (`--wait-for-dump`); None: it is refused.
    pub wait_for_dump: Option<Duration>,
    /// Restore the accounts and grants the backup carries (`--users`).
    pub users: bool,
    /// An account that fails is a notice, not an error (`--ignore-grant-errors`).
    pub ignore_grant_errors: bool,
    /// Give the target the backup's GTID position at the end (`--set-gtid-purged`).
    pub set_gtid_purged: bool,
    /// Hold the loaders between chunks while a status variable is above a limit (`--throttle`).
    pub throttle: Option<crate::StatusLimit>,
    /// Load at most this many bytes (as stored) per second, on average (`--max-rate`).
    pub max_rate: Option<f64>,
    /// Give each table without a primary key an invisible one (`--create-invisible-pks`).
    pub create_invisible_pks: bool,
    /// Load through INSERT statements, never LOAD DATA LOCAL (`--no-local-infile`, or a
    /// target with local_infile off that this account may not turn on).
    pub no_local_infile: bool,
    /// Replicas of the target to keep up with (`--replica`): statements stay under their
    /// packet limits, and with `max_replica_lag` the loaders wait for them.
    pub replicas: Vec<ConnectOptions>,
    /// Hold the loaders between chunks while a replica is further behind than this many
    /// seconds, or not replicating (`--max-replica-lag`).
    pub max_replica_lag: Option<u64>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            threads: 4,
            overwrite: false,
            defer_indexes: true,
            binlog: false,
            verify: VerifyMode::Counts,
            memory_budget: 256 << 20,
            stream_chunk_bytes: crate::stream::CHUNK_BYTES,
            convert_min_bytes: crate::job::CONVERT_MIN_BYTES,
            allow_incomplete: false,
            allow_replica: false,
            definers: Default::default(),
            resume: false,
            restart: false,
            keep_checkpoints: false,
            checkpoint_schema: Default::default(),
            reconnect_wait: Duration::from_secs(300),
            wait_for_dump: None,
            users: false,
            ignore_grant_errors: false,
            set_gtid_purged: false,
            throttle: None,
            max_rate: None,
            replicas: Vec::new(),
            max_replica_lag: None,
            no_local_infile: false,
            create_invisible_pks: false,
        }
    }
}

/// Shared by every task of one restore.
pub(crate) struct Session {
    pub target: ConnectOptions,
    pub options: RestoreOptions,
    /// Statements every connection runs first (session settings of the load).
    pub init: Vec<String>,
    /// The backup's own session statements (a dump's header `SET`s), run after `init` on
    /// every load connection.
    pub prelude: Mutex<Vec<Vec<u8>>>,
    pub progress: Arc<Progress>,
    pub pipeline: Pipeline,
    /// What earlier runs of this restore did, as it was at start.
    pub checkpoints: Arc<Checkpoints>,
    /// The tables being restored.
    pub tables: Tables,
    /// The backup, for messages: a directory or a file (or `<stdin>`).
    pub source: String,
    /// The largest statement the target accepts (`max_allowed_packet`).
    pub max_packet: u64,
    /// `--throttle` and `--max-rate`: the gate before every chunk.
    pub throttle: crate::throttle::Throttle,
}

impl Session {
    /// A new load connection with the restore's session, waiting for a target that went
    /// away.
    pub async fn connect(&self) -> Result<Conn> {
        let mut conn = floodgate_conn::retry::reconnect(&self.target, &self.init, self.options.reconnect_wait).await?;
        let prelude = self.prelude.lock().map_err(|_| poisoned())?.clone();
        for s in prelude {
            conn.query_drop(&s[..]).await.map_err(LoadError::sql(format!("{}: session setup", self.source)))?;
        }
        Ok(conn)
    }

    /// Where this backup's checkpoints are.
    pub fn ledger(&self) -> &crate::checkpoint::Ledger {
        &self.checkpoints.ledger
    }
}

/// A lock was poisoned: a task panicked while holding it.
pub(crate) fn poisoned() -> LoadError {
    LoadError::Internal("a task panicked".into())
}
