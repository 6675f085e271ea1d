//! The sandbox is closed to everyone but its owner, even running a hostile backup's
//! statements: no TCP port unless asked for, no login but floodgate's, no server-side file
//! outside its directory, and a server that never runs as root. scripts/test runs these as
//! root, the case that matters (cron and systemd drills).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use floodgate_sandbox::{Sandbox, SandboxOptions};

fn options() -> SandboxOptions {
    SandboxOptions { buffer_pool: "64M".into(), ..Default::default() }
}

/// Runs `query` through the real `mariadb` client, logged in as the sandbox says.
fn mariadb(sandbox: &Sandbox, query: &str) -> Output {
    Command::new("mariadb")
        .args(["--no-defaults", "-N", "-B", "-u", sandbox.user()])
        .arg(format!("--socket={}", sandbox.socket().display()))
        .args(["-e", query])
        .output()
        .unwrap()
}

/// `query`'s output; the query must succeed.
fn value(sandbox: &Sandbox, query: &str) -> String {
    let out = mariadb(sandbox, query);
    assert!(out.status.success(), "{query}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The TCP ports `pid` listens on: its socket inodes, looked up in /proc/net/tcp{,6}.
fn listening_tcp_ports(pid: u32) -> Vec<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')).map(str::to_string)
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is ADDR:PORT in hex; state 0A is LISTEN; field 9 is the inode.
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}

/// Real, effective, saved and filesystem uids of `pid`.
fn uids(pid: u32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().skip(1).map(|u| u.parse().unwrap()).collect()
}

fn running_as_root() -> bool {
    uids(std::process::id())[1] == 0
}

#[test]
fn a_tcp_login_to_a_default_sandbox_fails_as_it_has_no_port() {
    let sandbox = Sandbox::start(&options()).unwrap();
    assert_eq!(sandbox.port(), None);
    assert_eq!(value(&sandbox, "SELECT @@skip_networking"), "1");
    let pid = sandbox.server_pid().unwrap();
    assert_eq!(listening_tcp_ports(pid), Vec::<u16>::new(), "the server listens on no TCP port");
}

/// The control for the test above (its port lookup finds a port that exists), and the
/// second lock: even with TCP, no account logs in over it.
#[test]
fn with_tcp_asked_for_it_listens_but_no_account_logs_in_over_tcp() {
    let sandbox = Sandbox::start(&SandboxOptions { tcp: true, ..options() }).unwrap();
    let port = sandbox.port().unwrap();
    assert_eq!(listening_tcp_ports(sandbox.server_pid().unwrap()), vec![port]);
    let over_tcp = Command::new("mariadb")
        .args(["--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P", &port.to_string()])
        .args(["-u", sandbox.user(), "-e", "SELECT 1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&over_tcp.stderr);
    // Error 1130: no account at all for a client from 127.0.0.1.
    assert!(!over_tcp.status.success() && err.contains("is not allowed to connect"), "{err}");
    assert_eq!(value(&sandbox, "SELECT 1"), "1", "the socket lets floodgate in");
}

#[test]
fn only_the_owner_logs_in_without_a_password() {
    let sandbox = Sandbox::start(&options()).unwrap();
    // Every account the initialiser made authenticates by unix_socket (the peer's uid must
    // be the account's name; the password alternative is the impossible hash 'invalid'), or
    // is locked (mariadb.sys, the definer of system views).
    let accounts = value(
        &sandbox,
        "SELECT CONCAT(User, '@', Host, ' ', IF(JSON_VALUE(Priv, '$.account_locked'), 'locked', \
         CONCAT(JSON_VALUE(Priv, '$.authentication_string'), ' OR ', JSON_VALUE(Priv, '$.auth_or[1].plugin')))) \
         FROM mysql.global_priv ORDER BY 1",
    );
    for line in accounts.lines() {
        let by_socket = line.ends_with("@localhost invalid OR unix_socket");
        assert!(by_socket || line.ends_with("@localhost locked"), "{accounts}");
    }
    assert!(accounts.lines().any(|l| l.starts_with(&format!("{}@", sandbox.user()))), "{accounts}");
    assert_eq!(sandbox.password(), None, "MariaDB needs none");
    if running_as_root() {
        // Another local account cannot even reach the socket (nor log in as root if it could).
        let as_nobody = Command::new("mariadb")
            .args(["--no-defaults", "-u", "root", "-e", "SELECT 1"])
            .arg(format!("--socket={}", sandbox.socket().display()))
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&as_nobody.stderr);
        assert!(!as_nobody.status.success() && err.contains("Can't connect"), "{err}");
    }
}

#[test]
fn load_file_and_into_outfile_cannot_leave_the_sandbox() {
    let sandbox = Sandbox::start(&options()).unwrap();
    let files = value(&sandbox, "SELECT @@secure_file_priv");
    assert!(Path::new(&files).starts_with(sandbox.dir()), "{files} inside {}", sandbox.dir().display());
    assert_eq!(value(&sandbox, "SELECT LOAD_FILE('/etc/passwd') IS NULL"), "1");
    let outside = format!("/tmp/floodgate-outfile-{}", std::process::id());
    let out = mariadb(&sandbox, &format!("SELECT 'x' INTO OUTFILE '{outside}'"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("secure-file-priv"), "{err}");
    assert!(!Path::new(&outside).exists());
    let out = mariadb(
        &sandbox,
        "CREATE DATABASE d; CREATE TABLE d.t (line TEXT); LOAD DATA INFILE '/etc/passwd' INTO TABLE d.t",
    );
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("secure-file-priv"));
    // The control: inside its directory the same statements work.
    let inside = format!("{files}/x.txt");
    value(&sandbox, &format!("SELECT 'x' INTO OUTFILE '{inside}'"));
    assert_eq!(value(&sandbox, &format!("SELECT LOAD_FILE('{inside}') = 'x\\n'")), "1");
}

/// scripts/bench's limit loads server-side files from its work directory.
#[test]
fn secure_file_priv_can_name_a_directory_for_scripts() {
    let work = tempfile::Builder::new().prefix("fg-files-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(work.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let sandbox =
        Sandbox::start(&SandboxOptions { secure_file_priv: Some(work.path().to_path_buf()), ..options() }).unwrap();
    let file = work.path().join("rows.tsv");
    value(&sandbox, &format!("SELECT 1, 'a' INTO OUTFILE '{}'", file.display()));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "1\ta\n");
}

#[test]
fn the_server_never_runs_as_root() {
    let sandbox = Sandbox::start(&options()).unwrap();
    let pid = sandbox.server_pid().unwrap();
    let server = uids(pid);
    assert!(server.iter().all(|&u| u != 0), "server uids {server:?}");
    let sandbox_dir = std::fs::metadata(sandbox.dir()).unwrap();
    assert_eq!(sandbox_dir.mode() & 0o777, 0o700, "nobody else may enter the sandbox, where the socket is");
    if running_as_root() {
        // It dropped root for an account that owns the sandbox's files.
        assert_eq!(sandbox_dir.uid(), server[0], "the sandbox belongs to the server's account");
        let data = std::fs::metadata(sandbox.dir().join("data")).unwrap().uid();
        assert_eq!(data, server[0]);
        assert_eq!(sandbox.user(), "root", "root logs in by unix_socket");
    } else {
        assert_eq!(server[0], uids(std::process::id())[0], "runs as this process's account");
    }
    let dir = sandbox.dir().to_path_buf();
    drop(sandbox);
    assert!(!dir.exists(), "the guardian removes the server's files");
}
