//! Turns connection flags, option files and MYSQL_PWD into ConnectOptions, as `mysql` does:
//! flags win over the option file, which wins over the environment. An option file anyone
//! may write is ignored, with mysql's warning: whoever wrote it would choose the server
//! floodgate sends the password to, or the account it logs in as.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use floodgate_format::ErrorClass;

use crate::failure::{Failure, OrFail, Result};
use floodgate_conn::{ConnectOptions, SslMode, TlsOptions};

use crate::args::ConnArgs;
use crate::secret::Secret;

/// The `[client]` section of an option file (only the keys floodgate uses).
#[derive(Debug, Default)]
struct ClientSection {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    password: Option<Secret>,
    socket: Option<PathBuf>,
    ssl_mode: Option<String>,
    ssl_ca: Option<PathBuf>,
    ssl_cert: Option<PathBuf>,
    ssl_key: Option<PathBuf>,
    server_public_key_path: Option<PathBuf>,
    get_server_public_key: Option<bool>,
}

fn parse_option_file(text: &str) -> ClientSection {
    let mut out = ClientSection::default();
    let mut in_client = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_client = matches!(line, "[client]" | "[mysql]" | "[mariadb-client]" | "[client-mariadb]");
            continue;
        }
        if !in_client || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        // A boolean option may be written bare: `get-server-public-key` means it is on.
        let (k, v) = match line.split_once('=') {
            Some(kv) => kv,
            None if line.replace('_', "-") == "get-server-public-key" => (line, "1"),
            None => continue,
        };
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        match k.trim().replace('_', "-").as_str() {
            "host" => out.host = Some(v),
            "port" => out.port = v.parse().ok(),
            "user" => out.user = Some(v),
            "password" => out.password = Some(Secret::from(v)),
            "socket" => out.socket = Some(PathBuf::from(v)),
            "ssl-mode" => out.ssl_mode = Some(v),
            "ssl-ca" => out.ssl_ca = Some(PathBuf::from(v)),
            "ssl-cert" => out.ssl_cert = Some(PathBuf::from(v)),
            "ssl-key" => out.ssl_key = Some(PathBuf::from(v)),
            "server-public-key-path" => out.server_public_key_path = Some(PathBuf::from(v)),
            "get-server-public-key" => out.get_server_public_key = Some(is_on(&v)),
            _ => {}
        }
    }
    out
}

/// How option files spell a boolean that is on.
fn is_on(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "1" | "on" | "true" | "yes")
}

fn option_file(explicit: Option<&Path>) -> Result<ClientSection> {
    if let Some(path) = explicit {
        if world_writable(path) {
            return Ok(ignored(path));
        }
        let text = std::fs::read_to_string(path)
            .or_fail(ErrorClass::Usage, || format!("reading --defaults-file {}", path.display()))?;
        return Ok(parse_option_file(&text));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match home.map(|h| h.join(".my.cnf")).filter(|p| p.is_file()) {
        Some(p) if world_writable(&p) => Ok(ignored(&p)),
        Some(p) => Ok(parse_option_file(&std::fs::read_to_string(p).unwrap_or_default())),
        None => Ok(ClientSection::default()),
    }
}

/// A regular file anyone may write, as mysql tests it (`S_IWOTH` on what the path leads to).
fn world_writable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o002 != 0)
}

fn ignored(path: &Path) -> ClientSection {
    eprintln!("floodgate: warning: World-writable config file '{}' is ignored.", path.display());
    ClientSection::default()
}

/// Resolves the target connection from flags, option file and environment.
/// A replica of `target` as `--replica` names it: `HOST[:PORT]`, or a Unix socket's path
/// (starting with `/`); the target's account and TLS settings.
pub fn replica(target: &ConnectOptions, spec: &str) -> Result<ConnectOptions> {
    let mut options = target.clone();
    if spec.starts_with('/') {
        (options.socket, options.host, options.port) = (Some(spec.into()), None, None);
        return Ok(options);
    }
    let (host, port) = match spec.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let Some(number) = port.parse::<u16>().ok().filter(|p| *p > 0) else {
                return Err(Failure::new(ErrorClass::Usage, format!("--replica {spec}: not a port: {port:?}")));
            };
            (host.to_string(), Some(number))
        }
        _ => (spec.to_string(), None),
    };
    if host.is_empty() {
        return Err(Failure::new(ErrorClass::Usage, format!("--replica {spec:?}: HOST[:PORT] or a socket path")));
    }
    (options.socket, options.host, options.port) = (None, Some(host), port);
    Ok(options)
}

