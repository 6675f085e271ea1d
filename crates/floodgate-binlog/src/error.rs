//! Typed errors. Every error about a binary log names the file and the byte offset of the
//! event it concerns, so an operator can look at it with `mariadb-binlog --start-position`.

use std::path::PathBuf;

use floodgate_conn::ConnError;
use floodgate_format::{Classify, ErrorClass};

/// Why reading or replaying binary logs stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BinlogError {
    /// The file could not be opened or read.
    #[error("{}: {source}", file.display())]
    Io {
        /// The binary log.
        file: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not a valid binary log: bad magic, a truncated or malformed event.
    #[error("{} at offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The binary log.
        file: PathBuf,
        /// Byte offset of the event (or of the damage).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An event's CRC32 does not match its bytes.
    #[error("{} at offset {offset}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})", file.display())]
    Checksum {
        /// The binary log.
        file: PathBuf,
        /// Byte offset of the event.
        offset: u64,
        /// CRC32 stored in the event.
        stored: u32,
        /// CRC32 of the event's bytes.
        computed: u32,
    },
    /// The files given do not form one unbroken sequence.
    #[error("gap after {} (offset {offset}): {reason}", file.display())]
    Gap {
        /// The earlier file.
        file: PathBuf,
        /// Offset in the earlier file where it ends (or its Rotate event).
        offset: u64,
        /// What is missing.
        reason: String,
    },
    /// A valid event floodgate cannot replay exactly (it refuses rather than guess).
    #[error("{} at offset {offset}: unsupported: {reason}", file.display())]
    Unsupported {
        /// The binary log.
        file: PathBuf,
        /// Byte offset of the event.
        offset: u64,
        /// Which event or feature.
        reason: String,
    },
    /// Talking to the target failed: a login, a statement (naming its transaction's file
    /// and offset, or the step), a lost connection.
    #[error(transparent)]
    Server(#[from] ConnError),
    /// Bad options (positions, dates, a missing file).
    #[error("{0}")]
    Usage(String),
    /// Stopped on request; the checkpoint on the target resumes exactly.
    #[error("interrupted; the checkpoint on the target resumes the replay where it stopped")]
    Interrupted,
    /// A bug: a thread that panicked.
    #[error("internal error: {0}")]
    Internal(String),
}

impl BinlogError {
    pub(crate) fn sql(context: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> BinlogError {
        let context = context.into();
        move |source| BinlogError::Server(ConnError::Sql { context, source })
    }
}

impl Classify for BinlogError {
    /// Damaged input is an integrity failure (exit 3), an interruption resumable (exit 4).
    fn class(&self) -> ErrorClass {
        match self {
            BinlogError::Corrupt { .. } | BinlogError::Checksum { .. } | BinlogError::Gap { .. } => {
                ErrorClass::Integrity
            }
            BinlogError::Interrupted => ErrorClass::Interrupted,
            BinlogError::Usage(_) => ErrorClass::Usage,
            BinlogError::Unsupported { .. } => ErrorClass::Refused,
            BinlogError::Io { .. } => ErrorClass::Failed,
            BinlogError::Server(e) => e.class(),
            BinlogError::Internal(_) => ErrorClass::Internal,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = BinlogError> = std::result::Result<T, E>;
