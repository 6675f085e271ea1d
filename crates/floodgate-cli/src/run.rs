//! The commands, wired to the library crates.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use floodgate_format::{Backup, FormatError, RestorePlan};
use floodgate_loader::{LoadError, Progress, RestoreOptions, VerifyMode};

use crate::args::{Cli, Command, DumpArgs, InspectArgs, RestoreArgs, VerifyArg, VerifyArgs};
use crate::progress::Display;

pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// The error and its causes, each cause shown once (library errors already name their cause
/// in their own message).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// The exit code DESIGN.md gives for an error.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if let Some(d) = e.downcast_ref::<floodgate_drill::DrillError>() {
        return d.exit_code();
    }
    if let Some(Integrity(_)) = e.downcast_ref::<Integrity>() {
        return 3;
    }
    if e.downcast_ref::<Interrupted>().is_some() {
        return 4;
    }
    if let Some(floodgate_dump::DumpError::Load(l)) = e.downcast_ref::<floodgate_dump::DumpError>() {
        return l.exit_code();
    }
    if let Some(l) = e.downcast_ref::<LoadError>() {
        return l.exit_code();
    }
    if let Some(b) = e.downcast_ref::<floodgate_binlog::BinlogError>() {
        return b.exit_code();
    }
    if let Some(f) = e.downcast_ref::<FormatError>() {
        return if f.is_integrity() { 3 } else { 1 };
    }
    1
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Restore(args) => restore(*args),
        Command::Inspect(args) => inspect(args),
        Command::Dump(args) => dump(*args),
        Command::Verify(args) => verify(args),
        Command::Drill(args) => crate::drill::run(*args),
        Command::ReplayBinlog(args) => crate::replay::run(*args),
    }
}

fn restore(args: RestoreArgs) -> Result<()> {
    let backup = match floodgate_format::open(&args.source)? {
        Backup::Directory(mut plan) => {
            if args.into.is_some() {
                anyhow::bail!("--into renames the database of a mysqldump file; for a directory use --database");
            }
            let unmatched = plan.filter(&args.databases, &args.exclude);
            if !unmatched.is_empty() {
                anyhow::bail!("not in the backup: {} (see `floodgate inspect`)", unmatched.join(", "));
            }
            if args.dry_run {
                print_plan(&plan, !args.no_defer_indexes);
                return Ok(());
            }
            if plan.tables().next().is_none() && plan.databases.iter().all(|d| d.views.is_empty()) {
                eprintln!(
                    "floodgate: warning: {} holds no tables or views; only databases will be created",
                    plan.root.display()
                );
            }
            Backup::Directory(plan)
        }
        Backup::Dump(dump) => {
            if args.dry_run {
                print_dump(&dump, args.into.clone())?;
                return Ok(());
            }
            Backup::Dump(dump)
        }
    };
    let target = crate::conn::resolve(&args.conn)?;
    let options = RestoreOptions {
        threads: usize::from(args.threads),
        overwrite: args.overwrite,
        defer_indexes: !args.no_defer_indexes,
        binlog: args.binlog,
        verify: match args.verify {
            VerifyArg::None => VerifyMode::None,
            VerifyArg::Counts => VerifyMode::Counts,
            VerifyArg::Digest => VerifyMode::Digest,
        },
        memory_budget: args.memory_budget.max(16) << 20,
        resume: args.resume,
        stream_chunk_bytes: usize::try_from(args.stream_chunk_size).unwrap_or(usize::MAX).max(1),
        convert_min_bytes: args.convert_min_size,
        restart: args.restart,
        keep_checkpoints: args.keep_checkpoints,
        reconnect_wait: std::time::Duration::from_secs(args.wait_for_target),
    };
    let runtime = runtime()?;
    let progress = Arc::new(Progress::default());
    let display = Display::start(progress.clone(), args.progress);
    let wait = options.reconnect_wait;
    let relaxed = match args.fast_target {
        true => Some(runtime.block_on(floodgate_loader::fast_target::relax_target(&target))?),
        false => {
            // A --fast-target run killed before it put the settings back left them recorded.
            if let Ok(saved) = runtime.block_on(floodgate_loader::fast_target::put_back(&target, Duration::ZERO)) {
                if !saved.is_empty() {
                    eprintln!(
                        "floodgate: put back settings an interrupted --fast-target run relaxed: {}",
                        describe_saved(&saved)
                    );
                }
            }
            None
        }
    };
    let target_again = target.clone();
    let outcome = runtime.block_on(async {
        let work = async {
            match backup {
                Backup::Directory(plan) => floodgate_loader::restore(plan, target, options, progress).await,
                Backup::Dump(dump) => {
                    let selection = floodgate_format::mysqldump::Selection::new(
                        args.into.clone(),
                        args.databases.clone(),
                        args.exclude.clone(),
                    );
                    floodgate_loader::restore_dump(dump, selection, target, options, progress).await
                }
            }
        };
        // Dropping the restore aborts its tasks and closes their connections: the server rolls
        // back every chunk in flight, and each committed chunk is already checkpointed.
        tokio::select! {
            outcome = work => outcome.map_err(anyhow::Error::from),
            signal = interrupted() => Err(Interrupted(signal?).into()),
        }
    });
    display.finish();
    if let Some(relaxed) = relaxed {
        // Always, whatever the outcome: the server goes back to the durability it had.
        let put_back = runtime.block_on(floodgate_loader::fast_target::put_back(&target_again, wait));
        match put_back {
            Ok(_) => eprintln!("floodgate: --fast-target: put back {}", describe_saved(&relaxed.saved)),
            Err(e) => eprintln!(
                "floodgate: error: --fast-target could not put the settings back ({e}); they are recorded in \
                 floodgate.saved_settings and the next `floodgate restore` puts them back: {}",
                describe_saved(&relaxed.saved)
            ),
        }
    }
    let report = outcome?;
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing the report to {}", path.display()))?;
    }
    eprintln!(
        "floodgate: restored {} rows in {} tables ({} views, {} routine/event files, {} trigger files) in {:.2}s \
         (schema {:.2}s, data+indexes {:.2}s, post {:.2}s, verify {:.2}s)",
        report.rows,
        report.tables.len(),
        report.views,
        report.post_files,
        report.trigger_files,
        report.seconds,
        report.phases.schema,
        report.phases.data,
        report.phases.post,
        report.phases.verify
    );
    Ok(())
}

