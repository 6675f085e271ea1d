//! The chunk pipeline: reads backup files, decompresses them and cuts them into what the
//! loaders send, on a dedicated rayon pool, ahead of the loaders and in bounded memory.
//!
//! Every stream is a bounded tokio channel fed by one rayon task. The task blocks when the
//! loader falls behind, so memory in flight is at most `queue_depth` blocks per open stream,
//! and a loader opens at most two streams at once (a chunk's SQL and its data file). With
//! the default 1 MiB blocks and depth 8 that is 16 MiB per connection.
//!
//! Boundary: the pipeline never talks to a server; the loader never decompresses.

pub mod insert;
mod progress;
pub mod verify;

pub use insert::encode_row;
pub use progress::{Phase, Progress};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use floodgate_format::compress::AtMost;
use floodgate_format::split::{
    LimitSetBy, ReadError, SplitError, Statement, StatementLimit, StatementReader, Terminator,
};
use floodgate_format::RowsCheck;
use floodgate_format::SqlFile;
use tokio::sync::mpsc;

/// A failure while reading a backup file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{}: {reason}", file.display(), offset.map(|o| format!(" at byte {o}")).unwrap_or_default())]
pub struct PipelineError {
    /// The file.
    pub file: PathBuf,
    /// Offset in the decompressed stream, where known.
    pub offset: Option<u64>,
    /// What went wrong.
    pub reason: String,
    /// The file is damaged (corrupt compression, broken SQL), not merely unreadable.
    pub integrity: bool,
}

impl floodgate_format::Classify for PipelineError {
    fn class(&self) -> floodgate_format::ErrorClass {
        match self.integrity {
            true => floodgate_format::ErrorClass::Integrity,
            false => floodgate_format::ErrorClass::Failed,
        }
    }
}

impl PipelineError {
    fn from_read(file: &Path, e: ReadError, limit: &StatementLimit) -> Self {
        match e {
            ReadError::Io { offset, source } => PipelineError {
                file: file.to_path_buf(),
                offset: Some(offset),
                integrity: is_corruption(&source),
                reason: format!("cannot read: {source}"),
            },
            // Names its own offset and size; the limit says where it comes from. Over the
            // memory budget's share it is taken for damage (an endless statement); over the
            // target's max_allowed_packet it may as well be a genuine statement the target
            // is set up too small for, so it is a plain failure, not a verdict on the backup.
            ReadError::Split(too_large @ SplitError::TooLarge { .. }) => PipelineError {
                file: file.to_path_buf(),
                offset: None,
                reason: format!("{too_large}: the limit is {}", limit.explain()),
                integrity: !matches!(limit.set_by, LimitSetBy::MaxAllowedPacket),
            },
            ReadError::Split(s) => PipelineError {
                file: file.to_path_buf(),
                offset: None,
                reason: format!("malformed SQL: {s}"),
                integrity: true,
            },
        }
    }
}

/// A read error on a file that opened fine means damaged content (the decoders report bad
/// data with assorted kinds), unless the file vanished or its permissions changed.
fn is_corruption(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    // Decoders report damage as InvalidData, UnexpectedEof or Other; a file that cannot be
    // opened, or an object store that cannot be reached, says nothing about the backup.
    !matches!(
        e.kind(),
        K::NotFound
            | K::PermissionDenied
            | K::TimedOut
            | K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
    )
}

/// Sizes that bound the pipeline's memory.
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    /// Worker threads for reading and decompression.
    pub threads: usize,
    /// Bytes per block sent to a loader.
    pub block_size: usize,
    /// Blocks buffered per stream.
    pub queue_depth: usize,
    /// Largest SQL statement accepted: a share of the budget, or the target's
    /// max_allowed_packet when that is smaller ([`PipelineConfig::with_max_allowed_packet`]).
    pub statement_limit: StatementLimit,
}

impl PipelineConfig {
    /// A configuration for `connections` loaders within `memory_budget` bytes.
    pub fn for_budget(connections: usize, memory_budget: usize) -> Self {
        let block_size = 1 << 20;
        let streams = 2 * connections.max(1);
        let queue_depth = (memory_budget / (streams * block_size)).clamp(2, 16);
        let statement_limit = StatementLimit::for_budget(memory_budget, connections);
        PipelineConfig { threads: streams, block_size, queue_depth, statement_limit }
    }

