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
use crate::split::{self, Statement, Terminator};
use crate::sqltext::{self, identifier, keyword, skip_ws};
use crate::{FormatError, Result};

/// Where a dump comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DumpSource {
    /// The file, or None for standard input.
    pub path: Option<PathBuf>,
    /// Size on disk, when a file.
    pub bytes: Option<u64>,
    /// Compression found by magic bytes.
    pub compression: Compression,
}

impl DumpSource {
    /// A name for messages: the path or `<stdin>`.
    pub fn name(&self) -> String {
        self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<stdin>".into())
    }

    /// Opens the raw (still compressed) bytes.
    pub fn open_raw(&self) -> Result<Box<dyn Read + Send>> {
        match &self.path {
            Some(p) => Ok(Box::new(File::open(p).map_err(|e| FormatError::io(p, e))?)),
            None => Ok(Box::new(std::io::stdin())),
        }
    }

    /// True for a regular, uncompressed file: a part of it can be read again by offset
    /// ([`DumpSource::read_range`]). Not standard input, a pipe or a compressed file.
    pub fn seekable(&self) -> bool {
        let regular = self.path.as_ref().and_then(|p| std::fs::metadata(p).ok()).is_some_and(|m| m.is_file());
        regular && self.compression == Compression::None
    }

    /// The statements in bytes `offset..offset + len` of a seekable dump, with the file's
    /// offsets. The range is one a first read found statements in; it is read again when its
    /// rows load, so the file need not be held in memory in between. Splits with the `;`
    /// delimiter; the caller compares what it gets with what the first read saw.
    pub fn read_range(&self, offset: u64, len: u64) -> Result<Vec<Statement>> {
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
        let mut statements = split::split_all(&text, Terminator::Delimiter)
            .map_err(|e| FormatError::corrupt(path, Some(offset), format!("reading bytes again: {e}")))?;
        for s in &mut statements {
            s.offset += offset;
        }
        Ok(statements)
    }
}

/// Checks that `path` is a SQL dump (plain, gzip or zstd) and describes it. Standard input
/// (`-`) is accepted as is: it can only be read once, so its first statement decides.
pub fn detect(path: &Path) -> Result<DumpSource> {
    if path == Path::new("-") {
        return Ok(DumpSource { path: None, bytes: None, compression: Compression::None });
    }
    let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
    let bytes = file.metadata().map_err(|e| FormatError::io(path, e))?.len();
    let mut raw = BufReader::new(file);
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
    Ok(DumpSource { path: Some(path.to_path_buf()), bytes: Some(bytes), compression })
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
}

impl Classifier {
    /// A classifier; `into` renames the dump's (single) database.
    pub fn new(into: Option<String>) -> Self {
        Classifier { current_db: into.clone(), into, source_db: None }
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
            "SET" => Item::Context(statement),
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
                true => Item::Post(statement),
                false => {
                    if matches!(w(1), "DATABASE" | "SCHEMA") && self.into.is_some() {
                        statement.text = self.rewrite_database(&statement, source)?;
                    }
                    Item::Schema(statement)
                }
            },
            "DELIMITER" => Item::Skip(statement),
            _ => Item::Schema(statement),
        })
    }

    fn rename(&mut self, db: String, statement: &Statement, source: &str) -> Result<String> {
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

/// Which part of a dump to restore: `--into`, `--database` and `--exclude`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Restore the dump's single database under this name.
    pub into: Option<String>,
    /// Only these databases (all when empty), as named in the dump (or `--into`).
    pub databases: Vec<String>,
    /// Tables to skip, as `db.table`.
    pub exclude: Vec<String>,
    matched: std::collections::BTreeSet<String>,
}

impl Selection {
    /// A selection from the command line's flags.
    pub fn new(into: Option<String>, databases: Vec<String>, exclude: Vec<String>) -> Self {
        Selection { into, databases, exclude, matched: Default::default() }
    }

    /// True if statements of `db` are wanted.
    pub fn wants_db(&mut self, db: &str) -> bool {
        if self.databases.is_empty() {
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
        let name = format!("{db}.{table}");
        if self.exclude.contains(&name) {
            self.matched.insert(name);
            return false;
        }
        true
    }

    /// Names given on the command line that matched nothing in the stream so far.
    pub fn unmatched(&self) -> Vec<String> {
        self.databases.iter().chain(&self.exclude).filter(|n| !self.matched.contains(*n)).cloned().collect()
    }
}

/// What one pass over a dump finds (for `inspect` and `--dry-run`).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DumpSummary {
    /// Databases in order of appearance.
    pub databases: Vec<String>,
    /// (database, table, INSERT statements, bytes of INSERT text), in order of appearance.
    pub tables: Vec<(String, String, u64, u64)>,
    /// Trigger, routine, event and view statements.
    pub post_statements: u64,
    /// Bytes of SQL text.
    pub bytes: u64,
}

/// Reads the whole dump once and summarises it. Errors name the byte offset.
pub fn scan(source: &DumpSource, into: Option<String>) -> Result<DumpSummary> {
    let name = source.name();
    let reader = compress::decoder(source.open_raw()?).map_err(|e| FormatError::io(Path::new(&name), e))?;
    let mut statements = crate::split::StatementReader::new(reader, crate::split::Terminator::Delimiter, 1 << 30);
    let mut classifier = Classifier::new(into);
    let mut summary = DumpSummary::default();
    while let Some(s) =
        statements.next_statement().map_err(|e| FormatError::corrupt(Path::new(&name), None, e.to_string()))?
    {
        if !s.terminated {
            return Err(FormatError::corrupt(
                Path::new(&name),
                Some(s.offset),
                "the dump ends in the middle of a statement: it is truncated",
            ));
        }
        summary.bytes = s.offset + s.text.len() as u64;
        match classifier.classify(s, &name)? {
            Item::Rows { db, table, statement } => {
                let len = statement.text.len() as u64;
                match summary.tables.iter_mut().find(|t| t.0 == db && t.1 == table) {
                    Some(t) => {
                        t.2 += 1;
                        t.3 += len;
                    }
                    None => summary.tables.push((db, table, 1, len)),
                }
            }
            Item::Post(_) => summary.post_statements += 1,
            Item::Schema(s) => match schema_target(&s.text) {
                Some(SchemaTarget::Database(d)) if !summary.databases.contains(&d) => summary.databases.push(d),
                Some(SchemaTarget::Table(_, t)) => {
                    let db = classifier.current_db().unwrap_or_default().to_string();
                    if !summary.tables.iter().any(|x| x.0 == db && x.1 == t) {
                        summary.tables.push((db, t, 0, 0));
                    }
                }
                _ => {}
            },
            Item::Context(_) | Item::Skip(_) => {}
        }
        if let Some(db) = classifier.current_db() {
            if !summary.databases.iter().any(|d| d == db) {
                summary.databases.push(db.to_string());
            }
        }
    }
    Ok(summary)
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
            Item::Schema(_) => "schema",
            Item::Rows { .. } => "rows",
            Item::Post(_) => "post",
            Item::Skip(_) => "skip",
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
}
