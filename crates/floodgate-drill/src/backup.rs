//! Reading the backup before any server work: detect its format, record its identity, and
//! learn what the restore must produce (the post-data objects; for a mysqldump file, whether
//! it is complete, found by one pass over it).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use floodgate_format::mysqldump::{Classifier, DumpSource, Item};
use floodgate_format::objects::{object_change, ObjectChange, ObjectKind};
use floodgate_format::split::{StatementReader, Terminator};
use floodgate_format::{compress, Backup, FormatError, RestorePlan};
use sha2::{Digest, Sha256};

use floodgate_format::native::rfc3339;

use crate::report::{BackupInfo, Check};
use crate::{DrillError, Result};

/// A post-data object the restore must leave on the target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedObject {
    /// View, trigger, procedure, function or event.
    pub kind: ObjectKind,
    /// Its database.
    pub database: String,
    /// Its name.
    pub name: String,
}

/// Objects by (kind, database, name); CREATEs add and DROPs remove, in statement order, so
/// the set is what the backup leaves behind.
#[derive(Debug, Default)]
pub struct ExpectedObjects(BTreeMap<(ObjectKind, String, String), ExpectedObject>);

impl ExpectedObjects {
    fn apply(&mut self, change: ObjectChange, current_db: &str) {
        let database = change.database.unwrap_or_else(|| current_db.to_string());
        let key = (change.kind, database.clone(), change.name.clone());
        if change.create {
            self.0.insert(key, ExpectedObject { kind: change.kind, database, name: change.name });
        } else {
            self.0.remove(&key);
        }
    }

    /// Adds an object the restore must produce.
    pub fn insert(&mut self, kind: ObjectKind, database: &str, name: &str) {
        let object = ExpectedObject { kind, database: database.into(), name: name.into() };
        self.0.insert((kind, database.into(), name.into()), object);
    }

