//! Command-line syntax. Connection flags follow the `mysql` client: `-h` is the host, so help
//! is `--help` only.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use floodgate_conn::SslMode;

use crate::secret::Secret;

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
    /// The S3-compatible store's URL for s3:// sources (MinIO, Ceph, R2...; addressed
    /// path-style); else AWS_ENDPOINT_URL, the profile's endpoint_url, or AWS itself.
    #[arg(long, value_name = "URL", global = true)]
    pub s3_endpoint: Option<String>,
    /// Region to sign s3:// requests for (else AWS_REGION, the profile's, or us-east-1).
    #[arg(long, value_name = "REGION", global = true)]
    pub s3_region: Option<String>,
    /// One s3:// request's limit in seconds: a transfer that stalls longer is cut and tried
    /// again (for up to --s3-retry-for seconds of failures in a row).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, global = true,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub s3_timeout: u64,
    /// How long a store that fails, stalls or throttles is tried again, reads and uploads
    /// alike, before floodgate gives up (a restore then resumes when run again).
    #[arg(long, value_name = "SECONDS", default_value_t = 300, global = true,
          value_parser = clap::value_parser!(u64).range(0..=86400))]
    pub s3_retry_for: u64,
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
    /// Restore drill: restore a backup into a throwaway server (or CONN), verify it, report
    /// the recovery time, and exit non-zero on any failure.
    #[command(
        disable_help_flag = true,
        after_help = "Exit codes: 0 the backup restored and every check passed; 1 failure (including \
                      --timeout and an interrupt); 2 usage error; 3 integrity failure (corrupt, truncated \
                      or incomplete backup, rows or objects missing, a --verify-query returned false)."
    )]
    Drill(Box<DrillArgs>),
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
    pub password: Option<Secret>,
    /// Ask for the password on the terminal (what a bare `-p` means).
    #[arg(long = "password-prompt", hide = true)]
    pub password_prompt: bool,
    /// Unix socket.
    #[arg(short = 'S', long)]
    pub socket: Option<PathBuf>,
    /// Read [client] options from this file instead of ~/.my.cnf.
    #[arg(long, value_name = "FILE")]
    pub defaults_file: Option<PathBuf>,
    /// TLS over TCP: DISABLED, PREFERRED (the default: TLS when the server offers it),
    /// REQUIRED, VERIFY_CA (signed by --ssl-ca), VERIFY_IDENTITY (and issued for the host).
    #[arg(long, value_name = "MODE", value_parser = parse_ssl_mode)]
    pub ssl_mode: Option<SslMode>,
    /// CA certificates (PEM) the server's certificate must be signed by; alone it means
    /// --ssl-mode VERIFY_CA, as in the mysql client.
    #[arg(long, value_name = "FILE")]
    pub ssl_ca: Option<PathBuf>,
    /// Client certificate (PEM), for accounts that REQUIRE X509.
    #[arg(long, value_name = "FILE")]
    pub ssl_cert: Option<PathBuf>,
    /// Private key (PEM) of --ssl-cert.
    #[arg(long, value_name = "FILE")]
    pub ssl_key: Option<PathBuf>,
    /// The server's RSA public key (PEM) for caching_sha2_password logins without TLS.
    #[arg(long, value_name = "FILE")]
    pub server_public_key_path: Option<PathBuf>,
    /// Ask the server for its RSA public key for caching_sha2_password logins without TLS
    /// (a man in the middle could send his own: only on a network you trust).
    #[arg(long)]
    pub get_server_public_key: bool,
}

