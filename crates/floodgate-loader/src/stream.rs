//! Restores a mysqldump / mariadb-dump stream over many connections.
//!
//! One task, the sequencer, reads the classified statements in order. Schema and session
//! statements run at once on its own connection, so every CREATE TABLE exists before its
//! rows load. Each table's INSERTs are cut into chunks of consecutive statements (about
//! [`CHUNK_BYTES`] of SQL) and handed to N loader connections through a queue that gives a
//! free loader the table with the most bytes waiting per loader on it (`stream_queue.rs`),
//! so several tables load at once as in a directory restore. From a plain file a chunk is
//! only its byte range, read again when it loads: the sequencer runs ahead through the file
//! at the splitter's speed and the loaders see many tables. From a compressed stream or
//! standard input a chunk carries its statements, and the queue holds a few chunks. A loader
//! converts a chunk's INSERTs to LOAD DATA rows on the pipeline pool (statements that do not
//! convert exactly run as the INSERTs they were) and commits the chunk as one transaction.
//! A table's deferred indexes are built when its last chunk commits; triggers, routines,
//! events and views are replayed after all data, with the dump's session statements around
//! them.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use floodgate_format::ddl::{self, ReferencedColumns};
use floodgate_format::ident::{qualified, quote};
use floodgate_format::mysqldump::{Classifier, DumpSource, Item, SchemaTarget, Selection};
use floodgate_format::split::{Statement, Terminator};
use floodgate_format::sqltext;
use floodgate_pipeline::{Pipeline, PipelineConfig};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::mpsc;

use crate::checkpoint::{self, step, Checkpoints};
use crate::convert::{self, encode_chunk, set_names, table_spec, Outcome, Piece, TableSpec};
use crate::error::Transient;
use crate::indexes::{Builders, IndexJob};
use crate::post::PostSteps;
use crate::report::{PhaseSeconds, RestoreReport, TableReport};
use crate::restore::{join_all, open_target, RestoreOptions, VerifyMode};
use crate::stream_ddl::{DdlContext, DdlPool, SpecReady};
use crate::stream_queue::ChunkQueue;
use crate::{resume, ConnectOptions, LoadError, Phase, Progress, Result};

/// SQL text per chunk: large enough to amortise a transaction, small enough that N loaders
/// plus the queue stay well inside the memory budget.
pub const CHUNK_BYTES: usize = 4 << 20;

/// How far the first read of a plain file may run ahead of the loads: far enough that the
/// loaders see many tables, near enough that the bytes read again are still in the page
/// cache (and that the queued ranges stay a few hundred KiB).
const READ_AHEAD_BYTES: u64 = 2 << 30;

/// A piece of a table's rows: consecutive INSERT statements, loaded in one transaction.
struct ChunkJob {
    /// The table's spec, once its CREATE has run on a DDL connection.
    spec: SpecReady,
    body: ChunkBody,
    /// Bytes of its statements' text.
    bytes: u64,
    /// The chunk's number within its table: the same on every read of the same stream.
    number: u64,
    /// Digest of its statements, recorded with it and compared when a resumed run reaches it.
    content: String,
}

/// Where a chunk's statements are.
enum ChunkBody {
    /// In memory: read from a compressed stream or standard input, which cannot be read again.
    Held(Vec<Statement>),
    /// Bytes `offset..offset + len` of the plain dump file, read again by the loader.
    InFile { offset: u64, len: u64 },
}

impl ChunkBody {
    /// Bytes of the file the chunk spans, counted as done when it commits (0 when held: those
    /// were counted as read).
    fn file_bytes(&self) -> u64 {
        match self {
            ChunkBody::Held(_) => 0,
            ChunkBody::InFile { len, .. } => *len,
        }
    }

    /// The chunk's statements. Bytes read again must give the statements the first read
    /// gave (`content`, their digest): anything else means the file changed under the restore.
    fn statements(self, source: &DumpSource, content: &str) -> Result<Vec<Statement>> {
        let (offset, len) = match self {
            ChunkBody::Held(statements) => return Ok(statements),
            ChunkBody::InFile { offset, len } => (offset, len),
        };
        let statements = source.read_range(offset, len)?;
        if checkpoint::content_digest(statements.iter().map(|s| &s.text[..])) != content {
            return Err(LoadError::Integrity {
                context: format!("{} bytes {offset}..{}", source.name(), offset + len),
                reason: "these bytes hold other statements than when the file was first read: it changed during \
                         the restore"
                    .into(),
            });
        }
        Ok(statements)
    }
}

/// Per-table progress of the data phase.
#[derive(Debug, Default)]
struct TableState {
    /// Chunks cut from the stream (sent to loaders or already loaded by an earlier run).
    chunks_cut: u64,
    chunks_sent: u64,
    chunks_done: u64,
    sealed: bool,
    alters: Vec<String>,
    started: Option<Instant>,
}

/// Shared between the sequencer and the loaders.
struct Shared {
    states: Mutex<Vec<TableState>>,
    reports: Arc<Mutex<Vec<TableReport>>>,
    index_tx: mpsc::UnboundedSender<IndexJob>,
    /// Session statements of the dump's header, replayed on every loader connection.
    prelude: Mutex<Vec<Vec<u8>>>,
}

