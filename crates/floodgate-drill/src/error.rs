use floodgate_format::FormatError;
use floodgate_loader::LoadError;
use floodgate_sandbox::SandboxError;

/// Why a drill failed. Every variant says what it was checking.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrillError {
    /// The restore failed (the loader's error names the table, file and chunk).
    #[error(transparent)]
    Load(#[from] LoadError),
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
    /// The exit code DESIGN.md assigns: 3 for integrity failures (a damaged or incomplete
    /// backup, rows or objects that did not arrive, a false `--verify-query`), 1 for
    /// everything else, a timeout and an interrupt included: neither says anything about the
    /// backup's integrity, and a drill's throwaway server leaves nothing to resume.
    pub fn exit_code(&self) -> i32 {
        match self {
            DrillError::Load(e) => e.exit_code(),
            DrillError::Format(e) if e.is_integrity() => 3,
            DrillError::Integrity { .. } => 3,
            _ => 1,
        }
    }

    /// A short machine-readable kind for reports and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DrillError::Timeout { .. } => "timeout",
            DrillError::Interrupted { .. } => "interrupted",
            e if e.exit_code() == 3 => "integrity",
            _ => "failure",
        }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DrillError {
        let what = what.into();
        move |source| DrillError::Io { what, source }
    }
}

/// Result alias for this crate.
pub type Result<T, E = DrillError> = std::result::Result<T, E>;
