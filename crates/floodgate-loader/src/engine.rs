//! The one restore engine. Every source goes through the same phases:
//!
//! 1. checks: connect, set up the load session, check LOAD DATA LOCAL, read the checkpoints
//!    (resume, refuse or `--restart`), refuse to replace what the target holds;
//! 2. schema and data: the source creates databases and tables (CREATEs on the DDL
//!    connections) and feeds chunks into the one queue, which the loader workers drain;
//!    each table's deferred indexes are built as soon as its last chunk commits;
//! 3. post-data: routines and events, views, triggers;
//! 4. verification: row counts, content digests where the backup has them.
//!
//! The sources differ only in how they find their work: a planned backup knows every table
//! and chunk up front ([`crate::planned`]); a dump stream finds them as it reads
//! ([`crate::stream`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use floodgate_conn::ConnectOptions;
use floodgate_format::{Backup, RestorePlan, Selection};
use floodgate_pipeline::{Phase, Pipeline, PipelineConfig, Progress};
use mysql_async::Conn;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::checkpoint;
use crate::ddl::DdlPool;
use crate::job::Job;
use crate::queue::ChunkQueue;
use crate::report::{PhaseSeconds, RestoreReport};
use crate::resume::{self, Resumed};
use crate::session::{RestoreOptions, Session, VerifyMode};
use crate::stream::Stream;
use crate::tables::Tables;
use crate::target::{self, Existing};
use crate::{post, verify, LoadError, Result};

/// What a source works with while it creates tables and queues chunks.
pub(crate) struct Work<'a> {
    pub session: Arc<Session>,
    /// The control connection: databases, and a dump's schema and session statements.
    pub control: &'a mut Conn,
    pub ddl: DdlPool,
    pub queue: Arc<ChunkQueue<Job>>,
    /// Tables an interrupted run created.
    pub resumed: &'a Resumed,
}

/// What a source leaves for after the data.
#[derive(Default)]
pub(crate) struct Loaded {
    pub post: post::PostData,
    /// Grants to apply once every object exists (`--users`), and the file they come from.
    pub grants: Vec<floodgate_format::shell::AccountBlock>,
    pub grants_file: String,
    /// `--database`/`--exclude` names a dump stream never mentioned.
    pub unmatched: Vec<String>,
    /// Seconds spent creating tables before the first row loaded (0 when they overlap).
    pub schema_seconds: f64,
}

/// Every loader stopped: one failed, and its error is what the restore reports.
pub(crate) fn loaders_stopped() -> LoadError {
    LoadError::Internal("the loaders stopped".into())
}

/// The backup, opened for this restore.
enum Source {
    Planned(Box<RestorePlan>),
    Stream(Stream),
}

impl Source {
    fn open(backup: Backup, selection: Selection, progress: &Progress) -> Result<Source> {
        Ok(match backup {
            Backup::Directory(mut plan) => {
                let left_out: Vec<String> = match selection.databases.is_empty() {
                    true => plan
                        .databases
                        .iter()
                        .filter(|d| floodgate_format::model::is_server_schema(&d.name))
                        .map(|d| d.name.clone())
                        .collect(),
                    false => Vec::new(),
                };
                plan.select(&selection)?;
                crate::stream::notice_server_schemas(progress, &left_out);
                Source::Planned(Box::new(plan))
            }
            Backup::Dump(dump) => Source::Stream(Stream::open(dump, selection)?),
        })
    }

    fn name(&self) -> String {
        match self {
            Source::Planned(plan) => plan.root.display().to_string(),
            Source::Stream(s) => s.source.name(),
        }
    }
}

/// With `--throttle`, reads its status variable once (a name the server does not have is
/// refused before any data); with `--max-replica-lag`, takes the replicas. Then samples them
/// every second on connections of their own.
async fn watch_throttle(
    session: &Arc<Session>,
    replicas: Vec<crate::throttle::Replica>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let replicas = match session.options.max_replica_lag {
        Some(_) => replicas,
        None => Vec::new(),
    };
    if session.options.throttle.is_none() && replicas.is_empty() {
        return Ok(None);
    }
    let conn = match session.options.throttle {
        Some(_) => {
            let mut conn = session.connect().await?;
            session.throttle.sample(&mut conn).await?;
            Some(conn)
        }
        None => None,
    };
    let session = session.clone();
    Ok(Some(tokio::spawn(async move { session.throttle.watch(conn, replicas, &session.progress).await })))
}

