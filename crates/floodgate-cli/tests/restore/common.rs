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

/// Grows the awkward set's `bulk` table of `db` on `server` to `last` rows (ids 2001 up),
/// for tests that need a table with many chunks or a large statement.
pub fn grow_bulk(server: &Sandbox, db: &str, last: u64) {
    sql(
        server,
        &format!(
            "SET SESSION max_recursive_iterations = 1000000;
             INSERT INTO `{db}`.bulk SELECT n, (n * 7919) % 1000, MD5(n), CONCAT(SHA1(n), '-', n) \
             FROM (WITH RECURSIVE seq(n) AS (SELECT 2001 UNION ALL SELECT n + 1 FROM seq WHERE n < {last}) \
             SELECT n FROM seq) s;"
        ),
    );
}

/// Points this test process's storage client at `s3` (to upload what the tests restore).
pub fn point_storage_at(s3: &floodgate_sandbox::S3Sandbox) {
    floodgate_storage::configure(floodgate_storage::StoreOptions {
        endpoint: Some(s3.endpoint()),
        credentials: Some(floodgate_storage::Credentials {
            key_id: s3.access_key().into(),
            secret: floodgate_sandbox::S3Sandbox::SECRET_KEY.into(),
        }),
        ..Default::default()
    });
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

/// A zstd frame that decompresses to `prefix` and then `blocks` × 128 KiB of `byte`: RLE
/// blocks are 4 bytes each and expand 32,768:1, so 250,000 of them (1 MB) give 32 GB. Its
/// window is 128 KiB, so decoding it needs little memory: what it costs is up to the reader.
pub fn zstd_bomb(prefix: &[u8], byte: u8, blocks: usize) -> Vec<u8> {
    const BLOCK: u32 = 128 << 10;
    assert!(prefix.len() <= BLOCK as usize && blocks > 0);
    // Magic; frame header: no content size, not single segment; window 2^(10 + 7) bytes.
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3];
    if !prefix.is_empty() {
        // A raw block: not last, type 0, its size.
        out.extend_from_slice(&((prefix.len() as u32) << 3).to_le_bytes()[..3]);
        out.extend_from_slice(prefix);
    }
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        // An RLE block: type 1, regenerated size BLOCK, one byte of content.
        out.extend_from_slice(&(last | 1 << 1 | BLOCK << 3).to_le_bytes()[..3]);
        out.push(byte);
    }
    out
}

/// The lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut hashing = floodgate_pipeline::HashingReader::new(bytes);
    std::io::copy(&mut hashing, &mut std::io::sink()).unwrap();
    hashing.hex()
}

/// A floodgate run watched from outside.
pub struct Watched {
    pub out: Output,
    /// The process's own peak resident memory (VmHWM in /proc/PID/status, sampled every
    /// 10 ms until it exits): not that of a sandbox server it starts, which `/usr/bin/time`
    /// would count in (the sandbox's guardian reaps the server, and floodgate the guardian).
    pub peak_rss_mib: f64,
    pub seconds: f64,
}

/// Runs floodgate with `args`, its standard input written by `feed` (in a thread) when
/// given, killing it after `deadline`.
pub fn floodgate_watched(
    args: &[&str],
    feed: Option<Box<dyn FnOnce(std::process::ChildStdin) + Send>>,
    deadline: std::time::Duration,
) -> Watched {
    use std::io::Read;
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args(args)
        .env("FLOODGATE_PROGRESS_INTERVAL", "0.2")
        .stdin(if feed.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run floodgate");
    let pid = child.id();
    let feeder = feed.map(|f| {
        let stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || f(stdin))
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr_text = drain(Box::new(child.stderr.take().unwrap()));
    let mut peak_kib = 0u64;
    let status = loop {
        peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > deadline {
            eprintln!("floodgate {args:?} still runs after {deadline:?}: killed");
            child.kill().unwrap();
            break child.wait().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let seconds = started.elapsed().as_secs_f64();
    if let Some(f) = feeder {
        f.join().unwrap();
    }
    let out = Output { status, stdout: stdout.join().unwrap(), stderr: stderr_text.join().unwrap() };
    let peak_rss_mib = peak_kib as f64 / 1024.0;
    eprintln!(
        "floodgate {args:?} -> {:?} in {seconds:.1}s, peak RSS {peak_rss_mib:.0} MiB\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    Watched { out, peak_rss_mib, seconds }
}

/// VmHWM (peak resident set) of a live process, in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Writes `db` from the source in Shell's layout; the dump is `dir/dump`.
pub fn shell_dump(db: &str, options: floodgate_fixtures::ShellDumpOptions) -> (tempfile::TempDir, PathBuf) {
    shell_dump_schemas(&[db], options)
}

/// Writes the schemas `dbs` from the source in Shell's layout (`dumpSchemas`); the dump is
/// `dir/dump`.
pub fn shell_dump_schemas(dbs: &[&str], options: floodgate_fixtures::ShellDumpOptions) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dump");
    let _guard = source_guard(source());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let opts = floodgate_conn::ConnectOptions {
            socket: Some(source().socket().to_path_buf()),
            user: Some("root".into()),
            ..Default::default()
        };
        let mut conn = floodgate_conn::connect(&opts, &[]).await.unwrap();
        let schemas = dbs.iter().map(|d| d.to_string()).collect();
        let options = floodgate_fixtures::ShellDumpOptions { schemas, users: false, ..options };
        floodgate_fixtures::write_shell_dump(&mut conn, &out, &options).await.unwrap();
    });
    (dir, out)
}
