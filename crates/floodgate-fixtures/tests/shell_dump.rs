//! Writes the awkward data set as MySQL Shell dumps from a real sandbox server, in every
//! dialect and compression, and checks the layout a Shell loader relies on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use floodgate_conn::ConnectOptions;
use floodgate_fixtures::{write_shell_dump, Compression, Dialect, ShellDumpOptions};
use floodgate_sandbox::{Sandbox, SandboxOptions};
use mysql_async::prelude::Queryable;
use serde_json::Value;

/// Extra tables for paths the awkward set does not take far enough: a HASH-partitioned
/// table and a keyless one big enough to be cut by size into several files.
const EXTRA: &str = "
SET SESSION max_recursive_iterations = 100000;
CREATE TABLE awkward.hashed (id INT NOT NULL PRIMARY KEY, v VARCHAR(30)) PARTITION BY HASH (id) PARTITIONS 3;
INSERT INTO awkward.hashed WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 500) SELECT n, CONCAT('h', n) FROM s;
CREATE TABLE awkward.heap (a INT, b VARCHAR(100), KEY (a));
INSERT INTO awkward.heap WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1500) SELECT n % 10, REPEAT('x', 80) FROM s;
ANALYZE TABLE awkward.bulk, awkward.hashed, awkward.heap, awkward.orders, awkward.customers;
";

fn sql(server: &Sandbox, text: &str) {
    let mut child = Command::new("mariadb")
        .args(["--no-defaults", "-uroot", "--default-character-set=utf8mb4"])
        .arg(format!("--socket={}", server.socket().display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mariadb");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "mariadb: {}", String::from_utf8_lossy(&out.stderr));
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!text.ends_with('\n'), "{}: Shell writes no trailing newline", path.display());
    serde_json::from_str(&text).unwrap()
}

fn decompress(path: &Path, compression: Compression) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap();
    match compression {
        Compression::Zstd => zstd::decode_all(raw.as_slice()).unwrap(),
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut out).unwrap();
            out
        }
        Compression::None => raw,
    }
}

/// The loader's discovery (§5.1): `B@0`, `B@1`, … until one is missing, then `B@@i`.
/// Returns the files in order, and checks nothing else in the directory claims the stream.
fn stream_files(dir: &Path, basename: &str, ext: &str, chunking: bool) -> Vec<String> {
    if !chunking {
        let name = format!("{basename}.{ext}");
        assert!(dir.join(&name).exists(), "{name} missing");
        return vec![name];
    }
    let mut files = Vec::new();
    for i in 0.. {
        let name = format!("{basename}@{i}.{ext}");
        if dir.join(&name).exists() {
            files.push(name);
            continue;
        }
        let last = format!("{basename}@@{i}.{ext}");
        assert!(dir.join(&last).exists(), "{last} missing after {files:?}");
        files.push(last);
        break;
    }
    let prefix = format!("{basename}@");
    let listed = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            n.strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(&format!(".{ext}")))
                .is_some_and(|mid| mid.trim_start_matches('@').chars().all(|c| c.is_ascii_digit()) && !mid.is_empty())
        })
        .count();
    assert_eq!(listed, files.len(), "stray chunk files of {basename}");
    files
}

struct Checked {
    data_files: BTreeSet<String>,
}

