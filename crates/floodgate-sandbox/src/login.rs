//! How floodgate logs in to its sandbox, and nobody else does.
//!
//! MariaDB: `mariadb-install-db --auth-root-authentication-method=socket` creates
//! `root@localhost` and `<this process's account>@localhost`, both authenticated by
//! `unix_socket` (the peer's uid must be that account) and no other account: no password
//! exists to steal, and there is no account for TCP at all.
//!
//! MySQL has no `unix_socket` plugin loaded by default, so `root@localhost` gets a random
//! password that only this process holds, set by `--init-file` at the first start (the
//! initialiser's bootstrap mode refuses account statements).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::{io, Result};

/// A password only floodgate holds: Debug never prints it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

impl Password {
    /// 128 random bits from the kernel, as hex (so it needs no quoting in SQL or option files).
    pub(crate) fn random() -> Result<Password> {
        let mut bytes = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(io("reading /dev/urandom for the sandbox's password"))?;
        Ok(Password(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The statement MySQL's `--init-file` runs to give root this password.
    pub(crate) fn init_statement(&self) -> String {
        format!("ALTER USER 'root'@'localhost' IDENTIFIED BY '{}';\n", self.0)
    }

    /// A `[client]` option file for a person to log in to a kept sandbox with.
    pub(crate) fn client_options(&self, user: &str, socket: &Path) -> String {
        format!("[client]\nuser={user}\npassword={}\nsocket={}\n", self.0, socket.display())
    }
}

/// Creates `path` readable and writable by its owner only, with `contents`.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_random_and_never_debug_printed() {
        let (a, b) = (Password::random().unwrap(), Password::random().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(format!("{a:?}"), "<hidden>");
    }
}
