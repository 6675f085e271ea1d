//! The restore plan: what a backup holds, in the terms a restore needs.

use std::path::PathBuf;

use serde::Serialize;

use crate::split::Terminator;

/// Which tool wrote the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "tool", rename_all = "snake_case")]
pub enum Format {
    /// A mydumper directory.
    Mydumper {
        /// `legacy` (0.10–0.12 free-text metadata) or `modern` (0.13+ INI metadata).
        layout: MydumperLayout,
    },
    /// floodgate's own format, `floodgate/1`.
    Native,
    /// A MySQL Shell dump (`util.dumpInstance`, `dumpSchemas`, `dumpTables`).
    MysqlShell {
        /// The dump format's version (`1.0.0` to `2.0.x`).
        version: String,
    },
}

/// The two generations of mydumper's metadata file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MydumperLayout {
    /// Free-text `metadata` ("Started dump at: ...", "SHOW MASTER STATUS:").
    Legacy,
    /// INI-style `metadata` with `[config]`, `[source]` and a section per table.
    Modern,
}

impl Format {
    /// How statements end in this format's SQL files.
    pub fn terminator(&self) -> Terminator {
        match self {
            Format::Mydumper { .. } => Terminator::SemicolonNewline,
            Format::Native | Format::MysqlShell { .. } => Terminator::Delimiter,
        }
    }

    /// Undoes what the dump tool did to a post-data statement (routine, trigger, event).
    ///
    /// mydumper rewrites every `;` + newline inside a body to `; ` + newline, so myloader can
    /// split its files on `;\n`; restoring the body as written would leave a stray space at
    /// each line end. floodgate puts the original line ends back.
    pub fn restore_post_statement<'a>(&self, text: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        match self {
            Format::Mydumper { .. } if text.windows(3).any(|w| w == b"; \n") => {
                let mut out = Vec::with_capacity(text.len());
                let mut i = 0;
                while i < text.len() {
                    if text[i..].starts_with(b"; \n") {
                        out.extend_from_slice(b";\n");
                        i += 3;
                    } else {
                        out.push(text[i]);
                        i += 1;
                    }
                }
                std::borrow::Cow::Owned(out)
            }
            _ => std::borrow::Cow::Borrowed(text),
        }
    }

    /// A short name for messages and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Mydumper { layout: MydumperLayout::Legacy } => "mydumper (legacy layout)",
            Format::Mydumper { layout: MydumperLayout::Modern } => "mydumper",
            Format::Native => "floodgate/1",
            Format::MysqlShell { .. } => "MySQL Shell",
        }
    }
}

/// Session settings the dump asks every connection to use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SessionSettings {
    /// `sql_mode` the dump was taken with.
    pub sql_mode: Option<String>,
    /// `time_zone` its temporal values are written in.
    pub time_zone: Option<String>,
    /// Character set of its SQL text (`SET NAMES`).
    pub charset: Option<String>,
}

/// Where in the source's history the snapshot was taken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Position {
    /// Binary log file.
    pub binlog_file: Option<String>,
    /// Position in it.
    pub binlog_position: Option<u64>,
    /// GTID set executed at the snapshot.
    pub gtid_executed: Option<String>,
}

/// A file in the backup directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SqlFile {
    /// Absolute path, checked to lie inside the backup directory.
    pub path: PathBuf,
    /// Size on disk (compressed, if compressed).
    pub bytes: u64,
    /// The file the plan was made from (device and inode): the one a restore must read
    /// ([`crate::files::open_planned`]). None for a file not looked at yet.
    #[serde(skip)]
    pub identity: Option<FileIdentity>,
    /// The object it is, for a backup in object storage (`path` is then its URL, for
    /// messages); pinned at the size and ETag it was listed with.
    #[serde(skip)]
    pub object: Option<floodgate_storage::Object>,
}

/// Which file a path named when the backup was read: a file swapped for another (a link, a
/// FIFO, a copy) after that is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
}

impl SqlFile {
    /// A file as found on disk now: its size and identity from `meta`.
    pub fn found(path: PathBuf, meta: &std::fs::Metadata) -> SqlFile {
        use std::os::unix::fs::MetadataExt;
        SqlFile {
            path,
            bytes: meta.len(),
            identity: Some(FileIdentity { dev: meta.dev(), ino: meta.ino() }),
            object: None,
        }
    }

