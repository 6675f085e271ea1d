//! A throwaway MariaDB (or MySQL) server for tests, benchmarks and restore drills, and a
//! throwaway S3-compatible server ([`S3Sandbox`]) for tests and benchmarks of object storage.
//!
//! [`Sandbox::start`] initialises a data directory in a fresh temporary directory, starts the
//! server on a Unix socket inside that directory (and on a free TCP port only when asked),
//! and waits until it accepts connections. Dropping the [`Sandbox`] kills the server and
//! removes the directory.
//!
//! The sandbox is locked down, since it may run a hostile backup's statements: the socket
//! is its only way in (no TCP unless [`SandboxOptions::tcp`]), in a directory only the
//! server's account can enter; only floodgate can log in (see `login.rs`); `secure_file_priv`
//! keeps `LOAD_FILE`, `LOAD DATA INFILE` and `SELECT ... INTO OUTFILE` inside an empty
//! directory of the sandbox; and the server never runs as root (see `account.rs`).
//!
//! The server runs under a tiny shell guardian that waits for its standard input to close.
//! The input is a pipe held by this process, so the server and its files go away when the
//! `Sandbox` is dropped *and* when this process dies any other way (a panic that aborts,
//! `kill -9`, a test binary that never runs destructors for a shared static): the kernel
//! closes the pipe, the guardian kills the server and deletes the directory. Nothing is
//! left behind.
//!
//! MariaDB is initialised with `mariadb-install-db`; MySQL (`mysqld --initialize-insecure`)
//! follows the same path but is untested here, since no MySQL binaries are available.

mod account;
mod login;
mod s3;

pub use s3::S3Sandbox;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use account::ServerAccount;
use login::Password;

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// No server binary was found.
    #[error("no server binary: {0} (install mariadb-server, or pass the binary's path)")]
    NoServer(String),
    /// Creating the directory or running a helper failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Initialising the data directory failed.
    #[error("initialising the data directory failed: {0}")]
    Init(String),
    /// No account the server may run as, or none to log in with.
    #[error("{0}")]
    Account(String),
    /// The server exited or never became ready.
    #[error("server did not start: {reason}\n--- last lines of its error log ---\n{log}")]
    Start {
        /// What happened.
        reason: String,
        /// Tail of the error log.
        log: String,
    },
}

type Result<T> = std::result::Result<T, SandboxError>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// `mariadbd`/`mysqld` to run; found on PATH (and in /usr/sbin) when None.
    pub server_binary: Option<PathBuf>,
    /// InnoDB buffer pool size, e.g. "256M".
    pub buffer_pool: String,
    /// Keep a binary log (row format), for point-in-time recovery tests.
    pub binlog: bool,
    /// Extra `--option=value` arguments for the server.
    pub extra_args: Vec<String>,
    /// How long to wait for the server to accept connections.
    pub startup_timeout: Duration,
    /// Listen on a free TCP port of 127.0.0.1 too. Off by default: the Unix socket, in a
    /// directory only the server's account may enter, is then the only way in.
    pub tcp: bool,
    /// The one directory `LOAD_FILE`, `LOAD DATA INFILE` and `SELECT ... INTO OUTFILE` may
    /// use (`secure_file_priv`). None: an empty directory inside the sandbox. Another must
    /// exist and be usable by the server's account (`mysql` when this process is root).
    pub secure_file_priv: Option<PathBuf>,
}

impl SandboxOptions {
    /// Settings for a server that only exists to be restored into and thrown away (drills):
    /// no durability (no doublewrite buffer, the redo log flushed about once a second, no
    /// binary log), a large redo log so checkpoints do not throttle bulk loads, and a buffer
    /// pool of a quarter of the machine's available memory (256 MiB to 16 GiB).
    pub fn fast_ingest() -> SandboxOptions {
        SandboxOptions {
            buffer_pool: format!("{}M", buffer_pool_mib(available_memory_mib())),
            extra_args: vec![
                "--innodb-flush-log-at-trx-commit=0".into(),
                // OFF, not 0: an enum on MySQL 8.0.30+ and MariaDB 11, a boolean on MariaDB 10.
                "--innodb-doublewrite=OFF".into(),
                "--innodb-log-file-size=1G".into(),
                "--innodb-log-buffer-size=64M".into(),
            ],
            ..SandboxOptions::default()
        }
    }
}