    /// Caps the statement limit at the target's `max_allowed_packet`: the server refuses a
    /// larger statement anyway, so holding one that large is memory spent on a failure.
    pub fn with_max_allowed_packet(mut self, packet: u64) -> Self {
        self.statement_limit = self.statement_limit.with_max_allowed_packet(packet);
        self
    }

    /// Bytes of statement batches a stream may hold ahead of its reader.
    fn batch_bytes_ahead(&self) -> usize {
        self.queue_depth * self.block_size
    }
}

/// The pipeline's thread pool and sizes.
#[derive(Clone)]
pub struct Pipeline {
    pool: Arc<rayon::ThreadPool>,
    config: PipelineConfig,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("config", &self.config).finish()
    }
}

/// Statements of one SQL file, in order, batched. The channel bounds how many batches wait,
/// and a batch may hold one statement of up to the statement limit, so the bytes waiting are
/// bounded too ([`ByteGate`]): a batch is given back when the reader asks for the next one.
pub struct StatementStream {
    batches: mpsc::Receiver<Result<Vec<Statement>, PipelineError>>,
    gate: Arc<ByteGate>,
    /// Bytes of the batch handed out last.
    handed_out: usize,
}

impl StatementStream {
    /// The next batch; None at the end. An error ends the stream.
    pub async fn recv(&mut self) -> Option<Result<Vec<Statement>, PipelineError>> {
        self.gate.leave(std::mem::take(&mut self.handed_out));
        let item = self.batches.recv().await;
        if let Some(Ok(batch)) = &item {
            self.handed_out = batch_bytes(batch);
        }
        item
    }
}

impl Drop for StatementStream {
    fn drop(&mut self) {
        self.gate.close();
    }
}

fn batch_bytes(batch: &[Statement]) -> usize {
    batch.iter().map(|s| s.text.len()).sum()
}

/// Bytes of statement batches between a producer and its reader. The producer waits until a
/// batch fits (one always fits when nothing else is out), and stops once the reader is gone.
struct ByteGate {
    state: std::sync::Mutex<GateState>,
    changed: std::sync::Condvar,
    capacity: usize,
}

#[derive(Default)]
struct GateState {
    out: usize,
    closed: bool,
}

impl ByteGate {
    fn new(capacity: usize) -> Self {
        ByteGate { state: Default::default(), changed: std::sync::Condvar::new(), capacity }
    }

    /// Waits until `bytes` more fit; false once the reader is gone.
    fn enter(&self, bytes: usize) -> bool {
        let Ok(mut state) = self.state.lock() else { return false };
        while !state.closed && state.out > 0 && state.out + bytes > self.capacity {
            state = match self.changed.wait(state) {
                Ok(s) => s,
                Err(_) => return false,
            };
        }
        if state.closed {
            return false;
        }
        state.out += bytes;
        true
    }

    fn leave(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        if let Ok(mut state) = self.state.lock() {
            state.out = state.out.saturating_sub(bytes);
        }
        self.changed.notify_all();
    }

    fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.closed = true;
        }
        self.changed.notify_all();
    }
}

/// The sending half of a [`StatementStream`].
struct BatchSender {
    tx: mpsc::Sender<Result<Vec<Statement>, PipelineError>>,
    gate: Arc<ByteGate>,
}

impl BatchSender {
    /// A stream and its sender, holding at most `bytes_ahead` bytes of batches (or one batch).
    fn channel(config: &PipelineConfig) -> (BatchSender, StatementStream) {
        let (tx, batches) = mpsc::channel(config.queue_depth);
        let gate = Arc::new(ByteGate::new(config.batch_bytes_ahead()));
        (BatchSender { tx, gate: gate.clone() }, StatementStream { batches, gate, handed_out: 0 })
    }

    /// Sends a batch once it fits; false when the reader stopped listening.
    fn send(&self, batch: Vec<Statement>) -> bool {
        self.gate.enter(batch_bytes(&batch)) && self.tx.blocking_send(Ok(batch)).is_ok()
    }

    fn fail(&self, e: PipelineError) {
        let _ = self.tx.blocking_send(Err(e));
    }
}

