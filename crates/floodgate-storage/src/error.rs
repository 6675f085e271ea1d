//! What can go wrong reading or writing objects, said for the person running floodgate: which
//! object, and what to do.

/// The kind of failure, which decides the exit code (see floodgate-format's `ErrorClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// A bad URL or option.
    Usage,
    /// No such bucket or object.
    NotFound,
    /// The credentials are refused, or there are none.
    Denied,
    /// The store could not be reached or kept failing for longer than the retry policy
    /// waits.
    Unreachable,
    /// The object is not what the plan read: another size or ETag, or fewer bytes than asked.
    Changed,
}

/// A storage failure naming the object (or bucket) it happened on.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct StorageError {
    pub kind: StorageErrorKind,
    /// `s3://bucket/key`, or the endpoint.
    pub url: String,
    pub reason: String,
}

impl StorageError {
    pub fn new(kind: StorageErrorKind, url: impl Into<String>, reason: impl Into<String>) -> StorageError {
        StorageError { kind, url: url.into(), reason: reason.into() }
    }

    /// Maps an object_store error on `url` to what it means for a restore.
    pub(crate) fn from_store(url: &str, e: &object_store::Error) -> StorageError {
        use object_store::Error as E;
        let (kind, reason) = match e {
            E::NotFound { .. } => (StorageErrorKind::NotFound, "no such object (or bucket)".to_string()),
            E::PermissionDenied { source, .. } | E::Unauthenticated { source, .. } => (
                StorageErrorKind::Denied,
                format!(
                    "access denied: {}. Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the bucket's \
                     policy",
                    first_line(&source.to_string())
                ),
            ),
            E::Precondition { .. } => {
                (StorageErrorKind::Changed, "the object changed since the restore read it (its ETag differs)".into())
            }
            other => {
                let detail = describe(other);
                let detail = detail.strip_prefix("Generic S3 error: ").unwrap_or(&detail);
                // object_store reports some answers (a listing's) as generic errors: the
                // status in the text still says what they are.
                if detail.contains("403 Forbidden") || detail.contains("401 Unauthorized") {
                    (
                        StorageErrorKind::Denied,
                        format!(
                            "access denied: {}. Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the \
                             bucket's policy",
                            first_line(detail)
                        ),
                    )
                } else if detail.contains("404 Not Found") || detail.contains("NoSuchBucket") {
                    (StorageErrorKind::NotFound, "no such object (or bucket)".to_string())
                } else {
                    (StorageErrorKind::Unreachable, format!("the store did not answer: {}", first_line(detail)))
                }
            }
        };
        StorageError::new(kind, url, reason)
    }
}

/// The error with its causes, which is where object_store and reqwest say what happened
/// (connection refused, a timeout, the store's own message).
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().chars().take(400).collect()
}
