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
        point_storage_at(&s3);
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
/// comes back (SIGCONT): floodgate waits, tries again, and the restore ends exact. A native
/// dump of many small chunks, so that GETs go on for the whole restore.
#[test]
fn a_store_that_stops_mid_restore_is_waited_for() {
    let db = "s3_paused";
    load_awkward(db);
    grow_bulk(source(), db, 60000);
    sql(source(), &format!("ANALYZE TABLE `{db}`.bulk"));
    let (_tmp, backup) = crate::native::dump(db, &["--chunk-size", "64KiB"]);
    // The shared store: the other tests using it meanwhile wait out the pause too.
    let own = store();
    let url = upload_dir(&backup, "paused");
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let socket = server.socket().display().to_string();
    let mut cmd = floodgate_s3(own, &[&restore_args(&url, &socket)[..], &["-t", "1", "--s3-timeout", "1"]].concat());
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

/// Uploads every file under `dir` to `s3://backups/PREFIX/...`; returns the prefix URL.
fn upload_dir(dir: &Path, prefix: &str) -> String {
    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut all = Vec::new();
    files(dir, &mut all);
    for file in all {
        let rel = file.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
        upload(&file, &format!("{prefix}/{rel}"));
    }
    format!("s3://{BUCKET}/{prefix}/")
}

/// The chunk files of table `t` in a native dump's manifest, relative to the dump.
fn chunk_names(backup: &Path, table: &str) -> Vec<String> {
    crate::native::chunk_files(backup, table)
        .iter()
        .map(|p| p.strip_prefix(backup).unwrap().to_string_lossy().into_owned())
        .collect()
}

fn object_gets(report: &Path) -> u64 {
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    report["object_gets"].as_u64().unwrap()
}

/// A native dump uploaded to a bucket is verified, restored and drilled from there: the
/// target ends with the source's fingerprint, as from disk.
#[test]
fn a_native_dump_in_a_bucket_verifies_restores_and_drills() {
    let db = "s3_native";
    load_awkward(db);
    sql(source(), &format!("ANALYZE TABLE `{db}`.bulk"));
    let (_tmp, backup) = crate::native::dump(db, &["--chunk-size", "16KiB", "-t", "3"]);
    let url = upload_dir(&backup, "native/rt");
    let out = run(floodgate_s3(store(), &["verify", &url]));
    assert!(out.status.success(), "{}", stderr(&out));
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let socket = server.socket().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json").display().to_string();
    let out =
        run(floodgate_s3(store(), &[&restore_args(&url, &socket)[..], &["-t", "3", "--report", &report]].concat()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(&server, db));
    assert!(object_gets(Path::new(&report)) > chunk_names(&backup, "bulk").len() as u64);
    let out = run(floodgate_s3(store(), &["drill", &url]));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `floodgate dump -o s3://...` writes the native format into the bucket (the manifest
/// last); restored from there, the target ends with the source's fingerprint. Each file went
/// up as soon as it was complete: the spool never held more than a file per worker, two
/// queued and one per uploader (as many as workers, up to four: `sink.rs`), far less than
/// the dump, and it is gone afterwards.
/// A second dump under the same prefix is refused.
#[test]
fn a_dump_written_to_a_bucket_restores_exactly() {
    let db = "s3_dumped";
    load_awkward(db);
    grow_bulk(source(), db, 40000);
    sql(source(), &format!("ANALYZE TABLE `{db}`.bulk"));
    let socket = source().socket().display().to_string();
    let url = format!("s3://{BUCKET}/dumped/{db}/");
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let report_file = tmp.path().join("dump.json").display().to_string();
    let dump = |url: &str| {
        let args = ["--chunk-size", "16KiB", "-t", "3", "--report", &report_file, db];
        let mut cmd = floodgate_s3(store(), &[&dump_args(&socket, url)[..], &args].concat());
        cmd.env("TMPDIR", &spool);
        run(cmd)
    };
    let out = dump(&url);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(store().object_file(BUCKET, &format!("dumped/{db}/manifest.json")).is_file());
    assert_eq!(files_under(&spool), 0, "the spool is removed");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    let (peak, total) = (report["spool_peak_bytes"].as_u64().unwrap(), report["compressed_bytes"].as_u64().unwrap());
    let largest = largest_file(&store().object_file(BUCKET, &format!("dumped/{db}")));
    assert!(report["chunks"].as_u64().unwrap() > 100, "{report}");
    assert!(peak > 0 && peak <= (3 + 2 + 3) * largest, "spool peak {peak}, largest file {largest}");
    assert!(peak * 10 < total, "spool peak {peak} of a {total} byte dump");
    // An empty file is uploaded as an empty object.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let empty_url = upload(empty.path(), "dumped/empty");
    assert_eq!(floodgate_storage::Object::open(&empty_url).unwrap().size(), 0);
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let target_socket = server.socket().display().to_string();
    // Named without its last `/`, as people type it.
    let out = run(floodgate_s3(store(), &restore_args(url.trim_end_matches('/'), &target_socket)));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(&server, db));
    let again = dump(&url);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already holds"), "{}", stderr(&again));
}

/// The store pauses mid-dump (SIGSTOP) for 3 s, longer than a request may take
/// (`--s3-timeout 1`): each upload cut by the timeout is tried again, and the dump waits
/// for the store rather than filling its spool. While the store is stopped the spool holds
/// at most a file per worker, two queued and one per uploader (here 2 + 2 + 2); the dump
/// then ends, and every chunk it uploaded verifies.
#[test]
fn a_store_that_pauses_mid_dump_makes_the_dump_wait() {
    let db = "s3_dump_paused";
    load_awkward(db);
    grow_bulk(source(), db, 60000);
    sql(source(), &format!("ANALYZE TABLE `{db}`.bulk"));
    let own = S3Sandbox::start().unwrap();
    own.create_bucket(BUCKET).unwrap();
    let (spool, reports) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let report = reports.path().join("dump.json").display().to_string();
    let extra = ["-t", "2", "--s3-timeout", "1", "--report", &report];
    let (child, pid) = dump_then_stop_the_store(&own, db, "paused", spool.path(), &extra);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let held = files_under(spool.path());
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    eprintln!("--- stderr\n{}", stderr(&out));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(held <= 2 + 2 + 2, "the spool held {held} files while the store was stopped");
    assert!(stderr(&out).contains("trying again"), "the stalled uploads were retried: {}", stderr(&out));
    assert_eq!(files_under(spool.path()), 0, "the spool is removed");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let (peak, total) = (report["spool_peak_bytes"].as_u64().unwrap(), report["compressed_bytes"].as_u64().unwrap());
    let largest = largest_file(&own.object_file(BUCKET, "paused"));
    assert!(peak <= (2 + 2 + 2) * largest, "spool peak {peak}, largest file {largest}");
    assert!(peak * 10 < total, "spool peak {peak} of a {total} byte dump");
    let out = run(floodgate_s3(&own, &["verify", &format!("s3://{BUCKET}/paused/")]));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The store stops answering mid-dump (SIGSTOP) for longer than a request may take
/// (`--s3-timeout 1`) and than uploads are retried (`--s3-retry-for 3`): the dump fails,
/// exit 1, naming the object
/// it could not upload, and writes no manifest, so readers refuse the prefix as an
/// unfinished dump (exit 3). Its spool is removed.
#[test]
fn a_store_that_stops_mid_dump_fails_it_without_a_manifest() {
    let db = "s3_dump_stalled";
    load_awkward(db);
    grow_bulk(source(), db, 60000);
    sql(source(), &format!("ANALYZE TABLE `{db}`.bulk"));
    let own = S3Sandbox::start().unwrap();
    own.create_bucket(BUCKET).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let extra = ["-t", "1", "--s3-timeout", "1", "--s3-retry-for", "3"];
    let (child, pid) = dump_then_stop_the_store(&own, db, "stalled", spool.path(), &extra);
    let stopped = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let waited = stopped.elapsed();
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    eprintln!("--- stderr\n{}", stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let url = format!("s3://{BUCKET}/stalled/");
    assert!(stderr(&out).contains(&format!("uploading {url}")), "the object is named: {}", stderr(&out));
    assert!(waited.as_secs() < 30, "the dump failed {waited:?} after the store stopped");
    assert!(!own.object_file(BUCKET, "stalled/manifest.json").exists(), "no manifest after a failed upload");
    assert_eq!(files_under(spool.path()), 0, "the spool is removed");
    let out = run(floodgate_s3(&own, &["inspect", &url]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("did not finish"), "{}", stderr(&out));
}

/// Starts `floodgate dump -o s3://backups/PREFIX/` of `db` into `own` with `spool` as its
/// TMPDIR, and stops the store (SIGSTOP) once chunks are going up, not before the dump began.
/// Returns the dump and the store's pid.
fn dump_then_stop_the_store(
    own: &S3Sandbox,
    db: &str,
    prefix: &str,
    spool: &Path,
    extra: &[&str],
) -> (std::process::Child, String) {
    let socket = source().socket().display().to_string();
    let url = format!("s3://{BUCKET}/{prefix}/");
    let args = [&dump_args(&socket, &url)[..], &["--chunk-size", "16KiB", db], extra].concat();
    let mut cmd = floodgate_s3(own, &args);
    let child = cmd.env("TMPDIR", spool).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let data = own.object_file(BUCKET, &format!("{prefix}/data"));
    let started = std::time::Instant::now();
    while largest_file(&data) == 0 {
        assert!(started.elapsed().as_secs() < 60, "no chunk was uploaded");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let pid = own.pid().unwrap().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    (child, pid)
}

/// Files under `dir`, at any depth.
fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.map(|e| e.unwrap().path()).map(|p| if p.is_dir() { files_under(&p) } else { 1 }).sum()
}

fn dump_args<'a>(socket: &'a str, url: &'a str) -> Vec<&'a str> {
    vec!["dump", "-S", socket, "-u", "root", "-o", url, "--progress", "none"]
}

/// The size of the largest file under `dir` but the manifest, which is never in the spool
/// (0 if there is none, or no `dir`).
fn largest_file(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let sizes = entries.map(|e| e.unwrap().path()).filter(|p| !p.ends_with("manifest.json")).map(|p| {
        if p.is_dir() {
            largest_file(&p)
        } else {
            std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0)
        }
    });
    sizes.max().unwrap_or(0)
}

/// A chunk object damaged in the store, or missing from it: exit 3, naming its key.
#[test]
fn a_damaged_or_missing_chunk_object_is_an_integrity_failure_naming_it() {
    let db = "s3_native_bad";
    load_awkward(db);
    sql(source(), &format!("ANALYZE TABLE `{db}`.bulk"));
    let (_tmp, backup) = crate::native::dump(db, &["--chunk-size", "16KiB"]);
    let chunk = chunk_names(&backup, "bulk")[1].clone();
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let socket = server.socket().display().to_string();

    let url = upload_dir(&backup, "native/damaged");
    let stored = store().object_file(BUCKET, &format!("native/damaged/{chunk}"));
    let mut bytes = std::fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&stored, &bytes).unwrap();
    let out = run(floodgate_s3(store(), &restore_args(&url, &socket)));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("{url}{chunk}")), "{}", stderr(&out));
    sql(&server, &format!("DROP DATABASE IF EXISTS `{db}`; DROP DATABASE IF EXISTS floodgate"));

    let url = upload_dir(&backup, "native/missing");
    std::fs::remove_file(store().object_file(BUCKET, &format!("native/missing/{chunk}"))).unwrap();
    let out = run(floodgate_s3(store(), &restore_args(&url, &socket)));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("{url}{chunk}")), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
    assert_eq!(sql(&server, &format!("SHOW DATABASES LIKE '{db}'")).trim(), "", "refused before anything changed");
}

/// kill -9 after three chunks committed, then the same command again: the restore ends with
/// the source's fingerprint, and the second run fetched only what the first had not
/// committed (it made at least three GETs fewer than a whole restore does).
#[test]
fn a_killed_restore_from_a_bucket_fetches_only_what_was_not_committed() {
    let db = "s3_native_resume";
    load_awkward(db);
    sql(source(), &format!("ANALYZE TABLE `{db}`.bulk"));
    let (_tmp, backup) = crate::native::dump(db, &["--chunk-size", "16KiB"]);
    let url = upload_dir(&backup, "native/resume");
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.json").display().to_string();
    let resumed = dir.path().join("resumed.json").display().to_string();

    let fresh = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let socket = fresh.socket().display().to_string();
    let out =
        run(floodgate_s3(store(), &[&restore_args(&url, &socket)[..], &["-t", "1", "--report", &whole]].concat()));
    assert!(out.status.success(), "{}", stderr(&out));

    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let socket = server.socket().display().to_string();
    let args = [&restore_args(&url, &socket)[..], &["-t", "1"]].concat();
    match crate::resume::run_command_to_failpoint(floodgate_s3(store(), &args), "data.chunk:3") {
        crate::resume::Run::Killed => {}
        crate::resume::Run::Ended(code, text) => panic!("data.chunk:3 was never reached: exit {code:?}\n{text}"),
    }
    let out = run(floodgate_s3(store(), &[&args[..], &["--report", &resumed]].concat()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(&server, db));
    let (whole, resumed) = (object_gets(Path::new(&whole)), object_gets(Path::new(&resumed)));
    assert!(resumed + 3 <= whole, "the resumed run made {resumed} GETs, a whole restore {whole}");
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

/// mydumper dumps uploaded to a bucket restore from there to the source's fingerprint: the
/// legacy layout (chunked plain, and gzip-compressed) and the modern one's LOAD DATA variant
/// (its .dat payloads streamed from their objects); inspect describes one, drill passes on it.
#[test]
fn mydumper_dumps_in_a_bucket_restore_exactly() {
    crate::mydumper::load_modern_fixture_source();
    let url = upload_dir(&crate::mydumper::modern_fixture("load-data"), "mydumper/modern");
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let socket = server.socket().display().to_string();
    let out = run(floodgate_s3(store(), &[&restore_args(&url, &socket)[..], &["-t", "3"]].concat()));
    assert!(out.status.success(), "modern: {}", stderr(&out));
    assert_same(&fingerprint(source(), "awkward"), &fingerprint(&server, "awkward"));

    let db = "s3_mydumper";
    crate::mydumper::load_awkward_for_legacy(db);
    let dir = tempfile::tempdir().unwrap();
    let socket = target().socket().display().to_string();
    for (i, flags) in [&["--rows", "300"][..], &["-c"]].into_iter().enumerate() {
        let dump = mydumper(db, flags);
        let url = upload_dir(&dump.path().join("dump"), &format!("mydumper/{i}"));
        let out = run(floodgate_s3(store(), &[&restore_args(&url, &socket)[..], &["-t", "3"]].concat()));
        assert!(out.status.success(), "{flags:?}: {}", stderr(&out));
        assert_same(&fingerprint(source(), db), &fingerprint(target(), db));
        sql(target(), &format!("DROP DATABASE `{db}`; DROP DATABASE IF EXISTS floodgate"));
    }
    let url = format!("s3://{BUCKET}/mydumper/1");
    let out = run(floodgate_s3(store(), &["inspect", &url]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("mydumper"), "{}", String::from_utf8_lossy(&out.stdout));
    let report = dir.path().join("drill.json");
    let out = run(floodgate_s3(store(), &["drill", &url, "--report", &report.display().to_string()]));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["status"], "success", "{report}");
    assert!(report["backup"]["bytes"].as_u64().unwrap() > 0, "{report}");
    assert!(report["backup"]["identity_sha256"].is_string(), "{report}");
}

/// A MySQL Shell dump (chunked, zstd, with @.checksums.json) in a bucket restores to the
/// source's fingerprint and drills; one whose data object is missing, or whose @.done.json
/// was never written, is refused with exit 3 naming the key, before the target is touched.
#[test]
fn a_shell_dump_in_a_bucket_restores_exactly_and_a_gap_is_refused() {
    use floodgate_fixtures::{Compression, ShellDumpOptions};
    let db = "s3_shell";
    load_awkward(db);
    let chunked = ShellDumpOptions { bytes_per_chunk: 20_000, checksum: true, ..Default::default() };
    let (_tmp, dump) = shell_dump(db, ShellDumpOptions { compression: Compression::Zstd, ..chunked });
    let url = upload_dir(&dump, "shell/whole");
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let socket = server.socket().display().to_string();
    let out = run(floodgate_s3(store(), &[&restore_args(&url, &socket)[..], &["-t", "3"]].concat()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same(&fingerprint(source(), db), &fingerprint(&server, db));
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("drill.json");
    let out = run(floodgate_s3(store(), &["drill", &url, "--report", &report.display().to_string()]));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["status"], "success", "{report}");

    // The same dump without one data object, then without @.done.json.
    let data = crate::shell::first_data_file(&dump, db, "bulk");
    let gap = data.file_name().unwrap().to_string_lossy().into_owned();
    for (prefix, left_out) in [("shell/gap", gap.as_str()), ("shell/unfinished", "@.done.json")] {
        let partial = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&dump).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap() != left_out {
                std::fs::copy(&path, partial.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        let url = upload_dir(partial.path(), prefix);
        let fresh = floodgate_sandbox::Sandbox::start(&options()).unwrap();
        let socket = fresh.socket().display().to_string();
        let out = run(floodgate_s3(store(), &restore_args(&url, &socket)));
        assert_eq!(out.status.code(), Some(3), "{left_out}: {}", stderr(&out));
        assert!(stderr(&out).contains(&format!("{prefix}/{left_out}")), "{left_out}: {}", stderr(&out));
        assert_eq!(sql(&fresh, &format!("SHOW DATABASES LIKE '{db}'")).trim(), "", "target untouched");
    }
}
