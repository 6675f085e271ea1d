//! The streamed source: a mysqldump / mariadb-dump stream, read once, in order. The
//! [`sequencer`] decides what each statement needs; this driver carries it out: schema and
//! session statements on one control connection, CREATEs on the DDL connections, rows into
//! the chunk queue, which several loaders drain table by table. From a plain file a chunk is
//! only its byte range, read again when it loads, so the read runs far ahead of the loads and
//! the loaders see many tables; from a compressed stream or standard input a chunk carries
//! its statements, and the queue holds a few of them. Triggers, routines, events and views
//! come back as post-data, for after all data.

pub(crate) mod sequencer;

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use floodgate_format::mysqldump::{DumpSource, Ends};
use floodgate_format::split::Terminator;
use floodgate_format::Selection;
use floodgate_pipeline::Progress;
use mysql_async::prelude::Queryable;

use crate::checkpoint::{self, step};
use crate::ddl::CreateJob;
use crate::engine::{loaders_stopped, Loaded, Work};
use crate::job::{Body, DumpText, Job};
use crate::post::{PostData, Script};
use crate::report::TableReport;
use crate::{LoadError, Result};
use sequencer::{Action, ChunkCut, CutText, Rules, Sequencer};

/// SQL text per chunk: large enough to amortise a transaction, small enough that N loaders
/// plus the queue stay well inside the memory budget.
pub const CHUNK_BYTES: usize = 4 << 20;

/// How far the first read of a plain file may run ahead of the loads: far enough that the
/// loaders see many tables, near enough that the bytes read again are still in the page
/// cache (and that the queued ranges stay a few hundred KiB).
pub(crate) const READ_AHEAD_BYTES: u64 = 2 << 30;

/// How many bytes of the stream (as stored) name it for the checkpoints.
const IDENTITY_PREFIX: usize = 1 << 20;

/// A dump stream, opened.
pub(crate) struct Stream {
    pub source: Arc<DumpSource>,
    pub selection: Selection,
    /// The whole stream as stored (its first bytes were read for its identity).
    raw: Box<dyn Read + Send>,
    /// Its first bytes as stored.
    pub prefix: Vec<u8>,
}

impl Stream {
    /// Opens the stream and reads its first bytes (standard input can be read only once, so
    /// they are handed on with the rest).
    pub fn open(source: DumpSource, selection: Selection) -> Result<Stream> {
        let name = source.name();
        let mut raw = source.open_raw()?;
        let mut prefix = Vec::with_capacity(IDENTITY_PREFIX);
        (&mut raw)
            .take(IDENTITY_PREFIX as u64)
            .read_to_end(&mut prefix)
            .map_err(|source| floodgate_format::FormatError::Io { path: name.into(), source })?;
        let raw: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(prefix.clone()).chain(raw));
        Ok(Stream { source: Arc::new(source), selection, raw, prefix })
    }

    /// Bytes the loaders may have queued: a plain file's chunks are byte ranges (how far the
    /// read may run ahead), other chunks hold their statements (memory).
    pub fn queue_limit(&self, threads: usize, chunk_bytes: usize) -> u64 {
        match self.source.seekable() {
            true => READ_AHEAD_BYTES,
            false => (threads.max(1) * chunk_bytes) as u64,
        }
    }
}

/// Says which of the server's own schemas the backup held and the restore left out.
pub(crate) fn notice_server_schemas(progress: &Progress, left_out: &[String]) {
    if left_out.is_empty() {
        return;
    }
    progress.notice(format!(
        "not restored: the backup's {} (the server's own schemas: restoring `mysql` would replace the target's \
         accounts and settings). Name one with --database to restore it anyway; --users restores accounts",
        left_out.iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ")
    ));
}

/// Says what became of the dump's account statements.
fn notice_accounts(progress: &Progress, counts: sequencer::AccountCounts, name: &str) {
    if counts.left_out > 0 {
        progress.notice(format!(
            "{name} holds {} account statement(s) (CREATE USER, GRANT, ...); they are not restored (pass --users \
             to restore them)",
            counts.left_out
        ));
    }
    if counts.run + counts.protected > 0 {
        progress.notice(format!(
            "--users: {} account statement(s) run; {} left out: they name root, the server's own accounts or the \
             account floodgate restores as",
            counts.run, counts.protected
        ));
    }
}

