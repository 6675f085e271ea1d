//! Just enough of the MySQL/MariaDB client protocol to log in, run statements and stream
//! text result sets without an allocation per row or per value.
//!
//! Why it exists: `floodgate dump` reads every row of the source. A general driver
//! (mysql_async) builds a `Row` for each one: a `Vec` of values, a `Vec<u8>` per value, a
//! pooled packet buffer and a clock read per packet, about a quarter of the dump's CPU on a
//! machine where the dump and the server share the cores. Here a row is a slice of one
//! read-ahead buffer and its fields are slices of that.
//!
//! It speaks TLS (rustls, configured by the caller: see [`Tls`]) so rows never travel in
//! clear when TLS was asked for. What it leaves to a full driver: compression, prepared
//! statements, and any login other than `mysql_native_password` and
//! `caching_sha2_password` (the fast path; the full exchange only over TLS or a Unix socket,
//! where the password may travel as it is: the RSA exchange is the driver's). Those end in
//! [`WireError::Unsupported`] before anything has run, so the caller can connect with the
//! driver instead.

mod cursor;
mod handshake;
mod packet;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
pub use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::cursor::{Cursor, LenencField};
use crate::handshake::{CLIENT_DEPRECATE_EOF, CLIENT_PLUGIN_AUTH_LENENC_DATA, CLIENT_SSL};
use crate::packet::{Packets, MAX_PAYLOAD};

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("ERROR {code} ({state}): {message}")]
    Server { code: u16, state: String, message: String },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("not spoken by floodgate's row reader: {0}")]
    Unsupported(String),
    /// TLS was required and the server's greeting does not offer it.
    #[error("the server does not offer TLS")]
    NoTls,
    /// The TLS handshake failed (the certificate, or the server refused ours); the rustls
    /// error is inside the I/O error.
    #[error("TLS handshake: {0}")]
    Tls(#[source] std::io::Error),
}

/// What to do about TLS on a connection.
#[derive(Clone, Debug)]
pub enum Tls {
    /// Stay in clear.
    Off,
    /// TLS when the server offers it, clear otherwise.
    Preferred(TlsConnect),
    /// TLS, or fail with [`WireError::NoTls`].
    Required(TlsConnect),
}

/// How to make the TLS handshake: the configuration (roots, client identity, the
/// certificate checks) and the name the server's certificate is checked against.
#[derive(Clone)]
pub struct TlsConnect {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnect").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl Tls {
    /// The handshake to make, given whether the server offers TLS.
    fn choose(&self, offered: bool) -> Result<Option<&TlsConnect>, WireError> {
        match self {
            Tls::Off => Ok(None),
            Tls::Preferred(connect) => Ok(offered.then_some(connect)),
            Tls::Required(connect) if offered => Ok(Some(connect)),
            Tls::Required(_) => Err(WireError::NoTls),
        }
    }
}

/// Where the server listens.
#[derive(Clone, Debug)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

/// Any byte stream to a server: a socket, or a test's in-memory pipe.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

// Server status flags (include/mysql_com.h).
const SERVER_MORE_RESULTS_EXISTS: u16 = 1 << 3;

/// One logged-in connection.
pub struct Conn {
    packets: Packets<Box<dyn Stream>>,
    capabilities: u32,
    server_version: String,
    connection_id: u32,
    /// The column count of a result set whose rows are not all read yet; the next command
    /// drains them first.
    unread: Option<usize>,
    /// Status flags of the last result set's end.
    last_status: u16,
}

/// What a command answered.
enum Response {
    Done { status: u16 },
    Rows { columns: usize },
}