/// A quarter of `available` MiB, within 256 MiB and 16 GiB.
fn buffer_pool_mib(available: Option<u64>) -> u64 {
    available.map_or(256, |m| (m / 4).clamp(256, 16 << 10))
}

/// `MemAvailable` from /proc/meminfo, in MiB.
fn available_memory_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            server_binary: None,
            buffer_pool: "256M".into(),
            binlog: false,
            extra_args: Vec::new(),
            startup_timeout: Duration::from_secs(60),
            tcp: false,
            secure_file_priv: None,
        }
    }
}

/// A running throwaway server. Dropping it kills the server and deletes its files.
#[derive(Debug)]
pub struct Sandbox {
    dir: PathBuf,
    port: Option<u16>,
    socket: PathBuf,
    guardian: Option<Child>,
    lifeline: Option<ChildStdin>,
    version: String,
    /// Set by [`Sandbox::keep`]: dropping leaves the server and its files alone.
    kept: bool,
    account: ServerAccount,
    /// The database account floodgate logs in as.
    user: String,
    /// MySQL's root password (MariaDB logs in by `unix_socket`, without one).
    password: Option<Password>,
    /// Sets that password at MySQL's first start; removed once the server is ready.
    init_file: Option<PathBuf>,
}

/// A sandbox left running by [`Sandbox::keep`]: nothing owns it any more.
#[derive(Debug, Clone)]
pub struct KeptSandbox {
    /// The directory holding the data directory, socket and logs.
    pub dir: PathBuf,
    /// The Unix socket.
    pub socket: PathBuf,
    /// The TCP port on 127.0.0.1, if it listens on one.
    pub port: Option<u16>,
    /// The server's process id.
    pub server_pid: Option<u32>,
    /// The database account to log in as (by `unix_socket`, as the operating-system account
    /// of the same name, unless `defaults_file` holds a password).
    pub user: String,
    /// A `[client]` option file (0600) with the password, for a server that needs one (MySQL).
    pub defaults_file: Option<PathBuf>,
}

impl Sandbox {
    /// Starts a server with `options` and waits until it is ready.
    pub fn start(options: &SandboxOptions) -> Result<Sandbox> {
        let server = find_server(options.server_binary.as_deref())?;
        let version = server_version(&server)?;
        let account = ServerAccount::choose()?;
        let (user, password) = if is_mysql(&version) {
            ("root".to_string(), Some(Password::random()?))
        } else {
            (account::login_name()?, None)
        };
        let dir = make_dir(&account)?;
        let mut sandbox = Sandbox {
            socket: dir.join("mysql.sock"),
            dir,
            port: None,
            guardian: None,
            lifeline: None,
            version,
            kept: false,
            account,
            user,
            password,
            init_file: None,
        };
        // Until the server's guardian exists, an init guardian owns the directory: if this
        // process dies while the data directory is being initialised, it kills the
        // initialiser and removes the directory.
        let init_guard = InitGuard::spawn(&sandbox.dir)?;
        sandbox.prepare_dirs()?;
        sandbox.init_datadir(&server)?;
        sandbox.prepare_password()?;
        sandbox.launch(&server, options)?;
        init_guard.release();
        Ok(sandbox)
    }

    /// The TCP port on 127.0.0.1, when [`SandboxOptions::tcp`] asked for one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The Unix socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The database account to log in as, over the socket. MariaDB authenticates it by
    /// `unix_socket`: it is this process's own account name, and needs no password.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password to log in with, for a server without `unix_socket` (MySQL): random, and
    /// held only by this process.
    pub fn password(&self) -> Option<&str> {
        self.password.as_ref().map(Password::as_str)
    }

