//! floodgate's own format, `floodgate/1` (DESIGN.md, "Native format").
//!
//! ```text
//! DIR/manifest.json                      written last, atomically: its presence = complete
//! DIR/schema/<db>.sql                    CREATE DATABASE
//! DIR/schema/<db>/<table>.sql            CREATE TABLE
//! DIR/data/<db>/<table>/<NNNNNN>.tsv.zst rows in LOAD DATA's default format, zstd
//! DIR/post/<db>.sql                      routines, events, views, triggers (restored in that order)
//! ```
//!
//! Names in paths are percent-encoded ([`encode_name`]). Every path in a manifest is checked
//! to stay inside the directory ([`resolve`]): no `..`, nothing absolute, no link out.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::located::Located;
use crate::model::*;
use crate::{FormatError, Result};

/// The `format` value of a floodgate/1 manifest.
pub const FORMAT: &str = "floodgate/1";
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

/// manifest.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// RFC 3339 time the snapshot was taken.
    pub created_at: String,
    /// floodgate's version.
    pub tool_version: String,
    /// The source server and snapshot position.
    pub source: SourceInfo,
    /// Databases.
    pub databases: Vec<DatabaseEntry>,
}

/// Where the dump came from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    /// `SELECT VERSION()`.
    pub server_version: String,
    /// `@@hostname`.
    pub hostname: String,
    /// GTID position of the snapshot (`@@gtid_binlog_pos` on MariaDB, `@@gtid_executed` on MySQL).
    pub gtid_executed: Option<String>,
    /// Binary log file of the snapshot.
    pub binlog_file: Option<String>,
    /// Position in it.
    pub binlog_position: Option<u64>,
}

/// A database in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseEntry {
    /// Real name.
    pub name: String,
    /// Default character set.
    pub charset: String,
    /// Default collation.
    pub collation: String,
    /// CREATE DATABASE file.
    pub schema_file: String,
    /// Tables.
    pub tables: Vec<TableEntry>,
    /// Views, routines, triggers and events.
    pub post_file: Option<String>,
}

/// A table in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableEntry {
    /// Real name.
    pub name: String,
    /// CREATE TABLE file.
    pub schema_file: String,
    /// Every column, in order.
    pub columns: Vec<ColumnEntry>,
    /// Rows in all chunks.
    pub rows: u64,
    /// Hex of the order-independent digest of all rows ([`ContentDigest`]).
    pub content_digest: String,
    /// Chunks in order.
    pub chunks: Vec<ChunkEntry>,
}

/// A column in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnEntry {
    /// Name.
    pub name: String,
    /// `COLUMN_TYPE`.
    #[serde(rename = "type")]
    pub column_type: String,
    /// Generated columns are not in the rows files.
    pub generated: bool,
}

/// A chunk in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkEntry {
    /// Path relative to the backup directory.
    pub file: String,
    /// Rows in it.
    pub rows: u64,
    /// Uncompressed bytes.
    pub bytes: u64,
    /// Bytes as stored.
    pub compressed_bytes: u64,
    /// Hex SHA-256 of the stored (compressed) file.
    pub sha256: String,
    /// First key value of the chunk (informational).
    pub first_key: Option<String>,
    /// Last key value of the chunk (informational).
    pub last_key: Option<String>,
}

impl ChunkEntry {
    /// What the chunk's file must be.
    pub fn check(&self) -> RowsCheck {
        RowsCheck {
            sha256: self.sha256.clone(),
            rows: self.rows,
            bytes: self.bytes,
            compressed_bytes: self.compressed_bytes,
        }
    }
}

/// Percent-encodes a name for use as a path component: every byte outside
/// `[A-Za-z0-9_-]`, and a leading `.`, becomes `%XX`.
pub fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain && b != b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The order-independent digest of a table's rows: the sum, modulo 2^128, of the XXH3-128
/// hash of each row's encoded bytes (the row as a rows file holds it, without its line end).
/// Any order of the same rows gives the same digest, so it can be recomputed from the target.
///
/// Why not SHA-256 per row (DESIGN.md's example): on short rows its per-row cost capped
/// `floodgate verify` at ~300 MB/s per core. The digest only has to tell a restored table
/// from its source; tampering with the files is what each chunk's SHA-256 is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentDigest(u128);

