//! A drill of each format passes, its report validates against the schema, its metrics say
//! success, and the sandbox leaves nothing behind.

use crate::common::*;
use crate::helpers::*;

fn checks(report: &serde_json::Value) -> Vec<String> {
    report["verification"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap().to_string()).collect()
}

#[test]
fn native_backup_passes_with_digests_queries_and_metrics() {
    let db = "drill_native";
    load_awkward(db);
    let tmp = tempfile::tempdir().unwrap();
    let backup = native_dump(db, tmp.path());
    let queries = tmp.path().join("checks.sql");
    std::fs::write(
        &queries,
        format!("USE `{db}`;\nSELECT COUNT(*) = 2000 FROM bulk;\nSELECT SUM(amount) > 0 FROM orders;\n"),
    )
    .unwrap();
    let (report, prom) = (tmp.path().join("r.json"), tmp.path().join("drill.prom"));
    let out = drill(
        &backup,
        &[
            "--report",
            report.to_str().unwrap(),
            "--prometheus",
            prom.to_str().unwrap(),
            "--verify-query",
            queries.to_str().unwrap(),
            "--label",
            "nightly",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    nothing_left(&sandbox_dir(&out));
    let r = valid_report(&report);
    assert_eq!(r["status"], "success");
    assert_eq!(r["backup"]["format"], "floodgate/1");
    assert!(r["backup"]["identity_sha256"].as_str().unwrap().len() == 64);
    assert_eq!(r["server"]["kind"], "sandbox");
    assert!(r["server"]["version"].as_str().unwrap().contains("MariaDB"));
    assert!(r["restore_seconds"].as_f64().unwrap() > 0.0);
    assert!(r["restore"]["tables"].as_array().unwrap().iter().all(|t| t["data_seconds"].is_number()));
    for c in ["chunk_sha256", "row_counts", "content_digest", "objects", "verify_query"] {
        assert!(checks(&r).contains(&c.to_string()), "{c} in {:?}", checks(&r));
    }
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(metric(&text, "floodgate_drill_success"), Some(1.0), "{text}");
    assert!(text.contains("floodgate_drill_rows{backup=\"nightly\"} "), "{text}");
    assert!(metric(&text, "floodgate_drill_last_success_timestamp_seconds").unwrap() > 1.7e9);
    assert!(metric(&text, "floodgate_drill_bytes").unwrap() > 0.0);
    // The report is private to its owner; the metrics readable by node_exporter's group too.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&report), mode(&prom)), (0o600, 0o640));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("drill PASSED"), "{stdout}");
}

#[test]
fn modern_mydumper_fixtures_pass() {
    for variant in ["sql", "sql-zstd", "sql-gz", "load-data"] {
        let tmp = tempfile::tempdir().unwrap();
        let report = tmp.path().join("r.json");
        let fixture = repo_root().join("fixtures/mydumper-modern").join(variant);
        let out = drill(&fixture, &["--report", report.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{variant}: {}", stderr(&out));
        nothing_left(&sandbox_dir(&out));
        let r = valid_report(&report);
        assert_eq!(r["backup"]["format"], "mydumper");
        assert_eq!(r["backup"]["recorded_rows"], r["rows"], "{variant}");
        let objects = r["verification"].as_array().unwrap().iter().find(|c| c["check"] == "objects").unwrap();
        assert!(objects["detail"].as_str().unwrap().contains("5 view(s)"), "{objects}");
    }
}

/// A MySQL Shell dump (Shell's layout, written by floodgate-fixtures) with checksums: every
/// data file checked against its recorded size, every chunk's checksum on the target.
#[test]
fn mysql_shell_dump_passes_with_sizes_and_checksums() {
    let db = "drill_shell";
    load_awkward(db);
    let options =
        floodgate_fixtures::ShellDumpOptions { checksum: true, bytes_per_chunk: 20_000, ..Default::default() };
    let (tmp, dump) = shell_dump(db, options);
    let report = tmp.path().join("r.json");
    let out = drill(&dump, &["--report", report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    nothing_left(&sandbox_dir(&out));
    let r = valid_report(&report);
    assert_eq!(r["backup"]["format"], "MySQL Shell");
    assert_eq!(r["backup"]["recorded_rows"], r["rows"]);
    assert!(r["backup"]["source_server_version"].as_str().unwrap().starts_with("5.6.0-10.11"), "{r}");
    for c in ["chunk_sizes", "checksums", "row_counts", "objects"] {
        assert!(checks(&r).contains(&c.to_string()), "{c} in {:?}", checks(&r));
    }
}

#[test]
fn legacy_mydumper_passes() {
    let db = "drill_legacy";
    load_awkward(db);
    // mydumper 0.10 cannot dump names with backticks (see the restore tests).
    sql(source(), &format!("DROP VIEW `{db}`.`view; odd`; DROP TABLE `{db}`.`odd name; with ``tick`` and 'quote'`;"));
    let dump = mydumper(db, &["--rows", "300"]);
    let report = dump.path().join("r.json");
    let out = drill(&dump.path().join("dump"), &["--report", report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = valid_report(&report);
    assert_eq!(r["backup"]["format"], "mydumper (legacy layout)");
    nothing_left(&sandbox_dir(&out));
}

#[test]
fn mysqldump_files_pass_plain_and_gzip() {
    let db = "drill_dump";
    load_awkward(db);
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("dump.sql");
    mysqldump(db, &plain);
    let gz = tmp.path().join("dump.sql.gz");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c '{}' > '{}'", plain.display(), gz.display()))
        .status()
        .unwrap();
    assert!(status.success());
    for file in [&plain, &gz] {
        let report = tmp.path().join("r.json");
        let out = drill(file, &["--report", report.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}: {}", file.display(), stderr(&out));
        nothing_left(&sandbox_dir(&out));
        let r = valid_report(&report);
        assert_eq!(r["backup"]["format"], "mysqldump");
        let sum = std::process::Command::new("sha256sum").arg(file).output().unwrap();
        let sum = String::from_utf8_lossy(&sum.stdout).split_whitespace().next().unwrap().to_string();
        assert_eq!(r["backup"]["identity_sha256"], sum.as_str(), "the file as stored is its identity");
        assert!(r["backup"]["created_at"].is_string(), "mariadb-dump's `Dump completed on` date");
        let c = checks(&r);
        assert!(c.contains(&"dump_complete".to_string()) && c.contains(&"objects".to_string()), "{c:?}");
        let objects = r["verification"].as_array().unwrap().iter().find(|c| c["check"] == "objects").unwrap();
        assert!(objects["detail"].as_str().unwrap().contains("trigger"), "{objects}");
    }
}
