use floodgate_format::{Classify, ErrorClass};

use crate::retry::{self, Transient};

/// Why talking to a server failed. Every variant names what it was doing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    /// Could not connect or log in.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// user@host:port or user@socket, never the password.
        target: String,
        /// The driver's error.
        source: mysql_async::Error,
    },
    /// A statement failed on the server.
    #[error("{context}: {source}")]
    Sql {
        /// Which table, file and byte offset, or which step.
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
    /// The server is not fit for the work (a privilege it lacks, a setting it refuses);
    /// nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// The server went away and did not come back within the wait allowed.
    #[error("{0}")]
    Gone(String),
    /// The TLS options cannot be used as given (a verifying mode without a CA, a certificate
    /// without its key, a file that cannot be read): a usage error, before any connection.
    #[error("{0}")]
    TlsSettings(String),
    /// The connection could not be secured as `--ssl-mode` asks (the server offers no TLS,
    /// its certificate fails the check, it refused the handshake), or the server refused a
    /// connection in clear. Never retried: trying again would meet the same certificate.
    #[error("cannot connect to {target}: {reason}")]
    Tls {
        /// user@host:port, never the password.
        target: String,
        /// What failed, naming the certificate problem and the option to look at.
        reason: String,
    },
}

impl ConnError {
    /// A mapper for `map_err`: the statement at `context` failed.
    pub fn sql(context: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> ConnError {
        let context = context.into();
        move |source| ConnError::Sql { context, source }
    }

    /// A session setup statement failed: a missing privilege is a refusal that says which
    /// statement needs it.
    pub fn session(statement: &str, e: mysql_async::Error) -> ConnError {
        match &e {
            mysql_async::Error::Server(se) if se.code == ER_SPECIFIC_ACCESS_DENIED => {
                ConnError::Refused(format!("`{statement}` needs a privilege this user lacks ({})", se.message))
            }
            _ => ConnError::Sql { context: format!("session setup `{statement}`"), source: e },
        }
    }

    /// How a retry can cure this failure, if it can.
    pub fn transient(&self) -> Option<Transient> {
        match self {
            ConnError::Connect { source, .. } | ConnError::Sql { source, .. } => retry::transient(source),
            ConnError::Wire { source, .. } => retry::wire_transient(source),
            ConnError::Refused(_) | ConnError::Gone(_) | ConnError::TlsSettings(_) | ConnError::Tls { .. } => None,
        }
    }

    /// The server's error code, if the server sent one.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            ConnError::Connect { source: mysql_async::Error::Server(e), .. }
            | ConnError::Sql { source: mysql_async::Error::Server(e), .. } => Some(e.code),
            ConnError::Wire { source: floodgate_wire::WireError::Server { code, .. }, .. } => Some(*code),
            _ => None,
        }
    }
}

/// ER_SPECIFIC_ACCESS_DENIED_ERROR ("you need (at least one of) the SUPER privilege(s)").
const ER_SPECIFIC_ACCESS_DENIED: u16 = 1227;

impl Classify for ConnError {
    fn class(&self) -> ErrorClass {
        match self {
            _ if self.transient().is_some() => ErrorClass::Transient,
            ConnError::Refused(_) => ErrorClass::Refused,
            ConnError::TlsSettings(_) => ErrorClass::Usage,
            ConnError::Connect { .. }
            | ConnError::Sql { .. }
            | ConnError::Wire { .. }
            | ConnError::Gone(_)
            | ConnError::Tls { .. } => ErrorClass::Failed,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = ConnError> = std::result::Result<T, E>;
