//! MySQL Shell dumps (`util.dumpInstance`, `dumpSchemas`, `dumpTables`), format 1.0.x to
//! 2.0.x: a flat directory of JSON metadata, SQL scripts and delimited data files.
//!
//! The metadata is the truth and file names are never parsed: `@.json` names the schemas
//! and their basenames, each `S.json` its tables and views and theirs, each `S@T.json` a
//! table's columns, dialect, partitions and data-file extension. Data files are found by
//! probing the names MySQL Shell writes (`B.E`, or `B@0.E` ... and the last `B@@N.E`), and
//! each one's size is what its `.idx` (big-endian u64 offsets, the last the total) or
//! `@.done.json` says. `@.done.json` is written last: without it the dump is unfinished.
//!
//! Layout details and their sources in MySQL Shell's code: docs/shell-format.md.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::located::Located;
use crate::model::{Chunk, Database, Delimited, Dialect, Format, Position, RestorePlan, SessionSettings, SqlFile};
use crate::model::{RowChecksum, RowChecksums, Table, View};
use crate::{FormatError, Result};

/// The metadata file MySQL Shell writes first.
pub const STARTED: &str = "@.json";
/// The metadata file MySQL Shell writes last: the dump is complete.
pub const DONE: &str = "@.done.json";

/// Most bytes of one JSON metadata file read: the largest real ones (`@.done.json` of a
/// dump of tens of thousands of chunk files) are a few MiB.
const JSON_LIMIT: u64 = 64 << 20;

/// Capabilities (`@.json` `capabilities`) this reader handles; a dump needing another is
/// refused, as MySQL Shell's own loader does.
const KNOWN_CAPABILITIES: [&str; 2] = ["partition_awareness", "multifile_schema_ddl"];

/// True if `source` (a directory, or an `s3://` prefix) holds a MySQL Shell dump (its `@.json`).
pub fn looks_like(source: &Path) -> bool {
    Located::open(source).is_ok_and(|backup| backup.has(STARTED))
}

/// Reads a complete dump in a directory or under an `s3://` prefix: one whose `@.done.json`
/// is there.
pub fn read(source: &Path) -> Result<RestorePlan> {
    read_located(Located::open(source)?)
}

/// Reads a complete dump, on disk or in a bucket.
pub fn read_located(backup: Located) -> Result<RestorePlan> {
    let dump = open(backup)?;
    if dump.done.is_none() {
        return Err(FormatError::corrupt(
            &dump.root.join(DONE),
            None,
            "missing: the dump has not finished (it is still running, or it died). MySQL Shell writes @.done.json \
             last; restore it once the dump is complete",
        ));
    }
    dump.plan()
}

/// What `@.json` says about where and when the dump was taken, for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// When the dump began (UTC, `YYYY-MM-DD HH:MM:SS`).
    pub began: Option<String>,
    /// The source server's version (MySQL Shell writes a MariaDB one as `5.6.0-<version>`).
    pub server_version: Option<String>,
    /// The MySQL Shell that wrote it.
    pub dumper: Option<String>,
}

/// Reads the dump's provenance from its `@.json`.
pub fn provenance(backup: Located) -> Result<Provenance> {
    let dump = open(backup)?;
    let field = |key: &str| text(&dump.started, key).map(str::to_string);
    Ok(Provenance { began: field("begin"), server_version: field("serverVersion"), dumper: field("dumper") })
}

