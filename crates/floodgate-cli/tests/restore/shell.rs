//! MySQL Shell dumps, written in Shell's layout from the awkward data set by
//! floodgate-fixtures (MySQL Shell cannot run here; fixtures/README.md says how the writer
//! was checked against real Shell dumps).

use std::path::{Path, PathBuf};

use floodgate_fixtures::{Compression, Dialect, ShellDumpOptions};

use crate::common::*;
use crate::resume::{restore_command, run_to_failpoint, Run};

/// Small chunks, so every table of any size has several, and checksums.
fn chunked(dialect: Dialect, compression: Compression) -> ShellDumpOptions {
    ShellDumpOptions { dialect, compression, bytes_per_chunk: 20_000, checksum: true, ..Default::default() }
}

fn drop_db(db: &str) {
    sql(target(), &format!("SET foreign_key_checks = 0; DROP DATABASE IF EXISTS `{db}`"));
}

/// Every dialect and compression Shell writes, restored with one loader and with eight:
/// the target ends with the source's fingerprint (rows, checksums, definitions, views,
/// routines, triggers, events), and @.checksums.json is recomputed on the target.
#[test]
fn shell_dumps_restore_exactly_in_every_dialect_and_compression() {
    let cases = [
        (Dialect::Default, Compression::Zstd),
        (Dialect::Csv, Compression::Gzip),
        (Dialect::Tsv, Compression::None),
        (Dialect::CsvUnix, Compression::Zstd),
    ];
    for (i, (dialect, compression)) in cases.into_iter().enumerate() {
        let db = format!("shell_{i}");
        load_awkward(&db);
        let (_dir, dump) = shell_dump(&db, chunked(dialect, compression));
        for threads in ["1", "8"] {
            let out = restore(target(), &dump, &["-t", threads]);
            assert!(out.status.success(), "{dialect:?} {compression:?} -t {threads}: {}", stderr(&out));
            assert_same(&fingerprint(source(), &db), &fingerprint(target(), &db));
            drop_db(&db);
        }
    }
}

/// kill -9 after a chunk committed, while rows load, during an index build and after a
/// post-data statement: each resume ends with the source's fingerprint.
#[test]
fn a_killed_shell_restore_resumes_exactly() {
    let db = "shell_resume";
    load_awkward(db);
    grow_bulk(source(), db, 60000);
    // Uncompressed, so `bulk` is large enough on disk (4 MiB) to have its indexes deferred.
    let shell_options =
        ShellDumpOptions { bytes_per_chunk: 500_000, compression: Compression::None, ..Default::default() };
    let (_dir, dump) = shell_dump(db, shell_options);
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let flags = ["-t", "4"];
    for point in ["data.chunk:3", "data.load:5", "index.build:1", "post.statement:2"] {
        match run_to_failpoint(&server, &dump, &flags, point) {
            Run::Killed => {}
            Run::Ended(code, text) => panic!("{point} was never reached: exit {code:?}\n{text}"),
        }
    }
    let out = restore_command(&server, &dump, &flags).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(&server, db));
}

/// The first data file of `db`.`table` (by name), not its .idx.
pub fn first_data_file(dump: &Path, db: &str, table: &str) -> PathBuf {
    let prefix = format!("{db}@{table}@");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dump)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&prefix) && !name.ends_with(".idx")
        })
        .collect();
    files.sort();
    files.remove(0)
}

