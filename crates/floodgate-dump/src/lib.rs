//! Dumps a server into floodgate's native format (`floodgate/1`), in parallel, from one
//! consistent snapshot.
//!
//! Consistency: one connection takes `FLUSH TABLES WITH READ LOCK`, records the binary log
//! position and GTID, every worker connection starts `START TRANSACTION WITH CONSISTENT
//! SNAPSHOT` while the lock holds, non-transactional tables are dumped before the lock is
//! released, and InnoDB tables after it, each worker reading the same snapshot.
//!
//! Chunks: a table with a single-column integer primary key is split into key ranges, so
//! several workers read one big table at once; any other table is read in one pass cut into
//! chunks by size. Rows are written exactly (`SET NAMES binary`: the column's bytes) in
//! LOAD DATA's default format, zstd-compressed, each chunk hashed (SHA-256 of the file) and
//! counted, each table digested ([`ContentDigest`]). manifest.json is written last, by
//! rename: its presence means the dump is complete.
//!
//! Object storage: each file is uploaded as soon as it is complete, from a spool that holds
//! a few files at a time, and the manifest last (see `sink.rs`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use floodgate_conn::server::user_databases;
use floodgate_conn::{connect, CheckpointSchema, ConnError, ConnectOptions, RowConn, RowConnector};
use floodgate_format::files::{self, create_private_dir};
use floodgate_format::ident::{qualified, quote};
use floodgate_format::native::{
    encode_name, ChunkEntry, ColumnEntry, ContentDigest, DatabaseEntry, Manifest, SourceInfo, TableEntry, FORMAT,
    MANIFEST,
};
use floodgate_format::{Classify, ErrorClass};
use floodgate_pipeline::{encode_row, Progress};
use floodgate_pipeline::{Pipeline, PipelineConfig};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use sha2::{Digest, Sha256};

mod post;
mod sink;

use sink::Sink;

