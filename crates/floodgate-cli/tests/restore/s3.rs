//! Backups in object storage: a real S3-compatible server (s3s-fs, started by
//! floodgate-sandbox on a loopback port) holds them; floodgate reads them over the protocol
//! with the credentials and endpoint a user would give.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use floodgate_sandbox::S3Sandbox;

use crate::common::*;
use crate::mysqldump::{compress, mariadb_dump};

const BUCKET: &str = "backups";

/// The store the tests share, with the bucket made, and this process's storage client
/// pointed at it (to upload what the tests restore).
fn store() -> &'static S3Sandbox {
    static STORE: OnceLock<S3Sandbox> = OnceLock::new();
    STORE.get_or_init(|| {
        let s3 = S3Sandbox::start().expect("start s3s-fs");
        s3.create_bucket(BUCKET).unwrap();
        floodgate_storage::configure(floodgate_storage::StoreOptions {
            endpoint: Some(s3.endpoint()),
            credentials: Some(floodgate_storage::Credentials {
                key_id: s3.access_key().into(),
                secret: S3Sandbox::SECRET_KEY.into(),
            }),
            ..Default::default()
        });
        s3
    })
}

/// Uploads the file at `path` as `s3://backups/KEY` (through the S3 API, as a backup job
/// would), returning the URL.
fn upload(path: &Path, key: &str) -> String {
    store();
    let url = format!("s3://{BUCKET}/{key}");
    floodgate_storage::upload(&url, std::fs::File::open(path).unwrap()).unwrap();
    url
}

/// floodgate with the store's endpoint and credentials.
fn floodgate_s3(s3: &S3Sandbox, args: &[&str]) -> Command {
    floodgate_at(s3, &s3.endpoint(), args)
}

/// floodgate with the store's credentials, pointed at `endpoint`.
fn floodgate_at(s3: &S3Sandbox, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_floodgate"));
    cmd.args(args).arg("--s3-endpoint").arg(endpoint).env("FLOODGATE_PROGRESS_INTERVAL", "0.2");
    for (k, v) in s3.env() {
        cmd.env(k, v);
    }
    cmd
}

