//! The data phase: N connections pull chunks, each chunk one transaction; a table's deferred
//! indexes are built as soon as its last chunk commits, while other tables still load.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use floodgate_format::ident::{qualified, quote};
use floodgate_format::{Chunk, Table};
use floodgate_pipeline::PipelineError;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::mpsc;

use crate::checkpoint::{self, step};
use crate::convert::{self, Outcome, TableSpec};
use crate::error::Transient;
use crate::indexes::IndexJob;
use crate::report::TableReport;
use crate::restore::Ctx;
use crate::schema::PreparedTable;
use crate::sql::{self, StatementKind};
use crate::{LoadError, Progress, Result};

/// Scheduling state of one table.
#[derive(Debug)]
struct TableState {
    /// Chunks not yet handed out, in order.
    pending: VecDeque<usize>,
    active: usize,
    remaining: usize,
    bytes_left: u64,
    started: Option<Instant>,
}

/// Picks chunks so large tables get proportionally more connections and small ones still
/// run beside them: the table with the most bytes left per loader already on it goes next.
#[derive(Debug)]
struct Scheduler {
    tables: Vec<TableState>,
}

impl Scheduler {
    /// `done(table, chunk)` says which chunks an earlier run committed: they are not loaded.
    fn new(tables: &[(String, Table)], done: impl Fn(usize, usize) -> bool) -> Self {
        Scheduler {
            tables: tables
                .iter()
                .enumerate()
                .map(|(i, (_, t))| {
                    let pending: VecDeque<usize> = (0..t.chunks.len()).filter(|&c| !done(i, c)).collect();
                    TableState {
                        remaining: pending.len(),
                        bytes_left: pending.iter().map(|&c| t.chunks[c].bytes()).sum(),
                        pending,
                        active: 0,
                        started: None,
                    }
                })
                .collect(),
        }
    }

    fn pick(&mut self) -> Option<(usize, usize)> {
        let (i, state) =
            self.tables.iter_mut().enumerate().filter(|(_, s)| !s.pending.is_empty()).max_by(|(_, a), (_, b)| {
                let score = |s: &TableState| share_per_loader(s.bytes_left, s.active);
                score(a).total_cmp(&score(b))
            })?;
        let chunk = state.pending.pop_front()?;
        state.active += 1;
        state.started.get_or_insert_with(Instant::now);
        Some((i, chunk))
    }

    /// Records a committed chunk; true when it was the table's last.
    fn finish(&mut self, table: usize, bytes: u64) -> bool {
        let s = &mut self.tables[table];
        s.active -= 1;
        s.remaining -= 1;
        s.bytes_left = s.bytes_left.saturating_sub(bytes);
        s.remaining == 0
    }
}

/// How much a table needs the next free loader: its bytes left per loader already on it (a
/// loader more, so an untouched table counts its whole size). The table with the most gets
/// it, here and in the dump stream's queue (`stream_queue.rs`).
pub(crate) fn share_per_loader(bytes_left: u64, active: usize) -> f64 {
    (bytes_left as f64 + 1.0) / (active as f64 + 1.0)
}