fn fails_with_integrity(out: &std::process::Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

/// Damage a restore must catch, each an integrity failure (exit 3) naming the file: a dump
/// that never finished, a chunk shorter than its .idx says, a flipped bit in an
/// uncompressed chunk (found by the checksums), a name that leaves the directory.
#[test]
fn damaged_shell_dumps_are_refused_naming_the_file() {
    let db = "shell_damage";
    load_awkward(db);
    let fresh = || shell_dump(db, chunked(Dialect::Default, Compression::None));
    // Its own server: a failed restore leaves its checkpoints, which are dropped between cases.
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let reset = || {
        sql(
            &server,
            &format!("SET foreign_key_checks = 0; DROP DATABASE IF EXISTS `{db}`; DROP DATABASE IF EXISTS floodgate"),
        )
    };

    let (_d1, dump) = fresh();
    std::fs::remove_file(dump.join("@.done.json")).unwrap();
    fails_with_integrity(&restore(&server, &dump, &[]), &["@.done.json", "has not finished"]);

    let (_d2, dump) = fresh();
    let file = first_data_file(&dump, db, "bulk");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    fails_with_integrity(&restore(&server, &dump, &[]), &[&name, "truncated"]);
    reset();

    let (_d3, dump) = fresh();
    let file = first_data_file(&dump, db, "bulk");
    let mut bytes = std::fs::read(&file).unwrap();
    // A digit of the first row's second field: still a valid row, another value.
    let at = bytes.iter().position(|&b| b == b'\t').unwrap() + 1;
    bytes[at] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    fails_with_integrity(&restore(&server, &dump, &[]), &["checksum", "bulk"]);
    reset();

    let (_d4, dump) = fresh();
    let meta = dump.join(format!("{db}.json"));
    let text = std::fs::read_to_string(&meta).unwrap().replace(&format!("\"{db}@bulk\""), "\"../../etc/passwd\"");
    std::fs::write(&meta, text).unwrap();
    fails_with_integrity(&restore(&server, &dump, &[]), &["unsafe path", "../../etc/passwd"]);
}

/// Copies `from`'s files matching `pick` into `to` as MySQL Shell writes them: data files
/// under `.dumping` first, renamed when complete.
fn copy_files(from: &Path, to: &Path, pick: impl Fn(&str) -> bool) {
    let mut names: Vec<String> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| pick(n))
        .collect();
    names.sort();
    for name in names {
        if to.join(&name).exists() {
            continue;
        }
        let partial = to.join(format!("{name}.dumping"));
        std::fs::copy(from.join(&name), &partial).unwrap();
        std::fs::rename(&partial, to.join(&name)).unwrap();
    }
}

fn is_data(name: &str) -> bool {
    !name.ends_with(".json") && !name.ends_with(".sql")
}

