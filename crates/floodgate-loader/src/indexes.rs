//! Deferred index builds, shared by every restore path: a table's ALTERs run on their own
//! connection as soon as its last chunk commits, while other tables still load.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use floodgate_format::ident::qualified;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::mpsc;

use crate::report::TableReport;
use crate::{connect, ConnectOptions, LoadError, Progress, Result};

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
                    if conn.is_none() {
                        conn = Some(connect(&b.target, &b.init).await?);
                    }
                    if let Some(c) = conn.as_mut() {
                        build(c, &job).await?;
                    }
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

async fn build(conn: &mut Conn, job: &IndexJob) -> Result<()> {
    let name = qualified(&job.db, &job.name);
    for alter in &job.alters {
        tracing::debug!(table = %name, "{alter}");
        conn.query_drop(alter.as_str()).await.map_err(LoadError::sql(format!("adding deferred indexes to {name}")))?;
    }
    Ok(())
}
