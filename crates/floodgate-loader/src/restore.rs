//! The restore, phase by phase.

use std::sync::Arc;
use std::time::Instant;

use floodgate_format::RestorePlan;
use floodgate_pipeline::{Pipeline, PipelineConfig};
use mysql_async::prelude::Queryable;

use crate::checkpoint::{self, Checkpoints};
use crate::report::{PhaseSeconds, RestoreReport};
use crate::{connect, post, resume, schema, ConnectOptions, LoadError, Phase, Progress, Result};

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
    /// Loader connections.
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
    /// (see [`crate::data::CONVERT_MIN_BYTES`]).
    pub convert_min_bytes: u64,
    /// Require an interrupted restore to continue; refuse to start a fresh one.
    pub resume: bool,
    /// Discard an unfinished restore's checkpoints and partial tables first.
    pub restart: bool,
    /// Keep the `floodgate` checkpoint schema after a complete restore.
    pub keep_checkpoints: bool,
    /// How long to wait for a target that went away (restart, network) before giving up.
    pub reconnect_wait: std::time::Duration,
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
            convert_min_bytes: crate::data::CONVERT_MIN_BYTES,
            resume: false,
            restart: false,
            keep_checkpoints: false,
            reconnect_wait: std::time::Duration::from_secs(300),
        }
    }
}

/// What every task of a restore shares.
pub(crate) struct Ctx {
    pub plan: Arc<RestorePlan>,
    pub target: ConnectOptions,
    pub options: RestoreOptions,
    /// Statements every load connection runs first.
    pub init: Vec<String>,
    pub progress: Arc<Progress>,
    pub pipeline: Pipeline,
    /// What earlier runs of this restore did.
    pub checkpoints: Arc<Checkpoints>,
}

impl Ctx {
    /// A new load connection, waiting for a target that went away.
    pub async fn reconnect(&self) -> Result<mysql_async::Conn> {
        crate::retry::reconnect(&self.target, &self.init, self.options.reconnect_wait).await
    }
}

/// sql_mode for dumps that do not record one: what mysqldump and myloader use, so zero in an
/// AUTO_INCREMENT column stays zero and zero dates load.
const DEFAULT_SQL_MODE: &str = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION";

fn session_init(
    session: &floodgate_format::SessionSettings,
    options: &RestoreOptions,
    server_version: &str,
) -> Vec<String> {
    let mut init = vec!["SET NAMES utf8mb4".to_string()];
    if !options.binlog {
        init.push("SET SESSION sql_log_bin = 0".into());
    }
    // unique_checks stays on (DESIGN.md says off; see ARCHITECTURE.md): off, a transaction
    // loading 50 KB blob rows into an empty table cost MariaDB twice the CPU, and it gained
    // nothing on sysbench's rows.
    init.push("SET SESSION foreign_key_checks = 0".into());
    let mut mode = session.sql_mode.clone().unwrap_or_else(|| DEFAULT_SQL_MODE.into());
    if is_mysql8(server_version) {
        // MySQL 8.0 removed NO_AUTO_CREATE_USER; dumps from 5.7 and MariaDB still carry it.
        mode = mode.split(',').filter(|m| !m.eq_ignore_ascii_case("NO_AUTO_CREATE_USER")).collect::<Vec<_>>().join(",");
    }
    init.push(format!("SET SESSION sql_mode = '{}'", mode.replace('\'', "''")));
    let tz = session.time_zone.clone().unwrap_or_else(|| "+00:00".into());
    init.push(format!("SET SESSION time_zone = '{}'", tz.replace('\'', "''")));
    init
}

fn is_mysql8(version: &str) -> bool {
    !version.contains("MariaDB")
        && version.split('.').next().and_then(|m| m.parse::<u32>().ok()).is_some_and(|m| m >= 8)
}

/// Waits for every task; the first error aborts the others (dropping their connections
/// rolls back whatever they had in flight).
pub(crate) async fn join_all(set: &mut tokio::task::JoinSet<Result<()>>) -> Result<()> {
    while let Some(joined) = set.join_next().await {
        let outcome = joined.unwrap_or_else(|e| Err(LoadError::Refused(format!("internal error: a task failed: {e}"))));
        if let Err(e) = outcome {
            set.abort_all();
            while set.join_next().await.is_some() {}
            return Err(e);
        }
    }
    Ok(())
}