/// Reads a dump that may still be running (`--wait-for-dump`): the data files written so far
/// (final names only, never `.dumping`) and, once `@.done.json` is there, everything, checked
/// as [`read`] checks it. `None` while the dump has not yet written every table's metadata
/// (MySQL Shell writes it all before any data).
pub fn read_unfinished(source: &Path) -> Result<Option<RestorePlan>> {
    let dump = open(Located::open(source)?)?;
    match dump.plan() {
        Ok(plan) => Ok(Some(plan)),
        Err(FormatError::Io { source, .. }) if !dump.finished && source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What a block of `@.users.sql` does for its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStep {
    /// `CREATE USER`: before any object, so definers exist.
    Create,
    /// `GRANT`s and default roles: after every object they may name.
    Grants,
}

/// One account's block of `@.users.sql`: MySQL Shell writes a statement per line between
/// `-- begin user|grants|default role ACCOUNT` and `-- end ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBlock {
    /// As the file names it: `'user'@'host'` (2.0), `user@host` (1.0).
    pub account: String,
    pub step: AccountStep,
    pub statements: Vec<String>,
}

impl AccountBlock {
    /// The account's user and host.
    pub fn user_host(&self) -> (String, String) {
        split_account(&self.account)
    }
}

/// `'user'@'host'`, `` `user`@`host` `` or `user@host` into its parts.
pub fn split_account(account: &str) -> (String, String) {
    let unquote = |s: &str| {
        let s = s.trim();
        let quoted =
            s.len() >= 2 && (s.starts_with('\'') && s.ends_with('\'') || s.starts_with('`') && s.ends_with('`'));
        match quoted {
            true => s[1..s.len() - 1].replace("''", "'").replace("\\'", "'"),
            false => s.to_string(),
        }
    };
    // The host never holds `@` in a quoted account; a user name may.
    match account.rfind('@') {
        Some(at) => (unquote(&account[..at]), unquote(&account[at + 1..])),
        None => (unquote(account), "%".into()),
    }
}

/// Reads `@.users.sql` into its accounts' blocks, in file order.
pub fn account_blocks(file: &SqlFile) -> Result<Vec<AccountBlock>> {
    let too_large = || FormatError::corrupt(&file.path, None, format!("{} bytes: not a users script", file.bytes));
    let text = crate::files::read_whole(file, JSON_LIMIT)?.ok_or_else(too_large)?;
    let text = String::from_utf8_lossy(&text);
    let mut blocks = Vec::new();
    let mut open: Option<AccountBlock> = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let begin = [("-- begin user ", AccountStep::Create), ("-- begin grants ", AccountStep::Grants)]
            .into_iter()
            .chain(std::iter::once(("-- begin default role ", AccountStep::Grants)))
            .find_map(|(p, step)| line.strip_prefix(p).map(|a| (a, step)));
        if let Some((account, step)) = begin {
            blocks.extend(open.take());
            open = Some(AccountBlock { account: account.to_string(), step, statements: Vec::new() });
        } else if line.starts_with("-- end ") {
            blocks.extend(open.take());
        } else if line.starts_with("--") || (line.starts_with("/*") && line.ends_with("*/")) {
            // A comment: 1.0's `/* ALTER USER ... */`, a grant `strip_invalid_grants` removed.
        } else if let Some(block) = &mut open {
            block.statements.push(line.trim_end_matches(';').to_string());
        }
    }
    blocks.extend(open);
    Ok(blocks)
}

/// A dump directory, its dump-wide metadata read.
#[derive(Debug)]
struct Dump {
    backup: Located,
    /// The dump's directory or prefix, for messages.
    root: PathBuf,
    started: Value,
    done: Option<Value>,
    version: String,
    /// Every file name in the directory.
    names: HashSet<String>,
    /// `@.checksums.json`, when the dump was made with `checksum: true`.
    checksums: Option<Value>,
    /// Every table's data must be complete (the dump has finished); otherwise the data
    /// files written so far are taken.
    finished: bool,
}

/// The checksums file of a dump made with `checksum: true`.
pub const CHECKSUMS: &str = "@.checksums.json";

fn open(mut backup: Located) -> Result<Dump> {
    let mut started = read_json(&backup, STARTED)?;
    if let Some(redirect) = started.get("redirectedDumpDir").and_then(Value::as_str) {
        // 9.4.1+: the dump proper is in a subdirectory.
        let at = backup.root().join(STARTED);
        let redirected = backup.subdirectory(safe_basename(&at, redirect)?)?;
        backup = redirected;
        started = read_json(&backup, STARTED)?;
    }
    let root = backup.root();
    let version = text(&started, "version").unwrap_or("1.0.0").to_string();
    check_version(&root.join(STARTED), &version)?;
    check_capabilities(&root.join(STARTED), &started)?;
    let names: HashSet<String> = backup.names()?.into_iter().collect();
    let done = names.contains(DONE).then(|| read_json(&backup, DONE)).transpose()?;
    let checksums = names.contains(CHECKSUMS).then(|| read_json(&backup, CHECKSUMS)).transpose()?;
    if let Some(c) = &checksums {
        check_checksum_config(&root.join(CHECKSUMS), c)?;
    }
    let finished = done.is_some();
    Ok(Dump { backup, root, started, done, version, names, checksums, finished })
}

