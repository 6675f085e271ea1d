//! Damaged or incomplete binary logs: a clear error naming the file and the offset, exit
//! code 3, and nothing applied.

use std::path::{Path, PathBuf};

use crate::common::*;
use crate::scenario::{replay, scenario};

fn copies(dir: &Path) -> Vec<PathBuf> {
    scenario()
        .binlogs
        .iter()
        .map(|p| {
            let to = dir.join(p.file_name().unwrap());
            std::fs::copy(p, &to).unwrap();
            to
        })
        .collect()
}

fn args(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|p| p.display().to_string()).collect()
}

fn assert_nothing_applied(target: &floodgate_sandbox::Sandbox) {
    assert_eq!(sql(target, "SELECT COUNT(*) FROM floodgate.binlog_batches").trim(), "0");
    assert_eq!(sql(target, "SELECT COUNT(*) FROM floodgate.binlog_checkpoint").trim(), "0");
}

/// A byte in the body of the event that holds `target` (not its header, whose length field
/// would make the damage a framing error instead of a checksum mismatch).
fn body_byte_near(binlog: &[u8], target: usize) -> usize {
    let mut offset = 4;
    loop {
        let size = u32::from_le_bytes(binlog[offset + 9..offset + 13].try_into().unwrap()) as usize;
        if offset + size > target {
            return offset + 19 + (size - 19 - 4) / 2;
        }
        offset += size;
    }
}

#[test]
fn corrupt_checksum_names_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let files = copies(dir.path());
    let victim = &files[1];
    let mut bytes = std::fs::read(victim).unwrap();
    let at = body_byte_near(&bytes, bytes.len() / 2);
    bytes[at] ^= 0x55;
    std::fs::write(victim, bytes).unwrap();
    let target = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let out = replay(&target, &args(&files), &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&victim.display().to_string()) && err.contains("at offset"), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert_nothing_applied(&target);
}

#[test]
fn truncated_file_names_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let files = copies(dir.path());
    let victim = files.last().unwrap();
    let bytes = std::fs::read(victim).unwrap();
    std::fs::write(victim, &bytes[..bytes.len() - 10]).unwrap();
    let target = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let out = replay(&target, &args(&files), &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&victim.display().to_string()) && err.contains("at offset"), "{err}");
    assert!(err.contains("truncated"), "{err}");
    assert_nothing_applied(&target);
}

#[test]
fn a_missing_file_is_a_gap_named_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = copies(dir.path());
    let missing = files.remove(1);
    let target = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let out = replay(&target, &args(&files), &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    let name = missing.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&format!("gap after {}", files[0].display())) && err.contains("offset"), "{err}");
    assert!(err.contains(&name), "{err}");
    assert_nothing_applied(&target);
}

#[test]
fn garbage_is_not_a_binlog() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("binlog.000001");
    std::fs::write(&file, b"hello, this is not a binary log").unwrap();
    let target = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let out = replay(&target, &[file.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad magic"), "{}", stderr(&out));
}