    /// An object of a backup in object storage, as listed.
    pub fn remote(object: floodgate_storage::Object) -> SqlFile {
        SqlFile { path: PathBuf::from(object.url()), bytes: object.size(), identity: None, object: Some(object) }
    }

    /// A file whose identity is not checked (tests, files made by floodgate itself).
    pub fn unchecked(path: PathBuf, bytes: u64) -> SqlFile {
        SqlFile { path, bytes, identity: None, object: None }
    }

    /// The file name, for messages.
    pub fn name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// One unit of data work: a file whose statements load part of one table, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chunk {
    /// Position of the chunk within its table (from the file name), for ordering and reports.
    pub index: u64,
    /// The SQL file to execute (INSERTs, or a LOAD DATA statement).
    pub file: SqlFile,
    /// Data files its LOAD DATA statements may stream (mydumper `--load-data` `.dat` files).
    pub data_files: Vec<SqlFile>,
    /// For rows files (floodgate's native chunks): the file holds LOAD DATA rows, not SQL,
    /// and must hash and count to these values.
    pub rows: Option<RowsCheck>,
    /// For delimited data files (MySQL Shell's chunks): the file holds rows in this dialect,
    /// not SQL.
    pub delimited: Option<Delimited>,
}

/// A data file of delimited rows, loaded with one LOAD DATA in its own dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delimited {
    /// Bytes once decompressed, as the dump recorded them (its `.idx`, its `@.done.json`):
    /// a file that decompresses to more is refused there, to fewer is truncated.
    pub bytes: u64,
    /// The partition it holds (`INTO TABLE t PARTITION (p)`).
    pub partition: Option<String>,
    /// How its rows are written.
    pub dialect: Dialect,
}

/// How a table's data files are written: fields, their order and how each is decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dialect {
    /// The fields of each row, in order.
    pub columns: Vec<String>,
    /// Columns written encoded, with the function that decodes them (`FROM_BASE64`, `UNHEX`).
    pub decode: Vec<(String, String)>,
    /// The character set of the file's text.
    pub charset: String,
    pub fields_terminated_by: String,
    pub fields_enclosed_by: String,
    pub fields_optionally_enclosed: bool,
    pub fields_escaped_by: String,
    pub lines_terminated_by: String,
}

/// What a native chunk must be, as its manifest declares it: its size as stored and
/// decompressed, its compressed bytes' SHA-256 and its row count. The sizes bound what
/// reading it may cost: a file larger than declared is refused before it is read, and
/// decompression stops at the declared size (a decompression bomb ends there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowsCheck {
    /// Lower-case hex SHA-256 of the file as stored.
    pub sha256: String,
    /// Rows in the chunk.
    pub rows: u64,
    /// Bytes once decompressed.
    pub bytes: u64,
    /// Bytes as stored.
    pub compressed_bytes: u64,
}

impl Chunk {
    /// Bytes on disk this chunk reads.
    pub fn bytes(&self) -> u64 {
        self.file.bytes + self.data_files.iter().map(|f| f.bytes).sum::<u64>()
    }
}

/// A base table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    /// Real table name (from its CREATE TABLE, not from the file name).
    pub name: String,
    /// File with the CREATE TABLE statement.
    pub schema: SqlFile,
    /// Data chunks in order.
    pub chunks: Vec<Chunk>,
    /// Row count the backup recorded, if it records one.
    pub expected_rows: Option<u64>,
    /// Columns the rows files list, in order (generated columns left out); native only.
    pub columns: Vec<String>,
    /// The order-independent digest of the table's rows (hex), where the backup has one.
    pub content_digest: Option<String>,
    /// Checksums of the source's rows, per chunk, where the backup has them (MySQL Shell's
    /// `@.checksums.json`).
    pub checksums: Option<RowChecksums>,
}

