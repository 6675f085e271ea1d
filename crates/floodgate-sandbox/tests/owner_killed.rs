//! kill -9 of the process that owns a sandbox, while the data directory is being initialised
//! and once the server runs: the guardians leave no process and no directory behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Live (not zombie) processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let cmdline =
            String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).unwrap_or_default()).replace('\0', " ");
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .is_ok_and(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("Z"));
        if !zombie && cmdline.contains(needle) {
            found.push(cmdline);
        }
    }
    found
}

/// Starts `floodgate-sandbox` with its temp dir in `base`, kills it with SIGKILL once
/// `ready` says so, and waits for the guardians to clean up.
fn kill_owner(base: &Path, ready: impl Fn() -> bool) {
    let env_file = base.join("env");
    let mut owner = Command::new(env!("CARGO_BIN_EXE_floodgate-sandbox"))
        .arg("--env-file")
        .arg(&env_file)
        .arg("--buffer-pool")
        .arg("64M")
        .env("TMPDIR", base)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    owner.kill().unwrap();
    owner.wait().unwrap();
    let sandboxes = || -> Vec<String> {
        std::fs::read_dir(base)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("floodgate-sandbox-"))
            .collect()
    };
    let needle = base.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (!sandboxes().is_empty() || !processes_mentioning(&needle).is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sandboxes().is_empty(), "directories left in {}: {:?}", base.display(), sandboxes());
    assert!(processes_mentioning(&needle).is_empty(), "processes left: {:?}", processes_mentioning(&needle));
}

/// A short private base directory (socket paths are limited to 107 bytes).
fn base(name: &str) -> std::path::PathBuf {
    let base = std::path::PathBuf::from(format!("/tmp/fgk-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    base
}

#[test]
fn killed_while_initialising() {
    let base = base("init");
    // The data directory exists and its initialiser runs: the window before the server's
    // guardian exists.
    let probe = base.clone();
    kill_owner(&base, move || {
        std::fs::read_dir(&probe)
            .unwrap()
            .flatten()
            .any(|e| e.path().join("data").exists() && !e.path().join("server.pid").exists())
    });
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn killed_while_serving() {
    let base = base("serve");
    let env = base.join("env");
    kill_owner(&base, move || env.exists());
    std::fs::remove_dir_all(&base).unwrap();
}
