//! `floodgate verify`: checks a native backup offline, every chunk in parallel: the file's
//! SHA-256, that it decompresses, that its rows parse, and that row counts and each table's
//! content digest match the manifest.

use std::io::Read;
use std::path::{Path, PathBuf};

use floodgate_format::native::{self, ContentDigest, RowState};
use rayon::prelude::*;

use crate::HashingReader;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file (or manifest) concerned.
    pub file: PathBuf,
    /// What is wrong.
    pub reason: String,
}

/// What verification found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Chunks checked.
    pub chunks: usize,
    /// Rows read.
    pub rows: u64,
    /// Decompressed bytes read.
    pub bytes: u64,
    /// Every problem, each naming its file.
    pub problems: Vec<Problem>,
}

/// What checking one chunk found.
#[derive(Debug)]
pub struct ChunkOutcome {
    /// Rows in it.
    pub rows: u64,
    /// Decompressed bytes.
    pub bytes: u64,
    /// The digest of its rows.
    pub digest: ContentDigest,
}

fn check_chunk(path: &Path, sha256: &str, rows: u64) -> Result<ChunkOutcome, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    check_stored(std::io::BufReader::with_capacity(256 * 1024, file), sha256, rows)
}

/// Checks a stored chunk read from `stored`: its SHA-256, that it decompresses, that its
/// rows end cleanly and number `rows`. Returns the rows' digest.
pub fn check_stored<R: Read>(stored: R, sha256: &str, rows: u64) -> Result<ChunkOutcome, String> {
    let mut hashing = HashingReader::new(stored);
    let mut digest = ContentDigest::default();
    let mut state = RowState::default();
    let mut counted = 0;
    let mut bytes = 0u64;
    {
        let mut decoder = zstd::stream::read::Decoder::with_buffer(std::io::BufReader::new(&mut hashing))
            .map_err(|e| format!("not a zstd file: {e}"))?;
        let mut block = vec![0u8; 1 << 20];
        loop {
            let n = match decoder.read(&mut block) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("cannot decompress after {bytes} bytes: {e}")),
            };
            bytes += n as u64;
            counted += digest.add_rows(&block[..n], &mut state);
        }
    }
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| e.to_string())?;
    let actual = hashing.hex();
    if actual != sha256.to_ascii_lowercase() {
        return Err(format!("SHA-256 is {actual}, the manifest says {sha256}"));
    }
    if !state.at_row_end() {
        return Err("the last row has no line end: the chunk is truncated".into());
    }
    if counted != rows {
        return Err(format!("holds {counted} rows, the manifest says {rows}"));
    }
    Ok(ChunkOutcome { rows: counted, bytes, digest })
}

/// Verifies the native backup in `dir` on `threads` threads.
pub fn verify_backup(dir: &Path, threads: usize) -> Result<VerifyReport, floodgate_format::FormatError> {
    let root =
        dir.canonicalize().map_err(|e| floodgate_format::FormatError::Io { path: dir.to_path_buf(), source: e })?;
    let manifest_path = root.join(native::MANIFEST);
    let manifest = native::read_manifest(&manifest_path)?;
    let mut report = VerifyReport::default();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| floodgate_format::FormatError::Io { path: dir.to_path_buf(), source: std::io::Error::other(e) })?;
    for db in &manifest.databases {
        for t in &db.tables {
            let outcomes: Vec<Result<ChunkOutcome, Problem>> = pool.install(|| {
                t.chunks
                    .par_iter()
                    .map(|c| {
                        let path = native::resolve(&root, &c.file, &manifest_path)
                            .map_err(|e| Problem { file: root.join(&c.file), reason: e.to_string() })?;
                        check_chunk(&path, &c.sha256, c.rows).map_err(|reason| Problem { file: path, reason })
                    })
                    .collect()
            });
            let mut digest = ContentDigest::default();
            let mut clean = true;
            for o in outcomes {
                match o {
                    Ok(c) => {
                        report.rows += c.rows;
                        report.bytes += c.bytes;
                        digest.merge(&c.digest);
                    }
                    Err(p) => {
                        clean = false;
                        report.problems.push(p);
                    }
                }
                report.chunks += 1;
            }
            let listed: u64 = t.chunks.iter().map(|c| c.rows).sum();
            if listed != t.rows {
                report.problems.push(Problem {
                    file: manifest_path.clone(),
                    reason: format!(
                        "table `{}`.`{}`: chunks list {listed} rows, the table says {}",
                        db.name, t.name, t.rows
                    ),
                });
            }
            if clean && digest.hex() != t.content_digest {
                report.problems.push(Problem {
                    file: manifest_path.clone(),
                    reason: format!(
                        "table `{}`.`{}`: content digest of the chunks is {}, the manifest says {}",
                        db.name,
                        t.name,
                        digest.hex(),
                        t.content_digest
                    ),
                });
            }
        }
    }
    Ok(report)
}
