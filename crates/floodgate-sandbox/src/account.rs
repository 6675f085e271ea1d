//! Who the server runs as, and who logs in to it.
//!
//! A sandbox may restore a hostile backup, whose unrecognised statements run as written, so
//! the server never runs as root: when this process is root, the server switches to an
//! unprivileged account (Debian's `mysql`, which installing mariadb-server creates) with
//! `--user`, and the sandbox's directory is handed to that account. Otherwise it runs as
//! this process's own account, which mariadbd cannot leave anyway.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::{io, Result, SandboxError};

/// The unprivileged account a server started by root switches to.
const UNPRIVILEGED: &str = "mysql";

/// The operating-system account the server runs as.
#[derive(Debug, Clone)]
pub(crate) enum ServerAccount {
    /// This process's own account (it is not root).
    Own,
    /// Another, unprivileged account (this process is root).
    Other {
        /// Its name, for `--user`.
        name: String,
        uid: u32,
        gid: u32,
    },
}

impl ServerAccount {
    /// `mysql` when this process is root, this process's account otherwise.
    pub(crate) fn choose() -> Result<ServerAccount> {
        if effective_uid() != Some(0) {
            return Ok(ServerAccount::Own);
        }
        let missing = || {
            SandboxError::Account(format!(
                "floodgate runs as root and the sandbox's server must not: there is no unprivileged \
                 `{UNPRIVILEGED}` account to run it as (installing mariadb-server creates it; or \
                 `useradd --system {UNPRIVILEGED}`)"
            ))
        };
        let uid = id_number(&["-u", UNPRIVILEGED]).ok_or_else(missing)?;
        let gid = id_number(&["-g", UNPRIVILEGED]).ok_or_else(missing)?;
        if uid == 0 {
            return Err(SandboxError::Account(format!("the `{UNPRIVILEGED}` account is uid 0: it is root")));
        }
        Ok(ServerAccount::Other { name: UNPRIVILEGED.into(), uid, gid })
    }

    /// The server's (and the initialiser's) `--user=NAME`, when it must switch.
    pub(crate) fn user_arg(&self) -> Option<String> {
        match self {
            ServerAccount::Own => None,
            ServerAccount::Other { name, .. } => Some(format!("--user={name}")),
        }
    }

    /// Gives `path` to the server's account, so it can write there after dropping root.
    pub(crate) fn hand_over(&self, path: &Path) -> Result<()> {
        match self {
            ServerAccount::Own => Ok(()),
            ServerAccount::Other { uid, gid, .. } => std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .map_err(io(format!("giving {} to the server's account", path.display()))),
        }
    }

    /// Whether the account may walk down to `dir` (search permission on every ancestor):
    /// a server that drops root cannot use a sandbox under, say, /root.
    pub(crate) fn can_reach(&self, dir: &Path) -> bool {
        let ServerAccount::Other { uid, gid, .. } = self else { return true };
        dir.ancestors().all(|d| std::fs::metadata(d).is_ok_and(|m| searchable(&m, *uid, *gid)))
    }
}

/// Search permission on a directory for `uid`/`gid` (supplementary groups aside).
fn searchable(m: &std::fs::Metadata, uid: u32, gid: u32) -> bool {
    let mode = m.mode();
    if m.uid() == uid {
        mode & 0o100 != 0
    } else if m.gid() == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// This process's effective uid, from /proc/self/status.
pub(crate) fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The name of this process's account: MariaDB's `unix_socket` login accepts exactly the
/// database account of that name.
pub(crate) fn login_name() -> Result<String> {
    let out = Command::new("id").arg("-un").output().map_err(io("asking `id -un` for this account's name"))?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // mariadb-install-db pastes the name into SQL between quotes.
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !out.status.success() || !plain {
        return Err(SandboxError::Account(format!("this process's account has no usable name ({name:?})")));
    }
    Ok(name)
}

/// `id ARGS`' number, or None when the account does not exist.
fn id_number(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_process_runs_the_server_as_another_account() {
        match ServerAccount::choose() {
            Ok(ServerAccount::Other { uid, .. }) => assert!(effective_uid() == Some(0) && uid != 0),
            Ok(ServerAccount::Own) => assert_ne!(effective_uid(), Some(0)),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn search_permission_follows_owner_group_other() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let m = std::fs::metadata(dir.path()).unwrap();
        assert!(searchable(&m, m.uid(), m.gid()));
        assert!(!searchable(&m, m.uid() + 1, m.gid() + 1));
        assert!(Path::new("/").ancestors().all(|d| std::fs::metadata(d).is_ok_and(|m| searchable(&m, 12345, 12345))));
    }
}
