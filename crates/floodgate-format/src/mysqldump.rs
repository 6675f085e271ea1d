//! Reads mysqldump / mariadb-dump output: one stream of statements, classified so a restore
//! can run schema statements in order, spread each table's rows over many connections, and
//! keep triggers, routines, events and views until after the data.
//!
//! The stream is never held in memory: [`DumpSource::open`] gives a reader (decompressed by
//! magic bytes), the statement splitter cuts it, and [`Classifier`] says what each statement
//! is. Session statements (`SET`, `USE`) are replayed in order both where the schema is built
//! and where post-data objects are created, so each sees the same session the dump set up
//! (mysqldump wraps triggers and routines in `SET sql_mode`/`character_set_client` saves and
//! restores).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::compress::{self, Compression};
use crate::ident;
use crate::objects::{object_change, ExpectedObjects};
use crate::split::{self, Statement, StatementLimit, Terminator};
use crate::sqltext::{self, identifier, keyword, skip_ws};
use crate::{FormatError, Result};

/// Where a dump comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DumpSource {
    /// The file, or None for standard input or an object.
    pub path: Option<PathBuf>,
    /// The object in object storage (`s3://bucket/key`), pinned at its size and ETag.
    #[serde(skip)]
    pub object: Option<floodgate_storage::Object>,
    /// Size on disk, when a file.
    pub bytes: Option<u64>,
    /// Compression found by magic bytes.
    pub compression: Compression,
}

impl DumpSource {
    /// A name for messages: the path or `<stdin>`.
    pub fn name(&self) -> String {
        if let Some(object) = &self.object {
            return object.url();
        }
        self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<stdin>".into())
    }

    /// Opens the raw (still compressed) bytes. An object is read in parallel ranges.
    pub fn open_raw(&self) -> Result<Box<dyn Read + Send>> {
        match (&self.object, &self.path) {
            (Some(object), _) => Ok(Box::new(object.reader(0))),
            (None, Some(p)) => Ok(Box::new(File::open(p).map_err(|e| FormatError::io(p, e))?)),
            (None, None) => Ok(Box::new(std::io::stdin())),
        }
    }

    /// True for a regular, uncompressed file on disk: a part of it can be read again by
    /// offset ([`DumpSource::read_range`]), so a chunk need not be held in memory. Not
    /// standard input, a pipe, a compressed file, nor an object (read again, every byte
    /// would cross the network twice; its chunks are held like a compressed file's).
    pub fn seekable(&self) -> bool {
        let regular = self.object.is_none()
            && self.path.as_ref().and_then(|p| std::fs::metadata(p).ok()).is_some_and(|m| m.is_file());
        regular && self.compression == Compression::None
    }

    /// True when its last bytes can be read before the rest: an uncompressed file or object,
    /// whose `-- Dump completed` line is then checked before anything changes
    /// ([`DumpSource::plain_completeness`]).
    pub fn ends_readable_first(&self) -> bool {
        self.compression == Compression::None && (self.object.is_some() || self.seekable())
    }

    /// Whether a seekable dump is whole, from its first and last bytes ([`completeness`]):
    /// known before anything is restored.
    pub fn plain_completeness(&self) -> Result<Completeness> {
        match (&self.object, &self.path) {
            (Some(object), _) => {
                let len = object.size();
                let head = object.read_range(0, ENDS as u64)?;
                let tail = object.read_range(len.saturating_sub(ENDS as u64), ENDS as u64)?;
                completeness(&object.url(), &head, &tail, len)
            }
            (None, Some(path)) => file_completeness(path),
            (None, None) => Err(FormatError::NotABackup {
                path: self.name().into(),
                reason: "standard input cannot be read twice".into(),
            }),
        }
    }

    /// The statements in bytes `offset..offset + len` of a seekable dump, with the file's
    /// offsets. The range is one a first read found statements in; it is read again when its
    /// rows load, so the file need not be held in memory in between. Splits with the `;`
    /// delimiter; the caller compares what it gets with what the first read saw.
    pub fn read_range(&self, offset: u64, len: u64) -> Result<Vec<Statement>> {
        if let Some(object) = self.object.as_ref().filter(|_| self.compression == Compression::None) {
            let text = object.read_range(offset, len)?;
            if (text.len() as u64) < len {
                return Err(FormatError::corrupt(
                    Path::new(&object.url()),
                    Some(offset + text.len() as u64),
                    "the object is shorter than when it was first read: it changed during the restore",
                ));
            }
            return split_range(&text, offset, Path::new(&object.url()));
        }
        // Not `seekable()`: a chunk's range is read once per chunk, and the caller checked that.
        let plain = self.path.as_deref().filter(|_| self.compression == Compression::None);
        let path = plain.ok_or_else(|| FormatError::NotABackup {
            path: self.name().into(),
            reason: "only a plain file can be read again by offset".into(),
        })?;
        let mut file = File::open(path).map_err(|e| FormatError::io(path, e))?;
        file.seek(SeekFrom::Start(offset)).map_err(|e| FormatError::io(path, e))?;
        let mut text = Vec::with_capacity(len.min(1 << 30) as usize);
        file.take(len).read_to_end(&mut text).map_err(|e| FormatError::io(path, e))?;
        if (text.len() as u64) < len {
            return Err(FormatError::corrupt(
                path,
                Some(offset + text.len() as u64),
                "the file is shorter than when it was first read: it changed during the restore",
            ));
        }
        split_range(&text, offset, path)
    }
}