impl Conn {
    /// Connects and logs in as `user`. A Unix socket never uses TLS: it is local.
    pub async fn connect(
        endpoint: &Endpoint,
        tls: &Tls,
        user: &str,
        password: Option<&str>,
    ) -> Result<Conn, WireError> {
        let password = password.unwrap_or_default().as_bytes();
        match endpoint {
            Endpoint::Unix(path) => {
                let stream = Box::new(tokio::net::UnixStream::connect(path).await?);
                Conn::handshake_with(stream, true, &Tls::Off, user, password).await
            }
            Endpoint::Tcp { host, port } => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                s.set_nodelay(true)?;
                Conn::handshake_with(Box::new(s), false, tls, user, password).await
            }
        }
    }

    /// Logs in over `stream` without TLS. `secure` says whether the password may be sent as
    /// it is (a Unix socket), which `caching_sha2_password`'s full exchange needs.
    pub async fn handshake(
        stream: Box<dyn Stream>,
        secure: bool,
        user: &str,
        password: &[u8],
    ) -> Result<Conn, WireError> {
        Conn::handshake_with(stream, secure, &Tls::Off, user, password).await
    }

    /// Logs in over `stream`, first switching to TLS as `tls` says.
    pub async fn handshake_with(
        stream: Box<dyn Stream>,
        secure: bool,
        tls: &Tls,
        user: &str,
        password: &[u8],
    ) -> Result<Conn, WireError> {
        let mut packets = Packets::new(stream);
        packets.read().await?;
        let greeting = handshake::parse_greeting(packets.payload())?;
        let mut capabilities = handshake::negotiated(greeting.capabilities);
        let (mut packets, secure) = match tls.choose(greeting.capabilities & CLIENT_SSL != 0)? {
            None => (packets, secure),
            Some(connect) => {
                capabilities |= CLIENT_SSL;
                (start_tls(packets, capabilities, connect).await?, true)
            }
        };
        let mut plugin = greeting.plugin.clone();
        let mut scramble = greeting.scramble.clone();
        let auth = match handshake::auth_data(&plugin, password, &scramble) {
            Ok(auth) => auth,
            // The server may switch to a method we speak once it sees the user.
            Err(WireError::Unsupported(_)) => {
                plugin = handshake::NATIVE_PASSWORD.into();
                handshake::auth_data(&plugin, password, &scramble)?
            }
            Err(e) => return Err(e),
        };
        if auth.len() > 250 && capabilities & CLIENT_PLUGIN_AUTH_LENENC_DATA == 0 {
            return Err(WireError::Unsupported("a long authentication reply".into()));
        }
        packets.write(&handshake::response(capabilities, user, &auth, &plugin)).await?;
        loop {
            packets.read().await?;
            let p = packets.payload();
            match p.first() {
                Some(0x00) => break,
                Some(0xFF) => return Err(parse_err(p)),
                Some(0xFE) => {
                    let mut c = Cursor::new(&p[1..]);
                    plugin = String::from_utf8_lossy(c.nul_terminated()).into_owned();
                    let data = c.rest();
                    scramble = data.strip_suffix(&[0]).unwrap_or(data).to_vec();
                    if plugin.is_empty() {
                        return Err(WireError::Unsupported("the pre-4.1 password exchange".into()));
                    }
                    let auth = handshake::auth_data(&plugin, password, &scramble)?;
                    packets.write(&auth).await?;
                }
                Some(0x01) if plugin == handshake::CACHING_SHA2 => match p.get(1) {
                    // Fast path: the server had the password cached; its OK follows.
                    Some(3) => {}
                    Some(4) if secure => {
                        let mut clear = password.to_vec();
                        clear.push(0);
                        packets.write(&clear).await?;
                    }
                    _ => {
                        return Err(WireError::Unsupported(
                            "caching_sha2_password's full exchange outside TLS and Unix sockets (RSA)".into(),
                        ))
                    }
                },
                _ => return Err(WireError::Unsupported(format!("{plugin}'s exchange"))),
            }
        }
        Ok(Conn {
            packets,
            capabilities,
            server_version: greeting.server_version,
            connection_id: greeting.connection_id,
            unread: None,
            last_status: 0,
        })
    }

    /// The version string from the server's greeting (MariaDB's carries a `5.5.5-` prefix).
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// The server's id of this connection (what `KILL` takes).
    pub fn connection_id(&self) -> u32 {
        self.connection_id
    }

    /// Runs statements that return no rows (rows, if any, are read and dropped).
    pub async fn execute(&mut self, sql: &str) -> Result<(), WireError> {
        let mut response = self.command(sql).await?;
        loop {
            match response {
                Response::Done { status } if status & SERVER_MORE_RESULTS_EXISTS == 0 => return Ok(()),
                Response::Done { .. } => response = self.read_response().await?,
                Response::Rows { columns } => {
                    let status = self.drain(columns).await?;
                    if status & SERVER_MORE_RESULTS_EXISTS == 0 {
                        return Ok(());
                    }
                    response = self.read_response().await?;
                }
            }
        }
    }

    /// Runs a query that returns one result set and streams its rows.
    pub async fn query(&mut self, sql: &str) -> Result<Rows<'_>, WireError> {
        match self.command(sql).await? {
            Response::Rows { columns } => {
                self.unread = Some(columns);
                Ok(Rows { conn: self, columns })
            }
            Response::Done { .. } => Err(WireError::Protocol(format!("`{}` returned no result set", preview(sql)))),
        }
    }

    /// Says goodbye (COM_QUIT) and closes the socket.
    pub async fn close(mut self) {
        self.packets.reset_sequence();
        let _ = self.packets.write(&[0x01]).await;
        self.packets.shutdown().await;
    }

    /// Sends COM_QUERY after reading what a previous result left unread.
    async fn command(&mut self, sql: &str) -> Result<Response, WireError> {
        if let Some(columns) = self.unread {
            self.drain(columns).await?;
        }
        self.packets.reset_sequence();
        let mut payload = Vec::with_capacity(sql.len() + 1);
        payload.push(0x03);
        payload.extend_from_slice(sql.as_bytes());
        self.packets.write(&payload).await?;
        self.read_response().await
    }

    /// OK, ERR, or the start of a result set (its column count and definitions).
    async fn read_response(&mut self) -> Result<Response, WireError> {
        self.packets.read().await?;
        let p = self.packets.payload();
        match p.first() {
            Some(0x00) => Ok(Response::Done { status: ok_status(&p[1..])? }),
            Some(0xFF) => Err(parse_err(p)),
            Some(0xFB) => Err(WireError::Protocol("the server asked for a LOCAL INFILE upload".into())),
            _ => {
                let columns = Cursor::new(p).lenenc_int("column count")?.unwrap_or(0);
                let columns = usize::try_from(columns)
                    .ok()
                    .filter(|&n| n > 0 && n <= 65_535)
                    .ok_or_else(|| WireError::Protocol(format!("a result set of {columns} columns")))?;
                for _ in 0..columns {
                    self.packets.read().await?;
                }
                if self.capabilities & CLIENT_DEPRECATE_EOF == 0 {
                    self.packets.read().await?;
                    if !is_eof(self.packets.payload(), false) {
                        return Err(WireError::Protocol("no EOF after the column definitions".into()));
                    }
                }
                Ok(Response::Rows { columns })
            }
        }
    }

    /// Reads the rest of a result set; returns its closing status flags.
    async fn drain(&mut self, columns: usize) -> Result<u16, WireError> {
        let mut rows = Rows { conn: self, columns };
        while rows.next().await?.is_some() {}
        Ok(rows.conn.last_status)
    }
}

