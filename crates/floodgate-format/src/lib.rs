//! The backup model and the readers that build it.
//!
//! `floodgate-format` turns a backup into what a restore needs: a directory (floodgate's
//! native format, mydumper's two layouts, MySQL Shell's dumps) into a [`RestorePlan`] of databases, tables, their
//! chunk files and the post-data objects; a mysqldump / mariadb-dump stream into classified
//! statements ([`mysqldump::Scanner`]). It also holds the pieces every reader shares: the SQL
//! statement [`split`]ter, the CREATE TABLE [`ddl`] rewriter that defers secondary indexes,
//! transparent [`compress`]ion, the post-data [`objects`] statements name, and the error
//! classification every crate uses ([`Classify`]).
//!
//! Boundary: this crate is pure and synchronous. It reads files; it never talks to a server.

pub mod class;
pub mod compress;
pub mod ddl;
mod error;
pub mod files;
pub mod ident;
mod ini;
pub mod located;
pub mod model;
pub mod mydumper;
pub mod mysqldump;
pub mod native;
pub mod objects;
pub mod rename;
pub mod shell;
pub mod split;
pub mod sqltext;

pub use class::{Classify, ErrorClass};
pub use error::{storage_class, FormatError, Result};
pub use model::{
    Chunk, Database, Delimited, Dialect, Format, Position, RestorePlan, RowsCheck, Selection, SessionSettings, SqlFile,
    Table, View,
};

use std::path::Path;

/// A backup in object storage: a mysqldump file (plain, .gz, .zst) as one object, or a
/// directory backup (native, mydumper, MySQL Shell) under a prefix (`s3://bucket/prefix/`),
/// planned from one listing.
fn open_object(url: &str) -> Result<Backup> {
    let source_url = url;
    let mut parsed = floodgate_storage::ObjectUrl::parse(url)?;
    let names_an_object = !parsed.key.is_empty() && !parsed.key.ends_with('/');
    if names_an_object {
        // `s3://bucket/backups/2026-12-01` without its last `/` is a prefix when anything is
        // stored under it; otherwise the one object it names.
        parsed.key.push('/');
    }
    let url = &parsed.to_url();
    let objects = floodgate_storage::Object::list(url)?;
    if objects.is_empty() && names_an_object {
        let object = floodgate_storage::Object::open(source_url)?;
        return mysqldump::detect_object(object).map(Backup::Dump);
    }
    let count = objects.len();
    let backup = located::Located::listed(url, objects)?;
    if backup.has(native::MANIFEST) {
        return native::read_located(&backup).map(Backup::Directory);
    }
    if backup.has(shell::STARTED) {
        return shell::read_located(backup).map(Backup::Directory);
    }
    if mydumper::looks_like(&backup)? {
        return mydumper::read_located(&backup).map(Backup::Directory);
    }
    let unfinished_native = match &backup {
        located::Located::Objects { by_name, .. } => by_name.keys().any(|k| k.starts_with("schema/")),
        located::Located::Dir(_) => false,
    };
    if unfinished_native {
        // floodgate's layout without its manifest: a dump that did not finish (or failed an
        // upload), as on disk.
        return Err(FormatError::corrupt(
            &backup.root().join(native::MANIFEST),
            None,
            "no manifest.json: the dump did not finish (floodgate writes it last)",
        ));
    }
    let reason = match count {
        0 => "nothing is stored under this prefix".to_string(),
        n => format!(
            "{n} objects, none a backup's metadata (a floodgate dump has manifest.json, a mydumper dump `metadata` \
             and schema files, a MySQL Shell dump @.json; a mysqldump file is named by its key)"
        ),
    };
    Err(FormatError::NotABackup { path: url.into(), reason })
}

/// A backup, as detected.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per run: boxing buys nothing
pub enum Backup {
    /// A directory of files, fully described up front (native, mydumper, MySQL Shell).
    Directory(RestorePlan),
    /// One stream of SQL statements (mysqldump, mariadb-dump), read once, in order.
    Dump(mysqldump::DumpSource),
}

/// Looks at `source` and picks the reader its layout calls for; `-` is standard input.
///
/// Detection never guesses: a source that matches no known layout is an error that says
/// what was looked for.
pub fn open(source: &Path) -> Result<Backup> {
    if source == Path::new("-") {
        return mysqldump::detect(source).map(Backup::Dump);
    }
    if let Some(url) = source.to_str().filter(|s| floodgate_storage::is_url(s)) {
        return open_object(url);
    }
    let meta = std::fs::metadata(source).map_err(|e| FormatError::io(source, e))?;
    if meta.is_dir() {
        if native::looks_like(source) {
            return native::read(source).map(Backup::Directory);
        }
        if source.join("schema").is_dir() && source.join("data").is_dir() {
            // floodgate's layout without its manifest: a dump that did not finish.
            return native::read_manifest(&source.join(native::MANIFEST))
                .and_then(|_| native::read(source))
                .map(Backup::Directory);
        }
        if shell::looks_like(source) {
            return shell::read(source).map(Backup::Directory);
        }
        if mydumper::looks_like(&located::Located::open(source)?)? {
            return mydumper::read(source).map(Backup::Directory);
        }
        return Err(FormatError::NotABackup {
            path: source.to_path_buf(),
            reason: "no mydumper `metadata` file with `*-schema-create.sql` or `*-schema.sql` files, \
                     no floodgate `manifest.json`, no MySQL Shell `@.json`"
                .into(),
        });
    }
    mysqldump::detect(source).map(Backup::Dump)
}

/// Most statement bytes (text plus bookkeeping) [`read_statements`] holds from one file.
pub const SCHEMA_FILE_LIMIT: usize = 64 << 20;

/// Reads every statement of a small SQL file (schema and post-data files), decompressing it
/// if needed. These are held whole, so a file whose statements take more than
/// [`SCHEMA_FILE_LIMIT`] is refused as it is read (a decompression bomb stops there); data
/// files stream instead. Each statement is counted with its bookkeeping: a file of millions
/// of tiny statements costs far more than its bytes.
pub fn read_statements(file: &SqlFile, terminator: split::Terminator) -> Result<Vec<split::Statement>> {
    let corrupt = |offset: Option<u64>, reason: String| FormatError::corrupt(&file.path, offset, reason);
    let reader = split::StatementReader::new(compress::open_file(file)?, terminator, SCHEMA_FILE_LIMIT);
    let mut statements = Vec::new();
    let mut held = 0usize;
    for s in reader {
        let s = s.map_err(|e| match e {
            split::ReadError::Io { offset, source } => corrupt(Some(offset), format!("cannot decompress: {source}")),
            split::ReadError::Split(e) => corrupt(None, e.to_string()),
        })?;
        held += s.text.len() + std::mem::size_of::<split::Statement>();
        if held > SCHEMA_FILE_LIMIT {
            return Err(corrupt(
                Some(s.offset),
                format!("a schema file holding more than {} MiB of statements", SCHEMA_FILE_LIMIT >> 20),
            ));
        }
        statements.push(s);
    }
    if let Some(last) = statements.last().filter(|s| !s.terminated) {
        return Err(corrupt(
            Some(last.offset),
            "the last statement has no terminating `;`: the file is truncated".into(),
        ));
    }
    Ok(statements)
}
