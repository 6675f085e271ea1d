//! Reads mydumper directories: the legacy layout (0.10–0.12) and the modern one (0.13+).
//!
//! File names are only used to group files; real names come from the `metadata` file's
//! `real_table_name` (mydumper 0.11+ renames unsafe names, and any name with a dot, to
//! `mydumper_N`) or from the CREATE statements themselves. mydumper 0.10 writes names as
//! they are, dots included (`db.a.b.00001.sql` for table `a.b`), so a data file is matched
//! against the database and table names the schema files and `metadata` declare (longest
//! fit), never split on dots. File classes follow myloader's own order of checks
//! (`get_file_type` in myloader_process_filename.c), after stripping `.gz`/`.zst`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::compress;
use crate::ident;
use crate::ini;
use crate::located::Located;
use crate::model::*;
use crate::split::Terminator;
use crate::{FormatError, Result};

/// Most bytes of `metadata` read: a modern one lists every table in a few lines.
const METADATA_LIMIT: u64 = 256 << 20;

/// True if the backup has mydumper's `metadata` file (or the `.partial` one of an unfinished
/// dump) and at least one schema file.
pub fn looks_like(backup: &Located) -> Result<bool> {
    if !backup.has("metadata") && !backup.has("metadata.partial") {
        return Ok(false);
    }
    Ok(backup.names()?.iter().any(|name| {
        let name = compress::strip_suffix(name);
        name.ends_with("-schema-create.sql") || name.ends_with("-schema.sql")
    }))
}

#[derive(Debug, Default)]
struct TableFiles {
    schema: Option<SqlFile>,
    view: Option<SqlFile>,
    sequence: Option<SqlFile>,
    chunks: Vec<(u64, u64, SqlFile)>,
    dat: BTreeMap<String, SqlFile>,
}

#[derive(Debug, Default)]
struct DbFiles {
    create: Option<SqlFile>,
    post: Vec<SqlFile>,
    triggers: Vec<SqlFile>,
    tables: BTreeMap<String, TableFiles>,
}

/// What the metadata file says.
#[derive(Debug, Default)]
struct Metadata {
    layout: Option<MydumperLayout>,
    sql_mode: Option<String>,
    position: Option<Position>,
    /// (db file name, table file name) -> (real name, rows, is_view)
    tables: BTreeMap<(String, String), TableMeta>,
}

#[derive(Debug, Default, Clone)]
struct TableMeta {
    real_name: Option<String>,
    rows: Option<u64>,
}

/// Reads the mydumper directory at `dir` into a plan.
pub fn read(dir: &Path) -> Result<RestorePlan> {
    read_located(&Located::open(dir)?)
}

/// Reads a mydumper dump, on disk or in a bucket, into a plan.
pub fn read_located(backup: &Located) -> Result<RestorePlan> {
    let root = backup.root();
    if !backup.has("metadata") {
        return Err(FormatError::corrupt(
            &root.join("metadata.partial"),
            None,
            "the dump did not finish (mydumper writes `metadata` only when it completes)",
        ));
    }
    let metadata = read_metadata(backup)?;
    let names = backup.names()?;
    let plain: Vec<String> = names.iter().map(|n| compress::strip_suffix(n).to_string()).collect();
    let declared = Declared::new(&plain, &metadata);
    let mut dbs: BTreeMap<String, DbFiles> = BTreeMap::new();
    for name in &names {
        classify(backup, name, &declared, &mut dbs)?;
    }
    check_listed_tables(&root, &metadata, &dbs)?;
    let mut databases = Vec::new();
    for (db_file, files) in dbs {
        databases.push(build_database(&db_file, files, &metadata)?);
    }
    databases.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(RestorePlan {
        rename: None,
        format: Format::Mydumper { layout: metadata.layout.unwrap_or(MydumperLayout::Legacy) },
        root,
        session: SessionSettings { sql_mode: metadata.sql_mode, time_zone: None, charset: None },
        position: metadata.position,
        databases,
        before: Vec::new(),
        after: Vec::new(),
        growing: false,
        users: None,
    })
}

