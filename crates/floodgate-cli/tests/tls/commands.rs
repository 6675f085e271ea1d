//! Every command that talks to a server does it over TLS as `--ssl-mode` says: dump (its
//! row reader too), restore (with `--verify digest`), replay-binlog and drill with CONN.
//! The servers require secure transport, so a command that succeeds there spoke TLS.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::certs::certs;
use crate::common::{assert_same, fingerprint, repo_root, sql, stderr};
use crate::{assert_fails, misnamed, over_tcp, plain, strs, verified, verify};

/// The awkward data set as `db` on `server`, kept out of its binary log.
fn load_awkward(server: &floodgate_sandbox::Sandbox, db: &str) {
    let text = std::fs::read_to_string(repo_root().join("fixtures/awkward/source.sql")).unwrap();
    sql(server, &format!("SET SESSION sql_log_bin = 0;\n{}", text.replace("`awkward`", &format!("`{db}`"))));
}

/// `floodgate dump` of `db` from `server` over TCP with `tls`, into a new directory.
fn dump(server: &floodgate_sandbox::Sandbox, db: &str, tls: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup");
    let o = out.display().to_string();
    let res = over_tcp(server, &["dump", "-v", "-o", &o, "--progress", "none", "-t", "2", db], tls);
    assert!(res.status.success(), "{}", stderr(&res));
    // The rows came through floodgate's own reader, over TLS, not the driver's.
    assert!(!stderr(&res).contains("rows are read through mysql_async"), "{}", stderr(&res));
    (dir, out)
}

fn restore(server: &floodgate_sandbox::Sandbox, backup: &Path, tls: &[&str]) -> std::process::Output {
    let b = backup.display().to_string();
    over_tcp(server, &["restore", &b, "--progress", "plain", "-t", "3", "--verify", "digest"], tls)
}

#[test]
fn verified_tls_dump_and_restore_are_identical() {
    let db = "tls_rt";
    load_awkward(verified(), db);
    let ca = &certs().ca;
    let (_tmp, backup) = dump(verified(), db, &strs(&verify("VERIFY_IDENTITY", ca)));
    // The target's certificate names another host: VERIFY_CA checks the CA only.
    let out = restore(misnamed(), &backup, &strs(&verify("VERIFY_CA", ca)));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(verified(), db), &fingerprint(misnamed(), db));
}

#[test]
fn required_tls_restores_a_mysqldump_file_identically() {
    let db = "tls_md";
    load_awkward(verified(), db);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump.sql");
    let status = Command::new("mariadb-dump")
        .args(["--no-defaults", "-uroot", "--routines", "--events", "--triggers", "--databases", db])
        .arg(format!("--socket={}", verified().socket().display()))
        .arg(format!("--result-file={}", file.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let out = restore(misnamed(), &file, &["--ssl-mode", "REQUIRED"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(verified(), db), &fingerprint(misnamed(), db));
}

/// A small database on `server` that dumps quickly.
fn small(server: &floodgate_sandbox::Sandbox, db: &str) {
    sql(
        server,
        &format!(
            "SET SESSION sql_log_bin = 0; CREATE DATABASE {db}; \
             CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20)); \
             INSERT INTO {db}.t VALUES (1, 'one'), (2, 'two'), (3, NULL)"
        ),
    );
}

#[test]
fn preferred_is_the_default_and_falls_back_to_clear_only_without_tls() {
    small(verified(), "tls_pref");
    small(plain(), "tls_pref");
    // No TLS flag: PREFERRED. The first server refuses anything but TLS, the second has none.
    dump(verified(), "tls_pref", &[]);
    dump(plain(), "tls_pref", &[]);
}

#[test]
fn replay_binlog_honours_ssl_mode() {
    let server = verified();
    sql(server, "FLUSH BINARY LOGS");
    let file = sql(server, "SHOW MASTER STATUS").split_whitespace().next().unwrap().to_string();
    sql(
        server,
        "CREATE DATABASE tls_rb; CREATE TABLE tls_rb.t (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO tls_rb.t VALUES (1, 'a'), (2, 'b'); UPDATE tls_rb.t SET v = 'c' WHERE id = 2",
    );
    sql(server, "FLUSH BINARY LOGS");
    let binlog = server.dir().join(&file).display().to_string();
    let base = ["replay-binlog", binlog.as_str(), "--progress", "plain"];

    let out = over_tcp(misnamed(), &base, &["--ssl-mode", "DISABLED"]);
    assert_fails(&out, 1, &["not encrypted, --ssl-mode DISABLED", "require_secure_transport"]);
    let out = over_tcp(misnamed(), &base, &strs(&verify("VERIFY_CA", &certs().other_ca)));
    assert_fails(&out, 1, &["not signed by the CA of --ssl-ca"]);
    let out = over_tcp(misnamed(), &base, &strs(&verify("VERIFY_CA", &certs().ca)));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sql(misnamed(), "SELECT id, v FROM tls_rb.t ORDER BY id"), "1\ta\n2\tc\n");
}

#[test]
fn drill_with_conn_honours_ssl_mode() {
    small(plain(), "tls_drill");
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let socket = plain().socket().display().to_string();
    let out = crate::common::floodgate(&[
        "dump",
        "-S",
        &socket,
        "-u",
        "root",
        "-o",
        &backup.display().to_string(),
        "--progress",
        "none",
        "tls_drill",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let b = backup.display().to_string();
    // The target holds other tests' databases: --overwrite lets the drill use it anyway.
    let base = ["drill", b.as_str(), "--progress", "plain", "--overwrite"];

    let out = over_tcp(misnamed(), &base, &strs(&verify("VERIFY_IDENTITY", &certs().ca)));
    assert_fails(&out, 1, &["not issued for \"127.0.0.1\""]);
    let out = over_tcp(misnamed(), &base, &strs(&verify("VERIFY_CA", &certs().ca)));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PASSED"));
    assert_eq!(sql(misnamed(), "SELECT COUNT(*) FROM tls_drill.t"), "3\n");

    // TLS flags say how to reach a server, not which: without one they are a usage error.
    let out = crate::run(&["drill", &b, "--ssl-mode", "REQUIRED"], "");
    assert_fails(&out, 2, &["--ssl-mode is for a server given with connection flags"]);
}