impl Shared {
    /// Sends the table to the index builders when it is sealed and every chunk committed.
    /// Returns true if it did.
    fn maybe_complete(&self, table: usize) -> Result<bool> {
        let job = {
            let mut states = self.states.lock().map_err(|_| poisoned())?;
            let s = &mut states[table];
            if !(s.sealed && s.chunks_done == s.chunks_sent) {
                return Ok(false);
            }
            let (db, name) = self
                .reports
                .lock()
                .map(|r| (r[table].database.clone(), r[table].table.clone()))
                .map_err(|_| poisoned())?;
            if let (Some(started), Ok(mut r)) = (s.started, self.reports.lock()) {
                r[table].data_seconds = started.elapsed().as_secs_f64();
            }
            IndexJob { table, db, name, alters: std::mem::take(&mut s.alters) }
        };
        let _ = self.index_tx.send(job);
        Ok(true)
    }
}

fn poisoned() -> LoadError {
    LoadError::Refused("internal error: a worker panicked".into())
}

/// Every loader stopped: one failed, and its error is what the caller reports.
fn loaders_stopped() -> LoadError {
    LoadError::Refused("loaders stopped".into())
}

/// Restores the part of the dump `source` that `selection` picks into `target`.
pub async fn restore_dump(
    source: DumpSource,
    selection: Selection,
    target: ConnectOptions,
    options: RestoreOptions,
    progress: Arc<Progress>,
) -> Result<RestoreReport> {
    let started = Instant::now();
    let mut phases = PhaseSeconds::default();
    progress.set_phase(Phase::Checks);
    let (mut control, version, init) = open_target(&target, &options, &Default::default()).await?;
    let pipeline = Pipeline::new(PipelineConfig::for_budget(options.threads, options.memory_budget))
        .map_err(|e| LoadError::Refused(format!("cannot start the pipeline threads: {e}")))?;
    if let Some(n) = source.bytes {
        Progress::add(&progress.bytes_total, n);
    }
    let name = source.name();
    let (prefix, raw) = read_prefix(source.open_raw()?, &name)?;
    let identity = checkpoint::stream_identity(&prefix, &selection, options.stream_chunk_bytes);
    let checkpoints = Arc::new(resume::prepare(&mut control, &options, &progress, &identity).await?);
    let resumed = resume_stream(&mut control, &checkpoints, &progress, &name).await?;
    checkpoint::begin(&mut control, &identity, &name).await?;
    let mut statements = pipeline.stream_statements(raw, PathBuf::from(&name), Terminator::Delimiter, {
        let progress = progress.clone();
        Box::new(move |n| Progress::add(&progress.bytes_done, n))
    });
    phases.checks = started.elapsed().as_secs_f64();

    let (index_tx, index_rx) = mpsc::unbounded_channel();
    let reports: Arc<Mutex<Vec<TableReport>>> = Arc::default();
    let shared =
        Arc::new(Shared { states: Mutex::default(), reports: reports.clone(), index_tx, prelude: Mutex::default() });
    // A plain file's chunks are read again when they load; other streams' are held in memory.
    let in_file = source.seekable();
    let held_limit = (options.threads.max(1) * options.stream_chunk_bytes) as u64;
    let jobs = Arc::new(ChunkQueue::new(if in_file { READ_AHEAD_BYTES } else { held_limit }));
    let source = Arc::new(source);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..options.threads.max(1) {
        let loader = Loader {
            target: target.clone(),
            init: init.clone(),
            pipeline: pipeline.clone(),
            shared: shared.clone(),
            progress: progress.clone(),
            jobs: jobs.clone(),
            file: source.clone(),
            source: name.clone(),
            reconnect_wait: options.reconnect_wait,
            backup: checkpoints.backup.clone(),
        };
        set.spawn(async move { loader.run().await });
    }
    let builders = Builders {
        target: target.clone(),
        init: init.clone(),
        progress: progress.clone(),
        reports: reports.clone(),
        reconnect_wait: options.reconnect_wait,
        resuming: checkpoints.is_resume(),
        backup: checkpoints.backup.clone(),
    };
    crate::indexes::spawn(&mut set, options.threads, builders, index_rx);
    let ddl_context = DdlContext {
        target: target.clone(),
        init: init.clone(),
        source: name.clone(),
        backup: checkpoints.backup.clone(),
        reports: reports.clone(),
        reconnect_wait: options.reconnect_wait,
    };
    let ddl = DdlPool::spawn(&mut set, options.threads, &ddl_context);

    progress.set_phase(Phase::Data);
    let mut seq = Sequencer {
        control: &mut control,
        classifier: Classifier::new(selection.into.clone()),
        selection,
        options: &options,
        shared: shared.clone(),
        progress: progress.clone(),
        jobs: jobs.clone(),
        in_file,
        source: name.clone(),
        tables: HashMap::new(),
        checked: HashSet::new(),
        target_tables: HashMap::new(),
        fold_case: None,
        open_table: None,
        pending: None,
        pending_closed: false,
        post: Vec::new(),
        names: "utf8mb4".into(),
        in_header: true,
        specs: HashMap::new(),
        checkpoints: checkpoints.clone(),
        resumed,
        held: None,
        ddl,
    };
    let sequenced = match seq.start_into().await {
        Ok(()) => seq.run(&mut statements).await,
        Err(e) => Err(e),
    };
    let post = std::mem::take(&mut seq.post);
    let unmatched = seq.selection.unmatched();
    drop(seq);
    match sequenced {
        // Loaders finish what is queued, then stop.
        Ok(()) => jobs.close(),
        // The dump is bad further on: stop loading now rather than after what is queued.
        Err(_) => jobs.stop(),
    }
    drop(shared); // closes the index queue, once the loaders drop their handles
    let loaded = join_all(&mut set).await;
    // A loader's own error explains a sequencer that found the queue closed.
    loaded?;
    sequenced?;
    if !unmatched.is_empty() {
        return Err(LoadError::Refused(format!(
            "not in the dump: {} (nothing else was skipped; the rest is restored)",
            unmatched.join(", ")
        )));
    }
    phases.data = started.elapsed().as_secs_f64() - phases.checks;

    let t = Instant::now();
    progress.set_phase(Phase::Post);
    let mut post_conn = crate::retry::reconnect(&target, &init, options.reconnect_wait).await?;
    let mut steps = PostSteps { checkpoints: &checkpoints, db: "", name: "stream" };
    for (n, s) in post.iter().enumerate() {
        steps.run(&mut post_conn, n, &s.text, || format!("{name} at byte {}", s.offset)).await?;
    }
    let _ = post_conn.disconnect().await;
    phases.post = t.elapsed().as_secs_f64();

    let t = Instant::now();
    progress.set_phase(Phase::Verify);
    crate::retry::refresh(&mut control, &target, &init, options.reconnect_wait).await?;
    let tables = reports.lock().map_err(|_| poisoned())?.clone();
    let verification = match options.verify {
        VerifyMode::None => Vec::new(),
        VerifyMode::Counts | VerifyMode::Digest => crate::post::verify_counts(&mut control, &tables).await?,
    };
    phases.verify = t.elapsed().as_secs_f64();
    checkpoint::finish(&mut control, &checkpoints.backup, options.keep_checkpoints).await?;
    progress.set_phase(Phase::Done);
    let _ = control.disconnect().await;
    Ok(RestoreReport {
        resumed: checkpoints.is_resume(),
        chunks_skipped: tables.iter().map(|t| t.chunks_resumed).sum(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        source: name,
        format: "mysqldump".into(),
        target_version: version,
        threads: options.threads,
        seconds: started.elapsed().as_secs_f64(),
        phases,
        rows: tables.iter().map(|t| t.rows).sum(),
        bytes: source.bytes.unwrap_or_default(),
        views: post.iter().filter(|s| sql_words(&s.text).contains(&"VIEW".to_string())).count(),
        post_files: 0,
        trigger_files: 0,
        tables,
        verification,
    })
}

/// How many bytes of the stream (as stored) name it for the checkpoints.
const IDENTITY_PREFIX: usize = 1 << 20;

/// Reads the first bytes of a stream, for its identity, and gives back a reader of the whole
/// stream (standard input can be read only once).
fn read_prefix(mut raw: Box<dyn Read + Send>, name: &str) -> Result<(Vec<u8>, Box<dyn Read + Send>)> {
    let mut prefix = Vec::with_capacity(IDENTITY_PREFIX);
    (&mut raw)
        .take(IDENTITY_PREFIX as u64)
        .read_to_end(&mut prefix)
        .map_err(|source| floodgate_format::FormatError::Io { path: name.into(), source })?;
    let whole: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(prefix.clone()).chain(raw));
    Ok((prefix, whole))
}

