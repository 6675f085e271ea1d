//! The replay: a reader thread groups events into transactions; the dispatcher keys them,
//! hands batches of non-conflicting transactions to N apply connections, runs barriers alone,
//! and keeps the checkpoint's low-water mark.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use floodgate_conn::ConnectOptions;
use floodgate_pipeline::{Phase, Progress};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::mpsc;

use crate::apply::{describe, sql_escape, Applier, CheckpointTables};
use crate::schedule::{self, Busy, Keys, TableKeys};
use crate::txn::{Applied, Limits, Txn, TxnReader};
use crate::{BinlogError, Result};
use floodgate_conn::CheckpointSchema;

/// The size of a binary log, on disk or in object storage (one HEAD), for progress.
fn file_size(path: &std::path::Path) -> Option<u64> {
    match path.to_str().filter(|p| floodgate_storage::is_url(p)) {
        Some(url) => floodgate_storage::Object::open(url).ok().map(|o| o.size()),
        None => std::fs::metadata(path).ok().map(|m| m.len()),
    }
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Binary logs, in order.
    pub files: Vec<PathBuf>,
    /// Start, stop and filters.
    pub limits: Limits,
    /// Apply connections.
    pub threads: usize,
    /// Keep binary logging on for the replayed changes (default: sql_log_bin=0).
    pub binlog: bool,
    /// Forget the checkpoint on the target and replay everything given.
    pub restart: bool,
    /// Most transactions per round trip.
    pub batch: usize,
    /// Read every file once before applying anything, so damage anywhere is found before
    /// the first change commits.
    pub verify_first: bool,
    /// floodgate's schema on the target, where the checkpoint lives.
    pub checkpoint_schema: CheckpointSchema,
}

/// What a replay did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplayReport {
    /// Transactions applied.
    pub transactions: u64,
    /// Of which barriers (statements, DDL), applied alone.
    pub barriers: u64,
    /// Of which locked a whole table (no usable unique key, undecodable image).
    pub table_locks: u64,
    /// Of those, how many were handed out while a transaction of the same source commit
    /// group held the same table lock (in the same batch or on another connection).
    pub group_shared_locks: u64,
    /// Round trips of row transactions.
    pub batches: u64,
    /// Binary log bytes the applied transactions span.
    pub bytes: u64,
    /// Transactions the checkpoint said were already applied.
    pub already_applied: u64,
    /// Apply connections.
    pub threads: usize,
    /// Wall time.
    pub seconds: f64,
    /// Where the next replay would continue (file, offset).
    pub resume_at: Option<(String, u64)>,
}

const WINDOW: usize = 4096;
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

struct Pending {
    seq: u64,
    txn: Arc<Txn>,
    keys: Option<Keys>,
}

enum Job {
    Rows(u64, Vec<Arc<Txn>>),
    Barrier(u64, Arc<Txn>),
}

struct Done {
    worker: usize,
    job: u64,
    result: Result<()>,
}

/// Replays `options.files` into `target`. `stop` set to true ends the replay at the next
/// transaction boundary with a checkpoint (Interrupted).
pub async fn replay(
    target: &ConnectOptions,
    options: ReplayOptions,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
) -> Result<ReplayReport> {
    let started = Instant::now();
    let mut control = floodgate_conn::connect(target, &session_init(options.binlog)).await?;
    let tables = Arc::new(CheckpointTables::new(&options.checkpoint_schema));
    prepare_checkpoint(&mut control, &options.checkpoint_schema, &tables, options.restart).await?;
    let applied = read_checkpoint(&mut control, &tables).await?;
    let unrecorded_ddl = unrecorded_ddl(&mut control, &tables, &applied).await?;
    if options.verify_first {
        let (files, limits, applied) = (options.files.clone(), options.limits.clone(), applied.clone());
        tokio::task::spawn_blocking(move || verify(files, limits, applied))
            .await
            .map_err(|e| BinlogError::Internal(format!("the verification thread failed: {e}")))??;
    }
    let total: u64 = options.files.iter().filter_map(|f| file_size(f)).sum();
    progress.bytes_total.store(total, Ordering::Relaxed);
    progress.set_phase(Phase::Data);

    let (txn_tx, txn_rx) = mpsc::channel::<Result<Txn>>(1024);
    let reader = {
        let (files, limits, applied) = (options.files.clone(), options.limits.clone(), applied);
        std::thread::spawn(move || read_all(files, limits, applied, txn_tx))
    };
    let threads = options.threads.max(1);
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let mut workers = Vec::with_capacity(threads);
    for id in 0..threads {
        let mut init = session_init(options.binlog);
        init.push(crate::apply::APPLY_CHARSET.into());
        let conn = floodgate_conn::connect(target, &init).await?;
        let (tx, rx) = mpsc::channel::<Job>(1);
        tokio::spawn(worker(id, Applier::new(conn, tables.clone(), unrecorded_ddl.clone()), rx, done_tx.clone()));
        workers.push(tx);
    }
    drop(done_tx);
    let mut d = Dispatcher {
        control,
        workers,
        idle: (0..threads).rev().collect(),
        pending: VecDeque::new(),
        keyed: 0,
        busy: Busy::default(),
        jobs: HashMap::new(),
        barrier_running: false,
        schema: HashMap::new(),
        table_numbers: HashMap::new(),
        next_seq: 0,
        next_job: 0,
        unfinished: BTreeMap::new(),
        last_finished: None,
        report: ReplayReport { threads, ..Default::default() },
        progress,
        batch: options.batch.max(1),
        tables,
    };
    let outcome = d.run(txn_rx, done_rx, &stop).await;
    let (skipped, reader_result) = reader.join().unwrap_or((0, Ok(())));
    d.report.already_applied = skipped;
    // Whatever happened, record how far the replay got (every job has ended by now).
    let saved = d.save_checkpoint().await;
    outcome?;
    reader_result?;
    saved?;
    d.report.seconds = started.elapsed().as_secs_f64();
    if stop.load(Ordering::Relaxed) {
        return Err(BinlogError::Interrupted);
    }
    Ok(d.report)
}

