//! The target, before anything changes: connect and set up the load session (refusing a
//! missing privilege with advice), check LOAD DATA LOCAL is allowed, and refuse to replace
//! what the target already holds.

use std::collections::BTreeSet;

use floodgate_conn::server::{load_session, ServerInfo};
use floodgate_conn::{ConnError, ConnectOptions};
use floodgate_format::ident::{qualified, quote};
use floodgate_format::{RestorePlan, SessionSettings};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::checkpoint::{self, step, Checkpoints};
use crate::{LoadError, Result};

/// Connects, reads the server version, and runs the load session once to surface missing
/// privileges before anything changes. Returns the connection, the server and the session.
pub(crate) async fn open(
    target: &ConnectOptions,
    binlog: bool,
    settings: &SessionSettings,
) -> Result<(Conn, ServerInfo, Vec<String>)> {
    let mut conn = floodgate_conn::connect(target, &[]).await?;
    let server = ServerInfo::read(&mut conn).await?;
    let init = load_session(settings, binlog, &server);
    for s in &init {
        conn.query_drop(s.as_str()).await.map_err(|e| match ConnError::session(s, e) {
            ConnError::Refused(why) => {
                LoadError::Refused(format!("{why}; grant it, or pass --binlog to keep binary logging"))
            }
            other => other.into(),
        })?;
    }
    Ok((conn, server, init))
}

/// The largest packet new connections to the target accept: no statement larger than this
/// can run there, so none is held in memory either.
pub(crate) async fn max_allowed_packet(conn: &mut Conn) -> Result<u64> {
    let packet: Option<u64> = conn
        .query_first("SELECT @@GLOBAL.max_allowed_packet")
        .await
        .map_err(LoadError::sql("reading max_allowed_packet"))?;
    Ok(packet.unwrap_or(u64::MAX))
}

/// Refuses a target that will not take LOAD DATA LOCAL INFILE, which every source but a
/// directory of plain INSERT files needs.
pub(crate) async fn check_local_infile(conn: &mut Conn) -> Result<()> {
    let on: Option<u8> =
        conn.query_first("SELECT @@GLOBAL.local_infile").await.map_err(LoadError::sql("reading local_infile"))?;
    if on != Some(1) {
        return Err(LoadError::Refused(
            "this backup loads with LOAD DATA LOCAL INFILE, which the target refuses (local_infile = OFF). \
             Enable it with SET GLOBAL local_infile = 1 and run again; nothing was changed."
                .into(),
        ));
    }
    Ok(())
}

/// The checkpoint schema is floodgate's own: a backup that holds a database of that name
/// cannot be restored with checkpoints.
pub(crate) fn refuse_own_schema<'a>(mut databases: impl Iterator<Item = &'a str>) -> Result<()> {
    if databases.any(|d| d == checkpoint::SCHEMA) {
        return Err(LoadError::Refused(format!(
            "the backup holds a database named `{}`, the name of floodgate's checkpoint schema; \
             restore it with --exclude or --database to leave it out",
            checkpoint::SCHEMA
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