impl ContentDigest {
    /// Adds one row.
    pub fn add_row(&mut self, encoded_row: &[u8]) {
        self.0 = self.0.wrapping_add(xxhash_rust::xxh3::xxh3_128(encoded_row));
    }

    /// Combines two partial digests (of disjoint rows).
    pub fn merge(&mut self, other: &ContentDigest) {
        self.0 = self.0.wrapping_add(other.0);
    }

    /// Lower-case hex, 32 digits.
    pub fn hex(&self) -> String {
        format!("{:032x}", self.0)
    }

    /// Adds every row of a rows-file block; `state` carries an unfinished last row (and a
    /// pending backslash) between blocks. Returns the rows completed. A row that spans blocks
    /// is hashed as it arrives, never held: a crafted chunk of one endless row costs no memory.
    pub fn add_rows(&mut self, block: &[u8], state: &mut RowState) -> u64 {
        let mut rows = 0;
        let mut start = 0;
        let mut i = 0;
        if state.escaped && !block.is_empty() {
            state.escaped = false;
            i = 1;
        }
        // Only line ends and backslashes matter; jump between them.
        while let Some(n) = memchr::memchr2(b'\n', b'\\', &block[i..]) {
            let at = i + n;
            if block[at] == b'\\' {
                if at + 1 == block.len() {
                    // The escaped byte is the next block's first.
                    state.escaped = true;
                    break;
                }
                i = at + 2;
                continue;
            }
            match state.partial.take() {
                None => self.add_row(&block[start..at]),
                Some(mut begun) => {
                    begun.update(&block[start..at]);
                    self.0 = self.0.wrapping_add(begun.digest128());
                }
            }
            rows += 1;
            start = at + 1;
            i = at + 1;
        }
        if start < block.len() {
            state.partial.get_or_insert_with(Xxh3::new).update(&block[start..]);
        }
        rows
    }
}

/// The part of a row not yet ended, between blocks of a rows file: its hash so far (XXH3's
/// streaming form gives the same digest as hashing the whole row at once).
#[derive(Clone, Default)]
pub struct RowState {
    partial: Option<Xxh3>,
    escaped: bool,
}

impl std::fmt::Debug for RowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowState").field("partial", &self.partial.is_some()).field("escaped", &self.escaped).finish()
    }
}

impl RowState {
    /// True when the input so far ended at a row boundary.
    pub fn at_row_end(&self) -> bool {
        self.partial.is_none() && !self.escaped
    }
}

/// Reads a native backup directory into a plan, checking the manifest's paths.
pub fn read(dir: &Path) -> Result<RestorePlan> {
    read_located(&Located::open(dir)?)
}

/// Reads a native backup, on disk or in object storage, into a plan.
pub fn read_located(backup: &Located) -> Result<RestorePlan> {
    plan(backup.root(), &backup.manifest_path(), &backup.manifest()?, |rel| backup.manifest_file(rel))
}

// The native format's view of a [`Located`] backup: its manifest and the files it names.
impl Located {
    pub fn manifest_path(&self) -> PathBuf {
        self.root().join(MANIFEST)
    }

    /// The manifest, read and checked.
    pub fn manifest(&self) -> Result<Manifest> {
        parse_manifest(&self.manifest_bytes()?, &self.manifest_path())
    }

    /// The manifest's bytes (at most [`MANIFEST_LIMIT`]): what names the backup.
    pub fn manifest_bytes(&self) -> Result<Vec<u8>> {
        match self.read(MANIFEST, MANIFEST_LIMIT, "a manifest floodgate wrote") {
            Err(FormatError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(FormatError::corrupt(
                    &self.manifest_path(),
                    None,
                    "no manifest.json: the dump did not finish (floodgate writes it last)",
                ))
            }
            other => other,
        }
    }

