//! `floodgate`: restore MySQL and MariaDB backups as fast as the target can ingest them.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error, 3 integrity failure (corrupt or
//! incomplete backup, row-count mismatch), 4 interrupted with a resumable checkpoint.

mod args;
mod cmdline;
mod conn;
mod drill;
mod failure;
mod progress;
mod replay;
mod run;
mod secret;

use clap::Parser;

/// Rust ignores SIGPIPE, so `floodgate inspect DIR | head` would panic on the closed pipe;
/// a command-line tool should end quietly, as `cat` does.
#[allow(unsafe_code)]
fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// glibc's per-thread arenas kept freed multi-megabyte chunk buffers and let peak RSS grow
/// with the size of a dump (measured: 283 MiB on a 4 GB mysqldump file); mimalloc returns
/// them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    restore_sigpipe();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // First, before any thread starts: the password leaves /proc/PID/cmdline.
    let password_given = cmdline::hide_passwords(&argv);
    let cli = args::Cli::parse_from(args::mysql_style_password(argv));
    if password_given {
        eprintln!("floodgate: warning: {}", cmdline::WARNING);
    }
    run::init_logging(cli.verbose);
    run::configure_storage(&cli);
    let code = match run::run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("floodgate: error: {}", e.message());
            e.exit_code()
        }
    };
    std::process::exit(code);
}
