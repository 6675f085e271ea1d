//! Command-line syntax. Connection flags follow the `mysql` client: `-h` is the host, so help
//! is `--help` only.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "floodgate",
    version,
    about = "Restore MySQL and MariaDB backups as fast as the target can ingest them",
    disable_help_flag = true,
    after_help = "Exit codes: 0 success, 1 failure, 2 usage error, 3 integrity failure \
                  (corrupt or incomplete backup, row-count mismatch), 4 interrupted (resumable)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help, global = true)]
    help: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Restore a backup (floodgate dump, mydumper directory, or mysqldump file) into a server.
    #[command(disable_help_flag = true)]
    Restore(Box<RestoreArgs>),
    /// Dump databases into floodgate's native format, from one consistent snapshot.
    #[command(disable_help_flag = true)]
    Dump(Box<DumpArgs>),
    /// Check a native backup offline: every chunk's SHA-256, rows and content digests.
    #[command(disable_help_flag = true)]
    Verify(VerifyArgs),
    /// Describe a backup: format, position, databases, tables, chunks, sizes.
    #[command(disable_help_flag = true)]
    Inspect(InspectArgs),
    /// Replay binary logs in parallel (point-in-time recovery), exactly as serial replay would.
    #[command(disable_help_flag = true)]
    ReplayBinlog(Box<crate::replay::ReplayBinlogArgs>),
}

/// Connection flags, as the `mysql` client spells them.
#[derive(Debug, Clone, Args, Default)]
pub struct ConnArgs {
    /// Server host (localhost means the Unix socket).
    #[arg(short = 'h', long)]
    pub host: Option<String>,
    /// TCP port.
    #[arg(short = 'P', long)]
    pub port: Option<u16>,
    /// User name.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Password; `-pSECRET` (attached) or `-p` alone to be asked. MYSQL_PWD is read too.
    #[arg(long = "password", value_name = "PASS")]
    pub password: Option<String>,
    /// Ask for the password on the terminal (what a bare `-p` means).
    #[arg(long = "password-prompt", hide = true)]
    pub password_prompt: bool,
    /// Unix socket.
    #[arg(short = 'S', long)]
    pub socket: Option<PathBuf>,
    /// Read [client] options from this file instead of ~/.my.cnf.
    #[arg(long, value_name = "FILE")]
    pub defaults_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum VerifyArg {
    None,
    Counts,
    Digest,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ProgressArg {
    Auto,
    Plain,
    None,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup: a floodgate dump or mydumper directory, or a mysqldump/mariadb-dump file
    /// (.sql, .sql.gz, .sql.zst; `-` for standard input).
    pub source: PathBuf,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Loader connections.
    #[arg(short = 't', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Replace tables, views, routines and events that already exist on the target.
    #[arg(long)]
    pub overwrite: bool,
    /// Restore only these databases (repeatable).
    #[arg(long = "database", value_name = "DB")]
    pub databases: Vec<String>,
    /// Restore a mysqldump file's single database under this name (needed for dumps made
    /// without --databases, which name no database).
    #[arg(long, value_name = "NEWDB")]
    pub into: Option<String>,
    /// Skip this table (repeatable).
    #[arg(long = "exclude", value_name = "DB.TABLE")]
    pub exclude: Vec<String>,
    /// Keep writing the binary log on the target (default: sql_log_bin=0).
    #[arg(long)]
    pub binlog: bool,
    /// Create secondary indexes with the tables instead of after the data.
    #[arg(long)]
    pub no_defer_indexes: bool,
    /// What to check after loading.
    #[arg(long, value_enum, default_value_t = VerifyArg::Counts)]
    pub verify: VerifyArg,
    /// Read the backup and print what would be done; connect to nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write a JSON report with per-table timings here.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Progress display: a bar on a terminal, periodic lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
    /// Memory the pipeline may hold in flight, in MiB.
    #[arg(long, default_value_t = 256, value_name = "MiB")]
    pub memory_budget: usize,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The new backup directory (must not exist, or be empty).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
    /// Databases to dump (all user databases when none).
    pub databases: Vec<String>,
    /// Worker connections.
    #[arg(short = 't', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Uncompressed bytes per chunk (suffixes K, M, G; or KiB, MiB, GiB).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub chunk_size: u64,
    /// zstd compression level (1-19). 1 is the default: on sysbench data it dumps 1.8x faster
    /// than 3 and the files are no larger (benches/RESULTS.md).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub compress_level: i32,
    /// Write a JSON report here.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The native backup directory.
    pub dir: PathBuf,
    /// Threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses `64MiB`, `1G`, `4096`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("not a size: {text}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} in {text}")),
    };
    n.checked_mul(mult).filter(|v| *v > 0).ok_or_else(|| format!("size out of range: {text}"))
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The backup.
    pub source: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Rewrites the `mysql` client's password syntax for clap: `-pSECRET` becomes
/// `--password=SECRET` and a bare `-p` becomes `--password-prompt`, so `-p` never swallows
/// the next argument.
pub fn mysql_style_password(argv: Vec<OsString>) -> Vec<OsString> {
    argv.into_iter()
        .map(|a| match a.to_str() {
            Some("-p") => OsString::from("--password-prompt"),
            Some(s) if s.starts_with("-p") && !s.starts_with("--") => OsString::from(format!("--password={}", &s[2..])),
            _ => a,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_syntax() {
        let v: Vec<OsString> =
            ["floodgate", "restore", "-psecret", "dir", "-p", "-P", "3306"].iter().map(OsString::from).collect();
        let out = mysql_style_password(v);
        assert_eq!(out[2], "--password=secret");
        assert_eq!(out[4], "--password-prompt");
        assert_eq!(out[5], "-P");
        let cli = Cli::try_parse_from(out).unwrap();
        let Command::Restore(r) = cli.command else { panic!() };
        assert_eq!(r.conn.password.as_deref(), Some("secret"));
        assert!(r.conn.password_prompt);
        assert_eq!(r.conn.port, Some(3306));
    }

    #[test]
    fn dash_h_is_host() {
        let cli = Cli::try_parse_from(["floodgate", "restore", "d", "-h", "db1"]).unwrap();
        let Command::Restore(r) = cli.command else { panic!() };
        assert_eq!(r.conn.host.as_deref(), Some("db1"));
    }
}
