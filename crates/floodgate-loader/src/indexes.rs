//! Deferred index builds, shared by every restore path: a table's ALTERs run on their own
//! connection as soon as its last chunk commits, while other tables still load.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use floodgate_format::ident::qualified;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::mpsc;

use crate::checkpoint::{self, step};
use crate::report::TableReport;
use crate::{ConnectOptions, LoadError, Progress, Result};

/// A table whose data is complete.
#[derive(Debug)]
pub struct IndexJob {
    /// Index into the restore's table reports.
    pub table: usize,
    pub db: String,
    pub name: String,
    pub alters: Vec<String>,
}

/// How builder connections are opened.
#[derive(Clone)]
pub struct Builders {
    pub target: ConnectOptions,
    pub init: Vec<String>,
    pub progress: Arc<Progress>,
    pub reports: Arc<Mutex<Vec<TableReport>>>,
    /// How long to wait for a target that went away.
    pub reconnect_wait: std::time::Duration,
    /// Continuing an interrupted restore: an index may already exist.
    pub resuming: bool,
    /// The backup's identity in the checkpoints.
    pub backup: String,
}

/// Spawns `count` builders into `set`; they run until every sender of `jobs` is dropped.
pub fn spawn(
    set: &mut tokio::task::JoinSet<Result<()>>,
    count: usize,
    builders: Builders,
    jobs: mpsc::UnboundedReceiver<IndexJob>,
) {
    let jobs = Arc::new(tokio::sync::Mutex::new(jobs));
    for _ in 0..count.max(1) {
        let (b, jobs) = (builders.clone(), jobs.clone());
        set.spawn(async move {
            let mut conn: Option<Conn> = None;
            loop {
                let next = jobs.lock().await.recv().await;
                let Some(job) = next else { break };
                let started = Instant::now();
                if !job.alters.is_empty() {
                    build_with_retries(&b, &mut conn, &job).await?;
                }
                if let Ok(mut r) = b.reports.lock() {
                    if let Some(r) = r.get_mut(job.table) {
                        r.index_seconds = started.elapsed().as_secs_f64();
                    }
                }
                Progress::add(&b.progress.tables_done, 1);
            }
            Ok(())
        });
    }
}

/// Builds a table's indexes, reconnecting after a lost connection (adding an index that an
/// earlier attempt added is "already exists", which counts as done), then records them.
async fn build_with_retries(b: &Builders, slot: &mut Option<Conn>, job: &IndexJob) -> Result<()> {
    let what = format!("the indexes of {}", qualified(&job.db, &job.name));
    let mut attempt = 0;
    loop {
        let conn = match slot {
            Some(conn) => conn,
            None => slot.insert(crate::retry::reconnect(&b.target, &b.init, b.reconnect_wait).await?),
        };
        let error = match build(conn, job, b.resuming || attempt > 0).await {
            Ok(()) => return checkpoint::record_step(conn, &b.backup, (step::INDEXES, &job.db, &job.name), None).await,
            Err(e) => e,
        };
        if crate::retry::before_retry(error, attempt, &what).await? == crate::error::Transient::Reconnect {
            *slot = None;
        }
        attempt += 1;
    }
}

async fn build(conn: &mut Conn, job: &IndexJob, may_exist: bool) -> Result<()> {
    let name = qualified(&job.db, &job.name);
    for alter in &job.alters {
        tracing::debug!(table = %name, "{alter}");
        match crate::failpoint::during("index.build", conn.query_drop(alter.as_str())).await {
            Ok(()) => {}
            Err(e) if may_exist && checkpoint::already_exists(&e) => {
                tracing::info!(table = %name, "deferred index already built by an earlier run");
            }
            Err(e) => return Err(LoadError::Sql { context: format!("adding deferred indexes to {name}"), source: e }),
        }
    }
    Ok(())
}