fn print_plan(plan: &RestorePlan, defer: bool) {
    println!("format: {}", plan.format.name());
    println!("source: {}", plan.root.display());
    if let Some(p) = &plan.position {
        println!(
            "position: binlog {} {} gtid {}",
            p.binlog_file.as_deref().unwrap_or("-"),
            p.binlog_position.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            p.gtid_executed.as_deref().unwrap_or("-")
        );
    }
    println!("indexes: {}", if defer { "deferred until each table's data is in" } else { "created with the tables" });
    for db in &plan.databases {
        println!(
            "database {}: {} tables, {} views, {} routine/event files, {} trigger files",
            db.name,
            db.tables.len(),
            db.views.len(),
            db.post.len(),
            db.triggers.len()
        );
        for t in &db.tables {
            println!(
                "  table {}: {} chunks, {} bytes{}",
                t.name,
                t.chunks.len(),
                t.data_bytes(),
                t.expected_rows.map(|r| format!(", {r} rows")).unwrap_or_default()
            );
        }
        for v in &db.views {
            println!("  view {}", v.name);
        }
    }
}

fn describe_saved(saved: &[floodgate_loader::fast_target::Saved]) -> String {
    saved.iter().map(|s| format!("{} = {}", s.name, s.value)).collect::<Vec<_>>().join(", ")
}

/// Waits for SIGINT or SIGTERM; returns its name.
async fn interrupted() -> Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    })
}

/// The restore stopped on a signal (exit code 4).
#[derive(Debug)]
pub struct Interrupted(pub &'static str);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted by {}: chunks in flight were rolled back and every committed chunk is checkpointed on the \
             target. Run the same command again to resume (or add --restart to start over)",
            self.0
        )
    }
}

impl std::error::Error for Interrupted {}

/// An integrity failure found by a command itself (exit code 3).
#[derive(Debug)]
pub struct Integrity(pub String);

impl std::fmt::Display for Integrity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Integrity {}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting the runtime")
}

fn dump(args: DumpArgs) -> Result<()> {
    let source = crate::conn::resolve(&args.conn)?;
    let options = floodgate_dump::DumpOptions {
        threads: usize::from(args.threads),
        chunk_size: args.chunk_size,
        compress_level: args.compress_level,
        databases: args.databases.clone(),
    };
    let progress = Arc::new(Progress::default());
    progress.set_phase(floodgate_loader::Phase::Data);
    let display = Display::start(progress.clone(), args.progress);
    let outcome = runtime()?.block_on(floodgate_dump::dump(&source, &args.output, &options, progress));
    display.finish();
    let report = outcome?;
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "floodgate: dumped {} rows of {} tables into {} chunks ({} bytes, {} compressed) in {:.2}s",
        report.rows, report.tables, report.chunks, report.bytes, report.compressed_bytes, report.seconds
    );
    Ok(())
}

fn verify(args: VerifyArgs) -> Result<()> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let started = std::time::Instant::now();
    let report = floodgate_pipeline::verify::verify_backup(&args.dir, threads)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    for p in &report.problems {
        eprintln!("floodgate: bad: {}: {}", p.file.display(), p.reason);
    }
    let secs = started.elapsed().as_secs_f64();
    if !report.problems.is_empty() {
        return Err(Integrity(format!(
            "{} problem(s) in {} chunks of {}",
            report.problems.len(),
            report.chunks,
            args.dir.display()
        ))
        .into());
    }
    eprintln!(
        "floodgate: verified {} chunks, {} rows, {} bytes in {secs:.2}s: every SHA-256, row count and content digest matches",
        report.chunks, report.rows, report.bytes
    );
    Ok(())
}

fn print_dump(dump: &floodgate_format::mysqldump::DumpSource, into: Option<String>) -> Result<()> {
    let summary = floodgate_format::mysqldump::scan(dump, into)?;
    println!("format: mysqldump");
    println!("source: {}", dump.name());
    println!("compression: {:?}", dump.compression);
    println!("sql bytes: {}", summary.bytes);
    println!("databases: {}", summary.databases.join(", "));
    for (db, table, statements, bytes) in &summary.tables {
        println!("  table {db}.{table}: {statements} INSERT statements, {bytes} bytes");
    }
    println!("post-data statements (views, triggers, routines, events): {}", summary.post_statements);
    Ok(())
}

fn inspect(args: InspectArgs) -> Result<()> {
    match floodgate_format::open(&args.source)? {
        Backup::Directory(plan) if args.json => println!("{}", serde_json::to_string_pretty(&plan)?),
        Backup::Directory(plan) => print_plan(&plan, true),
        Backup::Dump(dump) if args.json => {
            let summary = floodgate_format::mysqldump::scan(&dump, None)?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"format": "mysqldump", "source": dump, "summary": summary})
                )?
            );
        }
        Backup::Dump(dump) => print_dump(&dump, None)?,
    }
    Ok(())
}
