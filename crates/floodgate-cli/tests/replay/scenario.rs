//! The shared source: a snapshot, then a write workload spread over several binary logs.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use floodgate_sandbox::{Sandbox, SandboxOptions};

use crate::common::*;

pub struct Scenario {
    pub source: Sandbox,
    /// `floodgate dump` of sbtest before the workload (records the binlog position).
    pub backup: PathBuf,
    /// The source's binary logs, in order.
    pub binlogs: Vec<PathBuf>,
    /// A UTC time between the two halves of the workload.
    pub midway: String,
    _dir: tempfile::TempDir,
}

fn sysbench(server: &Sandbox, args: &[&str]) {
    let out = Command::new("sysbench")
        .args(["oltp_write_only", "--db-driver=mysql", "--mysql-user=root", "--mysql-db=sbtest", "--tables=4"])
        .arg("--table-size=2000")
        .arg(format!("--mysql-socket={}", server.socket().display()))
        .args(args)
        .output()
        .expect("sysbench (scripts/test installs it)");
    assert!(out.status.success(), "sysbench: {}", String::from_utf8_lossy(&out.stderr));
}

/// DDL, tables without keys, a unique string key, and a foreign key, between sysbench runs.
const STATEMENTS: &str = "
    CREATE TABLE sbtest.nopk (a INT, b VARCHAR(20));
    INSERT INTO sbtest.nopk VALUES (1, 'x'), (2, 'y'), (1, 'z'), (3, NULL);
    UPDATE sbtest.nopk SET b = 'w' WHERE a = 1;
    DELETE FROM sbtest.nopk WHERE a = 2;
    ALTER TABLE sbtest.sbtest1 ADD COLUMN extra INT NOT NULL DEFAULT 7, ADD INDEX (extra);
    UPDATE sbtest.sbtest1 SET extra = id % 13 WHERE id < 300;
    CREATE TABLE sbtest.names (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE);
    INSERT INTO sbtest.names VALUES (1, 'a'), (2, 'b'), (3, 'c');
    DELETE FROM sbtest.names WHERE id = 1;
    INSERT INTO sbtest.names VALUES (4, 'A');
    UPDATE sbtest.names SET name = 'a' WHERE id = 4;
    CREATE TABLE sbtest.parent (id INT PRIMARY KEY);
    CREATE TABLE sbtest.child (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES sbtest.parent (id));
    INSERT INTO sbtest.parent VALUES (1), (2);
    INSERT INTO sbtest.child VALUES (10, 1), (11, 2);
    DELETE FROM sbtest.child WHERE p = 1;
    DELETE FROM sbtest.parent WHERE id = 1;
    CREATE TABLE sbtest.scratch (id INT PRIMARY KEY) ENGINE=MyISAM;
    INSERT INTO sbtest.scratch VALUES (1), (2);
    DROP TABLE sbtest.scratch;
    DROP TABLE sbtest.sbtest4;
";

/// Transactions on a table without keys and on foreign-key tables from several sessions at
/// once, so the source group-commits some of them (the scheduler lets a group share table
/// locks) while others conflict on the same rows and must keep their order.
fn concurrent_keyless_writes(source: &Sandbox, writer: u32) {
    // READ COMMITTED: a scan locks only the rows it changes, so writers of different rows of
    // the keyless table do not wait for each other and can commit in one group.
    let mut script = String::from("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED;\n");
    for i in 0..150 {
        let id = 1000 + writer * 1000 + i;
        script.push_str(&format!(
            "BEGIN; INSERT INTO sbtest.nopk VALUES ({writer}, 'w{writer}-{i}'); \
             INSERT INTO sbtest.parent VALUES ({id}); INSERT INTO sbtest.child VALUES ({id}, {id}); COMMIT;\n"
        ));
        if i % 5 == 0 {
            // The same row from every writer: these conflict and must keep their order.
            script.push_str(&format!("UPDATE sbtest.nopk SET b = 'by {writer}-{i}' WHERE a = 3;\n"));
        }
        if i % 3 == 0 {
            script.push_str(&format!("DELETE FROM sbtest.nopk WHERE a = {writer} LIMIT 1;\n"));
        }
    }
    sql(source, &script);
}

pub fn scenario() -> &'static Scenario {
    static S: OnceLock<Scenario> = OnceLock::new();
    S.get_or_init(build)
}

fn build() -> Scenario {
    let source = Sandbox::start(&SandboxOptions { binlog: true, ..options() }).unwrap();
    sql(&source, "CREATE DATABASE sbtest");
    sysbench(&source, &["prepare"]);
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let socket = source.socket().display().to_string();
    let out = floodgate(&["dump", "-S", &socket, "-u", "root", "-o", &backup.display().to_string(), "sbtest"]);
    assert!(out.status.success(), "{}", stderr(&out));

    sysbench(&source, &["--threads=4", "--time=3", "run"]);
    sql(&source, "FLUSH BINARY LOGS");
    sql(&source, STATEMENTS);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let midway = sql(&source, "SELECT UTC_TIMESTAMP()").trim().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // Make the source collect commits into groups (MariaDB's binlog_commit_wait_*), as a busy
    // primary does on its own: the replay may run a group's table-locked transactions together.
    sql(&source, "SET GLOBAL binlog_commit_wait_count = 4, GLOBAL binlog_commit_wait_usec = 20000");
    std::thread::scope(|scope| {
        for writer in 0..4 {
            let source = &source;
            scope.spawn(move || concurrent_keyless_writes(source, writer));
        }
        sysbench(&source, &["--threads=4", "--time=3", "--tables=3", "run"]);
    });
    sql(&source, "SET GLOBAL binlog_commit_wait_count = 0, GLOBAL binlog_commit_wait_usec = 100000");
    sql(&source, "FLUSH BINARY LOGS");
    sql(&source, "INSERT INTO sbtest.nopk VALUES (9, 'last'); UPDATE sbtest.names SET name = 'z' WHERE id = 2");

    let mut binlogs: Vec<PathBuf> = std::fs::read_dir(source.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("binlog.") && !n.ends_with(".index")
        })
        .collect();
    binlogs.sort();
    assert!(binlogs.len() >= 3, "{binlogs:?}");
    Scenario { source, backup, binlogs, midway, _dir: dir }
}

impl Scenario {
    pub fn binlog_args(&self) -> Vec<String> {
        self.binlogs.iter().map(|p| p.display().to_string()).collect()
    }

    /// A fresh target holding the restored snapshot.
    pub fn restored_target(&self) -> Sandbox {
        let target = Sandbox::start(&options()).unwrap();
        let out = restore(&target, &self.backup, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        target
    }

    /// The snapshot's position from the manifest.
    pub fn start(&self) -> (String, u64) {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.backup.join("manifest.json")).unwrap()).unwrap();
        (
            manifest["source"]["binlog_file"].as_str().unwrap().to_string(),
            manifest["source"]["binlog_position"].as_u64().unwrap(),
        )
    }
}

/// `floodgate replay-binlog` of the scenario's files into `target` with `extra` flags.
pub fn replay(target: &Sandbox, files: &[String], extra: &[&str]) -> std::process::Output {
    let socket = target.socket().display().to_string();
    let mut args: Vec<&str> = vec!["replay-binlog"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["-S", &socket, "-u", "root", "--progress", "plain"]);
    args.extend_from_slice(extra);
    floodgate(&args)
}