/// Raw bytes of one data file, decompressed, plus the number of rows seen so far.
pub struct ByteStream {
    /// The blocks, in order; an error ends the stream.
    pub blocks: mpsc::Receiver<Result<Bytes, PipelineError>>,
    /// Rows (unescaped line ends) counted in the blocks sent so far.
    pub rows: Arc<AtomicU64>,
}

impl Pipeline {
    /// Starts the worker pool.
    pub fn new(config: PipelineConfig) -> std::io::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads.max(1))
            .thread_name(|i| format!("floodgate-pipeline-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Pipeline { pool: Arc::new(pool), config })
    }

    /// The configuration in force.
    pub fn config(&self) -> PipelineConfig {
        self.config
    }

    /// Streams the statements of `file` (decompressed if needed), split by `terminator`.
    /// A statement left without a terminator at the end of the file means the file was cut
    /// short, and is reported as an error. The file must be the one planned
    /// ([`floodgate_format::files::open_planned`]).
    pub fn statements(&self, file: &SqlFile, terminator: Terminator) -> StatementStream {
        let (tx, rx) = BatchSender::channel(&self.config);
        let file = file.clone();
        let config = self.config;
        self.pool.spawn(move || {
            let result = produce_statements(&file, terminator, config, &tx);
            if let Err(e) = result {
                tx.fail(e);
            }
        });
        rx
    }

    /// Streams the statements of an already opened (still compressed) stream, such as a
    /// mysqldump file or standard input; `name` is used in errors. `on_read` is told how many
    /// raw bytes each read consumed, for progress. Text after the last delimiter is
    /// passed on marked unterminated: whether that is an error is the caller's call. `ends`
    /// keeps the first and last bytes of the decompressed stream (a dump's header and
    /// trailer comments, which the splitter drops).
    pub fn stream_statements(
        &self,
        raw: Box<dyn Read + Send>,
        name: PathBuf,
        terminator: Terminator,
        on_read: Box<dyn Fn(u64) + Send>,
        ends: Option<Arc<floodgate_format::mysqldump::Ends>>,
    ) -> StatementStream {
        let (tx, rx) = BatchSender::channel(&self.config);
        let config = self.config;
        self.pool.spawn(move || {
            let counted = CountingReader { inner: raw, on_read };
            let result = floodgate_format::compress::decoder(counted)
                .map_err(|e| PipelineError {
                    file: name.clone(),
                    offset: Some(0),
                    reason: e.to_string(),
                    integrity: true,
                })
                .and_then(|reader| match ends {
                    Some(ends) => send_statements(&name, Box::new(ends.reader(reader)), terminator, config, &tx, true),
                    None => send_statements(&name, reader, terminator, config, &tx, true),
                });
            if let Err(e) = result {
                tx.fail(e);
            }
        });
        rx
    }

    /// Like [`Pipeline::bytes`], for a native chunk that must be what `check` declares. A
    /// file of another size on disk is refused before it is read; decompression stops at
    /// the declared size (a decompression bomb is an integrity error at once); the last
    /// block is held back until the file's SHA-256 is known, so on a mismatch the server
    /// never receives the whole chunk, and the stream ends with an integrity error instead
    /// of ending cleanly, so the loader rolls the chunk back before it commits.
    pub fn bytes_verified(&self, file: &SqlFile, check: &RowsCheck) -> ByteStream {
        let (file, check) = (file.clone(), RowsCheck { sha256: check.sha256.to_ascii_lowercase(), ..check.clone() });
        self.byte_stream(move |block_size, rows, tx| produce_verified(&file, &check, block_size, rows, tx))
    }

    /// Like [`Pipeline::bytes`], for a data file the dump says decompresses to `declared`
    /// bytes (MySQL Shell's `.idx`): decompression stops one byte past it (a bomb is an
    /// integrity error at once), and a file that ends short of it (truncated) ends the stream
    /// with an integrity error instead of its last block, so the chunk is never committed.
    pub fn bytes_sized(&self, file: &SqlFile, declared: u64) -> ByteStream {
        let file = file.clone();
        self.byte_stream(move |block_size, rows, tx| produce_sized(&file, declared, block_size, rows, tx))
    }

    /// Runs CPU-bound `work` on the pipeline's pool and returns its result to async code.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            let _ = tx.send(work());
        });
        rx.await.ok()
    }

    /// Streams the decompressed bytes of `file` in blocks, counting rows in LOAD DATA's
    /// default format (a line end not escaped by a backslash ends a row).
    pub fn bytes(&self, file: &SqlFile) -> ByteStream {
        let file = file.clone();
        self.byte_stream(move |block_size, rows, tx| produce_bytes(&file, block_size, rows, tx))
    }

    /// Runs `produce` on the pool, feeding a new byte stream (its blocks of `block_size`, its
    /// row counter); an error it returns ends the stream.
    fn byte_stream(
        &self,
        produce: impl FnOnce(usize, &AtomicU64, &mpsc::Sender<Result<Bytes, PipelineError>>) -> Result<(), PipelineError>
            + Send
            + 'static,
    ) -> ByteStream {
        let (tx, rx) = mpsc::channel(self.config.queue_depth);
        let rows = Arc::new(AtomicU64::new(0));
        let counter = rows.clone();
        let block_size = self.config.block_size;
        self.pool.spawn(move || {
            if let Err(e) = produce(block_size, &counter, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        ByteStream { blocks: rx, rows }
    }
}

fn produce_statements(
    file: &SqlFile,
    terminator: Terminator,
    config: PipelineConfig,
    tx: &BatchSender,
) -> Result<(), PipelineError> {
    let reader = open_planned(file)?;
    send_statements(&file.path, reader, terminator, config, tx, false)
}

fn send_statements(
    path: &Path,
    reader: Box<dyn Read + Send>,
    terminator: Terminator,
    config: PipelineConfig,
    tx: &BatchSender,
    allow_unterminated: bool,
) -> Result<(), PipelineError> {
    let limit = config.statement_limit;
    let mut statements = StatementReader::new(reader, terminator, limit.bytes);
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    while let Some(s) = statements.next_statement().map_err(|e| PipelineError::from_read(path, e, &limit))? {
        if !s.terminated && !allow_unterminated {
            return Err(PipelineError {
                file: path.to_path_buf(),
                offset: Some(s.offset),
                reason: "the last statement has no terminating `;`: the file is truncated".into(),
                integrity: true,
            });
        }
        batch_bytes += s.text.len();
        batch.push(s);
        if batch_bytes >= config.block_size {
            batch_bytes = 0;
            if !tx.send(std::mem::take(&mut batch)) {
                return Ok(()); // the loader stopped listening
            }
        }
    }
    if !batch.is_empty() {
        tx.send(batch);
    }
    Ok(())
}

/// Reads up to `size` bytes (fewer only at the end of the input; none at its end). On error,
/// also says how far into the block it got. A file's first block starts small and grows with
/// what arrives: most chunks of a schema with thousands of tables are a few hundred bytes, and
/// a zeroed 1 MiB buffer for each was a sixth of the client's CPU on 2,000 of them. Later
/// blocks of a file are full-sized from the start.
fn fill_block(reader: &mut impl Read, size: usize, first: bool) -> Result<Vec<u8>, (u64, std::io::Error)> {
    const FIRST_BLOCK: usize = 16 << 10;
    let mut block = Vec::with_capacity(if first { size.min(FIRST_BLOCK) } else { size });
    match reader.take(size as u64).read_to_end(&mut block) {
        Ok(_) => Ok(block),
        Err(e) => Err((block.len() as u64, e)),
    }
}

/// Hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hash: sha2::Sha256,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hash: sha2::Digest::new() }
    }

    /// The lower-case hex SHA-256 of everything read.
    pub fn hex(self) -> String {
        sha2::Digest::finalize(self.hash).iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hash, &buf[..n]);
        Ok(n)
    }
}

