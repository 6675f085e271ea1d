//! mydumper directories: the legacy layout Debian's mydumper 0.10 writes (dumped live) and
//! the modern 0.21 layout (fixtures made by the real tool, see fixtures/README.md).

use crate::common::*;

/// mydumper 0.10 cannot dump names with backticks (it does not quote them), so the data set
/// drops its odd-name table and view before the legacy dump; the modern fixtures keep them.
pub fn load_awkward_for_legacy(db: &str) {
    load_awkward(db);
    sql(source(), &format!("DROP VIEW `{db}`.`view; odd`; DROP TABLE `{db}`.`odd name; with ``tick`` and 'quote'`;"));
}

#[test]
fn legacy_mydumper_round_trip_is_exact() {
    let db = "legacy_rt";
    load_awkward_for_legacy(db);
    let dump = mydumper(db, &["--rows", "300"]);
    let out = restore(
        target(),
        &dump.path().join("dump"),
        &["-t", "4", "--report", &dump.path().join("r.json").display().to_string()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(target(), db));
    // Not a terminal: plain progress lines, the last one at 100%.
    assert!(stderr(&out).contains("floodgate: done: 100%"), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dump.path().join("r.json")).unwrap()).unwrap();
    let bulk = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == "bulk").unwrap();
    assert_eq!(bulk["rows"], 2000);
    assert!(bulk["chunks"].as_u64().unwrap() >= 2, "bulk is split into chunks: {bulk}");
    // Too small to gain from building k_1 afterwards: it is created with the table.
    assert_eq!(bulk["deferred_indexes"].as_array().map(Vec::len), Some(0), "{bulk}");
    assert!(report["phases"]["data"].as_f64().is_some());
    // `awkward.a.b.00000.sql` ...: a table whose name holds a dot, in chunks.
    let dotted = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == "a.b").unwrap();
    assert_eq!(dotted["rows"], 900);
    assert!(dotted["chunks"].as_u64().unwrap() >= 2, "a.b is split into chunks: {dotted}");
}

/// The same dump with every INSERT file converted to LOAD DATA rows (by default only files of
/// 1 MiB and more are): the same data, and the report says how each chunk loaded.
#[test]
fn legacy_mydumper_inserts_loaded_as_rows_are_exact() {
    let db = "legacy_conv";
    load_awkward_for_legacy(db);
    let dump = mydumper(db, &["--rows", "300"]);
    let report = dump.path().join("r.json");
    let out = restore(
        target(),
        &dump.path().join("dump"),
        &["-t", "3", "--convert-min-size", "1", "--report", &report.display().to_string()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(target(), db));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let bulk = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == "bulk").unwrap();
    assert_eq!((bulk["rows"].as_u64(), bulk["insert_statements"].as_u64()), (Some(2000), Some(0)), "{bulk}");
    assert!(bulk["load_data_statements"].as_u64().unwrap() >= bulk["chunks"].as_u64().unwrap(), "{bulk}");
}