/// Every table and view the metadata lists must have its schema file: a table whose files
/// are all gone would otherwise vanish from the restore without a word. (The legacy
/// metadata lists no tables, so this checks modern dumps only.)
fn check_listed_tables(root: &Path, meta: &Metadata, dbs: &BTreeMap<String, DbFiles>) -> Result<()> {
    for (db, table) in meta.tables.keys() {
        let files = dbs.get(db).and_then(|d| d.tables.get(table));
        if !files.is_some_and(|t| t.schema.is_some() || t.view.is_some() || t.sequence.is_some()) {
            return Err(FormatError::corrupt(
                &root.join(format!("{db}.{table}-schema.sql")),
                None,
                "missing: `metadata` lists this table, so the backup is incomplete",
            ));
        }
    }
    Ok(())
}

/// The suffixes of the per-table schema files, each with the field it fills.
const TABLE_SCHEMA_SUFFIXES: [(&str, TableFileKind); 3] = [
    ("-schema.sql", TableFileKind::Schema),
    ("-schema-view.sql", TableFileKind::View),
    ("-schema-sequence.sql", TableFileKind::Sequence),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableFileKind {
    Schema,
    View,
    Sequence,
}

/// The database and table names, as file names spell them, that the directory declares:
/// databases by their `-schema-create.sql` files and `metadata`'s sections, tables by their
/// `-schema.sql`, `-schema-view.sql` and `-schema-sequence.sql` files and `metadata`'s
/// sections. Names in file names may hold dots (mydumper 0.10 writes a table `a.b` of `db`
/// as `db.a.b.00001.sql`), so file names are matched against these, never split on dots.
#[derive(Debug, Default)]
struct Declared {
    /// Database names, longest first.
    dbs: Vec<String>,
    /// Each database's table names, longest first.
    tables: BTreeMap<String, Vec<String>>,
}

impl Declared {
    /// `plain` are the directory's file names with any compression suffix stripped.
    fn new(plain: &[String], meta: &Metadata) -> Declared {
        let mut dbs: BTreeSet<String> = meta.tables.keys().map(|(db, _)| db.clone()).collect();
        dbs.extend(plain.iter().filter_map(|n| n.strip_suffix("-schema-create.sql")).map(str::to_string));
        dbs.remove("");
        let mut declared = Declared { dbs: longest_first(dbs), tables: BTreeMap::new() };
        let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (db, table) in meta.tables.keys() {
            tables.entry(db.clone()).or_default().insert(table.clone());
        }
        for name in plain {
            let Some(stem) = TABLE_SCHEMA_SUFFIXES.iter().find_map(|(suffix, _)| name.strip_suffix(suffix)) else {
                continue;
            };
            if let Some((db, table)) = declared.split_db(stem) {
                tables.entry(db.to_string()).or_default().insert(table.to_string());
            }
        }
        // A database no `-schema-create.sql` declares (a dump taken without it) still has
        // the tables its schema files name.
        let mut dbs: BTreeSet<String> = declared.dbs.drain(..).collect();
        dbs.extend(tables.keys().cloned());
        declared.dbs = longest_first(dbs);
        declared.tables = tables.into_iter().map(|(db, t)| (db, longest_first(t))).collect();
        declared
    }

    /// Splits `db.rest` at the longest declared database that `stem` starts with; a stem no
    /// declared database fits is split at its first dot. Neither part is empty.
    fn split_db<'a>(&self, stem: &'a str) -> Option<(&'a str, &'a str)> {
        let declared = self.dbs.iter().find_map(|db| {
            let rest = stem.strip_prefix(db.as_str())?.strip_prefix('.')?;
            (!rest.is_empty()).then(|| (&stem[..db.len()], rest))
        });
        let (db, rest) = match declared {
            Some(split) => split,
            None => stem.split_once('.')?,
        };
        (!db.is_empty() && !rest.is_empty()).then_some((db, rest))
    }

    /// Matches a data file's stem, `db.table[.part[.sub]]`, against the declared names: the
    /// longest database, then the longest of its tables, that leave only the numeric part
    /// and subpart after them.
    fn fit_chunk(&self, stem: &str) -> Option<(&str, &str, u64, u64)> {
        for db in &self.dbs {
            let Some(rest) = stem.strip_prefix(db.as_str()).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            for table in self.tables.get(db).into_iter().flatten() {
                if let Some((part, sub)) = rest.strip_prefix(table.as_str()).and_then(part_numbers) {
                    return Some((db, table, part, sub));
                }
            }
        }
        None
    }
}