/// Sends the SSL request and makes the TLS handshake; the login continues through it.
async fn start_tls(
    mut packets: Packets<Box<dyn Stream>>,
    capabilities: u32,
    connect: &TlsConnect,
) -> Result<Packets<Box<dyn Stream>>, WireError> {
    packets.write(&handshake::ssl_request(capabilities)).await?;
    let (stream, seq) = packets.into_stream()?;
    let connector = tokio_rustls::TlsConnector::from(connect.config.clone());
    let stream = connector.connect(connect.server_name.clone(), stream).await.map_err(WireError::Tls)?;
    Ok(Packets::resume(Box::new(stream), seq))
}

/// A result set being read. Dropping it early is allowed: the connection reads the rest
/// before its next command.
pub struct Rows<'c> {
    conn: &'c mut Conn,
    columns: usize,
}

impl Rows<'_> {
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// The next row, or None after the last.
    pub async fn next(&mut self) -> Result<Option<Row<'_>>, WireError> {
        if self.conn.unread.is_none() {
            return Ok(None);
        }
        self.conn.packets.read().await?;
        let deprecate_eof = self.conn.capabilities & CLIENT_DEPRECATE_EOF != 0;
        let p = self.conn.packets.payload();
        if p.first() == Some(&0xFF) {
            let err = parse_err(p);
            self.conn.unread = None;
            return Err(err);
        }
        if is_eof(p, deprecate_eof) {
            let status = end_status(p, deprecate_eof);
            self.conn.unread = None;
            self.conn.last_status = status?;
            return Ok(None);
        }
        Ok(Some(Row { payload: self.conn.packets.payload(), columns: self.columns }))
    }
}

