//! Uploads a file, or a directory recursively, to S3-compatible storage through the S3 API
//! (floodgate-storage's multipart upload), as a backup job would put a backup there. The
//! benches use it to fill the local s3s-fs: an object copied into its directory by hand has
//! no stored ETag, and s3s-fs then hashes the whole file on every GET.
//!
//! Credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the
//! AWS profile files, as for floodgate itself.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use floodgate_storage::{ObjectUrl, StorageError, StoreOptions};

#[derive(Parser, Debug)]
#[command(about = "Upload a file, or a directory recursively, to s3://bucket/prefix through the S3 API")]
struct Args {
    /// The store's URL (http://127.0.0.1:PORT); else AWS_ENDPOINT_URL or AWS itself.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// A file (uploaded as the object DEST) or a directory (each file under it uploaded as
    /// DEST/relative/path).
    src: PathBuf,
    /// s3://bucket/key for a file, s3://bucket/prefix for a directory.
    dest: String,
}

#[derive(Debug, thiserror::Error)]
enum PutError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}: a file name that is not UTF-8 cannot be an object key")]
    NotUtf8(PathBuf),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PutError + '_ {
    move |source| PutError::Io { path: path.to_path_buf(), source }
}

fn main() -> ExitCode {
    let args = Args::parse();
    floodgate_storage::configure(StoreOptions { endpoint: args.endpoint.clone(), ..Default::default() });
    match put(&args.src, &args.dest) {
        Ok((files, bytes)) => {
            println!("uploaded {files} file(s), {bytes} bytes, to {}", args.dest);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("floodgate-s3-put: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Uploads `src` to `dest`; returns the files and bytes uploaded.
fn put(src: &Path, dest: &str) -> Result<(u64, u64), PutError> {
    let url = ObjectUrl::parse(dest)?;
    let meta = std::fs::metadata(src).map_err(io(src))?;
    if !meta.is_dir() {
        return Ok((1, upload_file(src, &url.to_url())?));
    }
    let mut files = Vec::new();
    walk(src, &mut files)?;
    files.sort();
    let prefix = match url.key.as_str() {
        "" => String::new(),
        k if k.ends_with('/') => k.to_string(),
        k => format!("{k}/"),
    };
    // Every file's key, checked before anything is uploaded: a refusal leaves no half-copied
    // directory in the bucket.
    let mut objects = Vec::with_capacity(files.len());
    for file in files {
        let relative = file.strip_prefix(src).unwrap_or(&file);
        let Some(relative) = relative.to_str() else { return Err(PutError::NotUtf8(file)) };
        let key = ObjectUrl { bucket: url.bucket.clone(), key: format!("{prefix}{relative}") }.to_url();
        ObjectUrl::parse(&key)?;
        objects.push((file, key));
    }
    let mut bytes = 0;
    for (file, key) in &objects {
        bytes += upload_file(file, key)?;
    }
    Ok((objects.len() as u64, bytes))
}

fn upload_file(path: &Path, url: &str) -> Result<u64, PutError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    Ok(floodgate_storage::upload(url, std::io::BufReader::with_capacity(1 << 20, file))?)
}

/// Every file under `dir`, at any depth (symbolic links followed).
fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), PutError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if std::fs::metadata(&path).map_err(io(&path))?.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}
