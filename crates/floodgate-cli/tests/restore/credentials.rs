//! Credentials: a password on the command line leaves /proc/PID/cmdline while floodgate runs
//! (as mysql's does), with mysql's warning; an option file anyone may write is ignored.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use floodgate_sandbox::Sandbox;

use crate::common::*;

/// The running process's command line, arguments split at their NULs.
fn cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    raw.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

#[test]
fn a_password_on_the_command_line_leaves_proc_cmdline_while_the_restore_runs() {
    let secret = "Argv-Secret-5e2d";
    let target = Sandbox::start(&options()).unwrap();
    sql(
        &target,
        &format!(
            "CREATE USER 'argv_pw'@'localhost' IDENTIFIED BY '{secret}'; GRANT ALL ON *.* TO 'argv_pw'@'localhost';"
        ),
    );
    let fixture = repo_root().join("fixtures/mydumper-modern/sql");
    let password = format!("-p{secret}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .arg("restore")
        .arg(&fixture)
        .arg("-S")
        .arg(target.socket())
        .args(["-u", "argv_pw", &password, "--progress", "none"])
        // Logged in with the password, it stops after creating its first table, and waits.
        .env("FLOODGATE_FAILPOINT", "schema.table:1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut reached = false;
    while let Some(Ok(line)) = lines.next() {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("failpoint schema.table reached") {
            reached = true;
            break;
        }
        assert!(Instant::now() < deadline, "no failpoint: {seen}");
    }
    let running = cmdline(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(reached, "the restore logged in with the password and got going: {seen}");
    assert!(running.iter().all(|a| !a.contains(secret)), "the secret is in /proc/PID/cmdline: {running:?}");
    assert!(running.contains(&"-px".to_string()), "the argument reads -px, as mysql's does: {running:?}");
    assert!(running.contains(&"argv_pw".to_string()), "the other arguments stay: {running:?}");
    assert!(seen.contains("Using a password on the command line interface can be insecure."), "{seen}");
}

#[test]
fn a_world_writable_my_cnf_is_ignored_with_a_warning() {
    let target = Sandbox::start(&options()).unwrap();
    let home = tempfile::tempdir().unwrap();
    let my_cnf = home.path().join(".my.cnf");
    // Whoever may write it would choose the account (and the server) floodgate logs in to.
    std::fs::write(&my_cnf, "[client]\nuser=planted_user\n").unwrap();
    let fixture = repo_root().join("fixtures/mydumper-modern/sql");
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_floodgate"))
            .arg("restore")
            .arg(&fixture)
            .arg("-S")
            .arg(target.socket())
            .args(["--progress", "none"])
            .env("HOME", home.path())
            // No -u: the login name, or the option file's user.
            .env("USER", target.user())
            .env("LOGNAME", target.user())
            .output()
            .unwrap();
        (out.status.code(), stderr(&out))
    };
    // The control: a private file is read (and its user does not exist).
    std::fs::set_permissions(&my_cnf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, err) = run();
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("planted_user"), "{err}");
    assert!(!err.contains("World-writable"), "{err}");
    // Writable by anyone: ignored, with mysql's warning; the restore logs in as the login name.
    std::fs::set_permissions(&my_cnf, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, err) = run();
    assert_eq!(code, Some(0), "{err}");
    let warning = format!("World-writable config file '{}' is ignored.", my_cnf.display());
    assert!(err.contains(&warning), "{err}");
    assert!(!err.contains("planted_user"), "{err}");
    assert_eq!(sql(&target, "SELECT COUNT(*) FROM awkward.bulk").trim(), "2000");
}