/// Loads every chunk and builds deferred indexes. Returns per-table reports in plan order.
pub async fn load(ctx: &Arc<Ctx>, prepared: Vec<PreparedTable>) -> Result<Vec<TableReport>> {
    let tables: Vec<(String, Table)> = ctx.plan.tables().map(|(d, t)| (d.name.clone(), t.clone())).collect();
    let tables = Arc::new(tables);
    let (non_transactional, reloaded) = reload_partial_tables(ctx, &tables).await?;
    let cp = &ctx.checkpoints;
    let done = |i: usize, c: usize| {
        let (db, t) = (&tables[i].0, &tables[i].1.name);
        let complete = !non_transactional.contains(&i) || cp.has(step::LOADED, db, t);
        complete && cp.chunk(db, t, c as u64).is_some()
    };
    let scheduler = Scheduler::new(&tables, done);
    let reports: Vec<TableReport> = tables
        .iter()
        .zip(&prepared)
        .enumerate()
        .map(|(i, ((db, t), p))| {
            let resumed: Vec<usize> = (0..t.chunks.len()).filter(|&c| done(i, c)).collect();
            TableReport {
                database: db.clone(),
                table: t.name.clone(),
                expected_rows: t.expected_rows,
                bytes: t.data_bytes(),
                chunks: t.chunks.len(),
                schema_seconds: p.seconds,
                deferred_indexes: p.deferred.clone(),
                rows: resumed.iter().filter_map(|&c| cp.chunk(db, &t.name, c as u64)).map(|c| c.rows).sum(),
                chunks_resumed: resumed.len(),
                reloaded: reloaded.contains(&i),
                ..Default::default()
            }
        })
        .collect();
    for (i, r) in reports.iter().enumerate().filter(|(_, r)| r.chunks_resumed > 0) {
        let chunks = &tables[i].1.chunks;
        let skipped: u64 = (0..chunks.len()).filter(|&c| done(i, c)).map(|c| chunks[c].bytes()).sum();
        Progress::add(&ctx.progress.rows_done, r.rows);
        Progress::add(&ctx.progress.bytes_done, skipped);
        Progress::add(&ctx.progress.chunks_done, r.chunks_resumed as u64);
    }
    let reports = Arc::new(Mutex::new(reports));
    let alters: Arc<Vec<Vec<String>>> = Arc::new(prepared.into_iter().map(|p| p.alters).collect());
    let (done_tx, done_rx) = mpsc::unbounded_channel::<IndexJob>();
    let index_job = |i: usize| IndexJob {
        table: i,
        db: tables[i].0.clone(),
        name: tables[i].1.name.clone(),
        alters: alters[i].clone(),
    };
    for (i, state) in scheduler.tables.iter().enumerate() {
        if state.remaining == 0 {
            let _ = done_tx.send(index_job(i));
        }
    }
    let scheduler = Arc::new(Mutex::new(scheduler));
    let non_transactional = Arc::new(non_transactional);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..ctx.options.threads.max(1) {
        let w = Worker {
            ctx: ctx.clone(),
            tables: tables.clone(),
            scheduler: scheduler.clone(),
            reports: reports.clone(),
            done: done_tx.clone(),
            alters: alters.clone(),
            non_transactional: non_transactional.clone(),
        };
        set.spawn(async move { w.run().await });
    }
    drop(done_tx);
    let builders = crate::indexes::Builders {
        target: ctx.target.clone(),
        init: ctx.init.clone(),
        progress: ctx.progress.clone(),
        reports: reports.clone(),
        reconnect_wait: ctx.options.reconnect_wait,
        resuming: ctx.checkpoints.is_resume(),
        backup: ctx.checkpoints.backup.clone(),
    };
    crate::indexes::spawn(&mut set, ctx.options.threads, builders, done_rx);
    crate::restore::join_all(&mut set).await?;
    let reports = reports.lock().map_err(|_| LoadError::Refused("internal error: a worker panicked".into()))?.clone();
    Ok(reports)
}

/// Finds the tables whose engine cannot roll a chunk back (MyISAM, Aria, MEMORY). Those an
/// interrupted run left partial cannot resume chunk by chunk: they are emptied here and
/// loaded again whole. Returns the indexes of all non-transactional tables, and of those
/// emptied.
async fn reload_partial_tables(ctx: &Ctx, tables: &[(String, Table)]) -> Result<(HashSet<usize>, HashSet<usize>)> {
    let names: Vec<(String, String)> = tables.iter().map(|(d, t)| (d.clone(), t.name.clone())).collect();
    let mut conn = ctx.reconnect().await?;
    let on_target = crate::resume::tables_on_target(&mut conn, &names).await?;
    let (mut found, mut reload) = (HashSet::new(), HashSet::new());
    for (i, key) in names.iter().enumerate() {
        if on_target.get(key).is_none_or(|t| t.transactional) {
            continue;
        }
        found.insert(i);
        let reloaded =
            crate::resume::empty_partial_table(&mut conn, &ctx.checkpoints, &ctx.progress, (&key.0, &key.1)).await?;
        if reloaded {
            reload.insert(i);
        }
    }
    let _ = conn.disconnect().await;
    Ok((found, reload))
}

struct Worker {
    ctx: Arc<Ctx>,
    tables: Arc<Vec<(String, Table)>>,
    scheduler: Arc<Mutex<Scheduler>>,
    reports: Arc<Mutex<Vec<TableReport>>>,
    done: mpsc::UnboundedSender<IndexJob>,
    alters: Arc<Vec<Vec<String>>>,
    non_transactional: Arc<HashSet<usize>>,
}

