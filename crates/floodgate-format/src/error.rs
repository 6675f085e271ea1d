use std::path::{Path, PathBuf};

use crate::class::{Classify, ErrorClass};

/// Everything that can be wrong with a backup, each naming the file it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The source is not a backup floodgate knows.
    #[error("{} is not a backup floodgate can read: {reason}", path.display())]
    NotABackup {
        /// What was given.
        path: PathBuf,
        /// What was looked for.
        reason: String,
    },
    /// The backup is damaged: truncated, corrupt or inconsistent.
    #[error("{}{}: {reason}", path.display(), offset.map(|o| format!(" at byte {o}")).unwrap_or_default())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset in the (decompressed) file, where known.
        offset: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// Object storage failed: the object is missing, refused, unreachable or changed.
    #[error(transparent)]
    Storage(#[from] floodgate_storage::StorageError),
    /// `--database`, `--exclude` or `--into` ask for what the backup does not hold.
    #[error("{0}")]
    Selection(String),
    /// A file name or path in the backup tries to leave the backup directory.
    #[error("{}: refusing unsafe path {name:?}: {reason}", path.display())]
    UnsafePath {
        /// The file that named it.
        path: PathBuf,
        /// The offending name.
        name: String,
        /// Why it is refused.
        reason: String,
    },
}

impl FormatError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        FormatError::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn corrupt(path: &Path, offset: Option<u64>, reason: impl Into<String>) -> Self {
        FormatError::Corrupt { path: path.to_path_buf(), offset, reason: reason.into() }
    }

    /// True when the error means the backup itself is damaged or incomplete (exit code 3),
    /// as opposed to a source that cannot be read at all.
    pub fn is_integrity(&self) -> bool {
        self.class() == ErrorClass::Integrity
    }
}

impl Classify for FormatError {
    fn class(&self) -> ErrorClass {
        match self {
            FormatError::Corrupt { .. } | FormatError::UnsafePath { .. } => ErrorClass::Integrity,
            FormatError::NotABackup { .. } => ErrorClass::Refused,
            FormatError::Io { .. } => ErrorClass::Failed,
            FormatError::Selection(_) => ErrorClass::Usage,
            FormatError::Storage(e) => storage_class(e.kind),
        }
    }
}

/// What a storage failure means for the run: a changed object is damage (never retried);
/// an unreachable store, refused credentials or a missing object are failures.
pub fn storage_class(kind: floodgate_storage::StorageErrorKind) -> ErrorClass {
    use floodgate_storage::StorageErrorKind as K;
    match kind {
        K::Changed => ErrorClass::Integrity,
        K::Usage => ErrorClass::Usage,
        K::NotFound | K::Denied | K::Unreachable => ErrorClass::Failed,
    }
}

/// Result alias for this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
