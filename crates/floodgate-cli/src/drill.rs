//! `floodgate drill`: flags to [`floodgate_drill::drill`], signals to its interrupt, its
//! outcome to the report file, the metrics file, a summary on stdout and the exit code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::CommandFactory;
use floodgate_drill::{DrillOptions, DrillReport, Outcome, Status, Target};
use floodgate_format::ErrorClass;
use floodgate_pipeline::Progress;
use floodgate_sandbox::SandboxOptions;
use tokio::signal::unix::{signal, SignalKind};

use crate::args::{Cli, DrillArgs};
use crate::failure::{OrFail, Result};
use crate::progress::Display;

pub fn run(args: DrillArgs) -> Result<()> {
    let options = options(&args)?;
    let runtime = crate::run::runtime()?;
    let progress = Arc::new(Progress::default());
    // The progress display starts with the restore: before it there is nothing to count.
    let display: Arc<Mutex<Option<Display>>> = Arc::default();
    let notify: floodgate_drill::Notify = {
        let (display, progress, mode) = (display.clone(), progress.clone(), args.progress);
        Arc::new(move |line: &str| {
            eprintln!("floodgate: drill: {line}");
            if line == floodgate_drill::RESTORING {
                if let Ok(mut d) = display.lock() {
                    d.get_or_insert_with(|| Display::start(progress.clone(), mode));
                }
            }
        })
    };
    let outcome = runtime.block_on(async {
        let interrupt = listen_for_signals()?;
        Ok::<_, crate::failure::Failure>(
            floodgate_drill::drill(&args.backup, options, progress, interrupt, notify).await,
        )
    });
    if let Some(d) = display.lock().ok().and_then(|mut d| d.take()) {
        d.finish();
    }
    // A blocking read of the backup may still run after an interrupt; do not wait for it.
    runtime.shutdown_background();
    let outcome = outcome?;
    let written = write_outputs(&args, &outcome);
    println!("{}", summary(&outcome.report));
    if let Some(kept) = &outcome.kept {
        print_kept(kept);
    }
    match outcome.error {
        Some(e) => Err(e.into()),
        None => written,
    }
}

/// Usage errors (exit 2) for flags that make no sense together, then the library options.
fn options(args: &DrillArgs) -> Result<DrillOptions> {
    let sandbox_only = [
        (args.keep, "--keep"),
        (args.server_binary.is_some(), "--server-binary"),
        (args.buffer_pool.is_some(), "--buffer-pool"),
    ];
    let target = if args.conn.given() {
        if let Some((_, flag)) = sandbox_only.iter().find(|(set, _)| *set) {
            usage(&format!("{flag} is for the drill's own sandbox; it cannot be used with connection flags"));
        }
        Target::Server { conn: crate::conn::resolve(&args.conn)?, overwrite: args.overwrite }
    } else {
        if args.overwrite {
            usage("--overwrite is for a server given with connection flags; a sandbox starts empty");
        }
        if let Some(flag) = args.conn.tls_flag() {
            usage(&format!(
                "{flag} is for a server given with connection flags (-h, -P, -S ...); the drill's own sandbox \
                 is reached over its Unix socket"
            ));
        }
        let mut sandbox = SandboxOptions::fast_ingest();
        sandbox.server_binary.clone_from(&args.server_binary);
        if let Some(bytes) = args.buffer_pool {
            sandbox.buffer_pool = format!("{}M", (bytes >> 20).max(16));
        }
        Target::Sandbox { options: sandbox, keep: args.keep }
    };
    Ok(DrillOptions {
        target,
        threads: usize::from(args.threads),
        memory_budget: args.memory_budget.max(16) << 20,
        timeout: args.timeout,
        timeout_text: args.timeout.map(show_duration).unwrap_or_default(),
        verify_queries: args.verify_query.clone(),
        into: args.into.clone(),
    })
}

fn usage(message: &str) -> ! {
    Cli::command().error(clap::error::ErrorKind::ArgumentConflict, message).exit()
}

fn show_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        return format!("{}ms", d.as_millis());
    }
    format!("{}s", d.as_secs())
}