/// MySQL Shell's checksums of a table's rows (`@.checksums.json`, algorithm `bit_xor` of
/// SHA-256): for each part (a chunk's key range, or the whole table or partition), the
/// rows it holds and the XOR of each row's SHA-256 over its columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowChecksums {
    /// The columns hashed, in order.
    pub columns: Vec<String>,
    /// The nullable ones, whose NULL-ness is hashed too.
    pub null_columns: Vec<String>,
    /// One per checksummed part.
    pub parts: Vec<RowChecksum>,
}

/// The checksum of one part of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowChecksum {
    /// The partition it lies in.
    pub partition: Option<String>,
    /// The key range it covers (SQL), or the whole table or partition.
    pub boundary: Option<String>,
    /// Rows in it.
    pub count: u64,
    /// Upper-case hex of the XOR of the rows' SHA-256.
    pub checksum: String,
}

impl Table {
    /// Bytes on disk of all chunks.
    pub fn data_bytes(&self) -> u64 {
        self.chunks.iter().map(Chunk::bytes).sum()
    }
}

/// A view: created after all data, placeholders first so views on views resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    /// Real view name.
    pub name: String,
    /// A stand-in table with the view's columns, created before the real views.
    pub placeholder: Option<SqlFile>,
    /// The CREATE VIEW (it drops the stand-in first).
    pub definition: SqlFile,
}

/// A database and everything in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Database {
    /// Real database name.
    pub name: String,
    /// File with CREATE DATABASE, if the dump has one.
    pub create: Option<SqlFile>,
    /// Base tables.
    pub tables: Vec<Table>,
    /// Views.
    pub views: Vec<View>,
    /// Routines and events, applied after all data.
    pub post: Vec<SqlFile>,
    /// Trigger definitions, applied last so they never fire on restored rows.
    pub triggers: Vec<SqlFile>,
}

/// Everything a restore needs to know about a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestorePlan {
    /// Which tool wrote it.
    pub format: Format,
    /// The backup directory or file.
    pub root: PathBuf,
    /// Session settings for every connection.
    pub session: SessionSettings,
    /// Snapshot position, if recorded.
    pub position: Option<Position>,
    /// Databases in name order.
    pub databases: Vec<Database>,
    /// Scripts run before anything else (MySQL Shell's `@.sql`).
    pub before: Vec<SqlFile>,
    /// Scripts run after everything else (MySQL Shell's `@.post.sql`).
    pub after: Vec<SqlFile>,
    /// The dump is still being written (`--wait-for-dump`): more data files will appear.
    pub growing: bool,
    /// Accounts and grants (MySQL Shell's `@.users.sql`), restored with `--users`.
    pub users: Option<SqlFile>,
    /// `--into`: the one database is restored under another name, and the SQL the backup
    /// runs is rewritten to match ([`crate::rename`]).
    pub rename: Option<crate::rename::Rename>,
}

impl RestorePlan {
    /// All tables with their database name.
    pub fn tables(&self) -> impl Iterator<Item = (&Database, &Table)> {
        self.databases.iter().flat_map(|d| d.tables.iter().map(move |t| (d, t)))
    }

    /// The statements of one of the plan's SQL files, as this restore runs them: with the
    /// databases renamed under `--into` or `--rename-db`.
    pub fn statements(&self, file: &SqlFile) -> crate::Result<Vec<crate::split::Statement>> {
        let mut statements = crate::read_statements(file, self.format.terminator())?;
        if let Some(rename) = &self.rename {
            for s in &mut statements {
                s.text = self.renamed(rename, &s.text, file, s.offset)?;
            }
        }
        Ok(statements)
    }

    /// `text` with `--into`'s or `--rename-db`'s renames applied, or why it cannot be (see [`crate::rename`]).
    pub fn rename_text(&self, text: &[u8], file: &SqlFile, offset: u64) -> crate::Result<Vec<u8>> {
        match &self.rename {
            Some(rename) => self.renamed(rename, text, file, offset),
            None => Ok(text.to_vec()),
        }
    }

    fn renamed(
        &self,
        rename: &crate::rename::Rename,
        text: &[u8],
        file: &SqlFile,
        offset: u64,
    ) -> crate::Result<Vec<u8>> {
        rename.rewrite(text).map(std::borrow::Cow::into_owned).map_err(|reason| {
            crate::FormatError::Selection(format!(
                "{} at byte {offset}: renaming {}: {reason}",
                file.path.display(),
                rename.describe()
            ))
        })
    }