impl Worker {
    async fn run(self) -> Result<()> {
        let mut conn: Option<Conn> = None;
        loop {
            let pick = self.scheduler.lock().map_err(|_| poisoned())?.pick();
            let Some((t, c)) = pick else { break };
            let (db, table) = &self.tables[t];
            let chunk = &table.chunks[c];
            let outcome = self.load_with_retries(&mut conn, t, c).await?;
            crate::failpoint::hit("data.chunk").await;
            let progress = &self.ctx.progress;
            let (done, total) = (Progress::get(&progress.bytes_done), Progress::get(&progress.bytes_total));
            crate::failpoint::passed("data.late", done, total).await;
            Progress::add(&self.ctx.progress.rows_done, outcome.rows);
            Progress::add(&self.ctx.progress.bytes_done, chunk.bytes());
            Progress::add(&self.ctx.progress.chunks_done, 1);
            let (last, started) = {
                let mut s = self.scheduler.lock().map_err(|_| poisoned())?;
                let last = s.finish(t, chunk.bytes());
                (last, s.tables[t].started)
            };
            if let Ok(mut r) = self.reports.lock() {
                let r = &mut r[t];
                r.rows += outcome.rows;
                r.insert_statements += outcome.inserts;
                r.load_data_statements += outcome.loads;
                if last {
                    r.data_seconds = started.map(|s| s.elapsed().as_secs_f64()).unwrap_or_default();
                }
            }
            if last {
                if self.non_transactional.contains(&t) {
                    if let Some(conn) = conn.as_mut() {
                        checkpoint::record_step(
                            conn,
                            &self.ctx.checkpoints.backup,
                            (step::LOADED, db, &table.name),
                            None,
                        )
                        .await?;
                    }
                }
                let job =
                    IndexJob { table: t, db: db.clone(), name: table.name.clone(), alters: self.alters[t].clone() };
                let _ = self.done.send(job);
            }
        }
        Ok(())
    }

    /// Loads chunk `c` of table `t`, retrying transient failures. After a lost connection the
    /// chunk's checkpoint says whether its commit went through before the connection did.
    async fn load_with_retries(&self, slot: &mut Option<Conn>, t: usize, c: usize) -> Result<Outcome> {
        let (db, table) = &self.tables[t];
        let chunk = &table.chunks[c];
        let what = format!("{} chunk {}", qualified(db, &table.name), chunk.file.path.display());
        let mut attempt = 0;
        loop {
            let conn = match slot {
                Some(conn) => conn,
                None => slot.insert(self.ctx.reconnect().await?),
            };
            let error = match load_chunk(&self.ctx, conn, db, table, c).await {
                Ok(outcome) => return Ok(outcome),
                Err(e) => e,
            };
            match crate::retry::before_retry(error, attempt, &what).await? {
                Transient::Retry => {
                    let _ = conn.query_drop("ROLLBACK").await;
                }
                Transient::Reconnect => {
                    let conn = slot.insert(self.ctx.reconnect().await?);
                    if let Some(rows) =
                        checkpoint::committed(conn, &self.ctx.checkpoints.backup, db, &table.name, c as u64).await?
                    {
                        return Ok(Outcome { rows, inserts: 0, loads: 0 });
                    }
                }
            }
            attempt += 1;
        }
    }
}

fn poisoned() -> LoadError {
    LoadError::Refused("internal error: a worker panicked".into())
}

/// INSERT files at least this large have their INSERTs converted to LOAD DATA rows, as the
/// mysqldump stream's are (`convert`): the server parses the rows for less. Converting needs
/// the table's columns (two information_schema lookups per chunk), which on a file of a few
/// rows costs more than it saves.
pub const CONVERT_MIN_BYTES: u64 = 1 << 20;

