//! The login exchange: the server's greeting, the client's reply, and the password
//! scrambles of the two authentication methods this crate speaks.

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::cursor::Cursor;
use crate::WireError;

// Capability flags (include/mysql_com.h).
pub(crate) const CLIENT_LONG_PASSWORD: u32 = 1;
pub(crate) const CLIENT_LONG_FLAG: u32 = 1 << 2;
pub(crate) const CLIENT_PROTOCOL_41: u32 = 1 << 9;
pub(crate) const CLIENT_SSL: u32 = 1 << 11;
pub(crate) const CLIENT_TRANSACTIONS: u32 = 1 << 13;
pub(crate) const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
pub(crate) const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
pub(crate) const CLIENT_PLUGIN_AUTH_LENENC_DATA: u32 = 1 << 21;
pub(crate) const CLIENT_DEPRECATE_EOF: u32 = 1 << 24;

/// What the client asks for; the reply carries these intersected with the server's.
const WANTED: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_LONG_FLAG
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_PLUGIN_AUTH
    | CLIENT_PLUGIN_AUTH_LENENC_DATA
    | CLIENT_DEPRECATE_EOF;

/// Without these the exchange below is not the one this crate implements.
const REQUIRED: u32 = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH;

/// utf8mb4_general_ci: known to MySQL 5.5+ and every MariaDB; sessions set their own
/// character set afterwards.
const CHARSET_UTF8MB4: u8 = 45;

pub(crate) const NATIVE_PASSWORD: &str = "mysql_native_password";
pub(crate) const CACHING_SHA2: &str = "caching_sha2_password";

/// The server's first packet (protocol version 10).
#[derive(Debug)]
pub(crate) struct Greeting {
    pub(crate) server_version: String,
    pub(crate) connection_id: u32,
    pub(crate) capabilities: u32,
    pub(crate) scramble: Vec<u8>,
    pub(crate) plugin: String,
}

pub(crate) fn parse_greeting(payload: &[u8]) -> Result<Greeting, WireError> {
    if payload.first() == Some(&0xFF) {
        return Err(crate::parse_err(payload));
    }
    let mut c = Cursor::new(payload);
    let version = c.u8("greeting")?;
    if version != 10 {
        return Err(WireError::Unsupported(format!("protocol version {version}")));
    }
    let server_version = String::from_utf8_lossy(c.nul_terminated()).into_owned();
    let connection_id = c.u32("greeting: connection id")?;
    let mut scramble = c.bytes(8, "greeting: scramble")?.to_vec();
    c.u8("greeting")?;
    let low = u32::from(c.u16("greeting: capabilities")?);
    c.u8("greeting: character set")?;
    c.u16("greeting: status")?;
    let high = u32::from(c.u16("greeting: capabilities")?);
    let capabilities = low | high << 16;
    if capabilities & REQUIRED != REQUIRED {
        return Err(WireError::Unsupported(format!("a server without capabilities {REQUIRED:#x}")));
    }
    let data_len = usize::from(c.u8("greeting: scramble length")?);
    c.bytes(10, "greeting: reserved")?;
    let rest = c.bytes(data_len.saturating_sub(8).max(13), "greeting: scramble")?;
    scramble.extend_from_slice(rest.strip_suffix(&[0]).unwrap_or(rest));
    let plugin = String::from_utf8_lossy(c.nul_terminated()).into_owned();
    Ok(Greeting { server_version, connection_id, capabilities, scramble, plugin })
}

/// The capabilities both sides have.
pub(crate) fn negotiated(server: u32) -> u32 {
    WANTED & server
}

/// The 32 bytes both the SSL request and HandshakeResponse41 start with: capabilities, the
/// largest packet, the character set, and zeros.
fn fixed_part(capabilities: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&capabilities.to_le_bytes());
    out.extend_from_slice(&(1u32 << 24).to_le_bytes());
    out.push(CHARSET_UTF8MB4);
    out.extend_from_slice(&[0; 23]);
}

/// SSLRequest: the start of HandshakeResponse41, after which the TLS handshake begins.
pub(crate) fn ssl_request(capabilities: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    fixed_part(capabilities | CLIENT_SSL, &mut out);
    out
}

/// HandshakeResponse41.
pub(crate) fn response(capabilities: u32, user: &str, auth: &[u8], plugin: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + user.len() + auth.len());
    fixed_part(capabilities, &mut out);
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    if capabilities & CLIENT_PLUGIN_AUTH_LENENC_DATA != 0 {
        crate::cursor::put_lenenc_int(&mut out, auth.len() as u64);
    } else {
        // Both scrambles are 20 or 32 bytes; an empty password sends none.
        out.push(auth.len() as u8);
    }
    out.extend_from_slice(auth);
    out.extend_from_slice(plugin.as_bytes());
    out.push(0);
    out
}

