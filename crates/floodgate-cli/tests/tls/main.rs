//! TLS end to end, against real servers started by floodgate-sandbox with certificates the
//! tests make: every command reaches a server that requires secure transport through
//! `--ssl-mode` and `--ssl-ca`, both clients (mysql_async and floodgate's row reader)
//! check the certificate as the mode says, and what is refused is refused with an error
//! that names the problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../restore/common.rs"]
#[allow(dead_code)]
mod common;

mod certs;
mod commands;
mod login;
mod refusals;

use std::process::{Command, Output};
use std::sync::OnceLock;

use floodgate_sandbox::{Sandbox, SandboxOptions};

use crate::certs::certs;

/// The account the tests log in as over TCP (the password goes through MYSQL_PWD).
pub const USER: &str = "fg";
pub const PASSWORD: &str = "fg-secret";

/// Every sandbox of these tests is started here, reachable over TCP on 127.0.0.1 as a remote
/// server would be.
fn start(extra_args: Vec<String>, binlog: bool) -> Sandbox {
    let server = Sandbox::start(&SandboxOptions { extra_args, binlog, tcp: true, ..common::options() })
        .expect("start a sandbox");
    add_users(&server);
    server
}

/// TLS with `cert` and `key` signed by the test CA; a plain TCP login is refused.
fn tls_args((cert, key): &(std::path::PathBuf, std::path::PathBuf)) -> Vec<String> {
    vec![
        format!("--ssl-ca={}", certs().ca.display()),
        format!("--ssl-cert={}", cert.display()),
        format!("--ssl-key={}", key.display()),
        "--require-secure-transport=ON".into(),
    ]
}

/// A server whose certificate names 127.0.0.1; it keeps a binary log for replay-binlog.
pub fn verified() -> &'static Sandbox {
    static S: OnceLock<Sandbox> = OnceLock::new();
    S.get_or_init(|| start(tls_args(&certs().server), true))
}

/// A server whose certificate (from the same CA) names another host.
pub fn misnamed() -> &'static Sandbox {
    static S: OnceLock<Sandbox> = OnceLock::new();
    S.get_or_init(|| start(tls_args(&certs().misnamed_server), false))
}

/// A server without TLS.
pub fn plain() -> &'static Sandbox {
    static S: OnceLock<Sandbox> = OnceLock::new();
    S.get_or_init(|| start(Vec::new(), false))
}

/// `fg` may do anything from 127.0.0.1; `x509` may read, with a client certificate only.
/// Not binary-logged: the replay test's log holds only what it wrote.
fn add_users(server: &Sandbox) {
    common::sql(
        server,
        &format!(
            "SET SESSION sql_log_bin = 0; \
             CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'127.0.0.1' WITH GRANT OPTION; \
             CREATE USER 'x509'@'127.0.0.1' IDENTIFIED BY 'x509-secret' REQUIRE X509; \
             GRANT SELECT, RELOAD, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER, REPLICATION CLIENT ON *.* \
             TO 'x509'@'127.0.0.1'"
        ),
    );
}

/// `args` plus the TCP connection flags for `server` as `fg`, then `tls`.
pub fn over_tcp(server: &Sandbox, args: &[&str], tls: &[&str]) -> Output {
    let port = server.port().expect("the TLS sandboxes listen on TCP").to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-h", "127.0.0.1", "-P", &port, "-u", USER]);
    all.extend_from_slice(tls);
    run(&all, PASSWORD)
}

/// Runs the floodgate binary with `password` in MYSQL_PWD.
pub fn run(args: &[&str], password: &str) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_floodgate"))
        .args(args)
        .env("MYSQL_PWD", password)
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

/// `--ssl-mode MODE --ssl-ca CA` as strings for `over_tcp`.
pub fn verify(mode: &str, ca: &std::path::Path) -> Vec<String> {
    vec!["--ssl-mode".into(), mode.into(), "--ssl-ca".into(), ca.display().to_string()]
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Asserts `out` failed with exit code `code` and a message containing every one of `words`.
pub fn assert_fails(out: &Output, code: i32, words: &[&str]) {
    let err = common::stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    for w in words {
        assert!(err.contains(w), "expected {w:?} in: {err}");
    }
}