/// Why a dump failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DumpError {
    /// The server refused or failed a query.
    #[error(transparent)]
    Server(#[from] ConnError),
    /// Writing the output failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The output directory is not empty, or a database does not exist.
    #[error("{0}")]
    Refused(String),
    /// A bug: a task that panicked.
    #[error("internal error: {0}")]
    Internal(String),
    /// Writing to object storage failed.
    #[error(transparent)]
    Storage(#[from] floodgate_storage::StorageError),
    /// Uploading a file of the dump failed (the message names its object): the dump stops
    /// and writes no manifest, so readers see the prefix as an unfinished dump.
    #[error("uploading {}: {}", source.url, source.reason)]
    Upload {
        /// The failure, naming the object.
        source: floodgate_storage::StorageError,
    },
    /// A worker stopped because an upload failed; the dump reports that failure instead.
    #[error("stopped: an upload of the dump failed")]
    UploadStopped,
}

impl Classify for DumpError {
    fn class(&self) -> ErrorClass {
        match self {
            DumpError::Server(e) => e.class(),
            DumpError::Io { .. } => ErrorClass::Failed,
            DumpError::Refused(_) => ErrorClass::Refused,
            DumpError::Storage(e) | DumpError::Upload { source: e } => floodgate_format::storage_class(e.kind),
            DumpError::UploadStopped => ErrorClass::Failed,
            DumpError::Internal(_) => ErrorClass::Internal,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = DumpError> = std::result::Result<T, E>;

fn sql(context: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> DumpError {
    let context = context.into();
    move |source| DumpError::Server(ConnError::Sql { context, source })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DumpError + '_ {
    move |source| DumpError::Io { path: path.to_path_buf(), source }
}

/// Knobs of a dump.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// Worker connections.
    pub threads: usize,
    /// Target uncompressed bytes per chunk.
    pub chunk_size: u64,
    /// zstd level; 0 stores the rows uncompressed (still zstd frames, of raw blocks).
    pub compress_level: i32,
    /// Databases to dump; all user databases when empty.
    pub databases: Vec<String>,
    /// floodgate's checkpoint schema on the source, left out of "all user databases" (a
    /// user's own database of that name is dumped).
    pub checkpoint_schema: CheckpointSchema,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            threads: 4,
            chunk_size: 64 << 20,
            compress_level: 1,
            databases: Vec::new(),
            checkpoint_schema: CheckpointSchema::default(),
        }
    }
}

/// What a dump produced.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DumpReport {
    /// Wall seconds.
    pub seconds: f64,
    /// Rows written.
    pub rows: u64,
    /// Uncompressed bytes of rows.
    pub bytes: u64,
    /// Bytes on disk of chunk files.
    pub compressed_bytes: u64,
    /// Tables.
    pub tables: usize,
    /// Chunk files.
    pub chunks: usize,
    /// The most bytes the spool of a dump to object storage held at once (files written and
    /// not yet uploaded); 0 for a local dump.
    pub spool_peak_bytes: u64,
}

/// One table to dump.
#[derive(Debug, Clone)]
struct TableJob {
    db: String,
    name: String,
    transactional: bool,
    columns: Vec<ColumnEntry>,
    /// The single integer primary key column, if the table has one.
    int_key: Option<String>,
    data_length: u64,
}

/// A piece of a table: a key range, or the whole table.
#[derive(Debug, Clone)]
struct ChunkJob {
    table: usize,
    /// `[from, to)` on the integer key; None = the whole table in one pass.
    range: Option<(i128, i128, bool)>,
    /// First chunk number this job writes (range jobs write one chunk).
    number: usize,
}

/// Output of one chunk job.
#[derive(Debug)]
struct ChunkResult {
    table: usize,
    entries: Vec<(usize, ChunkEntry)>,
    digest: ContentDigest,
}

/// Dumps `options.databases` from `source` into the new directory `out`.
pub async fn dump(
    source: &ConnectOptions,
    out: &Path,
    options: &DumpOptions,
    progress: Arc<Progress>,
) -> Result<DumpReport> {
    let started = Instant::now();
    prepare_dir(out)?;
    let sink = Arc::new(Sink::local(out));
    let (manifest, mut report) = dump_into(source, &sink, options, &progress).await?;
    sink.settle().await?;
    write_manifest(out, &manifest)?;
    Progress::add(&progress.tables_done, report.tables as u64);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Dumps into object storage (`s3://bucket/prefix/`). Each file is written into a private
/// spool directory under the system's temporary directory (`TMPDIR`), uploaded (multipart
/// for large ones) as soon as it is complete, and deleted: the spool holds a few files at a
/// time, not the dump (see `sink.rs`). The manifest goes up last, from memory, once every
/// other upload succeeded, so a reader never sees a manifest whose files are not all there;
/// after a failure there is none, and readers refuse the prefix as an unfinished dump. The
/// prefix must hold nothing yet, as a local output directory must be empty. The spool is
/// removed afterwards, whatever happened.
pub async fn dump_to_objects(
    source: &ConnectOptions,
    prefix: &str,
    options: &DumpOptions,
    progress: Arc<Progress>,
) -> Result<DumpReport> {
    let started = Instant::now();
    let prefix = format!("{}/", prefix.trim_end_matches('/'));
    refuse_non_empty(&prefix).await?;
    let spool = tempfile::Builder::new().prefix("floodgate-dump-").tempdir().map_err(io(&std::env::temp_dir()))?;
    let out = spool.path().join("dump");
    prepare_dir(&out)?;
    let sink = Arc::new(Sink::objects(&out, &prefix, options.threads));
    let dumped = dump_into(source, &sink, options, &progress).await;
    if dumped.is_err() {
        sink.abandon();
    }
    // Settled before the spool goes, on every path. A failed upload is what stopped the
    // dump, whatever error the workers gave then, so it is the one reported.
    sink.settle().await?;
    let (manifest, mut report) = dumped?;
    upload_manifest(&prefix, &manifest).await?;
    Progress::add(&progress.tables_done, report.tables as u64);
    report.spool_peak_bytes = sink.spool_peak();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A dump goes under a prefix that holds nothing yet: objects of another dump would mix
/// with its own.
async fn refuse_non_empty(prefix: &str) -> Result<()> {
    let listing = {
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || floodgate_storage::Object::list(&prefix))
            .await
            .map_err(|e| DumpError::Internal(format!("listing task: {e}")))??
    };
    if !listing.is_empty() {
        return Err(DumpError::Refused(format!(
            "{prefix} already holds {} object(s); dump under a new prefix",
            listing.len()
        )));
    }
    Ok(())
}

/// Uploads manifest.json, the dump's last object: its presence means the dump is whole.
async fn upload_manifest(prefix: &str, manifest: &Manifest) -> Result<()> {
    let json = manifest_json(manifest)?;
    let url = format!("{prefix}{MANIFEST}");
    tokio::task::spawn_blocking(move || floodgate_storage::upload(&url, json.as_slice()))
        .await
        .map_err(|e| DumpError::Internal(format!("upload task: {e}")))?
        .map_err(|source| DumpError::Upload { source })?;
    Ok(())
}

/// The dump itself: every file is handed to `sink` as soon as it is complete. Returns the
/// manifest, for the caller to write once the sink has settled.
async fn dump_into(
    source: &ConnectOptions,
    sink: &Arc<Sink>,
    options: &DumpOptions,
    progress: &Arc<Progress>,
) -> Result<(Manifest, DumpReport)> {
    let mut control = connect(source, &["SET NAMES utf8mb4".into()]).await?;
    let databases = list_databases(&mut control, &options.databases, &options.checkpoint_schema).await?;
    let mut tables = Vec::new();
    let mut entries = Vec::new();
    for db in &databases {
        entries.push(write_database_schema(&mut control, sink, db).await?);
        for t in list_tables(&mut control, db).await? {
            tables.push(t);
        }
    }
    Progress::add(&progress.tables_total, tables.len() as u64);
    Progress::add(&progress.bytes_total, tables.iter().map(|t| t.data_length).sum());

    // The snapshot: lock, record the position, open every worker's transaction, and keep the
    // lock only as long as the non-transactional tables need it.
    control.query_drop("FLUSH TABLES WITH READ LOCK").await.map_err(sql("FLUSH TABLES WITH READ LOCK"))?;
    let position = source_info(&mut control).await?;
    let session = vec![
        "SET NAMES binary".to_string(),
        "SET SESSION time_zone = '+00:00'".into(),
        "SET SESSION net_write_timeout = 86400, net_read_timeout = 86400".into(),
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ".into(),
        "START TRANSACTION WITH CONSISTENT SNAPSHOT".into(),
    ];
    // Workers read rows through floodgate-wire where it can log in (see RowConnector).
    let mut connector = RowConnector::new(source);
    let mut workers = Vec::new();
    for _ in 0..options.threads.max(1) {
        workers.push(connector.connect(&session).await?);
    }
    for t in &tables {
        write_create_table(&mut control, sink, t).await?;
    }
    let post_files = post::write_all(&mut control, sink, &databases).await?;

    let pipeline = Pipeline::new(PipelineConfig::for_budget(options.threads, 256 << 20))
        .map_err(|e| DumpError::Refused(format!("cannot start the compression threads: {e}")))?;
    let shared = Arc::new(Shared {
        sink: sink.clone(),
        tables: tables.clone(),
        options: options.clone(),
        pipeline,
        progress: progress.clone(),
    });

    let (first, second): (Vec<usize>, Vec<usize>) = (0..tables.len()).partition(|&i| !tables[i].transactional);
    let mut results = Vec::new();
    let mut next_number: HashMap<usize, usize> = HashMap::new();
    let first_jobs = plan_chunks(&mut workers[0], &shared, &first, &mut next_number).await?;
    let (mut workers, r) = run_jobs(workers, &shared, first_jobs).await?;
    results.extend(r);
    control.query_drop("UNLOCK TABLES").await.map_err(sql("UNLOCK TABLES"))?;
    let second_jobs = plan_chunks(&mut workers[0], &shared, &second, &mut next_number).await?;
    let (workers, r) = run_jobs(workers, &shared, second_jobs).await?;
    results.extend(r);
    for w in workers {
        w.close().await;
    }
    let _ = control.disconnect().await;
    Ok(assemble(&tables, entries, results, post_files, position))
}

/// The manifest and the report: chunks in order, digests merged per table.
fn assemble(
    tables: &[TableJob],
    mut entries: Vec<DatabaseEntry>,
    results: Vec<ChunkResult>,
    post_files: Vec<(String, String)>,
    position: SourceInfo,
) -> (Manifest, DumpReport) {
    let mut per_table: Vec<(Vec<(usize, ChunkEntry)>, ContentDigest)> =
        vec![(Vec::new(), ContentDigest::default()); tables.len()];
    for r in results {
        per_table[r.table].0.extend(r.entries);
        per_table[r.table].1.merge(&r.digest);
    }
    let mut report = DumpReport { tables: tables.len(), ..Default::default() };
    for (i, t) in tables.iter().enumerate() {
        let (mut chunks, digest) = std::mem::take(&mut per_table[i]);
        chunks.sort_by_key(|(n, _)| *n);
        let chunks: Vec<ChunkEntry> = chunks.into_iter().map(|(_, c)| c).collect();
        report.rows += chunks.iter().map(|c| c.rows).sum::<u64>();
        report.bytes += chunks.iter().map(|c| c.bytes).sum::<u64>();
        report.compressed_bytes += chunks.iter().map(|c| c.compressed_bytes).sum::<u64>();
        report.chunks += chunks.len();
        let Some(db) = entries.iter_mut().find(|d: &&mut DatabaseEntry| d.name == t.db) else { continue };
        db.tables.push(TableEntry {
            name: t.name.clone(),
            schema_file: table_schema_file(t),
            columns: t.columns.clone(),
            rows: chunks.iter().map(|c| c.rows).sum(),
            content_digest: digest.hex(),
            chunks,
        });
    }
    for (db, file) in post_files {
        if let Some(d) = entries.iter_mut().find(|d| d.name == db) {
            d.post_file = Some(file);
        }
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        created_at: now_rfc3339(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        source: position,
        databases: entries,
    };
    (manifest, report)
}

struct Shared {
    /// Where finished files go: kept, or uploaded (see `sink.rs`).
    sink: Arc<Sink>,
    tables: Vec<TableJob>,
    options: DumpOptions,
    pipeline: Pipeline,
    progress: Arc<Progress>,
}

fn prepare_dir(out: &Path) -> Result<()> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(io(out))?;
        if entries.next().is_some() {
            return Err(DumpError::Refused(format!(
                "{} exists and is not empty; dump into a new directory",
                out.display()
            )));
        }
    }
    for sub in ["schema", "data", "post"] {
        create_private_dir(&out.join(sub)).map_err(io(out))?;
    }
    Ok(())
}

async fn list_databases(conn: &mut Conn, wanted: &[String], checkpoints: &CheckpointSchema) -> Result<Vec<String>> {
    if wanted.is_empty() {
        // Every user database: not the server's own, nor floodgate's checkpoints (a restore
        // run with --keep-checkpoints leaves them on the server).
        let user = user_databases(conn, checkpoints).await?;
        return Ok(user.into_iter().map(|d| d.name).collect());
    }
    let all: Vec<String> = conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1")
        .await
        .map_err(sql("listing databases"))?;
    let missing: Vec<&String> = wanted.iter().filter(|w| !all.contains(w)).collect();
    if !missing.is_empty() {
        return Err(DumpError::Refused(format!(
            "no such database: {}",
            missing.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(wanted.to_vec())
}

async fn write_database_schema(conn: &mut Conn, sink: &Sink, db: &str) -> Result<DatabaseEntry> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE DATABASE {}", quote(db)))
        .await
        .map_err(sql(format!("SHOW CREATE DATABASE {db}")))?;
    let create = row.map(|r| r.1).unwrap_or_default();
    let (charset, collation): (String, String) = conn
        .exec_first(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (db,),
        )
        .await
        .map_err(sql("reading the database's charset"))?
        .unwrap_or_default();
    let rel = format!("schema/{}.sql", encode_name(db));
    write_file(sink, &rel, format!("{create};\n").as_bytes()).await?;
    let out = sink.out();
    create_private_dir(&out.join("schema").join(encode_name(db))).map_err(io(out))?;
    create_private_dir(&out.join("data").join(encode_name(db))).map_err(io(out))?;
    Ok(DatabaseEntry { name: db.into(), charset, collation, schema_file: rel, tables: Vec::new(), post_file: None })
}

async fn list_tables(conn: &mut Conn, db: &str) -> Result<Vec<TableJob>> {
    let rows: Vec<(String, Option<String>, Option<u64>)> = conn
        .exec(
            "SELECT TABLE_NAME, ENGINE, DATA_LENGTH FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1",
            (db,),
        )
        .await
        .map_err(sql(format!("listing tables of {db}")))?;
    let mut tables = Vec::new();
    for (name, engine, data_length) in rows {
        let cols: Vec<(String, String, String)> = conn
            .exec(
                "SELECT COLUMN_NAME, COLUMN_TYPE, EXTRA FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (db, &name),
            )
            .await
            .map_err(sql(format!("reading columns of {}", qualified(db, &name))))?;
        let columns: Vec<ColumnEntry> = cols
            .into_iter()
            .map(|(n, t, extra)| ColumnEntry {
                name: n,
                column_type: t,
                generated: extra.to_ascii_uppercase().contains("GENERATED"),
            })
            .collect();
        let key: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
                (db, &name),
            )
            .await
            .map_err(sql("reading primary keys"))?;
        let int_key = match key.as_slice() {
            [k] if columns.iter().any(|c| &c.name == k && is_integer(&c.column_type)) => Some(k.clone()),
            _ => None,
        };
        let transactional = engine.as_deref().is_some_and(|e| e.eq_ignore_ascii_case("InnoDB"));
        tables.push(TableJob {
            db: db.into(),
            name,
            transactional,
            columns,
            int_key,
            data_length: data_length.unwrap_or(0),
        });
    }
    Ok(tables)
}

fn is_integer(column_type: &str) -> bool {
    let t = column_type.to_ascii_lowercase();
    ["tinyint", "smallint", "mediumint", "int", "bigint"].iter().any(|p| t.starts_with(p))
}

async fn write_create_table(conn: &mut Conn, sink: &Sink, t: &TableJob) -> Result<()> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE TABLE {}", qualified(&t.db, &t.name)))
        .await
        .map_err(sql(format!("SHOW CREATE TABLE {}", qualified(&t.db, &t.name))))?;
    write_file(sink, &table_schema_file(t), format!("{};\n", row.map(|r| r.1).unwrap_or_default()).as_bytes()).await
}

/// A table's CREATE TABLE file, relative to the dump.
fn table_schema_file(t: &TableJob) -> String {
    format!("schema/{}/{}.sql", encode_name(&t.db), encode_name(&t.name))
}

async fn source_info(conn: &mut Conn) -> Result<SourceInfo> {
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(sql("SELECT VERSION()"))?;
    let version = version.unwrap_or_default();
    let hostname: Option<String> = conn.query_first("SELECT @@hostname").await.map_err(sql("SELECT @@hostname"))?;
    let status: Vec<Row> = conn.query("SHOW MASTER STATUS").await.map_err(sql("SHOW MASTER STATUS"))?;
    let (binlog_file, binlog_position) = match status.into_iter().next() {
        Some(mut r) => (r.take::<String, _>(0), r.take::<u64, _>(1)),
        None => (None, None),
    };
    let gtid_query =
        if version.contains("MariaDB") { "SELECT @@GLOBAL.gtid_binlog_pos" } else { "SELECT @@GLOBAL.gtid_executed" };
    let gtid: Option<String> = conn.query_first(gtid_query).await.map_err(sql(gtid_query))?;
    Ok(SourceInfo {
        server_version: version,
        hostname: hostname.unwrap_or_default(),
        gtid_executed: gtid.filter(|g| !g.is_empty()),
        binlog_file,
        binlog_position,
    })
}

/// Splits each table into jobs: key ranges where the key allows, else one pass.
async fn plan_chunks(
    worker: &mut RowConn,
    shared: &Shared,
    tables: &[usize],
    numbers: &mut HashMap<usize, usize>,
) -> Result<Vec<ChunkJob>> {
    let mut jobs = Vec::new();
    for &i in tables {
        let t = &shared.tables[i];
        let pieces = (t.data_length / shared.options.chunk_size.max(1)).max(1);
        let range = match (&t.int_key, pieces) {
            (Some(k), p) if p > 1 => {
                let q = format!("SELECT MIN({0}), MAX({0}) FROM {1}", quote(k), qualified(&t.db, &t.name));
                let bounds = worker.query_first(&q, "reading key bounds").await?;
                match bounds.as_deref() {
                    Some([Some(lo), Some(hi)]) => lo.parse::<i128>().ok().zip(hi.parse::<i128>().ok()),
                    _ => None,
                }
            }
            _ => None,
        };
        match range {
            Some((lo, hi)) => {
                let span = (hi - lo + 1).max(1);
                let n = i128::from(pieces).min(span);
                for p in 0..n {
                    let from = lo + span * p / n;
                    let to = lo + span * (p + 1) / n;
                    let number = numbers.entry(i).or_default();
                    jobs.push(ChunkJob { table: i, range: Some((from, to, p == n - 1)), number: *number });
                    *number += 1;
                }
            }
            None => {
                jobs.push(ChunkJob { table: i, range: None, number: 0 });
            }
        }
    }
    Progress::add(&shared.progress.chunks_total, jobs.len() as u64);
    // Largest tables first, so the longest job does not start last.
    jobs.sort_by_key(|j| std::cmp::Reverse(shared.tables[j.table].data_length));
    Ok(jobs)
}

/// Runs jobs over the worker connections; returns the connections for the next phase.
async fn run_jobs(
    workers: Vec<RowConn>,
    shared: &Arc<Shared>,
    jobs: Vec<ChunkJob>,
) -> Result<(Vec<RowConn>, Vec<ChunkResult>)> {
    let queue = Arc::new(Mutex::new(std::collections::VecDeque::from(jobs)));
    let mut set = tokio::task::JoinSet::new();
    for mut conn in workers {
        let (queue, shared) = (queue.clone(), shared.clone());
        set.spawn(async move {
            let mut results = Vec::new();
            loop {
                let job = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(job) = job else { break };
                results.push(dump_chunk(&mut conn, &shared, job).await?);
            }
            Ok::<_, DumpError>((conn, results))
        });
    }
    let mut conns = Vec::new();
    let mut results = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (conn, r) = joined.map_err(|e| DumpError::Internal(format!("a worker failed: {e}")))??;
        conns.push(conn);
        results.extend(r);
    }
    Ok((conns, results))
}

/// A chunk file being written: each block of rows becomes one independent zstd frame,
/// compressed on the pipeline pool and hashed as it is written. One-shot frames of a known
/// size compress about twice as fast as a stream over the same bytes (no window carried
/// between blocks), for a few percent of size.
struct ChunkWriter {
    rel: String,
    path: PathBuf,
    /// The file and the compressor travel to the pool together and come back.
    state: Option<(HashingWriter, Compressor)>,
    rows: u64,
    bytes: u64,
    first_key: Option<String>,
    last_key: Option<String>,
}

/// zstd's context and the buffer its frames are written into, both reused from block to
/// block rather than allocated per block.
/// Level 0 stores: frames of raw blocks, no zstd context.
struct Compressor {
    zstd: Option<zstd::bulk::Compressor<'static>>,
    frame: Vec<u8>,
}

impl Compressor {
    fn new(level: i32) -> std::io::Result<Self> {
        let zstd = if level == 0 { None } else { Some(zstd::bulk::Compressor::new(level)?) };
        Ok(Compressor { zstd, frame: Vec::new() })
    }

    fn compress(&mut self, block: &[u8]) -> std::io::Result<&[u8]> {
        self.frame.clear();
        match &mut self.zstd {
            Some(zstd) => {
                self.frame.reserve(zstd::zstd_safe::compress_bound(block.len()));
                zstd.compress_to_buffer(block, &mut self.frame)?;
            }
            None => floodgate_format::compress::stored_zstd_frame(block, &mut self.frame),
        }
        Ok(&self.frame)
    }
}

struct HashingWriter {
    file: std::fs::File,
    hash: Sha256,
    written: u64,
}

impl HashingWriter {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.file.write_all(buf)?;
        self.hash.update(buf);
        self.written += buf.len() as u64;
        Ok(())
    }
}