/// The statements of `text`, read from `offset` of `path`, with the file's offsets.
fn split_range(text: &[u8], offset: u64, path: &Path) -> Result<Vec<Statement>> {
    let mut statements = split::split_all(text, Terminator::Delimiter)
        .map_err(|e| FormatError::corrupt(path, Some(offset), format!("reading bytes again: {e}")))?;
    for s in &mut statements {
        s.offset += offset;
    }
    Ok(statements)
}

/// Checks that `path` is a SQL dump (plain, gzip or zstd) and describes it. Standard input
/// (`-`) is accepted as is: it can only be read once, so its first statement decides.
pub fn detect(path: &Path) -> Result<DumpSource> {
    if path == Path::new("-") {
        return Ok(DumpSource { path: None, object: None, bytes: None, compression: Compression::None });
    }
    let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
    let bytes = file.metadata().map_err(|e| FormatError::io(path, e))?.len();
    let compression = sniff_sql(path, BufReader::new(file))?;
    Ok(DumpSource { path: Some(path.to_path_buf()), object: None, bytes: Some(bytes), compression })
}

/// Checks that `object` holds a SQL dump (plain, gzip or zstd) and describes it.
pub fn detect_object(object: floodgate_storage::Object) -> Result<DumpSource> {
    // One small part: enough for the first 64 KiB of SQL, even compressed.
    let head = object.reader_with(0, 1 << 20, 1);
    let compression = sniff_sql(Path::new(&object.url()), BufReader::new(head))?;
    Ok(DumpSource { path: None, bytes: Some(object.size()), object: Some(object), compression })
}

/// The compression of a dump whose raw bytes `raw` reads, once its first 64 KiB of text are
/// found to be SQL.
fn sniff_sql(path: &Path, mut raw: impl BufRead + Send + 'static) -> Result<Compression> {
    let compression = Compression::sniff(raw.fill_buf().map_err(|e| FormatError::io(path, e))?);
    let mut head = Vec::new();
    compress::decoder(raw)
        .and_then(|r| r.take(64 * 1024).read_to_end(&mut head))
        .map_err(|e| FormatError::corrupt(path, Some(0), format!("cannot decompress the start of the file: {e}")))?;
    if !looks_like_sql(&head) {
        return Err(FormatError::NotABackup {
            path: path.to_path_buf(),
            reason: "not a mysqldump/mariadb-dump file (plain, .gz or .zst): it does not start with SQL".into(),
        });
    }
    Ok(compression)
}

/// True if `head` starts (after whitespace) with a comment or a statement keyword a dump
/// begins with, and holds no NUL byte in its first lines.
pub fn looks_like_sql(head: &[u8]) -> bool {
    let start = skip_ws(head, 0);
    let first = &head[start..];
    if first.is_empty() || head[..head.len().min(512)].contains(&0) {
        return false;
    }
    if first.starts_with(b"--") || first.starts_with(b"/*") || first.starts_with(b"#") {
        return true;
    }
    ["SET", "CREATE", "DROP", "USE", "INSERT", "LOCK", "DELIMITER", "REPLACE"]
        .iter()
        .any(|k| keyword(first, 0, k.as_bytes()).is_some())
}

/// What a statement of a dump is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `SET ...` or `USE db`: replayed in order everywhere statements of this dump run.
    Context(Statement),
    /// A statement that changes the server's global state (`SET GLOBAL gtid_slave_pos`,
    /// MySQL's `SET @@GLOBAL.GTID_PURGED`, `CHANGE MASTER TO`): run once, where the dump has
    /// it, never replayed as session context.
    Global(Statement),
    /// Schema and other statements run in order before the data that follows them.
    Schema(Statement),
    /// An INSERT/REPLACE for `db`.`table`.
    Rows {
        /// Database (the one `USE` selected, or `--into`).
        db: String,
        /// Table.
        table: String,
        /// The statement.
        statement: Statement,
    },
    /// Trigger, routine, event or view definitions (and their drops): after all data.
    Post(Statement),
    /// LOCK/UNLOCK TABLES and `ALTER TABLE ... DISABLE/ENABLE KEYS`: meaningless for a
    /// parallel load, dropped.
    Skip(Statement),
    /// Accounts and privileges (`CREATE USER`, `GRANT`, `SET DEFAULT ROLE`, ...; what
    /// `mariadb-dump --system=users` writes): restored with `--users` only.
    Account(Statement),
}

/// Object a schema statement creates or drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaTarget {
    /// CREATE TABLE / DROP TABLE of `db`.`table`.
    Table(String, String),
    /// CREATE DATABASE / DROP DATABASE.
    Database(String),
}

/// Classifies statements in order, tracking the current database.
#[derive(Debug, Default)]
pub struct Classifier {
    current_db: Option<String>,
    into: Option<String>,
    source_db: Option<String>,
    /// `--rename-db`: databases restored under other names.
    rename: crate::rename::Rename,
}

