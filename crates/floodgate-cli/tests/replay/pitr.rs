//! Replays that must equal the source, or serial replay with the same stop.

use std::process::{Command, Stdio};

use crate::common::*;
use crate::scenario::{replay, scenario};

#[test]
fn snapshot_plus_replay_equals_the_source_for_several_thread_counts() {
    let s = scenario();
    let backup = s.backup.display().to_string();
    let expected = fingerprint(&s.source, "sbtest");
    let dir = tempfile::tempdir().unwrap();
    for threads in ["1", "3", "8"] {
        let target = s.restored_target();
        let report = dir.path().join(format!("report-{threads}.json"));
        let report_arg = report.display().to_string();
        let out =
            replay(&target, &s.binlog_args(), &["--from-backup", &backup, "-t", threads, "--report", &report_arg]);
        assert!(out.status.success(), "-t {threads}: {}", stderr(&out));
        assert_same(&expected, &fingerprint(&target, "sbtest"));
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        if threads == "8" {
            // The keyless and foreign-key writers were group-committed on the source: some of
            // their table-locked transactions shared a lock, and the result is still exact.
            assert!(report["group_shared_locks"].as_u64().unwrap() > 0, "{report}");
        }
        // A second run finds everything applied and changes nothing.
        let again = replay(&target, &s.binlog_args(), &["--from-backup", &backup, "-t", threads]);
        assert!(again.status.success(), "{}", stderr(&again));
        assert!(stderr(&again).contains("replayed 0 transactions"), "{}", stderr(&again));
        assert_same(&expected, &fingerprint(&target, "sbtest"));
    }
}

/// Serial replay as an operator would type it: mariadb-binlog ... | mariadb.
fn serial_replay(target: &floodgate_sandbox::Sandbox, files: &[String], start: u64, stop_datetime: &str) {
    let mut binlog = Command::new("mariadb-binlog");
    binlog.env("TZ", "UTC").arg(format!("--start-position={start}")).arg(format!("--stop-datetime={stop_datetime}"));
    let text = binlog.args(files).output().unwrap();
    assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
    let mut apply = Command::new("mariadb")
        .args(["--no-defaults", "-uroot", "--binary-mode"])
        .arg(format!("--socket={}", target.socket().display()))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut apply.stdin.take().unwrap(), &text.stdout).unwrap();
    let applied = apply.wait_with_output().unwrap();
    assert!(applied.status.success(), "serial replay: {}", String::from_utf8_lossy(&applied.stderr));
}

#[test]
fn stop_datetime_half_way_equals_serial_replay_with_the_same_stop() {
    let s = scenario();
    let (file, position) = s.start();
    let files: Vec<String> = s.binlog_args().into_iter().skip_while(|f| !f.ends_with(&format!("/{file}"))).collect();
    let serial = s.restored_target();
    serial_replay(&serial, &files, position, &s.midway);
    let parallel = s.restored_target();
    let out = replay(
        &parallel,
        &files,
        &["--start-position", &position.to_string(), "--stop-datetime", &s.midway, "-t", "4"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let half = fingerprint(&parallel, "sbtest");
    assert_same(&fingerprint(&serial, "sbtest"), &half);
    assert!(!fingerprint(&s.source, "sbtest").differences(&half).is_empty(), "the stop had no effect");
}

#[test]
fn an_interrupted_replay_resumes_exactly() {
    let s = scenario();
    let backup = s.backup.display().to_string();
    let target = s.restored_target();
    // Killed mid-way (kill -9: no chance to write anything more), then run again.
    let socket = target.socket().display().to_string();
    let mut args = vec!["replay-binlog".to_string()];
    args.extend(s.binlog_args());
    args.extend(
        ["-S", &socket, "-u", "root", "--progress", "none", "--from-backup", &backup, "-t", "4"].map(String::from),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_floodgate")).args(&args).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().unwrap();
    child.wait().unwrap();
    // (The tables may not exist yet if the machine is slow: count them without failing.)
    let applied =
        sql(&target, "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'floodgate'");
    eprintln!("checkpoint tables when killed: {applied}");
    let out = replay(&target, &s.binlog_args(), &["--from-backup", &backup, "-t", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(&s.source, "sbtest"), &fingerprint(&target, "sbtest"));
}

#[test]
fn stop_position_then_the_rest_equals_the_source() {
    let s = scenario();
    let backup = s.backup.display().to_string();
    let target = s.restored_target();
    // Stop inside the last file's first half, then continue from the checkpoint.
    let last = s.binlogs.last().unwrap();
    let half = std::fs::metadata(last).unwrap().len() / 2;
    let out = replay(&target, &s.binlog_args(), &["--from-backup", &backup, "--stop-position", &half.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = replay(&target, &s.binlog_args(), &["--from-backup", &backup]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("already applied"), "{}", stderr(&out));
    assert_same(&fingerprint(&s.source, "sbtest"), &fingerprint(&target, "sbtest"));
}

/// A standalone DDL commits by itself, before its checkpoint row can: a replay killed in
/// between left the ALTER applied and unrecorded. It records that it is about to run first,
/// so the resumed replay knows the ALTER may have run and takes "duplicate column" for done.
#[test]
fn a_ddl_applied_before_its_checkpoint_is_not_applied_twice() {
    let s = scenario();
    let backup = s.backup.display().to_string();
    let target = s.restored_target();
    let files = s.binlog_args();
    // Where the ALTER's transaction starts: the `# at` before its GTID event.
    let (index, start) = files
        .iter()
        .enumerate()
        .find_map(|(i, f)| {
            let text = Command::new("mariadb-binlog").arg(f).output().unwrap().stdout;
            let text = String::from_utf8_lossy(&text);
            let alter = text.find("ALTER TABLE sbtest.sbtest1 ADD COLUMN extra")?;
            let gtid = text[..alter].rfind("GTID ")?;
            let at = text[..gtid].rfind("# at ")?;
            let pos: u64 = text[at + 5..].split_whitespace().next()?.parse().ok()?;
            Some((i, pos))
        })
        .expect("the scenario's ALTER is in its binary logs");
    let out = replay(&target, &files[..=index], &["--from-backup", &backup, "--stop-position", &start.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The kill's aftermath: the ALTER ran, and only its intent was recorded.
    let name = std::path::Path::new(&files[index]).file_name().unwrap().to_string_lossy().into_owned();
    sql(
        &target,
        &format!(
            "ALTER TABLE sbtest.sbtest1 ADD COLUMN extra INT NOT NULL DEFAULT 7, ADD INDEX (extra); \
             REPLACE INTO floodgate.binlog_checkpoint (id, file, pos) VALUES (2, '{name}', {start})"
        ),
    );
    let out = replay(&target, &files, &["--from-backup", &backup, "-t", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(&s.source, "sbtest"), &fingerprint(&target, "sbtest"));
}
