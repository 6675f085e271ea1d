//! The runtime object requests run on, and the bridge that lets synchronous callers wait
//! for them from any thread (a rayon worker, a pipeline thread, or a thread of another tokio
//! runtime, where `Runtime::block_on` would panic).

use std::future::Future;
use std::sync::OnceLock;

use crate::{Result, StorageError, StorageErrorKind};

static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("floodgate-s3")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| StorageError::new(StorageErrorKind::Unreachable, "object storage", format!("no runtime: {e}")))
}

/// Runs `task` on the storage runtime and waits for its answer.
pub(crate) fn block_on<T: Send + 'static>(task: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
    let handle = spawn(task)?;
    wait(handle)
}

/// Starts `task` on the storage runtime.
pub(crate) fn spawn<T: Send + 'static>(
    task: impl Future<Output = T> + Send + 'static,
) -> Result<tokio::task::JoinHandle<T>> {
    Ok(runtime()?.spawn(task))
}

/// Waits for a task started with [`spawn`], blocking this thread.
pub(crate) fn wait<T>(handle: tokio::task::JoinHandle<Result<T>>) -> Result<T> {
    futures::executor::block_on(handle).map_err(|e| {
        StorageError::new(StorageErrorKind::Unreachable, "object storage", format!("a request task failed: {e}"))
    })?
}