/// One row: a slice of the connection's read buffer, valid until the next row is read.
pub struct Row<'r> {
    payload: &'r [u8],
    columns: usize,
}

impl<'r> Row<'r> {
    /// The row's values in column order, NULL as None. Exactly as many as the result set
    /// has columns; a short or overlong row is an error at its end.
    pub fn fields(&self) -> Fields<'r> {
        Fields { cursor: Cursor::new(self.payload), left: self.columns }
    }
}

/// Iterator over a row's values.
pub struct Fields<'r> {
    cursor: Cursor<'r>,
    left: usize,
}

impl<'r> Iterator for Fields<'r> {
    type Item = Result<Option<&'r [u8]>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let field = match self.cursor.lenenc_field("row value") {
            Ok(LenencField::Null) => Ok(None),
            Ok(LenencField::Bytes(b)) => Ok(Some(b)),
            Err(e) => {
                self.left = 0;
                return Some(Err(e));
            }
        };
        if self.left == 0 && !self.cursor.is_empty() {
            return Some(Err(WireError::Protocol("a row with more values than columns".into())));
        }
        Some(field)
    }
}

/// An EOF packet, or the OK packet that replaces it when EOF is deprecated. A row can start
/// with 0xFE too (a value of 16 MiB or more), but then its packet is longer than either.
fn is_eof(p: &[u8], deprecate_eof: bool) -> bool {
    p.first() == Some(&0xFE) && if deprecate_eof { p.len() < MAX_PAYLOAD } else { p.len() < 9 }
}

/// Status flags of an EOF packet or of the OK packet that ends a result set.
fn end_status(p: &[u8], deprecate_eof: bool) -> Result<u16, WireError> {
    if deprecate_eof {
        ok_status(&p[1..])
    } else {
        let mut c = Cursor::new(&p[1..]);
        c.u16("EOF: warnings")?;
        c.u16("EOF: status")
    }
}

/// Status flags of an OK packet's body (after its header byte).
fn ok_status(body: &[u8]) -> Result<u16, WireError> {
    let mut c = Cursor::new(body);
    c.lenenc_int("OK: affected rows")?;
    c.lenenc_int("OK: insert id")?;
    c.u16("OK: status")
}

/// An ERR packet as the server's error.
pub(crate) fn parse_err(p: &[u8]) -> WireError {
    let mut c = Cursor::new(p.get(1..).unwrap_or_default());
    let Ok(code) = c.u16("ERR: code") else {
        return WireError::Protocol("an error packet without a code".into());
    };
    let mut rest = c.rest();
    let mut state = String::from("HY000");
    if rest.first() == Some(&b'#') && rest.len() >= 6 {
        state = String::from_utf8_lossy(&rest[1..6]).into_owned();
        rest = &rest[6..];
    }
    WireError::Server { code, state, message: String::from_utf8_lossy(rest).into_owned() }
}