/// A dump still being written, its files appearing in stages over several seconds: with
/// --wait-for-dump the restore loads what is there, waits for the rest, ends once
/// @.done.json appears, and matches the source. Without a new file for the time given, it
/// gives up with an error, its loaded chunks kept for a resume.
#[test]
fn a_dump_still_being_written_is_followed_to_its_end() {
    let db = "shell_wait";
    load_awkward(db);
    let (_dir, full) = shell_dump(db, chunked(Dialect::Default, Compression::Zstd));
    let staged_dir = tempfile::tempdir().unwrap();
    let staged = staged_dir.path().to_path_buf();
    let last = ["@.done.json", "@.checksums.json"];
    copy_files(&full, &staged, |n| !is_data(n) && !last.contains(&n));

    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let started = std::time::Instant::now();
    let child = restore_command(&server, &staged, &["--wait-for-dump", "20"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    copy_files(&full, &staged, |n| is_data(n) && (n.contains("@bulk@") || n.contains("@numbers")));
    std::thread::sleep(std::time::Duration::from_secs(2));
    copy_files(&full, &staged, is_data);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let done_at = started.elapsed();
    copy_files(&full, &staged, |n| last.contains(&n));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(started.elapsed() >= done_at, "finished before the dump did");
    assert_same(&fingerprint(source(), db), &fingerprint(&server, db));

    // A dump that stopped: no new file for 2 s.
    let stalled_dir = tempfile::tempdir().unwrap();
    copy_files(&full, stalled_dir.path(), |n| !last.contains(&n));
    let other = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let out = restore_command(&other, stalled_dir.path(), &["--wait-for-dump", "2"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no new data file and no @.done.json for 2 s"), "{err}");
}

/// `--users` restores the dump's accounts (their passwords log in, SHOW GRANTS matches the
/// source's) and never touches root, even when the dump carries a root block that would
/// change its password.
#[test]
fn users_restores_accounts_and_grants_but_never_root() {
    let src = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    sql(
        &src,
        "CREATE DATABASE u_db; CREATE TABLE u_db.t (id INT PRIMARY KEY); INSERT INTO u_db.t VALUES (1);
         CREATE USER 'app'@'%' IDENTIFIED BY 's3cret'; GRANT SELECT, INSERT ON u_db.* TO 'app'@'%';
         CREATE USER 'ro'@'localhost' IDENTIFIED BY 'pw'; GRANT SELECT ON u_db.t TO 'ro'@'localhost';",
    );
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let opts = floodgate_conn::ConnectOptions {
            socket: Some(src.socket().to_path_buf()),
            user: Some("root".into()),
            ..Default::default()
        };
        let mut conn = floodgate_conn::connect(&opts, &[]).await.unwrap();
        let options = ShellDumpOptions { users: true, ..Default::default() };
        floodgate_fixtures::write_shell_dump(&mut conn, &dump, &options).await.unwrap();
    });
    // As a dump of a MySQL server would: a root account that would take a password.
    let users = dump.join("@.users.sql");
    let text = std::fs::read_to_string(&users).unwrap().replace(
        "-- End of dumping user accounts",
        "-- begin user 'root'@'localhost'\nALTER USER 'root'@'localhost' IDENTIFIED BY 'hijacked';\n\
         -- end user 'root'@'localhost'\n\n-- End of dumping user accounts",
    );
    std::fs::write(&users, text).unwrap();

    let target = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let without = restore(&target, &dump, &[]);
    assert!(without.status.success(), "{}", stderr(&without));
    assert!(stderr(&without).contains("pass --users to restore them"), "{}", stderr(&without));
    assert_eq!(sql(&target, "SELECT COUNT(*) FROM mysql.user WHERE user IN ('app', 'ro')").trim(), "0");
    sql(&target, "DROP DATABASE u_db");

    let out = restore(&target, &dump, &["--users"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("'root'@'localhost' is not restored"), "{}", stderr(&out));
    for (user, password) in [("app", "s3cret"), ("ro", "pw")] {
        let login = std::process::Command::new("mariadb")
            .args(["--no-defaults", "-u", user, &format!("-p{password}"), "-N", "-e", "SELECT COUNT(*) FROM u_db.t"])
            .arg(format!("--socket={}", target.socket().display()))
            .output()
            .unwrap();
        assert!(login.status.success(), "{user}: {}", String::from_utf8_lossy(&login.stderr));
        let grants =
            |server: &floodgate_sandbox::Sandbox, account: &str| sql(server, &format!("SHOW GRANTS FOR {account}"));
        let account = if user == "app" { "'app'@'%'" } else { "'ro'@'localhost'" };
        assert_eq!(grants(&src, account), grants(&target, account));
    }
    // root still logs in as before (over its socket, with no password).
    assert_eq!(sql(&target, "SELECT 1").trim(), "1");
}

/// `--database` and `--exclude` on a Shell dump: an excluded table's trigger is left out with
/// it (it could not be created without its table); the rest arrives whole.
#[test]
fn a_shell_dump_restores_what_the_selection_picks() {
    let db = "shell_select";
    load_awkward(db);
    let (_dir, dump) = shell_dump(db, ShellDumpOptions::default());
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    // `x.y.z` has a trigger (which calls a procedure) and no view reads it.
    let excluded = format!("{db}.x.y.z");
    let out = restore(&server, &dump, &["--database", db, "--exclude", &excluded]);
    assert!(out.status.success(), "{}", stderr(&out));
    let count = |what: &str| sql(&server, what).trim().to_string();
    assert_eq!(
        count(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'x.y.z'"
        )),
        "0"
    );
    assert_eq!(count(&format!("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}' AND EVENT_OBJECT_TABLE = 'x.y.z'")), "0");
    assert_eq!(count(&format!("SELECT COUNT(*) FROM `{db}`.bulk")), "2000");
    assert_eq!(count(&format!("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}'")), "1");
}

/// --set-gtid-purged gives the target the dump's GTID position at the end (MariaDB:
/// gtid_slave_pos), and the report carries it; a dump without one is refused before
/// anything changes. (MySQL Shell writes no GTID set for a MariaDB source, so the test
/// writes one into @.json as a dump of a MariaDB 10.x replica chain would carry it.)
#[test]
fn set_gtid_purged_applies_the_dumps_position_once() {
    let db = "shell_gtid";
    load_awkward(db);
    let (dir, dump) = shell_dump(db, ShellDumpOptions::default());
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let refused = restore(&server, &dump, &["--set-gtid-purged"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("records no GTID set"), "{}", stderr(&refused));
    assert_eq!(sql(&server, &format!("SHOW DATABASES LIKE '{db}'")).trim(), "", "nothing was changed");

    let started = dump.join("@.json");
    let text = std::fs::read_to_string(&started).unwrap();
    let text = text.replace("\"gtidExecuted\": \"\"", "\"gtidExecuted\": \"0-1-42\"");
    std::fs::write(&started, text).unwrap();
    let report = dir.path().join("r.json");
    let out = restore(&server, &dump, &["--set-gtid-purged", "--report", report.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sql(&server, "SELECT @@GLOBAL.gtid_slave_pos").trim(), "0-1-42");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["position"]["gtid_executed"], "0-1-42");
    assert_eq!(r["gtid_set"], "SET GLOBAL gtid_slave_pos = '0-1-42'");
    assert_same(&fingerprint(source(), db), &fingerprint(&server, db));
}