async fn check_dump(dir: &Path, options: &ShellDumpOptions, conn: &mut mysql_async::Conn) -> Checked {
    let top = read_json(&dir.join("@.json"));
    let text = std::fs::read_to_string(dir.join("@.json")).unwrap();
    assert!(text.starts_with("{\n    \"dumper\": \"mysqlsh Ver 8.4.8"), "key order and indent: {text}");
    assert_eq!(top["version"], "2.0.1");
    assert!(top["serverVersion"].as_str().unwrap().starts_with("5.6.0-"));
    let done = options.write_done.then(|| read_json(&dir.join("@.done.json")));
    assert_eq!(dir.join("@.done.json").exists(), options.write_done);
    let mut data_files = BTreeSet::new();
    for schema in top["schemas"].as_array().unwrap() {
        let schema = schema.as_str().unwrap();
        let sb = top["basenames"][schema].as_str().unwrap();
        let sjson = read_json(&dir.join(format!("{sb}.json")));
        assert!(dir.join(format!("{sb}.sql")).exists());
        for view in sjson["views"].as_array().unwrap() {
            let vb = sjson["basenames"][view.as_str().unwrap()].as_str().unwrap();
            assert!(dir.join(format!("{vb}.pre.sql")).exists() && dir.join(format!("{vb}.sql")).exists());
        }
        for table in sjson["tables"].as_array().unwrap() {
            let table = table.as_str().unwrap();
            let tb = sjson["basenames"][table].as_str().unwrap();
            let tjson = read_json(&dir.join(format!("{tb}.json")));
            assert!(dir.join(format!("{tb}.sql")).exists(), "{tb}.sql");
            if !tjson["triggers"].as_array().unwrap().is_empty() {
                assert!(dir.join(format!("{tb}.triggers.sql")).exists());
            }
            let ext = tjson["extension"].as_str().unwrap();
            let parts = tjson["basenames"].as_object().unwrap();
            let streams: Vec<String> = if parts.is_empty() {
                vec![tb.to_string()]
            } else {
                parts.values().map(|v| v.as_str().unwrap().to_string()).collect()
            };
            let mut rows = 0u64;
            for stream in streams {
                let files = stream_files(dir, &stream, ext, options.chunking);
                for (i, name) in files.iter().enumerate() {
                    let data = decompress(&dir.join(name), options.compression);
                    let idx = std::fs::read(dir.join(format!("{name}.idx"))).unwrap();
                    assert_eq!(idx.len() % 8, 0);
                    let last = u64::from_be_bytes(idx[idx.len() - 8..].try_into().unwrap());
                    assert_eq!(last, data.len() as u64, "{name}: last .idx entry");
                    let terminator = options.dialect.lines_terminated_by();
                    assert!(data.is_empty() || data.ends_with(terminator), "{name}: whole rows");
                    rows += data.windows(terminator.len()).filter(|w| *w == terminator).count() as u64;
                    if let Some(done) = &done {
                        assert_eq!(
                            done["chunkFileBytes"][name].as_u64(),
                            Some(data.len() as u64),
                            "{name}: chunkFileBytes"
                        );
                    }
                    if table == "heap" && options.chunking && i + 1 == files.len() {
                        assert!(data.is_empty(), "unindexed tables end with an empty @@N");
                        assert!(files.len() >= 3, "heap should be cut by size: {files:?}");
                    }
                    data_files.insert(name.clone());
                }
            }
            let q = format!("SELECT COUNT(*) FROM `{}`.`{}`", schema, table.replace('`', "``"));
            let count: u64 = conn.query_first(q).await.unwrap().unwrap();
            if let Some(done) = &done {
                assert_eq!(done["tableRows"][schema][table].as_u64(), Some(count), "{table}: tableRows");
            }
            // line counting over-counts only where a value holds a raw terminator, which
            // escaping rules out for every dialect written here
            assert_eq!(rows, count, "{table}: rows in the data files");
        }
    }
    if let Some(done) = &done {
        let listed: BTreeSet<String> = done["chunkFileBytes"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(listed, data_files, "chunkFileBytes lists exactly the data files");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".dumping"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    Checked { data_files }
}

#[tokio::test(flavor = "current_thread")]
async fn awkward_set_in_every_dialect_and_compression() {
    let server = Sandbox::start(&SandboxOptions::default()).expect("start a sandbox");
    let awkward = std::fs::read_to_string(repo_root().join("fixtures/awkward/source.sql")).unwrap();
    sql(&server, &awkward);
    sql(&server, EXTRA);
    let connect =
        ConnectOptions { socket: Some(server.socket().to_path_buf()), user: Some("root".into()), ..Default::default() };
    let mut check_conn = floodgate_conn::connect(&connect, &[]).await.unwrap();
    let runs = [
        (Dialect::Default, Compression::Zstd, true),
        (Dialect::Default, Compression::Gzip, false),
        (Dialect::Default, Compression::None, true),
        (Dialect::Csv, Compression::Zstd, true),
        (Dialect::Tsv, Compression::Gzip, true),
        (Dialect::CsvUnix, Compression::None, true),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (i, (dialect, compression, chunking)) in runs.into_iter().enumerate() {
        let options = ShellDumpOptions {
            schemas: if i % 2 == 0 { vec![] } else { vec!["awkward".into()] },
            dialect,
            compression,
            bytes_per_chunk: 20_000,
            chunking,
            checksum: i == 0,
            users: i == 0,
            write_done: i != 5,
        };
        let dir = tmp.path().join(format!("run{i}"));
        let mut conn = floodgate_conn::connect(&connect, &[]).await.unwrap();
        let summary = write_shell_dump(&mut conn, &dir, &options).await.unwrap();
        let checked = check_dump(&dir, &options, &mut check_conn).await;
        assert_eq!(summary.chunk_file_bytes.len(), checked.data_files.len());
        if options.checksum {
            let sums = read_json(&dir.join("@.checksums.json"));
            assert_eq!(sums["data"]["awkward"]["bulk"]["indexColumns"][0], "id");
            assert!(sums["data"]["awkward"]["heap"]["partitions"][""]["-1"]["checksum"].as_str().unwrap().len() == 64);
        }
        if dialect == Dialect::Default && chunking {
            let top = read_json(&dir.join("@.json"));
            assert_eq!(top["capabilities"][0]["id"], "partition_awareness");
            let hashed = read_json(&dir.join("awkward@hashed.json"));
            assert_eq!(hashed["partitions"].as_array().unwrap().len(), 3);
        }
    }
    drop(server);
}
