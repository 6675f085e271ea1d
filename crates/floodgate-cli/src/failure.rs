//! The binary's one error type: a library error keeps the class its crate gave it
//! ([`floodgate_format::Classify`]), and a failure of the binary's own (writing a report,
//! reading an option file) is given one where it happens. The class decides the exit code, so
//! no error reaches the user unclassified: `?` on an error without a class does not compile.

use std::fmt::Display;

use floodgate_format::{Classify, ErrorClass};

/// An error on its way to the user, with the class that decides the exit code.
#[derive(Debug)]
pub struct Failure {
    class: ErrorClass,
    error: anyhow::Error,
}

impl<E: Classify + Send + Sync + 'static> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure { class: e.class(), error: anyhow::Error::new(e) }
    }
}

impl Failure {
    /// A failure of the binary's own.
    pub fn new(class: ErrorClass, message: impl Display) -> Failure {
        Failure { class, error: anyhow::anyhow!("{message}") }
    }

    /// The process exit code (DESIGN.md).
    pub fn exit_code(&self) -> i32 {
        self.class.exit_code()
    }

    /// The message and its causes, each cause shown once (library errors already name their
    /// cause in their own message).
    pub fn message(&self) -> String {
        let mut text = self.error.to_string();
        for cause in self.error.chain().skip(1) {
            let c = cause.to_string();
            if !text.contains(&c) {
                text.push_str(": ");
                text.push_str(&c);
            }
        }
        text
    }
}

/// Gives an unclassified error (I/O, JSON) its class and says what was being done.
pub trait OrFail<T> {
    /// The error, classed `class`, after "`what`: ".
    fn or_fail(self, class: ErrorClass, what: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> OrFail<T> for Result<T, E> {
    fn or_fail(self, class: ErrorClass, what: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|e| Failure { class, error: anyhow::Error::new(e).context(what()) })
    }
}

/// Result alias for the binary.
pub type Result<T, E = Failure> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_keep_their_class() {
        let corrupt =
            floodgate_format::FormatError::Corrupt { path: "x.sql".into(), offset: Some(3), reason: "cut".into() };
        let f = Failure::from(corrupt);
        assert_eq!(f.exit_code(), 3);
        assert!(f.message().contains("x.sql at byte 3: cut"), "{}", f.message());
        let io: std::result::Result<(), std::io::Error> = Err(std::io::Error::other("disk full"));
        let f = io.or_fail(ErrorClass::Failed, || "writing r.json".into()).unwrap_err();
        assert_eq!((f.exit_code(), f.message().as_str()), (1, "writing r.json: disk full"));
    }
}
