//! `floodgate replay-binlog`: point-in-time recovery from binary logs, in parallel.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use floodgate_binlog::{Limits, ReplayOptions};
use floodgate_pipeline::Progress;

use crate::failure::Result;

use crate::args::{ConnArgs, ProgressArg};
use crate::progress::Display;

#[derive(Debug, Args)]
pub struct ReplayBinlogArgs {
    /// Binary log files, in order (binlog.000007 binlog.000008 ...).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Apply connections.
    #[arg(short = 't', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Start at this offset of the first file (an event boundary, as mariadb-binlog shows).
    #[arg(long, value_name = "P")]
    pub start_position: Option<u64>,
    /// Stop before the first event at or after this offset of the last file.
    #[arg(long, value_name = "P")]
    pub stop_position: Option<u64>,
    /// Skip transactions that started before this time ('YYYY-MM-DD HH:MM:SS' UTC, or @UNIX).
    #[arg(long, value_name = "T")]
    pub start_datetime: Option<String>,
    /// Stop at the first event at or after this time ('YYYY-MM-DD HH:MM:SS' UTC, or @UNIX);
    /// a transaction it cuts is not applied.
    #[arg(long, value_name = "T")]
    pub stop_datetime: Option<String>,
    /// Stop after the transaction with this GTID (domain-server-seq or uuid:n), inclusive.
    #[arg(long, value_name = "GTID")]
    pub stop_gtid: Option<String>,
    /// Replay only changes to this database (repeatable).
    #[arg(long = "database", value_name = "DB")]
    pub databases: Vec<String>,
    /// Start from the binlog position recorded in this native backup's manifest.
    #[arg(long, value_name = "DIR")]
    pub from_backup: Option<PathBuf>,
    /// Keep writing the binary log on the target (default: sql_log_bin=0).
    #[arg(long)]
    pub binlog: bool,
    /// Forget the checkpoint of an earlier replay on this target.
    #[arg(long)]
    pub restart: bool,
    /// The schema floodgate keeps its checkpoints in on the server (created and marked by
    /// floodgate; a database of that name that floodgate did not create is never touched).
    #[arg(long, value_name = "NAME", default_value = floodgate_conn::server::CHECKPOINT_SCHEMA)]
    pub checkpoint_schema: String,
    /// Most transactions sent in one round trip.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub batch: u16,
    /// Start applying without reading every file first (damage is then found where the
    /// replay reaches it, after the transactions before it committed).
    #[arg(long)]
    pub no_verify_first: bool,
    /// Write a JSON report here.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
}

fn datetime(flag: &str, text: &Option<String>) -> Result<Option<u32>> {
    text.as_deref()
        .map(|t| {
            floodgate_binlog::parse_datetime(t)
                .ok_or_else(|| floodgate_binlog::BinlogError::Usage(format!("{flag}: not a date and time: {t:?}")))
        })
        .transpose()
        .map_err(Into::into)
}

/// Applies `--from-backup`: the files from the manifest's file on, and its position.
fn from_backup(dir: &std::path::Path, files: &mut Vec<PathBuf>, start: &mut Option<u64>) -> Result<()> {
    let manifest = floodgate_format::native::read_manifest(&dir.join(floodgate_format::native::MANIFEST))?;
    let (Some(file), Some(pos)) = (manifest.source.binlog_file, manifest.source.binlog_position) else {
        return Err(floodgate_binlog::BinlogError::Usage(format!(
            "{} records no binary log position (was binary logging on when it was dumped?)",
            dir.display()
        ))
        .into());
    };
    let first =
        files.iter().position(|f| f.file_name().is_some_and(|n| n.to_string_lossy() == file)).ok_or_else(|| {
            floodgate_binlog::BinlogError::Usage(format!(
                "the backup starts in {file}, which is not among the files given"
            ))
        })?;
    if start.is_some() {
        return Err(
            floodgate_binlog::BinlogError::Usage("give --from-backup or --start-position, not both".into()).into()
        );
    }
    files.drain(..first);
    *start = Some(pos);
    Ok(())
}

pub fn run(args: ReplayBinlogArgs) -> Result<()> {
    let mut files = args.files.clone();
    let mut start_position = args.start_position;
    if let Some(dir) = &args.from_backup {
        from_backup(dir, &mut files, &mut start_position)?;
    }
    let limits = Limits {
        start_position,
        stop_position: args.stop_position,
        start_datetime: datetime("--start-datetime", &args.start_datetime)?,
        stop_datetime: datetime("--stop-datetime", &args.stop_datetime)?,
        stop_gtid: args.stop_gtid.clone(),
        databases: args.databases.clone(),
    };
    let options = ReplayOptions {
        files,
        limits,
        threads: usize::from(args.threads),
        binlog: args.binlog,
        restart: args.restart,
        batch: usize::from(args.batch),
        verify_first: !args.no_verify_first,
        checkpoint_schema: floodgate_conn::CheckpointSchema::new(&args.checkpoint_schema),
    };
    let target = crate::conn::resolve(&args.conn)?;
    let progress = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = crate::run::runtime()?;
    let display = Display::start(progress.clone(), args.progress);
    let outcome = runtime.block_on(async {
        let flag = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("floodgate: interrupted; finishing the transactions in flight");
                flag.store(true, Ordering::Relaxed);
            }
        });
        floodgate_binlog::replay(&target, options, progress, stop.clone()).await
    });
    display.finish();
    let report = outcome?;
    if let Some(path) = &args.report {
        crate::run::write_json(path, &report)?;
    }
    let resume = report.resume_at.as_ref().map(|(f, p)| format!("; next start {f}:{p}")).unwrap_or_default();
    eprintln!(
        "floodgate: replayed {} transactions ({} statements applied alone, {} with a table lock, {} round trips) \
         of {} binlog bytes on {} connections in {:.2}s; {} already applied{resume}",
        report.transactions,
        report.barriers,
        report.table_locks,
        report.batches,
        report.bytes,
        report.threads,
        report.seconds,
        report.already_applied
    );
    Ok(())
}
