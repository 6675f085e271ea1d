//! A certificate authority made for the tests, its server certificates (one for the address
//! the tests connect to, one for another name), a client certificate, and a second CA that
//! signed none of them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// PEM files in a directory that lives as long as the test binary.
pub struct Certs {
    _dir: tempfile::TempDir,
    /// The CA that signed the servers' and the client's certificates.
    pub ca: PathBuf,
    /// A CA that signed nothing the servers present.
    pub other_ca: PathBuf,
    /// A server certificate for 127.0.0.1 (IP SAN) and `localhost`, and its key.
    pub server: (PathBuf, PathBuf),
    /// A server certificate for `db.example.invalid` only, and its key.
    pub misnamed_server: (PathBuf, PathBuf),
    /// A client certificate for accounts that REQUIRE X509, and its key.
    pub client: (PathBuf, PathBuf),
}

pub fn certs() -> &'static Certs {
    static C: OnceLock<Certs> = OnceLock::new();
    C.get_or_init(make)
}

struct Authority {
    cert: Certificate,
    key: KeyPair,
}

fn authority(name: &str) -> Authority {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Authority { cert: params.self_signed(&key).unwrap(), key }
}

/// A certificate for `names` (IP addresses become IP SANs) signed by `ca`.
fn leaf(ca: &Authority, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names.first().map_or("client", String::as_str));
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    // The server may run as another user than the tests (an unprivileged account when the
    // tests run as root): these throwaway files must be readable by it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

fn pair(dir: &Path, name: &str, (cert, key): (String, String)) -> (PathBuf, PathBuf) {
    (write(dir, &format!("{name}.pem"), &cert), write(dir, &format!("{name}-key.pem"), &key))
}

fn make() -> Certs {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ca = authority("floodgate test CA");
    let other = authority("an unrelated CA");
    let server = leaf(&ca, &["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let misnamed = leaf(&ca, &["db.example.invalid"], ExtendedKeyUsagePurpose::ServerAuth);
    let client = leaf(&ca, &[], ExtendedKeyUsagePurpose::ClientAuth);
    let path = dir.path();
    Certs {
        ca: write(path, "ca.pem", &ca.cert.pem()),
        other_ca: write(path, "other-ca.pem", &other.cert.pem()),
        server: pair(path, "server", server),
        misnamed_server: pair(path, "misnamed-server", misnamed),
        client: pair(path, "client", client),
        _dir: dir,
    }
}
