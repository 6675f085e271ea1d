//! Writing objects: in parts of [`StoreOptions::part_bytes`] (multipart upload, a few parts
//! in flight), so an object of any size costs a bounded amount of memory. The object appears
//! whole when the upload completes, or not at all.

use std::io::Read;

use bytes::Bytes;
use object_store::{ObjectStoreExt, WriteMultipart};

use crate::options::options;
use crate::{runtime, ObjectUrl, Result, StorageError, StorageErrorKind};

/// Parts being sent at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Uploads the file at `path` to `url`, the whole upload tried again (the file read anew)
/// under the reads' retry policy when the store fails, stalls or throttles: a multipart
/// upload that failed midway is abandoned, never completed, so the object appears whole or
/// not at all. Returns the bytes written.
pub fn upload_file(url: &str, path: &std::path::Path) -> Result<u64> {
    let what = format!("uploading {} to {url}", path.display());
    let mut backoff = crate::retry::Backoff::new(options().retry_for);
    loop {
        let file = std::fs::File::open(path).map_err(|e| {
            StorageError::new(StorageErrorKind::Usage, url, format!("cannot read {}: {e}", path.display()))
        })?;
        match upload(url, file) {
            Ok(bytes) => return Ok(bytes),
            Err(e) => std::thread::sleep(backoff.after(e, &what)?),
        }
    }
}

/// Writes what `reader` holds to `url`, replacing any object there, in one try. Returns the
/// bytes written.
pub fn upload(url: &str, mut reader: impl Read) -> Result<u64> {
    let parsed = ObjectUrl::parse(url)?;
    let store = crate::object::client(&parsed.bucket)?;
    let shown = parsed.to_url();
    let part = usize::try_from(options().part_bytes).unwrap_or(8 << 20).max(5 << 20);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let path = parsed.store_path()?;
    let task = {
        let shown = shown.clone();
        runtime::spawn(async move {
            let failed = |e: object_store::Error| StorageError::from_store(&shown, &e);
            let Some(first) = rx.recv().await else {
                // An empty file is an empty object, not none.
                store.put(&path, Bytes::new().into()).await.map_err(failed)?;
                return Ok(());
            };
            let second = rx.recv().await;
            let Some(second) = second else {
                // One part: a plain PUT.
                store.put(&path, first.into()).await.map_err(failed)?;
                return Ok(());
            };
            let mut writer =
                WriteMultipart::new_with_chunk_size(store.put_multipart(&path).await.map_err(failed)?, part);
            for chunk in [first, second] {
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(failed)?;
                writer.put(chunk);
            }
            while let Some(chunk) = rx.recv().await {
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(failed)?;
                writer.put(chunk);
            }
            writer.finish().await.map_err(failed)?;
            Ok(())
        })?
    };
    let mut total = 0u64;
    loop {
        let mut buf = vec![0u8; part];
        let n = read_full(&mut reader, &mut buf)
            .map_err(|e| StorageError::new(StorageErrorKind::Usage, &shown, format!("reading what to upload: {e}")))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        total += n as u64;
        if futures::executor::block_on(tx.send(Bytes::from(buf))).is_err() {
            break; // the upload failed: its error is the task's
        }
        if n < part {
            break;
        }
    }
    drop(tx);
    runtime::wait(task)?;
    Ok(total)
}

/// Fills `buf` unless the reader ends first; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
