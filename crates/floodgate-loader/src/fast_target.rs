//! Global settings a restore changes and always puts back: `--fast-target` relaxes the
//! target's durability on a fresh host, and a target with `local_infile` off has it turned
//! on for the load. The previous values are also written to the checkpoint schema
//! before anything changes, so a process killed with the settings relaxed leaves a record the
//! next `floodgate restore` puts back.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use floodgate_conn::server::user_databases;
use floodgate_conn::{CheckpointSchema, Owner};

use crate::{LoadError, Result};

/// A global setting and the value it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub name: String,
    pub value: String,
}

/// Settings changed by `--fast-target`, to be put back by [`restore_settings`].
#[derive(Debug, Clone, Default)]
pub struct Relaxed {
    pub saved: Vec<Saved>,
}

/// The table in floodgate's schema that holds the settings to put back.
const SAVED: &str = "saved_settings";

/// Refuses a host with user data; then records and relaxes innodb_flush_log_at_trx_commit,
/// sync_binlog and, on MySQL 8.0.21+, the InnoDB redo log. `ours` are databases this restore
/// created (an interrupted run's), which do not count as user data.
pub async fn relax(conn: &mut Conn, schema: &CheckpointSchema, ours: &[String]) -> Result<Relaxed> {
    refuse_user_data(conn, schema, ours).await?;
    put_back_leftovers(conn, schema).await?;
    let mut saved = Vec::new();
    for name in ["innodb_flush_log_at_trx_commit", "sync_binlog"] {
        let value: Option<String> = conn
            .query_first(format!("SELECT CAST(@@GLOBAL.{name} AS CHAR)"))
            .await
            .map_err(LoadError::sql(format!("reading {name}")))?;
        if let Some(value) = value {
            saved.push(Saved { name: name.into(), value });
        }
    }
    let redo: Option<String> = conn
        .query_first(
            "SELECT VARIABLE_VALUE FROM performance_schema.global_status WHERE VARIABLE_NAME = 'Innodb_redo_log_enabled'",
        )
        .await
        .unwrap_or(None);
    if let Some(value) = redo {
        saved.push(Saved { name: "innodb_redo_log".into(), value });
    }
    persist(conn, schema, &saved).await?;
    for s in &saved {
        let relaxed = match s.name.as_str() {
            "innodb_redo_log" if s.value.eq_ignore_ascii_case("ON") => {
                "ALTER INSTANCE DISABLE INNODB REDO_LOG".to_string()
            }
            "innodb_redo_log" => continue,
            name => format!("SET GLOBAL {name} = 0"),
        };
        conn.query_drop(&relaxed).await.map_err(|e| match &e {
            mysql_async::Error::Server(se) if se.code == 1227 => LoadError::Refused(format!(
                "--fast-target: `{relaxed}` needs the SUPER (or SYSTEM_VARIABLES_ADMIN) privilege ({})",
                se.message
            )),
            _ => LoadError::sql(format!("--fast-target: {relaxed}"))(e),
        })?;
    }
    Ok(Relaxed { saved })
}

async fn refuse_user_data(conn: &mut Conn, schema: &CheckpointSchema, ours: &[String]) -> Result<()> {
    let user: Vec<String> = user_databases(conn, schema)
        .await?
        .into_iter()
        .filter(|d| d.holds_data() && !ours.contains(&d.name))
        .map(|d| d.name)
        .collect();
    if user.is_empty() {
        return Ok(());
    }
    Err(LoadError::Refused(format!(
        "--fast-target relaxes the server's durability and is only for a fresh host, but this one holds user \
         data (databases {}). Nothing was changed. Restore without --fast-target.",
        user.join(", ")
    )))
}

async fn persist(conn: &mut Conn, schema: &CheckpointSchema, saved: &[Saved]) -> Result<()> {
    let context = "--fast-target: recording the settings to put back";
    schema.claim(conn).await?;
    let table = schema.table(SAVED);
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {table} (name VARCHAR(64) NOT NULL PRIMARY KEY, value VARCHAR(64) NOT NULL) \
         ENGINE=InnoDB"
    ))
    .await
    .map_err(LoadError::sql(context))?;
    for s in saved {
        conn.exec_drop(format!("INSERT IGNORE INTO {table} (name, value) VALUES (?, ?)"), (&s.name, &s.value))
            .await
            .map_err(LoadError::sql(context))?;
    }
    Ok(())
}

/// Puts every recorded setting back and forgets the record. Also what a later run does when
/// a killed `--fast-target` run left its record behind.
pub async fn restore_settings(conn: &mut Conn, schema: &CheckpointSchema) -> Result<Vec<Saved>> {
    if schema.owner(conn).await? != Owner::Floodgate {
        return Ok(Vec::new()); // a user's database of that name holds no settings of ours
    }
    let exists: Option<u8> = conn
        .exec_first(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (schema.name(), SAVED),
        )
        .await
        .map_err(LoadError::sql("reading saved settings"))?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String)> = conn
        .query(format!("SELECT name, value FROM {}", schema.table(SAVED)))
        .await
        .map_err(LoadError::sql("reading saved settings"))?;
    let saved: Vec<Saved> = rows.into_iter().map(|(name, value)| Saved { name, value }).collect();
    apply_saved(conn, &saved).await?;
    conn.query_drop(format!("DROP TABLE {}", schema.table(SAVED)))
        .await
        .map_err(LoadError::sql("forgetting saved settings"))?;
    crate::checkpoint::drop_schema_if_unused(conn, schema).await?;
    Ok(saved)
}

