//! Targets that are not fit for a restore are refused before anything is written: a
//! read-only server, a running replica (unless --allow-replica); and a statement the target
//! cannot take is reported as that, not retried as a lost connection.

use std::process::Command;

use floodgate_sandbox::Sandbox;

use crate::common::*;

fn schemas(server: &Sandbox) -> String {
    sql(server, "SELECT GROUP_CONCAT(SCHEMA_NAME ORDER BY 1) FROM information_schema.SCHEMATA").trim().to_string()
}

#[test]
fn a_read_only_target_or_a_running_replica_is_refused_before_any_change() {
    let fixture = repo_root().join("fixtures/mydumper-modern/sql");
    let target = Sandbox::start(&options()).unwrap();
    let before = schemas(&target);

    sql(&target, "SET GLOBAL read_only = 1");
    let out = restore(&target, &fixture, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("is read-only"), "{}", stderr(&out));
    assert_eq!(schemas(&target), before, "nothing was written");
    sql(&target, "SET GLOBAL read_only = 0");

    // A replication SQL thread running (with nothing to apply) makes it a replica.
    sql(&target, "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=9, MASTER_USER='none'; START SLAVE SQL_THREAD");
    let out = restore(&target, &fixture, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a replica") && stderr(&out).contains("--allow-replica"), "{}", stderr(&out));
    assert_eq!(schemas(&target), before, "nothing was written");
    let out = restore(&target, &fixture, &["--allow-replica"]);
    assert!(out.status.success(), "{}", stderr(&out));
    sql(&target, "STOP SLAVE");
}

#[test]
fn a_statement_larger_than_max_allowed_packet_is_named_not_retried() {
    let db = "unfit_packet";
    load_awkward(db);
    grow_bulk(source(), db, 30000);
    // INSERT IGNORE is not converted to LOAD DATA rows: it runs as written, one 2 MB statement.
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("big.sql");
    let out = Command::new("mariadb-dump")
        .args(["--no-defaults", "-uroot", "--insert-ignore", "--net-buffer-length=16M", "--databases", db])
        .arg(format!("--socket={}", source().socket().display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&dump, out.stdout).unwrap();
    let target = Sandbox::start(&options()).unwrap();
    sql(&target, "SET GLOBAL max_allowed_packet = 1048576");
    let started = std::time::Instant::now();
    let out = restore(&target, &dump, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("larger than 1048576 bytes")
            && err.contains("the target's max_allowed_packet")
            && err.contains("big.sql"),
        "{err}"
    );
    assert!(!err.contains("retrying"), "not retried as a lost connection: {err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
}

/// A view or routine whose DEFINER has no account on the target would be created with a
/// note and fail when used: the restore names each such object instead (exit 1, the rows
/// kept and checkpointed), and the same command with --skip-definer finishes it; --definer
/// names another account.
#[test]
fn objects_whose_definer_is_missing_are_named_and_can_be_redefined() {
    let db = "unfit_definer";
    sql(
        source(),
        &format!(
            "DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`; \
             CREATE TABLE `{db}`.t (id INT PRIMARY KEY); INSERT INTO `{db}`.t VALUES (1), (2); \
             CREATE USER IF NOT EXISTS 'ghost'@'%'; GRANT ALL ON `{db}`.* TO 'ghost'@'%'; \
             CREATE DEFINER='ghost'@'%' VIEW `{db}`.v AS SELECT COUNT(*) AS n FROM `{db}`.t; \
             CREATE DEFINER='ghost'@'%' FUNCTION `{db}`.two() RETURNS INT DETERMINISTIC RETURN 2;"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("definer.sql");
    let out = Command::new("mariadb-dump")
        .args(["--no-defaults", "-uroot", "--routines", "--databases", db])
        .arg(format!("--socket={}", source().socket().display()))
        .output()
        .unwrap();
    std::fs::write(&dump, out.stdout).unwrap();

    let target = Sandbox::start(&options()).unwrap();
    let out = restore(&target, &dump, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("view `{db}`.`v` (DEFINER=`ghost`@`%`)")), "{err}");
    assert!(err.contains(&format!("function `{db}`.`two`")) && err.contains("--skip-definer"), "{err}");
    assert_eq!(sql(&target, &format!("SELECT COUNT(*) FROM `{db}`.t")).trim(), "2", "the rows are in");
    let out = restore(&target, &dump, &["--skip-definer"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sql(&target, &format!("SELECT n FROM `{db}`.v")).trim(), "2", "the view works");
    assert_eq!(
        sql(&target, &format!("SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{db}'")).trim(),
        "root@localhost"
    );

    let other = Sandbox::start(&options()).unwrap();
    sql(&other, "CREATE USER 'app'@'localhost'");
    let out = restore(&other, &dump, &["--definer", "app@localhost"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let definers =
        sql(&other, &format!("SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}'"));
    assert_eq!(definers.trim(), "app@localhost");
}
