//! Restore drills: prove a backup restores, unattended.
//!
//! [`drill`] reads a backup (checking what can be checked before any server work), starts a
//! throwaway server with [`floodgate_sandbox`] tuned for fast ingest (or uses the server it
//! is given, refusing one that holds user data), restores into it with the same entry
//! point `floodgate restore` calls ([`floodgate_loader::restore`]), verifies the result, and
//! removes the server. It
//! always returns a [`DrillReport`], on failure too, so a nightly job can record what went
//! wrong; [`prometheus::write_textfile`] turns it into node_exporter metrics.
//!
//! What is verified depends on the format:
//! - native (`floodgate/1`): each chunk's SHA-256 before its rows commit, each table's row
//!   count and content digest against the manifest;
//! - mydumper and mysqldump: every statement applied with no error and no warning that
//!   changes data (the loader's rule), row counts against what the backup records where it
//!   records them (mydumper 0.13+ metadata) and against the rows loaded otherwise, a
//!   mysqldump file's `-- Dump completed` trailer;
//! - all: every view, routine, trigger and event the backup defines exists afterwards, and
//!   the user's `--verify-query` SQL returns true.
//!
//! A `--timeout` bounds the restore (the recovery time objective): when it expires the
//! restore future is dropped, which aborts its tasks and drops their connections (a chunk in
//! flight rolls back), and the sandbox is removed. An interrupt (SIGINT, SIGTERM) does the
//! same. Both are failures (exit 1), not integrity problems.

mod backup;
mod checks;
mod error;
pub mod prometheus;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use floodgate_conn::server::user_databases;
use floodgate_conn::ConnectOptions;
use floodgate_format::split::StatementLimit;
use floodgate_format::Backup;
use floodgate_format::Classify;
use floodgate_loader::{Progress, RestoreOptions, RestoreReport, VerifyMode};
use floodgate_sandbox::{KeptSandbox, Sandbox, SandboxOptions};
use tokio::sync::watch;

pub use checks::{objects_present, VerifyQueries};
pub use error::{DrillError, Result};
pub use floodgate_format::native::rfc3339;
pub use floodgate_format::objects::{ExpectedObject, ExpectedObjects};
pub use report::{BackupInfo, Check, DrillPhases, DrillReport, ErrorInfo, ServerInfo, Status, REPORT_VERSION};

/// Where to restore.
#[derive(Debug, Clone)]
pub enum Target {
    /// A throwaway server started for the drill and removed afterwards (unless `keep`).
    Sandbox {
        /// How to start it.
        options: SandboxOptions,
        /// Leave it running afterwards (not after an interrupt).
        keep: bool,
    },
    /// A server the user gives.
    Server {
        /// How to connect.
        conn: ConnectOptions,
        /// Restore even though it holds user data, replacing what the backup defines.
        overwrite: bool,
    },
}

/// Knobs of a drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Where to restore.
    pub target: Target,
    /// Loader connections.
    pub threads: usize,
    /// Bytes the pipeline may hold in flight.
    pub memory_budget: usize,
    /// Fail when the restore takes longer.
    pub timeout: Option<Duration>,
    /// The timeout as the user wrote it, for messages.
    pub timeout_text: String,
    /// The user's SQL checks.
    pub verify_queries: Option<PathBuf>,
    /// The database name for a mysqldump file made without `--databases`.
    pub into: Option<String>,
}

/// Tells a running drill to stop: send `Some(signal name)`.
pub type Interrupt = watch::Receiver<Option<String>>;

/// Hears about the drill's steps (for a person watching): one line each.
pub type Notify = Arc<dyn Fn(&str) + Send + Sync>;

/// The line [`Notify`] hears when the restore starts.
pub const RESTORING: &str = "restoring";

/// How a drill ended.
#[derive(Debug)]
pub struct Outcome {
    /// The report, filled as far as the drill got.
    pub report: DrillReport,
    /// Why it failed; None on success.
    pub error: Option<DrillError>,
    /// The sandbox `--keep` left running.
    pub kept: Option<KeptSandbox>,
    /// When it ended, seconds since the epoch.
    pub finished_at: f64,
}