impl Dump {
    fn plan(&self) -> Result<RestorePlan> {
        let at = self.root.join(STARTED);
        let schemas = strings(&self.started, "schemas", &at)?;
        let basenames = map(&self.started, "basenames");
        let mut databases = Vec::new();
        for schema in schemas {
            let base = basename(&basenames, &schema, &at)?;
            databases.push(self.database(&schema, &base)?);
        }
        databases.sort_by(|a, b| a.name.cmp(&b.name));
        let tz_utc = self.started.get("tzUtc").and_then(Value::as_bool).unwrap_or(true);
        Ok(RestorePlan {
            rename: None,
            format: Format::MysqlShell { version: self.version.clone() },
            root: self.root.clone(),
            session: SessionSettings {
                // As MySQL Shell's loader: a 0 in an AUTO_INCREMENT column is a 0, not a new id.
                sql_mode: Some("NO_AUTO_VALUE_ON_ZERO".into()),
                // TIMESTAMPs were written in UTC unless the dump says otherwise; then in the
                // source's own zone, which the dump does not record.
                time_zone: Some(if tz_utc { "+00:00" } else { "SYSTEM" }.into()),
                charset: Some(self.default_charset().into()),
            },
            position: Some(self.position()),
            databases,
            before: self.optional_file("@.sql")?.into_iter().collect(),
            after: self.optional_file("@.post.sql")?.into_iter().collect(),
            growing: !self.finished,
            users: self.optional_file("@.users.sql")?,
        })
    }

    fn default_charset(&self) -> &str {
        text(&self.started, "defaultCharacterSet").unwrap_or("utf8mb4")
    }

    /// The source's binlog position and GTID set at the snapshot (9.1+ nests them in `source`).
    fn position(&self) -> Position {
        let source_binlog = self.started.get("source").and_then(|s| s.get("binlog"));
        let pick = |key: &str| source_binlog.and_then(|b| b.get(key)).or_else(|| self.started.get(key));
        let file = pick("binlogFile").or_else(|| source_binlog.and_then(|b| b.get("file")));
        let position = pick("binlogPosition").or_else(|| source_binlog.and_then(|b| b.get("position")));
        let nonempty = |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        Position {
            binlog_file: nonempty(file),
            binlog_position: position.and_then(Value::as_u64).filter(|&p| p > 0),
            gtid_executed: nonempty(pick("gtidExecuted")),
        }
    }

    fn database(&self, schema: &str, base: &str) -> Result<Database> {
        let meta = read_json(&self.backup, &format!("{base}.json"))?;
        let at = self.root.join(format!("{base}.json"));
        let includes_ddl = meta.get("includesDdl").and_then(Value::as_bool).unwrap_or(true);
        let basenames = map(&meta, "basenames");
        let object_base = |name: &str| -> Result<String> {
            // A name missing from the map: MySQL Shell's loader falls back to `S@name`.
            match basenames.get(name) {
                Some(b) => basename_value(b, name, &at),
                None => safe_basename(&at, &format!("{base}@{name}")).map(str::to_string),
            }
        };
        let mut tables = Vec::new();
        let mut triggers = Vec::new();
        for name in strings(&meta, "tables", &at)? {
            let tbase = object_base(&name)?;
            let (table, trigger_file) = self.table(schema, &name, &tbase, includes_ddl)?;
            tables.push(table);
            triggers.extend(trigger_file);
        }
        let mut views = Vec::new();
        if includes_ddl {
            for name in strings(&meta, "views", &at).unwrap_or_default() {
                let vbase = object_base(&name)?;
                views.push(View {
                    name,
                    placeholder: self.optional_file(&format!("{vbase}.pre.sql"))?,
                    definition: self.file(&format!("{vbase}.sql"))?,
                });
            }
        }
        let create = if includes_ddl { Some(self.file(&format!("{base}.sql"))?) } else { None };
        // Routines and events: in the schema's script (its CREATE DATABASE is run again there,
        // a no-op with IF NOT EXISTS), or in 9.3+'s separate files.
        let mut post: Vec<SqlFile> = create.iter().cloned().collect();
        for part in ["libraries", "events", "routines"] {
            post.extend(self.optional_file(&format!("{base}.{part}.sql"))?);
        }
        Ok(Database { name: schema.to_string(), create, tables, views, post, triggers })
    }

