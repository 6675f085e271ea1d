use floodgate_format::FormatError;
use floodgate_pipeline::PipelineError;

/// Why a restore stopped. Every variant names what it was working on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Could not connect or log in.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// host:port or socket.
        target: String,
        /// The driver's error.
        source: mysql_async::Error,
    },
    /// A statement failed on the server.
    #[error("{context}: {source}")]
    Sql {
        /// Which table, file and byte offset, or which phase.
        context: String,
        /// The server's error.
        source: mysql_async::Error,
    },
    /// Reading rows through floodgate-wire failed, or the server sent an error through it.
    #[error("{context}: {source}")]
    Wire {
        /// Which table, or which step.
        context: String,
        /// The cause.
        source: floodgate_wire::WireError,
    },
    /// The backup could not be read.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A chunk could not be read or decompressed.
    #[error("table {table}: {source}")]
    Chunk {
        /// `db`.`table`.
        table: String,
        /// The pipeline's error, naming the file.
        source: PipelineError,
    },
    /// The target is not fit for this restore (and nothing was changed).
    #[error("{0}")]
    Refused(String),
    /// Loaded data does not match the backup: rows lost or altered.
    #[error("{context}: {reason}")]
    Integrity {
        /// Which table and file.
        context: String,
        /// What differs.
        reason: String,
    },
}

impl LoadError {
    /// The process exit code DESIGN.md assigns: 3 for integrity failures, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            LoadError::Integrity { .. } => 3,
            LoadError::Format(e) if e.is_integrity() => 3,
            LoadError::Chunk { source, .. } if source.integrity => 3,
            _ => 1,
        }
    }

    /// How a retry can cure this failure, if it can.
    pub fn transient(&self) -> Option<Transient> {
        use mysql_async::{DriverError, Error};
        let source = match self {
            LoadError::Sql { source, .. } | LoadError::Connect { source, .. } => source,
            _ => return None,
        };
        match source {
            // Deadlock, lock wait timeout, query interrupted (KILL QUERY): the server rolled
            // the statement or transaction back; the connection is still good.
            Error::Server(e) if matches!(e.code, 1205 | 1213 | 1317) => Some(Transient::Retry),
            // Too many connections, server shutting down, connection killed, lost or reset.
            Error::Server(e) if matches!(e.code, 1040 | 1053 | 1927 | 2006 | 2013) => Some(Transient::Reconnect),
            Error::Io(_) => Some(Transient::Reconnect),
            Error::Driver(DriverError::ConnectionClosed | DriverError::PoolDisconnected) => Some(Transient::Reconnect),
            _ => None,
        }
    }

    pub(crate) fn sql(context: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> LoadError {
        let context = context.into();
        move |source| LoadError::Sql { context, source }
    }
}

/// What a transient failure needs before the work is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transient {
    /// The same connection can retry (after ROLLBACK).
    Retry,
    /// The connection is gone: open a new one (waiting for the server to come back).
    Reconnect,
}

/// Result alias for this crate.
pub type Result<T, E = LoadError> = std::result::Result<T, E>;