    /// The file a manifest path names: a relative path to a file inside the backup (on
    /// disk, links out are refused; in a bucket, an object under the prefix).
    pub fn manifest_file(&self, rel: &str) -> Result<SqlFile> {
        match self.file(rel) {
            Err(FormatError::Io { path, source }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(FormatError::corrupt(&path, None, "listed in the manifest but missing"))
            }
            Err(FormatError::UnsafePath { name, reason, .. }) => {
                Err(FormatError::UnsafePath { path: self.manifest_path(), name, reason })
            }
            other => other,
        }
    }
}

/// The plan of `manifest`, whose files `file` finds.
fn plan(
    root: PathBuf,
    manifest_path: &Path,
    manifest: &Manifest,
    file: impl Fn(&str) -> Result<SqlFile>,
) -> Result<RestorePlan> {
    let manifest_path = manifest_path.to_path_buf();
    let mut databases = Vec::new();
    for db in &manifest.databases {
        let mut tables = Vec::new();
        for t in &db.tables {
            let mut chunks = Vec::new();
            let mut total = 0u64;
            for (i, c) in t.chunks.iter().enumerate() {
                total += c.rows;
                let f = file(&c.file)?;
                if f.bytes != c.compressed_bytes {
                    return Err(FormatError::corrupt(
                        &f.path,
                        None,
                        format!("{} bytes on disk, the manifest says {}", f.bytes, c.compressed_bytes),
                    ));
                }
                chunks.push(Chunk {
                    index: i as u64,
                    file: f,
                    data_files: Vec::new(),
                    rows: Some(c.check()),
                    delimited: None,
                });
            }
            if total != t.rows {
                return Err(FormatError::corrupt(
                    &manifest_path,
                    None,
                    format!(
                        "table `{}`.`{}`: chunks hold {total} rows, the table entry says {}",
                        db.name, t.name, t.rows
                    ),
                ));
            }
            tables.push(Table {
                name: t.name.clone(),
                schema: file(&t.schema_file)?,
                chunks,
                expected_rows: Some(t.rows),
                columns: t.columns.iter().filter(|c| !c.generated).map(|c| c.name.clone()).collect(),
                content_digest: Some(t.content_digest.clone()),
                checksums: None,
            });
        }
        let post = match &db.post_file {
            Some(p) => vec![file(p)?],
            None => Vec::new(),
        };
        databases.push(Database {
            name: db.name.clone(),
            create: Some(file(&db.schema_file)?),
            tables,
            views: Vec::new(),
            post,
            triggers: Vec::new(),
        });
    }
    Ok(RestorePlan {
        rename: None,
        format: Format::Native,
        root,
        session: SessionSettings { sql_mode: None, time_zone: Some("+00:00".into()), charset: Some("binary".into()) },
        position: Some(Position {
            binlog_file: manifest.source.binlog_file.clone(),
            binlog_position: manifest.source.binlog_position,
            gtid_executed: manifest.source.gtid_executed.clone(),
        }),
        databases,
        before: Vec::new(),
        after: Vec::new(),
        growing: false,
        users: None,
    })
}

/// The largest manifest.json read: about 200,000 chunk entries, some 12 TiB of 64 MiB
/// chunks. It is held whole (and parsed), so a crafted one must not be read without limit.
pub const MANIFEST_LIMIT: u64 = 64 << 20;

/// Reads and checks manifest.json. A directory without one is an unfinished dump.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = match read_manifest_bytes(path) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(FormatError::corrupt(
                path,
                None,
                format!("larger than {} MiB: not a manifest floodgate wrote", MANIFEST_LIMIT >> 20),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FormatError::corrupt(
                path,
                None,
                "no manifest.json: the dump did not finish (floodgate writes it last)",
            ))
        }
        Err(e) => return Err(FormatError::io(path, e)),
    };
    parse_manifest(&text, path)
}

