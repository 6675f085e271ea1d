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
use floodgate_format::split::{ReadError, Statement, StatementReader, Terminator};
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
    fn from_read(file: &Path, e: ReadError) -> Self {
        match e {
            ReadError::Io { offset, source } => PipelineError {
                file: file.to_path_buf(),
                offset: Some(offset),
                integrity: is_corruption(&source),
                reason: format!("cannot read: {source}"),
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
    !matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied)
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
    /// Largest SQL statement accepted (the server's max_allowed_packet caps it anyway).
    pub max_statement: usize,
}

impl PipelineConfig {
    /// A configuration for `connections` loaders within `memory_budget` bytes.
    pub fn for_budget(connections: usize, memory_budget: usize) -> Self {
        let block_size = 1 << 20;
        let streams = 2 * connections.max(1);
        let queue_depth = (memory_budget / (streams * block_size)).clamp(2, 16);
        PipelineConfig { threads: streams, block_size, queue_depth, max_statement: 1 << 30 }
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

/// Statements of one SQL file, in order, batched.
pub type StatementStream = mpsc::Receiver<Result<Vec<Statement>, PipelineError>>;

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

    /// Streams the statements of `path` (decompressed if needed), split by `terminator`.
    /// A statement left without a terminator at the end of the file means the file was cut
    /// short, and is reported as an error.
    pub fn statements(&self, path: &Path, terminator: Terminator) -> StatementStream {
        let (tx, rx) = mpsc::channel(self.config.queue_depth);
        let path = path.to_path_buf();
        let config = self.config;
        self.pool.spawn(move || {
            let result = produce_statements(&path, terminator, config, &tx);
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
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
        let (tx, rx) = mpsc::channel(self.config.queue_depth);
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
                let _ = tx.blocking_send(Err(e));
            }
        });
        rx
    }

    /// Like [`Pipeline::bytes`], for a file that must hash to `sha256` (lower-case hex, of the
    /// file as stored). The hash is checked as the last block is read: on a mismatch the
    /// stream ends with an integrity error instead of ending cleanly, so the loader rolls the
    /// chunk back before it commits.
    pub fn bytes_verified(&self, path: &Path, sha256: &str) -> ByteStream {
        let (tx, rx) = mpsc::channel(self.config.queue_depth);
        let rows = Arc::new(AtomicU64::new(0));
        let counter = rows.clone();
        let path = path.to_path_buf();
        let expected = sha256.to_ascii_lowercase();
        let block_size = self.config.block_size;
        self.pool.spawn(move || {
            if let Err(e) = produce_verified(&path, &expected, block_size, &counter, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        ByteStream { blocks: rx, rows }
    }

    /// Runs CPU-bound `work` on the pipeline's pool and returns its result to async code.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            let _ = tx.send(work());
        });
        rx.await.ok()
    }

    /// Streams the decompressed bytes of `path` in blocks, counting rows in LOAD DATA's
    /// default format (a line end not escaped by a backslash ends a row).
    pub fn bytes(&self, path: &Path) -> ByteStream {
        let (tx, rx) = mpsc::channel(self.config.queue_depth);
        let rows = Arc::new(AtomicU64::new(0));
        let counter = rows.clone();
        let path = path.to_path_buf();
        let block_size = self.config.block_size;
        self.pool.spawn(move || {
            if let Err(e) = produce_bytes(&path, block_size, &counter, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        ByteStream { blocks: rx, rows }
    }
}

fn produce_statements(
    path: &Path,
    terminator: Terminator,
    config: PipelineConfig,
    tx: &mpsc::Sender<Result<Vec<Statement>, PipelineError>>,
) -> Result<(), PipelineError> {
    let reader = floodgate_format::compress::open(path).map_err(|e| PipelineError {
        file: path.to_path_buf(),
        offset: None,
        reason: e.to_string(),
        integrity: false,
    })?;
    send_statements(path, reader, terminator, config, tx, false)
}

fn send_statements(
    path: &Path,
    reader: Box<dyn Read + Send>,
    terminator: Terminator,
    config: PipelineConfig,
    tx: &mpsc::Sender<Result<Vec<Statement>, PipelineError>>,
    allow_unterminated: bool,
) -> Result<(), PipelineError> {
    let mut statements = StatementReader::new(reader, terminator, config.max_statement);
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    while let Some(s) = statements.next_statement().map_err(|e| PipelineError::from_read(path, e))? {
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
            if tx.blocking_send(Ok(std::mem::take(&mut batch))).is_err() {
                return Ok(()); // the loader stopped listening
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Ok(batch));
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
    path: &Path,
    expected: &str,
    block_size: usize,
    rows: &AtomicU64,
    tx: &mpsc::Sender<Result<Bytes, PipelineError>>,
) -> Result<(), PipelineError> {
    let err = |offset: Option<u64>, reason: String, integrity: bool| PipelineError {
        file: path.to_path_buf(),
        offset,
        reason,
        integrity,
    };
    let file =
        std::fs::File::open(path).map_err(|e| err(None, e.to_string(), e.kind() == std::io::ErrorKind::NotFound))?;
    let mut hashing = HashingReader::new(std::io::BufReader::with_capacity(256 * 1024, file));
    let mut counter = RowCounter::default();
    let mut offset = 0u64;
    {
        let mut decoder = zstd::stream::read::Decoder::with_buffer(std::io::BufReader::new(&mut hashing))
            .map_err(|e| err(Some(0), format!("not a zstd file: {e}"), true))?;
        loop {
            let block = fill_block(&mut decoder, block_size, offset == 0)
                .map_err(|(at, e)| err(Some(offset + at), format!("cannot decompress: {e}"), true))?;
            if block.is_empty() {
                break;
            }
            offset += block.len() as u64;
            rows.fetch_add(counter.count(&block), Ordering::Relaxed);
            if tx.blocking_send(Ok(Bytes::from(block))).is_err() {
                return Ok(());
            }
        }
    }
    // Anything after the last frame was not read by the decoder: hash it too.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| err(None, e.to_string(), true))?;
    let actual = hashing.hex();
    if actual != expected {
        return Err(err(None, format!("SHA-256 is {actual}, the manifest says {expected}: the file is corrupt"), true));
    }
    Ok(())
}

fn produce_bytes(
    path: &Path,
    block_size: usize,
    rows: &AtomicU64,
    tx: &mpsc::Sender<Result<Bytes, PipelineError>>,
) -> Result<(), PipelineError> {
    let err = |offset: Option<u64>, e: &dyn std::fmt::Display, integrity: bool| PipelineError {
        file: path.to_path_buf(),
        offset,
        reason: e.to_string(),
        integrity,
    };
    let mut reader = floodgate_format::compress::open(path).map_err(|e| err(None, &e, false))?;
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
        let mut rx = p.statements(&path, Terminator::SemicolonNewline);
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
        let mut s = p.bytes(&path);
        let mut err = None;
        while let Some(item) = s.blocks.recv().await {
            if let Err(e) = item {
                err = Some(e);
            }
        }
        assert!(err.unwrap().integrity);
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