impl Classifier {
    /// A classifier; `into` renames the dump's (single) database.
    pub fn new(into: Option<String>) -> Self {
        Classifier { current_db: into.clone(), into, source_db: None, rename: Default::default() }
    }

    /// A classifier renaming each database `rename` names (`--rename-db`), in `USE`,
    /// `CREATE DATABASE` and the qualified references of schema and post-data statements.
    pub fn renaming(rename: crate::rename::Rename) -> Self {
        Classifier { rename, ..Classifier::default() }
    }

    /// The database selected by the last `USE` (or `--into`).
    pub fn current_db(&self) -> Option<&str> {
        self.current_db.as_deref()
    }

    /// Classifies the next statement. With `--into`, `USE` and `CREATE DATABASE` are
    /// rewritten to the new name, and a second database is an error.
    pub fn classify(&mut self, mut statement: Statement, source: &str) -> Result<Item> {
        let words = object_words(&statement.text);
        let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
        Ok(match w(0) {
            _ if is_account_statement(&words) => Item::Account(statement),
            "SET" if changes_global_state(&statement.text) => Item::Global(statement),
            "SET" => Item::Context(statement),
            "CHANGE" if matches!(w(1), "MASTER" | "REPLICATION") => Item::Global(statement),
            "USE" => {
                let db = use_target(&statement.text).ok_or_else(|| {
                    FormatError::corrupt(Path::new(source), Some(statement.offset), "USE without a database")
                })?;
                let db = self.rename(db, &statement, source)?;
                statement.text = format!("USE {}", ident::quote(&db)).into_bytes();
                self.current_db = Some(db);
                Item::Context(statement)
            }
            "LOCK" | "UNLOCK" => Item::Skip(statement),
            "ALTER"
                if w(1) == "TABLE"
                    && (contains_words(&statement.text, b"DISABLE KEYS")
                        || contains_words(&statement.text, b"ENABLE KEYS")) =>
            {
                Item::Skip(statement)
            }
            "INSERT" | "REPLACE" => {
                let table = sqltext::parse_insert_head(&statement.text).map(|h| h.table).ok_or_else(|| {
                    FormatError::corrupt(Path::new(source), Some(statement.offset), "cannot read the INSERT's table")
                })?;
                let db = self.current_db.clone().ok_or_else(|| no_database(source, &statement))?;
                Item::Rows { db, table, statement }
            }
            "CREATE" | "DROP" | "ALTER" => match post_object(&words) {
                true => {
                    self.rewrite_references(&mut statement, source)?;
                    Item::Post(statement)
                }
                false => {
                    if matches!(w(1), "DATABASE" | "SCHEMA") && (self.into.is_some() || !self.rename.is_empty()) {
                        statement.text = self.rewrite_database(&statement, source)?;
                    } else {
                        self.rewrite_references(&mut statement, source)?;
                    }
                    Item::Schema(statement)
                }
            },
            "DELIMITER" => Item::Skip(statement),
            _ => Item::Schema(statement),
        })
    }

    /// A schema or post-data statement with the renamed databases' qualified references
    /// rewritten (a view of one database reading another's table).
    fn rewrite_references(&self, statement: &mut Statement, source: &str) -> Result<()> {
        if self.rename.is_empty() {
            return Ok(());
        }
        match self.rename.rewrite(&statement.text) {
            Ok(std::borrow::Cow::Borrowed(_)) => Ok(()),
            Ok(std::borrow::Cow::Owned(text)) => {
                statement.text = text;
                Ok(())
            }
            Err(reason) => Err(FormatError::Selection(format!(
                "{source} at byte {}: renaming {}: {reason}",
                statement.offset,
                self.rename.describe()
            ))),
        }
    }

    fn rename(&mut self, db: String, statement: &Statement, source: &str) -> Result<String> {
        if let Some(to) = self.rename.get(&db) {
            return Ok(to.to_string());
        }
        let Some(into) = &self.into else { return Ok(db) };
        match &self.source_db {
            Some(first) if first != &db => Err(FormatError::corrupt(
                Path::new(source),
                Some(statement.offset),
                format!("--into renames one database, but this dump holds `{first}` and `{db}`"),
            )),
            _ => {
                self.source_db = Some(db);
                Ok(into.clone())
            }
        }
    }

    fn rewrite_database(&mut self, statement: &Statement, source: &str) -> Result<Vec<u8>> {
        let text = String::from_utf8_lossy(&statement.text).into_owned();
        let upper = text.to_ascii_uppercase();
        let kw = if upper.contains("DATABASE") { "DATABASE" } else { "SCHEMA" };
        let is_create = upper.trim_start().trim_start_matches("/*!40000").trim_start().starts_with("CREATE");
        let name = schema_target(&statement.text).and_then(|t| match t {
            SchemaTarget::Database(d) => Some(d),
            SchemaTarget::Table(..) => None,
        });
        let Some(name) = name else { return Ok(statement.text.clone()) };
        let new = self.rename(name, statement, source)?;
        let verb = if is_create { "CREATE" } else { "DROP" };
        let exists = if is_create { "IF NOT EXISTS" } else { "IF EXISTS" };
        Ok(format!("{verb} {kw} {exists} {}", ident::quote(&new)).into_bytes())
    }
}