fn longest_first(names: BTreeSet<String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    names
}

/// `""`, `.00001` or `.00001.00002` (what follows the table name in a data file's stem):
/// the part and subpart, each digits only, small enough that `part * 100_000 + sub` (the
/// chunk's index) neither overflows nor collides.
fn part_numbers(tail: &str) -> Option<(u64, u64)> {
    if tail.is_empty() {
        return Some((0, 0));
    }
    let tail = tail.strip_prefix('.')?;
    let (part, sub) = match tail.split_once('.') {
        Some((part, sub)) => (digits(part)?, digits(sub)?),
        None => (digits(tail)?, 0),
    };
    (part <= (u64::MAX - 99_999) / 100_000 && sub < 100_000).then_some((part, sub))
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What one file of the directory is, from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileKind {
    Ignored,
    CreateDatabase {
        db: String,
    },
    Post {
        db: String,
    },
    Triggers {
        db: String,
    },
    TableSchema {
        db: String,
        table: String,
        kind: TableFileKind,
    },
    Chunk {
        db: String,
        table: String,
        part: u64,
        sub: u64,
    },
    Payload {
        db: String,
        table: String,
    },
    /// A data file (`.sql` or `.dat`) that fits no declared table.
    Stray,
}

/// Classifies `plain` (a file name, compression suffix stripped) in myloader's order.
fn file_kind(plain: &str, declared: &Declared) -> FileKind {
    if plain.starts_with("metadata") || plain == "resume" || plain == "all-schema-create-tablespace.sql" {
        return FileKind::Ignored;
    }
    for (suffix, kind) in TABLE_SCHEMA_SUFFIXES {
        if let Some((db, table)) = plain.strip_suffix(suffix).and_then(|stem| declared.split_db(stem)) {
            return FileKind::TableSchema { db: db.to_string(), table: table.to_string(), kind };
        }
    }
    if let Some(stem) = plain.strip_suffix("-schema-triggers.sql") {
        // 0.10: one file per table (`db.table-schema-triggers.sql`); 0.13+: one per database
        // as well. Both apply after all data, so only the database matters.
        let db = if declared.dbs.iter().any(|db| db == stem) {
            stem
        } else {
            declared.split_db(stem).map_or(stem, |(db, _)| db)
        };
        return FileKind::Triggers { db: db.to_string() };
    }
    if let Some(db) = plain.strip_suffix("-schema-post.sql") {
        return FileKind::Post { db: db.to_string() };
    }
    if let Some(db) = plain.strip_suffix("-schema-create.sql") {
        return FileKind::CreateDatabase { db: db.to_string() };
    }
    if plain.ends_with("-checksum") || plain.ends_with(".checksum") || plain.ends_with(".metadata") {
        return FileKind::Ignored;
    }
    if let Some(stem) = plain.strip_suffix(".sql") {
        return match declared.fit_chunk(stem) {
            Some((db, table, part, sub)) => FileKind::Chunk { db: db.to_string(), table: table.to_string(), part, sub },
            None => FileKind::Stray,
        };
    }
    if let Some(stem) = plain.strip_suffix(".dat") {
        return match declared.fit_chunk(stem) {
            Some((db, table, _, _)) => FileKind::Payload { db: db.to_string(), table: table.to_string() },
            None => FileKind::Stray,
        };
    }
    FileKind::Ignored
}

fn classify(backup: &Located, name: &str, declared: &Declared, dbs: &mut BTreeMap<String, DbFiles>) -> Result<()> {
    let root = &backup.root();
    let plain = compress::strip_suffix(name);
    match file_kind(plain, declared) {
        FileKind::Ignored => {}
        FileKind::CreateDatabase { db } => dbs.entry(db).or_default().create = Some(backup.file(name)?),
        FileKind::Post { db } => dbs.entry(db).or_default().post.push(backup.file(name)?),
        FileKind::Triggers { db } => dbs.entry(db).or_default().triggers.push(backup.file(name)?),
        FileKind::TableSchema { db, table, kind } => {
            let file = backup.file(name)?;
            let tf = dbs.entry(db).or_default().tables.entry(table).or_default();
            match kind {
                TableFileKind::Schema => tf.schema = Some(file),
                TableFileKind::View => tf.view = Some(file),
                TableFileKind::Sequence => tf.sequence = Some(file),
            }
        }
        FileKind::Chunk { db, table, part, sub } => {
            let file = backup.file(name)?;
            dbs.entry(db).or_default().tables.entry(table).or_default().chunks.push((part, sub, file));
        }
        FileKind::Payload { db, table } => {
            let file = backup.file(name)?;
            dbs.entry(db).or_default().tables.entry(table).or_default().dat.insert(name.to_string(), file);
        }
        FileKind::Stray => {
            return Err(FormatError::corrupt(
                &root.join(name),
                None,
                "data file fits no table: its name is not db.table[.part[.sub]] for any db.table \
                 that a schema file or `metadata` declares",
            ));
        }
    }
    Ok(())
}

fn build_database(db_file: &str, files: DbFiles, meta: &Metadata) -> Result<Database> {
    let name = match &files.create {
        Some(f) => created_name(f, "DATABASE")?.unwrap_or_else(|| db_file.to_string()),
        None => db_file.to_string(),
    };
    let mut tables = Vec::new();
    let mut views = Vec::new();
    for (table_file, mut tf) in files.tables {
        let tmeta = meta.tables.get(&(db_file.to_string(), table_file.clone())).cloned().unwrap_or_default();
        if let Some(definition) = tf.view.take() {
            let real = match tmeta.real_name.clone() {
                Some(n) => n,
                None => created_name(&definition, "VIEW")?.unwrap_or_else(|| table_file.clone()),
            };
            views.push(View { name: real, placeholder: tf.schema.take(), definition });
            continue;
        }
        let Some(schema) = tf.schema.take().or_else(|| tf.sequence.take()) else {
            let some = tf.chunks.first().map(|c| c.2.path.clone()).unwrap_or_default();
            return Err(FormatError::corrupt(
                &some,
                None,
                format!("data for `{db_file}`.`{table_file}` but no {db_file}.{table_file}-schema.sql"),
            ));
        };
        let real = match tmeta.real_name.clone() {
            Some(n) => n,
            None => created_name(&schema, "TABLE")?.unwrap_or_else(|| table_file.clone()),
        };
        tf.chunks.sort_by_key(|(part, sub, _)| (*part, *sub));
        let chunks = tf
            .chunks
            .into_iter()
            .map(|(part, sub, file)| {
                let data_files = matching_dat(&file, &tf.dat);
                Chunk { index: part * 100_000 + sub, file, data_files, rows: None, delimited: None }
            })
            .collect();
        tables.push(Table {
            name: real,
            schema,
            chunks,
            expected_rows: tmeta.rows,
            columns: Vec::new(),
            content_digest: None,
            checksums: None,
        });
    }
    Ok(Database { name, create: files.create, tables, views, post: files.post, triggers: files.triggers })
}

/// The `.dat` payloads that belong to the chunk `.sql` file (same stem).
fn matching_dat(sql: &SqlFile, dat: &BTreeMap<String, SqlFile>) -> Vec<SqlFile> {
    let name = sql.name();
    let stem = compress::strip_suffix(&name).trim_end_matches(".sql");
    dat.iter()
        .filter(|(n, _)| compress::strip_suffix(n).trim_end_matches(".dat") == stem)
        .map(|(_, f)| f.clone())
        .collect()
}

/// Finds `CREATE ... <what> [IF NOT EXISTS] `name`` in a small schema file and returns the name.
fn created_name(file: &SqlFile, what: &str) -> Result<Option<String>> {
    for s in crate::read_statements(file, Terminator::SemicolonNewline)? {
        let sql = String::from_utf8_lossy(&s.text);
        if let Some(name) = name_after_keyword(&sql, what) {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

fn name_after_keyword(sql: &str, what: &str) -> Option<String> {
    let upper = sql.to_ascii_uppercase();
    let trimmed = upper.trim_start();
    if !trimmed.starts_with("CREATE") {
        return None;
    }
    let needle = format!(" {what}");
    let at = upper.find(&needle)? + needle.len();
    let mut rest = sql[at..].trim_start();
    // Skip conditional comments and IF NOT EXISTS between the keyword and the name.
    loop {
        if let Some(r) = rest.strip_prefix("/*") {
            let end = r.find("*/")?;
            rest = r[end + 2..].trim_start();
        } else if rest.get(..13).is_some_and(|h| h.eq_ignore_ascii_case("IF NOT EXISTS")) {
            rest = rest[13..].trim_start();
        } else {
            break;
        }
    }
    match ident::unquote_prefix(rest) {
        Some((name, _)) => Some(name),
        None => {
            rest.split(|c: char| c.is_whitespace() || c == '(').next().filter(|s| !s.is_empty()).map(str::to_string)
        }
    }
}

fn read_metadata(backup: &Located) -> Result<Metadata> {
    let text = backup.read("metadata", METADATA_LIMIT, "mydumper's metadata")?;
    let text = String::from_utf8_lossy(&text);
    if text.contains("SHOW MASTER STATUS:") || text.trim_start().starts_with("Started dump at:") {
        return Ok(legacy_metadata(&text));
    }
    Ok(modern_metadata(&text))
}

fn legacy_metadata(text: &str) -> Metadata {
    let mut meta = Metadata { layout: Some(MydumperLayout::Legacy), ..Default::default() };
    let mut in_master = false;
    let mut pos = Position::default();
    for line in text.lines() {
        if line.starts_with("SHOW MASTER STATUS:") {
            in_master = true;
            continue;
        }
        if !line.starts_with('\t') && !line.starts_with(' ') {
            in_master = false;
        }
        if !in_master {
            continue;
        }
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Log:") {
            pos.binlog_file = Some(v.trim().to_string());
        } else if let Some(v) = l.strip_prefix("Pos:") {
            pos.binlog_position = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("GTID:") {
            pos.gtid_executed = Some(v.trim().to_string()).filter(|s| !s.is_empty());
        }
    }
    if pos != Position::default() {
        meta.position = Some(pos);
    }
    meta
}

fn modern_metadata(text: &str) -> Metadata {
    let mut meta = Metadata { layout: Some(MydumperLayout::Modern), ..Default::default() };
    for section in ini::parse(text) {
        match section.name.as_str() {
            "myloader_session_variables" => {
                meta.sql_mode = section.get("SQL_MODE").map(|v| {
                    let v = v.split("/*").next().unwrap_or(v);
                    ini::unquote(v).to_string()
                });
            }
            "source" | "master" => {
                let file = section.get("SOURCE_LOG_FILE").or_else(|| section.get("File"));
                let position = section.get("SOURCE_LOG_POS").or_else(|| section.get("Position"));
                let gtid = section.get("executed_gtid_set").or_else(|| section.get("Executed_Gtid_Set"));
                let pos = Position {
                    binlog_file: file.map(|f| ini::unquote(f).to_string()),
                    binlog_position: position.and_then(|p| ini::unquote(p).parse().ok()),
                    gtid_executed: gtid.map(|g| ini::unquote(g).to_string()).filter(|g| !g.is_empty()),
                };
                if pos != Position::default() {
                    meta.position = Some(pos);
                }
            }
            name => {
                let Some((db, rest)) = ident::unquote_prefix(name) else {
                    continue;
                };
                let Some(rest) = rest.strip_prefix('.') else {
                    continue;
                };
                let Some((table, _)) = ident::unquote_prefix(rest) else {
                    continue;
                };
                let real_name = section.get("real_table_name").map(|n| n.replace("``", "`"));
                let rows = section.get("rows").and_then(|r| r.parse().ok());
                meta.tables.insert((db, table), TableMeta { real_name, rows });
            }
        }
    }
    meta
}

/// Resolves the data file a LOAD DATA statement in `chunk` names: only the chunk's own
/// payload files are served, matched by exact name (with or without a compression suffix).
pub fn resolve_infile<'a>(chunk: &'a Chunk, requested: &str) -> Option<&'a SqlFile> {
    chunk.data_files.iter().find(|f| {
        let n = f.name();
        n == requested || compress::strip_suffix(&n) == compress::strip_suffix(requested)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(names: &[&str], meta: &Metadata) -> Declared {
        let plain: Vec<String> = names.iter().map(|n| compress::strip_suffix(n).to_string()).collect();
        Declared::new(&plain, meta)
    }

    fn chunk(db: &str, table: &str, part: u64, sub: u64) -> FileKind {
        FileKind::Chunk { db: db.into(), table: table.into(), part, sub }
    }

    /// Tables `a`, `a.b` and `a.b.c` side by side, as mydumper 0.10 names their files.
    const SIDE_BY_SIDE: [&str; 4] =
        ["db-schema-create.sql", "db.a-schema.sql", "db.a.b-schema.sql", "db.a.b.c-schema.sql"];

    #[test]
    fn dotted_table_names_fit_the_longest_declared_table() {
        let d = declared(&SIDE_BY_SIDE, &Metadata::default());
        assert_eq!(d.dbs, ["db"]);
        assert_eq!(d.tables["db"], ["a.b.c", "a.b", "a"]);
        let kind = |n: &str| file_kind(n, &d);
        assert_eq!(kind("db.a.sql"), chunk("db", "a", 0, 0));
        assert_eq!(kind("db.a.00001.sql"), chunk("db", "a", 1, 0));
        assert_eq!(kind("db.a.00001.00002.sql"), chunk("db", "a", 1, 2));
        assert_eq!(kind("db.a.b.sql"), chunk("db", "a.b", 0, 0));
        assert_eq!(kind("db.a.b.00007.sql"), chunk("db", "a.b", 7, 0));
        assert_eq!(kind("db.a.b.00003.00004.sql"), chunk("db", "a.b", 3, 4));
        assert_eq!(kind("db.a.b.c.sql"), chunk("db", "a.b.c", 0, 0));
        assert_eq!(kind("db.a.b.c.00000.sql"), chunk("db", "a.b.c", 0, 0));
        assert_eq!(kind("db.a.b.c.00012.00001.sql"), chunk("db", "a.b.c", 12, 1));
        assert_eq!(kind("db.a.b.00002.dat"), FileKind::Payload { db: "db".into(), table: "a.b".into() });
        assert_eq!(
            kind("db.a.b-schema.sql"),
            FileKind::TableSchema { db: "db".into(), table: "a.b".into(), kind: TableFileKind::Schema }
        );
        assert_eq!(
            kind("db.a.b.c-schema-view.sql"),
            FileKind::TableSchema { db: "db".into(), table: "a.b.c".into(), kind: TableFileKind::View }
        );
        // 0.10 writes one trigger file per table, named after it.
        assert_eq!(kind("db.a.b-schema-triggers.sql"), FileKind::Triggers { db: "db".into() });
        assert_eq!(kind("db-schema-triggers.sql"), FileKind::Triggers { db: "db".into() });
        // Nothing fits these: a table nobody declared, a part that is not a number, three
        // numbers, a sign, a file with no table at all.
        for stray in [
            "db.x.00001.sql",
            "db.a.x.sql",
            "db.a.b.x.00001.sql",
            "db.a.b.00001.00002.00003.sql",
            "db.a.+1.sql",
            "db.a..sql",
            "db.sql",
            "other.a.sql",
            "nodot.sql",
            "db.a.b.c.d.dat",
            "db.a.000001000000000000000000000.sql",
            "db.a.00001.100000.sql",
        ] {
            assert_eq!(kind(stray), FileKind::Stray, "{stray}");
        }
        assert_eq!(kind("metadata"), FileKind::Ignored);
        assert_eq!(kind("db.a.b-schema-checksum"), FileKind::Ignored);
    }

    #[test]
    fn dotted_database_names_fit_the_longest_declared_database() {
        let names = [
            "d-schema-create.sql",
            "d.x-schema-create.sql",
            "d.t-schema.sql",
            "d.x.t-schema.sql",
            "d.x.a.b-schema.sql",
        ];
        let mut meta = Metadata::default();
        // Only a metadata section can give `d` a table `x.u` beside the database `d.x`.
        meta.tables.insert(("d".into(), "x.u".into()), TableMeta::default());
        let d = declared(&names, &meta);
        assert_eq!(d.dbs, ["d.x", "d"]);
        assert_eq!(d.tables["d.x"], ["a.b", "t"]);
        assert_eq!(d.tables["d"], ["x.u", "t"]);
        let kind = |n: &str| file_kind(n, &d);
        assert_eq!(kind("d.x.t.00001.sql"), chunk("d.x", "t", 1, 0));
        assert_eq!(kind("d.t.00001.sql"), chunk("d", "t", 1, 0));
        assert_eq!(kind("d.x.a.b.sql"), chunk("d.x", "a.b", 0, 0));
        // `d.x` has no table `u`: the shorter database does.
        assert_eq!(kind("d.x.u.00002.sql"), chunk("d", "x.u", 2, 0));
        assert_eq!(kind("d.x.v.sql"), FileKind::Stray);
        assert_eq!(kind("d.x-schema-triggers.sql"), FileKind::Triggers { db: "d.x".into() });
        assert_eq!(kind("d.x.t-schema-triggers.sql"), FileKind::Triggers { db: "d.x".into() });
        assert_eq!(kind("d.x-schema-post.sql"), FileKind::Post { db: "d.x".into() });
        assert_eq!(kind("d.x-schema-create.sql"), FileKind::CreateDatabase { db: "d.x".into() });
        // Without `-schema-create.sql` files a schema file splits at its first dot.
        let d = declared(&["e.t.u-schema.sql"], &Metadata::default());
        assert_eq!(file_kind("e.t.u.00001.sql", &d), chunk("e", "t.u", 1, 0));
    }

    fn write_dump(dir: &Path, files: &[(&str, &str)]) {
        std::fs::write(
            dir.join("metadata"),
            "Started dump at: 2026-12-01 00:00:00\nFinished dump at: 2026-12-01 00:00:00\n",
        )
        .unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    #[test]
    fn reads_tables_with_dots_beside_plain_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = vec![("db-schema-create.sql".to_string(), "CREATE DATABASE `db`;\n".to_string())];
        for t in ["a", "a.b", "a.b.c"] {
            files.push((format!("db.{t}-schema.sql"), format!("CREATE TABLE `{t}` (id INT PRIMARY KEY);\n")));
        }
        for n in
            ["db.a.sql", "db.a.b.00000.sql", "db.a.b.00001.sql", "db.a.b.c.00001.00002.sql", "db.a.b.c.00001.00001.sql"]
        {
            files.push((n.to_string(), "INSERT INTO t VALUES (1);\n".to_string()));
        }
        let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        write_dump(dir.path(), &files);
        let plan = read(dir.path()).unwrap();
        let db = &plan.databases[0];
        assert_eq!(db.name, "db");
        let tables: Vec<(&str, Vec<String>)> =
            db.tables.iter().map(|t| (t.name.as_str(), t.chunks.iter().map(|c| c.file.name()).collect())).collect();
        assert_eq!(
            tables,
            [
                ("a", vec!["db.a.sql".to_string()]),
                ("a.b", vec!["db.a.b.00000.sql".into(), "db.a.b.00001.sql".into()]),
                ("a.b.c", vec!["db.a.b.c.00001.00001.sql".into(), "db.a.b.c.00001.00002.sql".into()]),
            ]
        );
    }

    #[test]
    fn a_data_file_that_fits_no_table_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        write_dump(
            dir.path(),
            &[
                ("db-schema-create.sql", "CREATE DATABASE `db`;\n"),
                ("db.a.b-schema.sql", "CREATE TABLE `a.b` (id INT PRIMARY KEY);\n"),
                ("db.a.b.00000.sql", "INSERT INTO `a.b` VALUES (1);\n"),
                ("db.a.c.00000.sql.gz", ""),
            ],
        );
        let err = read(dir.path()).unwrap_err();
        assert!(err.is_integrity(), "{err}");
        assert!(matches!(&err, FormatError::Corrupt { path, .. } if path.ends_with("db.a.c.00000.sql.gz")), "{err:?}");
        assert!(err.to_string().contains("db.a.c.00000.sql.gz"), "{err}");
    }

    proptest::proptest! {
        /// Any file names, declared or not, classify without a panic.
        #[test]
        fn classification_never_panics(
            names in proptest::collection::vec("[a-c0-9.\\-]{0,12}(-schema(-create|-view|-triggers|-post)?\\.sql|\\.sql|\\.dat|)(\\.gz)?", 0..12),
            other in proptest::collection::vec(".*", 0..4),
            meta_tables in proptest::collection::vec(("[a-c.]{0,4}", "[a-c.0-9]{0,4}"), 0..3),
        ) {
            let mut meta = Metadata::default();
            for (db, table) in meta_tables {
                meta.tables.insert((db, table), TableMeta::default());
            }
            let all: Vec<&str> = names.iter().chain(&other).map(String::as_str).collect();
            let d = declared(&all, &meta);
            for name in &all {
                let _ = file_kind(compress::strip_suffix(name), &d);
            }
        }

        /// A table name without digits, dotted or not, beside others of its database (dotted
        /// or not): its data files come back to it, whatever the part and subpart.
        #[test]
        fn data_files_come_back_to_their_table(
            db in "[a-c][a-c.]{0,4}",
            tables in proptest::collection::btree_set("[a-c][a-c.]{0,5}", 1..6),
            pick in 0usize..6,
            part in proptest::option::of(0u64..100_000),
            sub in 0u64..100_000,
        ) {
            let tables: Vec<String> = tables.into_iter().collect();
            let table = &tables[pick % tables.len()];
            let mut names = vec![format!("{db}-schema-create.sql")];
            names.extend(tables.iter().map(|t| format!("{db}.{t}-schema.sql")));
            let plain: Vec<&str> = names.iter().map(String::as_str).collect();
            let d = declared(&plain, &Metadata::default());
            let (file, want) = match part {
                None => (format!("{db}.{table}.sql"), chunk(&db, table, 0, 0)),
                Some(p) if sub == 0 => (format!("{db}.{table}.{p:05}.sql"), chunk(&db, table, p, 0)),
                Some(p) => (format!("{db}.{table}.{p:05}.{sub:05}.sql"), chunk(&db, table, p, sub)),
            };
            proptest::prop_assert_eq!(file_kind(&file, &d), want);
        }
    }

    #[test]
    fn names_from_create_statements() {
        assert_eq!(
            name_after_keyword("CREATE DATABASE /*!32312 IF NOT EXISTS*/ `awk``ward` /*!40100 x */", "DATABASE"),
            Some("awk`ward".into())
        );
        assert_eq!(
            name_after_keyword("CREATE TABLE IF NOT EXISTS `v; odd`(\n`a` int)", "TABLE"),
            Some("v; odd".into())
        );
        assert_eq!(
            name_after_keyword(
                "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select 1",
                "VIEW"
            ),
            Some("v".into())
        );
        assert_eq!(name_after_keyword("SET NAMES binary", "TABLE"), None);
    }

    #[test]
    fn legacy_metadata_position() {
        let m = legacy_metadata("Started dump at: 2021-05-05 13:57:17\nSHOW MASTER STATUS:\n\tLog: mysql-bin.000001\n\tPos: 106\n\tGTID:0-1-5\n\nFinished dump at: x\n");
        let p = m.position.unwrap();
        assert_eq!(p.binlog_file.as_deref(), Some("mysql-bin.000001"));
        assert_eq!(p.binlog_position, Some(106));
        assert_eq!(p.gtid_executed.as_deref(), Some("0-1-5"));
    }
}
