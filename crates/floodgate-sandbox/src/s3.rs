//! A throwaway S3-compatible server for tests and benchmarks: `s3s-fs` (crates.io), which
//! serves a directory as buckets and objects over the real protocol (SigV4 checked, ranged
//! GETs, multipart uploads, ListObjectsV2) on a loopback port. It stores objects as plain
//! files, so memory stays flat for benchmark-sized backups, and a test can damage an object
//! on disk the way a bad disk or a bad copy would.
//!
//! Like [`crate::Sandbox`], it runs under a shell guardian that ends it when this process's
//! end of a pipe closes, and its directory is removed with it.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, SandboxError};

/// The access key of every S3 sandbox (its secret is [`S3Sandbox::SECRET_KEY`]).
const ACCESS_KEY: &str = "floodgate-test";

/// A running s3s-fs on 127.0.0.1.
pub struct S3Sandbox {
    dir: tempfile::TempDir,
    port: u16,
    lifeline: Option<ChildStdin>,
    guardian: Option<Child>,
}

impl S3Sandbox {
    /// The secret key requests are signed with.
    pub const SECRET_KEY: &'static str = "floodgate-test-secret";

    /// Starts s3s-fs (from PATH or `~/.cargo/bin`) on a free loopback port and waits until it
    /// accepts connections.
    pub fn start() -> Result<S3Sandbox> {
        let binary = find_binary().ok_or_else(|| {
            SandboxError::NoServer(
                "s3s-fs is not installed (`cargo install s3s-fs --version 0.14.1 --features binary --locked`; \
                 scripts/test does it)"
                    .into(),
            )
        })?;
        let dir =
            tempfile::Builder::new().prefix("floodgate-s3-").tempdir().map_err(crate::io("making a directory"))?;
        let root = dir.path().join("data");
        std::fs::create_dir(&root).map_err(crate::io("making the store's directory"))?;
        let port = free_port()?;
        let script = r#"
            "$@" > "$FG_S3_DIR/server.log" 2>&1 &
            srv=$!
            echo "$srv" > "$FG_S3_DIR/server.pid"
            cat > /dev/null
            kill -CONT "$srv" 2>/dev/null
            kill -9 "$srv" 2>/dev/null
            wait "$srv" 2>/dev/null
            rm -rf "$FG_S3_DIR"
        "#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("floodgate-s3-sandbox")
            .arg(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", Self::SECRET_KEY])
            .arg(&root)
            .env("FG_S3_DIR", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(crate::io("starting s3s-fs"))?;
        let lifeline = child.stdin.take();
        let sandbox = S3Sandbox { dir, port, lifeline, guardian: Some(child) };
        sandbox.wait_ready(Duration::from_secs(20))?;
        Ok(sandbox)
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        Err(SandboxError::Start {
            reason: format!("s3s-fs did not listen on port {} within {timeout:?}", self.port),
            log,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The access key id requests are signed with.
    pub fn access_key(&self) -> &'static str {
        ACCESS_KEY
    }

    /// The environment a client needs: the key, a region, and no instance credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", Self::SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// Creates a bucket (a directory of the store's).
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        std::fs::create_dir_all(self.dir.path().join("data").join(name)).map_err(crate::io("making a bucket"))
    }

    /// The file holding an object, to damage it as a bad disk would.
    pub fn object_file(&self, bucket: &str, key: &str) -> PathBuf {
        self.dir.path().join("data").join(bucket).join(key)
    }

    /// The server's process id (to stop and continue it).
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("server.pid")).ok()?.trim().parse().ok()
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for S3Sandbox {
    fn drop(&mut self) {
        self.lifeline = None;
        if let Some(mut g) = self.guardian.take() {
            let _ = g.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(crate::io("finding a free port"))?;
    Ok(listener.local_addr().map_err(crate::io("finding a free port"))?.port())
}

fn find_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("s3s-fs")).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|c| c.join("bin/s3s-fs"));
    on_path.into_iter().chain(cargo_home).find(|p| p.is_file())
}
