//! `--into NEW` (a backup of one database restored under another name) and `--rename-db
//! OLD:NEW` (several, with references across them). The result must equal the same data
//! loaded under the new names on the source: every CREATE DATABASE, USE and qualified
//! reference (a view calling a function, a procedure, a trigger) renamed, strings and other
//! names untouched.

use floodgate_fixtures::ShellDumpOptions;

use crate::common::*;

/// Objects that name their own database, across kinds: a view calling a function, a
/// procedure, a trigger writing another table, each with `db`.`x` references, and a string
/// that holds the name and must not change.
/// `text` is the source's name in both: strings are data, never renamed.
fn load_qualified(db: &str, text: &str) {
    sql(
        source(),
        &format!(
            "CREATE TABLE `{db}`.nums (id INT PRIMARY KEY, note VARCHAR(40));
             CREATE TABLE `{db}`.audit (id INT, note VARCHAR(40));
             INSERT INTO `{db}`.nums VALUES (1, '{text}.nums'), (2, 'two');
             CREATE FUNCTION `{db}`.twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
             CREATE VIEW `{db}`.doubled AS SELECT `{db}`.twice(n.id) AS d, n.note FROM `{db}`.nums n;
             CREATE PROCEDURE `{db}`.count_nums() SELECT COUNT(*) FROM `{db}`.nums;
             CREATE TRIGGER `{db}`.nums_ai AFTER INSERT ON `{db}`.nums FOR EACH ROW
               INSERT INTO `{db}`.audit VALUES (NEW.id, '{text}');"
        ),
    );
}

const SOURCE: &str = "into_src";

fn load(db: &str) {
    load_awkward(db);
    sql(source(), &format!("DROP VIEW `{db}`.`view; odd`; DROP TABLE `{db}`.`odd name; with ``tick`` and 'quote'`;"));
    load_qualified(db, SOURCE);
}

fn restores_under_another_name(format: &str, backup: &std::path::Path, into: &str) {
    // The reference: the same data loaded under the new name.
    load(into);
    let out = restore(target(), backup, &["--into", into, "-t", "3"]);
    assert!(out.status.success(), "{format}: {}", stderr(&out));
    assert_same(&fingerprint(source(), into), &fingerprint(target(), into));
    // The routines run against the renamed database.
    assert_eq!(sql(target(), &format!("SELECT d FROM `{into}`.doubled ORDER BY d")).trim(), "2\n4");
    sql(target(), &format!("INSERT INTO `{into}`.nums VALUES (3, 'x')"));
    assert_eq!(sql(target(), &format!("SELECT COUNT(*) FROM `{into}`.audit")).trim(), "1");
}

#[test]
fn a_single_database_backup_restores_under_another_name_in_every_directory_format() {
    let db = SOURCE;
    load(db);
    let (_shell_dir, shell) = shell_dump(db, ShellDumpOptions::default());
    restores_under_another_name("shell", &shell, "into_shell");
    let mydumper = mydumper(db, &["--rows", "300"]);
    restores_under_another_name("mydumper", &mydumper.path().join("dump"), "into_mydumper");
    let (_native_dir, native) = crate::native::dump(db, &[]);
    restores_under_another_name("native", &native, "into_native");
    // The source's name is untouched on the target.
    assert_eq!(sql(target(), &format!("SHOW DATABASES LIKE '{db}'")).trim(), "");
}

