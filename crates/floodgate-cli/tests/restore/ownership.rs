//! A user's own database named like floodgate's checkpoint schema is the user's: floodgate
//! refuses before touching it, never writes into it or drops it, dumps it like any other,
//! and keeps its checkpoints elsewhere when told to (`--checkpoint-schema`).

use floodgate_sandbox::Sandbox;

use crate::common::*;

fn users_table(server: &Sandbox) -> String {
    sql(server, "SELECT GROUP_CONCAT(CONCAT(id, ':', name) ORDER BY id) FROM floodgate.users")
}

fn create_users_table(server: &Sandbox) {
    sql(
        server,
        "CREATE DATABASE floodgate; \
         CREATE TABLE floodgate.users (id INT PRIMARY KEY, name VARCHAR(20)); \
         INSERT INTO floodgate.users VALUES (1, 'ada'), (2, 'grace'), (3, 'linus')",
    );
}

fn native_backup(db: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("native");
    let socket = source().socket().display().to_string();
    let res = floodgate(&["dump", "-S", &socket, "-u", "root", "-o", &out.display().to_string(), db]);
    assert!(res.status.success(), "{}", stderr(&res));
    out
}

#[test]
fn a_users_floodgate_database_is_never_taken_over() {
    let db = "own_src";
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let backup = native_backup(db, dir.path());
    let target = Sandbox::start(&options()).unwrap();
    create_users_table(&target);
    let before = users_table(&target);
    let restored =
        |t: &Sandbox| sql(t, &format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'"));

    // Refused before anything changes: restore, --restart, --fast-target.
    for extra in [&[][..], &["--restart"], &["--fast-target"]] {
        let out = restore(&target, &backup, extra);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("database `floodgate`") || err.contains("holds user data"), "{extra:?}: {err}");
        assert_eq!(users_table(&target), before, "{extra:?}");
        assert_eq!(restored(&target).trim(), "0", "{extra:?}: nothing was restored");
    }
    assert!(stderr(&restore(&target, &backup, &[])).contains("--checkpoint-schema"));

    // With its checkpoints elsewhere, the restore runs, and leaves both alone afterwards.
    let out = restore(&target, &backup, &["--checkpoint-schema", "fg_state"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(&target, db));
    assert_eq!(users_table(&target), before);
    let left = sql(&target, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'fg_state'");
    assert_eq!(left.trim(), "0", "floodgate drops its own schema once done");

    // Loading into the user's database is refused too.
    let dump = dir.path().join("one.sql");
    let text = std::process::Command::new("mariadb-dump")
        .args(["--no-defaults", "-uroot", &format!("--socket={}", source().socket().display()), db, "customers"])
        .output()
        .unwrap();
    std::fs::write(&dump, text.stdout).unwrap();
    let out = restore(&target, &dump, &["--into", "floodgate"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("checkpoint schema"), "{}", stderr(&out));
    assert_eq!(users_table(&target), before);
}

#[test]
fn dump_includes_a_users_floodgate_database() {
    let server = Sandbox::start(&options()).unwrap();
    create_users_table(&server);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all");
    let socket = server.socket().display().to_string();
    let res = floodgate(&["dump", "-S", &socket, "-u", "root", "-o", &out.display().to_string()]);
    assert!(res.status.success(), "{}", stderr(&res));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let names: Vec<&str> =
        manifest["databases"].as_array().unwrap().iter().filter_map(|d| d["name"].as_str()).collect();
    assert!(names.contains(&"floodgate"), "the user's database is dumped: {names:?}");
}