/// Tables an interrupted run of this restore created (and that still exist), after checking
/// they hold what it loaded. Non-transactional ones it left partial are emptied (and their
/// checkpoints forgotten): they load again whole.
async fn resume_stream(
    control: &mut Conn,
    checkpoints: &Checkpoints,
    progress: &Progress,
    source: &str,
) -> Result<HashMap<(String, String), bool>> {
    let mut resumed = HashMap::new();
    if !checkpoints.is_resume() {
        return Ok(resumed);
    }
    let recorded: Vec<(String, String)> =
        checkpoints.steps_of(step::TABLE).map(|(d, t)| (d.to_string(), t.to_string())).collect();
    resume::check_tables(control, checkpoints, &recorded).await?;
    let on_target = resume::tables_on_target(control, &recorded).await?;
    for (key, state) in on_target {
        let (db, table) = &key;
        // Its chunk checkpoints count only once the whole table is recorded as loaded.
        let reload = !state.transactional && !checkpoints.has(step::LOADED, db, table);
        if reload {
            resume::empty_partial_table(control, checkpoints, progress, (db.as_str(), table.as_str())).await?;
        }
        resumed.insert(key, reload);
    }
    resume::announce(progress, checkpoints, source, None);
    Ok(resumed)
}

fn sql_words(text: &[u8]) -> Vec<String> {
    floodgate_format::mysqldump::object_words(text)
}

struct Sequencer<'a> {
    control: &'a mut Conn,
    classifier: Classifier,
    selection: Selection,
    options: &'a RestoreOptions,
    shared: Arc<Shared>,
    progress: Arc<Progress>,
    jobs: Arc<ChunkQueue<ChunkJob>>,
    /// Chunks are byte ranges of the file, read again by the loaders.
    in_file: bool,
    source: String,
    /// (db, table) -> index in reports/states
    tables: HashMap<(String, String), usize>,
    /// Tables already checked against existing data.
    checked: HashSet<(String, String)>,
    /// The tables each database the dump names had on the target when first named: one
    /// query per database rather than one per table (a CREATE holds the data dictionary
    /// while it syncs, and a query per table would queue behind each).
    target_tables: HashMap<String, HashSet<String>>,
    /// The target compares table names without case (`lower_case_table_names` set): the
    /// names above are kept lower-cased and looked up so. Read with the first database.
    fold_case: Option<bool>,
    /// The table whose rows are arriving now.
    open_table: Option<usize>,
    /// Statements of the chunk being filled.
    pending: Option<(usize, Vec<Statement>, u64)>,
    /// The pending chunk takes no more statements: another statement came after its last.
    /// It is sent when the next rows arrive or the table ends, which says whether it was
    /// the table's last.
    pending_closed: bool,
    /// Statements replayed after all data.
    post: Vec<Statement>,
    names: String,
    /// Still reading the dump's header (session statements before any schema or data).
    in_header: bool,
    specs: HashMap<usize, SpecReady>,
    checkpoints: Arc<Checkpoints>,
    /// Tables an interrupted run created, mapped to whether they load again whole.
    resumed: HashMap<(String, String), bool>,
    /// The open table's CREATE, not run yet (see `HeldCreate`).
    held: Option<HeldCreate>,
    /// Runs the CREATEs on other connections.
    ddl: DdlPool,
}

