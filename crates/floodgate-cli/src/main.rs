//! `floodgate`: restore MySQL and MariaDB backups as fast as the target can ingest them.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error, 3 integrity failure (corrupt or
//! incomplete backup, row-count mismatch), 4 interrupted with a resumable checkpoint.

mod args;
mod conn;
mod drill;
mod failure;
mod progress;
mod replay;
mod run;

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
    let argv = args::mysql_style_password(std::env::args_os().collect());
    let cli = args::Cli::parse_from(argv);
    run::init_logging(cli.verbose);
    let code = match run::run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("floodgate: error: {}", e.message());
            e.exit_code()
        }
    };
    std::process::exit(code);
}
