//! The drill's machine-readable account (`--report FILE.json`). Its JSON Schema is
//! `docs/drill-report.schema.json`; a test validates every report the tests write against it.

use floodgate_loader::RestoreReport;
use serde::Serialize;

/// Version of this report's layout; bumped when a field changes meaning or goes away.
pub const REPORT_VERSION: u32 = 1;

/// The whole drill.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// [`REPORT_VERSION`].
    pub report_version: u32,
    /// `success` or `failure`.
    pub status: Status,
    /// The process exit code this outcome maps to (DESIGN.md).
    pub exit_code: i32,
    /// Why the drill failed; None on success.
    pub error: Option<ErrorInfo>,
    /// floodgate's version.
    pub floodgate_version: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC.
    pub finished_at: String,
    /// Wall seconds, start to end (reading, server, restore, checks, teardown).
    pub seconds: f64,
    /// Seconds the restore took, checks of the loader included: the recovery time the
    /// backup gives. None if the restore never started.
    pub restore_seconds: Option<f64>,
    /// The `--timeout` limit, in seconds.
    pub timeout_seconds: Option<f64>,
    /// What was restored.
    pub backup: BackupInfo,
    /// Where it was restored.
    pub server: ServerInfo,
    /// Seconds per drill phase.
    pub phases: DrillPhases,
    /// Rows restored.
    pub rows: u64,
    /// Bytes of backup data read (as stored, compressed or not).
    pub bytes: u64,
    /// Every check, passed or not.
    pub verification: Vec<Check>,
    /// The loader's report (per table and per phase seconds, rows, bytes); None if the
    /// restore did not finish.
    pub restore: Option<RestoreReport>,
}

/// Success or failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Restored and every check passed.
    Success,
    /// Something failed; see `error`.
    Failure,
}

/// Why a drill failed.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorInfo {
    /// `integrity`, `timeout`, `interrupted` or `failure`.
    pub kind: String,
    /// The full message, naming the file, table or check.
    pub message: String,
}

/// The backup's identity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackupInfo {
    /// The path given.
    pub path: String,
    /// Detected format (`floodgate/1`, `mydumper`, `mysqldump`, ...); None if unreadable.
    pub format: Option<String>,
    /// Bytes of all its files on disk.
    pub bytes: u64,
    /// Number of files.
    pub files: u64,
    /// Newest modification time of its files, RFC 3339 UTC.
    pub modified_at: Option<String>,
    /// When the backup says it was taken: the native manifest's `created_at`, mydumper's
    /// `Started dump at`, mysqldump's `Dump completed on`, as written there.
    pub created_at: Option<String>,
    /// SHA-256 of what identifies it: manifest.json (native), `metadata` (mydumper), the
    /// whole file as stored (mysqldump; hashed on the pass that checks it is complete).
    pub identity_sha256: Option<String>,
    /// Source server version, where recorded.
    pub source_server_version: Option<String>,
    /// Binary log file of the snapshot, where recorded.
    pub binlog_file: Option<String>,
    /// Position in it.
    pub binlog_position: Option<u64>,
    /// GTID set of the snapshot, where recorded.
    pub gtid_executed: Option<String>,
    /// Databases in the backup.
    pub databases: u64,
    /// Tables in the backup.
    pub tables: u64,
    /// Rows the backup records, summed over the tables that record them.
    pub recorded_rows: Option<u64>,
}

/// The server restored into.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerInfo {
    /// `sandbox` (started and removed by the drill) or `external` (CONN).
    pub kind: String,
    /// `SELECT VERSION()`.
    pub version: Option<String>,
    /// user@socket or user@host:port; never a password.
    pub address: Option<String>,
    /// The sandbox's directory.
    pub sandbox_dir: Option<String>,
    /// True when `--keep` left the sandbox running.
    pub kept: bool,
}

/// Seconds per phase of the drill.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrillPhases {
    /// Reading and checking the backup before any server work.
    pub read: f64,
    /// Starting the sandbox, or connecting to and checking the target.
    pub server: f64,
    /// The restore (the loader's own phases are in `restore.phases`).
    pub restore: f64,
    /// Objects present, `--verify-query` checks.
    pub checks: f64,
    /// Removing (or keeping) the sandbox.
    pub teardown: f64,
}

/// One verification.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `chunk_sha256`, `statements`, `row_counts`, `content_digest`, `dump_complete`,
    /// `objects` or `verify_query`.
    pub check: String,
    /// Did it pass?
    pub passed: bool,
    /// What was found.
    pub detail: String,
}

impl Check {
    pub(crate) fn new(check: &str, passed: bool, detail: impl Into<String>) -> Check {
        Check { check: check.into(), passed, detail: detail.into() }
    }
}

/// Seconds since the epoch now.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
