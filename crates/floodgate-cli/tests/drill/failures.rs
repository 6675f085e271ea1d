//! Damaged backups, a restore slower than the RTO and false user checks: each fails with
//! the exit code DESIGN.md gives, names what is wrong, records the failure in the report and
//! metrics, and leaves no sandbox behind.

use std::path::Path;

use crate::common::*;
use crate::helpers::*;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A drill that must fail with `code`, naming every one of `needles`; returns the report.
fn fails(backup: &Path, extra: &[&str], code: i32, needles: &[&str]) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("r.json");
    let mut args = vec!["--report", report.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = drill(backup, &args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("drill FAILED (exit {code})")));
    if let Some(dir) = sandbox_dir_in(&err) {
        nothing_left(&dir);
    }
    let r = valid_report(&report);
    assert_eq!(r["status"], "failure");
    assert_eq!(r["exit_code"], code);
    r
}

#[test]
fn flipped_bit_fails_with_exit_3_naming_the_file_and_keeps_the_last_success() {
    let db = "drill_bit";
    load_awkward(db);
    let tmp = tempfile::tempdir().unwrap();
    let backup = native_dump(db, tmp.path());
    let prom = tmp.path().join("drill.prom");
    let prom_arg = prom.display().to_string();
    let out = drill(&backup, &["--prometheus", &prom_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let good = std::fs::read_to_string(&prom).unwrap();
    let last_success = metric(&good, "floodgate_drill_last_success_timestamp_seconds").unwrap();

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).unwrap()).unwrap();
    let bulk = manifest["databases"][0]["tables"].as_array().unwrap().iter().find(|t| t["name"] == "bulk").unwrap();
    let victim = backup.join(bulk["chunks"][0]["file"].as_str().unwrap());
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&victim, bytes).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a later timestamp, if it were written
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    let r = fails(&backup, &["--prometheus", &prom_arg], 3, &[&name]);
    assert_eq!(r["error"]["kind"], "integrity");
    assert!(r["error"]["message"].as_str().unwrap().contains(&name));
    let bad = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(metric(&bad, "floodgate_drill_success"), Some(0.0), "{bad}");
    assert_eq!(metric(&bad, "floodgate_drill_exit_code"), Some(3.0), "{bad}");
    assert_eq!(metric(&bad, "floodgate_drill_last_success_timestamp_seconds"), Some(last_success), "{bad}");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary metrics files left: {leftovers:?}");
}

#[test]
fn truncated_mysqldump_fails() {
    let db = "drill_trunc";
    load_awkward(db);
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full.sql");
    mysqldump(db, &full);
    let text = std::fs::read(&full).unwrap();
    // Cut in the middle of a statement.
    let half = tmp.path().join("half.sql");
    std::fs::write(&half, &text[..text.len() / 2]).unwrap();
    fails(&half, &[], 3, &["half.sql", "truncated"]);
    // Cut cleanly after a statement: only the missing trailer shows it.
    let cut = text.len() * 2 / 3;
    let end = cut + text[cut..].windows(2).position(|w| w == b";\n").unwrap() + 2;
    let clean = tmp.path().join("clean-cut.sql");
    std::fs::write(&clean, &text[..end]).unwrap();
    fails(&clean, &[], 3, &["clean-cut.sql", "Dump completed"]);
}

#[test]
fn missing_table_files_fail() {
    // Every file of a table gone: the metadata still lists it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("no-customers");
    copy_dir(&repo_root().join("fixtures/mydumper-modern/sql"), &dir);
    std::fs::remove_file(dir.join("awkward.customers-schema.sql")).unwrap();
    std::fs::remove_file(dir.join("awkward.customers.00000.sql")).unwrap();
    fails(&dir, &[], 3, &["awkward.customers-schema.sql", "missing"]);
    // Only its data file gone: the rows the metadata records do not arrive.
    let dir = tmp.path().join("no-customer-rows");
    copy_dir(&repo_root().join("fixtures/mydumper-modern/sql"), &dir);
    std::fs::remove_file(dir.join("awkward.customers.00000.sql")).unwrap();
    fails(&dir, &[], 3, &["`awkward`.`customers`: 0 rows on the target, 300 expected"]);
    // A native chunk gone.
    let db = "drill_missing";
    load_awkward(db);
    let backup = native_dump(db, tmp.path());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).unwrap()).unwrap();
    let t = manifest["databases"][0]["tables"].as_array().unwrap().iter().find(|t| t["name"] == "orders").unwrap();
    let chunk = t["chunks"][0]["file"].as_str().unwrap().to_string();
    std::fs::remove_file(backup.join(&chunk)).unwrap();
    fails(&backup, &[], 3, &[chunk.rsplit('/').next().unwrap()]);
}