/// Turns `local_infile` on for a restore that needs LOAD DATA LOCAL, when it is off (MySQL
/// 8's default, and many managed services'), recording the old value first as `--fast-target`
/// records its settings, so it is put back after the restore, and by the next run after a
/// kill -9. Returns true when it was turned on. An account that may not (no SUPER or
/// SYSTEM_VARIABLES_ADMIN) is refused with what to ask for, and nothing is left recorded.
pub async fn enable_local_infile(conn: &mut Conn, schema: &CheckpointSchema) -> Result<LocalInfile> {
    let on: Option<u8> =
        conn.query_first("SELECT @@GLOBAL.local_infile").await.map_err(LoadError::sql("reading local_infile"))?;
    if on == Some(1) {
        return Ok(LocalInfile::On);
    }
    persist(conn, schema, &[Saved { name: "local_infile".into(), value: "0".into() }]).await?;
    match conn.query_drop("SET GLOBAL local_infile = 1").await {
        Ok(()) => Ok(LocalInfile::TurnedOn),
        Err(e) => {
            // Nothing changed: forget the record (putting it back would need the same privilege).
            let _ = forget(conn, schema, "local_infile").await;
            match &e {
                mysql_async::Error::Server(se) if matches!(se.code, 1227 | 1229) => {
                    Ok(LocalInfile::Forbidden(se.message.clone()))
                }
                _ => Err(LoadError::sql("SET GLOBAL local_infile = 1")(e)),
            }
        }
    }
}

/// What [`enable_local_infile`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalInfile {
    /// It was on already.
    On,
    /// It was off and is on now, recorded to be put back.
    TurnedOn,
    /// It is off and this account may not turn it on (the server's refusal).
    Forbidden(String),
}

/// Drops the record of setting `name`; the table and schema go when nothing else is in them.
async fn forget(conn: &mut Conn, schema: &CheckpointSchema, name: &str) -> Result<()> {
    let table = schema.table(SAVED);
    let context = "forgetting a saved setting";
    conn.exec_drop(format!("DELETE FROM {table} WHERE name = ?"), (name,)).await.map_err(LoadError::sql(context))?;
    let left: Option<u64> =
        conn.query_first(format!("SELECT COUNT(*) FROM {table}")).await.map_err(LoadError::sql(context))?;
    if left == Some(0) {
        conn.query_drop(format!("DROP TABLE {table}")).await.map_err(LoadError::sql(context))?;
        crate::checkpoint::drop_schema_if_unused(conn, schema).await?;
    }
    Ok(())
}

async fn apply_saved(conn: &mut Conn, saved: &[Saved]) -> Result<()> {
    for s in saved {
        let statement = match s.name.as_str() {
            "innodb_redo_log" if s.value.eq_ignore_ascii_case("ON") => {
                "ALTER INSTANCE ENABLE INNODB REDO_LOG".to_string()
            }
            "innodb_redo_log" => continue,
            "innodb_flush_log_at_trx_commit" | "sync_binlog" | "local_infile" => {
                let value: u64 = s.value.parse().map_err(|_| {
                    LoadError::Refused(format!("saved setting {} = {:?} is not a number", s.name, s.value))
                })?;
                format!("SET GLOBAL {} = {value}", s.name)
            }
            other => return Err(LoadError::Refused(format!("unknown saved setting {other}"))),
        };
        conn.query_drop(&statement).await.map_err(LoadError::sql(format!("putting back: {statement}")))?;
    }
    Ok(())
}

async fn put_back_leftovers(conn: &mut Conn, schema: &CheckpointSchema) -> Result<()> {
    let put_back = restore_settings(conn, schema).await?;
    if !put_back.is_empty() {
        tracing::warn!("an earlier --fast-target run was killed before putting its settings back; they are back now");
    }
    Ok(())
}

/// Connects and relaxes the target (see [`relax`]). Databases an unfinished restore created
/// are not user data.
pub async fn relax_target(target: &crate::ConnectOptions, schema: &CheckpointSchema) -> Result<Relaxed> {
    let mut conn = floodgate_conn::connect(target, &[]).await?;
    let ours: Vec<String> = match schema.owner(&mut conn).await? {
        // Without restore checkpoints the query fails: then no database is floodgate's.
        Owner::Floodgate => conn
            .query(format!("SELECT DISTINCT CAST(db AS CHAR) FROM {} WHERE kind = 'database'", schema.table("steps")))
            .await
            .unwrap_or_default(),
        Owner::Absent | Owner::Someone(_) => Vec::new(),
    };
    let relaxed = relax(&mut conn, schema, &ours).await;
    let _ = conn.disconnect().await;
    relaxed
}

/// Connects (waiting up to `wait` for a target that is restarting) and puts the settings back.
pub async fn put_back(
    target: &crate::ConnectOptions,
    schema: &CheckpointSchema,
    wait: std::time::Duration,
) -> Result<Vec<Saved>> {
    let mut conn = floodgate_conn::retry::reconnect(target, &[], wait).await?;
    let saved = restore_settings(&mut conn, schema).await;
    let _ = conn.disconnect().await;
    saved
}
