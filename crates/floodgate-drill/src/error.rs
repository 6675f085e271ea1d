use floodgate_conn::ConnError;
use floodgate_format::FormatError;
use floodgate_format::{Classify, ErrorClass};
use floodgate_loader::LoadError;
use floodgate_sandbox::SandboxError;

/// Why a drill failed. Every variant says what it was checking.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrillError {
    /// The restore failed (the loader's error names the table, file and chunk).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Talking to the server failed.
    #[error(transparent)]
    Server(#[from] ConnError),
    /// The backup could not be read, or is damaged.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The throwaway server did not start.
    #[error("the drill's sandbox server: {0}")]
    Sandbox(#[from] SandboxError),
    /// The restore ran longer than `--timeout` allows.
    #[error(
        "the restore exceeded --timeout {limit} (the recovery time objective) during its {phase} phase \
         ({done} of {total} bytes loaded) and was stopped"
    )]
    Timeout {
        /// The limit as given.
        limit: String,
        /// The restore phase that was running.
        phase: String,
        /// Bytes of backup data loaded by then.
        done: u64,
        /// Bytes of backup data in all (as far as known).
        total: u64,
    },
    /// A signal stopped the drill.
    #[error("interrupted by {signal}: the drill was stopped")]
    Interrupted {
        /// SIGINT or SIGTERM.
        signal: String,
    },
    /// The restored data or objects differ from what the backup holds, or a
    /// `--verify-query` check returned false.
    #[error("{context}: {reason}")]
    Integrity {
        /// What was checked.
        context: String,
        /// What differs.
        reason: String,
    },
    /// The target is not fit for a drill (and nothing was changed).
    #[error("{0}")]
    Refused(String),
    /// A bug: a task that panicked.
    #[error("internal error: {0}")]
    Internal(String),
    /// A local file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl DrillError {
    /// A short machine-readable kind for reports and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DrillError::Timeout { .. } => "timeout",
            DrillError::Interrupted { .. } => "interrupted",
            e if e.class() == ErrorClass::Integrity => "integrity",
            _ => "failure",
        }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DrillError {
        let what = what.into();
        move |source| DrillError::Io { what, source }
    }
}

/// A drill's exit code is 3 for integrity failures (a damaged or incomplete backup, rows or
/// objects that did not arrive, a false `--verify-query`) and 1 for everything else, a
/// timeout and an interrupt included: neither says anything about the backup's integrity,
/// and a drill's throwaway server leaves nothing to resume.
impl Classify for DrillError {
    fn class(&self) -> ErrorClass {
        match self {
            DrillError::Load(e) => e.class(),
            DrillError::Server(e) => e.class(),
            DrillError::Format(e) => e.class(),
            DrillError::Sandbox(_) | DrillError::Io { .. } | DrillError::Timeout { .. } => ErrorClass::Failed,
            // Not resumable: the sandbox it restored into is gone.
            DrillError::Interrupted { .. } => ErrorClass::Failed,
            DrillError::Integrity { .. } => ErrorClass::Integrity,
            DrillError::Refused(_) => ErrorClass::Refused,
            DrillError::Internal(_) => ErrorClass::Internal,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = DrillError> = std::result::Result<T, E>;
