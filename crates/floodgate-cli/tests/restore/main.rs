//! End-to-end tests of `floodgate restore` against real servers started by floodgate-sandbox,
//! with backups made by the real tools. One binary, shared servers, a database per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod common;
mod consistency;
mod crafted;
mod credentials;
mod differential;
mod into;
mod live;
mod mydumper;
mod mysqldump;
mod native;
mod ownership;
mod resume;
mod s3;
mod shell;
mod unfit_targets;
