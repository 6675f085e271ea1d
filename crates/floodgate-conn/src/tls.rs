//! TLS the way the `mysql` client offers it: `--ssl-mode`, `--ssl-ca`, `--ssl-cert`,
//! `--ssl-key`, and the server's RSA key for `caching_sha2_password` outside TLS.
//!
//! One rustls configuration per connection serves both clients: mysql_async (through the
//! vendored patch that takes a ready `ClientConfig`) and floodgate-wire. The certificate
//! checks are ours, so `VERIFY_CA` checks the chain and not the name whatever rustls calls
//! a name mismatch this year (mysql_async's own check matches the error's text, which
//! rustls 0.23 no longer prints: vendor/README.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::{ConnError, ConnectOptions, Result};

/// `--ssl-mode`: how much TLS a TCP connection asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never TLS.
    Disabled,
    /// TLS when the server offers it, without checking its certificate; clear otherwise.
    #[default]
    Preferred,
    /// TLS or fail; the certificate is not checked.
    Required,
    /// TLS with a certificate signed by the `--ssl-ca` CA (any host name).
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host connected to.
    VerifyIdentity,
}

impl SslMode {
    /// The mode when none is given, as the `mysql` client decides: a CA file alone means
    /// `VERIFY_CA` (giving a CA and not checking against it would be a surprise); otherwise
    /// `PREFERRED`.
    pub fn implied(given: Option<SslMode>, has_ca: bool) -> SslMode {
        match given {
            Some(mode) => mode,
            None if has_ca => SslMode::VerifyCa,
            None => SslMode::Preferred,
        }
    }

    fn verifies_ca(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyIdentity)
    }

    /// The mysql client's spelling.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disabled => "DISABLED",
            SslMode::Preferred => "PREFERRED",
            SslMode::Required => "REQUIRED",
            SslMode::VerifyCa => "VERIFY_CA",
            SslMode::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SslMode {
    type Err = String;

    /// Case-insensitive, `-` or `_`, as option files write it.
    fn from_str(s: &str) -> std::result::Result<SslMode, String> {
        let all =
            [SslMode::Disabled, SslMode::Preferred, SslMode::Required, SslMode::VerifyCa, SslMode::VerifyIdentity];
        let wanted = s.trim().replace('-', "_").to_ascii_uppercase();
        all.into_iter().find(|m| m.name() == wanted).ok_or_else(|| {
            format!("unknown ssl-mode {s:?}: one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY")
        })
    }
}

/// The TLS options of a connection, and what a login outside TLS may do with the password.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// `--ssl-mode`.
    pub mode: SslMode,
    /// `--ssl-ca`: the CA certificates (PEM) the server's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// `--ssl-cert`: the client certificate chain (PEM), for accounts that `REQUIRE X509`.
    pub cert: Option<PathBuf>,
    /// `--ssl-key`: its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// `--server-public-key-path`: the server's RSA public key (PEM) that encrypts the
    /// password for `caching_sha2_password`'s full authentication outside TLS.
    pub server_public_key_path: Option<PathBuf>,
    /// `--get-server-public-key`: request that key from the server instead (a man in the
    /// middle could send his own: only on networks you trust).
    pub get_server_public_key: bool,
}

/// What a TCP connection does about TLS.
#[derive(Clone)]
pub(crate) enum Plan {
    Off,
    Preferred(Arc<ClientConfig>),
    Required(Arc<ClientConfig>),
}

impl Plan {
    pub(crate) fn config(&self) -> Option<&Arc<ClientConfig>> {
        match self {
            Plan::Off => None,
            Plan::Preferred(c) | Plan::Required(c) => Some(c),
        }
    }

    /// The same plan for floodgate-wire, checking the certificate against `host`.
    pub(crate) fn for_wire(&self, host: &str) -> Result<floodgate_wire::Tls> {
        let connect = |config: &Arc<ClientConfig>| -> Result<floodgate_wire::TlsConnect> {
            Ok(floodgate_wire::TlsConnect { config: config.clone(), server_name: server_name(host)? })
        };
        Ok(match self {
            Plan::Off => floodgate_wire::Tls::Off,
            Plan::Preferred(c) => floodgate_wire::Tls::Preferred(connect(c)?),
            Plan::Required(c) => floodgate_wire::Tls::Required(connect(c)?),
        })
    }
}

fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_string())
        .map_err(|_| ConnError::TlsSettings(format!("{host:?} is not a host name TLS can check a certificate against")))
}

