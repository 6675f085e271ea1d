//! Reading the backup before any server work: detect its format, record its identity, and
//! learn what the restore must produce (the post-data objects; for a mysqldump file, whether
//! it is complete, found by one pass over it).

use std::path::{Path, PathBuf};

use floodgate_format::mysqldump::{self, Completeness};
use floodgate_format::objects::{object_change, ExpectedObjects, ObjectKind};
use floodgate_format::split::StatementLimit;
use floodgate_format::{Backup, RestorePlan};
use sha2::{Digest, Sha256};

use floodgate_format::located::Located;
use floodgate_format::native::rfc3339;

use crate::report::{BackupInfo, Check};
use crate::{DrillError, Result};

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
/// names the database of a mysqldump file made without `--databases`; a statement of it
/// larger than `limit` is refused (the server is not started yet, so its max_allowed_packet
/// is not known: the restore applies that).
pub fn prepare(path: &Path, into: Option<String>, limit: StatementLimit) -> Result<Prepared> {
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
            if let Some(object) = &dump.object {
                (info.files, info.bytes) = (1, object.size());
                info.modified_at = Some(object.modified()).filter(|&t| t > 0).map(rfc3339);
            }
            let scan = mysqldump::scan(dump, into, true, limit)?;
            info.databases = scan.summary.databases.len() as u64;
            info.tables = scan.summary.tables.len() as u64;
            info.identity_sha256 = scan.sha256;
            if let Completeness::Complete { completed_on } = &scan.completeness {
                info.created_at.clone_from(completed_on);
            }
            checks.push(completeness_check(&scan.completeness));
            scan.summary.objects
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

/// Most bytes of the file that names a backup (manifest, metadata) read for its digest.
const IDENTITY_LIMIT: u64 = 256 << 20;

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
    // On disk or in a bucket: the backup's files are read through where the plan found them.
    let located = Located::open(&plan.root)?;
    if let Located::Objects { by_name, .. } = &located {
        info.files = by_name.len() as u64;
        info.bytes = by_name.values().map(|o| o.size()).sum();
        info.modified_at = by_name.values().map(|o| o.modified()).max().filter(|&t| t > 0).map(rfc3339);
    }
    let sha256 = |name: &str| located.read(name, IDENTITY_LIMIT, "a dump's metadata").map(|b| hex(&Sha256::digest(b)));
    match plan.format {
        floodgate_format::Format::Native => {
            let bytes = located.manifest_bytes()?;
            let m = floodgate_format::native::parse_manifest(&bytes, &located.manifest_path())?;
            info.created_at = Some(m.created_at);
            info.source_server_version = Some(m.source.server_version);
            info.identity_sha256 = Some(hex(&Sha256::digest(&bytes)));
        }
        floodgate_format::Format::MysqlShell { .. } => {
            let p = floodgate_format::shell::provenance(located.clone())?;
            info.created_at = p.began;
            info.source_server_version = p.server_version;
            // Written last, with every data file's size: it names this dump's content.
            info.identity_sha256 = Some(sha256(floodgate_format::shell::DONE)?);
        }
        floodgate_format::Format::Mydumper { .. } => {
            let metadata = located.read("metadata", IDENTITY_LIMIT, "mydumper's metadata")?;
            info.identity_sha256 = Some(hex(&Sha256::digest(&metadata)));
            info.created_at = mydumper_started(&String::from_utf8_lossy(&metadata));
        }
    }
    Ok(())
}

/// mydumper's `# Started dump at: 2026-11-25 19:02:39` (0.13+) or `Started dump at: ...`.
fn mydumper_started(metadata: &str) -> Option<String> {
    let line = metadata.lines().find(|l| l.contains("Started dump at:"))?;
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
            for s in plan.statements(file)? {
                if let Some(change) = object_change(&s.text) {
                    objects.apply(change, &db.name);
                }
            }
        }
    }
    Ok(objects)
}

/// The drill's record of a mysqldump file's completeness.
fn completeness_check(c: &Completeness) -> Check {
    match c {
        Completeness::Complete { .. } => {
            Check::new("dump_complete", true, "ends with the dump tool's `-- Dump completed` line")
        }
        Completeness::Unmarked => Check::new(
            "dump_complete",
            true,
            "not checkable: the dump has no header comment (written with --skip-comments or --compact), \
             so no `-- Dump completed` line is expected",
        ),
    }
}
