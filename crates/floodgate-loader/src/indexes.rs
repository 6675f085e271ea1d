//! What happens to a table once its data is complete: a table whose engine cannot roll a
//! chunk back is recorded as loaded (so a resumed run trusts its chunk checkpoints), then
//! its deferred indexes are built, on builder connections of their own, while other tables
//! still load.

use std::sync::Arc;
use std::time::Instant;

use floodgate_format::ident::qualified;
use floodgate_pipeline::Progress;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::mpsc;

use crate::checkpoint::{self, step};
use crate::session::Session;
use crate::tables::Complete;
use crate::{LoadError, Result};

/// Spawns `count` builders into `set`; they run until the registry closes its side of
/// `complete` ([`crate::tables::Tables::close`]).
pub(crate) fn spawn(
    set: &mut tokio::task::JoinSet<Result<()>>,
    count: usize,
    session: &Arc<Session>,
    complete: mpsc::UnboundedReceiver<Complete>,
) {
    let complete = Arc::new(tokio::sync::Mutex::new(complete));
    for _ in 0..count.max(1) {
        let (session, complete) = (session.clone(), complete.clone());
        set.spawn(async move {
            let mut conn: Option<Conn> = None;
            loop {
                let next = complete.lock().await.recv().await;
                let Some(table) = next else { break };
                finish_table(&session, &mut conn, table).await?;
            }
            Ok(())
        });
    }
}

async fn finish_table(session: &Session, slot: &mut Option<Conn>, table: Complete) -> Result<()> {
    let started = Instant::now();
    if !is_transactional(session, slot, &table).await? {
        let conn = connection(session, slot).await?;
        checkpoint::record_step(conn, session.ledger(), (step::LOADED, &table.db, &table.name), None).await?;
    }
    if !table.alters.is_empty() {
        build_with_retries(session, slot, &table).await?;
    }
    session.tables.index_seconds(table.table, started.elapsed().as_secs_f64())?;
    Progress::add(&session.progress.tables_done, 1);
    Ok(())
}

async fn connection<'c>(session: &Session, slot: &'c mut Option<Conn>) -> Result<&'c mut Conn> {
    Ok(match slot {
        Some(conn) => conn,
        None => slot.insert(session.connect().await?),
    })
}

/// Whether the table's engine rolls back, looked up if no one found out yet.
async fn is_transactional(session: &Session, slot: &mut Option<Conn>, table: &Complete) -> Result<bool> {
    if let Some(known) = table.transactional {
        return Ok(known);
    }
    let conn = connection(session, slot).await?;
    let found = crate::resume::tables_on_target(conn, &[(table.db.clone(), table.name.clone())]).await?;
    Ok(found.values().next().is_none_or(|t| t.transactional))
}

/// Builds a table's indexes, reconnecting after a lost connection (adding an index that an
/// earlier attempt added is "already exists", which counts as done), then records them.
async fn build_with_retries(session: &Session, slot: &mut Option<Conn>, table: &Complete) -> Result<()> {
    let what = format!("the indexes of {}", qualified(&table.db, &table.name));
    let mut attempt = 0;
    loop {
        let conn = connection(session, slot).await?;
        let error = match build(conn, table, session.checkpoints.is_resume() || attempt > 0).await {
            Ok(()) => {
                return checkpoint::record_step(conn, session.ledger(), (step::INDEXES, &table.db, &table.name), None)
                    .await
            }
            Err(e) => e,
        };
        if floodgate_conn::retry::POLICY.before_retry(error, attempt, &what).await?
            == floodgate_conn::Transient::Reconnect
        {
            *slot = None;
        }
        attempt += 1;
    }
}

async fn build(conn: &mut Conn, table: &Complete, may_exist: bool) -> Result<()> {
    let name = qualified(&table.db, &table.name);
    for alter in &table.alters {
        tracing::debug!(table = %name, "{alter}");
        match crate::failpoint::during("index.build", conn.query_drop(alter.as_str())).await {
            Ok(()) => {}
            Err(e) if may_exist && checkpoint::already_exists(&e) => {
                tracing::info!(table = %name, "deferred index already built by an earlier run");
            }
            Err(e) => return Err(LoadError::sql(format!("adding deferred indexes to {name}"))(e)),
        }
    }
    Ok(())
}