/// The plan for a TCP connection with `options`: the files are read and checked here, so a
/// missing CA or a key without its certificate is a clear error before any connection.
pub(crate) fn plan(options: &TlsOptions) -> Result<Plan> {
    if options.mode.verifies_ca() && options.ca.is_none() {
        return Err(ConnError::TlsSettings(format!(
            "--ssl-mode {} needs the CA certificate to verify against: give --ssl-ca (as the mysql client, \
             floodgate does not trust the system's roots for database servers)",
            options.mode
        )));
    }
    if options.mode == SslMode::Disabled {
        return Ok(Plan::Off);
    }
    let config = Arc::new(client_config(options)?);
    Ok(match options.mode {
        SslMode::Preferred => Plan::Preferred(config),
        _ => Plan::Required(config),
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(options: &TlsOptions) -> Result<ClientConfig> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match (options.mode, &options.ca) {
        (SslMode::VerifyCa | SslMode::VerifyIdentity, Some(ca)) => {
            let roots = Arc::new(root_store(ca)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| ConnError::TlsSettings(format!("--ssl-ca {}: {e}", ca.display())))?;
            Arc::new(CertificateCheck { webpki, check_name: options.mode == SslMode::VerifyIdentity })
        }
        _ => Arc::new(EncryptOnly { provider: provider.clone() }),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnError::TlsSettings(format!("TLS protocol versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&options.cert, &options.key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(certificates(cert, "--ssl-cert")?, private_key(key)?)
            .map_err(|e| ConnError::TlsSettings(format!("--ssl-cert and --ssl-key do not make a pair: {e}"))),
        (Some(_), None) => Err(ConnError::TlsSettings("--ssl-cert needs --ssl-key (its private key)".into())),
        (None, Some(_)) => Err(ConnError::TlsSettings("--ssl-key needs --ssl-cert (its certificate)".into())),
    }
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| ConnError::TlsSettings(format!("reading {flag} {}: {e}", path.display())))
}

fn certificates(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, flag)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ConnError::TlsSettings(format!("{flag} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConnError::TlsSettings(format!("{flag} {}: no PEM certificate in it", path.display())));
    }
    Ok(certs)
}

fn root_store(ca: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca, "--ssl-ca")? {
        roots.add(cert).map_err(|e| ConnError::TlsSettings(format!("--ssl-ca {}: {e}", ca.display())))?;
    }
    Ok(roots)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read(path, "--ssl-key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            ConnError::TlsSettings(format!("--ssl-key {}: no PEM private key in it", path.display()))
        }
        e => ConnError::TlsSettings(format!("--ssl-key {}: {e}", path.display())),
    })
}

/// `--server-public-key-path`'s contents, read once per connection.
pub(crate) fn server_public_key(options: &TlsOptions) -> Result<Option<Vec<u8>>> {
    options.server_public_key_path.as_deref().map(|p| read(p, "--server-public-key-path")).transpose()
}

