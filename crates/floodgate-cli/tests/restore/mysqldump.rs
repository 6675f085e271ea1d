//! mysqldump / mariadb-dump files: one stream split across many connections. Dumps are made
//! by the real mariadb-dump from the awkward data set and compared with the source.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;

/// Runs mariadb-dump against the source; returns the dump's path in `dir`.
pub(crate) fn mariadb_dump(dir: &Path, args: &[&str]) -> PathBuf {
    let out = Command::new("mariadb-dump")
        .args(["--no-defaults", "-uroot", "--single-transaction", "--routines", "--events", "--triggers"])
        .arg(format!("--socket={}", source().socket().display()))
        .args(args)
        .output()
        .expect("run mariadb-dump");
    assert!(out.status.success(), "mariadb-dump: {}", String::from_utf8_lossy(&out.stderr));
    let path = dir.join("dump.sql");
    std::fs::write(&path, out.stdout).unwrap();
    path
}

pub(crate) fn compress(path: &Path, tool: &str) -> PathBuf {
    let status = Command::new(tool).arg("-q").arg("-f").arg(path).status().expect("compressor");
    assert!(status.success());
    let ext = if tool == "gzip" { "gz" } else { "zst" };
    PathBuf::from(format!("{}.{ext}", path.display()))
}

/// Loads the awkward set as `db` on the source, dumps it with `args`, restores it with
/// floodgate into the target under the same name, and compares.
fn round_trip(db: &str, dump_args: &[&str], restore_args: &[&str], prepare: impl Fn(PathBuf) -> PathBuf) {
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let mut args = dump_args.to_vec();
    args.push(db);
    let dump = prepare(mariadb_dump(dir.path(), &args));
    let out = restore(target(), &dump, restore_args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(target(), db));
}

#[test]
fn extended_inserts_with_databases() {
    round_trip("md_ext", &["--databases"], &["-t", "4"], |p| p);
}

#[test]
fn one_row_per_insert_into_named_database() {
    round_trip("md_rows", &["--skip-extended-insert"], &["-t", "3", "--into", "md_rows"], |p| p);
}

#[test]
fn gzip_dump() {
    round_trip("md_gz", &["--databases"], &[], |p| compress(&p, "gzip"));
}

#[test]
fn zstd_dump() {
    round_trip("md_zst", &["--databases"], &[], |p| compress(&p, "zstd"));
}

#[test]
fn dump_from_stdin() {
    let db = "md_stdin";
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let dump = compress(&mariadb_dump(dir.path(), &["--databases", db]), "zstd");
    let socket = target().socket().display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args(["restore", "-", "-S", &socket, "-u", "root", "--progress", "plain"])
        .env("FLOODGATE_PROGRESS_INTERVAL", "0.05")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&std::fs::read(&dump).unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_same(&fingerprint(source(), db), &fingerprint(target(), db));
    // Standard input has no size: progress says what was read, with no percentage or ETA.
    assert!(err.contains(" read (") && !err.contains('%') && !err.contains("ETA"), "{err}");
}

