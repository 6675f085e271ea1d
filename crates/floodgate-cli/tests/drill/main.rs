//! End-to-end tests of `floodgate drill`: the real binary against real sandboxes, with
//! backups made by the real tools (mariadb-dump, mydumper, floodgate dump) and the checked-in
//! mydumper 0.21 fixtures. Every report is validated against docs/drill-report.schema.json
//! with Python's `jsonschema` (scripts/test installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../restore/common.rs"]
mod common;
mod failures;
mod formats;
mod helpers;
mod lifecycle;
