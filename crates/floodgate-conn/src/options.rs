//! Connection options, configured the way the `mysql` client would be.

use std::path::PathBuf;

use floodgate_wire::Endpoint;
use mysql_async::{Opts, OptsBuilder, SslOpts};

use crate::tls::{self, Plan, TlsOptions};
use crate::Result;

/// Where and how to connect: the `mysql` client's `-h -P -u -p -S` and `--ssl-*` in one
/// struct.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// Host name or address; None or "localhost" means the Unix socket.
    pub host: Option<String>,
    /// TCP port (3306 when None).
    pub port: Option<u16>,
    /// User name (the login name when None, as mysql does).
    pub user: Option<String>,
    /// Password. Never logged or reported.
    pub password: Option<String>,
    /// Unix socket path.
    pub socket: Option<PathBuf>,
    /// `--ssl-mode` and friends; TCP only (a Unix socket is local and never encrypted).
    pub tls: TlsOptions,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("socket", &self.socket)
            .field("tls", &self.tls)
            .finish()
    }
}

const DEFAULT_SOCKETS: [&str; 3] = ["/run/mysqld/mysqld.sock", "/var/run/mysqld/mysqld.sock", "/tmp/mysql.sock"];

impl ConnectOptions {
    fn uses_socket(&self) -> bool {
        self.socket.is_some() || matches!(self.host.as_deref(), None | Some("localhost"))
    }

    fn socket_path(&self) -> Option<PathBuf> {
        if let Some(s) = &self.socket {
            return Some(s.clone());
        }
        DEFAULT_SOCKETS.iter().map(PathBuf::from).find(|p| p.exists())
    }

    /// A description for messages: `user@host:port` or `user@socket`, never the password.
    pub fn describe(&self) -> String {
        let user = self.user_name();
        match self.endpoint() {
            Endpoint::Unix(sock) => format!("{user}@{}", sock.display()),
            // The host as given: `localhost` without a socket is named, not its address.
            Endpoint::Tcp { port, .. } => format!("{user}@{}:{port}", self.host.as_deref().unwrap_or("localhost")),
        }
    }

    /// Where to connect: the socket when the host is local and a socket is known, as the
    /// `mysql` client decides.
    pub fn endpoint(&self) -> Endpoint {
        match (self.uses_socket(), self.socket_path()) {
            (true, Some(sock)) => Endpoint::Unix(sock),
            _ => {
                let host = match self.host.as_deref() {
                    None | Some("localhost") => "127.0.0.1".to_string(),
                    Some(h) => h.to_string(),
                };
                Endpoint::Tcp { host, port: self.port.unwrap_or(3306) }
            }
        }
    }

    /// The host name or address a TCP connection goes to (what a certificate must name).
    pub fn host_name(&self) -> String {
        match self.endpoint() {
            Endpoint::Tcp { host, .. } => host,
            Endpoint::Unix(sock) => sock.display().to_string(),
        }
    }

    /// The user name to log in as.
    pub fn user_name(&self) -> String {
        self.user.clone().unwrap_or_else(login_name)
    }

    /// What a connection does about TLS: nothing over a Unix socket, else as `--ssl-mode`
    /// says (the files it names are read here).
    pub(crate) fn tls_plan(&self) -> Result<Plan> {
        match self.endpoint() {
            Endpoint::Unix(_) => Ok(Plan::Off),
            Endpoint::Tcp { .. } => tls::plan(&self.tls),
        }
    }

    /// mysql_async's options, with TLS configured by `tls` (None: in clear).
    pub(crate) fn opts(&self, tls: Option<&std::sync::Arc<rustls::ClientConfig>>) -> Result<Opts> {
        let b = OptsBuilder::default()
            .user(Some(self.user_name()))
            .pass(self.password.clone())
            .prefer_socket(false)
            .tcp_nodelay(true)
            .server_public_key(tls::server_public_key(&self.tls)?)
            .get_server_public_key(self.tls.get_server_public_key)
            .ssl_opts(tls.map(|config| SslOpts::default().with_rustls_client_config(Some(config.clone()))));
        let b = match self.endpoint() {
            Endpoint::Unix(sock) => b.socket(Some(sock.to_string_lossy().into_owned())),
            Endpoint::Tcp { host, port } => b.ip_or_hostname(host).tcp_port(port),
        };
        Ok(Opts::from(b))
    }
}

fn login_name() -> String {
    std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "root".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_password() {
        let o = ConnectOptions { user: Some("app".into()), password: Some("hunter2".into()), ..Default::default() };
        let shown = format!("{o:?}");
        assert!(shown.contains("<hidden>") && !shown.contains("hunter2"), "{shown}");
    }
}
