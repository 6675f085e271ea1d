//! Restores a [`RestorePlan`](floodgate_format::RestorePlan) into a target server.
//!
//! The phases follow DESIGN.md: target checks, schema (secondary indexes deferred), data over
//! N connections (largest tables first, several tables and several chunks of one table at
//! once, one transaction per chunk), each table's deferred indexes as soon as its last chunk
//! lands, then views, routines, events and triggers, then verification.
//!
//! Entry point: [`restore`]. Progress is published through [`Progress`] (atomics a UI polls);
//! the outcome is a [`RestoreReport`].

pub mod checkpoint;
mod conn;
mod convert;
mod data;
mod digest;
mod error;
pub mod failpoint;
pub mod fast_target;
pub mod fingerprint;
mod indexes;
mod post;
mod progress;
mod report;
mod restore;
mod resume;
mod retry;
pub mod rows;
mod schema;
mod sql;
mod stream;
mod stream_ddl;
mod stream_queue;

pub use conn::{connect, ConnectOptions};
pub use digest::{encode_row, table_digest};
pub use error::{LoadError, Result, Transient};
pub use progress::{Phase, Progress};
pub use report::{PhaseSeconds, RestoreReport, TableReport};
pub use restore::{restore, RestoreOptions, VerifyMode};
pub use rows::{RowConn, RowConnector, RowRef, RowStream, Values};
pub use stream::restore_dump;
