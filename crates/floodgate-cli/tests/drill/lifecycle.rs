//! The sandbox's life: gone after Ctrl-C, kept with --keep; a given server holding user data
//! is refused unless --overwrite; flags that contradict each other are usage errors.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::helpers::*;

#[test]
fn ctrl_c_during_the_restore_leaves_nothing_behind() {
    interrupted_drill_leaves_nothing_behind("INT");
}

/// What `systemctl stop` sends.
#[test]
fn sigterm_during_the_restore_leaves_nothing_behind() {
    interrupted_drill_leaves_nothing_behind("TERM");
}

fn interrupted_drill_leaves_nothing_behind(signal: &str) {
    let big = big_dump();
    let mut child = Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args(["drill", big.to_str().unwrap(), "--progress", "none", "--buffer-pool", "128M"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let mut dir = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        dir = dir.or_else(|| sandbox_dir_in(&line));
        if line.contains("drill: restoring") {
            break;
        }
    }
    let dir = dir.unwrap_or_else(|| panic!("no sandbox announced: {seen}"));
    // Let the load get going, then interrupt as a terminal's Ctrl-C would.
    std::thread::sleep(Duration::from_millis(700));
    let killed = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let err = format!("{seen}{}", rest.join("\n"));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("interrupted by SIG{signal}")), "{err}");
    nothing_left(&dir);
}

#[test]
fn keep_leaves_a_server_to_look_at() {
    let fixture = repo_root().join("fixtures/mydumper-modern/sql");
    let out = drill(&fixture, &["--keep"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let dir = sandbox_dir(&out);
    let socket =
        stdout.lines().find_map(|l| l.split(" -S ").nth(1)).unwrap_or_else(|| panic!("{stdout}")).trim().to_string();
    let count = Command::new("mariadb")
        .args(["--no-defaults", "-uroot", "-N", "-B", "-S", &socket, "-e", "SELECT COUNT(*) FROM awkward.bulk"])
        .output()
        .unwrap();
    let kept_alive = String::from_utf8_lossy(&count.stdout).trim() == "2000";
    // Clean up with the command the drill printed, as a person would.
    let stop = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("stop it: "))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    let status = Command::new("sh").arg("-c").arg(&stop).status().unwrap();
    assert!(kept_alive, "the kept sandbox serves the restored data: {stdout}");
    assert!(status.success(), "{stop}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_using(&dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    nothing_left(&dir);
}

/// The drill's own server is locked down (issue 18) and a drill still passes in it: no TCP
/// port, server-side files only inside its directory, and not root (the tests run as root).
#[test]
fn a_drill_passes_in_a_sandbox_without_tcp_file_access_or_root() {
    let fixture = repo_root().join("fixtures/mydumper-modern/sql");
    let out = drill(&fixture, &["--keep"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("PASSED"), "{stdout}");
    assert!(!stdout.contains("127.0.0.1"), "no TCP to offer: {stdout}");
    let dir = sandbox_dir(&out);
    let socket = dir.join("mysql.sock").display().to_string();
    let query = |q: &str| {
        let o = Command::new("mariadb")
            .args(["--no-defaults", "-uroot", "-N", "-B", "-S", &socket, "-e", q])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let settings = query("SELECT @@skip_networking, @@secure_file_priv, LOAD_FILE('/etc/passwd') IS NULL");
    let pid: u32 = std::fs::read_to_string(dir.join("server.pid")).unwrap().trim().parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap().to_string();
    let stop = stdout.lines().find_map(|l| l.trim().strip_prefix("stop it: ")).unwrap().to_string();
    assert!(Command::new("sh").arg("-c").arg(&stop).status().unwrap().success(), "{stop}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_using(&dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    nothing_left(&dir);
    let expected = format!("1\t{}/files/\t1", dir.display());
    assert_eq!(settings, expected, "skip_networking, secure_file_priv, LOAD_FILE");
    assert!(uid.split_whitespace().skip(1).all(|u| u != "0"), "the server is not root: {uid}");
}

#[test]
fn a_given_server_with_user_data_is_refused_unless_overwrite() {
    let server = floodgate_sandbox::Sandbox::start(&options()).unwrap();
    let socket = server.socket().display().to_string();
    let conn = ["-S", socket.as_str(), "-u", "root"];
    let fixture = repo_root().join("fixtures/mydumper-modern/sql");
    // floodgate's own checkpoint schema (made by a restore of another backup that kept its
    // checkpoints) is not user data; a user's database of that name would be.
    let other = repo_root().join("fixtures/mydumper-modern/sql-gz").display().to_string();
    let kept = floodgate(&[&["restore", other.as_str(), "--keep-checkpoints"][..], &conn].concat());
    assert!(kept.status.success(), "{}", stderr(&kept));
    sql(&server, "DROP DATABASE awkward");
    let out = drill(&fixture, &conn);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("sandbox started"), "CONN means no sandbox");
    // Now the server holds `awkward`: user data.
    let out = drill(&fixture, &conn);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("holds user data (databases awkward)"), "{}", stderr(&out));
    let mut with = conn.to_vec();
    with.push("--overwrite");
    let out = drill(&fixture, &with);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(sql(&server, "SELECT COUNT(*) FROM awkward.bulk").trim(), "2000");
}

#[test]
fn a_server_that_cannot_start_fails_the_drill() {
    let fixture = repo_root().join("fixtures/mydumper-modern/sql");
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("r.json");
    let out = drill(&fixture, &["--server-binary", "/nonexistent/mariadbd", "--report", report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("/nonexistent/mariadbd"), "{}", stderr(&out));
    let r = valid_report(&report);
    assert_eq!(r["error"]["kind"], "failure");
    assert!(r["server"]["version"].is_null());
}

#[test]
fn contradictory_flags_are_usage_errors() {
    let fixture = repo_root().join("fixtures/mydumper-modern/sql").display().to_string();
    let out = floodgate(&["drill", &fixture, "--keep", "-S", "/nonexistent.sock"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--keep"));
    let out = floodgate(&["drill", &fixture, "--overwrite"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = floodgate(&["drill", &fixture, "--timeout", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