/// Restores `plan` into the server `target` describes.
pub async fn restore(
    plan: RestorePlan,
    target: ConnectOptions,
    options: RestoreOptions,
    progress: Arc<Progress>,
) -> Result<RestoreReport> {
    let started = Instant::now();
    let mut phases = PhaseSeconds::default();
    progress.set_phase(Phase::Checks);
    let table_count = plan.tables().count() as u64;
    Progress::add(&progress.tables_total, table_count);
    Progress::add(&progress.bytes_total, plan.data_bytes());
    Progress::add(&progress.chunks_total, plan.tables().map(|(_, t)| t.chunks.len() as u64).sum());

    let (mut conn, version, init) = open_target(&target, &options, &plan.session).await?;
    check_local_infile(&mut conn, &plan).await?;
    refuse_own_schema(plan.databases.iter().map(|d| d.name.as_str()))?;
    let source = plan.root.display().to_string();
    let identity = checkpoint::plan_identity(&plan);
    let checkpoints = resume::prepare(&mut conn, &options, &progress, &identity).await?;
    checkpoints.refuse_other_restores(plan.tables().map(|(d, t)| (d.name.as_str(), t.name.as_str())))?;
    let existing = schema::check_target(&mut conn, &plan, options.overwrite, &checkpoints).await?;
    if checkpoints.is_resume() {
        let tables: Vec<(String, String)> = plan.tables().map(|(d, t)| (d.name.clone(), t.name.clone())).collect();
        resume::check_tables(&mut conn, &checkpoints, &tables).await?;
        let total: usize = plan.tables().map(|(_, t)| t.chunks.len()).sum();
        resume::announce(&progress, &checkpoints, &source, Some(total));
    }
    checkpoint::begin(&mut conn, &identity, &source).await?;
    phases.checks = started.elapsed().as_secs_f64();

    let pipeline = Pipeline::new(PipelineConfig::for_budget(options.threads, options.memory_budget))
        .map_err(|e| LoadError::Refused(format!("cannot start the pipeline threads: {e}")))?;
    let ctx = Arc::new(Ctx {
        plan: Arc::new(plan),
        target,
        options,
        init,
        progress: progress.clone(),
        pipeline,
        checkpoints: Arc::new(checkpoints),
    });

    let t = Instant::now();
    progress.set_phase(Phase::Schema);
    schema::create_databases(&ctx, &mut conn, &existing).await?;
    let prepared = schema::create_tables(&ctx).await?;
    phases.schema = t.elapsed().as_secs_f64();

    let t = Instant::now();
    progress.set_phase(Phase::Data);
    let tables = crate::data::load(&ctx, prepared).await?;
    phases.data = t.elapsed().as_secs_f64();

    let t = Instant::now();
    progress.set_phase(Phase::Post);
    crate::retry::refresh(&mut conn, &ctx.target, &ctx.init, ctx.options.reconnect_wait).await?;
    let applied = post::apply(&ctx, &mut conn).await?;
    phases.post = t.elapsed().as_secs_f64();

    let t = Instant::now();
    progress.set_phase(Phase::Verify);
    crate::retry::refresh(&mut conn, &ctx.target, &ctx.init, ctx.options.reconnect_wait).await?;
    let mut verification = match ctx.options.verify {
        VerifyMode::None => Vec::new(),
        VerifyMode::Counts | VerifyMode::Digest => post::verify_counts(&mut conn, &tables).await?,
    };
    if ctx.options.verify == VerifyMode::Digest {
        verification.extend(crate::digest::verify_digests(&ctx.target, &ctx.plan, ctx.options.threads).await?);
    }
    phases.verify = t.elapsed().as_secs_f64();
    checkpoint::finish(&mut conn, &ctx.checkpoints.backup, ctx.options.keep_checkpoints).await?;
    progress.set_phase(Phase::Done);
    let _ = conn.disconnect().await;

    Ok(RestoreReport {
        resumed: ctx.checkpoints.is_resume(),
        chunks_skipped: ctx.checkpoints.chunk_count(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        source: ctx.plan.root.display().to_string(),
        format: ctx.plan.format.name().into(),
        target_version: version,
        threads: ctx.options.threads,
        seconds: started.elapsed().as_secs_f64(),
        phases,
        rows: tables.iter().map(|t| t.rows).sum(),
        bytes: tables.iter().map(|t| t.bytes).sum(),
        tables,
        views: applied.views,
        post_files: applied.post_files,
        trigger_files: applied.trigger_files,
        verification,
    })
}

/// Connects, reads the server version, and runs the session setup once to surface missing
/// privileges before anything changes. Returns the connection, the version and the setup.
pub(crate) async fn open_target(
    target: &ConnectOptions,
    options: &RestoreOptions,
    session: &floodgate_format::SessionSettings,
) -> Result<(mysql_async::Conn, String, Vec<String>)> {
    let mut conn = connect(target, &[]).await?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(LoadError::sql("reading the server version"))?
        .unwrap_or_default();
    let init = session_init(session, options, &version);
    for s in &init {
        conn.query_drop(s.as_str()).await.map_err(|e| match &e {
            mysql_async::Error::Server(se) if se.code == 1227 => LoadError::Refused(format!(
                "`{s}` needs a privilege this user lacks ({}); grant it, or pass --binlog to keep binary logging",
                se.message
            )),
            _ => LoadError::Sql { context: format!("session setup `{s}`"), source: e },
        })?;
    }
    Ok((conn, version, init))
}

/// The checkpoint schema is floodgate's own: a backup that holds a database of that name
/// cannot be restored with checkpoints.
pub(crate) fn refuse_own_schema<'a>(mut databases: impl Iterator<Item = &'a str>) -> Result<()> {
    if databases.any(|d| d == checkpoint::SCHEMA) {
        return Err(LoadError::Refused(format!(
            "the backup holds a database named `{}`, the name of floodgate's checkpoint schema; \
             restore it with --exclude or --database to leave it out",
            checkpoint::SCHEMA
        )));
    }
    Ok(())
}

async fn check_local_infile(conn: &mut mysql_async::Conn, plan: &RestorePlan) -> Result<()> {
    let needs = plan.tables().any(|(_, t)| t.chunks.iter().any(|c| !c.data_files.is_empty() || c.rows.is_some()));
    if !needs {
        return Ok(());
    }
    let on: Option<u8> =
        conn.query_first("SELECT @@GLOBAL.local_infile").await.map_err(LoadError::sql("reading local_infile"))?;
    if on != Some(1) {
        return Err(LoadError::Refused(
            "this backup loads with LOAD DATA LOCAL INFILE, which the target refuses (local_infile = OFF). \
             Enable it with SET GLOBAL local_infile = 1 and run again; nothing was changed."
                .into(),
        ));
    }
    Ok(())
}