impl ChunkWriter {
    fn create(shared: &Shared, t: &TableJob, number: usize) -> Result<ChunkWriter> {
        let dir_rel = format!("data/{}/{}", encode_name(&t.db), encode_name(&t.name));
        let dir = shared.sink.out().join(&dir_rel);
        create_private_dir(&dir).map_err(io(&dir))?;
        let rel = format!("{dir_rel}/{number:06}.tsv.zst");
        let path = shared.sink.out().join(&rel);
        let file = files::create_new(&path, files::PRIVATE).map_err(io(&path))?;
        let compressor = Compressor::new(shared.options.compress_level).map_err(io(&path))?;
        let writer = HashingWriter { file, hash: Sha256::new(), written: 0 };
        Ok(ChunkWriter {
            rel,
            path,
            state: Some((writer, compressor)),
            rows: 0,
            bytes: 0,
            first_key: None,
            last_key: None,
        })
    }

    /// Compresses a block of encoded rows into one frame, on the pipeline pool; gives the
    /// block back, emptied, for the next rows.
    async fn write(&mut self, shared: &Shared, block: Vec<u8>) -> Result<Vec<u8>> {
        if block.is_empty() {
            return Ok(block);
        }
        // A spent writer (see `finish`) never gets rows: losing them silently would be worse.
        let Some((mut writer, mut compressor)) = self.state.take() else {
            return Err(DumpError::Internal(format!("{}: written after it was finished", self.path.display())));
        };
        self.bytes += block.len() as u64;
        let before = writer.written;
        let (writer, compressor, mut block, result) = shared
            .pipeline
            .run(move || {
                let r = compressor.compress(&block).and_then(|frame| writer.write_all(frame));
                (writer, compressor, block, r)
            })
            .await
            .ok_or_else(|| DumpError::Internal("the compressor stopped".into()))?;
        result.map_err(io(&self.path))?;
        shared.sink.wrote(writer.written - before);
        self.state = Some((writer, compressor));
        block.clear();
        Ok(block)
    }