/// Parses and checks a manifest's bytes.
pub fn parse_manifest(text: &[u8], path: &Path) -> Result<Manifest> {
    let manifest: Manifest =
        serde_json::from_slice(text).map_err(|e| FormatError::corrupt(path, None, format!("invalid manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(FormatError::corrupt(path, None, format!("format is {:?}, expected {FORMAT:?}", manifest.format)));
    }
    Ok(manifest)
}

/// The manifest's bytes, or None when it is larger than [`MANIFEST_LIMIT`].
fn read_manifest_bytes(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path)?.take(MANIFEST_LIMIT + 1).read_to_end(&mut text)?;
    Ok((text.len() as u64 <= MANIFEST_LIMIT).then_some(text))
}

/// True if `dir` has a manifest.json naming this format, or one too large to be read (which
/// [`read_manifest`] then refuses by name rather than calling the directory no backup).
pub fn looks_like(dir: &Path) -> bool {
    match read_manifest_bytes(&dir.join(MANIFEST)) {
        Ok(Some(text)) => serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .is_some_and(|v| v.get("format").and_then(|f| f.as_str()) == Some(FORMAT)),
        Ok(None) => true,
        Err(_) => false,
    }
}

/// RFC 3339 UTC for seconds since the epoch (Howard Hinnant's civil-from-days): the
/// manifest's `created_at`, and the times of drill reports.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_647_600), "2026-11-25T23:00:00Z");
    }
    use proptest::prelude::*;

    #[test]
    fn names_are_encoded_for_paths() {
        assert_eq!(encode_name("plain_Name-1"), "plain_Name-1");
        assert_eq!(encode_name("odd name; `x`"), "odd%20name%3B%20%60x%60");
        assert_eq!(encode_name(".hidden"), "%2Ehidden");
        assert_eq!(encode_name("a.b"), "a%2Eb");
        assert_eq!(encode_name("ü"), "%C3%BC");
        assert_eq!(encode_name("../x"), "%2E%2E%2Fx");
    }

    #[test]
    fn manifest_paths_never_escape_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("ok"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("link")).unwrap();
        let backup = Located::open(&root).unwrap();
        assert!(backup.manifest_file("ok").is_ok());
        for bad in ["../ok", "/etc/hostname", "a/../../ok", "./ok", "", "link", "a//ok"] {
            let e = backup.manifest_file(bad).unwrap_err();
            assert!(e.is_integrity(), "{bad}: {e}");
        }
        let missing = backup.manifest_file("missing").unwrap_err();
        assert!(matches!(&missing, FormatError::Corrupt { .. }), "{missing}");
        assert!(missing.to_string().contains("listed in the manifest but missing"), "{missing}");
    }

    fn encode(row: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in row {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => out.push(b),
            }
        }
        out
    }

    proptest! {
        #[test]
        fn digest_ignores_order_and_blocks(rows in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..20), cut in any::<usize>()) {
            let encoded: Vec<Vec<u8>> = rows.iter().map(|r| encode(r)).collect();
            let data: Vec<u8> = encoded.iter().flat_map(|r| r.iter().copied().chain([b'\n'])).collect();
            let mut whole = ContentDigest::default();
            let mut state = RowState::default();
            prop_assert_eq!(whole.add_rows(&data, &mut state) as usize, rows.len());
            prop_assert!(state.at_row_end());
            let cut = cut % (data.len() + 1);
            let mut pieces = ContentDigest::default();
            let mut state = RowState::default();
            let n = pieces.add_rows(&data[..cut], &mut state) + pieces.add_rows(&data[cut..], &mut state);
            prop_assert_eq!(n as usize, rows.len());
            prop_assert_eq!(whole, pieces);
            let mut reversed = ContentDigest::default();
            for r in encoded.iter().rev() {
                reversed.add_row(r);
            }
            prop_assert_eq!(whole, reversed);
        }
    }
}
