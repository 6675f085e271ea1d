//! `floodgate dump` takes one consistent snapshot while writes go on: restoring it and
//! replaying the source's binary log from the position the manifest records gives exactly
//! the source's final data. A torn snapshot (tables from different moments) would not.

use std::process::Command;

use floodgate_sandbox::{Sandbox, SandboxOptions};

use crate::common::*;

fn sysbench(server: &Sandbox, args: &[&str]) -> std::process::Child {
    Command::new("sysbench")
        .args([
            "oltp_write_only",
            "--db-driver=mysql",
            "--mysql-user=root",
            "--mysql-db=sbtest",
            "--tables=4",
            "--table-size=5000",
        ])
        .arg(format!("--mysql-socket={}", server.socket().display()))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sysbench (scripts/test installs it)")
}

#[test]
fn dump_under_sysbench_writes_is_a_consistent_snapshot() {
    let source = Sandbox::start(&SandboxOptions { binlog: true, ..options() }).unwrap();
    sql(&source, "CREATE DATABASE sbtest");
    let prepare = sysbench(&source, &["prepare"]).wait_with_output().unwrap();
    assert!(prepare.status.success(), "{}", String::from_utf8_lossy(&prepare.stderr));

    let writes = sysbench(&source, &["--threads=2", "--time=6", "run"]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let socket = source.socket().display().to_string();
    let out = floodgate(&[
        "dump",
        "-S",
        &socket,
        "-u",
        "root",
        "-o",
        &backup.display().to_string(),
        "-t",
        "4",
        "--chunk-size",
        "64KiB",
        "sbtest",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let writes = writes.wait_with_output().unwrap();
    assert!(writes.status.success(), "{}", String::from_utf8_lossy(&writes.stderr));

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).unwrap()).unwrap();
    let file = manifest["source"]["binlog_file"].as_str().expect("binlog file recorded").to_string();
    let position = manifest["source"]["binlog_position"].as_u64().expect("binlog position recorded");
    assert!(manifest["source"]["gtid_executed"].as_str().is_some_and(|g| !g.is_empty()));

    let target = Sandbox::start(&options()).unwrap();
    let out = restore(&target, &backup, &["--verify", "digest"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Replay everything the source logged after the snapshot, as point-in-time recovery would.
    let mut logs: Vec<_> = std::fs::read_dir(source.dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("binlog.") && !n.to_string_lossy().ends_with(".index"))
        })
        .collect();
    logs.sort();
    let first = logs
        .iter()
        .position(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == file))
        .expect("recorded binlog exists");
    let mut binlog = Command::new("mariadb-binlog");
    binlog.arg(format!("--start-position={position}")).arg(&logs[first]);
    let mut text = binlog.output().unwrap().stdout;
    for later in &logs[first + 1..] {
        text.extend(Command::new("mariadb-binlog").arg(later).output().unwrap().stdout);
    }
    let mut apply = Command::new("mariadb")
        .args(["--no-defaults", "-uroot"])
        .arg(format!("--socket={}", target.socket().display()))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut apply.stdin.take().unwrap(), &text).unwrap();
    let applied = apply.wait_with_output().unwrap();
    assert!(applied.status.success(), "replaying the binlog: {}", String::from_utf8_lossy(&applied.stderr));

    assert_same(&fingerprint(&source, "sbtest"), &fingerprint(&target, "sbtest"));
}
