//! What the drill tests share: running a drill, validating its report, finding leftovers,
//! making backups.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{floodgate, repo_root, source, sql, stderr};

/// `floodgate drill BACKUP` plus `extra`, with plain progress.
pub fn drill(backup: &Path, extra: &[&str]) -> Output {
    let b = backup.display().to_string();
    let mut args = vec!["drill", b.as_str(), "--progress", "plain"];
    // A small buffer pool for the sandbox: the machine is shared. (Not with a given server.)
    if !extra.contains(&"-S") {
        args.extend_from_slice(&["--buffer-pool", "128M"]);
    }
    args.extend_from_slice(extra);
    floodgate(&args)
}

/// Validates the report at `path` against the JSON Schema in the repository, with a real
/// validator (Python's jsonschema, Draft 2020-12), and returns it.
pub fn valid_report(path: &Path) -> serde_json::Value {
    let schema = repo_root().join("docs/drill-report.schema.json");
    let script = "import json, sys, jsonschema\n\
                  schema = json.load(open(sys.argv[1]))\n\
                  jsonschema.Draft202012Validator.check_schema(schema)\n\
                  jsonschema.validate(json.load(open(sys.argv[2])), schema, cls=jsonschema.Draft202012Validator)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&schema)
        .arg(path)
        .output()
        .expect("python3 runs (scripts/test installs python3 and jsonschema)");
    assert!(
        out.status.success(),
        "report {} does not match the schema: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The sandbox directory a drill announced on stderr.
pub fn sandbox_dir(out: &Output) -> PathBuf {
    sandbox_dir_in(&stderr(out)).expect("the drill announces its sandbox")
}

pub fn sandbox_dir_in(text: &str) -> Option<PathBuf> {
    let line = text.lines().find(|l| l.contains("sandbox started in "))?;
    let rest = line.split("sandbox started in ").nth(1)?;
    Some(PathBuf::from(rest.split(" (").next()?))
}

/// Pids of live processes whose command line mentions `dir`.
pub fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .is_ok_and(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("Z"));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(&needle) {
            found.push(format!("{name}: {}", String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    found
}

/// No directory and no process of the sandbox remain.
pub fn nothing_left(dir: &Path) {
    assert!(!dir.exists(), "sandbox directory {} left behind", dir.display());
    let procs = processes_using(dir);
    assert!(procs.is_empty(), "processes left behind: {procs:?}");
}

/// `floodgate dump` of `db` from the source into `dir/backup`.
pub fn native_dump(db: &str, dir: &Path) -> PathBuf {
    let out = dir.join("backup");
    let socket = source().socket().display().to_string();
    let o = out.display().to_string();
    let res = floodgate(&["dump", "-S", &socket, "-u", "root", "-o", &o, "--progress", "none", db]);
    assert!(res.status.success(), "{}", stderr(&res));
    out
}

/// `mariadb-dump --databases db` from the source into `path`.
pub fn mysqldump(db: &str, path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    let out = Command::new("mariadb-dump")
        .args([
            "--no-defaults",
            "-uroot",
            "--single-transaction",
            "--routines",
            "--events",
            "--triggers",
            "--databases",
            db,
        ])
        .arg(format!("--socket={}", source().socket().display()))
        .stdout(file)
        .output()
        .expect("run mariadb-dump");
    assert!(out.status.success(), "mariadb-dump: {}", String::from_utf8_lossy(&out.stderr));
}

/// A mysqldump file big enough that restoring it takes seconds (1M rows, ~90 MB), made
/// once per target directory and reused.
pub fn big_dump() -> PathBuf {
    static BIG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIG.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("drill-big-v1.sql");
        if path.exists() {
            return path;
        }
        sql(
            source(),
            "CREATE DATABASE IF NOT EXISTS drill_big; \
             CREATE TABLE IF NOT EXISTS drill_big.t (id INT PRIMARY KEY, a CHAR(32), b CHAR(40), KEY (a)); \
             INSERT INTO drill_big.t SELECT seq, MD5(seq), SHA1(seq) FROM drill_big.seq_1_to_1000000;",
        );
        let tmp = path.with_extension("tmp");
        mysqldump("drill_big", &tmp);
        std::fs::rename(&tmp, &path).unwrap();
        path
    })
    .clone()
}

/// The value of `metric` in a textfile.
pub fn metric(text: &str, metric: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(&format!("{metric}{{"))).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}
