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

    /// True for failures that a retry of the same chunk can cure: a deadlock or a lock wait
    /// timeout. The server has rolled the transaction back (or the caller does) first.
    pub fn is_retryable(&self) -> bool {
        matches!(self, LoadError::Sql { source: mysql_async::Error::Server(e), .. } if matches!(e.code, 1205 | 1213))
    }

    pub(crate) fn sql(context: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> LoadError {
        let context = context.into();
        move |source| LoadError::Sql { context, source }
    }
}

/// Result alias for this crate.
pub type Result<T, E = LoadError> = std::result::Result<T, E>;