fn produce_verified(
    file: &SqlFile,
    check: &RowsCheck,
    block_size: usize,
    rows: &AtomicU64,
    tx: &mpsc::Sender<Result<Bytes, PipelineError>>,
) -> Result<(), PipelineError> {
    let err = |offset: Option<u64>, reason: String| PipelineError {
        file: file.path.clone(),
        offset,
        reason,
        integrity: true,
    };
    let mut hashing = HashingReader::new(open_as_declared(file, check.compressed_bytes)?);
    let mut out = OneBehind { tx, rows, counter: RowCounter::default(), held: None };
    let mut offset = 0u64;
    {
        let decoder = zstd::stream::read::Decoder::with_buffer(std::io::BufReader::new(&mut hashing))
            .map_err(|e| err(Some(0), format!("not a zstd file: {e}")))?;
        let mut decoded = AtMost::new(decoder, check.bytes, "decompressed bytes");
        loop {
            let block = fill_block(&mut decoded, block_size, offset == 0)
                .map_err(|(at, e)| err(Some(offset + at), format!("cannot decompress: {e}")))?;
            if block.is_empty() {
                break;
            }
            offset += block.len() as u64;
            if !out.push(block) {
                return Ok(()); // the loader stopped listening
            }
        }
    }
    // Anything after the last frame was not read by the decoder: hash it too.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| err(None, e.to_string()))?;
    let actual = hashing.hex();
    if actual != check.sha256 {
        return Err(err(None, format!("SHA-256 is {actual}, the manifest says {}: the file is corrupt", check.sha256)));
    }
    if offset != check.bytes {
        return Err(err(None, format!("decompresses to {offset} bytes, the manifest says {}", check.bytes)));
    }
    out.release();
    Ok(())
}

