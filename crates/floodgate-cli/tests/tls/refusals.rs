//! What TLS refuses, it refuses at once (no retries, no waiting for the target) with an
//! error that names the problem: the wrong CA, the wrong host name, a plain connection to a
//! server that requires TLS, TLS asked of a server without it, a verifying mode without a CA.

use std::path::PathBuf;

use crate::certs::certs;
use crate::common::repo_root;
use crate::{assert_fails, misnamed, over_tcp, plain, strs, verified, verify};

/// A backup to point restore at; these restores fail before reading it.
fn backup() -> String {
    let dir: PathBuf = repo_root().join("fixtures/mydumper-modern/sql");
    dir.display().to_string()
}

fn restore(server: &floodgate_sandbox::Sandbox, tls: &[&str]) -> std::process::Output {
    let started = std::time::Instant::now();
    let out = over_tcp(server, &["restore", &backup(), "--progress", "none"], tls);
    // A certificate problem is not a server that is away: nothing is retried or waited for.
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
    out
}

#[test]
fn verify_ca_with_another_ca_names_the_certificate_problem() {
    let wrong = verify("VERIFY_CA", &certs().other_ca);
    let out = restore(verified(), &strs(&wrong));
    assert_fails(&out, 1, &["TLS: ", "not signed by the CA of --ssl-ca", "other-ca.pem", "UnknownIssuer"]);
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("b").display().to_string();
    let out = over_tcp(verified(), &["dump", "-o", &o, "mysql"], &strs(&wrong));
    assert_fails(&out, 1, &["not signed by the CA of --ssl-ca"]);
}

#[test]
fn verify_identity_checks_the_host_name() {
    let ca = &certs().ca;
    let out = restore(misnamed(), &strs(&verify("VERIFY_IDENTITY", ca)));
    assert_fails(&out, 1, &["not issued for \"127.0.0.1\"", "VERIFY_IDENTITY"]);
    // The same CA and a certificate that names 127.0.0.1: connected, and dumped.
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("b").display().to_string();
    let out =
        over_tcp(verified(), &["dump", "-o", &o, "--progress", "none", "mysql"], &strs(&verify("VERIFY_IDENTITY", ca)));
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
}

#[test]
fn disabled_against_require_secure_transport_fails_clearly() {
    // MariaDB answers a login in clear with the same "Access denied" as a wrong password
    // (the same account logs in with TLS in every other test): the error says what to try.
    let out = restore(verified(), &["--ssl-mode", "DISABLED"]);
    assert_fails(&out, 1, &["Access denied", "not encrypted, --ssl-mode DISABLED", "require_secure_transport"]);
}

#[test]
fn required_against_a_server_without_tls_fails_clearly() {
    let out = restore(plain(), &["--ssl-mode", "REQUIRED"]);
    assert_fails(&out, 1, &["does not offer TLS", "REQUIRED"]);
    // A CA alone means VERIFY_CA, as in the mysql client: TLS is then required too.
    let out = restore(plain(), &["--ssl-ca", &certs().ca.display().to_string()]);
    assert_fails(&out, 1, &["does not offer TLS", "VERIFY_CA"]);
}

#[test]
fn verifying_without_a_ca_is_a_usage_error() {
    let out = restore(plain(), &["--ssl-mode", "VERIFY_IDENTITY"]);
    assert_fails(&out, 2, &["--ssl-mode VERIFY_IDENTITY needs the CA certificate", "--ssl-ca"]);
    let out = restore(plain(), &["--ssl-mode", "SOMETIMES"]);
    assert_fails(&out, 2, &["unknown ssl-mode"]);
}
