//! `floodgate verify`: checks a native backup offline, every chunk in parallel: the file's
//! SHA-256, that it decompresses, that its rows parse, and that row counts and each table's
//! content digest match the manifest.

use std::io::Read;
use std::path::{Path, PathBuf};

use floodgate_format::compress::AtMost;
use floodgate_format::native::{ContentDigest, RowState};
use floodgate_format::{RowsCheck, SqlFile};
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

/// Checks one chunk file: refused before it is read when its size on disk is not the
/// declared one, then [`check_stored`].
fn check_chunk(file: &SqlFile, check: &RowsCheck) -> Result<ChunkOutcome, String> {
    let (file, on_disk) = floodgate_format::files::open_planned(file).map_err(|e| format!("cannot open: {e}"))?;
    if on_disk != check.compressed_bytes {
        return Err(format!("{on_disk} bytes on disk, the manifest says {}: not read", check.compressed_bytes));
    }
    check_stored(std::io::BufReader::with_capacity(256 * 1024, file), check)
}

/// Checks a stored chunk read from `stored`: its SHA-256, that it decompresses to the
/// declared size, that its rows end cleanly and number as declared. Returns the rows'
/// digest. Memory stays one block whatever the input: reading stops one byte past the
/// declared sizes (a decompression bomb ends there), and rows are hashed as they stream.
pub fn check_stored<R: Read>(stored: R, check: &RowsCheck) -> Result<ChunkOutcome, String> {
    let mut hashing = HashingReader::new(AtMost::new(stored, check.compressed_bytes, "bytes"));
    let mut digest = ContentDigest::default();
    let mut state = RowState::default();
    let mut counted = 0;
    let mut bytes = 0u64;
    {
        let decoder = zstd::stream::read::Decoder::with_buffer(std::io::BufReader::new(&mut hashing))
            .map_err(|e| format!("not a zstd file: {e}"))?;
        let mut decoded = AtMost::new(decoder, check.bytes, "decompressed bytes");
        let mut block = vec![0u8; 1 << 20];
        loop {
            let n = match decoded.read(&mut block) {
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
    if actual != check.sha256.to_ascii_lowercase() {
        return Err(format!("SHA-256 is {actual}, the manifest says {}", check.sha256));
    }
    if bytes != check.bytes {
        return Err(format!("decompresses to {bytes} bytes, the manifest says {}", check.bytes));
    }
    if !state.at_row_end() {
        return Err("the last row has no line end: the chunk is truncated".into());
    }
    if counted != check.rows {
        return Err(format!("holds {counted} rows, the manifest says {}", check.rows));
    }
    Ok(ChunkOutcome { rows: counted, bytes, digest })
}

/// Verifies the native backup in `dir` on `threads` threads.
pub fn verify_backup(dir: &Path, threads: usize) -> Result<VerifyReport, floodgate_format::FormatError> {
    let backup = floodgate_format::located::Located::open(dir)?;
    let (root, manifest_path, manifest) = (backup.root(), backup.manifest_path(), backup.manifest()?);
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
                        let file = backup
                            .manifest_file(&c.file)
                            .map_err(|e| Problem { file: root.join(&c.file), reason: e.to_string() })?;
                        check_chunk(&file, &c.check()).map_err(|reason| Problem { file: file.path.clone(), reason })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{rle_bomb, sha256_hex};

    fn declared(stored: &[u8], rows: u64, bytes: u64) -> RowsCheck {
        RowsCheck { sha256: sha256_hex(stored), rows, bytes, compressed_bytes: stored.len() as u64 }
    }

    /// A decompression bomb (32 GB from 1 MB) stops one byte past the declared size.
    #[test]
    fn a_bomb_stops_at_the_declared_size() {
        let bomb = rle_bomb(b'x', 250_000);
        let err = check_stored(&bomb[..], &declared(&bomb, 0, 1 << 20)).unwrap_err();
        assert!(err.contains("more than the 1048576 decompressed bytes the manifest declares"), "{err}");
    }

    /// One endless row (64 MiB without a line end) is hashed as it streams, never held, and
    /// is reported as a truncated chunk.
    #[test]
    fn an_endless_row_is_a_truncated_chunk() {
        let bomb = rle_bomb(b'x', 512);
        let err = check_stored(&bomb[..], &declared(&bomb, 0, 64 << 20)).unwrap_err();
        assert!(err.contains("the last row has no line end"), "{err}");
    }

    /// Stored bytes past the declared size are an error as soon as they are read, and a
    /// chunk that decompresses to less than declared is one too.
    #[test]
    fn sizes_other_than_declared_are_errors() {
        let data = b"1\tx\n".repeat(1000);
        let stored = zstd::encode_all(&data[..], 1).unwrap();
        let good = declared(&stored, 1000, data.len() as u64);
        assert_eq!(check_stored(&stored[..], &good).unwrap().rows, 1000);
        let shorter = RowsCheck { compressed_bytes: stored.len() as u64 - 1, ..good.clone() };
        let err = check_stored(&stored[..], &shorter).unwrap_err();
        assert!(err.contains(&format!("more than the {} bytes", stored.len() - 1)), "{err}");
        let larger = RowsCheck { bytes: data.len() as u64 + 1, ..good };
        let err = check_stored(&stored[..], &larger).unwrap_err();
        assert!(err.contains("decompresses to 4000 bytes, the manifest says 4001"), "{err}");
    }
}