    /// A table: its CREATE, its data files in order, the rows the dump says it wrote.
    fn table(&self, schema: &str, name: &str, base: &str, ddl: bool) -> Result<(Table, Option<SqlFile>)> {
        let at = self.root.join(format!("{base}.json"));
        let meta = read_json(&self.backup, &format!("{base}.json"))?;
        if !ddl || !meta.get("includesDdl").and_then(Value::as_bool).unwrap_or(true) {
            return Err(FormatError::NotABackup {
                path: at,
                reason: "a dump without table definitions (ddlOnly: false, dataOnly: true): floodgate restores \
                         whole tables; load it with MySQL Shell's util.loadDump into existing tables"
                    .into(),
            });
        }
        let schema_file = self.file(&format!("{base}.sql"))?;
        let has_triggers = meta.get("triggers").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
        let trigger_file = match has_triggers {
            true => Some(self.file(&format!("{base}.triggers.sql"))?),
            false => self.optional_file(&format!("{base}.triggers.sql"))?,
        };
        let dialect = self.dialect(&meta, &at)?;
        let includes_data = meta.get("includesData").and_then(Value::as_bool).unwrap_or(true);
        let mut chunks = Vec::new();
        if includes_data {
            let extension = self.extension(&meta, &at)?;
            for (n, (partition, stream)) in streams(&meta, base, &at)?.into_iter().enumerate() {
                for (i, file, bytes) in self.stream_files(&stream, &extension)? {
                    let delimited = Delimited { bytes, partition: partition.clone(), dialect: dialect.clone() };
                    // The same on every read, whatever else has been written yet.
                    let index = ((n as u64) << 32) | i;
                    chunks.push(Chunk { index, file, data_files: Vec::new(), rows: None, delimited: Some(delimited) });
                }
            }
        }
        let table = Table {
            name: name.to_string(),
            schema: schema_file,
            chunks,
            expected_rows: self.table_rows(schema, name),
            columns: dialect.columns.clone(),
            content_digest: None,
            checksums: self.checksums(schema, name)?,
        };
        Ok((table, trigger_file))
    }

    /// The table's checksums from `@.checksums.json`: a part each, per partition.
    fn checksums(&self, schema: &str, table: &str) -> Result<Option<RowChecksums>> {
        let Some(t) = self.checksums.as_ref().and_then(|c| c.get("data")?.get(schema)?.get(table)) else {
            return Ok(None);
        };
        let at = self.root.join(CHECKSUMS);
        let columns = strings(t, "columns", &at)?;
        let null_columns = if t.get("nullColumns").is_some() { strings(t, "nullColumns", &at)? } else { Vec::new() };
        let mut parts = Vec::new();
        for (partition, chunks) in map(t, "partitions") {
            let Value::Object(chunks) = chunks else { continue };
            for (id, c) in chunks {
                let wrong =
                    || FormatError::corrupt(&at, None, format!("{schema}.{table} chunk {id}: no checksum or count"));
                let checksum = c.get("checksum").and_then(Value::as_str).ok_or_else(wrong)?;
                parts.push(RowChecksum {
                    partition: (!partition.is_empty()).then(|| partition.clone()),
                    boundary: text(&c, "boundary").map(str::to_string),
                    count: c.get("count").and_then(Value::as_u64).ok_or_else(wrong)?,
                    checksum: checksum.to_ascii_uppercase(),
                });
            }
        }
        Ok(Some(RowChecksums { columns, null_columns, parts }))
    }

    /// Rows the dump wrote for the table (`@.done.json` `tableRows`, Shell 8.2+).
    fn table_rows(&self, schema: &str, table: &str) -> Option<u64> {
        self.done.as_ref()?.get("tableRows")?.get(schema)?.get(table)?.as_u64()
    }

    /// The data file extension, checked to be a plain suffix.
    fn extension(&self, meta: &Value, at: &Path) -> Result<String> {
        let ext = text(meta, "extension").unwrap_or("tsv");
        if ext.is_empty() || ext.contains(['/', '\\', '\0']) || ext.contains("..") {
            return Err(unsafe_name(at, ext, "not a file extension"));
        }
        Ok(ext.to_string())
    }

    /// The table's data files (`B.E`, or `B@0.E` ... `B@@N.E`), each with its number and its
    /// size once decompressed. A finished dump must have them all, the last (`@@`) included;
    /// of an unfinished one, those written so far whose size is known.
    fn stream_files(&self, base: &str, ext: &str) -> Result<Vec<(u64, SqlFile, u64)>> {
        let whole = format!("{base}.{ext}");
        if self.names.contains(&whole) {
            let (file, bytes) = self.data_file(&whole)?;
            return Ok(vec![(0, file, bytes)]);
        }
        let (numbers, last) = self.chunk_numbers(base, ext);
        if !self.finished {
            let mut files = Vec::new();
            for (i, name) in numbers {
                if self.names.contains(&format!("{name}.idx")) || self.recorded_size(&name).is_some() {
                    let (file, bytes) = self.data_file(&name)?;
                    files.push((i, file, bytes));
                }
            }
            return Ok(files);
        }
        let missing = |name: String, why: String| FormatError::corrupt(&self.root.join(name), None, why);
        let Some(last) = last else {
            let next = numbers.len();
            return Err(missing(
                format!("{base}@@{next}.{ext}"),
                format!("missing: the table's data ends at chunk {next} without its last chunk (`@@`)"),
            ));
        };
        let mut files = Vec::new();
        for (expected, (i, name)) in numbers.into_iter().enumerate() {
            if i != expected as u64 || i > last {
                return Err(missing(
                    format!("{base}@{expected}.{ext}"),
                    format!("missing: the table's data has chunks up to {last} but not {expected}"),
                ));
            }
            let (file, bytes) = self.data_file(&name)?;
            files.push((i, file, bytes));
        }
        if files.len() as u64 != last + 1 {
            return Err(missing(
                format!("{base}@{}.{ext}", files.len()),
                format!("missing: the table's data has chunks up to {last} but not {}", files.len()),
            ));
        }
        Ok(files)
    }

