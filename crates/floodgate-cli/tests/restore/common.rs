//! Shared servers and helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use floodgate_loader::fingerprint::{self, Fingerprint};
use floodgate_sandbox::{Sandbox, SandboxOptions};

pub fn options() -> SandboxOptions {
    SandboxOptions { buffer_pool: "128M".into(), ..Default::default() }
}

/// The source server: test data is created here and dumped from here. It listens on TCP
/// too, for the tests of password logins over TCP.
pub fn source() -> &'static Sandbox {
    static S: OnceLock<Sandbox> = OnceLock::new();
    S.get_or_init(|| Sandbox::start(&SandboxOptions { tcp: true, ..options() }).expect("start the source sandbox"))
}

/// The shared target server: tests restore into it under their own database names. It
/// listens on TCP too, for the tests of password logins over TCP.
pub fn target() -> &'static Sandbox {
    static T: OnceLock<Sandbox> = OnceLock::new();
    T.get_or_init(|| Sandbox::start(&SandboxOptions { tcp: true, ..options() }).expect("start the target sandbox"))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Held while the source server changes and while mydumper reads it. mydumper 0.10 takes
/// FLUSH TABLES WITH READ LOCK; a DROP DATABASE another test ran at that moment waited for
/// the lock, and mydumper then waited forever with it held (seen once in the drill suite).
pub fn source_guard(server: &Sandbox) -> Option<std::sync::MutexGuard<'static, ()>> {
    static SOURCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    std::ptr::eq(server, source()).then(|| SOURCE.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Runs SQL through the real `mariadb` client (as a user would), failing the test on error.
pub fn sql(server: &Sandbox, sql: &str) -> String {
    let _guard = source_guard(server);
    let out = Command::new("mariadb")
        .args(["--no-defaults", "-uroot", "-N", "-B", "--default-character-set=utf8mb4"])
        .arg(format!("--socket={}", server.socket().display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(sql.as_bytes())?;
            c.wait_with_output()
        })
        .expect("run mariadb");
    assert!(out.status.success(), "mariadb failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Loads the awkward data set into `db` on the source server.
pub fn load_awkward(db: &str) {
    load_awkward_into(source(), db);
}

/// Loads the awkward data set into `db` on `server`.
pub fn load_awkward_into(server: &Sandbox, db: &str) {
    let text = std::fs::read_to_string(repo_root().join("fixtures/awkward/source.sql")).unwrap();
    sql(server, &text.replace("`awkward`", &format!("`{db}`")));
}

/// Runs the floodgate binary.
pub fn floodgate(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args(args)
        .env("FLOODGATE_PROGRESS_INTERVAL", "0.2")
        .output()
        .expect("run floodgate");
    eprintln!(
        "floodgate {args:?} -> {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `floodgate restore SOURCE` into `server` as root over its socket, plus `extra` flags.
pub fn restore(server: &Sandbox, source: &Path, extra: &[&str]) -> Output {
    let socket = server.socket().display().to_string();
    let src = source.display().to_string();
    let mut args = vec!["restore", src.as_str(), "-S", socket.as_str(), "-u", "root", "--progress", "plain"];
    args.extend_from_slice(extra);
    floodgate(&args)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn fingerprint(server: &Sandbox, db: &str) -> Fingerprint {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let opts = floodgate_conn::ConnectOptions {
            socket: Some(server.socket().to_path_buf()),
            user: Some("root".into()),
            ..Default::default()
        };
        let mut conn = floodgate_conn::connect(&opts, &[]).await.unwrap();
        fingerprint::database(&mut conn, db).await.unwrap()
    })
}

/// Asserts two databases are the same data and definitions.
pub fn assert_same(a: &Fingerprint, b: &Fingerprint) {
    let diffs = a.differences(b);
    assert!(diffs.is_empty(), "fingerprints differ:\n{}", diffs.join("\n"));
    assert!(!a.tables.is_empty(), "compared an empty database");
}

/// Dumps `db` from the source with Debian's mydumper (0.10 layout) into a new temp dir.
pub fn mydumper(db: &str, extra: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("--socket={}", source().socket().display());
    let args = [&["-u", "root", "-B", db, "-G", "-E", "-R", "-t", "2", &socket], extra].concat();
    let out = run_mydumper(&args, &dir.path().join("dump"));
    assert!(out.status.success(), "mydumper failed: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// Runs mydumper with `args` into `out_dir`, alone on the source (see `source_guard`).
/// Debian's mydumper 0.10 sometimes deadlocks by itself: every thread waits in
/// `g_async_queue_pop`, its connections idle, for ever (seen twice, 2026-11-25 and -26, on
/// dumps that take a second). Such a run is killed after a minute and tried again, up to
/// three times; the tests are about floodgate, not about that bug.
pub fn run_mydumper(args: &[&str], out_dir: &Path) -> Output {
    let _guard = source_guard(source());
    for attempt in 1..=3 {
        let _ = std::fs::remove_dir_all(out_dir);
        let mut child = Command::new("mydumper")
            .args(args)
            .arg("-o")
            .arg(out_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run mydumper (scripts/test installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().expect("wait for mydumper").is_none() {
            if std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if child.try_wait().expect("wait for mydumper").is_some() {
            return child.wait_with_output().expect("mydumper's output");
        }
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("mydumper {args:?} hung (attempt {attempt} of 3): killed");
    }
    panic!("mydumper {args:?} hung three times");
}