/// A table's CREATE waiting for its rows. Whether its secondary indexes are worth deferring
/// depends on how much data it has (`schema::DEFER_MIN_BYTES`, as for directory backups),
/// and a dump says that only after the CREATE: the CREATE runs at the table's first chunk,
/// or at the end of its rows, with every session statement that came after it kept in
/// order behind it. A small table then costs one CREATE instead of a CREATE and an ALTER.
struct HeldCreate {
    idx: usize,
    db: String,
    table: String,
    create: Statement,
    digest: String,
    /// Session statements (`SET ...`) that followed the CREATE in the dump.
    after: Vec<Statement>,
}

impl Sequencer<'_> {
    /// With `--into`, a dump made without `--databases` names no database: create and select
    /// the named one first, here and for the post-data replay.
    async fn start_into(&mut self) -> Result<()> {
        let Some(db) = self.classifier.current_db().map(str::to_string) else { return Ok(()) };
        let use_db = Statement { offset: 0, text: format!("USE {}", quote(&db)).into_bytes(), terminated: true };
        self.control
            .query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", quote(&db)))
            .await
            .map_err(LoadError::sql(format!("creating database {}", quote(&db))))?;
        self.exec_control(&use_db).await?;
        self.ddl.log_session(&use_db);
        self.post.push(use_db);
        Ok(())
    }

    async fn run(&mut self, statements: &mut floodgate_pipeline::StatementStream) -> Result<()> {
        while let Some(batch) = statements.recv().await {
            let batch = batch.map_err(|source| LoadError::Chunk { table: "(dump)".into(), source })?;
            for s in batch {
                if !s.terminated {
                    return Err(LoadError::Integrity {
                        context: format!("{} at byte {}", self.source, s.offset),
                        reason: "the dump ends in the middle of a statement: it is truncated".into(),
                    });
                }
                let item = self.classifier.classify(s, &self.source)?;
                self.handle(item).await?;
            }
        }
        self.seal_open().await?;
        // A failed CREATE is reported here rather than by whichever loader waits for it.
        self.ddl.barrier().await
    }

    /// The first statement seen about a table (mysqldump's `DROP TABLE IF EXISTS` and the
    /// CREATE right after it): it depends on no table another connection is creating.
    fn names_new_table(&self, s: &Statement) -> bool {
        let Some(SchemaTarget::Table(db, table)) = floodgate_format::mysqldump::schema_target(&s.text) else {
            return false;
        };
        let head = sqltext::head_words(&s.text, 1).first().cloned().unwrap_or_default();
        let db = if db.is_empty() { self.classifier.current_db().unwrap_or_default().to_string() } else { db };
        matches!(head.as_str(), "DROP" | "CREATE") && !self.tables.contains_key(&(db, table))
    }

    /// Whether a schema statement that is not a new table's may need the rows queued so far:
    /// anything but creating or dropping a database none of them belong to.
    fn reads_loaded_rows(&self, s: &Statement) -> bool {
        match floodgate_format::mysqldump::schema_target(&s.text) {
            Some(SchemaTarget::Database(db)) => self.tables.keys().any(|(d, _)| *d == db),
            _ => true,
        }
    }

    /// False for statements `--database`/`--exclude` leave out. Session statements always
    /// run; schema, rows and post-data statements follow the database they belong to.
    fn selected(&mut self, item: &Item) -> bool {
        let current = self.classifier.current_db().unwrap_or_default().to_string();
        match item {
            // `USE` of a database left out would fail: it was never created.
            Item::Context(s) => {
                floodgate_format::mysqldump::use_target(&s.text).is_none_or(|db| self.selection.wants_db(&db))
            }
            Item::Skip(_) => true,
            Item::Rows { db, table, .. } => self.selection.wants_table(db, table),
            Item::Schema(s) => match floodgate_format::mysqldump::schema_target(&s.text) {
                Some(SchemaTarget::Table(db, t)) => {
                    let db = if db.is_empty() { current } else { db };
                    self.selection.wants_table(&db, &t)
                }
                Some(SchemaTarget::Database(db)) => self.selection.wants_db(&db),
                None => self.selection.wants_db(&current),
            },
            Item::Post(s) => self.selection.wants_db(&current) && !self.names_excluded_table(&current, &s.text),
        }
    }

    /// A trigger on an excluded table (`... ON `t` ...`) cannot be created without it.
    fn names_excluded_table(&self, db: &str, text: &[u8]) -> bool {
        let words = sqltext::head_words(text, 3);
        if !words.iter().any(|w| w == "TRIGGER") {
            return false;
        }
        let text = String::from_utf8_lossy(text);
        self.selection.exclude.iter().any(|e| {
            e.split_once('.').is_some_and(|(d, t)| {
                d == db && (text.contains(&format!(" ON {}", quote(t))) || text.contains(&format!(" ON {t} ")))
            })
        })
    }

    async fn handle(&mut self, item: Item) -> Result<()> {
        let selected = self.selected(&item);
        if !(selected && matches!(item, Item::Rows { .. })) {
            // A chunk is a run of consecutive INSERTs: in a file, one byte range of them.
            self.pending_closed = true;
        }
        if !selected {
            return Ok(());
        }
        match item {
            Item::Context(s) => {
                if let Some(cs) = set_names(&s.text) {
                    self.names = cs;
                }
                match &mut self.held {
                    Some(held) => held.after.push(s.clone()),
                    None => {
                        self.exec_control(&s).await?;
                        self.ddl.log_session(&s);
                    }
                }
                if self.in_header {
                    if let Ok(mut p) = self.shared.prelude.lock() {
                        p.push(s.text.clone());
                    }
                }
                self.post.push(s);
            }
            Item::Skip(_) => {}
            Item::Post(s) => {
                self.in_header = false;
                self.seal_open().await?;
                self.post.push(s);
            }
            Item::Schema(s) => {
                self.in_header = false;
                self.seal_open().await?;
                if !self.names_new_table(&s) {
                    // It may depend on a table being created elsewhere (ALTER, DROP DATABASE...).
                    self.ddl.barrier().await?;
                    if self.reads_loaded_rows(&s) {
                        // Or on rows still queued (an UPDATE, an ALTER of a loaded table).
                        self.jobs.drained().await.map_err(|_| loaders_stopped())?;
                    }
                }
                self.schema(s).await?;
            }
            Item::Rows { db, table, statement } => {
                self.in_header = false;
                let idx = self.table_index(&db, &table);
                if self.open_table != Some(idx) {
                    self.seal_open().await?;
                    let sealed = self.shared.states.lock().map_err(|_| poisoned())?[idx].sealed;
                    if sealed {
                        return Err(LoadError::Refused(format!(
                            "{} at byte {}: more rows for {} after its data ended; floodgate loads each table's rows as one run",
                            self.source,
                            statement.offset,
                            qualified(&db, &table)
                        )));
                    }
                    self.open_table = Some(idx);
                }
                self.add_rows(idx, statement).await?;
            }
        }
        Ok(())
    }

    async fn exec_control(&mut self, s: &Statement) -> Result<()> {
        self.control
            .query_drop(&s.text[..])
            .await
            .map_err(LoadError::sql(format!("{} at byte {}", self.source, s.offset)))
    }

    fn table_index(&mut self, db: &str, table: &str) -> usize {
        let key = (db.to_string(), table.to_string());
        if let Some(&i) = self.tables.get(&key) {
            return i;
        }
        let i = self.tables.len();
        self.tables.insert(key, i);
        if let Ok(mut r) = self.shared.reports.lock() {
            r.push(TableReport { database: db.into(), table: table.into(), ..Default::default() });
        }
        if let Ok(mut s) = self.shared.states.lock() {
            s.push(TableState::default());
        }
        Progress::add(&self.progress.tables_total, 1);
        i
    }

    /// Schema statements: refuse to replace existing data, defer indexes, run in order. The
    /// DDL of a table an interrupted run created is skipped (after checking it is the same).
    async fn schema(&mut self, mut s: Statement) -> Result<()> {
        let target = floodgate_format::mysqldump::schema_target(&s.text);
        let current = self.classifier.current_db().unwrap_or_default().to_string();
        let head = sqltext::head_words(&s.text, 1).first().cloned().unwrap_or_default();
        match &target {
            Some(SchemaTarget::Table(db, table)) => {
                let db = if db.is_empty() { current.clone() } else { db.clone() };
                let resumed = self.resumed.contains_key(&(db.clone(), table.clone()));
                let absent = !resumed && !self.guard_table(&db, table, s.offset).await?;
                if absent && head == "DROP" && sqltext::head_words(&s.text, 5).iter().any(|w| w == "EXISTS") {
                    // mysqldump's DROP TABLE IF EXISTS of a table the target does not have:
                    // nothing to drop, and the server's look for its files costs milliseconds.
                    return Ok(());
                }
                if head == "CREATE" {
                    let idx = self.table_index(&db, table);
                    let digest = checkpoint::content_digest([&s.text[..]]);
                    let t = Instant::now();
                    self.open_table = Some(idx);
                    if !resumed {
                        self.held =
                            Some(HeldCreate { idx, db, table: table.clone(), create: s, digest, after: Vec::new() });
                        return Ok(());
                    }
                    self.same_create(&db, table, &digest, s.offset)?;
                    if self.options.defer_indexes {
                        self.defer_indexes(idx, &db, table, &mut s);
                    }
                    if self.checkpoints.has(step::INDEXES, &db, table) {
                        if let Ok(mut st) = self.shared.states.lock() {
                            st[idx].alters.clear();
                        }
                    }
                    if let Ok(mut r) = self.shared.reports.lock() {
                        r[idx].schema_seconds += t.elapsed().as_secs_f64();
                    }
                    return Ok(());
                }
                if resumed {
                    return Ok(()); // its DROP TABLE IF EXISTS would drop what was loaded
                }
            }
            Some(SchemaTarget::Database(db)) => {
                if db == checkpoint::SCHEMA {
                    crate::restore::refuse_own_schema(std::iter::once(db.as_str()))?;
                }
                if head == "DROP" && self.resumed.keys().any(|(d, _)| d == db) {
                    return Ok(()); // it holds tables an interrupted run loaded
                }
                self.guard_database(db, &s).await?;
                if head == "CREATE" && !self.database_exists(db).await? {
                    checkpoint::record_step(self.control, &self.checkpoints.backup, (step::DATABASE, db, ""), None)
                        .await?;
                }
            }
            None => {}
        }
        self.exec_control(&s).await
    }

    /// Runs the held CREATE (and the session statements behind it). `small` says the table's
    /// rows all fit in its first chunk, under `DEFER_MIN_BYTES`: it keeps its indexes.
    async fn release_held(&mut self, small: bool) -> Result<()> {
        let Some(mut held) = self.held.take() else { return Ok(()) };
        if self.options.defer_indexes && !small {
            self.defer_indexes(held.idx, &held.db, &held.table, &mut held.create);
        }
        let names = self.names.clone();
        let ready = self.ddl.create((held.idx, &held.db, &held.table), held.create, held.digest, &names).await?;
        self.specs.insert(held.idx, ready);
        for s in &held.after {
            self.exec_control(s).await?;
            self.ddl.log_session(s);
        }
        Ok(())
    }

    fn defer_indexes(&mut self, idx: usize, db: &str, table: &str, s: &mut Statement) {
        let Ok(text) = std::str::from_utf8(&s.text) else { return };
        match ddl::defer_indexes(db, table, text, &ReferencedColumns::default()) {
            Ok(d) => {
                s.text = d.create.into_bytes();
                if let Ok(mut st) = self.shared.states.lock() {
                    st[idx].alters = d.alters;
                }
                if let Ok(mut r) = self.shared.reports.lock() {
                    r[idx].deferred_indexes = d.deferred;
                }
            }
            Err(e) => tracing::warn!(table = %qualified(db, table), "indexes not deferred: {e}"),
        }
    }

    /// A resumed table's CREATE must be the one the interrupted run executed.
    fn same_create(&self, db: &str, table: &str, digest: &str, offset: u64) -> Result<()> {
        match self.checkpoints.step(step::TABLE, db, table) {
            Some(Some(recorded)) if recorded != digest => Err(LoadError::Refused(format!(
                "{} at byte {offset}: the CREATE TABLE of {} differs from the one the interrupted restore ran: this is \
                 a different dump. Resume with the original, or pass --restart to start over.",
                self.source,
                qualified(db, table)
            ))),
            _ => Ok(()),
        }
    }

    async fn database_exists(&mut self, db: &str) -> Result<bool> {
        let found: Option<String> = self
            .control
            .exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (db,))
            .await
            .map_err(LoadError::sql("reading the target's databases"))?;
        Ok(found.is_some())
    }

    /// Refuses to replace a table the target has (unless --overwrite). Returns whether it
    /// exists, as far as this run knows (true when it did not look).
    async fn guard_table(&mut self, db: &str, table: &str, offset: u64) -> Result<bool> {
        let key = qualified(db, table);
        if self.options.overwrite || !self.checked.insert((db.to_string(), table.to_string())) {
            return Ok(true);
        }
        let exists = self.table_on_target(db, table).await?;
        if let (true, Some(other)) = (exists, self.checkpoints.claimed_by_other(db, table)) {
            return Err(checkpoint::different_backup(other, &format!("{} at byte {offset}: {key}", self.source)));
        }
        if exists {
            return Err(LoadError::Refused(format!(
                "{} at byte {offset}: the target already has {key}, which this dump would replace. Nothing of it was \
                 changed. Restore into a fresh server, drop it, or pass --overwrite.",
                self.source
            )));
        }
        Ok(false)
    }

    /// Whether `db` had `table` (or a view of that name) on the target when the dump first
    /// named the database.
    async fn table_on_target(&mut self, db: &str, table: &str) -> Result<bool> {
        let fold_case = match self.fold_case {
            Some(fold) => fold,
            None => {
                let setting: Option<u64> = self
                    .control
                    .query_first("SELECT @@lower_case_table_names")
                    .await
                    .map_err(LoadError::sql("reading lower_case_table_names"))?;
                *self.fold_case.insert(setting.unwrap_or(0) != 0)
            }
        };
        let fold = |name: &str| if fold_case { name.to_lowercase() } else { name.to_string() };
        if !self.target_tables.contains_key(db) {
            let names: Vec<String> = self
                .control
                .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (db,))
                .await
                .map_err(LoadError::sql("reading the target's tables"))?;
            self.target_tables.insert(db.to_string(), names.iter().map(|n| fold(n)).collect());
        }
        Ok(self.target_tables[db].contains(&fold(table)))
    }

    async fn guard_database(&mut self, db: &str, s: &Statement) -> Result<()> {
        let is_drop = sqltext::head_words(&s.text, 1).first().map(String::as_str) == Some("DROP");
        if !is_drop || self.options.overwrite {
            return Ok(());
        }
        let tables: Option<u64> = self
            .control
            .exec_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (db,))
            .await
            .map_err(LoadError::sql("reading the target's tables"))?;
        if tables.unwrap_or(0) > 0 {
            return Err(LoadError::Refused(format!(
                "{} at byte {}: the dump drops database {}, which holds tables on the target. Pass --overwrite to allow it.",
                self.source,
                s.offset,
                quote(db)
            )));
        }
        Ok(())
    }

    async fn add_rows(&mut self, idx: usize, statement: Statement) -> Result<()> {
        let len = statement.text.len() as u64;
        match &mut self.pending {
            Some((t, statements, bytes)) if *t == idx && !self.pending_closed => {
                statements.push(statement);
                *bytes += len;
            }
            _ => {
                // More rows of the same table after a closed chunk: that one was not its last.
                let last = self.pending.as_ref().is_none_or(|p| p.0 != idx);
                self.flush(last).await?;
                self.pending = Some((idx, vec![statement], len));
                self.pending_closed = false;
            }
        }
        if self.pending.as_ref().is_some_and(|p| p.2 as usize >= self.options.stream_chunk_bytes) {
            self.flush(false).await?;
        }
        Ok(())
    }

    async fn spec(&mut self, idx: usize) -> Result<SpecReady> {
        if let Some(s) = self.specs.get(&idx) {
            return Ok(s.clone());
        }
        let (db, name) = {
            let r = self.shared.reports.lock().map_err(|_| poisoned())?;
            (r[idx].database.clone(), r[idx].table.clone())
        };
        let spec = SpecReady::known(Arc::new(table_spec(self.control, &db, &name, &self.names).await?));
        self.specs.insert(idx, spec.clone());
        Ok(spec)
    }

    /// Sends the pending chunk to the loaders; `last` says the table's rows end with it.
    async fn flush(&mut self, last: bool) -> Result<()> {
        let Some((table, statements, bytes)) = self.pending.take() else { return Ok(()) };
        if self.held.as_ref().is_some_and(|h| h.idx == table) {
            self.release_held(last && bytes < crate::schema::DEFER_MIN_BYTES).await?;
        }
        let number = {
            let mut states = self.shared.states.lock().map_err(|_| poisoned())?;
            states[table].chunks_cut += 1;
            states[table].chunks_cut - 1
        };
        let content = checkpoint::content_digest(statements.iter().map(|s| &s.text[..]));
        Progress::add(&self.progress.chunks_total, 1);
        if self.skip_loaded(table, number, &content, &statements, bytes)? {
            return Ok(());
        }
        let spec = self.spec(table).await?;
        {
            let mut states = self.shared.states.lock().map_err(|_| poisoned())?;
            states[table].chunks_sent += 1;
            states[table].started.get_or_insert_with(Instant::now);
        }
        let body = match (self.in_file, statements.first(), statements.last()) {
            (true, Some(first), Some(last)) => {
                let len = last.offset + last.text.len() as u64 - first.offset;
                // Read already, but done only once loaded.
                Progress::sub(&self.progress.bytes_done, len);
                ChunkBody::InFile { offset: first.offset, len }
            }
            _ => ChunkBody::Held(statements),
        };
        let job = ChunkJob { spec, body, bytes, number, content };
        self.jobs.push(table, bytes, job).await.map_err(|_| loaders_stopped())
    }

    /// True if an interrupted run committed this chunk (its content must be the same).
    fn skip_loaded(
        &self,
        table: usize,
        number: u64,
        content: &str,
        statements: &[Statement],
        bytes: u64,
    ) -> Result<bool> {
        let (db, name) = {
            let r = self.shared.reports.lock().map_err(|_| poisoned())?;
            (r[table].database.clone(), r[table].table.clone())
        };
        if self.resumed.get(&(db.clone(), name.clone())).copied().unwrap_or(true) {
            return Ok(false); // not resumed, or loaded again whole
        }
        let Some(done) = self.checkpoints.chunk(&db, &name, number) else { return Ok(false) };
        if done.content.as_deref() != Some(content) {
            return Err(LoadError::Refused(format!(
                "{} at byte {}: the rows of {} (chunk {number}) differ from those the interrupted restore loaded: this \
                 is a different dump. Resume with the original, or pass --restart to start over.",
                self.source,
                statements.first().map(|s| s.offset).unwrap_or_default(),
                qualified(&db, &name)
            )));
        }
        let mut r = self.shared.reports.lock().map_err(|_| poisoned())?;
        r[table].rows += done.rows;
        r[table].bytes += bytes;
        r[table].chunks += 1;
        r[table].chunks_resumed += 1;
        Progress::add(&self.progress.rows_done, done.rows);
        Progress::add(&self.progress.chunks_done, 1);
        Ok(true)
    }

    /// Ends the open table's rows: flushes its last chunk and marks it complete.
    async fn seal_open(&mut self) -> Result<()> {
        self.flush(true).await?;
        // A table without rows: nothing to defer.
        self.release_held(true).await?;
        if let Some(t) = self.open_table.take() {
            self.shared.states.lock().map_err(|_| poisoned())?[t].sealed = true;
            if self.shared.maybe_complete(t)? {
                if let Some(spec) = self.specs.get(&t).and_then(SpecReady::peek).filter(|s| !s.transactional) {
                    checkpoint::record_step(
                        self.control,
                        &self.checkpoints.backup,
                        (step::LOADED, &spec.db, &spec.name),
                        None,
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}

struct Loader {
    target: ConnectOptions,
    init: Vec<String>,
    pipeline: Pipeline,
    shared: Arc<Shared>,
    progress: Arc<Progress>,
    jobs: Arc<ChunkQueue<ChunkJob>>,
    /// The dump, for chunks read again from the file.
    file: Arc<DumpSource>,
    source: String,
    reconnect_wait: std::time::Duration,
    /// The backup's identity in the checkpoints.
    backup: String,
}

impl Loader {
    async fn run(self) -> Result<()> {
        let result = self.work().await;
        if result.is_err() {
            // Stop the other loaders and the sequencer.
            self.jobs.stop();
        }
        result
    }

    async fn work(&self) -> Result<()> {
        let mut conn: Option<Conn> = None;
        while let Some((table, job)) = self.jobs.pop().await {
            let ChunkJob { spec, body, bytes, number, content } = job;
            let file_bytes = body.file_bytes();
            let spec = spec.wait().await?;
            let table_spec = spec.clone();
            let (file, digest) = (self.file.clone(), content.clone());
            let pieces = self
                .pipeline
                .run(move || Ok::<_, LoadError>(encode_chunk(&spec, body.statements(&file, &digest)?)))
                .await
                .ok_or_else(|| LoadError::Refused("internal error: the encoder stopped".into()))??;
            let outcome = self.load_with_retries(&mut conn, (number, &content), &table_spec, pieces).await?;
            Progress::add(&self.progress.bytes_done, file_bytes);
            crate::failpoint::hit("data.chunk").await;
            let (done, total) = (Progress::get(&self.progress.bytes_done), Progress::get(&self.progress.bytes_total));
            crate::failpoint::passed("data.late", done, total).await;
            {
                let mut r = self.shared.reports.lock().map_err(|_| poisoned())?;
                r[table].rows += outcome.rows;
                r[table].bytes += bytes;
                r[table].chunks += 1;
                r[table].insert_statements += outcome.inserts;
                r[table].load_data_statements += outcome.loads;
            }
            Progress::add(&self.progress.rows_done, outcome.rows);
            Progress::add(&self.progress.chunks_done, 1);
            self.shared.states.lock().map_err(|_| poisoned())?[table].chunks_done += 1;
            let complete = self.shared.maybe_complete(table)?;
            if complete && !table_spec.transactional {
                if let Some(c) = conn.as_mut() {
                    checkpoint::record_step(c, &self.backup, (step::LOADED, &table_spec.db, &table_spec.name), None)
                        .await?;
                }
            }
            self.jobs.finish(table);
        }
        Ok(())
    }

    /// A load connection with the dump's session settings, waiting for a target that went away.
    async fn open(&self) -> Result<Conn> {
        let mut c = crate::retry::reconnect(&self.target, &self.init, self.reconnect_wait).await?;
        let prelude = self.shared.prelude.lock().map_err(|_| poisoned())?.clone();
        for s in prelude {
            c.query_drop(&s[..]).await.map_err(LoadError::sql(format!("{}: session setup", self.source)))?;
        }
        Ok(c)
    }

    /// Loads a chunk, retrying transient failures. After a lost connection the chunk's
    /// checkpoint says whether its commit went through before the connection did.
    async fn load_with_retries(
        &self,
        slot: &mut Option<Conn>,
        (number, content): (u64, &str),
        spec: &TableSpec,
        pieces: Vec<Piece>,
    ) -> Result<Outcome> {
        let what = format!("{} chunk {number}", qualified(&spec.db, &spec.name));
        let mut attempt = 0;
        loop {
            let conn = match slot {
                Some(conn) => conn,
                None => slot.insert(self.open().await?),
            };
            let error = match self.load(conn, (number, content), spec, pieces.clone()).await {
                Ok(outcome) => return Ok(outcome),
                Err(e) => e,
            };
            match crate::retry::before_retry(error, attempt, &what).await? {
                Transient::Retry => {
                    let _ = conn.query_drop("ROLLBACK").await;
                }
                Transient::Reconnect => {
                    let conn = slot.insert(self.open().await?);
                    if let Some(rows) = checkpoint::committed(conn, &self.backup, &spec.db, &spec.name, number).await? {
                        return Ok(Outcome { rows, inserts: 0, loads: 0 });
                    }
                }
            }
            attempt += 1;
        }
    }

    /// Loads chunk `number` (whose statements hash to `content`) in one transaction.
    async fn load(
        &self,
        conn: &mut Conn,
        (number, content): (u64, &str),
        spec: &TableSpec,
        pieces: Vec<Piece>,
    ) -> Result<Outcome> {
        let name = qualified(&spec.db, &spec.name);
        // Fallback INSERTs name their table without its database, as the dump does.
        conn.query_drop(format!("USE {}; START TRANSACTION", quote(&spec.db)))
            .await
            .map_err(LoadError::sql(format!("{name}: starting a transaction")))?;
        let mut outcome = Outcome::default();
        convert::run_pieces(conn, spec, pieces, &self.source, &mut outcome).await?;
        crate::failpoint::hit("data.load").await;
        checkpoint::commit_chunk(conn, &self.backup, (&spec.db, &spec.name, number), outcome.rows, Some(content))
            .await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk read again from the file must hold the statements the first read found:
    /// a file changed or cut in between is an integrity error naming the bytes.
    #[test]
    fn a_chunk_read_again_must_match_its_first_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.sql");
        let text =
            "SET NAMES utf8mb4;\nINSERT INTO t VALUES (1);\n-- note\nINSERT INTO t VALUES (2)  ;\nUNLOCK TABLES;\n";
        std::fs::write(&path, text).unwrap();
        let source = floodgate_format::mysqldump::detect(&path).unwrap();
        assert!(source.seekable());
        let all = floodgate_format::split::split_all(text.as_bytes(), Terminator::Delimiter).unwrap();
        let rows = &all[1..3];
        let content = checkpoint::content_digest(rows.iter().map(|s| &s.text[..]));
        let (offset, len) = (rows[0].offset, rows[1].offset + rows[1].text.len() as u64 - rows[0].offset);
        let again = ChunkBody::InFile { offset, len }.statements(&source, &content).unwrap();
        assert_eq!(
            again.iter().map(|s| (&s.text, s.offset)).collect::<Vec<_>>(),
            rows.iter().map(|s| (&s.text, s.offset)).collect::<Vec<_>>()
        );

        std::fs::write(&path, text.replace("(2)", "(3)")).unwrap();
        let err = ChunkBody::InFile { offset, len }.statements(&source, &content).unwrap_err();
        assert_eq!(err.exit_code(), 3, "{err}");
        assert!(err.to_string().contains(&format!("dump.sql bytes {offset}..{}", offset + len)), "{err}");

        std::fs::write(&path, &text[..offset as usize + 10]).unwrap();
        let err = ChunkBody::InFile { offset, len }.statements(&source, &content).unwrap_err();
        assert_eq!(err.exit_code(), 3, "{err}");
        assert!(err.to_string().contains("shorter than when it was first read"), "{err}");
    }
}
