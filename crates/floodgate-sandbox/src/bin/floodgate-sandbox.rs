//! `floodgate-sandbox`: run a throwaway server for scripts.
//!
//! Starts a server, writes `SOCKET=`, `DIR=`, `PID=` and `USER=` lines to `--env-file` (or
//! stdout), `PORT=` with `--tcp` and `DEFAULTS=` (an option file with the password) for a
//! server that needs a password (MySQL), then holds the server until its standard input
//! closes. `USER` logs in over the socket without a password (MariaDB's `unix_socket`) when
//! the script runs as the operating-system account of that name. Scripts keep a pipe to
//! it open and the server, with every file, disappears when the script ends, however it ends:
//!
//! ```sh
//! mkfifo hold; floodgate-sandbox --env-file src.env < hold & exec 9> hold
//! while [ ! -s src.env ]; do sleep 0.1; done; . ./src.env
//! ```

use std::io::Read;
use std::path::PathBuf;

use floodgate_sandbox::{Sandbox, SandboxOptions};

fn usage() -> ! {
    eprintln!(
        "usage: floodgate-sandbox [--env-file FILE] [--buffer-pool SIZE] [--binlog] [--tcp] \
         [--secure-file-priv DIR] [--server-binary PATH] [-- SERVER-ARGS...]"
    );
    std::process::exit(2)
}

fn main() {
    let mut options = SandboxOptions::default();
    let mut env_file: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--env-file" => env_file = Some(args.next().unwrap_or_else(|| usage()).into()),
            "--buffer-pool" => options.buffer_pool = args.next().unwrap_or_else(|| usage()),
            "--server-binary" => options.server_binary = Some(args.next().unwrap_or_else(|| usage()).into()),
            "--binlog" => options.binlog = true,
            "--tcp" => options.tcp = true,
            "--secure-file-priv" => options.secure_file_priv = Some(args.next().unwrap_or_else(|| usage()).into()),
            "--" => options.extra_args.extend(args.by_ref()),
            _ => usage(),
        }
    }
    let sandbox = match Sandbox::start(&options) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("floodgate-sandbox: {e}");
            std::process::exit(1);
        }
    };
    let env = match env_lines(&sandbox) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("floodgate-sandbox: {e}");
            std::process::exit(1);
        }
    };
    let written = match &env_file {
        Some(path) => {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &env).and_then(|()| std::fs::rename(&tmp, path))
        }
        None => {
            print!("{env}");
            Ok(())
        }
    };
    if let Err(e) = written {
        eprintln!("floodgate-sandbox: writing the env file: {e}");
        std::process::exit(1);
    }
    // Hold the server until our input closes.
    let mut sink = [0u8; 64];
    while let Ok(n) = std::io::stdin().read(&mut sink) {
        if n == 0 {
            break;
        }
    }
    drop(sandbox);
}

/// What a script needs to reach the server, as `KEY=value` lines.
fn env_lines(sandbox: &Sandbox) -> Result<String, floodgate_sandbox::SandboxError> {
    let mut env = format!(
        "SOCKET={}\nDIR={}\nPID={}\nUSER={}\n",
        sandbox.socket().display(),
        sandbox.dir().display(),
        sandbox.server_pid().unwrap_or_default(),
        sandbox.user()
    );
    if let Some(port) = sandbox.port() {
        env.push_str(&format!("PORT={port}\n"));
    }
    if let Some(file) = sandbox.client_option_file()? {
        env.push_str(&format!("DEFAULTS={}\n", file.display()));
    }
    Ok(env)
}