/// `SET GLOBAL x = ...`, `SET @@GLOBAL.x = ...` (MySQL's GTID_PURGED), or a SET that
/// assigns a global variable among session ones. `@@GLOBAL.x` read on the right-hand side
/// (`SET @saved = @@GLOBAL.x`) does not count: only an assignment to one.
fn changes_global_state(text: &[u8]) -> bool {
    let upper = String::from_utf8_lossy(text).to_ascii_uppercase();
    let words = sqltext::head_words(text, 2);
    if words.get(1).is_some_and(|w| w == "GLOBAL" || w == "PERSIST") {
        return true;
    }
    upper.split(',').any(|assignment| {
        let target = assignment.split('=').next().unwrap_or_default();
        let target = target.trim_start().trim_start_matches("/*!").trim_start_matches(|c: char| c.is_ascii_digit());
        let target = target.trim_start().trim_start_matches("SET").trim_start();
        target.starts_with("@@GLOBAL.") || target.starts_with("GLOBAL ")
    })
}

/// Statements about accounts and privileges rather than data or schema.
fn is_account_statement(words: &[String]) -> bool {
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    match w(0) {
        "GRANT" | "REVOKE" => true,
        "CREATE" | "DROP" | "ALTER" | "RENAME" => matches!(w(1), "USER" | "ROLE"),
        "SET" => matches!(w(1), "ROLE" | "PASSWORD") || (w(1) == "DEFAULT" && w(2) == "ROLE"),
        "FLUSH" => w(1) == "PRIVILEGES",
        _ => false,
    }
}

/// The accounts (`user`, `host`) a statement names: every `name@host` in it, quoted or not.
pub fn named_accounts(text: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(text);
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for (at, _) in text.match_indices('@') {
        let (Some(user), Some(host)) = (name_before(bytes, at), name_after(bytes, at + 1)) else { continue };
        found.push((user, host));
    }
    found
}

fn name_before(b: &[u8], at: usize) -> Option<String> {
    let end = at;
    let last = *b.get(end.checked_sub(1)?)?;
    if matches!(last, b'`' | b'\'' | b'"') {
        let start = b[..end - 1].iter().rposition(|&c| c == last)?;
        return Some(String::from_utf8_lossy(&b[start + 1..end - 1]).into_owned());
    }
    let start = b[..end]
        .iter()
        .rposition(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')))
        .map_or(0, |i| i + 1);
    (start < end).then(|| String::from_utf8_lossy(&b[start..end]).into_owned())
}

fn name_after(b: &[u8], from: usize) -> Option<String> {
    let first = *b.get(from)?;
    if matches!(first, b'`' | b'\'' | b'"') {
        let len = b[from + 1..].iter().position(|&c| c == first)?;
        return Some(String::from_utf8_lossy(&b[from + 1..from + 1 + len]).into_owned());
    }
    let len =
        b[from..].iter().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'%')).count();
    (len > 0).then(|| String::from_utf8_lossy(&b[from..from + len]).into_owned())
}

fn no_database(source: &str, statement: &Statement) -> FormatError {
    FormatError::corrupt(
        Path::new(source),
        Some(statement.offset),
        "rows before any `USE db`: the dump was made without --databases; name the target with --into DB",
    )
}

fn contains_words(text: &[u8], needle: &[u8]) -> bool {
    text.to_ascii_uppercase().windows(needle.len()).any(|w| w == needle)
}

/// Trigger, routine, event and view statements, and `ALTER DATABASE` (mysqldump changes the
/// database's character set around routines).
fn post_object(words: &[String]) -> bool {
    let verb = words.first().map(String::as_str).unwrap_or("");
    let objects = ["TRIGGER", "FUNCTION", "PROCEDURE", "EVENT", "VIEW"];
    let object = words.iter().skip(1).find(|w| {
        objects.contains(&w.as_str())
            || matches!(
                w.as_str(),
                "TABLE" | "DATABASE" | "SCHEMA" | "INDEX" | "SEQUENCE" | "USER" | "ROLE" | "SERVER" | "TABLESPACE"
            )
    });
    match object.map(String::as_str) {
        Some(o) if objects.contains(&o) => true,
        Some("DATABASE" | "SCHEMA") => verb == "ALTER",
        _ => false,
    }
}

/// The keywords of a statement's head (see [`sqltext::head_words`]): enough to see what it
/// creates.
pub fn object_words(text: &[u8]) -> Vec<String> {
    sqltext::head_words(text, 12)
}

/// The database of `USE db`.
pub fn use_target(text: &[u8]) -> Option<String> {
    let i = skip_ws(text, 0);
    let i = skip_ws(text, keyword(text, i, b"USE")?);
    identifier(text, i).map(|(name, _)| name)
}