/// State that outlives a failure: the sandbox must be torn down whatever happened.
struct Run {
    report: DrillReport,
    sandbox: Option<Sandbox>,
    notify: Notify,
}

/// Runs a drill of `backup`. Never panics on bad input; every failure is in the outcome.
pub async fn drill(
    backup: &Path,
    options: DrillOptions,
    progress: Arc<Progress>,
    mut interrupt: Interrupt,
    notify: Notify,
) -> Outcome {
    let started = Instant::now();
    let started_at = report::unix_now();
    let mut run = Run { report: empty_report(backup, started_at, &options), sandbox: None, notify };
    let mut error = run.steps(backup, &options, progress, &mut interrupt).await.err();

    let t = Instant::now();
    let keep = matches!(options.target, Target::Sandbox { keep: true, .. })
        && !matches!(error, Some(DrillError::Interrupted { .. }));
    let kept = match run.teardown(keep).await {
        Ok(k) => k,
        Err(e) => {
            error.get_or_insert(e);
            None
        }
    };
    run.report.server.kept = kept.is_some();
    run.report.phases.teardown = t.elapsed().as_secs_f64();
    let finished_at = report::unix_now();
    finish(&mut run.report, error.as_ref(), started.elapsed().as_secs_f64(), finished_at);
    Outcome { report: run.report, error, kept, finished_at }
}

fn empty_report(backup: &Path, started_at: f64, options: &DrillOptions) -> DrillReport {
    DrillReport {
        report_version: REPORT_VERSION,
        status: Status::Failure,
        exit_code: 1,
        error: None,
        floodgate_version: env!("CARGO_PKG_VERSION").into(),
        started_at: rfc3339(started_at as u64),
        finished_at: String::new(),
        seconds: 0.0,
        restore_seconds: None,
        timeout_seconds: options.timeout.map(|d| d.as_secs_f64()),
        backup: BackupInfo { path: backup.display().to_string(), ..Default::default() },
        server: ServerInfo {
            kind: match options.target {
                Target::Sandbox { .. } => "sandbox".into(),
                Target::Server { .. } => "external".into(),
            },
            ..Default::default()
        },
        phases: DrillPhases::default(),
        rows: 0,
        bytes: 0,
        verification: Vec::new(),
        restore: None,
    }
}

fn finish(report: &mut DrillReport, error: Option<&DrillError>, seconds: f64, finished_at: f64) {
    report.seconds = seconds;
    report.finished_at = rfc3339(finished_at as u64);
    match error {
        None => {
            report.status = Status::Success;
            report.exit_code = 0;
        }
        Some(e) => {
            report.status = Status::Failure;
            report.exit_code = e.exit_code();
            report.error = Some(ErrorInfo { kind: e.kind().into(), message: e.to_string() });
        }
    }
}

impl Run {
    async fn steps(
        &mut self,
        backup: &Path,
        options: &DrillOptions,
        progress: Arc<Progress>,
        interrupt: &mut Interrupt,
    ) -> Result<()> {
        let t = Instant::now();
        let queries = options.verify_queries.as_deref().map(VerifyQueries::read).transpose()?;
        let prepared = {
            let (path, into) = (backup.to_path_buf(), options.into.clone());
            let limit = StatementLimit::for_budget(options.memory_budget, options.threads);
            let reading = tokio::task::spawn_blocking(move || backup::prepare(&path, into, limit));
            tokio::select! {
                joined = reading => joined.map_err(|e| DrillError::Internal(format!("starting the sandbox: {e}")))??,
                signal = wait(interrupt) => return Err(DrillError::Interrupted { signal }),
            }
        };
        self.report.backup = prepared.info;
        self.report.verification.extend(prepared.checks);
        self.report.phases.read = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let target = self.server(&options.target).await?;
        self.report.phases.server = t.elapsed().as_secs_f64();
        check_interrupt(interrupt)?;

        let t = Instant::now();
        (self.notify)(RESTORING);
        let restored = restore(prepared.backup, &target, options, progress.clone(), interrupt).await;
        self.report.phases.restore = t.elapsed().as_secs_f64();
        let restored = restored?;
        self.record_restore(&restored);

        let t = Instant::now();
        (self.notify)("checking objects and queries");
        let checked = tokio::select! {
            checked = self.check(&target, &prepared.objects, queries.as_ref()) => checked,
            // A user's query may run long: a signal stops it too.
            signal = wait(interrupt) => Err(DrillError::Interrupted { signal }),
        };
        self.report.phases.checks = t.elapsed().as_secs_f64();
        checked
    }

