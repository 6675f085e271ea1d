use floodgate_conn::retry::{Retryable, Transient};
use floodgate_conn::ConnError;
use floodgate_format::{Classify, ErrorClass, FormatError};
use floodgate_pipeline::PipelineError;

/// Why a restore stopped. Every variant names what it was working on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Talking to the target failed: a login, a statement, a lost connection.
    #[error(transparent)]
    Server(#[from] ConnError),
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
    /// The dump stream could not be read (its file and offset are named).
    #[error(transparent)]
    Stream(PipelineError),
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
    /// A statement is larger than the target accepts (`max_allowed_packet`).
    #[error("{0}")]
    TooLarge(String),
    /// A bug: a task that panicked, a state that cannot happen.
    #[error("internal error: {0}")]
    Internal(String),
}

impl LoadError {
    /// A mapper for `map_err`: the statement at `context` failed on the server.
    pub fn sql(context: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> LoadError {
        let context = context.into();
        move |source| LoadError::Server(ConnError::Sql { context, source })
    }

    /// How a retry can cure this failure, if it can.
    pub fn transient(&self) -> Option<Transient> {
        match self {
            LoadError::Server(e) => e.transient(),
            _ => None,
        }
    }
}

impl Retryable for LoadError {
    fn transient(&self) -> Option<Transient> {
        LoadError::transient(self)
    }
}

impl Classify for LoadError {
    fn class(&self) -> ErrorClass {
        match self {
            LoadError::Server(e) => e.class(),
            LoadError::Format(e) => e.class(),
            LoadError::Chunk { source, .. } | LoadError::Stream(source) => source.class(),
            LoadError::Refused(_) => ErrorClass::Refused,
            LoadError::Integrity { .. } => ErrorClass::Integrity,
            LoadError::TooLarge(_) => ErrorClass::Failed,
            LoadError::Internal(_) => ErrorClass::Internal,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = LoadError> = std::result::Result<T, E>;
