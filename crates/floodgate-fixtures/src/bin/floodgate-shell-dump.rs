//! Writes a MySQL Shell dump directory (Shell 8.4, format 2.0.1) from a live server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use floodgate_conn::ConnectOptions;
use floodgate_fixtures::{write_shell_dump, Compression, Dialect, ShellDumpOptions};

#[derive(Parser, Debug)]
#[command(about = "Write a MySQL Shell dumpInstance/dumpSchemas directory from a live server")]
struct Args {
    /// Server Unix socket.
    #[arg(short = 'S', long)]
    socket: PathBuf,
    /// User to log in as.
    #[arg(short = 'u', long, default_value = "root")]
    user: String,
    /// Output directory (created; should be empty).
    #[arg(short = 'o', long)]
    out: PathBuf,
    /// Comma-separated schemas (dumpSchemas); all non-system schemas when absent.
    #[arg(long, value_delimiter = ',')]
    schemas: Vec<String>,
    /// default, csv, tsv or csv-unix.
    #[arg(long, default_value = "default", value_parser = parse_dialect)]
    dialect: Dialect,
    /// zstd, gzip or none.
    #[arg(long, default_value = "zstd", value_parser = parse_compression)]
    compression: Compression,
    /// Target data bytes per chunk (decimal).
    #[arg(long, default_value_t = 64_000_000)]
    bytes_per_chunk: u64,
    /// One data file per table.
    #[arg(long)]
    no_chunking: bool,
    /// Write @.checksums.json.
    #[arg(long)]
    checksum: bool,
    /// Write @.users.sql (dumpInstance only).
    #[arg(long)]
    users: bool,
    /// Leave @.done.json out, as a dump still running.
    #[arg(long)]
    no_done: bool,
}

fn parse_dialect(s: &str) -> Result<Dialect, String> {
    Dialect::parse(s).ok_or_else(|| format!("unknown dialect {s:?} (default, csv, tsv, csv-unix)"))
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    Compression::parse(s).ok_or_else(|| format!("unknown compression {s:?} (zstd, gzip, none)"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let connect = ConnectOptions { socket: Some(args.socket), user: Some(args.user), ..Default::default() };
    let options = ShellDumpOptions {
        schemas: args.schemas,
        dialect: args.dialect,
        compression: args.compression,
        bytes_per_chunk: args.bytes_per_chunk,
        chunking: !args.no_chunking,
        checksum: args.checksum,
        users: args.users,
        write_done: !args.no_done,
    };
    let mut conn = match floodgate_conn::connect(&connect, &[]).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("floodgate-shell-dump: {e}");
            return ExitCode::FAILURE;
        }
    };
    match write_shell_dump(&mut conn, &args.out, &options).await {
        Ok(summary) => {
            println!(
                "wrote {} data files, {} data bytes, {} tables to {}",
                summary.chunk_file_bytes.len(),
                summary.data_bytes,
                summary.table_rows.len(),
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("floodgate-shell-dump: {e}");
            ExitCode::FAILURE
        }
    }
}
