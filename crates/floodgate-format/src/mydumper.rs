//! Reads mydumper directories: the legacy layout (0.10–0.12) and the modern one (0.13+).
//!
//! File names are only used to group files; real names come from the `metadata` file's
//! `real_table_name` (modern mydumper renames unsafe names to `mydumper_N`) or from the
//! CREATE statements themselves. File classes follow myloader's own order of checks
//! (`get_file_type` in myloader_process_filename.c), after stripping `.gz`/`.zst`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::compress;
use crate::ident;
use crate::ini;
use crate::model::*;
use crate::split::Terminator;
use crate::{FormatError, Result};

/// True if `dir` has mydumper's `metadata` file (or the `.partial` one of an unfinished
/// dump) and at least one schema file.
pub fn looks_like(dir: &Path) -> Result<bool> {
    let has_metadata = dir.join("metadata").is_file() || dir.join("metadata.partial").is_file();
    if !has_metadata {
        return Ok(false);
    }
    for entry in fs::read_dir(dir).map_err(|e| FormatError::io(dir, e))? {
        let entry = entry.map_err(|e| FormatError::io(dir, e))?;
        let name = entry.file_name();
        let name = compress::strip_suffix(&name.to_string_lossy()).to_string();
        if name.ends_with("-schema-create.sql") || name.ends_with("-schema.sql") {
            return Ok(true);
        }
    }
    Ok(false)
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
    let root = dir.canonicalize().map_err(|e| FormatError::io(dir, e))?;
    let metadata_path = root.join("metadata");
    if !metadata_path.is_file() {
        return Err(FormatError::corrupt(
            &root.join("metadata.partial"),
            None,
            "the dump did not finish (mydumper writes `metadata` only when it completes)",
        ));
    }
    let metadata = read_metadata(&metadata_path)?;
    let mut dbs: BTreeMap<String, DbFiles> = BTreeMap::new();
    for entry in fs::read_dir(&root).map_err(|e| FormatError::io(&root, e))? {
        let entry = entry.map_err(|e| FormatError::io(&root, e))?;
        let os_name = entry.file_name();
        let Some(name) = os_name.to_str() else {
            return Err(FormatError::UnsafePath {
                path: root.clone(),
                name: os_name.to_string_lossy().into_owned(),
                reason: "file name is not UTF-8".into(),
            });
        };
        classify(&root, name, &mut dbs)?;
    }
    check_listed_tables(&root, &metadata, &dbs)?;
    let mut databases = Vec::new();
    for (db_file, files) in dbs {
        databases.push(build_database(&db_file, files, &metadata)?);
    }
    databases.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(RestorePlan {
        format: Format::Mydumper { layout: metadata.layout.unwrap_or(MydumperLayout::Legacy) },
        root,
        session: SessionSettings { sql_mode: metadata.sql_mode, time_zone: None, charset: None },
        position: metadata.position,
        databases,
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

/// Checks that `name` in `root` is a regular file inside the directory and returns it.
fn inside(root: &Path, name: &str) -> Result<SqlFile> {
    let path = root.join(name);
    let meta = fs::symlink_metadata(&path).map_err(|e| FormatError::io(&path, e))?;
    let meta = if meta.file_type().is_symlink() {
        let target = path.canonicalize().map_err(|e| FormatError::io(&path, e))?;
        if !target.starts_with(root) {
            return Err(FormatError::UnsafePath {
                path: path.clone(),
                name: target.display().to_string(),
                reason: "symbolic link leads out of the backup directory".into(),
            });
        }
        fs::metadata(&target).map_err(|e| FormatError::io(&path, e))?
    } else {
        meta
    };
    if !meta.is_file() {
        return Err(FormatError::corrupt(&path, None, "expected a regular file"));
    }
    Ok(SqlFile { path, bytes: meta.len() })
}

fn classify(root: &Path, name: &str, dbs: &mut BTreeMap<String, DbFiles>) -> Result<()> {
    let plain = compress::strip_suffix(name);
    if plain.starts_with("metadata") || plain == "resume" || plain == "all-schema-create-tablespace.sql" {
        return Ok(());
    }
    let table_entry = |dbs: &mut BTreeMap<String, DbFiles>, stem: &str| -> Option<(String, String)> {
        let (db, table) = stem.split_once('.')?;
        dbs.entry(db.to_string()).or_default().tables.entry(table.to_string()).or_default();
        Some((db.to_string(), table.to_string()))
    };
    macro_rules! table_file {
        ($suffix:literal, $field:ident) => {
            if let Some(stem) = plain.strip_suffix($suffix) {
                if let Some((db, t)) = table_entry(dbs, stem) {
                    let file = inside(root, name)?;
                    if let Some(tf) = dbs.get_mut(&db).and_then(|d| d.tables.get_mut(&t)) {
                        tf.$field = Some(file);
                    }
                    return Ok(());
                }
            }
        };
    }
    table_file!("-schema.sql", schema);
    table_file!("-schema-view.sql", view);
    table_file!("-schema-sequence.sql", sequence);
    if let Some(stem) = plain.strip_suffix("-schema-triggers.sql") {
        let file = inside(root, name)?;
        match stem.split_once('.') {
            // 0.10: one file per table; 0.13+: one per database. Both apply after all data.
            Some((db, _)) => dbs.entry(db.to_string()).or_default().triggers.push(file),
            None => dbs.entry(stem.to_string()).or_default().triggers.push(file),
        }
        return Ok(());
    }
    if let Some(db) = plain.strip_suffix("-schema-post.sql") {
        let file = inside(root, name)?;
        dbs.entry(db.to_string()).or_default().post.push(file);
        return Ok(());
    }
    if let Some(db) = plain.strip_suffix("-schema-create.sql") {
        let file = inside(root, name)?;
        dbs.entry(db.to_string()).or_default().create = Some(file);
        return Ok(());
    }
    if plain.ends_with("-checksum") || plain.ends_with(".checksum") || plain.ends_with(".metadata") {
        return Ok(());
    }
    if let Some(stem) = plain.strip_suffix(".sql") {
        let (db, table, part, sub) = data_file_parts(stem)
            .ok_or_else(|| FormatError::corrupt(&root.join(name), None, "data file name is not db.table[.part].sql"))?;
        let file = inside(root, name)?;
        let db_entry = dbs.entry(db).or_default();
        db_entry.tables.entry(table).or_default().chunks.push((part, sub, file));
        return Ok(());
    }
    if let Some(stem) = plain.strip_suffix(".dat") {
        if let Some((db, table, _, _)) = data_file_parts(stem) {
            let file = inside(root, name)?;
            dbs.entry(db).or_default().tables.entry(table).or_default().dat.insert(name.to_string(), file);
        }
        return Ok(());
    }
    Ok(())
}

/// `db.table`, `db.table.00001` or `db.table.00001.00002` (names in file names never hold a
/// dot: mydumper renames such tables).
fn data_file_parts(stem: &str) -> Option<(String, String, u64, u64)> {
    let mut it = stem.splitn(4, '.');
    let db = it.next()?.to_string();
    let table = it.next()?.to_string();
    let part = match it.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    let sub = match it.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    if db.is_empty() || table.is_empty() {
        return None;
    }
    Some((db, table, part, sub))
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
                Chunk { index: part * 100_000 + sub, file, data_files, rows: None }
            })
            .collect();
        tables.push(Table {
            name: real,
            schema,
            chunks,
            expected_rows: tmeta.rows,
            columns: Vec::new(),
            content_digest: None,
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

fn read_metadata(path: &Path) -> Result<Metadata> {
    let text = fs::read(path).map_err(|e| FormatError::io(path, e))?;
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

    #[test]
    fn data_file_names() {
        assert_eq!(data_file_parts("db.t"), Some(("db".into(), "t".into(), 0, 0)));
        assert_eq!(data_file_parts("db.t.00012"), Some(("db".into(), "t".into(), 12, 0)));
        assert_eq!(data_file_parts("db.t.00001.00002"), Some(("db".into(), "t".into(), 1, 2)));
        assert_eq!(data_file_parts("db.t.x"), None);
        assert_eq!(data_file_parts("nodot"), None);
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