    /// The data files of one stream present in the directory, by number, and the number of
    /// its last (`B@@N.E`), if that is there. Names are matched against the stream's own
    /// basename and extension, so another table's files never match.
    fn chunk_numbers(&self, base: &str, ext: &str) -> (Vec<(u64, String)>, Option<u64>) {
        let (prefix, suffix) = (format!("{base}@"), format!(".{ext}"));
        let mut numbers = Vec::new();
        let mut last = None;
        for name in &self.names {
            let Some(middle) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(&suffix)) else { continue };
            let (digits, is_last) = match middle.strip_prefix('@') {
                Some(d) => (d, true),
                None => (middle, false),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 9 {
                continue;
            }
            let Ok(i) = digits.parse::<u64>() else { continue };
            if is_last {
                last = Some(last.map_or(i, |l: u64| l.max(i)));
            }
            numbers.push((i, name.clone()));
        }
        numbers.sort();
        (numbers, last)
    }

    /// The size `@.done.json` records for a data file.
    fn recorded_size(&self, name: &str) -> Option<u64> {
        self.done.as_ref().and_then(|d| d.get("chunkFileBytes")?.get(name)?.as_u64())
    }

    /// A data file and its size once decompressed: `@.done.json`'s `chunkFileBytes` and its
    /// `.idx`'s last entry, which must agree when both are there.
    fn data_file(&self, name: &str) -> Result<(SqlFile, u64)> {
        let file = self.file(name)?;
        let recorded = self.recorded_size(name);
        let idx_name = format!("{name}.idx");
        let indexed = match self.names.contains(&idx_name) {
            true => Some(read_idx(&self.file(&idx_name)?)?),
            false => None,
        };
        let bytes = match (recorded, indexed) {
            (Some(r), Some(i)) if r != i => {
                return Err(FormatError::corrupt(
                    &file.path,
                    None,
                    format!("@.done.json says it holds {r} bytes, its .idx says {i}"),
                ))
            }
            (Some(b), _) | (None, Some(b)) => b,
            (None, None) => {
                return Err(FormatError::corrupt(
                    &self.root.join(&idx_name),
                    None,
                    "missing, and @.done.json records no size for its data file: its size cannot be checked",
                ))
            }
        };
        Ok((file, bytes))
    }

    /// How the table's data files are written (`S@T.json` `options`).
    fn dialect(&self, meta: &Value, at: &Path) -> Result<Dialect> {
        let empty = Value::Object(Default::default());
        let options = meta.get("options").unwrap_or(&empty);
        let columns = strings(options, "columns", at)?;
        let mut decode = Vec::new();
        if let Some(Value::Object(d)) = options.get("decodeColumns") {
            for (column, how) in d {
                let how = how.as_str().unwrap_or_default();
                if !["FROM_BASE64", "UNHEX"].contains(&how) {
                    return Err(FormatError::corrupt(
                        at,
                        None,
                        format!("column {column:?} is decoded with {how:?}; floodgate knows FROM_BASE64 and UNHEX"),
                    ));
                }
                if !columns.contains(column) {
                    return Err(FormatError::corrupt(
                        at,
                        None,
                        format!("decodeColumns names {column:?}, not a column"),
                    ));
                }
                decode.push((column.clone(), how.to_string()));
            }
        }
        decode.sort();
        let field = |key: &str, default: &str| text(options, key).unwrap_or(default).to_string();
        Ok(Dialect {
            columns,
            decode,
            charset: text(options, "defaultCharacterSet")
                .or_else(|| text(options, "characterSet"))
                .unwrap_or(self.default_charset())
                .to_string(),
            fields_terminated_by: field("fieldsTerminatedBy", "\t"),
            fields_enclosed_by: field("fieldsEnclosedBy", ""),
            fields_optionally_enclosed: options
                .get("fieldsOptionallyEnclosed")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            fields_escaped_by: field("fieldsEscapedBy", "\\"),
            lines_terminated_by: field("linesTerminatedBy", "\n"),
        })
    }

