//! The one loader worker: N of them pull chunks from the queue, each on its own connection,
//! and load each chunk in one transaction, retrying transient failures under the one retry
//! policy. After a lost connection the chunk's checkpoint row says whether its COMMIT went
//! through before the connection did, so a chunk is never loaded twice.

use std::sync::Arc;

use floodgate_conn::Transient;
use floodgate_pipeline::Progress;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::checkpoint;
use crate::convert::Outcome;
use crate::job::{Job, Ready};
use crate::queue::ChunkQueue;
use crate::session::Session;
use crate::tables::TableId;
use crate::Result;

/// Loads chunks until the queue is closed and empty. A failure stops the queue, so the other
/// workers and the source stop too; the failure is what the restore reports.
pub(crate) async fn run(session: Arc<Session>, queue: Arc<ChunkQueue<Job>>) -> Result<()> {
    let result = work(&session, &queue).await;
    if result.is_err() {
        queue.stop();
    }
    result
}

async fn work(session: &Session, queue: &ChunkQueue<Job>) -> Result<()> {
    let mut conn: Option<Conn> = None;
    while let Some((table, job)) = queue.pop().await {
        let Job { number, progress_bytes, body } = job;
        session.tables.wait_created(table).await?;
        session.throttle.before_chunk(progress_bytes).await;
        session.tables.loading(table)?;
        let ready = body.ready(session, table, open(session, &mut conn).await?).await?;
        let outcome = load_with_retries(session, &mut conn, (table, number), &ready).await?;
        let progress = &session.progress;
        Progress::add(&progress.bytes_done, progress_bytes);
        crate::failpoint::hit("data.chunk").await;
        let (done, total) = (Progress::get(&progress.bytes_done), Progress::get(&progress.bytes_total));
        crate::failpoint::passed("data.late", done, total).await;
        Progress::add(&progress.rows_done, outcome.rows);
        Progress::add(&progress.chunks_done, 1);
        session.tables.committed(table, &outcome)?;
        queue.finish(table);
    }
    Ok(())
}

/// The worker's connection, opened (or reopened) when needed.
async fn open<'c>(session: &Session, slot: &'c mut Option<Conn>) -> Result<&'c mut Conn> {
    Ok(match slot {
        Some(conn) => conn,
        None => slot.insert(session.connect().await?),
    })
}

/// Loads a chunk, retrying transient failures.
async fn load_with_retries(
    session: &Session,
    slot: &mut Option<Conn>,
    (table, number): (TableId, u64),
    ready: &Ready,
) -> Result<Outcome> {
    let (db, name) = session.tables.name(table)?;
    let what = format!("{} chunk {number}", floodgate_format::ident::qualified(&db, &name));
    let mut attempt = 0;
    loop {
        let conn = open(session, slot).await?;
        let error = match ready.load(session, (table, number), conn).await {
            Ok(outcome) => return Ok(outcome),
            Err(e) => e,
        };
        match floodgate_conn::retry::POLICY.before_retry(error, attempt, &what).await? {
            Transient::Retry => {
                let _ = conn.query_drop("ROLLBACK").await;
            }
            Transient::Reconnect => {
                let conn = slot.insert(session.connect().await?);
                if let Some(rows) = checkpoint::committed(conn, session.ledger(), &db, &name, number).await? {
                    return Ok(Outcome { rows, inserts: 0, loads: 0 });
                }
            }
        }
        attempt += 1;
    }
}
