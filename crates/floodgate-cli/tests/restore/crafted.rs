//! Crafted input: a decompression bomb in place of a chunk and a statement that never ends
//! are integrity errors (exit 3) found at once, in bounded memory, whatever the backup
//! claims. Each run is watched from outside: its peak resident memory and its duration.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use crate::native::{chunk_files, dump, manifest, write_manifest};

/// What DESIGN.md promises for crafted input: exit 3 within seconds, memory well inside the
/// default budget (256 MiB) plus the program itself.
const PEAK_RSS_MIB: f64 = 300.0;
const SECONDS: f64 = 30.0;
/// A run that takes this long is killed (the test then fails on its exit code and time).
const DEADLINE: Duration = Duration::from_secs(120);

/// 250,000 RLE blocks: a 1 MB file that decompresses to 32 GB of `x`, one endless row.
const BOMB_BLOCKS: usize = 250_000;

fn fails_at_once(w: &Watched, needles: &[&str]) {
    fails_at_once_with(w, 3, needles)
}

fn fails_at_once_with(w: &Watched, code: i32, needles: &[&str]) {
    let err = stderr(&w.out);
    assert_eq!(w.out.status.code(), Some(code), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
    assert!(w.seconds < SECONDS, "took {:.1}s", w.seconds);
    assert!(w.peak_rss_mib < PEAK_RSS_MIB, "peak RSS {:.0} MiB", w.peak_rss_mib);
}

fn restore_watched(server: &floodgate_sandbox::Sandbox, backup: &Path, extra: &[&str]) -> Watched {
    let socket = server.socket().display().to_string();
    let src = backup.display().to_string();
    let mut args = vec!["restore", src.as_str(), "-S", socket.as_str(), "-u", "root", "--progress", "plain"];
    args.extend_from_slice(extra);
    floodgate_watched(&args, None, DEADLINE)
}

/// A native chunk replaced by a zstd bomb, given to `restore` and `verify`: with the
/// manifest untouched the file's size on disk gives it away before a byte is read; with a
/// manifest rewritten to the bomb's size and SHA-256 (a careless or hostile rewrite),
/// decompression stops one byte past the chunk's declared uncompressed size. No row of the
/// table commits.
#[test]
fn a_zstd_bomb_in_place_of_a_native_chunk_fails_restore_and_verify_at_once() {
    let db = "crafted_bomb";
    load_awkward(db);
    let (_tmp, backup) = dump(db, &[]);
    let victim = chunk_files(&backup, "bulk")[0].clone();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    let bomb = zstd_bomb(b"", b'x', BOMB_BLOCKS);
    std::fs::write(&victim, &bomb).unwrap();
    let fresh = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let verify = |needles: &[&str]| {
        let w = floodgate_watched(&["verify", &backup.display().to_string()], None, DEADLINE);
        fails_at_once(&w, needles);
    };

    let on_disk = format!("{} bytes on disk", bomb.len());
    verify(&[&name, &on_disk]);
    let w = restore_watched(&fresh, &backup, &["-t", "2"]);
    fails_at_once(&w, &[&name, &on_disk]);

    let mut m = manifest(&backup);
    let chunk =
        &mut m["databases"][0]["tables"].as_array_mut().unwrap().iter_mut().find(|t| t["name"] == "bulk").unwrap()
            ["chunks"][0];
    chunk["compressed_bytes"] = bomb.len().into();
    chunk["sha256"] = sha256_hex(&bomb).into();
    let declared = chunk["bytes"].as_u64().unwrap();
    write_manifest(&backup, &m);
    let past = format!("more than the {declared} decompressed bytes the manifest declares");
    verify(&[&name, &past]);
    let w = restore_watched(&fresh, &backup, &["-t", "2"]);
    fails_at_once(&w, &[&name, &past]);
    // The table is one chunk, so none of its rows may be there.
    assert_eq!(chunk_files(&backup, "bulk").len(), 1);
    let tables =
        format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'bulk'");
    if sql(&fresh, &tables).trim() == "1" {
        assert_eq!(sql(&fresh, &format!("SELECT COUNT(*) FROM `{db}`.bulk")).trim(), "0");
    }
}

/// Writes a dump whose last statement never ends: a header, then an extended INSERT of
/// `(1),` for up to 8 GiB, generated as it is read (never on disk). Stops when the reader
/// goes away.
fn endless_statement(db: &'static str) -> Box<dyn FnOnce(std::process::ChildStdin) + Send> {
    Box::new(move |mut stdin| {
        if stdin.write_all(endless_head(db).as_bytes()).is_err() {
            return;
        }
        let block = b",(1)".repeat(1 << 18);
        let mut written = 0u64;
        while written < 8 << 30 && stdin.write_all(&block).is_ok() {
            written += block.len() as u64;
        }
    })
}

fn endless_head(db: &str) -> String {
    format!(
        "-- MariaDB dump 10.19\n/*!40101 SET NAMES utf8mb4 */;\nCREATE DATABASE `{db}`;\nUSE `{db}`;\n\
         CREATE TABLE `t` (`a` int);\nINSERT INTO `t` VALUES (1)"
    )
}

/// A mysqldump stream on standard input whose INSERT never ends is refused once it passes
/// the largest statement the memory budget allows (a share of it per loader), naming the
/// statement's offset and the limit (exit 3: damage); with the target's max_allowed_packet
/// smaller, that is the limit and the error says so (exit 1: the statement may be genuine and
/// the target set too small for it).
#[test]
fn an_endless_statement_on_stdin_is_refused_at_the_limit_in_bounded_memory() {
    let socket = target().socket().display().to_string();
    let args = ["restore", "-", "-S", &socket, "-u", "root", "--progress", "plain"];
    let w = floodgate_watched(&args, Some(endless_statement("crafted_endless")), DEADLINE);
    // 256 MiB / (2 × 4 loaders + 4).
    let limit = (256u64 << 20) / 12;
    let offset = endless_head("crafted_endless").find("INSERT").unwrap();
    let larger = format!("the statement at byte {offset} is larger than {limit} bytes");
    fails_at_once(&w, &["<stdin>", &larger, "--memory-budget (256 MiB)"]);

    let small = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    sql(&small, "SET GLOBAL max_allowed_packet = 4194304");
    let socket = small.socket().display().to_string();
    let args = ["restore", "-", "-S", &socket, "-u", "root", "--progress", "plain"];
    let w = floodgate_watched(&args, Some(endless_statement("crafted_packet")), DEADLINE);
    fails_at_once_with(&w, 1, &["larger than 4194304 bytes", "the target's max_allowed_packet"]);
}

/// A mydumper chunk file replaced by a small compressed file that expands to one endless
/// INSERT (a string that never closes) is refused at the statement limit; no row of its
/// table commits. zstd: a 1 MB file of 32 GB; gzip: 200 KB of 200 MB (deflate tops out near
/// 1,000:1).
#[test]
fn an_endless_statement_in_a_compressed_mydumper_chunk_is_refused_in_bounded_memory() {
    let head = b"/*!40101 SET NAMES binary*/;\nINSERT INTO `bulk` VALUES (400,'";
    let zstd = ("sql-zstd", "awkward.bulk.00002.sql.zst", zstd_bomb(head, b'x', BOMB_BLOCKS));
    let gzip = ("sql-gz", "awkward.bulk.00002.sql.gz", gzip_of_endless_string(head, 200 << 20));
    for (fixture, victim, bomb) in [zstd, gzip] {
        let dir = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(repo_root().join("fixtures/mydumper-modern").join(fixture)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
        }
        std::fs::write(dir.path().join(victim), bomb).unwrap();
        let fresh = floodgate_sandbox::Sandbox::start(&options()).unwrap();
        let w = restore_watched(&fresh, dir.path(), &["-t", "2"]);
        fails_at_once(&w, &[victim, "is larger than", "bytes read without its end"]);
        // Rows 400..799 live in chunk 2.
        let exists = sql(
            &fresh,
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'awkward' AND TABLE_NAME = 'bulk'",
        );
        if exists.trim() == "1" {
            assert_eq!(sql(&fresh, "SELECT COUNT(*) FROM awkward.bulk WHERE id BETWEEN 400 AND 799").trim(), "0");
        }
    }
}

/// `head` and then `len` bytes of `x`, through the real `gzip -1`, streamed (never whole in
/// memory or on disk uncompressed).
fn gzip_of_endless_string(head: &[u8], len: usize) -> Vec<u8> {
    let mut gzip = std::process::Command::new("gzip")
        .arg("-1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run gzip");
    let mut stdin = gzip.stdin.take().unwrap();
    let head = head.to_vec();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&head).unwrap();
        let block = vec![b'x'; 1 << 20];
        for _ in 0..len / block.len() {
            stdin.write_all(&block).unwrap();
        }
    });
    let out = gzip.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// A genuine statement larger than the budget's share is refused with advice that works:
/// the same dump restores with a larger `--memory-budget`.
#[test]
fn a_statement_over_the_budget_share_restores_with_a_larger_budget() {
    let feed = |db: &'static str| -> Box<dyn FnOnce(std::process::ChildStdin) + Send> {
        Box::new(move |mut stdin| {
            let blob = "x".repeat(3 << 20);
            let dump = format!(
                "-- MariaDB dump 10.19\nCREATE DATABASE `{db}`;\nUSE `{db}`;\nCREATE TABLE `t` (`id` int PRIMARY KEY, \
                 `b` longblob);\nINSERT INTO `t` VALUES (1,'{blob}');\n-- Dump completed on 2026-11-27 10:00:00\n"
            );
            let _ = stdin.write_all(dump.as_bytes());
        })
    };
    let socket = target().socket().display().to_string();
    let run = |db: &'static str, budget: &str| {
        let args =
            ["restore", "-", "-S", &socket, "-u", "root", "--progress", "plain", "-t", "1", "--memory-budget", budget];
        floodgate_watched(&args, Some(feed(db)), DEADLINE)
    };
    // 16 MiB / (2 × 1 + 4): 2.67 MiB.
    let w = run("crafted_share_small", "16");
    fails_at_once(&w, &["larger than 2796202 bytes", "raise --memory-budget"]);
    let w = run("crafted_share_large", "32");
    assert!(w.out.status.success(), "{}", stderr(&w.out));
    assert_eq!(sql(target(), "SELECT LENGTH(b) FROM crafted_share_large.t").trim(), (3 << 20).to_string());
}
