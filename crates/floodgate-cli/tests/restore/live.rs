//! Restoring into a live server: `--throttle NAME>N` holds the loaders while the server is
//! busy, `--max-rate` spaces them out. Both leave the result exact.

use std::path::Path;

use crate::common::*;

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A native dump of `db` in small chunks, the `bulk` table grown so there are many.
fn chunked_dump(db: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    load_awkward(db);
    grow_bulk(source(), db, 20_000);
    crate::native::dump(db, &["--chunk-size", "64KiB"])
}

/// Twelve sessions sleeping on the target hold Threads_running above 8: no chunk loads
/// until they end (every progress line that says paused shows no chunk done), the progress
/// says why, and the restore then completes exactly.
#[test]
fn throttle_holds_the_loaders_while_the_target_is_busy() {
    let db = "live_throttle";
    let (_dir, backup) = chunked_dump(db);
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let sleepers: Vec<_> = (0..12)
        .map(|_| {
            let socket = server.socket().to_path_buf();
            std::thread::spawn(move || {
                std::process::Command::new("mariadb")
                    .args(["--no-defaults", "-uroot", "-e", "SELECT SLEEP(6)"])
                    .arg(format!("--socket={}", socket.display()))
                    .output()
                    .unwrap()
            })
        })
        .collect();
    // Wait until the server counts them.
    let busy = || sql(&server, "SHOW GLOBAL STATUS LIKE 'Threads_running'");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while busy().split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) <= 8 {
        assert!(std::time::Instant::now() < deadline, "the sleepers never ran: {}", busy());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("r.json");
    let r = report_path.display().to_string();
    let out = restore(&server, &backup, &["-t", "2", "--throttle", "Threads_running>8", "--report", &r]);
    for s in sleepers {
        s.join().unwrap();
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("paused between chunks: Threads_running = "), "{text}");
    assert!(text.contains("resumed after"), "{text}");
    let paused: Vec<&str> = text.lines().filter(|l| l.contains("paused (Threads_running")).collect();
    assert!(!paused.is_empty(), "the progress shows the pause: {text}");
    for line in paused {
        assert!(line.contains("chunks 0/"), "a chunk loaded while paused: {line}");
    }
    let throttle = &report(&report_path)["throttle"];
    assert!(throttle["paused_seconds"].as_f64().unwrap() >= 2.0, "{throttle}");
    assert_eq!(throttle["limit"], "Threads_running>8");
    assert_same(&fingerprint(source(), db), &fingerprint(&server, db));

    // A name the server has no status variable for is refused before any data.
    let fresh = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let out = restore(&fresh, &backup, &["--throttle", "Threads_sprinting>8"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no global status variable Threads_sprinting"), "{}", stderr(&out));
    assert_eq!(
        sql(
            &fresh,
            &format!("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{db}' AND table_rows > 0")
        )
        .trim(),
        "0"
    );
}

/// --max-rate spaces chunk starts: the data cannot load faster than the rate (after the
/// first chunk, which starts at once), the loaders' waits are reported, and the result is
/// exact.
#[test]
fn max_rate_paces_the_load() {
    let db = "live_rate";
    let (_dir, backup) = chunked_dump(db);
    let bytes: u64 = crate::native::manifest(&backup)["databases"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["chunks"].as_array().unwrap().iter().map(|c| c["compressed_bytes"].as_u64().unwrap()))
        .collect::<Vec<_>>()
        .iter()
        .sum();
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("r.json");
    let r = report_path.display().to_string();
    let rate_mb = 0.4;
    let out = restore(&server, &backup, &["-t", "4", "--max-rate", &rate_mb.to_string(), "--report", &r]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = report(&report_path);
    let data_seconds = report["phases"]["data"].as_f64().unwrap();
    let largest = 64.0 * 1024.0;
    let least = (bytes as f64 - largest) / (rate_mb * 1e6);
    assert!(data_seconds >= least * 0.9, "{bytes} bytes in {data_seconds} s at {rate_mb} MB/s (at least {least} s)");
    assert!(report["throttle"]["loader_wait_seconds"].as_f64().unwrap() > 0.0, "{}", report["throttle"]);
    assert_same(&fingerprint(source(), db), &fingerprint(&server, db));
}

/// A target started with local_infile = 0 (MySQL 8's default, and many managed services'):
/// --check tells an account that may not change it (nor stop binary logging) what it lacks
/// and what that means; that account restores a native dump and a mariadb-dump file exactly
/// through INSERT statements; root has local_infile turned on for the restore and put back
/// afterwards, also by the next run after a kill -9 mid-load, and the result is exact.
#[test]
fn local_infile_off_is_turned_on_for_the_restore_and_put_back() {
    let db = "live_infile";
    let (_dir, backup) = chunked_dump(db);
    let server = floodgate_sandbox::Sandbox::start(&floodgate_sandbox::SandboxOptions {
        extra_args: vec!["--local-infile=0".into()],
        ..options()
    })
    .unwrap();
    let infile = || sql(&server, "SELECT @@GLOBAL.local_infile").trim().to_string();
    assert_eq!(infile(), "0");

    sql(
        &server,
        &format!(
            "CREATE USER 'app'@'localhost' IDENTIFIED BY 'app-pw';
             GRANT ALL ON `{db}`.* TO 'app'@'localhost'; GRANT ALL ON `floodgate`.* TO 'app'@'localhost';"
        ),
    );
    let socket = server.socket().display().to_string();
    let b = backup.display().to_string();
    // --check names each missing privilege and what it means, before anything is written.
    let app = ["restore", &b, "-S", &socket, "-u", "app", "--password", "app-pw", "--progress", "plain"];
    let out = floodgate(&[&app[..], &["--check"]].concat());
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{listed}{}", stderr(&out));
    assert!(listed.contains(&format!("ok       create and load `{db}`")), "{listed}");
    assert!(listed.contains("ok       checkpoints in `floodgate`"), "{listed}");
    assert!(listed.contains("MISSING  stop binary logging"), "{listed}");
    assert!(listed.contains("MISSING  turn local_infile on"), "{listed}");
    assert!(listed.contains("loads through INSERT statements"), "{listed}");
    assert!(listed.contains("MISSING  create views, routines"), "{listed}");
    let root = ["restore", &b, "-S", &socket, "-u", "root", "--check"];
    let out = floodgate(&root);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("MISSING"));
    assert_eq!(sql(&server, "SHOW DATABASES LIKE 'floodgate'").trim(), "", "--check writes nothing");

    // With SET USER (keep definers) but still no SUPER, SYSTEM_VARIABLES_ADMIN or BINLOG
    // ADMIN, as a managed service's admin: the check passes with notices, and the native
    // dump and a mariadb-dump file of it restore exactly through INSERT statements.
    sql(&server, "GRANT SET USER ON *.* TO 'app'@'localhost'");
    let out = floodgate(&[&app[..], &["--check"]].concat());
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    let dump_dir = tempfile::tempdir().unwrap();
    let mysqldump = crate::mysqldump::mariadb_dump(dump_dir.path(), &["--databases", db]);
    let m = mysqldump.display().to_string();
    let app_dump = ["restore", &m, "-S", &socket, "-u", "app", "--password", "app-pw", "--progress", "plain"];
    for (what, args) in [("native", &app[..]), ("mysqldump", &app_dump[..])] {
        let out = floodgate(args);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains("binary logging stays on for this restore"), "{}", stderr(&out));
        assert!(stderr(&out).contains("loading through INSERT statements"), "{what}: {}", stderr(&out));
        assert_eq!(infile(), "0");
        assert_same(&fingerprint(source(), db), &fingerprint(&server, db));
        sql(&server, &format!("DROP DATABASE `{db}`"));
    }

    match crate::resume::run_to_failpoint(&server, &backup, &[], "data.chunk:3") {
        crate::resume::Run::Killed => {}
        crate::resume::Run::Ended(code, text) => panic!("the failpoint was never reached: exit {code:?}\n{text}"),
    }
    assert_eq!(infile(), "1", "killed with it on");
    let out = crate::resume::restore_command(&server, &backup, &[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("put back settings an interrupted"), "{}", stderr(&out));
    assert!(stderr(&out).contains("turned it on for this restore"), "{}", stderr(&out));
    assert!(stderr(&out).contains("put back local_infile = 0"), "{}", stderr(&out));
    assert_eq!(infile(), "0", "put back");
    assert_same(&fingerprint(source(), db), &fingerprint(&server, db));
}

/// A primary with a live replica (two sandboxes, real replication): restored with --binlog,
/// --replica and --max-replica-lag, the loaders wait while the replica's SQL thread is
/// stopped (no chunk loads, the progress says why) and go on once it runs; the replica ends
/// with the source's fingerprint.
#[test]
fn a_stopped_replica_holds_the_loaders_and_ends_equal() {
    let db = "live_replica";
    let (_dir, backup) = chunked_dump(db);
    let primary =
        floodgate_sandbox::Sandbox::start(&floodgate_sandbox::SandboxOptions { binlog: true, tcp: true, ..options() })
            .unwrap();
    let replica = floodgate_sandbox::Sandbox::start(&floodgate_sandbox::SandboxOptions {
        extra_args: vec!["--server-id=2".into()],
        ..options()
    })
    .unwrap();
    sql(
        &primary,
        "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl-pw'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';",
    );
    let status = sql(&primary, "SHOW MASTER STATUS");
    let mut fields = status.split_whitespace();
    let (file, pos) = (fields.next().unwrap().to_string(), fields.next().unwrap().to_string());
    let port = primary.port().unwrap();
    sql(
        &replica,
        &format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={port}, MASTER_USER='repl', \
             MASTER_PASSWORD='repl-pw', MASTER_LOG_FILE='{file}', MASTER_LOG_POS={pos}; START SLAVE;"
        ),
    );
    let running = || sql(&replica, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'system user'");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while running().trim().parse::<u32>().unwrap_or(0) < 2 {
        assert!(std::time::Instant::now() < deadline, "replication never started");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    sql(&replica, "STOP SLAVE SQL_THREAD");

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let replica_socket = replica.socket().display().to_string();
    let mut child = crate::resume::restore_command(
        &primary,
        &backup,
        &["--binlog", "--replica", &replica_socket, "--max-replica-lag", "5"],
    )
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let so_far = std::fs::read_to_string(&log).unwrap();
    assert!(child.try_wait().unwrap().is_none(), "the restore ended with the replica stopped: {so_far}");
    assert!(so_far.contains("is not replicating"), "{so_far}");
    sql(&replica, "START SLAVE SQL_THREAD");
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{text}");
    assert!(text.contains("resumed after"), "{text}");
    for line in text.lines().filter(|l| l.contains("paused (replica")) {
        assert!(line.contains("chunks 0/"), "a chunk loaded while the replica was stopped: {line}");
    }
    let status = sql(&primary, "SHOW MASTER STATUS");
    let mut fields = status.split_whitespace();
    let (file, pos) = (fields.next().unwrap().to_string(), fields.next().unwrap().to_string());
    let waited = sql(&replica, &format!("SELECT MASTER_POS_WAIT('{file}', {pos}, 120)"));
    assert_ne!(waited.trim(), "-1", "the replica did not catch up");
    assert_same(&fingerprint(source(), db), &fingerprint(&primary, db));
    // A replica marks replicated events `DISABLE ON SLAVE` (the server's own rule, so they
    // run on the primary only); everything else must be equal.
    let (expected, replicated) = (fingerprint(source(), db), fingerprint(&replica, db));
    assert!(!replicated.tables.is_empty());
    let differences = expected.differences(&replicated);
    let unexpected: Vec<&String> =
        differences.iter().filter(|d| !(d.starts_with("event ") && d.contains("DISABLE ON SLAVE"))).collect();
    assert!(unexpected.is_empty(), "the replica differs: {unexpected:#?}");

    // A --replica that replicates nothing (a typo would otherwise throttle nothing).
    let fresh = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let not_a_replica = fresh.socket().display().to_string();
    let out = crate::resume::restore_command(&fresh, &backup, &["--replica", &not_a_replica, "--max-replica-lag", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not a replica"), "{}", stderr(&out));
    assert_eq!(sql(&fresh, &format!("SHOW DATABASES LIKE '{db}'")).trim(), "");
}

/// --create-invisible-pks (for servers that require primary keys): a table without one gets
/// an invisible `my_row_id` primary key, in every format (native rows, a mariadb-dump file's
/// INSERTs converted to LOAD DATA, mydumper's INSERT files); what `SELECT *` shows equals the
/// source; a table with a key keeps it; one with an AUTO_INCREMENT of its own is told why
/// it keeps none.
#[test]
fn tables_without_a_primary_key_get_an_invisible_one() {
    let db = "live_nopk";
    sql(
        source(),
        &format!(
            "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db};
             CREATE TABLE {db}.nopk (a INT, b VARCHAR(20), KEY (a)) ENGINE=InnoDB;
             INSERT INTO {db}.nopk SELECT seq % 7, CONCAT('row ', seq) FROM seq_1_to_3000;
             CREATE TABLE {db}.withpk (id INT PRIMARY KEY, v INT) ENGINE=InnoDB;
             INSERT INTO {db}.withpk SELECT seq, seq * 2 FROM seq_1_to_100;
             CREATE TABLE {db}.own_ai (id INT NOT NULL AUTO_INCREMENT, v INT, UNIQUE KEY (id)) ENGINE=InnoDB;
             INSERT INTO {db}.own_ai (v) SELECT seq FROM seq_1_to_50;"
        ),
    );
    let (_native_dir, native) = crate::native::dump(db, &[]);
    let dump_dir = tempfile::tempdir().unwrap();
    let mysqldump = crate::mysqldump::mariadb_dump(dump_dir.path(), &["--databases", db]);
    let mydumper = mydumper(db, &["--rows", "500"]);
    let mydumper_dir = mydumper.path().join("dump");
    let rows = |server: &floodgate_sandbox::Sandbox, table: &str| {
        sql(server, &format!("SELECT * FROM {db}.{table} ORDER BY 1, 2"))
    };
    for (format, backup) in [("native", native.as_path()), ("mysqldump", &mysqldump), ("mydumper", &mydumper_dir)] {
        let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
        let out = restore(&server, backup, &["--create-invisible-pks", "-t", "2"]);
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        assert!(stderr(&out).contains(&format!("`{db}`.`own_ai` keeps no primary key")), "{format}: {}", stderr(&out));
        let invisible = sql(
            &server,
            &format!(
                "SELECT c.TABLE_NAME FROM information_schema.COLUMNS c JOIN information_schema.STATISTICS s \
                 ON s.TABLE_SCHEMA = c.TABLE_SCHEMA AND s.TABLE_NAME = c.TABLE_NAME AND s.COLUMN_NAME = c.COLUMN_NAME \
                 WHERE c.TABLE_SCHEMA = '{db}' AND c.COLUMN_NAME = 'my_row_id' AND c.EXTRA LIKE '%INVISIBLE%' \
                 AND s.INDEX_NAME = 'PRIMARY'"
            ),
        );
        assert_eq!(invisible.trim(), "nopk", "{format}");
        for table in ["nopk", "withpk", "own_ai"] {
            assert_eq!(rows(&server, table), rows(source(), table), "{format}: {table}");
        }
        assert_eq!(sql(&server, &format!("SELECT COUNT(DISTINCT my_row_id) FROM {db}.nopk")).trim(), "3000");
    }
}