/// Reads the stream to its end, carrying out the sequencer's decisions.
pub(crate) async fn load(work: &mut Work<'_>, stream: Stream) -> Result<Loaded> {
    let session = work.session.clone();
    let name = session.source.clone();
    session.progress.set_phase(floodgate_pipeline::Phase::Data);
    let fold: Option<u64> = work
        .control
        .query_first("SELECT @@lower_case_table_names")
        .await
        .map_err(LoadError::sql("reading lower_case_table_names"))?;
    let rules = Rules {
        invisible_pks: session.options.create_invisible_pks,
        defer_indexes: session.options.defer_indexes,
        overwrite: session.options.overwrite,
        chunk_bytes: session.options.stream_chunk_bytes,
        in_file: stream.source.seekable(),
        fold_case: fold.unwrap_or(0) != 0,
        checkpoint_schema: session.options.checkpoint_schema.clone(),
        users: session.options.users,
        me: crate::accounts::current_user(work.control).await?,
    };
    let mut seq =
        Sequencer::new(name.clone(), stream.selection, rules, session.checkpoints.clone(), work.resumed.clone());
    // A plain file's or object's trailer was checked before anything started; other streams'
    // as they end.
    let ends = (!stream.source.ends_readable_first()).then(|| Arc::new(Ends::default()));
    let mut statements = session.pipeline.stream_statements(
        stream.raw,
        PathBuf::from(&name),
        Terminator::Delimiter,
        {
            let progress = session.progress.clone();
            Box::new(move |n| Progress::add(&progress.bytes_done, n))
        },
        ends.clone(),
    );
    let mut driver = Driver { work, source: stream.source, next_table: 0 };
    driver.run(seq.start()).await?;
    while let Some(batch) = statements.recv().await {
        let batch = batch.map_err(LoadError::Stream)?;
        for s in batch {
            let item = seq.classify(s)?;
            if let Some(db) = seq.needs(&item) {
                let (exists, tables) = driver.database(&db).await?;
                seq.learn(db, exists, tables);
            }
            driver.run(seq.feed(item)?).await?;
        }
    }
    if let Some(ends) = ends.filter(|_| !session.options.allow_incomplete) {
        ends.check(&name).map_err(|e| incomplete(e, true))?;
    }
    notice_server_schemas(&session.progress, &seq.server_schemas_left_out());
    notice_accounts(&session.progress, seq.account_counts(), &name);
    let grant_rows = seq.take_grant_rows();
    let (actions, post, unmatched) = seq.finish()?;
    driver.run(actions).await?;
    // A failed CREATE is reported here rather than by whichever loader waits for it.
    driver.work.ddl.barrier().await?;
    if !grant_rows.is_empty() {
        let accounts = crate::grant_tables::restore(&session, grant_rows).await?;
        session.progress.notice(format!(
            "--users: {accounts} account(s) and role(s) restored from the `mysql` schema's privilege tables (root, \
             the server's own accounts and the account floodgate restores as left as the target has them)"
        ));
    }
    let script = Script::classified("stream".into(), String::new(), name, None, post);
    Ok(Loaded { post: PostData { scripts: vec![script], ..Default::default() }, unmatched, ..Default::default() })
}

/// The refusal of a dump without its trailer, which says how to restore it anyway.
pub(crate) fn incomplete(e: floodgate_format::FormatError, loaded: bool) -> LoadError {
    let what = match loaded {
        true => "The rows before that point are loaded and checkpointed",
        false => "Nothing was changed",
    };
    LoadError::Integrity {
        context: e.to_string(),
        reason: format!("{what}; if this file is all there is, pass --allow-incomplete to restore what it holds"),
    }
}

struct Driver<'w, 'a> {
    work: &'w mut Work<'a>,
    source: Arc<DumpSource>,
    /// The id the next registered table gets (the sequencer counts the same way).
    next_table: usize,
}