/// SIGINT (Ctrl-C) and SIGTERM (`systemctl stop`, a timeout in cron wrappers) stop the drill
/// cleanly: the restore is dropped and the sandbox removed before the process exits.
fn listen_for_signals() -> Result<floodgate_drill::Interrupt> {
    let (tx, rx) = tokio::sync::watch::channel(None);
    let mut int = signal(SignalKind::interrupt()).or_fail(ErrorClass::Internal, || "listening for SIGINT".into())?;
    let mut term = signal(SignalKind::terminate()).or_fail(ErrorClass::Internal, || "listening for SIGTERM".into())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        eprintln!("floodgate: drill: {name}: stopping the restore and removing the sandbox");
        let _ = tx.send(Some(name.to_string()));
    });
    Ok(rx)
}

/// The report and the metrics, written whatever the outcome: a failed drill is what they
/// are for.
fn write_outputs(args: &DrillArgs, outcome: &Outcome) -> Result<()> {
    let mut result = Ok(());
    if let Some(path) = &args.report {
        if let Err(e) = crate::run::write_json(path, &outcome.report) {
            eprintln!("floodgate: error: {}", e.message());
            result = Err(e);
        }
    }
    if let Some(path) = &args.prometheus {
        let label = args.label.clone().unwrap_or_else(|| args.backup.display().to_string());
        if let Err(e) = floodgate_drill::prometheus::write_textfile(path, &label, &outcome.report, outcome.finished_at)
        {
            eprintln!("floodgate: error: {e}");
            result = Err(e.into());
        }
    }
    result
}

/// The human summary for stdout.
fn summary(r: &DrillReport) -> String {
    let format = r.backup.format.as_deref().unwrap_or("unreadable");
    let server = match (&r.server.kind[..], &r.server.version) {
        ("sandbox", Some(v)) => format!("a sandbox {v}"),
        (_, Some(v)) => format!("{} ({v})", r.server.address.as_deref().unwrap_or("the server")),
        _ => "no server".into(),
    };
    let mut lines = Vec::new();
    match r.status {
        Status::Success => lines.push(format!(
            "drill PASSED: {} ({format}) restored into {server}: recovery took {:.2}s",
            r.backup.path,
            r.restore_seconds.unwrap_or_default()
        )),
        Status::Failure => lines.push(format!(
            "drill FAILED (exit {}): {} ({format}) into {server}: {}",
            r.exit_code,
            r.backup.path,
            r.error.as_ref().map(|e| e.message.as_str()).unwrap_or("unknown error")
        )),
    }
    if let Some(restore) = &r.restore {
        lines.push(format!(
            "  {} rows, {} bytes, {} tables; schema {:.2}s, data {:.2}s, post-data {:.2}s, verify {:.2}s",
            r.rows,
            r.bytes,
            restore.tables.len(),
            restore.phases.schema,
            restore.phases.data,
            restore.phases.post,
            restore.phases.verify
        ));
    }
    for c in &r.verification {
        lines.push(format!("  [{}] {}: {}", if c.passed { "ok" } else { "FAIL" }, c.check, c.detail));
    }
    lines.push(format!(
        "  drill {:.2}s: read {:.2}s, server {:.2}s, restore {:.2}s, checks {:.2}s, teardown {:.2}s",
        r.seconds, r.phases.read, r.phases.server, r.phases.restore, r.phases.checks, r.phases.teardown
    ));
    lines.join("\n")
}

fn print_kept(kept: &floodgate_sandbox::KeptSandbox) {
    let pid =
        kept.server_pid.map(|p| p.to_string()).unwrap_or_else(|| format!("$(cat {}/server.pid)", kept.dir.display()));
    // MariaDB lets in the account that started it, by unix_socket; MySQL needs the password
    // the option file holds.
    let login = match &kept.defaults_file {
        Some(file) => format!("--defaults-file={}", file.display()),
        None => format!("--no-defaults -u{}", kept.user),
    };
    println!("the sandbox is still running (--keep):\n  connect: mariadb {login} -S {}", kept.socket.display());
    if let Some(port) = kept.port {
        println!("  or over TCP: -h 127.0.0.1 -P {port}");
    }
    println!(
        "  stop it: kill {pid}; while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; rm -rf {}",
        kept.dir.display()
    );
}
