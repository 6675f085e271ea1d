//! Turns connection flags, option files and MYSQL_PWD into ConnectOptions, as `mysql` does:
//! flags win over the option file, which wins over the environment.

use std::path::{Path, PathBuf};

use floodgate_format::ErrorClass;

use crate::failure::{OrFail, Result};
use floodgate_conn::ConnectOptions;

use crate::args::ConnArgs;

/// The `[client]` section of an option file (only the keys floodgate uses).
#[derive(Debug, Default)]
struct ClientSection {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    password: Option<String>,
    socket: Option<PathBuf>,
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
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        match k.trim().replace('_', "-").as_str() {
            "host" => out.host = Some(v),
            "port" => out.port = v.parse().ok(),
            "user" => out.user = Some(v),
            "password" => out.password = Some(v),
            "socket" => out.socket = Some(PathBuf::from(v)),
            _ => {}
        }
    }
    out
}

fn option_file(explicit: Option<&Path>) -> Result<ClientSection> {
    if let Some(path) = explicit {
        let text = std::fs::read_to_string(path)
            .or_fail(ErrorClass::Usage, || format!("reading --defaults-file {}", path.display()))?;
        return Ok(parse_option_file(&text));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match home.map(|h| h.join(".my.cnf")).filter(|p| p.is_file()) {
        Some(p) => Ok(parse_option_file(&std::fs::read_to_string(p).unwrap_or_default())),
        None => Ok(ClientSection::default()),
    }
}

/// Resolves the target connection from flags, option file and environment.
pub fn resolve(args: &ConnArgs) -> Result<ConnectOptions> {
    let file = option_file(args.defaults_file.as_deref())?;
    let mut password = args.password.clone().or(file.password).or_else(|| std::env::var("MYSQL_PWD").ok());
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
        assert_eq!(s.password.as_deref(), Some("s3 cret"));
        assert_eq!(s.port, Some(3307));
        assert_eq!(s.socket, Some(PathBuf::from("/tmp/x.sock")));
    }
}