#[test]
fn timeout_fails_the_drill_and_names_it() {
    let big = big_dump();
    let r = fails(&big, &["--timeout", "1s"], 1, &["--timeout 1s", "was stopped"]);
    assert_eq!(r["error"]["kind"], "timeout");
    assert_eq!(r["timeout_seconds"], 1.0);
    assert!(r["restore"].is_null());
}

#[test]
fn false_verify_query_fails_with_exit_3_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let queries = tmp.path().join("checks.sql");
    std::fs::write(&queries, "SELECT COUNT(*) = 2000 FROM awkward.bulk;\nSELECT COUNT(*) = 7 FROM awkward.bulk;\n")
        .unwrap();
    let fixture = repo_root().join("fixtures/mydumper-modern/sql");
    let r = fails(&fixture, &["--verify-query", queries.to_str().unwrap()], 3, &["checks.sql line 2", "returned 0"]);
    let results: Vec<bool> = r["verification"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "verify_query")
        .map(|c| c["passed"].as_bool().unwrap())
        .collect();
    assert_eq!(results, [true, false]);
}

/// A native chunk replaced by a zstd bomb (1 MB that decompresses to 32 GB) fails the drill
/// at once with exit 3, naming the file, in bounded memory (floodgate's own: the sandbox
/// server is another process): with the manifest untouched, its size on disk gives it away
/// before the sandbox starts; with the manifest rewritten to the bomb's size and SHA-256,
/// decompression stops one byte past the chunk's declared uncompressed size.
#[test]
fn a_zstd_bomb_in_place_of_a_native_chunk_fails_the_drill_at_once_in_bounded_memory() {
    let db = "drill_bomb";
    load_awkward(db);
    let tmp = tempfile::tempdir().unwrap();
    let backup = native_dump(db, tmp.path());
    let manifest_path = backup.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let tables = manifest["databases"][0]["tables"].as_array_mut().unwrap();
    let chunk = &mut tables.iter_mut().find(|t| t["name"] == "bulk").unwrap()["chunks"][0];
    let victim = backup.join(chunk["file"].as_str().unwrap());
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    let bomb = zstd_bomb(b"", b'x', 250_000);
    std::fs::write(&victim, &bomb).unwrap();
    let b = backup.display().to_string();
    let args = ["drill", &b, "--progress", "plain", "--buffer-pool", "128M"];
    let drill_watched = |needles: &[&str]| {
        let w = floodgate_watched(&args, None, std::time::Duration::from_secs(180));
        let err = stderr(&w.out);
        assert_eq!(w.out.status.code(), Some(3), "{err}");
        for n in needles {
            assert!(err.contains(n), "expected {n:?} in: {err}");
        }
        if let Some(dir) = sandbox_dir_in(&err) {
            nothing_left(&dir);
        }
        assert!(w.peak_rss_mib < 300.0, "peak RSS {:.0} MiB", w.peak_rss_mib);
        w.seconds
    };

    let on_disk = format!("{} bytes on disk", bomb.len());
    let seconds = drill_watched(&[&name, &on_disk]);
    assert!(seconds < 30.0, "took {seconds:.1}s");

    chunk["compressed_bytes"] = bomb.len().into();
    chunk["sha256"] = sha256_hex(&bomb).into();
    let declared = chunk["bytes"].as_u64().unwrap();
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let past = format!("more than the {declared} decompressed bytes the manifest declares");
    // Most of this is starting the sandbox; the bomb itself is refused in milliseconds.
    let seconds = drill_watched(&[&name, &past]);
    assert!(seconds < 90.0, "took {seconds:.1}s");
}