pub fn resolve(args: &ConnArgs) -> Result<ConnectOptions> {
    let file = option_file(args.defaults_file.as_deref())?;
    let tls = tls_options(args, &file)?;
    let mut password = args
        .password
        .as_ref()
        .or(file.password.as_ref())
        .map(|p| p.expose().to_string())
        .or_else(|| std::env::var("MYSQL_PWD").ok());
    if args.password_prompt {
        password = Some(
            rpassword::prompt_password("Enter password: ")
                .or_fail(ErrorClass::Failed, || "reading the password".into())?,
        );
    }
    Ok(ConnectOptions {
        host: args.host.clone().or(file.host),
        port: args.port.or(file.port),
        user: args.user.clone().or(file.user),
        password,
        socket: args.socket.clone().or(file.socket),
        tls,
    })
}

/// `--ssl-*` and the server's RSA key, flags over the option file. A mode given anywhere is
/// kept; without one, a CA means VERIFY_CA, as in the mysql client.
fn tls_options(args: &ConnArgs, file: &ClientSection) -> Result<TlsOptions> {
    let file_mode = file.ssl_mode.as_deref().map(|v| {
        v.parse::<SslMode>()
            .map_err(|why| Failure::new(ErrorClass::Usage, format!("ssl-mode in the option file: {why}")))
    });
    let given = match args.ssl_mode {
        Some(mode) => Some(mode),
        None => file_mode.transpose()?,
    };
    let ca = args.ssl_ca.clone().or_else(|| file.ssl_ca.clone());
    Ok(TlsOptions {
        mode: SslMode::implied(given, ca.is_some()),
        ca,
        cert: args.ssl_cert.clone().or_else(|| file.ssl_cert.clone()),
        key: args.ssl_key.clone().or_else(|| file.ssl_key.clone()),
        server_public_key_path: args.server_public_key_path.clone().or_else(|| file.server_public_key_path.clone()),
        get_server_public_key: args.get_server_public_key || file.get_server_public_key.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_client_section_only() {
        let s = parse_option_file(
            "[mysqld]\nport=1\n[client]\nuser = app\npassword=\"s3 cret\"\nport=3307\nsocket=/tmp/x.sock\n",
        );
        assert_eq!(s.user.as_deref(), Some("app"));
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("s3 cret"));
        assert!(!format!("{s:?}").contains("s3 cret"), "Debug hides the password: {s:?}");
        assert_eq!(s.port, Some(3307));
        assert_eq!(s.socket, Some(PathBuf::from("/tmp/x.sock")));
    }

    #[test]
    fn only_a_world_writable_regular_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("my.cnf");
        std::fs::write(&file, "[client]\nuser=x\n").unwrap();
        for (mode, ignored) in [(0o600, false), (0o664, false), (0o666, true), (0o602, true)] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(world_writable(&file), ignored, "{mode:o}");
        }
        assert!(!world_writable(dir.path()), "a directory is not an option file");
    }

    #[test]
    fn reads_tls_keys_and_bare_booleans() {
        let s = parse_option_file(
            "[client]\nssl-mode = verify_identity\nssl_ca=/etc/ca.pem\nssl-cert=/c.pem\nssl-key='/k.pem'\n\
             get-server-public-key\nserver-public-key-path=/rsa.pem\n",
        );
        assert_eq!(s.ssl_mode.as_deref(), Some("verify_identity"));
        assert_eq!(s.ssl_ca, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!((s.ssl_cert, s.ssl_key), (Some(PathBuf::from("/c.pem")), Some(PathBuf::from("/k.pem"))));
        assert_eq!(s.get_server_public_key, Some(true));
        assert_eq!(s.server_public_key_path, Some(PathBuf::from("/rsa.pem")));
    }

    #[test]
    fn a_mode_anywhere_wins_over_the_ca_implying_verify_ca() {
        let file = parse_option_file("[client]\nssl-ca=/etc/ca.pem\n");
        let tls = tls_options(&ConnArgs::default(), &file).unwrap();
        assert_eq!(tls.mode, SslMode::VerifyCa);
        let args = ConnArgs { ssl_mode: Some(SslMode::Required), ..Default::default() };
        assert_eq!(tls_options(&args, &file).unwrap().mode, SslMode::Required);
        let file = parse_option_file("[client]\nssl-mode=DISABLED\n");
        let args = ConnArgs { ssl_ca: Some("/ca.pem".into()), ..Default::default() };
        assert_eq!(tls_options(&args, &file).unwrap().mode, SslMode::Disabled);
        let bad = parse_option_file("[client]\nssl-mode=maybe\n");
        let err = tls_options(&ConnArgs::default(), &bad).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{}", err.message());
    }
}