    /// Total bytes on disk of all data chunks.
    pub fn data_bytes(&self) -> u64 {
        self.tables().map(|(_, t)| t.data_bytes()).sum()
    }

    /// Keeps what `selection` picks; a name that matches nothing is refused (a typo would
    /// otherwise restore less than asked without a word). `--into` renames the one database
    /// left: of a single-database backup, or the one `--database` picks.
    pub fn select(&mut self, selection: &Selection) -> crate::Result<()> {
        let unmatched = self.filter(&selection.databases, &selection.exclude);
        if !unmatched.is_empty() {
            return Err(crate::FormatError::Selection(format!(
                "not in the backup: {} (see `floodgate inspect`)",
                unmatched.join(", ")
            )));
        }
        if let Some(into) = &selection.into {
            let [db] = &mut self.databases[..] else {
                let names: Vec<&str> = self.databases.iter().map(|d| d.name.as_str()).collect();
                return Err(crate::FormatError::Selection(format!(
                    "--into renames the one database restored; this backup holds {} ({}): pick one with --database, \
                     or name each with --rename-db OLD:NEW",
                    names.len(),
                    names.join(", ")
                )));
            };
            let rename = crate::rename::Rename::one(&db.name, into);
            db.name = into.clone();
            self.rename = (!rename.is_empty()).then_some(rename);
            return Ok(());
        }
        let rename = selection.rename();
        let names: Vec<&str> = self.databases.iter().map(|d| d.name.as_str()).collect();
        selection.check_renames(&names).map_err(crate::FormatError::Selection)?;
        for db in &mut self.databases {
            if let Some(to) = rename.get(&db.name) {
                db.name = to.to_string();
            }
        }
        self.rename = (!rename.is_empty()).then_some(rename);
        Ok(())
    }

    /// Keeps only the named databases (all when `names` is empty, the server's own schemas
    /// aside: see [`SERVER_SCHEMAS`]) and drops excluded tables (`db.table`). Returns the names
    /// that matched nothing, so typos are reported.
    pub fn filter(&mut self, databases: &[String], exclude: &[String]) -> Vec<String> {
        let mut unmatched: Vec<String> =
            databases.iter().filter(|n| !self.databases.iter().any(|d| &&d.name == n)).cloned().collect();
        match databases.is_empty() {
            true => self.databases.retain(|d| !is_server_schema(&d.name)),
            false => self.databases.retain(|d| databases.contains(&d.name)),
        }
        for pattern in exclude {
            let mut hit = false;
            for db in &mut self.databases {
                let before = db.tables.len() + db.views.len();
                db.tables.retain(|t| pattern != &format!("{}.{}", db.name, t.name));
                db.views.retain(|v| pattern != &format!("{}.{}", db.name, v.name));
                hit |= db.tables.len() + db.views.len() != before;
            }
            if !hit {
                unmatched.push(pattern.clone());
            }
        }
        unmatched
    }
}

/// The server's own schemas. A backup of a whole server holds `mysql` (its accounts,
/// privileges, time zones, replication state): restored as rows, it would replace the
/// target's accounts, floodgate's own included. They are restored only when `--database`
/// names them; accounts come with `--users`.
pub const SERVER_SCHEMAS: [&str; 4] = ["mysql", "sys", "performance_schema", "information_schema"];

/// True for one of [`SERVER_SCHEMAS`].
pub fn is_server_schema(db: &str) -> bool {
    SERVER_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(db))
}

/// Which part of a backup to restore: `--into`, `--database` and `--exclude`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Restore the dump's single database under this name.
    pub into: Option<String>,
    /// Only these databases (all when empty), as named in the dump (or `--into`).
    pub databases: Vec<String>,
    /// Tables to skip, as `db.table`.
    pub exclude: Vec<String>,
    /// `--rename-db OLD:NEW`: databases restored under other names (`--database` and
    /// `--exclude` name them as the backup does).
    pub renames: Vec<(String, String)>,
    matched: std::collections::BTreeSet<String>,
    left_out: std::collections::BTreeSet<String>,
}