/// VERIFY_CA and VERIFY_IDENTITY: webpki checks the chain to the given CA, validity dates,
/// key usage and, last, the name; VERIFY_CA forgives only the name.
#[derive(Debug)]
struct CertificateCheck {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for CertificateCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(e) if !self.check_name && is_name_mismatch(&e) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// webpki checks the name after everything else, so a name mismatch means the rest passed.
fn is_name_mismatch(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

/// PREFERRED and REQUIRED: encrypted, any certificate (the mysql client's meaning). The
/// handshake signature is still checked against the certificate presented.
#[derive(Debug)]
struct EncryptOnly {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether mysql_async gave up because the server's greeting offers no TLS.
pub(crate) fn offers_no_tls(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer))
}

/// The error to report when securing the connection is what failed, or what the server
/// refused is a connection in clear (either client's error); None otherwise.
pub(crate) fn failure(options: &ConnectOptions, e: &(dyn std::error::Error + 'static)) -> Option<ConnError> {
    let no_tls = e.downcast_ref::<mysql_async::Error>().is_some_and(offers_no_tls)
        || matches!(e.downcast_ref::<floodgate_wire::WireError>(), Some(floodgate_wire::WireError::NoTls));
    let reason = if no_tls {
        format!("the server does not offer TLS, and --ssl-mode {} requires it", options.tls.mode)
    } else if let Some(tls) = rustls_error(e) {
        format!("TLS: {}", explain(tls, &options.tls, &options.host_name()))
    } else if options.tls.mode == SslMode::Disabled && refused_in_clear(e) {
        format!(
            "{e} (the connection was not encrypted, --ssl-mode DISABLED: a server with \
             require_secure_transport=ON, or an account created with REQUIRE SSL, refuses that, and MariaDB \
             says only \"Access denied\"; try --ssl-mode REQUIRED or stricter)"
        )
    } else {
        return None;
    };
    Some(ConnError::Tls { target: options.describe(), reason })
}

/// Access denied (MariaDB's answer to a login in clear that TLS is required for) or MySQL's
/// own "insecure transport prohibited".
fn refused_in_clear(e: &(dyn std::error::Error + 'static)) -> bool {
    const CODES: [u16; 2] = [ER_ACCESS_DENIED, ER_SECURE_TRANSPORT_REQUIRED];
    let code = match (e.downcast_ref::<mysql_async::Error>(), e.downcast_ref::<floodgate_wire::WireError>()) {
        (Some(mysql_async::Error::Server(se)), _) => Some(se.code),
        (_, Some(floodgate_wire::WireError::Server { code, .. })) => Some(*code),
        _ => None,
    };
    code.is_some_and(|c| CODES.contains(&c))
}

const ER_ACCESS_DENIED: u16 = 1045;
const ER_SECURE_TRANSPORT_REQUIRED: u16 = 3159;

/// The rustls error behind a failed connection, if TLS is what failed. mysql_async and
/// tokio-rustls carry it inside `std::io::Error`s, whose `source()` skips it.
pub(crate) fn rustls_error<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        let inner = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        if let Some(found) = inner.and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// What a failed TLS handshake means, in words that name the certificate problem and the
/// option to look at.
pub(crate) fn explain(e: &rustls::Error, options: &TlsOptions, host: &str) -> String {
    let ca = options.ca.as_deref().map_or_else(|| "--ssl-ca".to_string(), |p| format!("--ssl-ca {}", p.display()));
    let why = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => format!("the server's certificate is not signed by the CA of {ca}"),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => format!(
                "the server's certificate is not issued for {host:?}: connect by a name it lists, or check \
                 the CA only with --ssl-mode VERIFY_CA"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet".to_string()
            }
            CertificateError::Revoked => "the server's certificate is revoked".to_string(),
            _ => "the server's certificate is not acceptable".to_string(),
        },
        rustls::Error::AlertReceived(_) => {
            "the server refused the TLS handshake (a client certificate it does not accept?)".to_string()
        }
        _ => "the TLS handshake failed".to_string(),
    };
    format!("{why} ({e}; --ssl-mode {})", options.mode)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn modes_parse_as_the_mysql_client_spells_them() {
        assert_eq!("verify_ca".parse::<SslMode>().unwrap(), SslMode::VerifyCa);
        assert_eq!("VERIFY-IDENTITY".parse::<SslMode>().unwrap(), SslMode::VerifyIdentity);
        assert_eq!(" Disabled ".parse::<SslMode>().unwrap(), SslMode::Disabled);
        assert!("on".parse::<SslMode>().unwrap_err().contains("VERIFY_CA"));
    }

    #[test]
    fn a_ca_alone_implies_verify_ca() {
        assert_eq!(SslMode::implied(None, false), SslMode::Preferred);
        assert_eq!(SslMode::implied(None, true), SslMode::VerifyCa);
        assert_eq!(SslMode::implied(Some(SslMode::Required), true), SslMode::Required);
    }

    #[test]
    fn verifying_without_a_ca_and_half_an_identity_are_refused() {
        let no_ca = TlsOptions { mode: SslMode::VerifyIdentity, ..Default::default() };
        let err = plan(&no_ca).err().unwrap().to_string();
        assert!(err.contains("--ssl-ca"), "{err}");
        let half = TlsOptions { cert: Some("/nonexistent.pem".into()), ..Default::default() };
        let err = plan(&half).err().unwrap().to_string();
        assert!(err.contains("--ssl-key"), "{err}");
        let missing =
            TlsOptions { mode: SslMode::VerifyCa, ca: Some("/nonexistent/ca.pem".into()), ..Default::default() };
        let err = plan(&missing).err().unwrap().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert!(matches!(plan(&TlsOptions { mode: SslMode::Disabled, ..Default::default() }), Ok(Plan::Off)));
    }
}