fn produce_sized(
    file: &SqlFile,
    declared: u64,
    block_size: usize,
    rows: &AtomicU64,
    tx: &mpsc::Sender<Result<Bytes, PipelineError>>,
) -> Result<(), PipelineError> {
    let err = |offset: Option<u64>, reason: String, integrity: bool| PipelineError {
        file: file.path.clone(),
        offset,
        reason,
        integrity,
    };
    let reader = open_planned(file)?;
    let mut decoded = AtMost::new(reader, declared, "decompressed bytes");
    let mut out = OneBehind { tx, rows, counter: RowCounter::default(), held: None };
    let mut offset = 0u64;
    loop {
        let block = fill_block(&mut decoded, block_size, offset == 0)
            .map_err(|(at, e)| err(Some(offset + at), format!("cannot decompress: {e}"), is_corruption(&e)))?;
        if block.is_empty() {
            break;
        }
        offset += block.len() as u64;
        if !out.push(block) {
            return Ok(()); // the loader stopped listening
        }
    }
    if offset != declared {
        return Err(err(
            None,
            format!("decompresses to {offset} bytes, the dump recorded {declared}: the file is truncated"),
            true,
        ));
    }
    out.release();
    Ok(())
}

/// Opens a chunk file, once, checking it is the file that was planned, decompressed as its
/// magic bytes say. A file replaced since is an integrity error.
fn open_planned(file: &SqlFile) -> Result<Box<dyn Read + Send>, PipelineError> {
    floodgate_format::compress::open_planned(file).map_err(|e| PipelineError {
        file: file.path.clone(),
        offset: None,
        reason: e.to_string(),
        integrity: e.is_integrity(),
    })
}

/// Opens a native chunk whose manifest says it holds `declared` bytes: a file of another
/// size is refused before a byte is read, and reading stops one byte past `declared`
/// whatever the file becomes meanwhile.
fn open_as_declared(
    planned: &SqlFile,
    declared: u64,
) -> Result<AtMost<std::io::BufReader<Box<dyn Read + Send>>>, PipelineError> {
    let err =
        |reason: String, integrity: bool| PipelineError { file: planned.path.clone(), offset: None, reason, integrity };
    let (file, on_disk) = floodgate_format::files::open_planned(planned).map_err(|e| {
        let integrity = matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidData);
        err(e.to_string(), integrity)
    })?;
    if on_disk != declared {
        return Err(err(format!("{on_disk} bytes on disk, the manifest says {declared}: not read"), true));
    }
    Ok(AtMost::new(std::io::BufReader::with_capacity(256 * 1024, file), declared, "bytes"))
}

/// Hands a chunk's blocks to its loader one behind: the block read last waits until the
/// whole file is known to be right ([`OneBehind::release`]), so a bad chunk never reaches
/// the server whole.
struct OneBehind<'a> {
    tx: &'a mpsc::Sender<Result<Bytes, PipelineError>>,
    rows: &'a AtomicU64,
    counter: RowCounter,
    held: Option<Vec<u8>>,
}

