//! Where the dump's files go once each is complete.
//!
//! A local dump keeps them: each is fsynced in the background and the manifest waits for all
//! of them. A dump to object storage (`-o s3://bucket/prefix/`) writes each file into a
//! private spool directory and, once the file is closed, queues it for a few uploader
//! threads; an uploaded file is deleted from the spool. The queue is short and a worker that
//! finishes a file while it is full waits for room, so when the store is slower than the
//! server the dump slows down instead of the spool growing: it holds at most one file per
//! worker, [`QUEUED`] waiting, and one per uploader, whatever the size of the dump.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::{io, DumpError, Result};

/// Files waiting for an uploader: few, so that it is the dump that waits for a slow store.
const QUEUED: usize = 2;

/// Uploader threads at most. A large file's upload holds up to eight parts of at least 5 MiB
/// (four in flight, the rest being read and handed over), 40 MiB; several uploads at once
/// keep the store busy while each request waits out its round trip.
const MAX_UPLOADERS: usize = 4;

/// The destination of a dump's files; `out` is the directory they are written in.
pub(crate) struct Sink {
    out: PathBuf,
    kind: Kind,
}

enum Kind {
    /// fsyncs of finished files, on blocking threads: a worker goes on to its next rows
    /// instead of waiting for the disk, and the manifest waits for all of them.
    Local(Mutex<JoinSet<Result<()>>>),
    Objects(Uploader),
}

impl Sink {
    /// Files stay in `out`, a local dump's directory.
    pub(crate) fn local(out: &Path) -> Sink {
        Sink { out: out.to_path_buf(), kind: Kind::Local(Mutex::new(JoinSet::new())) }
    }

    /// Files written in the spool directory `out` go up under `prefix` (ending in `/`), each
    /// as soon as it is complete, over up to `threads` uploaders. Must run on a tokio runtime.
    pub(crate) fn objects(out: &Path, prefix: &str, threads: usize) -> Sink {
        let uploader = Uploader::start(prefix, threads.clamp(1, MAX_UPLOADERS));
        Sink { out: out.to_path_buf(), kind: Kind::Objects(uploader) }
    }

    /// The directory files are written in.
    pub(crate) fn out(&self) -> &Path {
        &self.out
    }

    /// Counts `bytes` just written into a file of the spool.
    pub(crate) fn wrote(&self, bytes: u64) {
        if let Kind::Objects(uploader) = &self.kind {
            uploader.state.hold(bytes);
        }
    }

    /// The file `rel` (relative to `out`, `size` bytes, all counted by [`Sink::wrote`]) is
    /// complete: synced in the background, or queued for upload, waiting while the queue is
    /// full. Fails once an upload has failed, so that the dump stops.
    pub(crate) async fn finished(&self, rel: &str, file: File, size: u64) -> Result<()> {
        let path = self.out.join(rel);
        match &self.kind {
            Kind::Local(syncs) => sync_later(syncs, file, path),
            Kind::Objects(uploader) => {
                // Closed before it is read back for the upload.
                drop(file);
                uploader.send(rel, path, size).await
            }
        }
    }

    /// After a failed dump: files still queued are deleted, not uploaded.
    pub(crate) fn abandon(&self) {
        if let Kind::Objects(uploader) = &self.kind {
            uploader.state.stop.store(true, Ordering::Release);
        }
    }

    /// Waits until every file handed over is on disk or uploaded (or, after
    /// [`Sink::abandon`], deleted). The first upload failure, if any, is the error: it is
    /// what made the dump stop.
    pub(crate) async fn settle(&self) -> Result<()> {
        match &self.kind {
            Kind::Local(syncs) => synced(syncs).await,
            Kind::Objects(uploader) => uploader.settle().await,
        }
    }

    /// The most bytes the spool held at once; 0 for a local dump, which has none.
    pub(crate) fn spool_peak(&self) -> u64 {
        match &self.kind {
            Kind::Local(_) => 0,
            Kind::Objects(uploader) => uploader.state.peak.load(Ordering::Relaxed),
        }
    }
}

fn sync_later(syncs: &Mutex<JoinSet<Result<()>>>, file: File, path: PathBuf) -> Result<()> {
    let sync = move || file.sync_all().map_err(|source| DumpError::Io { path, source });
    match syncs.lock() {
        Ok(mut syncs) => {
            syncs.spawn_blocking(sync);
            Ok(())
        }
        // Never skipped: a manifest must not list a file that is not on disk.
        Err(_) => sync(),
    }
}