fn preview(sql: &str) -> &str {
    let end = sql.char_indices().nth(60).map_or(sql.len(), |(i, _)| i);
    &sql[..end]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::handshake::tests::mariadb_greeting;
    use crate::packet::tests::frame;

    fn ok() -> Vec<u8> {
        vec![0, 0, 0, 2, 0, 0, 0]
    }

    /// What a server sends for a login and one query whose rows are `rows` (already encoded
    /// row payloads), with EOF packets or without.
    fn script(rows: &[Vec<u8>], deprecate_eof: bool) -> Vec<u8> {
        let mut greeting = mariadb_greeting();
        if !deprecate_eof {
            // Clear CLIENT_DEPRECATE_EOF (bit 24: bit 8 of the upper capability half).
            let at = greeting.iter().position(|&b| b == 0).unwrap() + 1 + 4 + 8 + 1 + 2 + 1 + 2;
            greeting[at + 1] &= !1;
        }
        let mut out = frame(&[greeting], 0);
        out.extend(frame(&[ok()], 2));
        let mut result =
            vec![vec![2], b"\x03def\0\0\0\x01a\0\x0c\x3f\0\0\0\0\0\xfc\0\0\0\0\0".to_vec(), b"col b".to_vec()];
        let end = if deprecate_eof { vec![0xFE, 0, 0, 2, 0, 0, 0] } else { vec![0xFE, 0, 0, 2, 0] };
        if !deprecate_eof {
            result.push(end.clone());
        }
        result.extend(rows.iter().cloned());
        result.push(end);
        out.extend(frame(&result, 1));
        out
    }

    fn encoded(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in values {
            match v {
                None => out.push(0xFB),
                Some(b) => {
                    cursor::put_lenenc_int(&mut out, b.len() as u64);
                    out.extend_from_slice(b);
                }
            }
        }
        out
    }

    /// Logs in over a scripted stream and reads every row of one query.
    fn run(server: Vec<u8>) -> Result<Vec<Vec<Option<Vec<u8>>>>, WireError> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let stream = Box::new(tokio::io::join(std::io::Cursor::new(server), tokio::io::sink()));
            let mut conn = Conn::handshake(stream, true, "root", b"").await?;
            let mut rows = conn.query("SELECT a, b FROM t").await?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().await? {
                out.push(row.fields().map(|f| f.map(|v| v.map(<[u8]>::to_vec))).collect::<Result<Vec<_>, _>>()?);
            }
            Ok(out)
        })
    }

    #[test]
    fn reads_rows_with_and_without_eof_packets() {
        let big = vec![b'x'; MAX_PAYLOAD + 5];
        let rows: Vec<Vec<Option<&[u8]>>> = vec![
            vec![Some(b"1"), None],
            vec![Some(b""), Some(b"tab\there")],
            vec![Some(&big), Some(b"after a 16 MiB value")],
        ];
        let payloads: Vec<Vec<u8>> = rows.iter().map(|r| encoded(r)).collect();
        for deprecate_eof in [true, false] {
            let got = run(script(&payloads, deprecate_eof)).unwrap();
            let want: Vec<Vec<Option<Vec<u8>>>> =
                rows.iter().map(|r| r.iter().map(|v| v.map(<[u8]>::to_vec)).collect()).collect();
            assert!(got == want, "deprecate_eof {deprecate_eof}");
        }
    }

    #[test]
    fn malformed_rows_and_server_errors_are_errors() {
        let short = encoded(&[Some(b"only one")]);
        assert!(matches!(run(script(&[short], true)), Err(WireError::Protocol(_))));
        let long = encoded(&[Some(b"1"), Some(b"2"), Some(b"3")]);
        assert!(matches!(run(script(&[long], true)), Err(WireError::Protocol(m)) if m.contains("more values")));
        // The server gives up mid-result (e.g. the query was killed).
        let mut err = vec![0xFF];
        err.extend_from_slice(&1317u16.to_le_bytes());
        err.extend_from_slice(b"#70100Query execution was interrupted");
        let got = run(script(&[encoded(&[Some(b"1"), None]), err], true));
        assert!(matches!(got, Err(WireError::Server { code: 1317, ref state, .. }) if state == "70100"), "{got:?}");
        // The stream ends mid-result.
        let mut cut = script(&[encoded(&[Some(b"1"), None])], true);
        cut.truncate(cut.len() - 9);
        assert!(matches!(run(cut), Err(WireError::Closed)));
    }

    #[test]
    fn access_denied_is_the_servers_error() {
        let mut denied = vec![0xFF];
        denied.extend_from_slice(&1045u16.to_le_bytes());
        denied.extend_from_slice(b"#28000Access denied for user 'root'@'localhost'");
        let mut server = frame(&[mariadb_greeting()], 0);
        server.extend(frame(&[denied], 2));
        let err = run(server).unwrap_err().to_string();
        assert!(err.contains("1045") && err.contains("Access denied"), "{err}");
    }

    fn tls_connect() -> TlsConnect {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        TlsConnect { config: Arc::new(config), server_name: ServerName::try_from("db.example").unwrap() }
    }

    fn log_in(server: Vec<u8>, tls: &Tls) -> Result<Conn, WireError> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let stream = Box::new(tokio::io::join(std::io::Cursor::new(server), tokio::io::sink()));
            Conn::handshake_with(stream, false, tls, "root", b"secret").await
        })
    }

    /// Sets CLIENT_SSL in a greeting's lower capability half.
    fn offering_tls(mut greeting: Vec<u8>) -> Vec<u8> {
        let at = greeting.iter().position(|&b| b == 0).unwrap() + 1 + 4 + 8 + 1;
        greeting[at + 1] |= (CLIENT_SSL >> 8) as u8;
        greeting
    }

    #[test]
    fn tls_required_of_a_server_without_it_fails_before_the_login() {
        let server = frame(&[mariadb_greeting()], 0);
        assert!(matches!(log_in(server.clone(), &Tls::Required(tls_connect())), Err(WireError::NoTls)));
        // PREFERRED goes on in clear: the login's reply (an error here) is read.
        let mut denied = server;
        let mut err = vec![0xFF];
        err.extend_from_slice(&1045u16.to_le_bytes());
        err.extend_from_slice(b"#28000Access denied");
        denied.extend(frame(&[err], 2));
        assert!(matches!(log_in(denied, &Tls::Preferred(tls_connect())), Err(WireError::Server { code: 1045, .. })));
    }

    #[test]
    fn bytes_before_the_tls_handshake_are_refused() {
        // A man in the middle appends a forged reply to the greeting, hoping it is read as if
        // it had come through TLS.
        let mut server = frame(&[offering_tls(mariadb_greeting())], 0);
        server.extend(frame(&[ok()], 2));
        let got = log_in(server, &Tls::Required(tls_connect()));
        assert!(
            matches!(&got, Err(WireError::Protocol(m)) if m.contains("before the TLS handshake")),
            "{:?}",
            got.err()
        );
    }

    #[test]
    fn a_switch_to_an_unknown_plugin_is_unsupported() {
        let mut switch = vec![0xFE];
        switch.extend_from_slice(b"client_ed25519\0");
        switch.extend_from_slice(&[1; 32]);
        let mut server = frame(&[mariadb_greeting()], 0);
        server.extend(frame(&[switch], 2));
        assert!(matches!(run(server), Err(WireError::Unsupported(m)) if m.contains("client_ed25519")));
    }
}
