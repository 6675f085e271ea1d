//! floodgate's native format: dump, verify, inspect and restore, and every way a backup can
//! be damaged.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// `floodgate dump` of `db` from the source into a new directory.
pub(crate) fn dump(db: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup");
    let socket = source().socket().display().to_string();
    let o = out.display().to_string();
    let mut args = vec!["dump", "-S", &socket, "-u", "root", "-o", &o, "--progress", "none", db];
    args.extend_from_slice(extra);
    let res = floodgate(&args);
    assert!(res.status.success(), "{}", stderr(&res));
    (dir, out)
}

pub(crate) fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

pub(crate) fn write_manifest(dir: &Path, m: &serde_json::Value) {
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(m).unwrap()).unwrap();
}

/// The chunk files of `table` in the manifest.
pub(crate) fn chunk_files(dir: &Path, table: &str) -> Vec<PathBuf> {
    let m = manifest(dir);
    let t = m["databases"][0]["tables"].as_array().unwrap().iter().find(|t| t["name"] == table).unwrap().clone();
    t["chunks"].as_array().unwrap().iter().map(|c| dir.join(c["file"].as_str().unwrap())).collect()
}

#[test]
fn round_trip_is_exact_and_digests_match() {
    let db = "nat_rt";
    load_awkward(db);
    // Chunks are planned from the server's table statistics, which lag a fresh load.
    sql(source(), &format!("ANALYZE TABLE `{db}`.bulk"));
    let (_tmp, backup) = dump(db, &["--chunk-size", "16KiB", "-t", "3"]);
    assert!(chunk_files(&backup, "bulk").len() > 2, "bulk is split by key range");
    let out = floodgate(&["verify", &backup.display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = restore(target(), &backup, &["--verify", "digest", "-t", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("restored"), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(target(), db));
    let out = floodgate(&["inspect", &backup.display().to_string()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("format: floodgate/1"));
}

/// `--compress-level 0` stores rows in zstd frames of raw blocks: verify and restore read
/// them like any other chunk, and a flipped bit is still caught.
#[test]
fn stored_chunks_round_trip() {
    let db = "nat_store";
    load_awkward(db);
    let (_tmp, backup) = dump(db, &["--compress-level", "0", "-t", "2"]);
    let file = &chunk_files(&backup, "strings")[0];
    let stored = std::fs::read(file).unwrap();
    assert!(stored.windows(b"quote".len()).any(|w| w == b"quote"), "rows are stored as they are");
    let out = floodgate(&["verify", &backup.display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fresh = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let out = restore(&fresh, &backup, &["--verify", "digest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(&fresh, db));
    let mut flipped = stored.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x01;
    std::fs::write(file, flipped).unwrap();
    verify_fails(&backup, "strings");
}

/// A fresh target, a restore expected to fail with `code`, naming `needle`, and no row of
/// `table` committed.
fn restore_fails(backup: &Path, code: i32, needle: &str, db: &str, table: &str) {
    let fresh = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let out = restore(&fresh, backup, &["-t", "2"]);
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    assert!(stderr(&out).contains(needle), "expected {needle:?} in: {}", stderr(&out));
    let exists = sql(
        &fresh,
        &format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='{db}' AND TABLE_NAME='{table}'"),
    );
    if exists.trim() == "1" {
        assert_eq!(
            sql(&fresh, &format!("SELECT COUNT(*) FROM `{db}`.`{table}`")).trim(),
            "0",
            "no row of the bad table committed"
        );
    }
}

fn verify_fails(backup: &Path, needle: &str) {
    let out = floodgate(&["verify", &backup.display().to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(needle), "expected {needle:?} in: {}", stderr(&out));
}

#[test]
fn flipped_bit_is_caught_before_commit() {
    let db = "nat_bit";
    load_awkward(db);
    let (_tmp, backup) = dump(db, &[]);
    let victim = chunk_files(&backup, "bulk")[0].clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&victim, bytes).unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    verify_fails(&backup, &name);
    restore_fails(&backup, 3, &name, db, "bulk");
}

#[test]
fn truncated_chunk() {
    let db = "nat_trunc";
    load_awkward(db);
    let (_tmp, backup) = dump(db, &[]);
    let victim = chunk_files(&backup, "orders")[0].clone();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() - 7]).unwrap();
    verify_fails(&backup, "000000.tsv.zst");
    restore_fails(&backup, 3, "000000.tsv.zst", db, "orders");
}

#[test]
fn missing_chunk() {
    let db = "nat_missing";
    load_awkward(db);
    let (_tmp, backup) = dump(db, &[]);
    let victim = chunk_files(&backup, "customers")[0].clone();
    std::fs::remove_file(&victim).unwrap();
    verify_fails(&backup, "missing");
    let out = restore(target(), &backup, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("000000.tsv.zst") && stderr(&out).contains("missing"), "{}", stderr(&out));
}

#[test]
fn manifest_counts_that_disagree() {
    let db = "nat_counts";
    load_awkward(db);
    let (_tmp, backup) = dump(db, &[]);
    let mut m = manifest(&backup);
    let tables = m["databases"][0]["tables"].as_array_mut().unwrap();
    let t = tables.iter_mut().find(|t| t["name"] == "strings").unwrap();
    t["chunks"][0]["rows"] = serde_json::json!(9);
    t["rows"] = serde_json::json!(9);
    write_manifest(&backup, &m);
    verify_fails(&backup, "holds 8 rows, the manifest says 9");
    restore_fails(&backup, 3, "manifest", db, "strings");
}

/// `--verify digest` reads every table back from the target (several at once) and names
/// each one whose rows differ from what the backup recorded.
#[test]
fn a_digest_that_differs_on_the_target_is_an_integrity_error() {
    let db = "nat_digest";
    load_awkward(db);
    let (_tmp, backup) = dump(db, &[]);
    let mut m = manifest(&backup);
    let tables = m["databases"][0]["tables"].as_array_mut().unwrap();
    for name in ["strings", "bulk"] {
        let t = tables.iter_mut().find(|t| t["name"] == name).unwrap();
        t["content_digest"] = serde_json::json!("0123456789abcdef0123456789abcdef");
    }
    write_manifest(&backup, &m);
    let fresh = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let out = restore(&fresh, &backup, &["--verify", "digest", "-t", "3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    for name in ["strings", "bulk"] {
        assert!(err.contains(&format!("`{db}`.`{name}`: content digest")), "{name}: {err}");
    }
    assert!(!err.contains("`orders`: content digest"), "{err}");
}

#[test]
fn manifest_pointing_outside_is_refused() {
    let db = "nat_escape";
    load_awkward(db);
    let (tmp, backup) = dump(db, &[]);
    std::fs::write(tmp.path().join("outside.tsv.zst"), b"x").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("outside.tsv.zst"), backup.join("link.tsv.zst")).unwrap();
    for bad in ["../outside.tsv.zst", "/etc/passwd", "link.tsv.zst"] {
        let mut m = manifest(&backup);
        let tables = m["databases"][0]["tables"].as_array_mut().unwrap();
        tables.iter_mut().find(|t| t["name"] == "docs").unwrap()["chunks"][0]["file"] = serde_json::json!(bad);
        write_manifest(&backup, &m);
        let out = restore(target(), &backup, &["--dry-run"]);
        assert_eq!(out.status.code(), Some(3), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("refusing unsafe path"), "{bad}: {}", stderr(&out));
        verify_fails(&backup, bad);
    }
}

#[test]
fn half_written_dump_without_manifest() {
    let db = "nat_half";
    load_awkward(db);
    let (_tmp, backup) = dump(db, &[]);
    std::fs::remove_file(backup.join("manifest.json")).unwrap();
    let out = restore(target(), &backup, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("did not finish"), "{}", stderr(&out));
    verify_fails(&backup, "did not finish");
}

#[test]
fn dump_refuses_a_non_empty_directory_and_unknown_databases() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let socket = source().socket().display().to_string();
    let o = dir.path().display().to_string();
    let out = floodgate(&["dump", "-S", &socket, "-u", "root", "-o", &o, "mysql"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not empty"));
    let o = dir.path().join("new").display().to_string();
    let out = floodgate(&["dump", "-S", &socket, "-u", "root", "-o", &o, "no_such_db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no such database: no_such_db"));
}

/// The workers read rows with floodgate-wire where it can log in (the root socket here; a
/// password over TCP) and with mysql_async where it cannot (an ed25519 account): every way
/// writes the same rows, byte for byte, and the restored data equals the source.
#[test]
fn dump_reads_the_same_rows_whatever_the_login() {
    let db = "nat_login";
    load_awkward(db);
    // A value of more than 16 MiB travels in several protocol packets.
    sql(
        source(),
        "CREATE TABLE `nat_login`.huge (id INT PRIMARY KEY, v LONGBLOB);
         INSERT INTO `nat_login`.huge VALUES (1, CONCAT(REPEAT('x', 17 << 20), '\\t\\n')), (2, 'small');
         ANALYZE TABLE `nat_login`.bulk;",
    );
    sql(
        source(),
        "INSTALL PLUGIN IF NOT EXISTS ed25519 SONAME 'auth_ed25519';
         CREATE USER IF NOT EXISTS 'dump_pw'@'127.0.0.1' IDENTIFIED BY 'pw secret';
         GRANT ALL ON *.* TO 'dump_pw'@'127.0.0.1';
         CREATE USER IF NOT EXISTS 'dump_ed'@'127.0.0.1' IDENTIFIED VIA ed25519 USING PASSWORD('ed secret');
         GRANT ALL ON *.* TO 'dump_ed'@'127.0.0.1';",
    );
    let port = source().port().expect("the source listens on TCP").to_string();
    // Each table's rows as written: its chunks decompressed in order. (How a table is cut
    // into chunks follows the server's statistics, which InnoDB may refresh between dumps.)
    let tables = |dir: &Path| -> Vec<(String, String, Vec<u8>)> {
        let m = manifest(dir);
        let mut out = Vec::new();
        for t in m["databases"][0]["tables"].as_array().unwrap() {
            let mut rows = Vec::new();
            for c in t["chunks"].as_array().unwrap() {
                let file = std::fs::File::open(dir.join(c["file"].as_str().unwrap())).unwrap();
                rows.extend(zstd::decode_all(file).unwrap());
            }
            out.push((t["name"].to_string(), t["content_digest"].to_string(), rows));
        }
        out
    };
    let (_a, by_socket) = dump(db, &["--chunk-size", "16KiB", "-t", "3"]);
    let mut by_login = Vec::new();
    for (user, password) in [("dump_pw", "-ppw secret"), ("dump_ed", "-ped secret")] {
        let dir = tempfile::tempdir().unwrap();
        let out_dir = dir.path().join("backup");
        let o = out_dir.display().to_string();
        let args = ["dump", "-h", "127.0.0.1", "-P", &port, "-u", user, password, "-o", &o, "--progress", "none"];
        let out = Command::new(env!("CARGO_BIN_EXE_floodgate"))
            .args(args)
            .args([db, "--chunk-size", "16KiB", "-t", "3"])
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        assert!(out.status.success(), "{user}: {}", stderr(&out));
        let fell_back = stderr(&out).contains("rows are read through mysql_async");
        assert_eq!(fell_back, user == "dump_ed", "{user}: {}", stderr(&out));
        assert!(tables(&out_dir) == tables(&by_socket), "{user}'s dump differs");
        by_login.push((dir, out_dir));
    }
    let out = restore(target(), &by_login[1].1, &["--verify", "digest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(target(), db));
}

/// A dump is a copy of the database: every directory it makes is 0700 and every file 0600,
/// and so is a report (which names hosts and paths). A report path that is a symbolic link
/// is replaced, not followed.
#[test]
fn dumps_and_reports_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let db = "nat_private";
    load_awkward(db);
    let (dir, out) = dump(db, &[]);
    let mut stack = vec![out.clone()];
    let mut files = 0;
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            if p != out {
                assert_eq!(mode, 0o700, "{}", p.display());
            }
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{}", p.display());
            files += 1;
        }
    }
    assert!(files > 10, "{files} files checked");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let report = dir.path().join("restore.json");
    std::os::unix::fs::symlink(&victim, &report).unwrap();
    let target = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let res = restore(&target, &out, &["--report", &report.display().to_string()]);
    assert!(res.status.success(), "{}", stderr(&res));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let meta = std::fs::symlink_metadata(&report).unwrap();
    assert!(meta.is_file() && meta.permissions().mode() & 0o777 == 0o600, "{meta:?}");
}