fn run(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap();
    eprintln!("{cmd:?} -> {:?}\n--- stderr\n{}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    out
}

fn restore_args<'a>(url: &'a str, socket: &'a str) -> Vec<&'a str> {
    vec!["restore", url, "-S", socket, "-u", "root", "--progress", "plain"]
}

/// A mysqldump file in every compression, restored straight from the bucket: the target
/// ends with the source's fingerprint; `inspect` describes it, `drill` passes on it.
#[test]
fn a_dump_in_a_bucket_restores_exactly_in_every_compression() {
    let db = "s3_dump";
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let plain = mariadb_dump(dir.path(), &["--databases", db]);
    let socket = target().socket().display().to_string();
    for (i, tool) in ["none", "gzip", "zstd"].into_iter().enumerate() {
        let copy = dir.path().join(format!("dump{i}.sql"));
        std::fs::copy(&plain, &copy).unwrap();
        let file = if tool == "none" { copy } else { compress(&copy, tool) };
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let url = upload(&file, &format!("nightly/{name}"));
        let out = run(floodgate_s3(store(), &[&restore_args(&url, &socket)[..], &["-t", "3"]].concat()));
        assert!(out.status.success(), "{tool}: {}", stderr(&out));
        assert_same(&fingerprint(source(), db), &fingerprint(target(), db));
        sql(target(), &format!("DROP DATABASE `{db}`; DROP DATABASE IF EXISTS floodgate"));
    }
    let url = format!("s3://{BUCKET}/nightly/dump2.sql.zst");
    let out = run(floodgate_s3(store(), &["inspect", &url]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(db), "{}", String::from_utf8_lossy(&out.stdout));
    let report = dir.path().join("drill.json");
    let metrics = dir.path().join("drill.prom");
    let out = run(floodgate_s3(
        store(),
        &["drill", &url, "--report", &report.display().to_string(), "--prometheus", &metrics.display().to_string()],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["status"], "success", "{report}");
    assert!(std::fs::read_to_string(&metrics).unwrap().contains("floodgate_drill"));
}

/// Wrong credentials, a missing bucket or object, and an endpoint nothing listens on: each
/// a clear error and a non-zero exit, before the target is touched.
#[test]
fn bad_credentials_buckets_and_endpoints_fail_before_the_target_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.sql");
    std::fs::write(&file, "-- MariaDB dump\nCREATE DATABASE s3_never;\n-- Dump completed on 2026-12-02\n").unwrap();
    let url = upload(&file, "tiny.sql");
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let socket = server.socket().display().to_string();
    let untouched = |out: &Output, needle: &str| {
        assert!(!out.status.success());
        assert!(stderr(out).contains(needle), "expected {needle:?} in {}", stderr(out));
        assert!(!stderr(out).contains(S3Sandbox::SECRET_KEY), "the secret is never printed");
        assert_eq!(sql(&server, "SHOW DATABASES LIKE 's3_never'").trim(), "");
        assert_eq!(sql(&server, "SHOW DATABASES LIKE 'floodgate'").trim(), "");
    };

    let mut wrong_key = floodgate_s3(store(), &restore_args(&url, &socket));
    wrong_key.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    untouched(&run(wrong_key), "access denied");

    let missing_bucket = "s3://no-such-bucket/tiny.sql";
    untouched(&run(floodgate_s3(store(), &restore_args(missing_bucket, &socket))), "s3://no-such-bucket/tiny.sql");
    let missing_key = format!("s3://{BUCKET}/no/such.sql");
    untouched(&run(floodgate_s3(store(), &restore_args(&missing_key, &socket))), "no such object");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = floodgate_at(store(), &format!("http://127.0.0.1:{port}"), &restore_args(&url, &socket));
    let started = std::time::Instant::now();
    let out = run(unreachable);
    untouched(&out, &format!("127.0.0.1:{port}"));
    assert!(started.elapsed().as_secs() < 30, "an unreachable store fails in seconds");
}

/// A damaged object (a bad disk under the store) is an integrity failure, exit 3, naming it.
#[test]
fn a_corrupted_object_is_an_integrity_failure_naming_it() {
    let db = "s3_corrupt";
    load_awkward(db);
    let dir = tempfile::tempdir().unwrap();
    let file = compress(&mariadb_dump(dir.path(), &["--databases", db]), "zstd");
    let url = upload(&file, "damaged/dump.sql.zst");
    let stored = store().object_file(BUCKET, "damaged/dump.sql.zst");
    let mut bytes = std::fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&stored, &bytes).unwrap();
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let socket = server.socket().display().to_string();
    let out = run(floodgate_s3(store(), &restore_args(&url, &socket)));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(&url), "{}", stderr(&out));
}

/// The store stops answering mid-restore (SIGSTOP) for longer than a request may take, then
/// comes back (SIGCONT): floodgate waits, tries again, and the restore ends exact.
#[test]
fn a_store_that_stops_mid_restore_is_waited_for() {
    let db = "s3_paused";
    load_awkward(db);
    sql(
        source(),
        &format!(
            "SET SESSION max_recursive_iterations = 1000000;
             INSERT INTO `{db}`.bulk SELECT n, (n * 7919) % 1000, MD5(n), CONCAT(SHA1(n), '-', n) \
             FROM (WITH RECURSIVE seq(n) AS (SELECT 2001 UNION ALL SELECT n + 1 FROM seq WHERE n < 60000) \
             SELECT n FROM seq) s;"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = mariadb_dump(dir.path(), &["--databases", db]);
    // The shared store: the other tests using it meanwhile wait out the pause too.
    let own = store();
    let url = upload(&file, "paused/dump.sql");
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let socket = server.socket().display().to_string();
    let mut cmd = floodgate_s3(own, &[&restore_args(&url, &socket)[..], &["-t", "2", "--s3-timeout", "1"]].concat());
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = read_lines(child.stderr.take().unwrap());
    // Paused once rows are loading, not before the restore began.
    let mut seen = Vec::new();
    loop {
        let line = lines.recv().expect("floodgate ended before loading rows");
        let loading = line.contains("floodgate: data:") && !line.contains(" 0 rows");
        seen.push(line);
        if loading {
            break;
        }
    }
    let pid = own.pid().unwrap().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    seen.extend(lines.iter());
    let text = seen.join("\n");
    eprintln!("{text}");
    assert!(status.success(), "{text}");
    assert!(text.contains("trying again"), "the stall was seen and retried: {text}");
    assert_same(&fingerprint(source(), db), &fingerprint(&server, db));
}

fn read_lines(stream: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