/// For `CREATE/DROP TABLE|DATABASE [IF [NOT] EXISTS] name`, the object named.
pub fn schema_target(text: &[u8]) -> Option<SchemaTarget> {
    // Strip a conditional-comment opener so `/*!40000 CREATE DATABASE ...*/` parses too.
    let mut i = skip_ws(text, 0);
    if text[i..].starts_with(b"/*!") {
        i += 3;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
    }
    i = skip_ws(text, i);
    let verb_end = keyword(text, i, b"CREATE").or_else(|| keyword(text, i, b"DROP"))?;
    i = skip_ws(text, verb_end);
    for modifier in [&b"TEMPORARY"[..], b"OR REPLACE"] {
        if let Some(e) = keyword(text, i, modifier) {
            i = skip_ws(text, e);
        }
    }
    let (is_table, e) = match keyword(text, i, b"TABLE") {
        Some(e) => (true, e),
        None => (false, keyword(text, i, b"DATABASE").or_else(|| keyword(text, i, b"SCHEMA"))?),
    };
    i = skip_ws(text, e);
    // Skip a conditional `/*!32312 IF NOT EXISTS*/` or a plain IF [NOT] EXISTS.
    loop {
        if text[i..].starts_with(b"/*") {
            let end = text[i..].windows(2).position(|w| w == b"*/")?;
            i = skip_ws(text, i + end + 2);
        } else if let Some(e) = keyword(text, i, b"IF") {
            i = skip_ws(text, e);
            if let Some(e) = keyword(text, i, b"NOT") {
                i = skip_ws(text, e);
            }
            i = skip_ws(text, keyword(text, i, b"EXISTS")?);
        } else {
            break;
        }
    }
    let (first, e) = identifier(text, i)?;
    if !is_table {
        return Some(SchemaTarget::Database(first));
    }
    if text.get(e) == Some(&b'.') {
        let (table, _) = identifier(text, e + 1)?;
        return Some(SchemaTarget::Table(first, table));
    }
    Some(SchemaTarget::Table(String::new(), first))
}

/// Classifies a dump's statements in order and records what the dump holds as it goes: the
/// one reading of a dump that restore, `inspect` and drills share (the same classification,
/// the same object tracking).
#[derive(Debug, Default)]
pub struct Scanner {
    classifier: Classifier,
    summary: DumpSummary,
}

/// What a dump holds, as far as it has been read.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DumpSummary {
    /// Databases in order of appearance.
    pub databases: Vec<String>,
    /// (database, table, INSERT statements, bytes of INSERT text), in order of appearance.
    pub tables: Vec<(String, String, u64, u64)>,
    /// Trigger, routine, event and view statements.
    pub post_statements: u64,
    /// Account and privilege statements (`CREATE USER`, `GRANT`, ...).
    pub account_statements: u64,
    /// Bytes of SQL text.
    pub bytes: u64,
    /// The views, triggers, routines and events the dump leaves behind.
    #[serde(skip)]
    pub objects: ExpectedObjects,
}

impl Scanner {
    /// A scanner; `into` renames the dump's (single) database.
    pub fn new(into: Option<String>) -> Self {
        Scanner { classifier: Classifier::new(into), summary: DumpSummary::default() }
    }

    /// A scanner of the selection's renames: `--into` or `--rename-db`.
    pub fn for_selection(selection: &crate::Selection) -> Self {
        let classifier = match &selection.into {
            Some(_) => Classifier::new(selection.into.clone()),
            None => Classifier::renaming(selection.rename()),
        };
        Scanner { classifier, summary: DumpSummary::default() }
    }

    /// The database selected by the last `USE` (or `--into`).
    pub fn current_db(&self) -> Option<&str> {
        self.classifier.current_db()
    }

    /// What the statements so far hold.
    pub fn summary(&self) -> &DumpSummary {
        &self.summary
    }

    /// Classifies the next statement (see [`Classifier::classify`]) and records it. A
    /// statement the splitter found unterminated means the dump is cut in the middle of it.
    pub fn next(&mut self, statement: Statement, source: &str) -> Result<Item> {
        if !statement.terminated {
            return Err(FormatError::corrupt(
                Path::new(source),
                Some(statement.offset),
                "the dump ends in the middle of a statement: it is truncated",
            ));
        }
        self.summary.bytes = statement.offset + statement.text.len() as u64;
        let item = self.classifier.classify(statement, source)?;
        let current = self.classifier.current_db().unwrap_or_default().to_string();
        let summary = &mut self.summary;
        match &item {
            Item::Rows { db, table, statement } => {
                let len = statement.text.len() as u64;
                match summary.tables.iter_mut().find(|t| &t.0 == db && &t.1 == table) {
                    Some(t) => {
                        t.2 += 1;
                        t.3 += len;
                    }
                    None => summary.tables.push((db.clone(), table.clone(), 1, len)),
                }
            }
            Item::Post(s) => {
                summary.post_statements += 1;
                if let Some(change) = object_change(&s.text) {
                    summary.objects.apply(change, &current);
                }
            }
            Item::Schema(s) => match schema_target(&s.text) {
                Some(SchemaTarget::Database(d)) if !summary.databases.contains(&d) => summary.databases.push(d),
                Some(SchemaTarget::Table(db, t)) => {
                    let db = if db.is_empty() { current.clone() } else { db };
                    if !summary.tables.iter().any(|x| x.0 == db && x.1 == t) {
                        summary.tables.push((db, t, 0, 0));
                    }
                }
                _ => {}
            },
            Item::Account(_) => summary.account_statements += 1,
            Item::Context(_) | Item::Skip(_) | Item::Global(_) => {}
        }
        if !current.is_empty() && !summary.databases.contains(&current) {
            summary.databases.push(current);
        }
        Ok(item)
    }
}

