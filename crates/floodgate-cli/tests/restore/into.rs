//! `--into NEW`: a directory backup of one database restored under another name. The result
//! must equal the same data loaded under that name on the source: every CREATE DATABASE,
//! USE and qualified reference (a view calling a function, a procedure, a trigger) renamed,
//! strings and other names untouched.

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