    fn file(&self, name: &str) -> Result<SqlFile> {
        let name = safe_basename(&self.root.join(STARTED), name)?;
        self.backup.file(name)
    }

    fn optional_file(&self, name: &str) -> Result<Option<SqlFile>> {
        match self.names.contains(name) {
            true => self.file(name).map(Some),
            false => Ok(None),
        }
    }
}

/// The data streams of a table: one per partition (`S@T.json` `basenames`), or the table's.
fn streams(meta: &Value, base: &str, at: &Path) -> Result<Vec<(Option<String>, String)>> {
    let partitions = map(meta, "basenames");
    if partitions.is_empty() {
        return Ok(vec![(None, base.to_string())]);
    }
    let mut out = Vec::new();
    for (partition, b) in &partitions {
        out.push((Some(partition.clone()), basename_value(b, partition, at)?));
    }
    Ok(out)
}

/// The last entry of a `.idx`: the data file's size once decompressed.
fn read_idx(file: &SqlFile) -> Result<u64> {
    if file.bytes == 0 || !file.bytes.is_multiple_of(8) {
        return Err(FormatError::corrupt(
            &file.path,
            None,
            format!("{} bytes: an .idx holds whole 8-byte offsets", file.bytes),
        ));
    }
    let last = crate::files::read_at(file, file.bytes - 8, 8)?;
    let last: [u8; 8] = last.try_into().map_err(|_| FormatError::corrupt(&file.path, None, "shorter than listed"))?;
    Ok(u64::from_be_bytes(last))
}

/// Checksums floodgate can recompute: `bit_xor` of SHA-256, format 1.0.x.
fn check_checksum_config(at: &Path, checksums: &Value) -> Result<()> {
    let config = checksums.get("config");
    let field = |k: &str| config.and_then(|c| c.get(k)).and_then(Value::as_str).unwrap_or_default();
    if field("algorithm") != "bit_xor" || field("hash") != "sha256" {
        return Err(FormatError::corrupt(
            at,
            None,
            format!("checksums by {:?} of {:?}; floodgate checks bit_xor of sha256", field("algorithm"), field("hash")),
        ));
    }
    Ok(())
}

fn check_version(at: &Path, version: &str) -> Result<()> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(1), _) | (Some(2), Some(0)) => Ok(()),
        _ => Err(FormatError::NotABackup {
            path: at.to_path_buf(),
            reason: format!("MySQL Shell dump format {version}; floodgate reads 1.0.x to 2.0.x"),
        }),
    }
}

fn check_capabilities(at: &Path, started: &Value) -> Result<()> {
    let Some(Value::Array(capabilities)) = started.get("capabilities") else { return Ok(()) };
    for c in capabilities {
        let id = c.get("id").and_then(Value::as_str).unwrap_or_default();
        if !KNOWN_CAPABILITIES.contains(&id) && !id.is_empty() {
            return Err(FormatError::NotABackup {
                path: at.to_path_buf(),
                reason: format!("the dump needs capability {id:?}, which floodgate does not have"),
            });
        }
    }
    Ok(())
}

fn read_json(backup: &Located, name: &str) -> Result<Value> {
    let name = safe_basename(&backup.root().join(STARTED), name)?;
    let bytes = backup.read(name, JSON_LIMIT, "a dump's metadata")?;
    serde_json::from_slice(&bytes).map_err(|e| {
        FormatError::corrupt(&backup.root().join(name), None, format!("not valid JSON ({e}): the file is damaged"))
    })
}

/// A file name taken from metadata: one plain name in the dump directory, never a path.
fn safe_basename<'a>(at: &Path, name: &'a str) -> Result<&'a str> {
    let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']);
    match bad {
        true => Err(unsafe_name(at, name, "a file name in the dump must be one plain name inside its directory")),
        false => Ok(name),
    }
}

fn unsafe_name(at: &Path, name: &str, reason: &str) -> FormatError {
    FormatError::UnsafePath { path: at.to_path_buf(), name: name.to_string(), reason: reason.into() }
}

fn basename(map: &BTreeMap<String, Value>, name: &str, at: &Path) -> Result<String> {
    match map.get(name) {
        Some(v) => basename_value(v, name, at),
        None => Err(FormatError::corrupt(at, None, format!("`basenames` has no entry for {name:?}"))),
    }
}