    /// Every expected object present, then the user's queries.
    async fn check(
        &mut self,
        target: &ConnectOptions,
        objects: &ExpectedObjects,
        queries: Option<&VerifyQueries>,
    ) -> Result<()> {
        let mut conn = floodgate_conn::connect(target, &[]).await?;
        let present = checks::objects_present(&mut conn, objects).await;
        self.record(present.as_ref().map(Clone::clone).map_err(|e| Check::new("objects", false, e.to_string())));
        present?;
        if let Some(q) = queries {
            q.run(&mut conn, &mut self.report.verification).await?;
        }
        let _ = conn.disconnect().await;
        Ok(())
    }

    fn record(&mut self, check: std::result::Result<Check, Check>) {
        self.report.verification.push(match check {
            Ok(c) | Err(c) => c,
        });
    }

    /// Starts the sandbox, or connects to the given server and refuses one holding user data.
    async fn server(&mut self, target: &Target) -> Result<ConnectOptions> {
        let conn = match target {
            Target::Sandbox { options, .. } => {
                let options = options.clone();
                // Not cancelled by an interrupt: a half-started sandbox is only cleaned up by
                // its own Drop, so wait for it and let teardown remove it.
                let sandbox = tokio::task::spawn_blocking(move || Sandbox::start(&options))
                    .await
                    .map_err(|e| DrillError::Internal(format!("starting the sandbox: {e}")))??;
                let conn = ConnectOptions {
                    socket: Some(sandbox.socket().to_path_buf()),
                    user: Some(sandbox.user().to_string()),
                    password: sandbox.password().map(str::to_string),
                    ..Default::default()
                };
                self.report.server.sandbox_dir = Some(sandbox.dir().display().to_string());
                (self.notify)(&format!("sandbox started in {} ({})", sandbox.dir().display(), sandbox.version()));
                self.sandbox = Some(sandbox);
                conn
            }
            Target::Server { conn, .. } => conn.clone(),
        };
        self.report.server.address = Some(conn.describe());
        let mut c = floodgate_conn::connect(&conn, &[]).await?;
        let info = floodgate_conn::server::ServerInfo::read(&mut c).await?;
        self.report.server.version = Some(info.version).filter(|v| !v.is_empty());
        if let Target::Server { overwrite, .. } = target {
            let user: Vec<String> = user_databases(&mut c, &floodgate_conn::CheckpointSchema::default())
                .await?
                .into_iter()
                .filter(|d| d.holds_data())
                .map(|d| d.name)
                .collect();
            if !user.is_empty() && !overwrite {
                return Err(DrillError::Refused(format!(
                    "{} holds user data (databases {}); a drill restores into a throwaway server. Nothing was \
                     changed. Drop them, drill into a sandbox (no connection flags), or pass --overwrite.",
                    conn.describe(),
                    user.join(", ")
                )));
            }
        }
        let _ = c.disconnect().await;
        Ok(conn)
    }