/// How many bytes [`Ends`] keeps of each end of a stream.
const ENDS: usize = 4096;

/// The first and last bytes of a decompressed dump, kept as it streams by: the dump tool's
/// header comment and `-- Dump completed` trailer are comments, which the statement splitter
/// drops.
#[derive(Debug, Default)]
pub struct Ends {
    seen: std::sync::Mutex<(Vec<u8>, Vec<u8>, u64)>,
}

impl Ends {
    /// Wraps `inner` so the bytes read through it are kept.
    pub fn reader<R: Read>(self: &std::sync::Arc<Self>, inner: R) -> EndsReader<R> {
        EndsReader { inner, ends: self.clone() }
    }

    /// Checks the ends seen so far (the whole stream, once it was read to the end).
    pub fn check(&self, source: &str) -> Result<Completeness> {
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        completeness(source, &seen.0, &seen.1, seen.2)
    }
}

/// A reader that keeps the ends of what passes through ([`Ends`]).
pub struct EndsReader<R> {
    inner: R,
    ends: std::sync::Arc<Ends>,
}

impl<R: Read> Read for EndsReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut seen) = self.ends.seen.lock() {
            let (head, tail, bytes) = &mut *seen;
            if head.len() < ENDS {
                let take = n.min(ENDS - head.len());
                head.extend_from_slice(&buf[..take]);
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * ENDS {
                tail.drain(..tail.len() - ENDS);
            }
            *bytes += n as u64;
        }
        Ok(n)
    }
}

/// Whether a dump is known to be whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completeness {
    /// It ends with the dump tool's `-- Dump completed [on DATE]` line.
    Complete {
        /// The date on that line.
        completed_on: Option<String>,
    },
    /// Written without comments (`--skip-comments`, `--compact`): no header, so no trailer
    /// is expected and completeness cannot be checked.
    Unmarked,
}

/// mysqldump and mariadb-dump end with `-- Dump completed on ...` unless told to write no
/// comments: a dump that starts with their header comment but lacks the trailer was cut off
/// between two statements, which the statement splitter cannot see. `bytes` is the length
/// of the (decompressed) dump, where the trailer is missing.
pub fn completeness(source: &str, head: &[u8], tail: &[u8], bytes: u64) -> Result<Completeness> {
    let header = String::from_utf8_lossy(head);
    let commented = header.contains("-- MySQL dump") || header.contains("-- MariaDB dump");
    let tail = String::from_utf8_lossy(tail);
    if let Some(line) = tail.lines().rev().find(|l| l.starts_with("-- Dump completed")) {
        let completed_on = line.split_once(" on ").map(|(_, d)| d.trim().to_string()).filter(|d| !d.is_empty());
        return Ok(Completeness::Complete { completed_on });
    }
    if !commented {
        return Ok(Completeness::Unmarked);
    }
    Err(FormatError::corrupt(
        Path::new(source),
        Some(bytes),
        "no `-- Dump completed` line at the end, which the dump's header promises: the file is truncated or \
         the dump did not finish",
    ))
}

/// The completeness of a plain (uncompressed, seekable) dump file, from its first and last
/// bytes: known before anything is restored.
pub fn file_completeness(path: &Path) -> Result<Completeness> {
    let mut file = File::open(path).map_err(|e| FormatError::io(path, e))?;
    let len = file.metadata().map_err(|e| FormatError::io(path, e))?.len();
    let mut head = Vec::new();
    (&mut file).take(ENDS as u64).read_to_end(&mut head).map_err(|e| FormatError::io(path, e))?;
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(len.saturating_sub(ENDS as u64))).map_err(|e| FormatError::io(path, e))?;
    file.read_to_end(&mut tail).map_err(|e| FormatError::io(path, e))?;
    completeness(&path.display().to_string(), &head, &tail, len)
}

/// What one whole pass over a dump found.
#[derive(Debug, Clone)]
pub struct DumpScan {
    /// What it holds.
    pub summary: DumpSummary,
    /// Whether it is whole.
    pub completeness: Completeness,
    /// SHA-256 of the file as stored (compressed or not), when asked for.
    pub sha256: Option<String>,
}

/// Reads the whole dump once: classifies every statement ([`Scanner`]), checks it is whole
/// ([`completeness`]) and, with `hash`, hashes the stored bytes. A statement larger than
/// `limit` is refused where it passes it. Errors name the byte offset.
pub fn scan(source: &DumpSource, into: Option<String>, hash: bool, limit: StatementLimit) -> Result<DumpScan> {
    let name = source.name();
    let corrupt = |offset: Option<u64>, reason: String| FormatError::corrupt(Path::new(&name), offset, reason);
    let hasher = std::sync::Arc::new(std::sync::Mutex::new(hash.then(<sha2::Sha256 as sha2::Digest>::new)));
    let stored = Hashing { inner: source.open_raw()?, hash: hasher.clone() };
    let ends = std::sync::Arc::new(Ends::default());
    let raw = compress::decoder(stored).map_err(|e| corrupt(Some(0), format!("cannot decompress: {e}")))?;
    let mut statements = split::StatementReader::new(ends.reader(raw), Terminator::Delimiter, limit.bytes);
    let mut scanner = Scanner::new(into);
    while let Some(s) = statements.next_statement().map_err(|e| corrupt(None, read_error(e, &limit)))? {
        scanner.next(s, &name)?;
    }
    let completeness = ends.check(&name)?;
    let sha256 = hasher.lock().ok().and_then(|mut h| h.take()).map(|h| hex(&sha2::Digest::finalize(h)));
    Ok(DumpScan { summary: scanner.summary, completeness, sha256 })
}