fn basename_value(v: &Value, name: &str, at: &Path) -> Result<String> {
    let b =
        v.as_str().ok_or_else(|| FormatError::corrupt(at, None, format!("the basename of {name:?} is not text")))?;
    safe_basename(at, b).map(str::to_string)
}

fn text<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

fn map(v: &Value, key: &str) -> BTreeMap<String, Value> {
    match v.get(key) {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => BTreeMap::new(),
    }
}

fn strings(v: &Value, key: &str, at: &Path) -> Result<Vec<String>> {
    let wrong = || FormatError::corrupt(at, None, format!("`{key}` is missing or not a list of names"));
    let list = v.get(key).and_then(Value::as_array).ok_or_else(wrong)?;
    list.iter().map(|s| s.as_str().map(str::to_string).ok_or_else(wrong)).collect()
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn write(dir: &Path, files: &[(&str, &[u8])]) {
        for (name, bytes) in files {
            fs::write(dir.join(name), bytes).unwrap();
        }
    }

    fn idx(offsets: &[u64]) -> Vec<u8> {
        offsets.iter().flat_map(|o| o.to_be_bytes()).collect()
    }

    const TABLE_JSON: &str = r#"{"options": {"schema": "s", "table": "t", "columns": ["id", "b"],
        "decodeColumns": {"b": "FROM_BASE64"}, "defaultCharacterSet": "utf8mb4",
        "fieldsTerminatedBy": "\t", "fieldsEnclosedBy": "", "fieldsOptionallyEnclosed": false,
        "fieldsEscapedBy": "\\", "linesTerminatedBy": "\n"}, "triggers": [], "includesData": true,
        "includesDdl": true, "extension": "tsv", "chunking": true, "compression": "none",
        "primaryIndex": ["id"], "partitions": [], "basenames": {}}"#;

    fn minimal(dir: &Path) {
        write(
            dir,
            &[
                (
                    "@.json",
                    br#"{"version": "2.0.1", "schemas": ["s"], "basenames": {"s": "s"}, "gtidExecuted": "0-1-5"}"#,
                ),
                ("@.sql", b"-- header\n"),
                ("@.post.sql", b"-- header\n"),
                ("s.json", br#"{"schema": "s", "tables": ["t"], "views": [], "basenames": {"t": "s@t"}}"#),
                ("s.sql", b"CREATE DATABASE IF NOT EXISTS `s`;\n"),
                ("s@t.json", TABLE_JSON.as_bytes()),
                ("s@t.sql", b"CREATE TABLE IF NOT EXISTS `t` (id int primary key, b blob);\n"),
                ("s@t@0.tsv", b"1\tAQ==\n"),
                ("s@t@0.tsv.idx", &idx(&[6])),
                ("s@t@@1.tsv", b"2\t\\N\n"),
                ("s@t@@1.tsv.idx", &idx(&[5])),
                ("@.done.json", br#"{"tableRows": {"s": {"t": 2}}, "chunkFileBytes": {"s@t@0.tsv": 6}}"#),
            ],
        );
    }

    #[test]
    fn reads_tables_chunks_sizes_and_dialect() {
        let dir = tempfile::tempdir().unwrap();
        minimal(dir.path());
        let plan = read(dir.path()).unwrap();
        assert_eq!(plan.format, Format::MysqlShell { version: "2.0.1".into() });
        let t = &plan.databases[0].tables[0];
        assert_eq!(t.expected_rows, Some(2));
        let sizes: Vec<u64> = t.chunks.iter().map(|c| c.delimited.as_ref().unwrap().bytes).collect();
        assert_eq!(sizes, [6, 5]);
        let d = &t.chunks[0].delimited.as_ref().unwrap().dialect;
        assert_eq!(d.decode, [("b".to_string(), "FROM_BASE64".to_string())]);
        assert_eq!(d.fields_escaped_by, "\\");
        assert_eq!(plan.position.unwrap().gtid_executed.as_deref(), Some("0-1-5"));
        assert_eq!(plan.before.len(), 1);
    }

    #[test]
    fn an_unfinished_dump_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        minimal(dir.path());
        fs::remove_file(dir.path().join(DONE)).unwrap();
        let e = read(dir.path()).unwrap_err();
        assert!(e.is_integrity() && e.to_string().contains("has not finished"), "{e}");
    }

    #[test]
    fn a_missing_last_chunk_is_named() {
        let dir = tempfile::tempdir().unwrap();
        minimal(dir.path());
        fs::remove_file(dir.path().join("s@t@@1.tsv")).unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("s@t@@1.tsv") && e.contains("without its last chunk"), "{e}");
    }

    #[test]
    fn sizes_that_disagree_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        minimal(dir.path());
        write(dir.path(), &[("s@t@0.tsv.idx", &idx(&[7]))]);
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("s@t@0.tsv") && e.contains("says 7"), "{e}");
    }

    #[test]
    fn basenames_that_leave_the_directory_are_refused() {
        for evil in ["../x", "/etc/passwd", "..", "a/b"] {
            let dir = tempfile::tempdir().unwrap();
            minimal(dir.path());
            let meta = format!(r#"{{"schema": "s", "tables": ["t"], "basenames": {{"t": "{evil}"}}}}"#);
            write(dir.path(), &[("s.json", meta.as_bytes())]);
            let e = read(dir.path()).unwrap_err();
            assert!(e.is_integrity() && e.to_string().contains("unsafe path"), "{evil}: {e}");
        }
    }

    #[test]
    fn unknown_decoders_and_newer_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        minimal(dir.path());
        write(dir.path(), &[("s@t.json", TABLE_JSON.replace("FROM_BASE64", "SLEEP(10)").as_bytes())]);
        assert!(read(dir.path()).unwrap_err().to_string().contains("SLEEP(10)"));
        minimal(dir.path());
        write(dir.path(), &[("@.json", br#"{"version": "3.0.0", "schemas": [], "basenames": {}}"#)]);
        assert!(read(dir.path()).unwrap_err().to_string().contains("format 3.0.0"));
    }

    #[test]
    fn a_damaged_idx_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        minimal(dir.path());
        write(dir.path(), &[("s@t@@1.tsv.idx", b"abc")]);
        assert!(read(dir.path()).unwrap_err().to_string().contains("whole 8-byte offsets"));
    }

    #[test]
    fn users_script_blocks_in_both_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("@.users.sql");
        let text = "-- header\n\n-- begin user 'a@b'@'%'\nCREATE USER IF NOT EXISTS 'a@b'@'%';\n-- end user 'a@b'@'%'\n\
                    -- begin user root@localhost\nCREATE USER root@localhost;\n/* ALTER USER root */\n-- end user root@localhost\n\
                    -- begin grants 'a@b'@'%'\nGRANT USAGE ON *.* TO 'a@b'@'%';\nGRANT SELECT ON `d`.* TO 'a@b'@'%';\n\
                    -- end grants 'a@b'@'%'\nFLUSH PRIVILEGES;\n";
        fs::write(&path, text).unwrap();
        let blocks = account_blocks(&SqlFile::unchecked(path, text.len() as u64)).unwrap();
        let summary: Vec<_> = blocks.iter().map(|b| (b.user_host(), b.step, b.statements.len())).collect();
        assert_eq!(
            summary,
            [
                (("a@b".to_string(), "%".to_string()), AccountStep::Create, 1),
                (("root".to_string(), "localhost".to_string()), AccountStep::Create, 1),
                (("a@b".to_string(), "%".to_string()), AccountStep::Grants, 2),
            ]
        );
        assert_eq!(blocks[2].statements[1], "GRANT SELECT ON `d`.* TO 'a@b'@'%'");
        assert_eq!(split_account("`x`@`h`"), ("x".to_string(), "h".to_string()));
    }

    proptest::proptest! {
        #[test]
        fn accounts_split_back_into_user_and_host(user in "[^'`]{0,12}", host in "[^'`@]{0,12}") {
            proptest::prop_assert_eq!(split_account(&format!("'{user}'@'{host}'")), (user.clone(), host.clone()));
            proptest::prop_assert_eq!(split_account(&format!("`{user}`@`{host}`")), (user, host));
        }

        #[test]
        fn a_users_script_never_panics_and_keeps_only_lines_of_blocks(
            lines in proptest::collection::vec("(-- begin (user|grants|default role) [a-z@%']{0,6}|-- end [a-z]{0,3}|GRANT [a-z ]{0,8};|/\\* x \\*/|[ -~]{0,12})", 0..20)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("@.users.sql");
            let text = lines.join("\n");
            fs::write(&path, &text).unwrap();
            let blocks = account_blocks(&SqlFile::unchecked(path, text.len() as u64)).unwrap();
            for b in &blocks {
                for s in &b.statements {
                    proptest::prop_assert!(!s.starts_with("--"), "{s:?}");
                }
            }
        }
    }
}
