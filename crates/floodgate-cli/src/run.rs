//! The commands, wired to the library crates.

use std::sync::Arc;
use std::time::Duration;

use floodgate_conn::CheckpointSchema;
use floodgate_format::objects::DefinerRule;
use floodgate_format::{Backup, ErrorClass, RestorePlan, Selection};
use floodgate_loader::{Progress, RestoreOptions, VerifyMode};

use crate::failure::{Failure, OrFail, Result};

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

/// Object storage options from the flags, with the ranged reads in flight kept within a
/// quarter of the command's memory budget, shared by its loaders.
pub fn configure_storage(cli: &Cli) {
    let (budget_mib, readers) = match &cli.command {
        Command::Restore(args) => (args.memory_budget, usize::from(args.threads)),
        Command::Drill(args) => (args.memory_budget, usize::from(args.threads)),
        Command::Verify(args) => (256, args.threads.unwrap_or(2)),
        _ => (256, 1),
    };
    let options = floodgate_storage::StoreOptions {
        endpoint: cli.s3_endpoint.clone(),
        region: cli.s3_region.clone(),
        request_timeout: Duration::from_secs(cli.s3_timeout),
        retry_for: Duration::from_secs(cli.s3_retry_for),
        ..Default::default()
    };
    floodgate_storage::configure(options.within_budget((budget_mib as u64) << 20, readers));
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

/// Opens the backup; with `--wait-for-dump`, a MySQL Shell dump still being written is taken
/// as far as it is, once its metadata is all there.
fn open_backup(args: &RestoreArgs) -> Result<Backup> {
    let Some(wait) = args.wait_for_dump else { return Ok(floodgate_format::open(&args.source)?) };
    if !floodgate_format::shell::looks_like(&args.source) {
        return Ok(floodgate_format::open(&args.source)?);
    }
    let since = std::time::Instant::now();
    loop {
        if let Some(plan) = floodgate_format::shell::read_unfinished(&args.source)? {
            return Ok(Backup::Directory(plan));
        }
        if since.elapsed().as_secs() > wait {
            return Err(Failure::new(
                ErrorClass::Refused,
                format!(
                    "{}: the dump has not written all its metadata after {wait} s (--wait-for-dump)",
                    args.source.display()
                ),
            ));
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn restore(args: RestoreArgs) -> Result<()> {
    let selection = Selection::new(args.into.clone(), args.databases.clone(), args.exclude.clone())
        .renaming(args.rename_db.clone());
    let backup = match open_backup(&args)? {
        Backup::Directory(plan) => {
            // What the selection keeps, to show; the engine makes the selection itself.
            let mut picked = plan.clone();
            picked.select(&selection)?;
            if args.dry_run {
                print_plan(&picked, !args.no_defer_indexes);
                return Ok(());
            }
            if args.check {
                let inserts = picked
                    .tables()
                    .flat_map(|(_, t)| &t.chunks)
                    .all(|c| c.data_files.is_empty() && c.delimited.is_none());
                return check_privileges(&args, picked.databases.iter().map(|d| d.name.clone()).collect(), inserts);
            }
            if picked.tables().next().is_none() && picked.databases.iter().all(|d| d.views.is_empty()) {
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
            if args.check {
                let summary = floodgate_format::mysqldump::scan(&dump, args.into.clone(), false, inspect_limit())?;
                let rename = selection.rename();
                let names = summary.summary.databases.iter().map(|d| rename.get(d).unwrap_or(d).to_string());
                return check_privileges(&args, names.collect(), true);
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
        allow_incomplete: args.allow_incomplete,
        allow_replica: args.allow_replica,
        definers: match (&args.definer, args.skip_definer) {
            (Some(account), _) => DefinerRule::Replace(account.clone()),
            (None, true) => DefinerRule::Skip,
            (None, false) => DefinerRule::Keep,
        },
        checkpoint_schema: CheckpointSchema::new(&args.checkpoint_schema),
        keep_checkpoints: args.keep_checkpoints,
        reconnect_wait: std::time::Duration::from_secs(args.wait_for_target),
        wait_for_dump: args.wait_for_dump.map(std::time::Duration::from_secs),
        users: args.users,
        ignore_grant_errors: args.ignore_grant_errors,
        set_gtid_purged: args.set_gtid_purged,
        throttle: args.throttle.clone(),
        max_rate: args.max_rate,
        replicas: args.replicas.iter().map(|r| crate::conn::replica(&target, r)).collect::<Result<_>>()?,
        max_replica_lag: args.max_replica_lag,
        no_local_infile: args.no_local_infile,
        create_invisible_pks: args.create_invisible_pks,
    };
    let runtime = runtime()?;
    let progress = Arc::new(Progress::default());
    let display = Display::start(progress.clone(), args.progress);
    let wait = options.reconnect_wait;
    let schema = options.checkpoint_schema.clone();
    let relaxed = match args.fast_target {
        true => Some(runtime.block_on(floodgate_loader::fast_target::relax_target(&target, &schema))?),
        false => {
            // A run killed before it put its settings back (--fast-target, local_infile) left
            // them recorded.
            if let Ok(saved) =
                runtime.block_on(floodgate_loader::fast_target::put_back(&target, &schema, Duration::ZERO))
            {
                if !saved.is_empty() {
                    eprintln!("floodgate: put back settings an interrupted run changed: {}", describe_saved(&saved));
                }
            }
            None
        }
    };
    let target_again = target.clone();
    let outcome = runtime.block_on(async {
        let work = floodgate_loader::restore(backup, selection, target, options, progress);
        // Dropping the restore aborts its tasks and closes their connections: the server rolls
        // back every chunk in flight, and each committed chunk is already checkpointed.
        tokio::select! {
            outcome = work => outcome.map_err(Failure::from),
            signal = interrupted() => Err(interruption(signal?)),
        }
    });
    display.finish();
    // Always, whatever the outcome: the server goes back to the settings it had (the
    // durability --fast-target relaxed, a local_infile the restore turned on).
    let put_back = runtime.block_on(floodgate_loader::fast_target::put_back(&target_again, &schema, wait));
    match (put_back, relaxed) {
        (Ok(saved), Some(_)) if !saved.is_empty() => {
            eprintln!("floodgate: --fast-target: put back {}", describe_saved(&saved))
        }
        (Ok(saved), None) if !saved.is_empty() => eprintln!("floodgate: put back {}", describe_saved(&saved)),
        (Ok(_), _) => {}
        (Err(e), Some(relaxed)) => eprintln!(
            "floodgate: error: --fast-target could not put the settings back ({e}); they are recorded in \
             floodgate.saved_settings and the next `floodgate restore` puts them back: {}",
            describe_saved(&relaxed.saved)
        ),
        (Err(e), None) => tracing::debug!("no settings to put back, or the target is gone: {e}"),
    }
    let report = outcome?;
    if let Some(path) = &args.report {
        write_json(path, &report)?;
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
            db.name.escape_debug(),
            db.tables.len(),
            db.views.len(),
            db.post.len(),
            db.triggers.len()
        );
        for t in &db.tables {
            println!(
                "  table {}: {} chunks, {} bytes{}",
                // A name may hold a line end or a control byte (`new\nline`): shown escaped.
                t.name.escape_debug(),
                t.chunks.len(),
                t.data_bytes(),
                t.expected_rows.map(|r| format!(", {r} rows")).unwrap_or_default()
            );
        }
        for v in &db.views {
            println!("  view {}", v.name.escape_debug());
        }
    }
}

fn describe_saved(saved: &[floodgate_loader::fast_target::Saved]) -> String {
    saved.iter().map(|s| format!("{} = {}", s.name, s.value)).collect::<Vec<_>>().join(", ")
}

/// Waits for SIGINT or SIGTERM; returns its name.
async fn interrupted() -> Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let installing = || "installing the signal handlers".to_string();
    let mut int = signal(SignalKind::interrupt()).or_fail(ErrorClass::Internal, installing)?;
    let mut term = signal(SignalKind::terminate()).or_fail(ErrorClass::Internal, installing)?;
    Ok(tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    })
}

/// The restore stopped on a signal (exit code 4).
fn interruption(signal: &str) -> Failure {
    Failure::new(
        ErrorClass::Interrupted,
        format!(
            "interrupted by {signal}: chunks in flight were rolled back and every committed chunk is checkpointed on \
             the target. Run the same command again to resume (or add --restart to start over)"
        ),
    )
}

/// Writes a report or plan as pretty JSON (private to its owner: it names hosts and paths).
pub fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).or_fail(ErrorClass::Internal, || "encoding the report".into())?;
    floodgate_format::files::replace(path, &json, floodgate_format::files::PRIVATE)
        .or_fail(ErrorClass::Failed, || format!("writing the report to {}", path.display()))
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .or_fail(ErrorClass::Internal, || "starting the runtime".into())
}

fn dump(args: DumpArgs) -> Result<()> {
    let source = crate::conn::resolve(&args.conn)?;
    let options = floodgate_dump::DumpOptions {
        threads: usize::from(args.threads),
        chunk_size: args.chunk_size,
        compress_level: args.compress_level,
        databases: args.databases.clone(),
        checkpoint_schema: CheckpointSchema::new(&args.checkpoint_schema),
    };
    let progress = Arc::new(Progress::default());
    progress.set_phase(floodgate_pipeline::Phase::Data);
    let display = Display::start(progress.clone(), args.progress);
    let outcome = match args.output.to_str().filter(|o| floodgate_storage::is_url(o)) {
        Some(prefix) => runtime()?.block_on(floodgate_dump::dump_to_objects(&source, prefix, &options, progress)),
        None => runtime()?.block_on(floodgate_dump::dump(&source, &args.output, &options, progress)),
    };
    display.finish();
    let report = outcome?;
    if let Some(path) = &args.report {
        write_json(path, &report)?;
    }
    eprintln!(
        "floodgate: dumped {} rows of {} tables into {} chunks ({} bytes, {} compressed) in {:.2}s",
        report.rows, report.tables, report.chunks, report.bytes, report.compressed_bytes, report.seconds
    );
    if report.spool_peak_bytes > 0 {
        eprintln!("floodgate: uploaded as it went; the spool held {} bytes at most", report.spool_peak_bytes);
    }
    Ok(())
}

fn verify(args: VerifyArgs) -> Result<()> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let started = std::time::Instant::now();
    let report = floodgate_pipeline::verify::verify_backup(&args.dir, threads)?;
    if args.json {
        println!("{}", to_json(&report)?);
    }
    for p in &report.problems {
        eprintln!("floodgate: bad: {}: {}", p.file.display(), p.reason);
    }
    let secs = started.elapsed().as_secs_f64();
    if !report.problems.is_empty() {
        return Err(Failure::new(
            ErrorClass::Integrity,
            format!("{} problem(s) in {} chunks of {}", report.problems.len(), report.chunks, args.dir.display()),
        ));
    }
    eprintln!(
        "floodgate: verified {} chunks, {} rows, {} bytes in {secs:.2}s: every SHA-256, row count and content digest matches",
        report.chunks, report.rows, report.bytes
    );
    Ok(())
}

/// `restore --check`: the privileges each step needs, held or not, and whether the restore
/// could run; nothing is written.
fn check_privileges(args: &RestoreArgs, databases: Vec<String>, inserts_can_load: bool) -> Result<()> {
    use floodgate_loader::privileges::{self, Steps, Without};
    let target = crate::conn::resolve(&args.conn)?;
    let steps = Steps {
        databases,
        checkpoint_schema: args.checkpoint_schema.clone(),
        binlog_off: !args.binlog,
        load_data_local: !args.no_local_infile,
        inserts_can_load,
        keep_definers: !args.skip_definer && args.definer.is_none(),
        fast_target: args.fast_target,
        users: args.users,
    };
    let checks = runtime()?.block_on(privileges::check_target(&target, &steps))?;
    println!("privileges of {} for this restore (nothing was written):", target.describe());
    for c in &checks {
        let needs = |groups: &[Vec<String>]| groups.iter().map(|g| g.join(" or ")).collect::<Vec<_>>().join(", ");
        match c.ok() {
            true => println!("  ok       {}", c.step),
            false => println!("  MISSING  {}: needs {}; without it {}", c.step, needs(&c.missing), c.consequence),
        }
    }
    let blocking: Vec<&str> =
        checks.iter().filter(|c| !c.ok() && c.without == Without::Refused).map(|c| c.step.as_str()).collect();
    match blocking.is_empty() {
        true => Ok(()),
        false => Err(Failure::new(
            ErrorClass::Refused,
            format!("the account lacks privileges this restore needs: {}", blocking.join("; ")),
        )),
    }
}

fn print_dump(dump: &floodgate_format::mysqldump::DumpSource, into: Option<String>) -> Result<()> {
    let summary = floodgate_format::mysqldump::scan(dump, into, false, inspect_limit())?.summary;
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

/// `inspect` reads a dump as a restore with the default options would: a statement that
/// restore refuses for its size is refused here too.
fn inspect_limit() -> floodgate_format::split::StatementLimit {
    let defaults = RestoreOptions::default();
    floodgate_format::split::StatementLimit::for_budget(defaults.memory_budget, defaults.threads)
}

fn inspect(args: InspectArgs) -> Result<()> {
    match floodgate_format::open(&args.source)? {
        Backup::Directory(plan) if args.json => println!("{}", to_json(&plan)?),
        Backup::Directory(plan) => print_plan(&plan, true),
        Backup::Dump(dump) if args.json => {
            let summary = floodgate_format::mysqldump::scan(&dump, None, false, inspect_limit())?.summary;
            println!("{}", to_json(&serde_json::json!({"format": "mysqldump", "source": dump, "summary": summary}))?);
        }
        Backup::Dump(dump) => print_dump(&dump, None)?,
    }
    Ok(())
}

fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string_pretty(value).or_fail(ErrorClass::Internal, || "encoding JSON".into())
}