#[test]
fn legacy_mydumper_gzip_unchunked_and_no_defer() {
    let db = "legacy_gz";
    load_awkward_for_legacy(db);
    let dump = mydumper(db, &["-c"]);
    let out = restore(target(), &dump.path().join("dump"), &["-t", "2", "--no-defer-indexes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(target(), db));
}

#[test]
fn triggers_do_not_fire_on_restored_rows() {
    let db = "trigger_check";
    load_awkward_for_legacy(db);
    let before = sql(source(), &format!("SELECT COUNT(*) FROM `{db}`.audit_log"));
    let dump = mydumper(db, &["--rows", "100"]);
    let out = restore(target(), &dump.path().join("dump"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sql(target(), &format!("SELECT COUNT(*) FROM `{db}`.audit_log")), before);
    // The trigger exists afterwards and works.
    sql(target(), &format!("INSERT INTO `{db}`.orders (customer_id, amount) VALUES (1, 1.00)"));
    let after: u64 = sql(target(), &format!("SELECT COUNT(*) FROM `{db}`.audit_log")).trim().parse().unwrap();
    assert_eq!(after, before.trim().parse::<u64>().unwrap() + 1);
}

/// Tables whose names hold dots beside plain tables whose names theirs start with, and a
/// view and a trigger of such names, in `db` on the source.
fn load_dotted(db: &str) {
    let seq = |n: u32| {
        format!(
            "(WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {n}) SELECT n FROM seq) s"
        )
    };
    sql(
        source(),
        &format!(
            "DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`; USE `{db}`;
             CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL, KEY idx_v (v));
             CREATE TABLE `a.b` (id INT PRIMARY KEY, k INT NOT NULL, KEY idx_k (k));
             CREATE TABLE `a.b.c` (id INT PRIMARY KEY, s VARCHAR(20) NULL);
             CREATE TABLE x (id INT PRIMARY KEY);
             CREATE TABLE `x.y.z` (id INT PRIMARY KEY, label VARCHAR(20) NOT NULL, UNIQUE KEY uq_label (label));
             INSERT INTO a SELECT n, CONCAT('a ', n) FROM {};
             INSERT INTO `a.b` SELECT n, n % 7 FROM {};
             INSERT INTO `a.b.c` VALUES (1, 'one'), (2, NULL), (3, 'a.b.c');
             INSERT INTO x VALUES (1);
             INSERT INTO `x.y.z` SELECT n, CONCAT('x.y.z.', n) FROM {};
             CREATE VIEW `v.w` AS SELECT id, k FROM `a.b` WHERE k = 0;
             CREATE TRIGGER `a.b_check` BEFORE INSERT ON `a.b` FOR EACH ROW SET NEW.k = NEW.k % 7;",
            seq(250),
            seq(350),
            seq(400),
        ),
    );
}

/// Debian's mydumper 0.10 writes names with dots into file names as they are
/// (`legacy.dots.a.b.00001.sql` for table `a.b` of database `legacy.dots`): each file goes
/// to the longest table name its schema files declare that fits.
#[test]
fn legacy_mydumper_dotted_names_beside_plain_ones() {
    let db = "legacy.dots";
    load_dotted(db);
    let dump = mydumper(db, &["--rows", "100"]);
    let dir = dump.path().join("dump");
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    for want in [
        "legacy.dots-schema-create.sql",
        "legacy.dots.a.b-schema.sql",
        "legacy.dots.a.b.c.sql",
        "legacy.dots.v.w-schema-view.sql",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    for chunked in ["legacy.dots.a.0", "legacy.dots.a.b.0", "legacy.dots.x.y.z.0"] {
        assert!(names.iter().filter(|n| n.starts_with(chunked)).count() >= 2, "{chunked}* in {names:?}");
    }
    let out = restore(target(), &dir, &["-t", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(target(), db));
    // Unchunked and compressed: `legacy_dots_gz.a.b.sql.gz` and `legacy_dots_gz.a.b.c.sql.gz`.
    let db = "legacy_dots_gz";
    load_dotted(db);
    let dump = mydumper(db, &["-c"]);
    let dir = dump.path().join("dump");
    for file in ["legacy_dots_gz.a.b.sql.gz", "legacy_dots_gz.a.b.c.sql.gz", "legacy_dots_gz.x.y.z.sql.gz"] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let out = restore(target(), &dir, &["-t", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(target(), db));
}

/// A data file that fits no table the schema files declare is refused by name, before
/// anything is restored.
#[test]
fn legacy_mydumper_stray_data_file_is_refused() {
    let db = "legacy_stray";
    load_dotted(db);
    let dump = mydumper(db, &["--rows", "100"]);
    let dir = dump.path().join("dump");
    std::fs::copy(dir.join("legacy_stray.a.b.c.sql"), dir.join("legacy_stray.a.q.sql")).unwrap();
    let out = restore(target(), &dir, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("legacy_stray.a.q.sql"), "{}", stderr(&out));
    assert_eq!(sql(target(), &format!("SHOW DATABASES LIKE '{db}'")).trim(), "");
}

/// The modern fixtures were made from the awkward set in a database named `awkward`: load
/// it on the source once, to compare with.
pub fn load_modern_fixture_source() {
    static LOADED: std::sync::Once = std::sync::Once::new();
    LOADED.call_once(|| load_awkward("awkward"));
}

/// The modern fixture `variant` (a mydumper 0.21 dump directory).
pub fn modern_fixture(variant: &str) -> std::path::PathBuf {
    repo_root().join("fixtures/mydumper-modern").join(variant)
}

fn modern_fixture_round_trip(variant: &str, extra: &[&str]) {
    load_modern_fixture_source();
    // The fixture's database is named `awkward`: restore each variant into its own server.
    let target = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let fixture = modern_fixture(variant);
    let out = restore(&target, &fixture, &[&["-t", "3"], extra].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), "awkward"), &fingerprint(&target, "awkward"));
}

/// Every INSERT file converted to LOAD DATA rows, however small (by default only files of
/// 1 MiB and more are): the awkward values (binary, charsets, BIT, JSON, generated columns)
/// must arrive exactly as the INSERTs would have put them.
#[test]
fn modern_mydumper_sql() {
    modern_fixture_round_trip("sql", &["--convert-min-size", "1"]);
}

#[test]
fn modern_mydumper_zstd() {
    modern_fixture_round_trip("sql-zstd", &["--convert-min-size", "1"]);
}

#[test]
fn modern_mydumper_gzip() {
    modern_fixture_round_trip("sql-gz", &[]);
}

#[test]
fn modern_mydumper_load_data() {
    modern_fixture_round_trip("load-data", &[]);
}

#[test]
fn dry_run_and_inspect_describe_without_connecting() {
    let fixture = repo_root().join("fixtures/mydumper-modern/sql");
    let f = fixture.display().to_string();
    let out = floodgate(&["restore", &f, "--dry-run", "-h", "192.0.2.1"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("table bulk: 6 chunks"), "{text}");
    assert!(text.contains("view view; odd"), "{text}");
    let out = floodgate(&["inspect", &f, "--json"]);
    assert!(out.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["databases"][0]["name"], "awkward");
}