fn session_init(binlog: bool) -> Vec<String> {
    let mut v = vec!["SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_string()];
    if !binlog {
        v.push(floodgate_conn::server::SKIP_BINLOG.into());
    }
    v
}

fn read_all(files: Vec<PathBuf>, limits: Limits, applied: Applied, tx: mpsc::Sender<Result<Txn>>) -> (u64, Result<()>) {
    let mut reader = match TxnReader::new(files, limits, applied) {
        Ok(r) => r,
        Err(e) => return (0, Err(e)),
    };
    loop {
        match reader.next_txn() {
            Ok(Some(t)) => {
                if tx.blocking_send(Ok(t)).is_err() {
                    return (reader.skipped_applied, Ok(()));
                }
            }
            Ok(None) => return (reader.skipped_applied, Ok(())),
            Err(e) => return (reader.skipped_applied, Err(e)),
        }
    }
}

fn verify(files: Vec<PathBuf>, limits: Limits, applied: Applied) -> Result<()> {
    let mut reader = TxnReader::new(files, limits, applied)?.light();
    while reader.next_txn()?.is_some() {}
    Ok(())
}

async fn worker(id: usize, mut applier: Applier, mut rx: mpsc::Receiver<Job>, done: mpsc::UnboundedSender<Done>) {
    while let Some(job) = rx.recv().await {
        let (job_id, result) = match job {
            Job::Rows(j, txns) => (j, applier.rows(&txns).await),
            Job::Barrier(j, txn) => (j, applier.barrier(&txn).await),
        };
        if done.send(Done { worker: id, job: job_id, result }).is_err() {
            break;
        }
    }
}

/// The low-water mark (one row), and a row per server transaction applied above it: the
/// file and start of its first binlog transaction, the start of its last (rows whose last
/// transaction is below the mark are dropped) and the starts of all but the first.
async fn prepare_checkpoint(
    conn: &mut Conn,
    schema: &CheckpointSchema,
    tables: &CheckpointTables,
    restart: bool,
) -> Result<()> {
    schema.claim(conn).await?;
    let ddl = [
        format!(
            "CREATE TABLE IF NOT EXISTS {} (id TINYINT UNSIGNED NOT NULL PRIMARY KEY, \
             file VARCHAR(512) NOT NULL, pos BIGINT UNSIGNED NOT NULL, updated_at TIMESTAMP(6) NOT NULL \
             DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)) ENGINE=InnoDB",
            tables.checkpoint
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (file VARCHAR(512) NOT NULL, \
             pos BIGINT UNSIGNED NOT NULL, last_pos BIGINT UNSIGNED NOT NULL, more MEDIUMTEXT NOT NULL, \
             PRIMARY KEY (file, pos)) ENGINE=InnoDB",
            tables.batches
        ),
    ];
    for s in ddl {
        conn.query_drop(s).await.map_err(BinlogError::sql("creating the checkpoint tables"))?;
    }
    if restart {
        for table in [&tables.checkpoint, &tables.batches] {
            conn.query_drop(format!("DELETE FROM {table}"))
                .await
                .map_err(BinlogError::sql("clearing the checkpoint (--restart)"))?;
        }
    }
    Ok(())
}

async fn read_checkpoint(conn: &mut Conn, tables: &CheckpointTables) -> Result<Applied> {
    let what = "reading the checkpoint";
    let low: Option<(String, u64)> = conn
        .query_first(format!("SELECT file, pos FROM {} WHERE id = 1", tables.checkpoint))
        .await
        .map_err(BinlogError::sql(what))?;
    let rows: Vec<(String, u64, String)> =
        conn.query(format!("SELECT file, pos, more FROM {}", tables.batches)).await.map_err(BinlogError::sql(what))?;
    let mut beyond = std::collections::HashSet::new();
    for (file, pos, more) in rows {
        for p in more.split(',').filter(|p| !p.is_empty()) {
            let p = p.parse().map_err(|_| BinlogError::Usage(format!("{what}: `{p}` in {}", tables.batches)))?;
            beyond.insert((file.clone(), p));
        }
        beyond.insert((file, pos));
    }
    Ok(Applied { low_water: low, beyond })
}

/// The standalone DDL an interrupted run said it was about to run, unless its checkpoint
/// row shows it ran (see `Applier::barrier`).
async fn unrecorded_ddl(
    conn: &mut Conn,
    tables: &CheckpointTables,
    applied: &Applied,
) -> Result<Option<(String, u64)>> {
    let intent: Option<(String, u64)> = conn
        .query_first(format!("SELECT file, pos FROM {} WHERE id = 2", tables.checkpoint))
        .await
        .map_err(BinlogError::sql("reading the checkpoint"))?;
    Ok(intent.filter(|(file, pos)| !applied.contains(file, *pos)))
}

struct Dispatcher {
    control: Conn,
    workers: Vec<mpsc::Sender<Job>>,
    idle: Vec<usize>,
    pending: VecDeque<Pending>,
    /// How many leading entries of `pending` have their keys (keys are computed in order and
    /// never past a barrier, so they form a prefix).
    keyed: usize,
    busy: Busy,
    jobs: HashMap<u64, Vec<(u64, Keys)>>,
    barrier_running: bool,
    schema: HashMap<(String, String), TableKeys>,
    table_numbers: HashMap<(String, String), u32>,
    next_seq: u64,
    next_job: u64,
    /// Transactions read but not committed, by sequence: the first is the low-water mark.
    unfinished: BTreeMap<u64, (String, u64)>,
    /// End of the last transaction committed when nothing is unfinished.
    last_finished: Option<(u64, String, u64)>,
    report: ReplayReport,
    progress: Arc<Progress>,
    batch: usize,
    tables: Arc<CheckpointTables>,
}

impl Dispatcher {
    async fn run(
        &mut self,
        mut txns: mpsc::Receiver<Result<Txn>>,
        mut done: mpsc::UnboundedReceiver<Done>,
        stop: &AtomicBool,
    ) -> Result<()> {
        let mut reading = true;
        let mut failure: Option<BinlogError> = None;
        let mut last_checkpoint = Instant::now();
        loop {
            while reading && failure.is_none() && self.pending.len() < WINDOW {
                match txns.try_recv() {
                    Ok(Ok(t)) => self.push(t),
                    Ok(Err(e)) => failure = Some(e),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => reading = false,
                }
            }
            let stopping = failure.is_some() || stop.load(Ordering::Relaxed);
            if !stopping {
                if let Err(e) = self.dispatch().await {
                    failure = Some(e);
                }
            }
            let finished = stopping || (!reading && self.pending.is_empty());
            if finished && self.jobs.is_empty() {
                break;
            }
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY && failure.is_none() {
                self.save_checkpoint().await?;
                last_checkpoint = Instant::now();
            }
            let want_more = reading && !stopping && self.pending.len() < WINDOW;
            tokio::select! {
                d = done.recv() => match d {
                    Some(d) => if let Err(e) = self.complete(d) { failure.get_or_insert(e); },
                    None => break,
                },
                t = txns.recv(), if want_more => match t {
                    Some(Ok(t)) => self.push(t),
                    Some(Err(e)) => { failure.get_or_insert(e); }
                    None => reading = false,
                },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        failure.map_or(Ok(()), Err)
    }

    fn push(&mut self, txn: Txn) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unfinished.insert(seq, (txn.file.name.clone(), txn.start));
        self.pending.push_back(Pending { seq, txn: Arc::new(txn), keys: None });
    }

    fn complete(&mut self, d: Done) -> Result<()> {
        self.idle.push(d.worker);
        let finished = self.jobs.remove(&d.job).unwrap_or_default();
        for (_, keys) in &finished {
            self.busy.remove(keys);
        }
        if self.barrier_running {
            self.barrier_running = false;
            // The statement may have changed any table's keys.
            self.schema.clear();
        }
        d.result?;
        for (seq, _) in finished {
            self.unfinished.remove(&seq);
        }
        Ok(())
    }

    fn record_done(&mut self, txn: &Txn, seq: u64) {
        self.report.transactions += 1;
        self.report.bytes += txn.bytes;
        self.progress.bytes_done.fetch_add(txn.bytes, Ordering::Relaxed);
        self.progress.chunks_done.fetch_add(1, Ordering::Relaxed);
        if self.last_finished.as_ref().is_none_or(|(s, _, _)| *s < seq) {
            self.last_finished = Some((seq, txn.file.name.clone(), txn.end));
        }
    }

    /// Gives work to every idle connection it can.
    async fn dispatch(&mut self) -> Result<()> {
        if self.barrier_running {
            return Ok(());
        }
        self.ensure_keys().await?;
        while let Some(&worker) = self.idle.last() {
            let front_is_barrier = self.pending.front().is_some_and(|p| p.txn.barrier);
            if front_is_barrier {
                if !self.jobs.is_empty() {
                    return Ok(());
                }
                let Some(p) = self.pending.pop_front() else { return Ok(()) };
                self.keyed = 0;
                self.idle.pop();
                self.barrier_running = true;
                self.report.barriers += 1;
                self.record_done(&p.txn, p.seq);
                let job = self.new_job(vec![(p.seq, Keys::default())]);
                self.send(worker, Job::Barrier(job, p.txn)).await?;
                return Ok(());
            }
            let picked = self.pick();
            if picked.is_empty() {
                return Ok(());
            }
            self.idle.pop();
            let mut txns = Vec::with_capacity(picked.len());
            let mut entries = Vec::with_capacity(picked.len());
            for p in picked {
                let keys = p.keys.unwrap_or_default();
                if self.busy.shares_group_lock(&keys) {
                    self.report.group_shared_locks += 1;
                }
                self.busy.add(&keys);
                if keys.locks_tables() {
                    self.report.table_locks += 1;
                }
                self.record_done(&p.txn, p.seq);
                entries.push((p.seq, keys));
                txns.push(p.txn);
            }
            self.report.batches += 1;
            let job = self.new_job(entries);
            self.send(worker, Job::Rows(job, txns)).await?;
        }
        Ok(())
    }

    fn new_job(&mut self, entries: Vec<(u64, Keys)>) -> u64 {
        let id = self.next_job;
        self.next_job += 1;
        self.jobs.insert(id, entries);
        id
    }

    async fn send(&mut self, worker: usize, job: Job) -> Result<()> {
        let Some(tx) = self.workers.get(worker) else { return Ok(()) };
        tx.send(job).await.map_err(|_| BinlogError::Usage("an apply connection ended unexpectedly".into()))
    }

    /// Takes, in binlog order, transactions that conflict with nothing running and nothing
    /// left waiting before them, from one file, up to the batch size. Transactions in the
    /// batch may conflict with each other: one connection applies them in order.
    fn pick(&mut self) -> Vec<Pending> {
        let mut waiting = Busy::default();
        let mut chosen = Vec::new();
        let mut file = None;
        // Looking further ahead finds more independent work but costs dispatcher time for
        // every skipped transaction; 8 batches' worth kept 4 connections busy on sysbench.
        let horizon = self.batch.saturating_mul(8);
        for (i, p) in self.pending.iter().enumerate() {
            if p.txn.barrier || chosen.len() >= self.batch || i >= horizon {
                break;
            }
            let Some(keys) = &p.keys else { break };
            if *file.get_or_insert(p.txn.file.index) != p.txn.file.index {
                break;
            }
            if self.busy.conflicts(keys) || waiting.conflicts(keys) {
                waiting.add(keys);
                continue;
            }
            chosen.push(i);
        }
        let mut out = Vec::with_capacity(chosen.len());
        // Only keyed entries are chosen, all inside the keyed prefix.
        self.keyed = self.keyed.saturating_sub(chosen.len());
        for (removed, i) in chosen.into_iter().enumerate() {
            if let Some(p) = self.pending.remove(i - removed) {
                out.push(p);
            }
        }
        out
    }

    /// Computes keys for the waiting transactions before the first barrier (the schema they
    /// see is the target's now: every statement before them has run).
    async fn ensure_keys(&mut self) -> Result<()> {
        for i in self.keyed..self.pending.len() {
            let Some(p) = self.pending.get(i) else { break };
            if p.txn.barrier {
                break;
            }
            if p.keys.is_some() {
                self.keyed = i + 1;
                continue;
            }
            let txn = p.txn.clone();
            for (db, table) in schedule::tables(&txn) {
                if !self.schema.contains_key(&(db.clone(), table.clone())) {
                    let info = load_table_keys(&mut self.control, &db, &table).await?;
                    self.schema.insert((db, table), info);
                }
            }
            let numbers = &mut self.table_numbers;
            let schema = &self.schema;
            let keys = schedule::keys(
                &txn,
                |db, t| {
                    let n = u32::try_from(numbers.len()).unwrap_or(u32::MAX - 1);
                    *numbers.entry((db.to_string(), t.to_string())).or_insert(n)
                },
                |db, t| schema.get(&(db.to_string(), t.to_string())).cloned(),
            );
            if let Some(p) = self.pending.get_mut(i) {
                p.keys = Some(keys);
            }
            self.keyed = i + 1;
        }
        Ok(())
    }

    /// Writes the low-water mark and drops the per-transaction rows below it. Rows beyond
    /// it stay: they say which later transactions are already in.
    async fn save_checkpoint(&mut self) -> Result<()> {
        let mark = match self.unfinished.first_key_value() {
            Some((_, (file, pos))) => Some((file.clone(), *pos)),
            None => self.last_finished.as_ref().map(|(_, f, p)| (f.clone(), *p)),
        };
        let Some((file, pos)) = mark else { return Ok(()) };
        let f = sql_escape(&file);
        let what = "writing the checkpoint";
        self.control
            .query_drop(format!("REPLACE INTO {} (id, file, pos) VALUES (1, '{f}', {pos})", self.tables.checkpoint))
            .await
            .map_err(BinlogError::sql(what))?;
        self.control
            .query_drop(format!(
                "DELETE FROM {} WHERE file < '{f}' OR (file = '{f}' AND last_pos < {pos})",
                self.tables.batches
            ))
            .await
            .map_err(BinlogError::sql(what))?;
        self.report.resume_at = Some((file, pos));
        Ok(())
    }
}

/// INDEX_NAME, ORDINAL_POSITION, SUB_PART, COLLATION_NAME, DATA_TYPE of a unique key's column.
type KeyColumn = (String, u64, Option<u64>, Option<String>, String);

/// Unique keys of a table on the target, and whether they can be compared as bytes.
async fn load_table_keys(conn: &mut Conn, db: &str, table: &str) -> Result<TableKeys> {
    let what = format!("reading the keys of `{db}`.`{table}`");
    let shape: Option<(u64, Option<String>)> = conn
        .exec_first(
            "SELECT COUNT(*), MAX(t.ENGINE) FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
             ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
             WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ?",
            (db, table),
        )
        .await
        .map_err(BinlogError::sql(what.clone()))?;
    let (columns, engine) = shape.unwrap_or_default();
    let rows: Vec<KeyColumn> = conn
        .exec(
            "SELECT s.INDEX_NAME, c.ORDINAL_POSITION, s.SUB_PART, c.COLLATION_NAME, c.DATA_TYPE \
             FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c \
             ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME \
             WHERE s.TABLE_SCHEMA = ? AND s.TABLE_NAME = ? AND s.NON_UNIQUE = 0 \
             ORDER BY s.INDEX_NAME <> 'PRIMARY', s.INDEX_NAME, s.SEQ_IN_INDEX",
            (db, table),
        )
        .await
        .map_err(BinlogError::sql(what.clone()))?;
    let fks: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) OR (UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?)",
            (db, table, db, table),
        )
        .await
        .map_err(BinlogError::sql(what))?;
    let mut unique: Vec<Vec<usize>> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut usable = true;
    for (index, position, sub_part, collation, data_type) in rows {
        let exact = sub_part.is_none() && (collation.is_none() || matches!(data_type.as_str(), "enum" | "set"));
        usable &= exact;
        let col = usize::try_from(position.saturating_sub(1)).unwrap_or(usize::MAX);
        if names.last() != Some(&index) {
            names.push(index);
            unique.push(Vec::new());
        }
        if let Some(last) = unique.last_mut() {
            last.push(col);
        }
    }
    usable &= !unique.is_empty();
    Ok(TableKeys {
        columns: usize::try_from(columns).unwrap_or(0),
        unique,
        usable,
        foreign_key: fks.unwrap_or(0) > 0,
        transactional: engine.is_some_and(|e| e.eq_ignore_ascii_case("InnoDB") || e.eq_ignore_ascii_case("RocksDB")),
    })
}

/// For messages about a transaction.
pub fn where_is(txn: &Txn) -> String {
    describe(txn)
}