/// The reply to `plugin`'s challenge, or `Unsupported` for a method this crate does not
/// speak (the caller then uses a full driver).
pub(crate) fn auth_data(plugin: &str, password: &[u8], scramble: &[u8]) -> Result<Vec<u8>, WireError> {
    if password.is_empty() && (plugin == NATIVE_PASSWORD || plugin == CACHING_SHA2) {
        return Ok(Vec::new());
    }
    let nonce = &scramble[..scramble.len().min(20)];
    match plugin {
        NATIVE_PASSWORD => Ok(native_password(password, nonce)),
        CACHING_SHA2 => Ok(caching_sha2(password, nonce)),
        other => Err(WireError::Unsupported(format!("authentication plugin {other}"))),
    }
}

/// SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password))).
fn native_password(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(stage2);
    let mask = h.finalize();
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

/// SHA256(password) XOR SHA256(SHA256(SHA256(password)) + nonce).
fn caching_sha2(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    let stage1 = Sha256::digest(password);
    let stage2 = Sha256::digest(stage1);
    let mut h = Sha256::new();
    h.update(stage2);
    h.update(nonce);
    let mask = h.finalize();
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// A MariaDB 10.11 greeting as captured from a sandbox (scramble bytes replaced).
    pub(crate) fn mariadb_greeting() -> Vec<u8> {
        let mut g = vec![10];
        g.extend_from_slice(b"5.5.5-10.11.19-MariaDB-0+deb12u1\0");
        g.extend_from_slice(&7u32.to_le_bytes());
        g.extend_from_slice(b"abcdefgh");
        g.push(0);
        g.extend_from_slice(&0xF7FEu16.to_le_bytes());
        g.push(45);
        g.extend_from_slice(&2u16.to_le_bytes());
        g.extend_from_slice(&0x81BFu16.to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0; 6]);
        g.extend_from_slice(&[0x1D, 0, 0, 0]);
        g.extend_from_slice(b"ijklmnopqrst\0");
        g.extend_from_slice(b"mysql_native_password\0");
        g
    }

    #[test]
    fn parses_a_mariadb_greeting() {
        let g = parse_greeting(&mariadb_greeting()).unwrap();
        assert_eq!(g.server_version, "5.5.5-10.11.19-MariaDB-0+deb12u1");
        assert_eq!(g.connection_id, 7);
        assert_eq!(g.scramble, b"abcdefghijklmnopqrst");
        assert_eq!(g.plugin, NATIVE_PASSWORD);
        assert_ne!(negotiated(g.capabilities) & CLIENT_DEPRECATE_EOF, 0);
    }

    #[test]
    fn native_password_matches_the_servers_formula() {
        // The server checks SHA1(nonce + stored) XOR reply == SHA1(password), where stored is
        // SHA1(SHA1(password)) (the hash in mysql.user without its '*').
        let nonce = b"abcdefghijklmnopqrst";
        let reply = native_password(b"secret", nonce);
        let stored = Sha1::digest(Sha1::digest(b"secret"));
        let mut h = Sha1::new();
        h.update(nonce);
        h.update(stored);
        let stage1: Vec<u8> = reply.iter().zip(h.finalize().iter()).map(|(a, b)| a ^ b).collect();
        assert_eq!(Sha1::digest(&stage1).as_slice(), stored.as_slice());
        // The well-known hash of "secret" in mysql.user.
        let hex: String = stored.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(hex, "14E65567ABDB5135D0CFD9A70B3032C179A49EE7");
    }

    #[test]
    fn unknown_plugins_are_unsupported_not_errors() {
        assert!(matches!(auth_data("client_ed25519", b"x", b"nonce"), Err(WireError::Unsupported(_))));
        assert!(auth_data(NATIVE_PASSWORD, b"", b"nonce").unwrap().is_empty());
    }

    #[test]
    fn an_error_greeting_is_the_servers_error() {
        let mut p = vec![0xFF];
        p.extend_from_slice(&1040u16.to_le_bytes());
        p.extend_from_slice(b"Too many connections");
        let err = parse_greeting(&p).unwrap_err().to_string();
        assert!(err.contains("1040") && err.contains("Too many connections"), "{err}");
    }

    proptest! {
        #[test]
        fn truncated_or_garbage_greetings_never_panic(cut in 0usize..120, junk in proptest::collection::vec(any::<u8>(), 0..120)) {
            let g = mariadb_greeting();
            let _ = parse_greeting(&g[..cut.min(g.len())]);
            let _ = parse_greeting(&junk);
        }
    }
}