impl Driver<'_, '_> {
    async fn run(&mut self, actions: Vec<Action>) -> Result<()> {
        for action in actions {
            self.execute(action).await?;
        }
        Ok(())
    }

    async fn execute(&mut self, action: Action) -> Result<()> {
        let session = self.work.session.clone();
        let tables = &session.tables;
        match action {
            Action::Table { db, name } => {
                let id = tables.add(TableReport { database: db, table: name, ..Default::default() })?;
                if id != self.next_table {
                    return Err(LoadError::Internal(format!("table #{id} registered as #{}", self.next_table)));
                }
                self.next_table += 1;
                Progress::add(&session.progress.tables_total, 1);
            }
            Action::Exists(id) => tables.created(id, Ok(()))?,
            Action::Reloaded(id) => tables.reloaded(id)?,
            Action::Run { statement, session: logged, header } => {
                self.work
                    .control
                    .query_drop(&statement.text[..])
                    .await
                    .map_err(LoadError::sql(format!("{} at byte {}", session.source, statement.offset)))?;
                if header {
                    session.prelude.lock().map_err(|_| crate::session::poisoned())?.push(statement.text.clone());
                }
                if logged {
                    self.work.ddl.log_session(&statement);
                }
            }
            Action::Global { statement, key, digest } => {
                self.work
                    .control
                    .query_drop(&statement.text[..])
                    .await
                    .map_err(LoadError::sql(format!("{} at byte {}", session.source, statement.offset)))?;
                checkpoint::record_step(self.work.control, session.ledger(), (step::GLOBAL, "", &key), Some(&digest))
                    .await?;
            }
            Action::RecordDatabase(db) => {
                checkpoint::record_step(self.work.control, session.ledger(), (step::DATABASE, &db, ""), None).await?
            }
            Action::Notice(text) => self.work.session.progress.notice(text),
            Action::WaitCreates => self.work.ddl.barrier().await?,
            Action::WaitRows => self.work.queue.drained().await.map_err(|_| loaders_stopped())?,
            Action::Defer { table, alters, deferred } => tables.defer(table, alters, deferred)?,
            Action::IndexesBuilt(table) => tables.indexes_built(table)?,
            Action::Create { table, statement, digest } => {
                let job = CreateJob {
                    table,
                    statements: vec![statement],
                    file: session.source.clone(),
                    intent: Some(digest),
                };
                self.work.ddl.create(job).await?;
            }
            Action::Chunk(cut) => self.queue(cut).await?,
            Action::Resumed { table, rows, bytes } => {
                tables.resumed(table, rows, bytes)?;
                Progress::add(&session.progress.chunks_total, 1);
                Progress::add(&session.progress.chunks_done, 1);
                Progress::add(&session.progress.rows_done, rows);
            }
            Action::Seal(table) => tables.seal(table)?,
        }
        Ok(())
    }

    async fn queue(&mut self, cut: ChunkCut) -> Result<()> {
        let session = self.work.session.clone();
        let ChunkCut { table, number, text, bytes, content, names } = cut;
        let (text, progress_bytes) = match text {
            CutText::Held(statements) => (DumpText::Held(statements), 0),
            CutText::Range { offset, len } => {
                // Read already, but done only once loaded.
                Progress::sub(&session.progress.bytes_done, len);
                (DumpText::InFile { source: self.source.clone(), offset, len }, len)
            }
        };
        Progress::add(&session.progress.chunks_total, 1);
        session.tables.queued(table, bytes)?;
        let job = Job { number, progress_bytes, body: Body::Dump { text, content, names } };
        self.work.queue.push(table, bytes, job).await.map_err(|_| loaders_stopped())
    }

    /// What the target holds in `db`: whether it exists, and its tables and views.
    async fn database(&mut self, db: &str) -> Result<(bool, Vec<String>)> {
        let conn = &mut *self.work.control;
        let found: Option<String> = conn
            .exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (db,))
            .await
            .map_err(LoadError::sql("reading the target's databases"))?;
        let tables: Vec<String> = conn
            .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (db,))
            .await
            .map_err(LoadError::sql("reading the target's tables"))?;
        Ok((found.is_some(), tables))
    }
}