fn parse_ssl_mode(text: &str) -> Result<SslMode, String> {
    text.parse()
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
    /// The backup: a floodgate dump, mydumper or MySQL Shell directory, or a
    /// mysqldump/mariadb-dump file (.sql, .sql.gz, .sql.zst; `-` for standard input).
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
    /// Restore the backup's single database (or the one --database picks) under this name;
    /// mysqldump files made without --databases name no database and need it.
    #[arg(long, value_name = "NEWDB", conflicts_with = "rename_db")]
    pub into: Option<String>,
    /// Restore the backup's database OLD as NEW (repeatable): its views, routines and
    /// triggers, and references to OLD from other databases', follow. --database and
    /// --exclude name databases as the backup does.
    #[arg(long = "rename-db", value_name = "OLD:NEW", value_parser = parse_rename)]
    pub rename_db: Vec<(String, String)>,
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
    /// Connect to the target and list, for each step of this restore, the privileges the
    /// account has and lacks and what happens without them; write nothing. Exits non-zero
    /// when one is missing that would refuse the restore.
    #[arg(long, conflicts_with = "dry_run")]
    pub check: bool,
    /// Write a JSON report with per-table timings here.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Progress display: a bar on a terminal, periodic lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
    /// Memory the pipeline may hold in flight, in MiB.
    #[arg(long, default_value_t = 256, value_name = "MiB")]
    pub memory_budget: usize,
    /// Require an interrupted restore of this backup to continue (resuming is automatic;
    /// this refuses to start a fresh one).
    #[arg(long, conflicts_with = "restart")]
    pub resume: bool,
    /// Drop an unfinished restore's checkpoints and partial tables, then start over.
    #[arg(long)]
    pub restart: bool,
    /// Keep the checkpoints on the target after a complete restore.
    #[arg(long)]
    pub keep_checkpoints: bool,
    /// The schema floodgate keeps its checkpoints in on the server (created and marked by
    /// floodgate; a database of that name that floodgate did not create is never touched).
    #[arg(long, value_name = "NAME", default_value = floodgate_conn::server::CHECKPOINT_SCHEMA)]
    pub checkpoint_schema: String,
    /// Restore a mysqldump file that lacks its `-- Dump completed` trailer (cut off between
    /// two statements, or the dump did not finish): without it such a file is refused.
    #[arg(long)]
    pub allow_incomplete: bool,
    /// Restore into a server whose replication threads are running (refused otherwise: the
    /// restored rows would conflict with what it replicates).
    #[arg(long)]
    pub allow_replica: bool,
    /// Create views, routines, triggers and events without their DEFINER (the restoring
    /// account becomes their definer), as myloader's --skip-definer.
    #[arg(long, conflicts_with = "definer")]
    pub skip_definer: bool,
    /// Create views, routines, triggers and events with this definer (USER@HOST) instead of
    /// the backup's.
    #[arg(long, value_name = "USER@HOST", value_parser = parse_definer)]
    pub definer: Option<String>,
    /// SQL per chunk of a mysqldump stream (suffixes K, M, G). Resuming needs the same value.
    #[arg(long, default_value = "4MiB", value_parser = parse_size, hide = true)]
    pub stream_chunk_size: u64,
    /// INSERT files of a directory backup at least this large load as LOAD DATA rows
    /// (suffixes K, M, G; the tests lower it to convert small files too).
    #[arg(long, default_value = "1MiB", value_parser = parse_size, hide = true)]
    pub convert_min_size: u64,
    /// Fresh host only: relax the target's durability for the load (innodb_flush_log_at_trx_commit,
    /// sync_binlog, MySQL 8's redo log) and put the previous values back at the end, also on
    /// failure and Ctrl-C. Refused on a server that holds user databases.
    #[arg(long)]
    pub fast_target: bool,
    /// Seconds to wait for a target that went away (restart, network) before giving up.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub wait_for_target: u64,
    /// A MySQL Shell dump still being written (no `@.done.json` yet): load its data files as
    /// they appear and finish when the dump does, giving up after SECONDS without a new file
    /// (MySQL Shell's `waitDumpTimeout`). Without it such a dump is refused.
    #[arg(long, value_name = "SECONDS")]
    pub wait_for_dump: Option<u64>,
    /// Restore the accounts and grants the backup carries (MySQL Shell's `@.users.sql`).
    /// Never root, the server's own accounts, or the account floodgate logs in as.
    #[arg(long)]
    pub users: bool,
    /// With --users: an account whose statements fail is reported and skipped, not an error.
    #[arg(long, requires = "users")]
    pub ignore_grant_errors: bool,
    /// At the end, give the target the backup's GTID position (MySQL: GTID_PURGED = '+SET';
    /// MariaDB: gtid_slave_pos), so it can replicate from the source. Checked before anything
    /// changes; applied once.
    #[arg(long)]
    pub set_gtid_purged: bool,
    /// Into a live server: hold the loaders between chunks while a global status variable
    /// is above a limit, e.g. 'Threads_running>20' (sampled every second; floodgate's own
    /// loaders count too, so set it above -t).
    #[arg(long, value_name = "NAME>N")]
    pub throttle: Option<floodgate_loader::StatusLimit>,
    /// Load at most this many megabytes (10^6 bytes, of the backup as stored) per second,
    /// on average.
    #[arg(long, value_name = "MB/s", value_parser = parse_rate)]
    pub max_rate: Option<f64>,
    /// A replica of the target (repeatable): HOST[:PORT], or the path of its Unix socket;
    /// the target's user, password and TLS settings are used. Statements are kept under its
    /// packet limits (max_allowed_packet, slave_max_allowed_packet).
    #[arg(long = "replica", value_name = "HOST[:PORT]|SOCKET")]
    pub replicas: Vec<String>,
    /// Hold the loaders between chunks while a --replica is more than SECONDS behind, or
    /// not replicating at all (its SQL or I/O thread stopped).
    #[arg(long, value_name = "SECONDS", requires = "replicas")]
    pub max_replica_lag: Option<u64>,
    /// Load every chunk through INSERT statements, never LOAD DATA LOCAL INFILE (what a
    /// target with local_infile off and an account that may not turn it on gets anyway).
    /// Slower; not for mydumper LOAD DATA files or MySQL Shell data files.
    #[arg(long)]
    pub no_local_infile: bool,
    /// Give each table without a primary key an invisible `my_row_id` BIGINT UNSIGNED
    /// AUTO_INCREMENT primary key, as MySQL Shell's createInvisiblePKs does: for targets
    /// that require one (sql_require_primary_key, Group Replication, managed services).
    #[arg(long)]
    pub create_invisible_pks: bool,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The new backup directory (must not exist, or be empty), or `s3://bucket/prefix/`
    /// (must hold nothing): each file is uploaded as soon as it is complete, the manifest last.
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
    /// than 3 and the files are no larger (benches/RESULTS.md). 0 stores the rows as they are
    /// (zstd frames of raw blocks, readable as before): for disks faster than compression.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub compress_level: i32,
    /// floodgate's checkpoint schema on the source, left out of "every database" (a user's
    /// own database of that name is dumped).
    #[arg(long, value_name = "NAME", default_value = floodgate_conn::server::CHECKPOINT_SCHEMA)]
    pub checkpoint_schema: String,
    /// Write a JSON report here.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The backup: a floodgate dump or mydumper directory, or a mysqldump/mariadb-dump file.
    pub backup: PathBuf,
    /// Restore into this server instead of a throwaway sandbox (it must hold no user data).
    #[command(flatten)]
    pub conn: ConnArgs,
    /// With CONN: restore even though the server holds user data, replacing what the backup
    /// defines.
    #[arg(long)]
    pub overwrite: bool,
    /// Leave the sandbox running afterwards and print how to connect to it.
    #[arg(long)]
    pub keep: bool,
    /// The mariadbd or mysqld to run the sandbox with (default: found on PATH).
    #[arg(long, value_name = "PATH")]
    pub server_binary: Option<PathBuf>,
    /// The sandbox's InnoDB buffer pool (default: a quarter of available memory).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub buffer_pool: Option<u64>,
    /// Fail the drill when the restore takes longer than this (e.g. 90s, 30m, 2h, 1h30m):
    /// the recovery time objective.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// SQL checks to run after the restore; each statement must return a true first column.
    #[arg(long, value_name = "FILE")]
    pub verify_query: Option<PathBuf>,
    /// Write a JSON report here (schema: docs/drill-report.schema.json).
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Write node_exporter textfile metrics here (replaced atomically).
    #[arg(long, value_name = "FILE.prom")]
    pub prometheus: Option<PathBuf>,
    /// The `backup` label of the metrics (default: the backup's path). Give dated backups a
    /// stable name.
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
    /// Restore the backup's single database under this name (mysqldump files made without
    /// --databases need it).
    #[arg(long, value_name = "NEWDB")]
    pub into: Option<String>,
    /// Loader connections.
    #[arg(short = 't', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Memory the pipeline may hold in flight, in MiB.
    #[arg(long, default_value_t = 256, value_name = "MiB")]
    pub memory_budget: usize,
    /// Progress display: a bar on a terminal, periodic lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
}

