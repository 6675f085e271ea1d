//! The one restore engine: restores a backup (a planned directory, or a mysqldump stream)
//! into a target server.
//!
//! The phases follow DESIGN.md: target checks, schema (secondary indexes of large tables
//! deferred), data over N connections (largest tables first, several tables and several
//! chunks of one table at once, one transaction per chunk with its checkpoint row), each
//! table's deferred indexes as soon as its last chunk lands, then routines and events,
//! views, triggers, then verification.
//!
//! Entry point: [`restore`]. Progress is published through [`Progress`] (atomics a UI polls);
//! the outcome is a [`RestoreReport`].
//!
//! Layers, each using only those below it: `engine` (the phases) over the two sources
//! (`planned`, `stream`) and the post-data and verification phases (`post`, `verify`); those
//! over the shared machinery (`ddl`, `queue`, `worker`, `job`, `indexes`, `tables`,
//! `session`); those over the server-facing helpers (`target`, `checkpoint`, `resume`,
//! `convert`, `sql`).

mod accounts;
pub mod checkpoint;
mod convert;
mod ddl;
mod engine;
mod error;
pub mod failpoint;
pub mod fast_target;
pub mod fingerprint;
mod grant_tables;
mod gtid;
mod indexes;
mod inserts;
mod job;
mod planned;
mod post;
pub mod privileges;
mod queue;
mod report;
mod resume;
mod session;
mod sql;
mod stream;
mod tables;
mod target;
mod throttle;
mod verify;
mod worker;

pub use engine::restore;
pub use error::{LoadError, Result};
pub use floodgate_conn::ConnectOptions;
pub use floodgate_pipeline::{Phase, Progress};
pub use report::{PhaseSeconds, RestoreReport, TableReport};
pub use session::{RestoreOptions, VerifyMode};
pub use throttle::{StatusLimit, ThrottleReport};
pub use verify::table_digest;
