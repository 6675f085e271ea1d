//! `floodgate-sandbox`: run a throwaway server for scripts.
//!
//! Starts a server, writes `SOCKET=`, `PORT=`, `DIR=` and `PID=` lines to `--env-file` (or
//! stdout), then holds the server until its standard input closes. Scripts keep a pipe to
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
    eprintln!("usage: floodgate-sandbox [--env-file FILE] [--buffer-pool SIZE] [--binlog] [--server-binary PATH] [-- SERVER-ARGS...]");
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
    let env = format!(
        "SOCKET={}\nPORT={}\nDIR={}\nPID={}\n",
        sandbox.socket().display(),
        sandbox.port(),
        sandbox.dir().display(),
        sandbox.server_pid().unwrap_or_default()
    );
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
