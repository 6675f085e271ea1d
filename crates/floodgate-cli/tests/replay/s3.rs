//! Binary logs kept in object storage are replayed from there (s3s-fs, a real S3-compatible
//! server on a loopback port): the snapshot plus the replay equals the source.

use std::process::Command;

use floodgate_sandbox::S3Sandbox;

use crate::common::*;
use crate::scenario::scenario;

#[test]
fn binary_logs_in_a_bucket_replay_to_the_source() {
    let s3 = S3Sandbox::start().unwrap();
    s3.create_bucket("binlogs").unwrap();
    point_storage_at(&s3);
    let s = scenario();
    let mut urls = Vec::new();
    for file in &s.binlogs {
        let url = format!("s3://binlogs/primary/{}", file.file_name().unwrap().to_string_lossy());
        floodgate_storage::upload(&url, std::fs::File::open(file).unwrap()).unwrap();
        urls.push(url);
    }
    let target = s.restored_target();
    let socket = target.socket().display().to_string();
    let backup = s.backup.display().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_floodgate"));
    cmd.arg("replay-binlog").args(&urls);
    cmd.args(["-S", &socket, "-u", "root", "--progress", "plain", "--from-backup", &backup, "-t", "3"]);
    cmd.args(["--s3-endpoint", &s3.endpoint()]);
    for (k, v) in s3.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(&s.source, "sbtest"), &fingerprint(&target, "sbtest"));
}