/// A backup of two databases names no single one to rename: refused before anything is
/// written, with the names to pick from.
#[test]
fn into_on_a_backup_of_several_databases_is_refused() {
    for db in ["into_two_a", "into_two_b"] {
        sql(
            source(),
            &format!("CREATE DATABASE IF NOT EXISTS {db}; CREATE TABLE IF NOT EXISTS {db}.t (id INT PRIMARY KEY)"),
        );
    }
    let (_dir, backup) = crate::native::dump("into_two_a", &["into_two_b"]);
    let out = restore(target(), &backup, &["--into", "into_two_c"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("into_two_a, into_two_b"), "{}", stderr(&out));
    assert!(sql(target(), "SHOW DATABASES LIKE 'into_two%'").trim().is_empty());
    let out = restore(target(), &backup, &["--into", "into_two_c", "--database", "into_two_b"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sql(target(), "SHOW TABLES FROM into_two_c").trim(), "t");
}

/// Two databases whose objects call each other: `b` has a view over `a`'s table calling
/// `a`'s function and a procedure writing `b`.log; a trigger of `a` calls that procedure.
fn load_across(a: &str, b: &str) {
    sql(
        source(),
        &format!(
            "CREATE DATABASE `{a}`; CREATE DATABASE `{b}`;
             CREATE TABLE `{a}`.nums (id INT PRIMARY KEY, note VARCHAR(40));
             CREATE TABLE `{b}`.log (id INT, what VARCHAR(40));
             INSERT INTO `{a}`.nums VALUES (1, 'rn_a.nums'), (2, 'two');
             CREATE FUNCTION `{a}`.twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
             CREATE VIEW `{b}`.doubled AS SELECT `{a}`.twice(n.id) AS d FROM `{a}`.nums n;
             CREATE PROCEDURE `{b}`.note_it(i INT) INSERT INTO `{b}`.log VALUES (i, 'rn_b.log');
             CREATE TRIGGER `{a}`.nums_ai AFTER INSERT ON `{a}`.nums FOR EACH ROW CALL `{b}`.note_it(NEW.id);"
        ),
    );
}

/// `--rename-db` maps two databases whose views, routines and triggers reference each other,
/// in every format: the target equals the same set loaded under the new names, and the
/// objects work there. Two databases mapped to one name are refused before anything is
/// written.
#[test]
fn two_databases_renamed_together_in_every_format() {
    let (a, b) = ("rn_a", "rn_b");
    load_across(a, b);
    let dir = tempfile::tempdir().unwrap();
    let mysqldump = crate::mysqldump::mariadb_dump(dir.path(), &["--databases", a, b]);
    let (_shell_dir, shell) = shell_dump_schemas(&[a, b], ShellDumpOptions::default());
    let mydumper_dir = tempfile::tempdir().unwrap();
    let socket = format!("--socket={}", source().socket().display());
    let regex = format!("^({a}|{b})\\.");
    let out = run_mydumper(
        &["-u", "root", "--regex", &regex, "-G", "-E", "-R", "-t", "2", &socket],
        &mydumper_dir.path().join("dump"),
    );
    assert!(out.status.success(), "mydumper: {}", String::from_utf8_lossy(&out.stderr));
    let (_native_dir, native) = crate::native::dump(a, &[b]);
    let cases = [
        ("mysqldump", mysqldump.as_path()),
        ("shell", shell.as_path()),
        ("mydumper", &mydumper_dir.path().join("dump")),
        ("native", native.as_path()),
    ];
    for (i, (format, backup)) in cases.into_iter().enumerate() {
        let (a2, b2) = (format!("rn_a{i}"), format!("rn_b{i}"));
        load_across(&a2, &b2);
        let ra = format!("{a}:{a2}");
        let rb = format!("{b}:{b2}");
        let out = restore(target(), backup, &["--rename-db", &ra, "--rename-db", &rb, "-t", "3"]);
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        for (db, new) in [(a, &a2), (b, &b2)] {
            assert_same(&fingerprint(source(), new), &fingerprint(target(), new));
            assert_eq!(sql(target(), &format!("SHOW DATABASES LIKE '{db}'")).trim(), "", "{format}");
        }
        assert_eq!(sql(target(), &format!("SELECT d FROM `{b2}`.doubled ORDER BY d")).trim(), "2\n4");
        sql(target(), &format!("INSERT INTO `{a2}`.nums VALUES (3, 'x')"));
        assert_eq!(sql(target(), &format!("SELECT id FROM `{b2}`.log")).trim(), "3", "{format}");

        let out =
            restore(target(), backup, &["--rename-db", &format!("{a}:rn_one"), "--rename-db", &format!("{b}:rn_one")]);
        assert_eq!(out.status.code(), Some(2), "{format}: {}", stderr(&out));
        assert!(stderr(&out).contains("one database each"), "{format}: {}", stderr(&out));
        assert_eq!(sql(target(), "SHOW DATABASES LIKE 'rn_one'").trim(), "", "{format}");
    }
}