    /// Ends the chunk: its manifest entry, and its file for the sink. The writer is spent
    /// (it writes nothing more) until replaced by the next chunk's.
    fn finish(&mut self, shared: &Shared) -> Result<(ChunkEntry, std::fs::File)> {
        let (mut writer, mut compressor) =
            self.state.take().ok_or_else(|| DumpError::Internal("chunk finished twice".into()))?;
        if writer.written == 0 {
            // An empty chunk is still a valid zstd file: one empty frame.
            let frame = compressor.compress(&[]).map_err(io(&self.path))?;
            writer.write_all(frame).map_err(io(&self.path))?;
            shared.sink.wrote(writer.written);
        }
        let sha256 = writer.hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let entry = ChunkEntry {
            file: std::mem::take(&mut self.rel),
            rows: self.rows,
            bytes: self.bytes,
            compressed_bytes: writer.written,
            sha256,
            first_key: self.first_key.take(),
            last_key: self.last_key.take(),
        };
        Ok((entry, writer.file))
    }
}

const BLOCK: usize = 1 << 20;

/// Reads one job's rows and writes its chunk file(s).
async fn dump_chunk(worker: &mut RowConn, shared: &Shared, job: ChunkJob) -> Result<ChunkResult> {
    let t = &shared.tables[job.table];
    let name = qualified(&t.db, &t.name);
    let columns: Vec<&ColumnEntry> = t.columns.iter().filter(|c| !c.generated).collect();
    let key_index = t.int_key.as_ref().and_then(|k| columns.iter().position(|c| &c.name == k));
    let list = columns.iter().map(|c| quote(&c.name)).collect::<Vec<_>>().join(", ");
    let mut query = format!("SELECT {list} FROM {name}");
    if let (Some((from, to, last)), Some(k)) = (job.range, &t.int_key) {
        let k = quote(k);
        query.push_str(&format!(" WHERE {k} >= {from}"));
        if !last {
            query.push_str(&format!(" AND {k} < {to}"));
        }
        query.push_str(&format!(" ORDER BY {k}"));
    } else if let Some(k) = &t.int_key {
        query.push_str(&format!(" ORDER BY {}", quote(k)));
    }
    let mut out = ChunkOutput::new(shared, job, key_index)?;
    let mut rows = worker.rows(&query, &format!("reading {name}")).await?;
    rows.expect_columns(columns.len(), &name)?;
    while let Some(row) = rows.next().await? {
        out.add_row(row.values())?;
        out.write_if_full().await?;
    }
    out.finish().await
}

