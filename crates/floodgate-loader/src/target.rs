//! The target, before anything changes: connect and set up the load session (refusing a
//! missing privilege with advice), check LOAD DATA LOCAL is allowed, and refuse to replace
//! what the target already holds.

use std::collections::BTreeSet;

use floodgate_conn::server::{load_session, ServerInfo};
use floodgate_conn::{CheckpointSchema, ConnError, ConnectOptions};
use floodgate_format::ident::{qualified, quote};
use floodgate_format::{RestorePlan, SessionSettings};
use floodgate_pipeline::Progress;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::checkpoint::{step, Checkpoints};
use crate::session::RestoreOptions;
use crate::{LoadError, Result};

/// Connects, reads the server version, refuses a target that is not meant to be written to,
/// and runs the load session once to surface missing privileges before anything changes.
/// Returns the connection, the server and the session.
pub(crate) async fn open(
    target: &ConnectOptions,
    options: &RestoreOptions,
    settings: &SessionSettings,
    progress: &Progress,
) -> Result<(Conn, ServerInfo, Vec<String>)> {
    let mut conn = floodgate_conn::connect(target, &[]).await?;
    let server = ServerInfo::read(&mut conn).await?;
    refuse_unfit(&mut conn, &server, options.allow_replica, target).await?;
    let mut init = load_session(settings, options.binlog, &server);
    let mut kept = Vec::with_capacity(init.len());
    for s in init.drain(..) {
        match conn.query_drop(s.as_str()).await.map_err(|e| ConnError::session(&s, e)) {
            Ok(()) => kept.push(s),
            // A managed service's admin account may not stop binary logging: the restore goes
            // on, logged (replicas receive it too), and says so.
            Err(ConnError::Refused(why)) if s.contains("sql_log_bin") => progress.notice(format!(
                "binary logging stays on for this restore: {why}. Its rows are written to the binary log (and \
                 reach any replica); pass --binlog to say that is meant"
            )),
            Err(e) => return Err(e.into()),
        }
    }
    Ok((conn, server, kept))
}

/// A read-only server, or one replicating from another (unless `allow_replica`), is refused
/// before anything is written: restoring into it would fight its owner or its replication.
async fn refuse_unfit(
    conn: &mut Conn,
    server: &ServerInfo,
    allow_replica: bool,
    target: &ConnectOptions,
) -> Result<()> {
    if server.read_only {
        return Err(LoadError::Refused(format!(
            "{} is read-only (read_only or super_read_only is ON): it is not meant to be written to. Nothing was \
             changed. Restore into a writable server, or turn read_only off first if this one is meant to take it.",
            target.describe()
        )));
    }
    match server.is_replica(conn).await {
        Some(true) if !allow_replica => Err(LoadError::Refused(format!(
            "{} is a replica (its replication threads are running): rows restored into it would conflict with what \
             it replicates. Nothing was changed. Restore into its primary, stop its replication, or pass \
             --allow-replica if you mean it.",
            target.describe()
        ))),
        Some(_) => Ok(()),
        None => {
            tracing::warn!("cannot tell whether the target is a replica (this account may not see its status)");
            Ok(())
        }
    }
}

/// The checkpoint schema is floodgate's own: a backup that holds (or `--into` names) a
/// database of that name cannot be restored with it.
pub(crate) fn refuse_own_schema<'a>(
    schema: &CheckpointSchema,
    mut databases: impl Iterator<Item = &'a str>,
) -> Result<()> {
    if databases.any(|d| d == schema.name()) {
        return Err(LoadError::Refused(format!(
            "the backup holds a database named `{}`, the name of floodgate's checkpoint schema; keep the \
             checkpoints elsewhere with --checkpoint-schema NAME, or leave that database out with --database; \
             nothing was changed",
            schema.name()
        )));
    }
    Ok(())
}

/// What already exists on the target that a planned backup also defines.
#[derive(Debug, Default)]
pub(crate) struct Existing {
    pub databases: BTreeSet<String>,
    /// (db, name, is_view) the backup also defines; dropped first under --overwrite.
    pub conflicts: Vec<(String, String, bool)>,
}

/// Refuses a target that holds objects the backup would overwrite, unless `overwrite`, and
/// lists every one of them. Objects an interrupted run of this restore created are
/// floodgate's, not conflicts.
pub(crate) async fn existing(
    conn: &mut Conn,
    plan: &RestorePlan,
    overwrite: bool,
    checkpoints: &Checkpoints,
) -> Result<Existing> {
    let mut existing = Existing::default();
    let mut problems = Vec::new();
    for db in &plan.databases {
        let found: Option<String> = conn
            .exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (&db.name,))
            .await
            .map_err(LoadError::sql("reading the target's databases"))?;
        if found.is_none() {
            continue;
        }
        existing.databases.insert(db.name.clone());
        let objects: Vec<(String, String)> = conn
            .exec("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (&db.name,))
            .await
            .map_err(LoadError::sql("reading the target's tables"))?;
        for (name, kind) in objects {
            let is_view = kind == "VIEW";
            let wanted = db.tables.iter().any(|t| t.name == name) || db.views.iter().any(|v| v.name == name);
            let ours = checkpoints.is_resume()
                && (checkpoints.has(step::TABLE, &db.name, &name) || (is_view && post_started(checkpoints, &db.name)));
            if !wanted || ours {
                continue;
            }
            if !overwrite {
                let what = if is_view { "view".to_string() } else { describe_table(conn, &db.name, &name).await? };
                problems.push(format!("{} ({what})", qualified(&db.name, &name)));
            }
            existing.conflicts.push((db.name.clone(), name, is_view));
        }
        let routines: Option<u64> = conn
            .exec_first(
                "SELECT (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?) + \
                 (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?)",
                (&db.name, &db.name),
            )
            .await
            .map_err(LoadError::sql("reading the target's routines"))?;
        let ours = checkpoints.is_resume() && post_started(checkpoints, &db.name);
        if !overwrite && !ours && !db.post.is_empty() && routines.unwrap_or(0) > 0 {
            problems.push(format!("{} (has routines or events the backup's may replace)", quote(&db.name)));
        }
    }
    if !problems.is_empty() {
        let shown: Vec<_> = problems.iter().take(10).cloned().collect();
        let more = problems.len().saturating_sub(10);
        return Err(LoadError::Refused(format!(
            "the target already has {} object(s) this backup would replace: {}{}. Nothing was changed. \
             Restore into a fresh server, drop them, or pass --overwrite to replace them.",
            problems.len(),
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        )));
    }
    Ok(existing)
}

/// An interrupted run reached the post-data phase of `db`: views and routines there are its.
fn post_started(checkpoints: &Checkpoints, db: &str) -> bool {
    checkpoints.steps_of(step::POST).any(|(d, _)| d == db)
}

async fn describe_table(conn: &mut Conn, db: &str, table: &str) -> Result<String> {
    let any: Option<u8> = conn
        .query_first(format!("SELECT 1 FROM {} LIMIT 1", qualified(db, table)))
        .await
        .map_err(LoadError::sql(format!("checking whether {} is empty", qualified(db, table))))?;
    Ok(if any.is_some() { "exists and holds rows".into() } else { "exists, empty".into() })
}