impl Selection {
    /// A selection from the command line's flags.
    pub fn new(into: Option<String>, databases: Vec<String>, exclude: Vec<String>) -> Self {
        Selection {
            into,
            databases,
            exclude,
            renames: Vec::new(),
            matched: Default::default(),
            left_out: Default::default(),
        }
    }

    /// The selection restoring each `OLD` database of the backup as `NEW` (`--rename-db`).
    pub fn renaming(mut self, renames: Vec<(String, String)>) -> Self {
        self.renames = renames;
        self
    }

    /// The `--rename-db` renames.
    pub fn rename(&self) -> crate::rename::Rename {
        crate::rename::Rename::new(self.renames.iter().cloned())
    }

    /// Every name the restore creates databases under: `--into`'s, `--rename-db`'s NEWs.
    pub fn new_names(&self) -> Vec<&str> {
        self.into.iter().map(String::as_str).chain(self.renames.iter().map(|(_, to)| to.as_str())).collect()
    }

    /// Refuses renames that would lose data or cannot be meant, given the databases the
    /// backup restores (`restored`, as the backup names them; `None` for a stream, not known
    /// up front): an OLD named twice, two databases given one name, an OLD not restored, a
    /// NEW that another restored database already has.
    pub fn check_renames(&self, restored: &[&str]) -> Result<(), String> {
        let mut by_new: std::collections::BTreeMap<&str, &str> = Default::default();
        let mut olds = std::collections::BTreeSet::new();
        for (from, to) in &self.renames {
            if !olds.insert(from.as_str()) {
                return Err(format!("--rename-db names `{from}` twice"));
            }
            if let Some(other) = by_new.insert(to.as_str(), from.as_str()) {
                return Err(format!("--rename-db maps both `{other}` and `{from}` to `{to}`: one database each"));
            }
        }
        let unknown: Vec<&str> = olds.iter().copied().filter(|old| !restored.contains(old)).collect();
        if !unknown.is_empty() {
            return Err(format!("--rename-db: not in the backup (or not selected): {}", unknown.join(", ")));
        }
        for (&to, &from) in &by_new {
            if to != from && restored.contains(&to) && !olds.contains(to) {
                return Err(format!(
                    "--rename-db {from}:{to}: the backup also restores a database named `{to}`; rename that one too"
                ));
            }
        }
        Ok(())
    }

    /// The backup's name of the database restored as `db`.
    fn original<'a>(&'a self, db: &'a str) -> &'a str {
        self.renames.iter().find(|(_, to)| to == db).map_or(db, |(from, _)| from.as_str())
    }

    /// The server's own schemas the stream held and the selection left out.
    pub fn server_schemas_left_out(&self) -> Vec<String> {
        self.left_out.iter().cloned().collect()
    }

    /// True if statements of `db` are wanted. The server's own schemas are wanted only when
    /// named; one left out is remembered ([`Selection::server_schemas_left_out`]).
    pub fn wants_db(&mut self, db: &str) -> bool {
        let db = self.original(db).to_string();
        let db = db.as_str();
        if self.renames.iter().any(|(from, _)| from == db) {
            self.matched.insert(format!("--rename-db {db}"));
        }
        if self.databases.is_empty() {
            if is_server_schema(db) {
                self.left_out.insert(db.to_string());
                return false;
            }
            return true;
        }
        let hit = self.databases.iter().any(|d| d == db);
        if hit {
            self.matched.insert(db.to_string());
        }
        hit
    }

    /// True if `db`.`table` is wanted.
    pub fn wants_table(&mut self, db: &str, table: &str) -> bool {
        if !self.wants_db(db) {
            return false;
        }
        let name = format!("{}.{table}", self.original(db));
        if self.exclude.contains(&name) {
            self.matched.insert(name);
            return false;
        }
        true
    }

    /// Names given on the command line that matched nothing in the stream so far.
    pub fn unmatched(&self) -> Vec<String> {
        let renamed = self.renames.iter().map(|(from, _)| format!("--rename-db {from}"));
        let given = self.databases.iter().chain(&self.exclude).cloned().chain(renamed);
        given.filter(|n| !self.matched.contains(n)).collect()
    }
}