/// Restores the part of `backup` that `selection` picks into the server `target` describes.
pub async fn restore(
    backup: Backup,
    selection: Selection,
    target: ConnectOptions,
    options: RestoreOptions,
    progress: Arc<Progress>,
) -> Result<RestoreReport> {
    let started = Instant::now();
    let mut phases = PhaseSeconds::default();
    progress.set_phase(Phase::Checks);
    target::refuse_own_schema(&options.checkpoint_schema, selection.new_names().into_iter())?;
    if matches!(backup, Backup::Dump(_)) {
        // A stream's databases are known only as it is read: what can be checked now is.
        selection
            .check_renames(&selection.renames.iter().map(|(from, _)| from.as_str()).collect::<Vec<_>>())
            .map_err(|e| LoadError::Format(floodgate_format::FormatError::Selection(e)))?;
    }
    let source = Source::open(backup, selection, &progress)?;
    let name = source.name();
    let settings = match &source {
        Source::Planned(plan) => plan.session.clone(),
        Source::Stream(_) => Default::default(),
    };
    let (mut control, server, init) = target::open(&target, &options, &settings, &progress).await?;
    let identity = identify(&source, &options, &progress)?;
    let position = match &source {
        Source::Planned(plan) => plan.position.clone(),
        Source::Stream(_) => None,
    };
    // Checked now, applied at the end: a position the target cannot take refuses the restore
    // before anything changes.
    let set_gtid = match (options.set_gtid_purged, &source) {
        (false, _) => None,
        (true, Source::Planned(_)) => Some(crate::gtid::statement(position.as_ref(), &server)?),
        (true, Source::Stream(_)) => {
            return Err(LoadError::Refused(
                "--set-gtid-purged: a mysqldump file sets its own position (its SET GLOBAL gtid_slave_pos / \
                 GTID_PURGED, from --gtid/--set-gtid-purged at dump time), which floodgate runs once as written"
                    .into(),
            ))
        }
    };
    let mut options = options;
    choose_load_path(&mut control, &source, &mut options, &progress).await?;
    let checkpoints = resume::prepare(&mut control, &options, &progress, &identity).await?;
    let existing = match &source {
        Source::Planned(plan) => {
            target::refuse_own_schema(&options.checkpoint_schema, plan.databases.iter().map(|d| d.name.as_str()))?;
            checkpoints.refuse_other_restores(plan.tables().map(|(d, t)| (d.name.as_str(), t.name.as_str())))?;
            target::existing(&mut control, plan, options.overwrite, &checkpoints).await?
        }
        Source::Stream(_) => Existing::default(),
    };
    let resumed = resume::resumed_tables(&mut control, &checkpoints, &progress).await?;
    let total_chunks = match &source {
        Source::Planned(plan) => Some(plan.tables().map(|(_, t)| t.chunks.len()).sum()),
        Source::Stream(_) => None,
    };
    resume::announce(&progress, &checkpoints, &name, total_chunks);
    checkpoint::begin(&mut control, &checkpoints, &name).await?;
    phases.checks = started.elapsed().as_secs_f64();

    // Replicas apply what the target logs: statements must fit their packet limits too.
    let (replicas, replica_packet) =
        crate::throttle::Replica::connect_all(&options.replicas, options.max_replica_lag.unwrap_or(u64::MAX)).await?;
    let max_packet = server.max_allowed_packet.min(replica_packet);
    let config = PipelineConfig::for_budget(options.threads, options.memory_budget).with_max_allowed_packet(max_packet);
    let pipeline =
        Pipeline::new(config).map_err(|e| LoadError::Refused(format!("cannot start the pipeline threads: {e}")))?;
    let (complete_tx, complete_rx) = mpsc::unbounded_channel();
    let (options_throttle, options_rate) = (options.throttle.clone(), options.max_rate);
    let options_lag = options.max_replica_lag.filter(|_| !replicas.is_empty());
    let session = Arc::new(Session {
        target,
        options,
        init,
        prelude: Mutex::default(),
        progress: progress.clone(),
        pipeline,
        checkpoints: Arc::new(checkpoints),
        tables: Tables::new(complete_tx),
        source: name.clone(),
        max_packet,
        throttle: crate::throttle::Throttle::new(options_throttle, options_rate, options_lag),
    });
    let threads = session.options.threads.max(1);
    let throttle_watch = watch_throttle(&session, replicas).await?;
    let queue = Arc::new(ChunkQueue::new(match &source {
        Source::Planned(_) => u64::MAX,
        Source::Stream(s) => s.queue_limit(threads, session.options.stream_chunk_bytes),
    }));
    let mut tasks = JoinSet::new();
    let running = Arc::new(AtomicUsize::new(threads));
    for _ in 0..threads {
        let (session, queue, running) = (session.clone(), queue.clone(), running.clone());
        tasks.spawn(async move {
            let result = crate::worker::run(session.clone(), queue).await;
            // The last loader out closes the registry: no table completes after it.
            if running.fetch_sub(1, Ordering::AcqRel) == 1 {
                session.tables.close();
            }
            result
        });
    }
    crate::indexes::spawn(&mut tasks, threads, &session, complete_rx);
    let ddl = DdlPool::spawn(&mut tasks, threads, &session);

    let t = Instant::now();
    let mut work =
        Work { session: session.clone(), control: &mut control, ddl, queue: queue.clone(), resumed: &resumed };
    let (format, bytes) = describe(&source);
    let mut verify_plan = None;
    let loaded = match source {
        Source::Planned(mut plan) => {
            let loaded = crate::planned::load(&mut work, &mut plan, &existing).await;
            verify_plan = Some(plan);
            loaded
        }
        Source::Stream(stream) => crate::stream::load(&mut work, stream).await,
    };
    drop(work); // the DDL connections stop once their queue is empty
    match loaded {
        // Loaders finish what is queued, then stop.
        Ok(_) => queue.close(),
        // The backup is bad further on: stop loading now rather than after what is queued.
        Err(_) => queue.stop(),
    }
    let joined = join_all(&mut tasks).await;
    if let Some(watch) = throttle_watch {
        watch.abort();
        session.progress.set_paused(None);
    }
    // A loader's own error explains a source that found the queue stopped.
    joined?;
    let Loaded { post: post_data, unmatched, schema_seconds, grants, grants_file } = loaded?;
    if !unmatched.is_empty() {
        return Err(LoadError::Refused(format!(
            "not in the dump: {} (nothing else was skipped; the rest is restored)",
            unmatched.join(", ")
        )));
    }
    phases.schema = schema_seconds;
    phases.data = t.elapsed().as_secs_f64() - schema_seconds;

    let t = Instant::now();
    progress.set_phase(Phase::Post);
    let mut post_conn = session.connect().await?;
    let applied = post::apply(&mut post_conn, &session.checkpoints, &post_data, &session.options.definers).await?;
    if !grants.is_empty() {
        let step = floodgate_format::shell::AccountStep::Grants;
        crate::accounts::apply(&mut post_conn, &session, &grants, step, &grants_file).await?;
    }
    if let Some(statement) = &set_gtid {
        if crate::gtid::apply(&mut post_conn, &session.checkpoints, statement).await? {
            progress.notice(format!("--set-gtid-purged: {statement}"));
        }
    }
    let _ = post_conn.disconnect().await;
    phases.post = t.elapsed().as_secs_f64();

    let t = Instant::now();
    progress.set_phase(Phase::Verify);
    floodgate_conn::retry::refresh(&mut control, &session.target, &session.init, session.options.reconnect_wait)
        .await?;
    let tables = session.tables.reports()?;
    let mut verification = match session.options.verify {
        VerifyMode::None => Vec::new(),
        VerifyMode::Counts | VerifyMode::Digest => verify::verify_counts(&mut control, &tables).await?,
    };
    if let (VerifyMode::Digest, Some(plan)) = (session.options.verify, &verify_plan) {
        verification.extend(verify::verify_digests(&session.target, plan, threads).await?);
    }
    if let (VerifyMode::Counts | VerifyMode::Digest, Some(plan)) = (session.options.verify, &verify_plan) {
        verification.extend(verify::verify_checksums(&mut control, plan).await?);
    }
    phases.verify = t.elapsed().as_secs_f64();
    checkpoint::finish(&mut control, session.ledger(), session.options.keep_checkpoints).await?;
    progress.set_phase(Phase::Done);
    let _ = control.disconnect().await;

    Ok(RestoreReport {
        resumed: session.checkpoints.is_resume(),
        chunks_skipped: tables.iter().map(|t| t.chunks_resumed).sum(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        source: name,
        format,
        target_version: server.version,
        threads,
        seconds: started.elapsed().as_secs_f64(),
        phases,
        rows: tables.iter().map(|t| t.rows).sum(),
        bytes: bytes.unwrap_or_else(|| tables.iter().map(|t| t.bytes).sum()),
        tables,
        views: applied.views,
        post_files: post_data.routine_files,
        trigger_files: post_data.trigger_files,
        verification,
        position,
        gtid_set: set_gtid,
        object_gets: floodgate_storage::gets(),
        throttle: session.throttle.report(),
        notices: progress.notices_so_far(),
    })
}

/// The backup's identity for the checkpoints. A plain dump file's trailer is checked here,
/// before anything changes.
fn identify(source: &Source, options: &RestoreOptions, progress: &Progress) -> Result<String> {
    Ok(match source {
        Source::Planned(plan) => {
            Progress::add(&progress.tables_total, plan.tables().count() as u64);
            Progress::add(&progress.bytes_total, plan.data_bytes());
            Progress::add(&progress.chunks_total, plan.tables().map(|(_, t)| t.chunks.len() as u64).sum());
            checkpoint::plan_identity(plan)
        }
        Source::Stream(stream) => {
            if stream.source.ends_readable_first() && !options.allow_incomplete {
                stream.source.plain_completeness().map_err(|e| match e {
                    e @ floodgate_format::FormatError::Storage(_) => LoadError::Format(e),
                    e => crate::stream::incomplete(e, false),
                })?;
            }
            if let Some(n) = stream.source.bytes {
                Progress::add(&progress.bytes_total, n);
            }
            checkpoint::stream_identity(&stream.prefix, &stream.selection, options.stream_chunk_bytes)
        }
    })
}

/// Whether the restore sends LOAD DATA LOCAL INFILE: native rows, mydumper `.dat` files,
/// INSERT files large enough to convert, and every dump stream (its INSERTs convert).
/// LOAD DATA LOCAL where the target takes it (turning local_infile on when the account
/// may); else, or with --no-local-infile, INSERT statements for every chunk, when the backup
/// can load that way (a LOAD DATA file of mydumper or MySQL Shell cannot).
async fn choose_load_path(
    control: &mut Conn,
    source: &Source,
    options: &mut RestoreOptions,
    progress: &Progress,
) -> Result<()> {
    use crate::fast_target::LocalInfile;
    if !needs_local_infile(source, options) {
        return Ok(());
    }
    if !options.no_local_infile {
        match crate::fast_target::enable_local_infile(control, &options.checkpoint_schema).await? {
            LocalInfile::On => return Ok(()),
            LocalInfile::TurnedOn => {
                progress.notice(
                    "the target had local_infile = OFF: turned it on for this restore; it is put back afterwards"
                        .into(),
                );
                return Ok(());
            }
            LocalInfile::Forbidden(why) if inserts_can_load(source) => progress.notice(format!(
                "the target has local_infile = OFF and this account may not turn it on ({why}): loading through \
                 INSERT statements, exact but slower than LOAD DATA (ask for SET GLOBAL local_infile = 1 to go faster)"
            )),
            LocalInfile::Forbidden(why) => {
                return Err(LoadError::Refused(format!(
                    "this backup's data files load only with LOAD DATA LOCAL INFILE, which the target refuses \
                     (local_infile = OFF), and this account may not turn it on ({why}). Ask for SET GLOBAL \
                     local_infile = 1 (or the SYSTEM_VARIABLES_ADMIN privilege) and run again; nothing was changed."
                )))
            }
        }
    } else if !inserts_can_load(source) {
        return Err(LoadError::Refused(
            "--no-local-infile: this backup's data files (mydumper LOAD DATA files, MySQL Shell data files) load \
             only with LOAD DATA LOCAL INFILE; nothing was changed"
                .into(),
        ));
    }
    options.no_local_infile = true;
    options.convert_min_bytes = u64::MAX;
    Ok(())
}

/// True when every chunk can load through INSERT statements: native rows (made into
/// INSERTs) and INSERT files, not LOAD DATA files with their own dialects.
fn inserts_can_load(source: &Source) -> bool {
    match source {
        Source::Planned(plan) => {
            plan.tables().flat_map(|(_, t)| &t.chunks).all(|c| c.data_files.is_empty() && c.delimited.is_none())
        }
        Source::Stream(_) => true,
    }
}

fn needs_local_infile(source: &Source, options: &RestoreOptions) -> bool {
    match source {
        Source::Planned(plan) => plan
            .tables()
            .flat_map(|(_, t)| &t.chunks)
            .any(|c| !c.data_files.is_empty() || c.rows.is_some() || c.bytes() >= options.convert_min_bytes),
        Source::Stream(_) => true,
    }
}

/// The format's name and the backup's size, for the report.
fn describe(source: &Source) -> (String, Option<u64>) {
    match source {
        Source::Planned(plan) => (plan.format.name().into(), None),
        Source::Stream(s) => ("mysqldump".into(), s.source.bytes),
    }
}

/// Waits for every task; the first error aborts the others (dropping their connections
/// rolls back whatever they had in flight).
pub(crate) async fn join_all(set: &mut JoinSet<Result<()>>) -> Result<()> {
    while let Some(joined) = set.join_next().await {
        let outcome = joined.unwrap_or_else(|e| Err(LoadError::Internal(format!("a task failed: {e}"))));
        if let Err(e) = outcome {
            set.abort_all();
            while set.join_next().await.is_some() {}
            return Err(e);
        }
    }
    Ok(())
}
