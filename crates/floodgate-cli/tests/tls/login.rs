//! Both clients of floodgate-conn, mysql_async (`connect`) and floodgate's row reader
//! (`RowConnector`), against the same servers with the same options: the session is
//! encrypted exactly when the mode says (the server's own `Ssl_cipher` is the witness), and
//! certificates are checked as the mode says. Then the option file and client certificates.

use floodgate_conn::{ConnError, ConnectOptions, RowConnector, SslMode, TlsOptions};
use floodgate_format::{Classify, ErrorClass};
use floodgate_sandbox::Sandbox;
use mysql_async::prelude::Queryable;

use crate::certs::certs;
use crate::common::stderr;
use crate::{assert_fails, misnamed, plain, run, verified, PASSWORD, USER};

fn options(server: &Sandbox, user: &str, password: &str, tls: TlsOptions) -> ConnectOptions {
    ConnectOptions {
        host: Some("127.0.0.1".into()),
        port: server.port(),
        user: Some(user.into()),
        password: Some(password.into()),
        tls,
        ..Default::default()
    }
}

fn mode(mode: SslMode, ca: Option<&std::path::Path>) -> TlsOptions {
    TlsOptions { mode, ca: ca.map(Into::into), ..Default::default() }
}

/// The cipher of the session through each client (empty: in clear), or each one's error.
fn ciphers(options: &ConnectOptions) -> [Result<String, ConnError>; 2] {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let query = "SHOW SESSION STATUS LIKE 'Ssl_cipher'";
        let driver = match floodgate_conn::connect(options, &[]).await {
            Ok(mut conn) => {
                let row: Option<(String, String)> = conn.query_first(query).await.unwrap();
                Ok(row.unwrap().1)
            }
            Err(e) => Err(e),
        };
        let wire = match RowConnector::new(options).connect(&[]).await {
            Ok(mut conn) => {
                let row = conn.query_first(query, "cipher").await.unwrap().unwrap();
                assert!(matches!(conn, floodgate_conn::RowConn::Wire(_)), "the row reader itself");
                Ok(row[1].clone().unwrap_or_default())
            }
            Err(e) => Err(e),
        };
        [driver, wire]
    })
}

fn assert_encrypted(server: &Sandbox, tls: TlsOptions) {
    for (client, cipher) in ["mysql_async", "row reader"].iter().zip(ciphers(&options(server, USER, PASSWORD, tls))) {
        let cipher = cipher.unwrap_or_else(|e| panic!("{client}: {e}"));
        assert!(!cipher.is_empty(), "{client}: not encrypted");
    }
}

fn assert_refused(server: &Sandbox, tls: TlsOptions, words: &[&str]) {
    for (client, result) in ["mysql_async", "row reader"].iter().zip(ciphers(&options(server, USER, PASSWORD, tls))) {
        let err = result.err().unwrap_or_else(|| panic!("{client}: connected"));
        let text = err.to_string();
        assert!(matches!(err, ConnError::Tls { .. }), "{client}: {text}");
        assert!(err.transient().is_none() && err.class() == ErrorClass::Failed, "{client}: {text}");
        for w in words {
            assert!(text.contains(w), "{client}: expected {w:?} in {text}");
        }
    }
}

#[test]
fn both_clients_encrypt_exactly_as_the_mode_says() {
    let ca = certs().ca.as_path();
    assert_encrypted(verified(), mode(SslMode::Preferred, None));
    assert_encrypted(verified(), mode(SslMode::Required, None));
    assert_encrypted(verified(), mode(SslMode::VerifyIdentity, Some(ca)));
    assert_encrypted(misnamed(), mode(SslMode::VerifyCa, Some(ca)));
    for (client, cipher) in ["mysql_async", "row reader"].iter().zip(ciphers(&options(
        plain(),
        USER,
        PASSWORD,
        mode(SslMode::Preferred, None),
    ))) {
        assert_eq!(cipher.unwrap_or_else(|e| panic!("{client}: {e}")), "", "{client}: PREFERRED without TLS is clear");
    }
}

#[test]
fn both_clients_refuse_what_the_mode_refuses() {
    let ca = certs().ca.as_path();
    assert_refused(misnamed(), mode(SslMode::VerifyIdentity, Some(ca)), &["not issued for \"127.0.0.1\""]);
    assert_refused(verified(), mode(SslMode::VerifyCa, Some(&certs().other_ca)), &["not signed by the CA"]);
    assert_refused(plain(), mode(SslMode::Required, None), &["does not offer TLS"]);
}

#[test]
fn an_account_that_requires_x509_logs_in_with_its_client_certificate() {
    let (cert, key) = &certs().client;
    let with_identity = TlsOptions {
        mode: SslMode::VerifyIdentity,
        ca: Some(certs().ca.clone()),
        cert: Some(cert.clone()),
        key: Some(key.clone()),
        ..Default::default()
    };
    for (client, cipher) in
        ["mysql_async", "row reader"].iter().zip(ciphers(&options(verified(), "x509", "x509-secret", with_identity)))
    {
        assert!(!cipher.unwrap_or_else(|e| panic!("{client}: {e}")).is_empty());
    }
    let without = mode(SslMode::VerifyIdentity, Some(&certs().ca));
    for (client, result) in
        ["mysql_async", "row reader"].iter().zip(ciphers(&options(verified(), "x509", "x509-secret", without)))
    {
        let err = result.err().unwrap_or_else(|| panic!("{client}: logged in without a certificate"));
        assert_eq!(err.server_code(), Some(1045), "{client}: {err}");
    }
}

#[test]
fn option_files_carry_the_tls_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cnf = dir.path().join("client.cnf");
    let dump = |server: &Sandbox, tls_lines: &str| {
        let text =
            format!("[client]\nhost=127.0.0.1\nport={}\nuser={USER}\n{tls_lines}", server.port().expect("a TCP port"));
        std::fs::write(&cnf, text).unwrap();
        let out = dir.path().join(format!("dump{}", rand_suffix()));
        run(
            &["dump", "--defaults-file", &cnf.display().to_string(), "-o", &out.display().to_string(), "mysql"],
            PASSWORD,
        )
    };
    let ca = certs().ca.display();
    let other = certs().other_ca.display();
    let out = dump(verified(), &format!("ssl-mode=VERIFY_CA\nssl-ca={other}\n"));
    assert_fails(&out, 1, &["not signed by the CA of --ssl-ca"]);
    let out = dump(misnamed(), &format!("ssl-mode=verify_identity\nssl-ca={ca}\n"));
    assert_fails(&out, 1, &["not issued for"]);
    // ssl-ca alone: VERIFY_CA, so a server without TLS is refused and a misnamed one is not.
    let out = dump(plain(), &format!("ssl-ca={ca}\n"));
    assert_fails(&out, 1, &["does not offer TLS"]);
    let out = dump(misnamed(), &format!("ssl-ca={ca}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    // A flag wins over the file.
    let out = dump(verified(), &format!("ssl-mode=VERIFY_CA\nssl-ca={other}\n"));
    assert_fails(&out, 1, &["UnknownIssuer"]);
    let flagged = run(
        &[
            "dump",
            "--defaults-file",
            &cnf.display().to_string(),
            "--ssl-ca",
            &ca.to_string(),
            "-o",
            &dir.path().join("flagged").display().to_string(),
            "mysql",
        ],
        PASSWORD,
    );
    assert!(flagged.status.success(), "{}", stderr(&flagged));
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}