/// Executes one chunk file in one transaction. On any error the caller drops the connection,
/// which rolls the transaction back: no row of a failed chunk stays committed.
async fn load_chunk(ctx: &Ctx, conn: &mut Conn, db: &str, table: &Table, position: usize) -> Result<Outcome> {
    let Some(chunk) = table.chunks.get(position) else { return Ok(Outcome::default()) };
    if let Some(check) = &chunk.rows {
        return load_rows_chunk(ctx, conn, db, table, position, check).await;
    }
    let name = qualified(db, &table.name);
    let file = chunk.file.path.display().to_string();
    conn.query_drop(format!("SET NAMES utf8mb4; USE {}; START TRANSACTION", quote(db)))
        .await
        .map_err(LoadError::sql(format!("{name}: starting a transaction for {file}")))?;
    let mut run = InsertRun {
        ctx,
        db,
        table: &table.name,
        file: &file,
        convert: chunk.bytes() >= ctx.options.convert_min_bytes,
        names: "utf8mb4".into(),
        spec: None,
        pending: Vec::new(),
        outcome: Outcome::default(),
    };
    let mut statements = ctx.pipeline.statements(&chunk.file.path, ctx.plan.format.terminator());
    while let Some(batch) = statements.recv().await {
        let batch = batch.map_err(|source| LoadError::Chunk { table: name.clone(), source })?;
        for s in batch {
            let at = || format!("{name}: {file} at byte {}", s.offset);
            match sql::kind(&s.text) {
                StatementKind::Insert if run.convert => run.pending.push(s),
                StatementKind::Insert => convert::run_insert(conn, &s.text, &at(), &mut run.outcome).await?,
                StatementKind::LoadData => {
                    run.flush(conn).await?;
                    run.outcome.rows += load_data(ctx, conn, chunk, &s.text, &at()).await?;
                    run.outcome.loads += 1;
                }
                StatementKind::Other => {
                    run.flush(conn).await?;
                    if let Some(cs) = convert::set_names(&s.text) {
                        run.names = cs;
                    }
                    conn.query_drop(&s.text[..]).await.map_err(LoadError::sql(at()))?;
                }
            }
        }
        run.flush(conn).await?;
    }
    crate::failpoint::hit("data.load").await;
    let outcome = run.outcome;
    checkpoint::commit_chunk(conn, &ctx.checkpoints.backup, (db, &table.name, position as u64), outcome.rows, None)
        .await?;
    Ok(outcome)
}

/// The INSERTs of one chunk file on their way to the server, converted when `convert`.
struct InsertRun<'a> {
    ctx: &'a Ctx,
    db: &'a str,
    table: &'a str,
    file: &'a str,
    convert: bool,
    /// The character set of the file's text (its last `SET NAMES`).
    names: String,
    spec: Option<Arc<TableSpec>>,
    /// Consecutive INSERTs not yet sent.
    pending: Vec<floodgate_format::split::Statement>,
    outcome: Outcome,
}

impl InsertRun<'_> {
    /// Converts and sends the pending INSERTs, in order, before anything else runs.
    async fn flush(&mut self, conn: &mut Conn) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let spec = match &self.spec {
            Some(spec) if spec.names == self.names => spec.clone(),
            _ => {
                let spec = Arc::new(convert::table_spec(conn, self.db, self.table, &self.names).await?);
                self.spec.insert(spec).clone()
            }
        };
        let statements = std::mem::take(&mut self.pending);
        let encoder = spec.clone();
        let pieces = self
            .ctx
            .pipeline
            .run(move || convert::encode_chunk(&encoder, statements))
            .await
            .ok_or_else(|| LoadError::Refused("internal error: the encoder stopped".into()))?;
        convert::run_pieces(conn, &spec, pieces, self.file, &mut self.outcome).await
    }
}

/// Loads a native rows file: one LOAD DATA of the table's columns, as binary, in one
/// transaction. The file is hashed while it streams; a mismatch ends the stream with an
/// error, and the transaction is never committed.
async fn load_rows_chunk(
    ctx: &Ctx,
    conn: &mut Conn,
    db: &str,
    table: &Table,
    position: usize,
    check: &floodgate_format::RowsCheck,
) -> Result<Outcome> {
    let chunk = &table.chunks[position];
    let name = qualified(db, &table.name);
    let at = format!("{name}: {}", chunk.file.path.display());
    conn.query_drop("START TRANSACTION").await.map_err(LoadError::sql(format!("{at}: starting a transaction")))?;
    let columns = table.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let statement = format!(
        "LOAD DATA LOCAL INFILE 'floodgate-chunk' INTO TABLE {name} CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({columns})"
    );
    let stream = ctx.pipeline.bytes_verified(&chunk.file.path, &check.sha256);
    let rows = stream_into_load(conn, stream, statement.as_bytes(), &at, &chunk.file.name()).await?;
    if rows != check.rows {
        return Err(LoadError::Integrity {
            context: at,
            reason: format!("{rows} rows loaded, the manifest says {}", check.rows),
        });
    }
    crate::failpoint::hit("data.load").await;
    checkpoint::commit_chunk(conn, &ctx.checkpoints.backup, (db, &table.name, position as u64), rows, None).await?;
    Ok(Outcome { rows, inserts: 0, loads: 1 })
}

