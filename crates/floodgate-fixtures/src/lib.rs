//! Writes backups in other tools' layouts from a live server, for tests and benches, where
//! the tool itself cannot run here.
//!
//! [`write_shell_dump`] writes a MySQL Shell `util.dumpInstance()`/`dumpSchemas()` directory
//! as Shell 8.4 writes it (format 2.0.1), from a MariaDB or MySQL server, in one consistent
//! snapshot. The file layout, JSON key order, SQL templates and data bytes follow Shell's
//! source (modules/util/dump); see fixtures/README.md for what differs.

pub mod checksum;
pub mod ddl;
mod dump;
pub mod encode;
pub mod json;
pub mod names;
pub mod server;
pub mod sink;

pub use dump::{write_shell_dump, Summary};
pub use encode::Dialect;
pub use sink::Compression;

/// Options of one Shell-layout dump, named after Shell's own.
#[derive(Debug, Clone)]
pub struct ShellDumpOptions {
    /// Schemas to dump (`dumpSchemas`); empty: every non-system schema (`dumpInstance`).
    pub schemas: Vec<String>,
    pub dialect: Dialect,
    pub compression: Compression,
    /// Target data bytes per chunk, decimal as Shell counts them (`64M` = 64 000 000).
    pub bytes_per_chunk: u64,
    pub chunking: bool,
    /// Write `@.checksums.json` (Shell's `checksum: true`).
    pub checksum: bool,
    /// Write `@.users.sql` and `users` in `@.json` (dumpInstance only, as in Shell).
    pub users: bool,
    /// Write `@.done.json`; false leaves the dump looking unfinished.
    pub write_done: bool,
}

impl Default for ShellDumpOptions {
    fn default() -> Self {
        ShellDumpOptions {
            schemas: Vec::new(),
            dialect: Dialect::Default,
            compression: Compression::Zstd,
            bytes_per_chunk: 64_000_000,
            chunking: true,
            checksum: false,
            users: true,
            write_done: true,
        }
    }
}

/// Why a dump could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("query failed: {query}: {source}")]
    Query { query: String, source: mysql_async::Error },
    #[error("writing {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Unsupported(String),
    #[error("unexpected server answer: {0}")]
    Server(String),
}