impl ConnArgs {
    /// True when any connection flag was given.
    pub fn given(&self) -> bool {
        self.host.is_some()
            || self.port.is_some()
            || self.user.is_some()
            || self.password.is_some()
            || self.password_prompt
            || self.socket.is_some()
            || self.defaults_file.is_some()
    }

    /// The TLS flag given, if any: they say how to reach a server, not which one.
    pub fn tls_flag(&self) -> Option<&'static str> {
        [
            (self.ssl_mode.is_some(), "--ssl-mode"),
            (self.ssl_ca.is_some(), "--ssl-ca"),
            (self.ssl_cert.is_some(), "--ssl-cert"),
            (self.ssl_key.is_some(), "--ssl-key"),
            (self.server_public_key_path.is_some(), "--server-public-key-path"),
            (self.get_server_public_key, "--get-server-public-key"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }
}

/// Parses `1s`, `500ms`, `90s`, `30m`, `2h`, `1h30m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return nonzero(std::time::Duration::from_secs(secs), text);
    }
    let mut total = std::time::Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        let n: u64 = rest[..digits].parse().map_err(|_| format!("not a duration: {text} (try 90s, 30m, 1h30m)"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = match &rest[..unit_len] {
            "ms" => std::time::Duration::from_millis(n),
            "s" => std::time::Duration::from_secs(n),
            "m" | "min" => std::time::Duration::from_secs(n.saturating_mul(60)),
            "h" => std::time::Duration::from_secs(n.saturating_mul(3600)),
            other => return Err(format!("unknown unit {other:?} in {text} (use ms, s, m or h)")),
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    nonzero(total, text)
}

fn nonzero(d: std::time::Duration, text: &str) -> Result<std::time::Duration, String> {
    if d.is_zero() {
        return Err(format!("a timeout must be longer than zero: {text:?}"));
    }
    Ok(d)
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

/// `USER@HOST`, each part bare or quoted, as a quoted account.
fn parse_definer(text: &str) -> Result<String, String> {
    let (user, host) = text.rsplit_once('@').ok_or("USER@HOST, e.g. app@localhost or 'app'@'%'")?;
    let unquote = |s: &str| s.trim().trim_matches(|c| c == '\'' || c == '`' || c == '"').to_string();
    let (user, host) = (unquote(user), unquote(host));
    if user.is_empty() || host.is_empty() {
        return Err("USER@HOST, e.g. app@localhost or 'app'@'%'".into());
    }
    Ok(format!("{}@{}", floodgate_format::ident::quote(&user), floodgate_format::ident::quote(&host)))
}

/// `--max-rate`: megabytes per second (`50`, `50MB/s`, `0.5`), as bytes per second.
fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches("/s").trim_end_matches(['M', 'B', 'm', 'b']).trim();
    match number.parse::<f64>() {
        Ok(mb) if mb > 0.0 && mb.is_finite() => Ok(mb * 1e6),
        _ => Err(format!("{text:?}: megabytes per second, e.g. 50 or 50MB/s")),
    }
}

/// `OLD:NEW`, split at the first `:` (a database name holding one is the NEW's).
fn parse_rename(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() && to.len() <= 64 => {
            Ok((from.to_string(), to.to_string()))
        }
        _ => Err("OLD:NEW, two database names, e.g. shop:shop_restored".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("50").unwrap(), 50e6);
        assert_eq!(parse_rate("50MB/s").unwrap(), 50e6);
        assert_eq!(parse_rate("0.5").unwrap(), 0.5e6);
        for bad in ["", "0", "-1", "fast", "inf"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn renames() {
        assert_eq!(parse_rename("a:b").unwrap(), ("a".to_string(), "b".to_string()));
        assert_eq!(parse_rename("a:b:c").unwrap(), ("a".to_string(), "b:c".to_string()));
        for bad in ["a", ":b", "a:", ""] {
            assert!(parse_rename(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn definer_accounts() {
        assert_eq!(parse_definer("app@localhost").unwrap(), "`app`@`localhost`");
        assert_eq!(parse_definer("'app'@'%'").unwrap(), "`app`@`%`");
        assert!(parse_definer("nobody").is_err());
    }

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
        assert_eq!(r.conn.password.as_ref().map(Secret::expose), Some("secret"));
        assert!(!format!("{r:?}").contains("secret"), "Debug hides the password: {r:?}");
        assert!(r.conn.password_prompt);
        assert_eq!(r.conn.port, Some(3306));
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn drill_without_conn_uses_a_sandbox() {
        let cli = Cli::try_parse_from(["floodgate", "drill", "/b", "--timeout", "30m", "--keep"]).unwrap();
        let Command::Drill(d) = cli.command else { panic!() };
        assert!(!d.conn.given());
        assert!(d.keep);
        let cli = Cli::try_parse_from(["floodgate", "drill", "/b", "-S", "/s.sock"]).unwrap();
        let Command::Drill(d) = cli.command else { panic!() };
        assert!(d.conn.given());
    }

    #[test]
    fn dash_h_is_host() {
        let cli = Cli::try_parse_from(["floodgate", "restore", "d", "-h", "db1"]).unwrap();
        let Command::Restore(r) = cli.command else { panic!() };
        assert_eq!(r.conn.host.as_deref(), Some("db1"));
    }
}