#[test]
fn rows_load_as_load_data_and_indexes_are_deferred() {
    let db = "md_report";
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let dump = mariadb_dump(dir.path(), &["--databases", db]);
    let report_path = dir.path().join("r.json");
    let report_arg = report_path.display().to_string();
    let bulk_of = |extra: &[&str]| {
        let mut args = vec!["--report", &report_arg];
        args.extend_from_slice(extra);
        let out = restore(target(), &dump, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_same(&fingerprint(source(), db), &fingerprint(target(), db));
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
        assert_eq!(report["format"], "mysqldump");
        let tables = report["tables"].as_array().unwrap();
        let fallbacks: u64 = tables.iter().map(|t| t["insert_statements"].as_u64().unwrap()).sum();
        assert_eq!(fallbacks, 0, "every row went through LOAD DATA: {tables:?}");
        let bulk = tables.iter().find(|t| t["table"] == "bulk").unwrap().clone();
        assert_eq!(bulk["rows"], 2000);
        bulk
    };
    // All of its rows fit in the first chunk (under 4 MiB): the CREATE keeps the index, as
    // for directory backups, and no ALTER follows.
    let small = bulk_of(&[]);
    assert_eq!(small["deferred_indexes"].as_array().map(Vec::len), Some(0), "{small}");
    // With chunks smaller than the table, its size is known to be large only after the
    // CREATE was held back: the index is deferred and built after the rows.
    let large = bulk_of(&["--overwrite", "--stream-chunk-size", "4KiB"]);
    assert_eq!(large["deferred_indexes"][0], "k_1", "{large}");
}

#[test]
fn truncated_dump_names_the_offset() {
    let db = "md_trunc";
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let dump = mariadb_dump(dir.path(), &["--databases", db]);
    let text = std::fs::read(&dump).unwrap();
    // Cut inside the INSERT of `strings`, in the middle of a quoted value.
    let at = find(&text, b"'emoji") + 3;
    std::fs::write(&dump, &text[..at]).unwrap();
    let out = restore(target(), &dump, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("dump.sql") && err.contains("at byte") && err.contains("truncated"), "{err}");
}

#[test]
fn dump_cut_between_statements_is_accepted_only_when_complete() {
    // A dump cut right after a statement's `;` is indistinguishable from a shorter dump for
    // the splitter; a cut in the middle of a statement is not.
    let db = "md_cut";
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let dump = mariadb_dump(dir.path(), &["--databases", db]);
    let text = std::fs::read(&dump).unwrap();
    let at = find(&text, b"INSERT INTO `bulk`") + 40;
    std::fs::write(&dump, &text[..at]).unwrap();
    let out = restore(target(), &dump, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
}

/// A dump cut right after a statement's `;` splits into whole statements: only its missing
/// `-- Dump completed` trailer tells. `restore` refuses it, as `drill` does: a plain file
/// before anything changes, a compressed one when the stream ends (its rows so far are
/// checkpointed). `--allow-incomplete` restores what the file holds.
#[test]
fn a_dump_cut_between_statements_is_refused_unless_allowed() {
    let db = "md_between";
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let dump = mariadb_dump(dir.path(), &["--databases", db]);
    let text = std::fs::read(&dump).unwrap();
    let start = find(&text, b"INSERT INTO `bulk`");
    let at = start + find(&text[start..], b");\n") + 3;
    std::fs::write(&dump, &text[..at]).unwrap();
    let exists = |db: &str| {
        sql(target(), &format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'"))
    };

    let out = restore(target(), &dump, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("dump.sql at byte {at}")) && err.contains("-- Dump completed"), "{err}");
    assert!(err.contains("Nothing was changed") && err.contains("--allow-incomplete"), "{err}");
    assert_eq!(exists(db).trim(), "0", "a plain file is checked before anything changes");

    let zst = compress(&dump, "zstd");
    let out = restore(target(), &zst, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("dump.sql.zst at byte {at}")) && err.contains("checkpointed"), "{err}");
    let out = restore(target(), &zst, &["--allow-incomplete"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // What the file holds: `bulk` whole, nothing of the tables dumped after it.
    let holds = |db: &str| {
        let tables = format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'bytes_blob'"
        );
        (
            sql(target(), &format!("SELECT COUNT(*) FROM `{db}`.bulk")).trim().to_string(),
            sql(target(), &tables).trim().to_string(),
        )
    };
    assert_eq!(holds(db), ("2000".to_string(), "0".to_string()));

    let out = restore(target(), &dump, &["--allow-incomplete", "--into", "md_between_plain"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(holds("md_between_plain"), ("2000".to_string(), "0".to_string()));
}

#[test]
fn garbage_is_not_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.sql");
    std::fs::write(&path, (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>()).unwrap();
    let out = restore(target(), &path, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a mysqldump"), "{}", stderr(&out));
}

#[test]
fn corrupt_gzip_dump() {
    let db = "md_badgz";
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let dump = compress(&mariadb_dump(dir.path(), &["--databases", db]), "gzip");
    let mut bytes = std::fs::read(&dump).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n / 2..n / 2 + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(&dump, bytes).unwrap();
    let out = restore(target(), &dump, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("dump.sql.gz"), "{}", stderr(&out));
}

#[test]
fn failing_statement_names_offset_and_table() {
    let db = "md_fail";
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let dump = mariadb_dump(dir.path(), &["--databases", db]);
    let text = std::fs::read(&dump).unwrap();
    // A column the table does not have: the server refuses the statement.
    let at = find(&text, b"INSERT INTO `zero_ai` VALUES");
    let mut broken = text[..at].to_vec();
    broken.extend_from_slice(b"INSERT INTO `zero_ai` (id, v, nope) VALUES");
    broken.extend_from_slice(&text[at + b"INSERT INTO `zero_ai` VALUES".len()..]);
    std::fs::write(&dump, broken).unwrap();
    let out = restore(target(), &dump, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("dump.sql at byte") && err.contains("`md_fail`.`zero_ai`") && err.contains("Column count"),
        "{err}"
    );
}

/// A CREATE TABLE the server refuses fails on its DDL connection: the error names the dump's
/// offset and the server's reason, the run exits 1, and nothing hangs waiting for the table.
#[test]
fn failing_create_names_its_offset() {
    let db = "md_badcreate";
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let dump = mariadb_dump(dir.path(), &["--databases", db]);
    let text = std::fs::read(&dump).unwrap();
    let at = find(&text, b"CREATE TABLE `zero_ai` (");
    let cut = at + b"CREATE TABLE `zero_ai` (".len();
    let mut broken = text[..cut].to_vec();
    broken.extend_from_slice(b"`nope` NO_SUCH_TYPE, ");
    broken.extend_from_slice(&text[cut..]);
    std::fs::write(&dump, broken).unwrap();
    let out = restore(target(), &dump, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("dump.sql at byte {at}")) && err.contains("NO_SUCH_TYPE"), "at {at}: {err}");
}

#[test]
fn existing_table_is_refused_before_it_is_dropped() {
    let db = "md_guard";
    load_awkward(db);
    sql(target(), &format!("CREATE DATABASE IF NOT EXISTS {db}; CREATE TABLE {db}.bulk (mine TEXT); INSERT INTO {db}.bulk VALUES ('precious');"));
    let dir = tempfile::tempdir().unwrap();
    let dump = mariadb_dump(dir.path(), &["--databases", db]);
    let out = restore(target(), &dump, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("`{db}`.`bulk`")), "{}", stderr(&out));
    assert_eq!(sql(target(), &format!("SELECT mine FROM {db}.bulk")).trim(), "precious");
}

/// Rows load on other connections, several tables at once, and a plain file is read far
/// ahead of them; a statement that follows a table's rows in the dump still runs after all
/// of them committed. Here an UPDATE added to the dump after `bulk`'s data (a hand-edited
/// dump) must change every row, as `mariadb < dump.sql` would.
#[test]
fn a_statement_after_the_rows_sees_all_of_them() {
    let db = "md_after";
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let dump = mariadb_dump(dir.path(), &["--databases", db]);
    let text = std::fs::read(&dump).unwrap();
    let data = find(&text, b"INSERT INTO `bulk` VALUES");
    let end = data + find(&text[data..], b"UNLOCK TABLES;\n") + b"UNLOCK TABLES;\n".len();
    let update = b"UPDATE `bulk` SET k = k + 1000000, pad = CONCAT('after ', pad);\n";
    std::fs::write(&dump, [&text[..end], &update[..], &text[end..]].concat()).unwrap();
    sql(source(), &format!("UPDATE {db}.bulk SET k = k + 1000000, pad = CONCAT('after ', pad)"));
    let out = restore(target(), &dump, &["-t", "4", "--stream-chunk-size", "4KiB"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(target(), db));
}

/// A duplicate in a unique secondary key the table keeps during the load (a small table keeps
/// its indexes) fails its chunk, and no row of it is kept. MariaDB reports it at COMMIT, as
/// `Got error 1 "Operation not permitted"` when the chunk is the first into an empty table.
#[test]
fn a_duplicate_in_a_unique_key_fails_the_table() {
    let db = "md_unique";
    sql(
        source(),
        &format!(
            "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};
             CREATE TABLE {db}.u (id INT PRIMARY KEY, email VARCHAR(40) NOT NULL, UNIQUE KEY email (email));
             USE {db}; INSERT INTO u SELECT seq, CONCAT('user', seq, '@example.com') FROM seq_1_to_500;"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let dump = mariadb_dump(dir.path(), &["--databases", db]);
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(text.contains("'user2@example.com'"));
    std::fs::write(&dump, text.replace("'user2@example.com'", "'user1@example.com'")).unwrap();
    let out = restore(target(), &dump, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("dump.sql at byte") && err.contains("`md_unique`.`u`"), "{err}");
    let kept = sql(target(), &format!("SELECT COUNT(*) FROM {db}.u"));
    assert_eq!(kept.trim(), "0", "the failed chunk left no rows");
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).position(|w| w == needle).expect("needle in dump")
}

#[test]
fn database_and_exclude_filters_pick_part_of_a_stream() {
    let (a, b) = ("md_sel_a", "md_sel_b");
    load_awkward(a);
    load_awkward(b);
    let dir = tempfile::tempdir().unwrap();
    let dump = mariadb_dump(dir.path(), &["--databases", a, b]);
    let out = restore(target(), &dump, &["--database", a, "--exclude", &format!("{a}.bulk")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let none = sql(target(), &format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{b}'"));
    assert_eq!(none.trim(), "0", "the other database is left out");
    let mut expected = fingerprint(source(), a);
    expected.tables.remove("bulk");
    assert_same(&expected, &fingerprint(target(), a));
    // A name that matches nothing is reported, not ignored.
    let out = restore(target(), &dump, &["--database", "md_sel_nope", "--dry-run"]);
    assert!(out.status.success(), "dry run only reads: {}", stderr(&out));
    let out = restore(target(), &dump, &["--database", "md_sel_nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not in the dump: md_sel_nope"), "{}", stderr(&out));
}

/// `mariadb-dump --no-create-info` writes rows only: they load into the tables the target
/// already has (whose CREATE the dump never runs), as the mysql client would load them.
#[test]
fn a_dump_of_rows_only_loads_into_existing_tables() {
    let db = "md_rows_only";
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let dump = mariadb_dump(dir.path(), &["--no-create-info", "--skip-triggers", db, "bulk", "customers"]);
    let target = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let schema = Command::new("mariadb-dump")
        .args(["--no-defaults", "-uroot", "--no-data", "--skip-triggers", "--routines", "--databases", db])
        .arg(format!("--socket={}", source().socket().display()))
        .output()
        .unwrap();
    sql(&target, &String::from_utf8(schema.stdout).unwrap());
    let out = restore(&target, &dump, &["--into", db, "-t", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for table in ["bulk", "customers"] {
        let count = |s: &floodgate_sandbox::Sandbox| sql(s, &format!("SELECT COUNT(*) FROM `{db}`.`{table}`"));
        assert_eq!(count(&target), count(source()), "{table}");
    }
}

/// `mariadb-dump --all-databases` of `src`, written to `dir`/all.sql.
fn dump_all_databases(src: &floodgate_sandbox::Sandbox, dir: &Path) -> PathBuf {
    let out = Command::new("mariadb-dump")
        .args(["--no-defaults", "-uroot", "--all-databases", "--single-transaction"])
        .arg(format!("--socket={}", src.socket().display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dump = dir.join("all.sql");
    std::fs::write(&dump, &out.stdout).unwrap();
    dump
}

/// A dump of a whole server (`--all-databases`) holds its `mysql` schema: the source's
/// accounts and privilege tables, which restored as rows would replace the target's (its
/// root included). floodgate restores the user databases and says it left `mysql` out.
#[test]
fn an_all_databases_dump_leaves_the_server_schemas_alone() {
    let src = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    sql(
        &src,
        "CREATE DATABASE whole; CREATE TABLE whole.t (id INT PRIMARY KEY); INSERT INTO whole.t VALUES (1), (2);
               CREATE USER 'someone'@'%' IDENTIFIED BY 'pw';",
    );
    let dir = tempfile::tempdir().unwrap();
    let dump = dump_all_databases(&src, dir.path());
    assert!(std::fs::read_to_string(&dump).unwrap().contains("INSERT INTO `global_priv`"));

    let target = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let before = sql(&target, "SELECT User, Host FROM mysql.global_priv ORDER BY 1, 2");
    let out = restore(&target, &dump, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("not restored: the backup's `mysql`"), "{}", stderr(&out));
    assert_eq!(sql(&target, "SELECT User, Host FROM mysql.global_priv ORDER BY 1, 2"), before);
    assert_eq!(sql(&target, "SELECT COUNT(*) FROM whole.t").trim(), "2");
}

/// With --users, the accounts of a whole-server dump's `mysql` schema are restored from its
/// privilege tables (passwords, roles, grants on databases, tables and columns), while root,
/// the server's own accounts and the restoring account stay as the target has them; a rerun
/// (a resume) changes nothing, and an account the target defines differently is refused by
/// name.
#[test]
fn users_restores_the_accounts_of_an_all_databases_dump() {
    let src = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    sql(
        &src,
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, secret INT); INSERT INTO shop.t VALUES (1, 2);
         CREATE USER 'app'@'%' IDENTIFIED BY 's3cret'; GRANT SELECT, INSERT ON shop.* TO 'app'@'%';
         CREATE ROLE reader; GRANT SELECT (id) ON shop.t TO reader; GRANT reader TO 'app'@'%';
         CREATE USER 'ops'@'localhost' IDENTIFIED BY 'x'; GRANT RELOAD ON *.* TO 'ops'@'localhost';",
    );
    let dir = tempfile::tempdir().unwrap();
    let dump = dump_all_databases(&src, dir.path());

    let target = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let root_before = sql(&target, "SELECT Priv FROM mysql.global_priv WHERE User = 'root' ORDER BY Host");
    let out = restore(&target, &dump, &["--users"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("restored from the `mysql` schema's privilege tables"), "{}", stderr(&out));
    for account in ["'app'@'%'", "'ops'@'localhost'", "reader"] {
        assert_eq!(
            sql(&src, &format!("SHOW GRANTS FOR {account}")),
            sql(&target, &format!("SHOW GRANTS FOR {account}"))
        );
    }
    let login = Command::new("mariadb")
        .args(["--no-defaults", "-u", "app", "-ps3cret", "-N", "-e", "SET ROLE reader; SELECT id FROM shop.t"])
        .arg(format!("--socket={}", target.socket().display()))
        .output()
        .unwrap();
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    assert_eq!(sql(&target, "SELECT Priv FROM mysql.global_priv WHERE User = 'root' ORDER BY Host"), root_before);
    let accounts = "SELECT User, Host, Priv FROM mysql.global_priv ORDER BY 1, 2";
    let grants = sql(&target, accounts);

    // Run again, as a resume would: nothing changes.
    let again = restore(&target, &dump, &["--users", "--overwrite"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("0 account(s) and role(s) restored"), "{}", stderr(&again));
    assert_eq!(sql(&target, accounts), grants);

    // An account the target has differently is refused by name; with
    // --ignore-grant-errors the target's is kept.
    sql(&target, "ALTER USER 'ops'@'localhost' IDENTIFIED BY 'changed'");
    let changed = sql(&target, accounts);
    let refused = restore(&target, &dump, &["--users", "--overwrite"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("'ops'@'localhost'"), "{}", stderr(&refused));
    assert_eq!(sql(&target, accounts), changed);
    let kept = restore(&target, &dump, &["--users", "--overwrite", "--ignore-grant-errors"]);
    assert!(kept.status.success(), "{}", stderr(&kept));
    assert_eq!(sql(&target, accounts), changed);
}

/// `mariadb-dump --system=users` writes CREATE USER and GRANT statements: restored with
/// --users (the passwords log in, SHOW GRANTS matches), left out with a notice without it,
/// and never for root or mariadb.sys, which the dump names too.
#[test]
fn accounts_of_a_system_users_dump_restore_with_users() {
    let src = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    sql(
        &src,
        "CREATE DATABASE acc; CREATE TABLE acc.t (id INT PRIMARY KEY);
         CREATE USER 'app'@'%' IDENTIFIED BY 's3cret'; GRANT SELECT, INSERT ON acc.* TO 'app'@'%';",
    );
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("users.sql");
    let out = Command::new("mariadb-dump")
        .args(["--no-defaults", "-uroot", "--system=users"])
        .arg(format!("--socket={}", src.socket().display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&dump, &out.stdout).unwrap();
    let target = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    sql(&target, "CREATE DATABASE acc; CREATE TABLE acc.t (id INT PRIMARY KEY);");
    let root_before = sql(&target, "SHOW GRANTS FOR 'root'@'localhost'");

    let without = restore(&target, &dump, &[]);
    assert!(without.status.success(), "{}", stderr(&without));
    assert!(stderr(&without).contains("pass --users to restore them"), "{}", stderr(&without));
    assert_eq!(sql(&target, "SELECT COUNT(*) FROM mysql.user WHERE User = 'app'").trim(), "0");

    let out = restore(&target, &dump, &["--users"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("--users:"), "{}", stderr(&out));
    let login = Command::new("mariadb")
        .args(["--no-defaults", "-u", "app", "-ps3cret", "-N", "-e", "SELECT COUNT(*) FROM acc.t"])
        .arg(format!("--socket={}", target.socket().display()))
        .output()
        .unwrap();
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    assert_eq!(sql(&src, "SHOW GRANTS FOR 'app'@'%'"), sql(&target, "SHOW GRANTS FOR 'app'@'%'"));
    assert_eq!(sql(&target, "SHOW GRANTS FOR 'root'@'localhost'"), root_before);
}