async fn synced(syncs: &Mutex<JoinSet<Result<()>>>) -> Result<()> {
    let mut syncs = std::mem::take(&mut *syncs.lock().map_err(|_| DumpError::Internal("sync list poisoned".into()))?);
    while let Some(done) = syncs.join_next().await {
        done.map_err(|e| DumpError::Internal(format!("an fsync task failed: {e}")))??;
    }
    Ok(())
}

/// A spool file to upload.
struct Upload {
    url: String,
    path: PathBuf,
    size: u64,
}

/// Uploader threads (`spawn_blocking`: `floodgate_storage::upload` blocks) fed by a bounded
/// queue.
struct Uploader {
    /// `s3://bucket/prefix/`.
    prefix: String,
    /// Taken (closed) by `settle`: the threads end once the queue is empty.
    queue: Mutex<Option<mpsc::Sender<Upload>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    state: Arc<State>,
}

/// What the uploader threads share with the dump.
#[derive(Default)]
struct State {
    /// Bytes in the spool now, and the most at once.
    held: AtomicU64,
    peak: AtomicU64,
    /// Nothing more is uploaded: an upload failed, or the dump did.
    stop: AtomicBool,
    /// The first upload failure.
    failed: Mutex<Option<DumpError>>,
}

impl State {
    fn hold(&self, bytes: u64) {
        let now = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn release(&self, bytes: u64) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn fail(&self, error: DumpError) {
        if let Ok(mut failed) = self.failed.lock() {
            failed.get_or_insert(error);
        }
        self.stop.store(true, Ordering::Release);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

impl Uploader {
    fn start(prefix: &str, threads: usize) -> Uploader {
        let (tx, rx) = mpsc::channel(QUEUED);
        let rx = Arc::new(Mutex::new(rx));
        let state = Arc::new(State::default());
        let threads = (0..threads)
            .map(|_| {
                let (rx, state) = (rx.clone(), state.clone());
                tokio::task::spawn_blocking(move || upload_queued(&rx, &state))
            })
            .collect();
        Uploader { prefix: prefix.to_string(), queue: Mutex::new(Some(tx)), threads: Mutex::new(threads), state }
    }

    async fn send(&self, rel: &str, path: PathBuf, size: u64) -> Result<()> {
        if self.state.stopped() {
            return Err(DumpError::UploadStopped);
        }
        let upload = Upload { url: format!("{}{rel}", self.prefix), path, size };
        let queue = self.queue.lock().ok().and_then(|q| q.clone());
        match queue {
            // Waits here while the queue is full: the backpressure that bounds the spool.
            Some(queue) if queue.send(upload).await.is_ok() => Ok(()),
            _ => Err(DumpError::UploadStopped),
        }
    }

    async fn settle(&self) -> Result<()> {
        drop(self.queue.lock().ok().and_then(|mut q| q.take()));
        let threads = self.threads.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for thread in threads {
            thread.await.map_err(|e| DumpError::Internal(format!("an uploader failed: {e}")))?;
        }
        match self.state.failed.lock().ok().and_then(|mut f| f.take()) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl Drop for Uploader {
    /// A dump dropped before it settled (its future cancelled) uploads nothing more.
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Release);
    }
}

/// An uploader thread: uploads queued files until the queue is closed and empty; deletes
/// each from the spool, uploaded or not.
fn upload_queued(queue: &Mutex<mpsc::Receiver<Upload>>, state: &State) {
    while let Some(upload) = next(queue) {
        if !state.stopped() {
            if let Err(e) = upload_file(&upload) {
                state.fail(e);
            }
        }
        match std::fs::remove_file(&upload.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => state.fail(io(&upload.path)(e)),
        }
        state.release(upload.size);
    }
}

/// The next queued file; one thread waits on the queue, the others for the lock.
fn next(queue: &Mutex<mpsc::Receiver<Upload>>) -> Option<Upload> {
    queue.lock().ok()?.blocking_recv()
}

fn upload_file(upload: &Upload) -> Result<()> {
    floodgate_storage::upload_file(&upload.url, &upload.path).map_err(|source| DumpError::Upload { source })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_most_held_at_once() {
        let state = State::default();
        state.hold(10);
        state.hold(5);
        state.release(10);
        state.hold(3);
        assert_eq!(state.held.load(Ordering::Relaxed), 8);
        assert_eq!(state.peak.load(Ordering::Relaxed), 15);
    }
}