impl OneBehind<'_> {
    /// Holds `block` and sends the one held before; false when the loader stopped listening.
    fn push(&mut self, block: Vec<u8>) -> bool {
        match self.held.replace(block) {
            Some(previous) => self.send(previous),
            None => true,
        }
    }

    /// Sends the block held back: the file checked out.
    fn release(mut self) {
        if let Some(last) = self.held.take() {
            self.send(last);
        }
    }

    fn send(&mut self, block: Vec<u8>) -> bool {
        self.rows.fetch_add(self.counter.count(&block), Ordering::Relaxed);
        self.tx.blocking_send(Ok(Bytes::from(block))).is_ok()
    }
}

fn produce_bytes(
    file: &SqlFile,
    block_size: usize,
    rows: &AtomicU64,
    tx: &mpsc::Sender<Result<Bytes, PipelineError>>,
) -> Result<(), PipelineError> {
    let err = |offset: Option<u64>, e: &dyn std::fmt::Display, integrity: bool| PipelineError {
        file: file.path.clone(),
        offset,
        reason: e.to_string(),
        integrity,
    };
    let mut reader = open_planned(file)?;
    let mut counter = RowCounter::default();
    let mut offset = 0u64;
    loop {
        let block = fill_block(&mut reader, block_size, offset == 0)
            .map_err(|(at, e)| err(Some(offset + at), &e, is_corruption(&e)))?;
        if block.is_empty() {
            return Ok(());
        }
        offset += block.len() as u64;
        rows.fetch_add(counter.count(&block), Ordering::Relaxed);
        if tx.blocking_send(Ok(Bytes::from(block))).is_err() {
            return Ok(());
        }
    }
}

use std::io::Read;

/// Reports the bytes read through it.
struct CountingReader {
    inner: Box<dyn Read + Send>,
    on_read: Box<dyn Fn(u64) + Send>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.on_read)(n as u64);
        Ok(n)
    }
}

/// Counts rows in LOAD DATA's default format across block boundaries.
#[derive(Debug, Default, Clone)]
pub struct RowCounter {
    escaped: bool,
}

impl RowCounter {
    /// Rows ended in `block`, given everything counted before it.
    pub fn count(&mut self, block: &[u8]) -> u64 {
        let mut rows = 0;
        for &b in block {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'\n' {
                rows += 1;
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    /// A file as a plan finds it.
    fn planned(path: &std::path::Path) -> floodgate_format::SqlFile {
        floodgate_format::SqlFile::found(path.to_path_buf(), &std::fs::metadata(path).unwrap())
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_rows_not_escaped_newlines() {
        let mut c = RowCounter::default();
        assert_eq!(c.count(b"1\ta\\\nb\n2\t\\\\\n"), 2);
    }

    /// Yields `data` a few bytes a read, then fails.
    struct FailsAfter<'a> {
        data: &'a [u8],
    }

    impl Read for FailsAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.data.is_empty() {
                return Err(std::io::Error::other("disk gone"));
            }
            let n = buf.len().min(self.data.len()).min(3);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn blocks_are_full_until_the_end_and_errors_say_where() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut reader = &data[..];
        let first = fill_block(&mut reader, 40_000, true).unwrap();
        let second = fill_block(&mut reader, 40_000, false).unwrap();
        let last = fill_block(&mut reader, 40_000, false).unwrap();
        assert_eq!((first.len(), second.len(), last.len()), (40_000, 40_000, 20_000));
        assert_eq!([first, second, last].concat(), data);
        assert!(fill_block(&mut reader, 40_000, false).unwrap().is_empty());

        let mut failing = FailsAfter { data: b"0123456789" };
        let (at, e) = fill_block(&mut failing, 64, true).unwrap_err();
        assert_eq!((at, e.to_string().as_str()), (10, "disk gone"));
    }

    proptest! {
        #[test]
        fn row_count_does_not_depend_on_blocks(data in prop::collection::vec(prop::sample::select(vec![b'a', b'\\', b'\n', b'\t']), 0..200), cut in any::<usize>()) {
            let whole = RowCounter::default().count(&data);
            let cut = cut % (data.len() + 1);
            let mut c = RowCounter::default();
            let parts = c.count(&data[..cut]) + c.count(&data[cut..]);
            prop_assert_eq!(whole, parts);
        }
    }

    #[tokio::test]
    async fn truncated_sql_file_is_an_integrity_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.t.00000.sql");
        std::fs::write(&path, b"INSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2").unwrap();
        let p = Pipeline::new(PipelineConfig::for_budget(1, 1 << 20)).unwrap();
        let mut rx = p.statements(&planned(&path), Terminator::SemicolonNewline);
        let mut saw_error = None;
        while let Some(item) = rx.recv().await {
            if let Err(e) = item {
                saw_error = Some(e);
            }
        }
        let e = saw_error.unwrap();
        assert!(e.integrity);
        assert!(e.to_string().contains("db.t.00000.sql at byte 26"), "{e}");
    }

    #[tokio::test]
    async fn corrupt_zstd_is_an_integrity_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.dat.zst");
        let mut z = zstd_bytes(&b"1\tabc\n".repeat(50_000));
        let mid = z.len() / 2;
        z[mid] ^= 0x55;
        std::fs::write(&path, z).unwrap();
        let p = Pipeline::new(PipelineConfig::for_budget(1, 1 << 20)).unwrap();
        let mut s = p.bytes(&planned(&path));
        let mut err = None;
        while let Some(item) = s.blocks.recv().await {
            if let Err(e) = item {
                err = Some(e);
            }
        }
        assert!(err.unwrap().integrity);
    }

