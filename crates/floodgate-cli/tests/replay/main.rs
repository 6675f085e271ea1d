//! End-to-end tests of `floodgate replay-binlog` against real servers: a source with a row
//! format binary log runs sysbench writes, DDL and statements on tables without keys after a
//! `floodgate dump` snapshot; the snapshot restored on a target plus the replay must equal
//! the source, and stopping part-way must equal serial replay with the same stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../restore/common.rs"]
#[allow(dead_code)]
mod common;

mod bad_input;
mod pitr;
mod s3;
mod scenario;