    /// The directory holding the data directory, socket and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's `--version` line.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The server's process id, for tests that kill or restart it.
    pub fn server_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("server.pid")).ok()?.trim().parse().ok()
    }

    fn datadir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Temporary files of the server and of its bootstrap, kept inside the sandbox: in a
    /// shared /tmp, concurrent bootstraps were seen to lose each other's temporary tables.
    fn tmpdir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// The default `secure_file_priv`: empty, and the only place server-side file
    /// statements may touch.
    fn files_dir(&self) -> PathBuf {
        self.dir.join("files")
    }

    /// The temporary and file directories, and the sandbox itself, belong to the server's
    /// account (it writes there after dropping root); nobody else may enter the sandbox,
    /// where the socket is.
    fn prepare_dirs(&self) -> Result<()> {
        for d in [self.tmpdir(), self.files_dir()] {
            std::fs::create_dir(&d).map_err(io(format!("creating {}", d.display())))?;
            self.account.hand_over(&d)?;
        }
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("making the sandbox private"))?;
        self.account.hand_over(&self.dir)
    }

    fn init_datadir(&self, server: &Path) -> Result<()> {
        let datadir = self.datadir();
        let mut command = if is_mysql(&self.version) {
            let mut c = Command::new(server);
            c.arg("--no-defaults").arg("--initialize-insecure");
            c
        } else {
            let mut c = Command::new(find_install_db(server)?);
            c.arg("--no-defaults")
                .arg("--auth-root-authentication-method=socket")
                .arg(format!("--auth-root-socket-user={}", self.user))
                .arg("--skip-test-db");
            c
        };
        command
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--tmpdir={}", self.tmpdir().display()))
            .env("TMPDIR", self.tmpdir())
            .args(self.account.user_arg())
            // Its own process group, which the init guardian kills whole (the installer is a
            // script that runs mariadbd --bootstrap) and a terminal's Ctrl-C does not reach.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command.spawn().map_err(io("running the data directory initialiser"))?;
        std::fs::write(self.dir.join("init.pgid"), child.id().to_string())
            .map_err(io("recording the initialiser's process group"))?;
        let output = child.wait_with_output().map_err(io("running the data directory initialiser"))?;
        if !output.status.success() {
            let mut msg = String::from_utf8_lossy(&output.stderr).into_owned();
            msg.push_str(&String::from_utf8_lossy(&output.stdout));
            return Err(SandboxError::Init(msg));
        }
        Ok(())
    }

    /// MySQL: root's password goes in a file the server's first start runs (and that only
    /// the server's account may read).
    fn prepare_password(&mut self) -> Result<()> {
        let Some(password) = &self.password else { return Ok(()) };
        let file = self.dir.join("init.sql");
        login::write_private(&file, &password.init_statement())?;
        self.account.hand_over(&file)?;
        self.init_file = Some(file);
        Ok(())
    }

    /// The password has been set: its file goes.
    fn forget_init_file(&mut self) {
        if let Some(file) = self.init_file.take() {
            let _ = std::fs::remove_file(file);
        }
    }

    fn launch(&mut self, server: &Path, options: &SandboxOptions) -> Result<()> {
        // A free port can be taken by someone else before the server binds it: try another.
        let attempts = if options.tcp { 3 } else { 1 };
        let mut last = None;
        for _attempt in 0..attempts {
            self.port = if options.tcp { Some(free_port()?) } else { None };
            match self.try_launch(server, options) {
                Ok(()) => {
                    self.forget_init_file();
                    return Ok(());
                }
                Err(e) => {
                    self.kill();
                    let retry = matches!(&e, SandboxError::Start { log, .. } if log.contains("already in use"));
                    if !retry {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| SandboxError::NoServer("no attempt made".into())))
    }

    fn server_args(&self, options: &SandboxOptions) -> Vec<String> {
        let files = options.secure_file_priv.clone().unwrap_or_else(|| self.files_dir());
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", self.datadir().display()),
            format!("--socket={}", self.socket.display()),
            format!("--log-error={}", self.dir.join("error.log").display()),
            format!("--pid-file={}", self.dir.join("mysqld.pid").display()),
            format!("--tmpdir={}", self.tmpdir().display()),
            format!("--secure-file-priv={}", files.display()),
            format!("--innodb-buffer-pool-size={}", options.buffer_pool),
            // Throwaway server: favour ingest speed over durability.
            "--innodb-flush-log-at-trx-commit=2".into(),
            "--innodb-log-file-size=256M".into(),
            "--max-allowed-packet=1G".into(),
            "--local-infile=1".into(),
            "--skip-name-resolve".into(),
            "--event-scheduler=OFF".into(),
            "--character-set-server=utf8mb4".into(),
            "--collation-server=utf8mb4_general_ci".into(),
        ];
        args.extend(self.network_args());
        if let Some(file) = &self.init_file {
            args.push(format!("--init-file={}", file.display()));
        }
        if options.binlog {
            args.push(format!("--log-bin={}", self.dir.join("binlog").display()));
            args.push("--binlog-format=ROW".into());
            args.push("--server-id=1".into());
        } else {
            args.push("--skip-log-bin".into());
        }
        args.extend(self.account.user_arg());
        args.extend(options.extra_args.iter().cloned());
        args
    }

    /// TCP on 127.0.0.1 when a port was asked for; otherwise none at all. MySQL 8's X
    /// Protocol listens on a port (and a socket in /tmp) of its own: off.
    fn network_args(&self) -> Vec<String> {
        let mut args = match self.port {
            Some(port) => vec![format!("--port={port}"), "--bind-address=127.0.0.1".into()],
            None => vec!["--skip-networking".into()],
        };
        if mysql_major(&self.version).is_some_and(|major| major >= 8) {
            args.push("--mysqlx=OFF".into());
        }
        args
    }

    fn try_launch(&mut self, server: &Path, options: &SandboxOptions) -> Result<()> {
        let _ = std::fs::remove_file(self.dir.join("error.log"));
        // A restart's old pid would read as "the server exited" until the guardian writes anew.
        let _ = std::fs::remove_file(self.dir.join("server.pid"));
        // The guardian: start the server, remember its pid, block until our end of the pipe
        // closes, then kill the server and remove every file.
        let script = r#"
            "$@" &
            srv=$!
            echo "$srv" > "$FG_SANDBOX_DIR/server.pid"
            cat > /dev/null
            [ -e "$FG_SANDBOX_DIR/keep" ] && exit 0
            kill -9 "$srv" 2>/dev/null
            wait "$srv" 2>/dev/null
            rm -rf "$FG_SANDBOX_DIR"
        "#;
        // Its own process group: a Ctrl-C at the terminal goes to the foreground group, and
        // would kill the guardian's `cat` and the shell before they clean up; the owner gets
        // it instead, and its death (or its Drop) is what ends the server.
        let mut child = Command::new("sh")
            .process_group(0)
            .arg("-c")
            .arg(script)
            .arg("floodgate-sandbox")
            .arg(server)
            .args(self.server_args(options))
            .env("FG_SANDBOX_DIR", &self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("starting the server"))?;
        self.lifeline = child.stdin.take();
        self.guardian = Some(child);
        self.wait_ready(options.startup_timeout)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let log_path = self.dir.join("error.log");
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.contains("ready for connections") && self.socket.exists() {
                return Ok(());
            }
            let exited = self.server_pid().is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if exited || log.contains("[ERROR] Aborting") {
                return Err(SandboxError::Start { reason: "the server exited".into(), log: tail(&log) });
            }
            if Instant::now() > deadline {
                return Err(SandboxError::Start { reason: format!("not ready after {timeout:?}"), log: tail(&log) });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (SIGKILL) and starts it again on the same socket, port and data directory,
    /// as a crash and restart of the target would. For resume tests.
    pub fn restart(&mut self, options: &SandboxOptions) -> Result<()> {
        if let Some(pid) = self.server_pid() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            let gone = Instant::now() + Duration::from_secs(30);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < gone {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The guardian notices nothing (it waits on the pipe); start a new one.
        self.lifeline = None;
        if let Some(mut g) = self.guardian.take() {
            // Closing the pipe would delete the directory: keep it by renaming it away first.
            let keep = self.dir.with_extension("restart");
            std::fs::rename(&self.dir, &keep).map_err(io("moving the data aside"))?;
            let _ = g.wait();
            std::fs::rename(&keep, &self.dir).map_err(io("moving the data back"))?;
        }
        let server = find_server(options.server_binary.as_deref())?;
        self.try_launch(&server, options)
    }

    /// Leaves the server running after this process ends, for a person to look at: the
    /// guardian is told to exit without cleaning up, and nothing removes the directory.
    /// Stop it with `kill $(cat DIR/server.pid)` and remove `DIR` afterwards.
    pub fn keep(mut self) -> Result<KeptSandbox> {
        let defaults_file = self.client_option_file()?;
        std::fs::write(self.dir.join("keep"), b"").map_err(io("marking the sandbox to keep"))?;
        self.kept = true;
        self.lifeline = None;
        if let Some(mut g) = self.guardian.take() {
            let _ = g.wait();
        }
        Ok(KeptSandbox {
            dir: self.dir.clone(),
            socket: self.socket.clone(),
            port: self.port,
            server_pid: self.server_pid(),
            user: self.user.clone(),
            defaults_file,
        })
    }

    /// For a server that needs a password (MySQL): a `[client]` option file with it, 0600
    /// and owned by this process's account, for a person or a script to log in with.
    /// None for MariaDB, whose login needs no password.
    pub fn client_option_file(&self) -> Result<Option<PathBuf>> {
        let Some(password) = &self.password else { return Ok(None) };
        let file = self.dir.join("client.cnf");
        if !file.exists() {
            login::write_private(&file, &password.client_options(&self.user, &self.socket))?;
        }
        Ok(Some(file))
    }

    fn kill(&mut self) {
        self.lifeline = None; // closing the pipe tells the guardian to clean up
        if let Some(mut g) = self.guardian.take() {
            let _ = g.wait();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Owns the sandbox directory while its data directory is initialised (before the server's
/// guardian exists): when its pipe closes and the server's guardian has not taken over
/// (`server.pid` exists once it has), it kills the initialiser's process group and removes
/// the directory.
struct InitGuard {
    guardian: Child,
    lifeline: Option<ChildStdin>,
}

impl InitGuard {
    fn spawn(dir: &Path) -> Result<InitGuard> {
        let script = r#"
            cat > /dev/null
            [ -e "$FG_SANDBOX_DIR/server.pid" ] && exit 0
            [ -s "$FG_SANDBOX_DIR/init.pgid" ] && kill -9 -- "-$(cat "$FG_SANDBOX_DIR/init.pgid")" 2>/dev/null
            sleep 0.2
            rm -rf "$FG_SANDBOX_DIR"
        "#;
        let mut guardian = Command::new("sh")
            .process_group(0)
            .arg("-c")
            .arg(script)
            .env("FG_SANDBOX_DIR", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("starting the init guardian"))?;
        let lifeline = guardian.stdin.take();
        Ok(InitGuard { guardian, lifeline })
    }

    /// The server's guardian owns the directory now: let this one exit without cleaning up.
    fn release(mut self) {
        self.lifeline = None;
        let _ = self.guardian.wait();
    }
}

impl Drop for InitGuard {
    fn drop(&mut self) {
        self.lifeline = None;
        let _ = self.guardian.wait();
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn make_dir(account: &ServerAccount) -> Result<PathBuf> {
    // Unix socket paths are limited to 107 bytes, so stay short: /tmp unless TMPDIR is short
    // (and one the server's account can reach: not, say, under root's home).
    let base = std::env::temp_dir();
    let base = if base.as_os_str().len() > 40 || !account.can_reach(&base) { PathBuf::from("/tmp") } else { base };
    if !account.can_reach(&base) {
        return Err(SandboxError::Account(format!(
            "the server's account cannot reach {} to run a sandbox there",
            base.display()
        )));
    }
    let dir =
        tempfile::Builder::new().prefix("floodgate-sandbox-").tempdir_in(base).map_err(io("creating a temp dir"))?;
    Ok(dir.keep())
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(listener.local_addr().map_err(io("finding a free port"))?.port())
}

fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/mysql/bin"].map(PathBuf::from));
    for name in names {
        for d in &dirs {
            let p = d.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn find_server(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(p) if p.is_file() => Ok(p.to_path_buf()),
        Some(p) => Err(SandboxError::NoServer(format!("{} does not exist", p.display()))),
        None => find_on_path(&["mariadbd", "mysqld"])
            .ok_or_else(|| SandboxError::NoServer("neither mariadbd nor mysqld is on PATH".into())),
    }
}

fn find_install_db(server: &Path) -> Result<PathBuf> {
    let near = server.parent().map(|d| d.join("mariadb-install-db"));
    if let Some(p) = near.filter(|p| p.is_file()) {
        return Ok(p);
    }
    find_on_path(&["mariadb-install-db", "mysql_install_db"])
        .ok_or_else(|| SandboxError::NoServer("mariadb-install-db not found".into()))
}

fn server_version(server: &Path) -> Result<String> {
    let out = Command::new(server).arg("--version").output().map_err(io("asking the server for its version"))?;
    let mut text = String::new();
    BufReader::new(&out.stdout[..]).read_line(&mut text).map_err(io("reading the version"))?;
    if text.trim().is_empty() {
        let _ = (&out.stderr[..]).read_to_string(&mut text);
    }
    Ok(text.trim().to_string())
}

fn is_mysql(version: &str) -> bool {
    !version.contains("MariaDB")
}

/// MySQL's major version from `mysqld  Ver 8.0.36 for Linux ...`; None for MariaDB.
fn mysql_major(version: &str) -> Option<u32> {
    if !is_mysql(version) {
        return None;
    }
    let after = version.split("Ver ").nth(1)?;
    after.split('.').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_and_leaves_nothing_behind() {
        let sandbox = Sandbox::start(&SandboxOptions::default()).unwrap();
        let dir = sandbox.dir().to_path_buf();
        assert!(std::os::unix::net::UnixStream::connect(sandbox.socket()).is_ok());
        assert_eq!(sandbox.port(), None, "no TCP unless asked");
        let pid = sandbox.server_pid().unwrap();
        drop(sandbox);
        assert!(!dir.exists(), "directory removed");
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "server gone");
    }

    #[test]
    fn kept_sandbox_outlives_its_owner() {
        let sandbox = Sandbox::start(&SandboxOptions::default()).unwrap();
        let kept = sandbox.keep().unwrap();
        let pid = kept.server_pid.unwrap();
        assert!(std::os::unix::net::UnixStream::connect(&kept.socket).is_ok(), "still serving");
        // Clean up as a person would.
        Command::new("kill").arg("-9").arg(pid.to_string()).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!running(pid));
        std::fs::remove_dir_all(&kept.dir).unwrap();
    }

    /// Alive and not a zombie (an orphan's parent may be a PID 1 that never reaps).
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"))
    }

    #[test]
    fn buffer_pool_follows_available_memory() {
        assert_eq!(buffer_pool_mib(None), 256);
        assert_eq!(buffer_pool_mib(Some(100)), 256);
        assert_eq!(buffer_pool_mib(Some(8192)), 2048);
        assert_eq!(buffer_pool_mib(Some(1 << 20)), 16 << 10);
    }

    #[test]
    fn mysql_versions_are_told_from_mariadb() {
        assert_eq!(
            mysql_major("/usr/sbin/mysqld  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)"),
            Some(8)
        );
        assert_eq!(mysql_major("mysqld  Ver 5.7.44 for Linux on x86_64"), Some(5));
        assert_eq!(mysql_major("/usr/sbin/mariadbd  Ver 10.11.6-MariaDB-0+deb12u1 for debian-linux-gnu"), None);
    }

    #[test]
    fn missing_binary_is_a_clear_error() {
        let opts = SandboxOptions { server_binary: Some("/nonexistent/mariadbd".into()), ..Default::default() };
        let err = Sandbox::start(&opts).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/mariadbd"));
    }
}