    /// The objects, in (kind, database, name) order.
    pub fn iter(&self) -> impl Iterator<Item = &ExpectedObject> {
        self.0.values()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What reading the backup found.
pub struct Prepared {
    /// The backup, ready for the loader.
    pub backup: Backup,
    /// Its identity for the report.
    pub info: BackupInfo,
    /// Objects that must exist afterwards.
    pub objects: ExpectedObjects,
    /// Checks already made (a mysqldump file's completeness).
    pub checks: Vec<Check>,
}

/// Opens `path`, records its identity, and reads what the restore must produce. `into`
/// names the database of a mysqldump file made without `--databases`.
pub fn prepare(path: &Path, into: Option<String>) -> Result<Prepared> {
    if path == Path::new("-") {
        return Err(DrillError::Refused(
            "a drill needs a backup on disk: standard input can be read only once, and the drill reads a \
             mysqldump file twice (once to check it is complete, once to restore it)"
                .into(),
        ));
    }
    let mut info = BackupInfo { path: path.display().to_string(), ..Default::default() };
    let backup = floodgate_format::open(path)?;
    files_on_disk(path, &mut info);
    let mut checks = Vec::new();
    let objects = match &backup {
        Backup::Directory(_) if into.is_some() => {
            return Err(DrillError::Refused(
                "--into renames the database of a mysqldump file; a directory backup names its databases".into(),
            ))
        }
        Backup::Directory(plan) => {
            describe_plan(plan, &mut info)?;
            plan_objects(plan)?
        }
        Backup::Dump(dump) => {
            info.format = Some("mysqldump".into());
            let scan = scan_dump(dump, into)?;
            info.databases = scan.databases as u64;
            info.tables = scan.tables as u64;
            info.identity_sha256 = Some(scan.sha256);
            info.created_at = scan.completed_on;
            checks.push(scan.completeness);
            scan.objects
        }
    };
    Ok(Prepared { backup, info, objects, checks })
}

/// Size, file count and newest modification time of the backup's files.
fn files_on_disk(path: &Path, info: &mut BackupInfo) {
    let mut newest = 0u64;
    let mut visit = |meta: &std::fs::Metadata| {
        info.bytes += meta.len();
        info.files += 1;
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        newest = newest.max(mtime.map_or(0, |d| d.as_secs()));
    };
    let mut stack: Vec<PathBuf> = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if meta.is_file() {
            visit(&meta);
        }
    }
    if newest > 0 {
        info.modified_at = Some(rfc3339(newest));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_file(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(hex(&Sha256::digest(&bytes)))
}

/// The date of mysqldump's `-- Dump completed on 2026-11-25 21:41:00` line.
fn completed_on(tail: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(tail);
    let line = text.lines().rev().find(|l| l.starts_with("-- Dump completed"))?;
    Some(line.split_once(" on ")?.1.trim().to_string()).filter(|s| !s.is_empty())
}

fn describe_plan(plan: &RestorePlan, info: &mut BackupInfo) -> Result<()> {
    info.format = Some(plan.format.name().to_string());
    info.databases = plan.databases.len() as u64;
    info.tables = plan.tables().count() as u64;
    let recorded: Vec<u64> = plan.tables().filter_map(|(_, t)| t.expected_rows).collect();
    info.recorded_rows = (!recorded.is_empty()).then(|| recorded.iter().sum());
    if let Some(p) = &plan.position {
        info.binlog_file.clone_from(&p.binlog_file);
        info.binlog_position = p.binlog_position;
        info.gtid_executed.clone_from(&p.gtid_executed);
    }
    let manifest = plan.root.join(floodgate_format::native::MANIFEST);
    if plan.format == floodgate_format::Format::Native {
        let m = floodgate_format::native::read_manifest(&manifest)?;
        info.created_at = Some(m.created_at);
        info.source_server_version = Some(m.source.server_version);
        info.identity_sha256 = sha256_file(&manifest);
    } else {
        let metadata = plan.root.join("metadata");
        info.identity_sha256 = sha256_file(&metadata);
        info.created_at = mydumper_started(&metadata);
    }
    Ok(())
}

/// mydumper's `# Started dump at: 2026-11-25 19:02:39` (0.13+) or `Started dump at: ...`.
fn mydumper_started(metadata: &Path) -> Option<String> {
    let text = std::fs::read_to_string(metadata).ok()?;
    let line = text.lines().find(|l| l.contains("Started dump at:"))?;
    Some(line.split_once("Started dump at:")?.1.trim().to_string()).filter(|s| !s.is_empty())
}

/// Views from the plan; routines, events and triggers from their files.
fn plan_objects(plan: &RestorePlan) -> Result<ExpectedObjects> {
    let mut objects = ExpectedObjects::default();
    for db in &plan.databases {
        for v in &db.views {
            objects.insert(ObjectKind::View, &db.name, &v.name);
        }
        for file in db.post.iter().chain(&db.triggers) {
            for s in floodgate_format::read_statements(file, plan.format.terminator())? {
                if let Some(change) = object_change(&s.text) {
                    objects.apply(change, &db.name);
                }
            }
        }
    }
    Ok(objects)
}

/// What one pass over a mysqldump file found.
struct DumpScan {
    databases: usize,
    tables: usize,
    objects: ExpectedObjects,
    completeness: Check,
    /// SHA-256 of the file as stored (compressed or not).
    sha256: String,
    /// The date of the `-- Dump completed on ...` line.
    completed_on: Option<String>,
}

/// Hashes the bytes that pass through: the file's identity, computed on the pass that reads
/// it anyway.
struct Hashing<R> {
    inner: R,
    hash: Arc<Mutex<Sha256>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut h) = self.hash.lock() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Keeps the first and the last bytes that pass through, to look for the dump's header
/// and `-- Dump completed` trailer (comments, which the statement splitter drops).
struct Ends<R> {
    inner: R,
    seen: Arc<Mutex<(Vec<u8>, Vec<u8>)>>,
}

const ENDS: usize = 4096;

impl<R: Read> Read for Ends<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut seen) = self.seen.lock() {
            let (head, tail) = &mut *seen;
            if head.len() < ENDS {
                let take = n.min(ENDS - head.len());
                head.extend_from_slice(&buf[..take]);
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * ENDS {
                tail.drain(..tail.len() - ENDS);
            }
        }
        Ok(n)
    }
}

fn scan_dump(dump: &DumpSource, into: Option<String>) -> Result<DumpScan> {
    let name = dump.name();
    let corrupt =
        |offset: Option<u64>, reason: String| FormatError::Corrupt { path: PathBuf::from(&name), offset, reason };
    let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let hash = Arc::new(Mutex::new(Sha256::new()));
    let stored = Hashing { inner: dump.open_raw()?, hash: hash.clone() };
    let raw = compress::decoder(stored).map_err(|e| corrupt(Some(0), format!("cannot decompress: {e}")))?;
    let mut reader = StatementReader::new(Ends { inner: raw, seen: seen.clone() }, Terminator::Delimiter, 1 << 30);
    let mut classifier = Classifier::new(into);
    let mut objects = ExpectedObjects::default();
    let mut databases = std::collections::BTreeSet::new();
    let mut tables = std::collections::BTreeSet::new();
    while let Some(s) = reader.next_statement().map_err(|e| corrupt(None, e.to_string()))? {
        if !s.terminated {
            return Err(
                corrupt(Some(s.offset), "the dump ends in the middle of a statement: it is truncated".into()).into()
            );
        }
        match classifier.classify(s, &name)? {
            Item::Post(s) => {
                if let Some(change) = object_change(&s.text) {
                    objects.apply(change, classifier.current_db().unwrap_or_default());
                }
            }
            Item::Schema(s) => {
                if let Some(floodgate_format::mysqldump::SchemaTarget::Table(db, t)) =
                    floodgate_format::mysqldump::schema_target(&s.text)
                {
                    let db = if db.is_empty() { classifier.current_db().unwrap_or_default().to_string() } else { db };
                    tables.insert((db, t));
                }
            }
            Item::Rows { .. } | Item::Context(_) | Item::Skip(_) => {}
        }
        if let Some(db) = classifier.current_db() {
            databases.insert(db.to_string());
        }
    }
    let (head, tail) = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let completeness = completeness(&name, &head, &tail, reader.consumed())?;
    let sha256 = hash.lock().map(|h| hex(&h.clone().finalize())).unwrap_or_default();
    Ok(DumpScan {
        databases: databases.len(),
        tables: tables.len(),
        objects,
        completeness,
        sha256,
        completed_on: completed_on(&tail),
    })
}

/// mysqldump and mariadb-dump end with `-- Dump completed on ...` unless told to write no
/// comments: a dump that starts with their header comment but lacks the trailer was cut off
/// between two statements, which the statement splitter cannot see.
fn completeness(name: &str, head: &[u8], tail: &[u8], bytes: u64) -> Result<Check> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let header = text(head);
    let commented = header.contains("-- MySQL dump") || header.contains("-- MariaDB dump");
    let completed = text(tail).contains("-- Dump completed");
    match (commented, completed) {
        (_, true) => Ok(Check::new("dump_complete", true, "ends with the dump tool's `-- Dump completed` line")),
        (false, false) => Ok(Check::new(
            "dump_complete",
            true,
            "not checkable: the dump has no header comment (written with --skip-comments or --compact), \
             so no `-- Dump completed` line is expected",
        )),
        (true, false) => Err(FormatError::Corrupt {
            path: PathBuf::from(name),
            offset: Some(bytes),
            reason: "no `-- Dump completed` line at the end, which the dump's header promises: the file is \
                     truncated or the dump did not finish"
                .into(),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completeness_rules() {
        let head = b"-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB\n";
        assert!(completeness("d.sql", head, b"\n-- Dump completed on 2026-11-25 21:00:00\n", 9).is_ok());
        let err = completeness("d.sql", head, b"INSERT INTO t VALUES (1);\n", 9).unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("d.sql"), "{err}");
        assert!(completeness("d.sql", b"SET NAMES utf8mb4;", b"INSERT INTO t VALUES (1);", 9).is_ok());
    }

    #[test]
    fn completion_date() {
        assert_eq!(
            completed_on(b"UNLOCK TABLES;\n-- Dump completed on 2026-11-25 21:41:00\n").as_deref(),
            Some("2026-11-25 21:41:00")
        );
        assert_eq!(completed_on(b"UNLOCK TABLES;\n"), None);
    }

    #[test]
    fn drops_remove_and_creates_add() {
        let mut o = ExpectedObjects::default();
        for s in [
            "DROP VIEW IF EXISTS `v`",
            "CREATE VIEW `v` AS SELECT 1",
            "CREATE TRIGGER `other`.`t` AFTER INSERT ON x FOR EACH ROW SET @a = 1",
            "CREATE PROCEDURE p() BEGIN END",
            "DROP PROCEDURE p",
        ] {
            o.apply(object_change(s.as_bytes()).unwrap(), "d");
        }
        let names: Vec<_> = o.iter().map(|e| format!("{} {}.{}", e.kind.name(), e.database, e.name)).collect();
        assert_eq!(names, ["view d.v", "trigger other.t"]);
    }
}