    /// A zstd frame of `blocks` RLE blocks of 128 KiB of `byte` each (4 bytes per block).
    pub(crate) fn rle_bomb(byte: u8, blocks: usize) -> Vec<u8> {
        let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3];
        for i in 0..blocks {
            let last = u32::from(i + 1 == blocks);
            out.extend_from_slice(&(last | 1 << 1 | (128 << 10) << 3).to_le_bytes()[..3]);
            out.push(byte);
        }
        out
    }

    pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
        let mut h = HashingReader::new(bytes);
        std::io::copy(&mut h, &mut std::io::sink()).unwrap();
        h.hex()
    }

    /// Everything a verified stream gives: its blocks' bytes, then its error if any.
    async fn drain(mut s: ByteStream) -> (u64, Option<PipelineError>) {
        let mut got = 0;
        while let Some(item) = s.blocks.recv().await {
            match item {
                Ok(b) => got += b.len() as u64,
                Err(e) => return (got, Some(e)),
            }
        }
        (got, None)
    }

    /// A chunk replaced after the plan was made (by another file, a link to another file, a
    /// FIFO) is refused as an integrity error when it is opened, before a byte is sent; the
    /// planned file itself reads.
    #[tokio::test]
    async fn a_chunk_swapped_after_planning_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pipeline::new(PipelineConfig::for_budget(1, 64 << 20)).unwrap();
        let path = dir.path().join("chunk.tsv");
        std::fs::write(&path, b"1\tx\n").unwrap();
        let plan = planned(&path);
        assert_eq!(drain(p.bytes(&plan)).await.0, 4);
        let other = dir.path().join("other.tsv");
        std::fs::write(&other, b"2\ty\n").unwrap();
        let swaps: [&dyn Fn(); 3] = [
            &|| std::fs::rename(&other, &path).unwrap(),
            &|| std::os::unix::fs::symlink("/etc/hostname", &path).unwrap(),
            &|| assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success()),
        ];
        for swap in swaps {
            let _ = std::fs::remove_file(&path);
            swap();
            let (got, err) = drain(p.bytes(&plan)).await;
            let err = err.expect("refused");
            assert_eq!(got, 0);
            assert!(err.integrity && err.reason.contains("since the backup was read"), "{err}");
        }
    }

    fn written(dir: &tempfile::TempDir, stored: &[u8]) -> PathBuf {
        let path = dir.path().join("000000.tsv.zst");
        std::fs::write(&path, stored).unwrap();
        path
    }

    /// A decompression bomb (32 GB from a 1 MB file) stops one byte past the declared size,
    /// as an integrity error; none of it is handed on past what was declared.
    #[tokio::test]
    async fn a_bomb_stops_one_byte_past_the_declared_size() {
        let dir = tempfile::tempdir().unwrap();
        let bomb = rle_bomb(b'x', 250_000);
        let path = written(&dir, &bomb);
        let check =
            RowsCheck { sha256: sha256_hex(&bomb), rows: 1, bytes: 3 << 20, compressed_bytes: bomb.len() as u64 };
        let p = Pipeline::new(PipelineConfig::for_budget(1, 16 << 20)).unwrap();
        let (got, err) = drain(p.bytes_verified(&planned(&path), &check)).await;
        let err = err.expect("an error");
        assert!(err.integrity, "{err}");
        assert!(err.to_string().contains("more than the 3145728 decompressed bytes the manifest declares"), "{err}");
        assert!(got < 3 << 20, "{got} bytes handed on");
    }

    /// A file whose size on disk is not the declared one is refused before it is read.
    #[tokio::test]
    async fn a_file_larger_on_disk_than_declared_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"1\ta\n".repeat(1000);
        let stored = zstd_bytes(&data);
        let path = written(&dir, &stored);
        let check = RowsCheck {
            sha256: sha256_hex(&stored),
            rows: 1000,
            bytes: data.len() as u64,
            compressed_bytes: stored.len() as u64 - 1,
        };
        let p = Pipeline::new(PipelineConfig::for_budget(1, 16 << 20)).unwrap();
        let (got, err) = drain(p.bytes_verified(&planned(&path), &check)).await;
        assert_eq!(got, 0);
        let err = err.expect("an error");
        assert!(err.integrity && err.to_string().contains(&format!("{} bytes on disk", stored.len())), "{err}");
        let good = RowsCheck { compressed_bytes: stored.len() as u64, ..check };
        let (got, err) = drain(p.bytes_verified(&planned(&path), &good)).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got, data.len() as u64);
    }

    /// The last block of a chunk is handed on only once the file's SHA-256 is known to be
    /// right: on a mismatch the server never gets the whole chunk.
    #[tokio::test]
    async fn the_last_block_waits_for_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"12345\tabcdefghi\n".repeat(200_000); // 3.2 MB: four blocks
        let stored = zstd_bytes(&data);
        let path = written(&dir, &stored);
        let check = RowsCheck {
            sha256: "0".repeat(64),
            rows: 200_000,
            bytes: data.len() as u64,
            compressed_bytes: stored.len() as u64,
        };
        let p = Pipeline::new(PipelineConfig::for_budget(1, 16 << 20)).unwrap();
        let (got, err) = drain(p.bytes_verified(&planned(&path), &check)).await;
        assert!(err.expect("an error").to_string().contains("SHA-256 is"));
        assert_eq!(got, 3 << 20, "every block but the last");
        let good = RowsCheck { sha256: sha256_hex(&stored), ..check };
        let stream = p.bytes_verified(&planned(&path), &good);
        let rows = stream.rows.clone();
        let (got, err) = drain(stream).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got, data.len() as u64);
        assert_eq!(rows.load(Ordering::Relaxed), 200_000);
    }

    /// A statement stream holds at most its share of bytes ahead of its reader, whatever
    /// the size of its statements: the reader gets each batch only after the previous one is
    /// given back, once they pass the share.
    #[tokio::test]
    async fn a_statement_stream_holds_a_bounded_number_of_bytes_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.t.00000.sql");
        let big = format!("INSERT INTO t VALUES ('{}');\n", "x".repeat(3 << 20));
        std::fs::write(&path, big.repeat(12)).unwrap();
        let config = PipelineConfig::for_budget(1, 64 << 20);
        assert_eq!(config.batch_bytes_ahead(), 16 << 20, "depth 16 of 1 MiB blocks");
        let p = Pipeline::new(config).unwrap();
        let mut rx = p.statements(&planned(&path), Terminator::SemicolonNewline);
        let mut seen = 0;
        while let Some(batch) = rx.recv().await {
            seen += batch.unwrap().len();
            // Held: the batch handed out, plus what waits behind it.
            let out = rx.gate.state.lock().unwrap().out;
            assert!(out <= config.batch_bytes_ahead(), "{out} bytes out");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(seen, 12);
    }

    fn zstd_bytes(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = zstd_encoder(&mut out);
        std::io::Write::write_all(&mut enc, data).unwrap();
        enc.finish().unwrap();
        out
    }

    fn zstd_encoder(out: &mut Vec<u8>) -> zstd::stream::write::Encoder<'static, &mut Vec<u8>> {
        zstd::stream::write::Encoder::new(out, 1).unwrap()
    }
}
