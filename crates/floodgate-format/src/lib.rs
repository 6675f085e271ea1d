//! The backup model and the readers that build it.
//!
//! `floodgate-format` turns a backup into what a restore needs: a directory (floodgate's
//! native format, mydumper's two layouts) into a [`RestorePlan`] of databases, tables, their
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
pub mod model;
pub mod mydumper;
pub mod mysqldump;
pub mod native;
pub mod objects;
pub mod split;
pub mod sqltext;

pub use class::{Classify, ErrorClass};
pub use error::{FormatError, Result};
pub use model::{
    Chunk, Database, Format, Position, RestorePlan, RowsCheck, Selection, SessionSettings, SqlFile, Table, View,
};

use std::path::Path;

/// A backup, as detected.
#[derive(Debug, Clone)]
pub enum Backup {
    /// A directory of files, fully described up front (mydumper).
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
        if mydumper::looks_like(source)? {
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

/// Reads every statement of a small SQL file (schema and post-data files), decompressing it
/// if needed. Files over 256 MiB are refused: those are data, which streams instead.
pub fn read_statements(file: &SqlFile, terminator: split::Terminator) -> Result<Vec<split::Statement>> {
    use std::io::Read;
    const LIMIT: u64 = 256 << 20;
    let mut text = Vec::new();
    compress::open(&file.path)?
        .take(LIMIT + 1)
        .read_to_end(&mut text)
        .map_err(|e| FormatError::corrupt(&file.path, None, format!("cannot decompress: {e}")))?;
    if text.len() as u64 > LIMIT {
        return Err(FormatError::corrupt(&file.path, None, "schema file larger than 256 MiB"));
    }
    let statements =
        split::split_all(&text, terminator).map_err(|e| FormatError::corrupt(&file.path, None, e.to_string()))?;
    if let Some(last) = statements.last().filter(|s| !s.terminated) {
        return Err(FormatError::corrupt(
            &file.path,
            Some(last.offset),
            "the last statement has no terminating `;`: the file is truncated",
        ));
    }
    Ok(statements)
}
