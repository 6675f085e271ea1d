//! The one error classification every floodgate crate shares (DESIGN.md, Workspace): what a
//! failure means for the person running floodgate, the process exit code it maps to, and
//! whether the one retry policy may try the work again.

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The backup or the restored data is not what it should be: a corrupt, truncated or
    /// unfinished backup, rows that did not arrive, a digest that differs. Never retried.
    Integrity,
    /// Stopped on request (a signal); a checkpoint resumes the work exactly.
    Interrupted,
    /// A deadlock, a lock wait timeout, a lost connection, a server restarting: the retry
    /// policy tries again, and only an error that outlasts it reaches the user.
    Transient,
    /// The target or the input is not fit for the work, and nothing was changed: a
    /// non-empty target, a missing privilege, a setting the server refuses.
    Refused,
    /// An operation failed: a statement the server rejected, a file that cannot be written.
    Failed,
    /// The command line asks for something that cannot be done.
    Usage,
    /// A bug in floodgate (a task that panicked, a state that cannot happen).
    Internal,
}

impl ErrorClass {
    /// The process exit code DESIGN.md assigns: 3 integrity, 4 interrupted, 2 usage, else 1.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorClass::Integrity => 3,
            ErrorClass::Interrupted => 4,
            ErrorClass::Usage => 2,
            ErrorClass::Transient | ErrorClass::Refused | ErrorClass::Failed | ErrorClass::Internal => 1,
        }
    }

    /// A short machine-readable name for reports and metrics.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Integrity => "integrity",
            ErrorClass::Interrupted => "interrupted",
            ErrorClass::Transient => "transient",
            ErrorClass::Refused => "refused",
            ErrorClass::Failed => "failure",
            ErrorClass::Usage => "usage",
            ErrorClass::Internal => "internal",
        }
    }
}

/// An error that knows its class. Every library error type of floodgate implements it, so
/// the binary maps any of them to an exit code the same way.
pub trait Classify: std::error::Error {
    /// What kind of failure this is.
    fn class(&self) -> ErrorClass;

    /// The exit code of its class.
    fn exit_code(&self) -> i32 {
        self.class().exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_design() {
        assert_eq!(ErrorClass::Integrity.exit_code(), 3);
        assert_eq!(ErrorClass::Interrupted.exit_code(), 4);
        assert_eq!(ErrorClass::Usage.exit_code(), 2);
        for c in [ErrorClass::Transient, ErrorClass::Refused, ErrorClass::Failed, ErrorClass::Internal] {
            assert_eq!(c.exit_code(), 1, "{c:?}");
        }
    }
}