    fn record_restore(&mut self, restored: &RestoreReport) {
        let native = self.report.backup.format.as_deref() == Some(floodgate_format::Format::Native.name());
        let chunks: usize = restored.tables.iter().map(|t| t.chunks).sum();
        if native {
            self.report.verification.push(Check::new(
                "chunk_sha256",
                true,
                format!("{chunks} chunk(s) hashed to the manifest's SHA-256 before their rows committed"),
            ));
        } else {
            let inserts: u64 = restored.tables.iter().map(|t| t.insert_statements).sum();
            let loads: u64 = restored.tables.iter().map(|t| t.load_data_statements).sum();
            self.report.verification.push(Check::new(
                "statements",
                true,
                format!(
                    "every statement applied with no error and no data-changing warning ({chunks} chunk(s), \
                     {loads} LOAD DATA, {inserts} INSERT)"
                ),
            ));
        }
        if self.report.backup.format.as_deref()
            == Some(floodgate_format::Format::MysqlShell { version: String::new() }.name())
        {
            self.report.verification.push(Check::new(
                "chunk_sizes",
                true,
                format!("{chunks} data file(s) decompressed to exactly the size their .idx and @.done.json record"),
            ));
            let checksummed = restored.verification.iter().filter(|l| l.contains("match the dump's checksums")).count();
            if checksummed > 0 {
                self.report.verification.push(Check::new(
                    "checksums",
                    true,
                    format!("{checksummed} table(s): every chunk's checksum recomputed on the target matches @.checksums.json"),
                ));
            }
        }
        let recorded = restored.tables.iter().filter(|t| t.expected_rows.is_some()).count();
        self.report.verification.push(Check::new(
            "row_counts",
            true,
            format!(
                "{} table(s) counted on the target: {recorded} against the backup's recorded count, the rest \
                 against the rows loaded",
                restored.tables.len()
            ),
        ));
        if native {
            let digests = restored.verification.iter().filter(|l| l.contains("content digest matches")).count();
            self.report.verification.push(Check::new(
                "content_digest",
                true,
                format!("{digests} table(s): the digest recomputed on the target matches the manifest"),
            ));
        }
        self.report.rows = restored.rows;
        self.report.bytes = restored.bytes;
        self.report.restore_seconds = Some(restored.seconds);
        self.report.restore = Some(restored.clone());
    }

    /// Removes the sandbox (or keeps it); off the async threads, since the guardian is
    /// waited for.
    async fn teardown(&mut self, keep: bool) -> Result<Option<KeptSandbox>> {
        let Some(sandbox) = self.sandbox.take() else { return Ok(None) };
        let joined = tokio::task::spawn_blocking(move || if keep { sandbox.keep().map(Some) } else { Ok(None) })
            .await
            .map_err(|e| DrillError::Internal(format!("starting the sandbox: {e}")))?;
        Ok(joined?)
    }
}

/// The restore, with the same entry points `floodgate restore` uses, bounded by the timeout
/// and the interrupt. Dropping the restore future aborts its tasks and their connections.
async fn restore(
    backup: Backup,
    target: &ConnectOptions,
    options: &DrillOptions,
    progress: Arc<Progress>,
    interrupt: &mut Interrupt,
) -> Result<RestoreReport> {
    let overwrite = matches!(options.target, Target::Server { overwrite: true, .. });
    let verify = match &backup {
        Backup::Directory(plan) if plan.format == floodgate_format::Format::Native => VerifyMode::Digest,
        _ => VerifyMode::Counts,
    };
    let restore_options = RestoreOptions {
        threads: options.threads,
        overwrite,
        verify,
        memory_budget: options.memory_budget,
        ..RestoreOptions::default()
    };
    let target = target.clone();
    let watched = progress.clone();
    let selection = floodgate_format::Selection::new(options.into.clone(), Vec::new(), Vec::new());
    let work = floodgate_loader::restore(backup, selection, target, restore_options, progress);
    let deadline = async {
        match options.timeout {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        done = work => Ok(done?),
        () = deadline => Err(DrillError::Timeout {
            limit: options.timeout_text.clone(),
            phase: watched.phase().name().to_string(),
            done: Progress::get(&watched.bytes_done),
            total: Progress::get(&watched.bytes_total),
        }),
        signal = wait(interrupt) => Err(DrillError::Interrupted { signal }),
    }
}

/// Resolves when the interrupt fires (never, if its sender is gone without firing).
async fn wait(interrupt: &mut Interrupt) -> String {
    loop {
        if let Some(s) = interrupt.borrow_and_update().clone() {
            return s;
        }
        if interrupt.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn check_interrupt(interrupt: &Interrupt) -> Result<()> {
    match interrupt.borrow().clone() {
        Some(signal) => Err(DrillError::Interrupted { signal }),
        None => Ok(()),
    }
}
