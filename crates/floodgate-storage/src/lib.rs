//! Where a backup's bytes live when they are not on local disk: objects in S3-compatible
//! storage (AWS S3, MinIO, Ceph, R2, ...), named by `s3://bucket/key` URLs.
//!
//! The protocol (SigV4 signing, HTTP, multipart uploads) is the `object_store` crate's; this
//! crate adds what a restore needs on top of it: credentials and endpoints found where AWS
//! users keep them ([`StoreOptions`]), an [`Object`] pinned at the size and ETag it had when
//! the restore was planned (a GET that finds another refuses it), reads in parallel ranges
//! stitched in order within a memory bound ([`Object::reader`]), and one retry policy for
//! throttling, server errors and stalled transfers ([`retry`]).
//!
//! Boundary: the API is synchronous, as the format readers and the pipeline that call it
//! are. Requests run on this crate's own small runtime; a caller's thread blocks on the
//! answer, whether or not it belongs to another runtime.

mod error;
mod object;
mod options;
pub mod retry;
mod runtime;
mod upload;
mod url;

pub use error::{StorageError, StorageErrorKind};
pub use object::{gets, Object, ObjectReader};
pub use options::{configure, Credentials, StoreOptions};
pub use upload::{upload, upload_file};
pub use url::{is_url, ObjectUrl};

/// Result of storage operations.
pub type Result<T> = std::result::Result<T, StorageError>;