/// A read error for a message; a statement over the limit says what the limit is.
fn read_error(e: split::ReadError, limit: &StatementLimit) -> String {
    match e {
        split::ReadError::Split(too_large @ split::SplitError::TooLarge { .. }) => {
            format!("{too_large}: the limit is {}", limit.explain())
        }
        other => other.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes the bytes that pass through: the file's identity, computed on the pass that reads
/// it anyway.
struct Hashing<R> {
    inner: R,
    hash: std::sync::Arc<std::sync::Mutex<Option<sha2::Sha256>>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut h) = self.hash.lock() {
            if let Some(h) = h.as_mut() {
                sha2::Digest::update(h, &buf[..n]);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a plain regular file can be read again by offset.
    #[test]
    fn plain_files_are_seekable_compressed_and_piped_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"INSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\n";
        let plain = dir.path().join("dump.sql");
        std::fs::write(&plain, text).unwrap();
        let source = detect(&plain).unwrap();
        assert!(source.seekable());
        let second = source.read_range(26, 24).unwrap();
        assert_eq!((second[0].offset, &second[0].text[..]), (26, &b"INSERT INTO t VALUES (2)"[..]));
        let zst = dir.path().join("dump.sql.zst");
        std::fs::write(&zst, zstd::encode_all(&text[..], 1).unwrap()).unwrap();
        let compressed = detect(&zst).unwrap();
        assert!(!compressed.seekable());
        assert!(compressed.read_range(0, 10).is_err());
        assert!(!detect(Path::new("-")).unwrap().seekable());
    }

    fn st(text: &str) -> Statement {
        Statement { offset: 0, text: text.as_bytes().to_vec(), terminated: true }
    }

    fn kind(c: &mut Classifier, text: &str) -> &'static str {
        match c.classify(st(text), "dump.sql").unwrap() {
            Item::Context(_) => "context",
            Item::Global(_) => "global",
            Item::Schema(_) => "schema",
            Item::Rows { .. } => "rows",
            Item::Post(_) => "post",
            Item::Skip(_) => "skip",
            Item::Account(_) => "account",
        }
    }

    #[test]
    fn classifies_a_mariadb_dump() {
        let mut c = Classifier::new(None);
        assert_eq!(kind(&mut c, "/*!40101 SET NAMES utf8mb4 */"), "context");
        assert_eq!(
            kind(&mut c, "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `d` /*!40100 DEFAULT CHARACTER SET utf8mb4 */"),
            "schema"
        );
        assert_eq!(kind(&mut c, "USE `d`"), "context");
        assert_eq!(kind(&mut c, "DROP TABLE IF EXISTS `t`"), "schema");
        assert_eq!(kind(&mut c, "CREATE TABLE `t` (`a` int)"), "schema");
        assert_eq!(kind(&mut c, "LOCK TABLES `t` WRITE"), "skip");
        assert_eq!(kind(&mut c, "/*!40000 ALTER TABLE `t` DISABLE KEYS */"), "skip");
        match c.classify(st("INSERT INTO `t` VALUES (1)"), "x").unwrap() {
            Item::Rows { db, table, .. } => assert_eq!((db.as_str(), table.as_str()), ("d", "t")),
            other => panic!("{other:?}"),
        }
        assert_eq!(kind(&mut c, "/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER x AFTER INSERT ON t FOR EACH ROW BEGIN END */"), "post");
        assert_eq!(kind(&mut c, "CREATE DEFINER=`root`@`localhost` FUNCTION `f`() RETURNS int RETURN 1"), "post");
        assert_eq!(kind(&mut c, "/*!50001 CREATE ALGORITHM=UNDEFINED */ /*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */ /*!50001 VIEW `v` AS select 1 */"), "post");
        assert_eq!(kind(&mut c, "/*!50001 DROP VIEW IF EXISTS `v`*/"), "post");
        assert_eq!(kind(&mut c, "/*!50106 CREATE*/ /*!50117 DEFINER=`root`@`localhost`*/ /*!50106 EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT 1 */"), "post");
        assert_eq!(kind(&mut c, "ALTER DATABASE `d` CHARACTER SET latin1"), "post");
        assert_eq!(kind(&mut c, "DROP PROCEDURE IF EXISTS `p`"), "post");
        // Global state: once, never as session context.
        assert_eq!(kind(&mut c, "SET GLOBAL gtid_slave_pos='0-1-3'"), "global");
        assert_eq!(kind(&mut c, "CHANGE MASTER TO MASTER_USE_GTID=slave_pos"), "global");
        assert_eq!(
            kind(&mut c, "SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5'"),
            "global"
        );
        assert_eq!(kind(&mut c, "SET @MYSQLDUMP_TEMP_LOG_BIN = @@SESSION.SQL_LOG_BIN"), "context");
        assert_eq!(kind(&mut c, "SET @saved = @@GLOBAL.time_zone"), "context");
        assert_eq!(kind(&mut c, "/*!40103 SET TIME_ZONE='+00:00' */"), "context");
    }

    #[test]
    fn into_renames_one_database() {
        let mut c = Classifier::new(Some("copy".into()));
        match c.classify(st("CREATE DATABASE /*!32312 IF NOT EXISTS*/ `orig` /*!40100 x */"), "d").unwrap() {
            Item::Schema(s) => assert_eq!(s.text, b"CREATE DATABASE IF NOT EXISTS `copy`"),
            other => panic!("{other:?}"),
        }
        match c.classify(st("USE `orig`"), "d").unwrap() {
            Item::Context(s) => assert_eq!(s.text, b"USE `copy`"),
            other => panic!("{other:?}"),
        }
        assert!(c.classify(st("USE `other`"), "d").is_err());
        let mut c = Classifier::new(None);
        assert!(c.classify(st("INSERT INTO t VALUES (1)"), "d").is_err(), "rows need a database");
    }

    #[test]
    fn schema_targets() {
        assert_eq!(
            schema_target(b"CREATE TABLE `a``b` (x int)"),
            Some(SchemaTarget::Table(String::new(), "a`b".into()))
        );
        assert_eq!(schema_target(b"DROP TABLE IF EXISTS `d`.`t`"), Some(SchemaTarget::Table("d".into(), "t".into())));
        assert_eq!(
            schema_target(b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `x`"),
            Some(SchemaTarget::Database("x".into()))
        );
        assert_eq!(schema_target(b"CREATE INDEX i ON t (a)"), None);
    }

    #[test]
    fn completeness_rules() {
        let head = b"-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB\n";
        let done = completeness("d.sql", head, b"\n-- Dump completed on 2026-11-25 21:00:00\n", 9).unwrap();
        assert_eq!(done, Completeness::Complete { completed_on: Some("2026-11-25 21:00:00".into()) });
        let err = completeness("d.sql", head, b"INSERT INTO t VALUES (1);\n", 9).unwrap_err();
        assert!(err.is_integrity());
        assert!(err.to_string().contains("d.sql at byte 9"), "{err}");
        let bare = completeness("d.sql", b"SET NAMES utf8mb4;", b"INSERT INTO t VALUES (1);", 9).unwrap();
        assert_eq!(bare, Completeness::Unmarked);
    }

    #[test]
    fn the_scanner_tracks_tables_and_objects() {
        let mut s = Scanner::new(None);
        for text in [
            "CREATE DATABASE `d`",
            "USE `d`",
            "CREATE TABLE `t` (a int)",
            "INSERT INTO `t` VALUES (1)",
            "INSERT INTO `t` VALUES (2)",
            "CREATE VIEW `v` AS SELECT 1",
            "CREATE TRIGGER `x` AFTER INSERT ON `t` FOR EACH ROW SET @a = 1",
            "DROP TRIGGER `x`",
        ] {
            s.next(st(text), "dump.sql").unwrap();
        }
        let summary = s.summary();
        assert_eq!(summary.databases, ["d"]);
        assert_eq!(summary.tables, [("d".to_string(), "t".to_string(), 2, 52)]);
        let objects: Vec<_> = summary.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(objects, ["v"]);
        let cut = Statement { offset: 7, text: b"INSERT INTO t VALUES (".to_vec(), terminated: false };
        assert!(s.next(cut, "dump.sql").unwrap_err().is_integrity());
    }

    #[test]
    fn sniffing() {
        assert!(looks_like_sql(b"/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump"));
        assert!(looks_like_sql(b"\n\nSET NAMES utf8mb4;"));
        assert!(!looks_like_sql(b"\x7fELF\x02\x01"));
        assert!(!looks_like_sql(b"hello world"));
        assert!(!looks_like_sql(b""));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut c = Classifier::new(None);
            let _ = c.classify(Statement { offset: 0, text: text.clone(), terminated: true }, "x");
            let _ = schema_target(&text);
            let _ = object_words(&text);
            let _ = looks_like_sql(&text);
        }
    }

    #[test]
    fn account_statements_and_the_accounts_they_name() {
        let mut c = Classifier::new(None);
        for text in [
            "CREATE USER `a`@`%` IDENTIFIED BY PASSWORD '*X'",
            "GRANT SELECT ON d.* TO 'a'@'h'",
            "SET DEFAULT ROLE r FOR a@h",
            "FLUSH PRIVILEGES",
            "DROP USER IF EXISTS a@h",
            "SET ROLE NONE",
        ] {
            assert_eq!(kind(&mut c, text), "account", "{text}");
        }
        assert_eq!(kind(&mut c, "SET NAMES utf8mb4"), "context");
        assert_eq!(
            named_accounts(b"GRANT ALL ON *.* TO `root`@`localhost`, 'x y'@'%' WITH GRANT OPTION"),
            [("root".to_string(), "localhost".to_string()), ("x y".to_string(), "%".to_string())]
        );
        assert_eq!(
            named_accounts(b"CREATE USER mariadb.sys@localhost"),
            [("mariadb.sys".to_string(), "localhost".to_string())]
        );
    }
}