/// Streams the chunk's data file into a LOAD DATA LOCAL statement and checks that every row
/// arrived: LOCAL turns duplicate keys and bad values into warnings, so they are errors here.
async fn load_data(ctx: &Ctx, conn: &mut Conn, chunk: &Chunk, text: &[u8], at: &str) -> Result<u64> {
    let integrity = |reason: String| LoadError::Integrity { context: at.to_string(), reason };
    let requested =
        sql::infile_name(text).ok_or_else(|| integrity("LOAD DATA statement without a file name".into()))?;
    let file = floodgate_format::mydumper::resolve_infile(chunk, &requested).ok_or_else(|| {
        integrity(format!("LOAD DATA names `{requested}`, which is not this chunk's data file; refusing to send it"))
    })?;
    let stream = ctx.pipeline.bytes(&file.path);
    stream_into_load(conn, stream, &sql::with_binary_charset(text), at, &file.name()).await
}

/// Runs `statement` (a LOAD DATA LOCAL) with `stream` as its file, and checks every row sent
/// arrived: LOCAL turns duplicate keys and bad values into warnings, so they are errors here.
async fn stream_into_load(
    conn: &mut Conn,
    stream: floodgate_pipeline::ByteStream,
    statement: &[u8],
    at: &str,
    file_name: &str,
) -> Result<u64> {
    let integrity = |reason: String| LoadError::Integrity { context: at.to_string(), reason };
    let rows_sent = stream.rows.clone();
    let failure: Arc<Mutex<Option<PipelineError>>> = Arc::default();
    let slot = failure.clone();
    let blocks = stream.blocks;
    conn.set_infile_handler(async move {
        let data = futures::stream::unfold((blocks, slot), |(mut rx, slot)| async move {
            let item = match rx.recv().await? {
                Ok(b) => Ok(b),
                Err(e) => {
                    let msg = e.to_string();
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(e);
                    }
                    Err(std::io::Error::other(msg))
                }
            };
            Some((item, (rx, slot)))
        });
        Ok(data.boxed())
    });
    let result = conn.query_drop(statement).await;
    if let Some(e) = failure.lock().ok().and_then(|mut s| s.take()) {
        return Err(LoadError::Chunk { table: at.to_string(), source: e });
    }
    result.map_err(|e| sql::load_data_error(at, e))?;
    let affected = conn.affected_rows();
    let info = conn.info().into_owned();
    let warnings = sql::data_warnings(conn).await?;
    let expected = rows_sent.load(std::sync::atomic::Ordering::Relaxed);
    let skipped = info_number(&info, "Skipped:").unwrap_or(0);
    if affected != expected || skipped > 0 || !warnings.is_empty() {
        return Err(integrity(format!(
            "sent {expected} rows from {file_name}, the server stored {affected} ({info}){}",
            if warnings.is_empty() { String::new() } else { format!(": {}", sql::describe_warnings(&warnings)) }
        )));
    }
    Ok(affected)
}

fn info_number(info: &str, key: &str) -> Option<u64> {
    let at = info.find(key)? + key.len();
    info[at..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, chunk_bytes: &[u64]) -> (String, Table) {
        let file = |b: u64| floodgate_format::SqlFile { path: name.into(), bytes: b };
        (
            "db".into(),
            Table {
                name: name.into(),
                schema: file(0),
                chunks: chunk_bytes
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| Chunk { index: i as u64, file: file(b), data_files: vec![], rows: None })
                    .collect(),
                expected_rows: None,
                columns: vec![],
                content_digest: None,
            },
        )
    }

    #[test]
    fn big_tables_first_and_shared() {
        let tables = vec![table("small", &[10]), table("big", &[100, 100, 100, 100])];
        let mut s = Scheduler::new(&tables, |_, _| false);
        assert_eq!(s.pick(), Some((1, 0)));
        assert_eq!(s.pick(), Some((1, 1))); // 300/2 still beats 10
        assert_eq!(s.pick(), Some((1, 2)));
        // 100/4 = 25 > 10/1: the big table keeps a fourth loader
        assert_eq!(s.pick(), Some((1, 3)));
        assert_eq!(s.pick(), Some((0, 0)));
        assert_eq!(s.pick(), None);
        assert!(!s.finish(1, 100));
        assert!(s.finish(0, 10));
    }

    #[test]
    fn parses_load_data_info() {
        let info = "Records: 10  Deleted: 0  Skipped: 2  Warnings: 2";
        assert_eq!(info_number(info, "Skipped:"), Some(2));
        assert_eq!(info_number(info, "Records:"), Some(10));
    }
}
