//! `caching_sha2_password`'s full authentication over plain TCP: the password leaves only
//! encrypted with an RSA key the user vouched for (`--server-public-key-path`) or allowed to
//! be fetched (`--get-server-public-key`); without either, the login fails with an error that
//! says what to do, and the key is never asked for.
//!
//! MariaDB, the only server on this machine, has no `caching_sha2_password`, so the server
//! here is a scripted one that speaks MySQL 8's side of the exchange: it answers every login
//! with "perform full authentication" and records what the client sends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use floodgate_conn::{ConnError, ConnectOptions, RowConnector, SslMode, TlsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A 2048-bit RSA public key (from mysql_common's tests); only its size matters here.
const SERVER_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxSKOcxiet8lLMn8ImyUE
bGGKob5EdRz/4wdiw12ED0GfKKTKhVnodFCfm1mdy7bKOX5QxL9skrvYodpW43eR
R5bfOzIgy1qIB8RYb6qOXRBw1oA4snBDqtUjDv/lbHLJN+IbzM4oU+e3Lt9rXyLX
VY289ewONPweXHqSCnTL91w+wkU1peIFV2QhZ+upUCdCtwOn5hnJPNgxtbklFoya
C8W3Z7Xx7He2QDJsEWAqX197efw0L6j8X8Tyd8Uwb7zUB1tfMGhHfm9EwejPAtzx
4GztQNtNMtGS2oGZLQBLV9hib4dDL92iiZeckg2LAf4GsJofLLR8mcHCRoqVbQJ1
YQIDAQAB
-----END PUBLIC KEY-----
";

/// What the scripted server saw, connection after connection.
type Log = Arc<Mutex<Vec<String>>>;

/// MySQL 8's greeting: protocol 10, caching_sha2_password, no TLS offered.
fn greeting() -> Vec<u8> {
    let mut g = vec![10];
    g.extend_from_slice(b"8.0.40\0");
    g.extend_from_slice(&9u32.to_le_bytes());
    g.extend_from_slice(b"abcdefgh\0");
    g.extend_from_slice(&0xF7FEu16.to_le_bytes()); // no CLIENT_SSL (bit 11)
    g.push(255);
    g.extend_from_slice(&2u16.to_le_bytes());
    g.extend_from_slice(&0x81BFu16.to_le_bytes());
    g.push(21);
    g.extend_from_slice(&[0; 10]);
    g.extend_from_slice(b"ijklmnopqrst\0");
    g.extend_from_slice(b"caching_sha2_password\0");
    g
}

async fn write(s: &mut TcpStream, seq: u8, payload: &[u8]) {
    let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(payload);
    s.write_all(&p).await.unwrap();
}

/// One packet's payload and sequence number, or None when the client hung up.
async fn read(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.ok()?;
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.ok()?;
    Some((head[3], body))
}

async fn serve(mut s: TcpStream, log: Log) {
    let note = |what: String| log.lock().unwrap().push(what);
    write(&mut s, 0, &greeting()).await;
    let Some((seq, _response)) = read(&mut s).await else { return note("hung up".into()) };
    write(&mut s, seq + 1, &[0x01, 0x04]).await;
    let Some((mut seq, mut reply)) = read(&mut s).await else { return note("hung up at full auth".into()) };
    if reply == [0x02] {
        note("asked for the key".into());
        let mut key = vec![0x01];
        key.extend_from_slice(SERVER_KEY.as_bytes());
        write(&mut s, seq + 1, &key).await;
        let Some(next) = read(&mut s).await else { return note("hung up after the key".into()) };
        (seq, reply) = next;
    }
    note(format!("password of {} bytes", reply.len()));
    write(&mut s, seq + 1, &[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]).await;
}

/// A scripted server on 127.0.0.1, and what it saw.
async fn server() -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s, seen.clone()));
        }
    });
    (port, log)
}

fn options(port: u16, tls: TlsOptions) -> ConnectOptions {
    ConnectOptions {
        host: Some("127.0.0.1".into()),
        port: Some(port),
        user: Some("app".into()),
        password: Some("app-secret".into()),
        tls,
        ..Default::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn seen(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

#[test]
fn without_a_key_the_login_fails_and_the_key_is_never_asked_for() {
    rt().block_on(async {
        for mode in [SslMode::Disabled, SslMode::Preferred] {
            let (port, log) = server().await;
            let opts = options(port, TlsOptions { mode, ..Default::default() });
            let err = floodgate_conn::connect(&opts, &[]).await.expect_err("refused");
            let text = err.to_string();
            assert!(matches!(err, ConnError::Refused(_)), "{text}");
            for flag in ["--server-public-key-path", "--get-server-public-key", "--ssl-mode"] {
                assert!(text.contains(flag), "{flag} in {text}");
            }
            // The row reader leaves this exchange to mysql_async, which refuses the same way.
            let err = RowConnector::new(&opts).connect(&[]).await.err().expect("refused");
            assert!(matches!(err, ConnError::Refused(_)), "{err}");
            let log = seen(&log);
            assert!(!log.iter().any(|l| l.contains("asked for the key") || l.contains("password")), "{log:?}");
        }
    });
}

#[test]
fn a_given_key_encrypts_the_password_without_asking() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("server-public.pem");
    std::fs::write(&key, SERVER_KEY).unwrap();
    rt().block_on(async {
        let (port, log) = server().await;
        let tls = TlsOptions { mode: SslMode::Disabled, server_public_key_path: Some(key), ..Default::default() };
        // The scripted server stops after the login: what matters is what it received.
        let _ = floodgate_conn::connect(&options(port, tls), &[]).await;
        assert_eq!(seen(&log), ["password of 256 bytes"]);
    });
}

#[test]
fn get_server_public_key_asks_the_server() {
    rt().block_on(async {
        let (port, log) = server().await;
        let tls = TlsOptions { mode: SslMode::Disabled, get_server_public_key: true, ..Default::default() };
        let _ = floodgate_conn::connect(&options(port, tls), &[]).await;
        assert_eq!(seen(&log), ["asked for the key", "password of 256 bytes"]);
    });
}

/// The key's DER cut short (never usable), and with one byte flipped (maybe usable: inside
/// the modulus), at every 5th offset.
fn damaged_keys() -> Vec<(String, bool)> {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let body: String = SERVER_KEY.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = engine.decode(body).unwrap();
    let pem = |der: &[u8]| format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", engine.encode(der));
    let mut keys = vec![("not a key".to_string(), true), (pem(&[]), true)];
    for at in (0..der.len()).step_by(5) {
        keys.push((pem(&der[..at]), true));
        let mut flipped = der.clone();
        flipped[at] ^= 0xFF;
        keys.push((pem(&flipped), false));
    }
    keys
}

#[test]
fn a_damaged_key_is_an_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server-public.pem");
    rt().block_on(async {
        let (port, _log) = server().await;
        for (key, unusable) in damaged_keys() {
            std::fs::write(&path, &key).unwrap();
            let tls = TlsOptions {
                mode: SslMode::Disabled,
                server_public_key_path: Some(path.clone()),
                ..Default::default()
            };
            // A usable key gets the login through, and the scripted server then hangs up.
            // What must never happen is a panic, which would end this test.
            let text = floodgate_conn::connect(&options(port, tls), &[]).await.expect_err("no real server").to_string();
            let refused = text.contains("RSA public key is not usable");
            assert!(refused || !unusable, "{text}\n{key}");
        }
    });
}