/// The chunk file(s) of one job as its rows arrive: rows are encoded into a block, blocks
/// are compressed and written, a one-pass table is cut into chunks by size.
struct ChunkOutput<'s> {
    shared: &'s Shared,
    job: ChunkJob,
    key_index: Option<usize>,
    number: usize,
    writer: ChunkWriter,
    entries: Vec<(usize, ChunkEntry)>,
    block: Vec<u8>,
    digest: ContentDigest,
    /// The last key read, kept as bytes: turning every row's key into a String cost an
    /// allocation per row; only the chunk's first and last are ever written.
    last_key: Option<Vec<u8>>,
}

impl<'s> ChunkOutput<'s> {
    fn new(shared: &'s Shared, job: ChunkJob, key_index: Option<usize>) -> Result<Self> {
        let writer = ChunkWriter::create(shared, &shared.tables[job.table], job.number)?;
        Ok(ChunkOutput {
            shared,
            number: job.number,
            job,
            key_index,
            writer,
            entries: Vec::new(),
            block: Vec::with_capacity(BLOCK + 4096),
            digest: ContentDigest::default(),
            last_key: None,
        })
    }

    /// Encodes one row straight into the block; the digest reads it where it landed.
    fn add_row<'v>(&mut self, values: impl Iterator<Item = floodgate_conn::Result<Option<&'v [u8]>>>) -> Result<()> {
        let start = self.block.len();
        let (key_index, writer, last_key) = (self.key_index, &mut self.writer, &mut self.last_key);
        encode_row(values, &mut self.block, |i, value| {
            if Some(i) != key_index {
                return;
            }
            let key = value.unwrap_or(b"NULL");
            if writer.first_key.is_none() {
                writer.first_key = Some(String::from_utf8_lossy(key).into_owned());
            }
            let last = last_key.get_or_insert_with(Vec::new);
            last.clear();
            last.extend_from_slice(key);
        })?;
        self.digest.add_row(&self.block[start..]);
        self.block.push(b'\n');
        self.writer.rows += 1;
        Ok(())
    }

    /// Hands a full block to the compressor; starts the next chunk of a one-pass table
    /// once this one is big enough.
    async fn write_if_full(&mut self) -> Result<()> {
        if self.block.len() >= BLOCK {
            Progress::add(&self.shared.progress.bytes_done, self.block.len() as u64);
            let block = std::mem::take(&mut self.block);
            self.block = self.writer.write(self.shared, block).await?;
        }
        if self.job.range.is_none() && self.writer.bytes >= self.shared.options.chunk_size {
            self.seal().await?;
            self.number += 1;
            self.writer = ChunkWriter::create(self.shared, &self.shared.tables[self.job.table], self.number)?;
        }
        Ok(())
    }

    /// Ends the chunk being written and hands its file to the sink, which may wait for room
    /// in the upload queue. The next chunk's file is created only after: a waiting worker
    /// holds one file in the spool, not two.
    async fn seal(&mut self) -> Result<()> {
        self.writer.last_key = self.last_key.take().map(|k| String::from_utf8_lossy(&k).into_owned());
        let (entry, file) = self.writer.finish(self.shared)?;
        self.shared.sink.finished(&entry.file, file, entry.compressed_bytes).await?;
        self.entries.push((self.number, entry));
        Ok(())
    }

    async fn finish(mut self) -> Result<ChunkResult> {
        Progress::add(&self.shared.progress.bytes_done, self.block.len() as u64);
        let block = std::mem::take(&mut self.block);
        self.writer.write(self.shared, block).await?;
        self.seal().await?;
        let rows: u64 = self.entries.iter().map(|(_, e)| e.rows).sum();
        Progress::add(&self.shared.progress.rows_done, rows);
        Progress::add(&self.shared.progress.chunks_done, self.entries.len() as u64);
        // Chunk numbers of one-pass tables start at 0; range chunks have their own numbers.
        Ok(ChunkResult { table: self.job.table, entries: self.entries, digest: self.digest })
    }
}

/// Writes a schema or post-data file of the dump (`rel`, relative to the dump), new and
/// private, and hands it to the sink: synced, or uploaded.
async fn write_file(sink: &Sink, rel: &str, bytes: &[u8]) -> Result<()> {
    let path = sink.out().join(rel);
    let mut f = files::create_new(&path, files::PRIVATE).map_err(io(&path))?;
    f.write_all(bytes).map_err(io(&path))?;
    sink.wrote(bytes.len() as u64);
    sink.finished(rel, f, bytes.len() as u64).await
}

/// The manifest, written last and renamed into place: its presence means the dump is whole.
fn write_manifest(out: &Path, manifest: &Manifest) -> Result<()> {
    let json = manifest_json(manifest)?;
    let path = out.join(MANIFEST);
    files::replace(&path, &json, files::PRIVATE).map_err(io(&path))
}

fn manifest_json(manifest: &Manifest) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(manifest).map_err(|e| DumpError::Internal(format!("serialising the manifest: {e}")))
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    floodgate_format::native::rfc3339(secs)
}
