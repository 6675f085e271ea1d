//! Checkpoints: what a restore has done, kept on the target in the `floodgate` schema, so a
//! restore stopped at any instant (kill -9, lost connection, target restart, Ctrl-C) resumes
//! exactly.
//!
//! * A chunk's row in `floodgate.chunks` is inserted in the chunk's own transaction: after a
//!   crash the chunk is either loaded and recorded, or neither.
//! * DDL commits on its own, so `floodgate.steps` records an intent *before* each CREATE of a
//!   database or table (the object is floodgate's if it exists later) and a completion *after*
//!   index builds and post-data statements; a re-run tolerates "already exists" for the one
//!   statement that may have run without being recorded.
//! * `floodgate.restore` holds the identity of the backup being restored; a different backup
//!   against the same checkpoints is refused.
//! * `floodgate.runs` fences off earlier runs: each run writes its own token there before it
//!   reads anything, and a chunk commits only while the token is still its run's (the
//!   checkpoint row reads it under a shared lock). Taking over waits for the commits an
//!   earlier run has in flight (a killed client's last COMMIT may still be executing on the
//!   server), and any later one fails; so what a run reads at start stays true.

use std::collections::{HashMap, HashSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params};

use floodgate_format::ident::{qualified, quote};

use floodgate_conn::{CheckpointSchema, Owner};

use crate::{LoadError, Result};

/// Where a restore's checkpoints are: floodgate's schema, and the backup's identity in it.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// floodgate's schema on the target.
    pub schema: CheckpointSchema,
    /// The backup's identity.
    pub backup: String,
    /// This run's token in `floodgate.runs`: its chunks commit only while it is there.
    pub token: String,
}

impl Ledger {
    /// One of the checkpoint tables, quoted.
    fn table(&self, name: &str) -> String {
        self.schema.table(name)
    }
}

/// `floodgate.runs`: which run owns each backup's restore (see the module's fence).
const RUNS: &str = "CREATE TABLE IF NOT EXISTS {schema}.runs (
       backup VARBINARY(128) NOT NULL PRIMARY KEY,
       token VARBINARY(32) NOT NULL
     ) ENGINE=InnoDB";

const TABLES: [&str; 4] = [
    RUNS,
    "CREATE TABLE IF NOT EXISTS {schema}.restore (
       backup VARBINARY(128) NOT NULL PRIMARY KEY,
       source TEXT NOT NULL,
       tool_version VARCHAR(32) NOT NULL,
       started_at DATETIME(6) NOT NULL,
       completed_at DATETIME(6) NULL
     ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS {schema}.chunks (
       backup VARBINARY(128) NOT NULL,
       db VARBINARY(256) NOT NULL,
       tbl VARBINARY(256) NOT NULL,
       chunk BIGINT UNSIGNED NOT NULL,
       rows_loaded BIGINT UNSIGNED NOT NULL,
       content VARBINARY(64) NULL,
       loaded_at DATETIME(6) NOT NULL,
       PRIMARY KEY (backup, db, tbl, chunk)
     ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS {schema}.steps (
       backup VARBINARY(128) NOT NULL,
       kind VARBINARY(16) NOT NULL,
       db VARBINARY(256) NOT NULL,
       name VARBINARY(512) NOT NULL,
       detail VARBINARY(128) NULL,
       done_at DATETIME(6) NOT NULL,
       PRIMARY KEY (backup, kind, db, name)
     ) ENGINE=InnoDB",
];

/// Kinds of step.
pub mod step {
    /// floodgate creates (or created) this database.
    pub const DATABASE: &str = "database";
    /// floodgate creates (or created) this table; the detail is its CREATE's digest.
    pub const TABLE: &str = "table";
    /// Every chunk of this table is loaded (what counts for non-transactional engines).
    pub const LOADED: &str = "loaded";
    /// This table's deferred indexes exist.
    pub const INDEXES: &str = "indexes";
    /// A post-data statement (name: `file#n`) ran.
    pub const POST: &str = "post";
    /// A statement that changes the server's global state ran (name: its byte offset in the
    /// dump, detail: its digest): it never runs twice.
    pub const GLOBAL: &str = "global";
}

/// A chunk the checkpoints record as committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneChunk {
    /// Rows it loaded.
    pub rows: u64,
    /// Digest of its content, where the source has no per-chunk hash of its own.
    pub content: Option<String>,
}

/// A restore recorded on the target.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub backup: String,
    pub source: String,
    pub started_at: String,
    pub completed: bool,
}

/// Another restore that is unfinished on the same target, and the tables it created.
#[derive(Debug, Clone)]
pub struct Unfinished {
    pub restore: Recorded,
    tables: HashSet<(String, String)>,
}

/// A `floodgate.chunks` row: db, tbl, chunk, rows_loaded, content.
type ChunkRow = (Vec<u8>, Vec<u8>, u64, u64, Option<Vec<u8>>);
/// A `floodgate.steps` row: backup, kind, db, name, detail.
type StepRow = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// What the target's checkpoints said about this backup when this run started. Immutable:
/// writes go to the server only, and every decision is taken against the state at start.
#[derive(Debug, Default)]
pub struct Checkpoints {
    /// Where this backup's checkpoints are.
    pub ledger: Ledger,
    /// The restore of this backup this run continues (None: a fresh start). A complete one
    /// kept with `--keep-checkpoints` is continued too: it finds everything done.
    pub resumed: Option<Recorded>,
    chunks: HashMap<(String, String, u64), DoneChunk>,
    steps: HashMap<(String, String, String), Option<String>>,
    /// Unfinished restores of other backups.
    others: Vec<Unfinished>,
}

impl Checkpoints {
    /// Reads the checkpoints of `backup` (and which other restores are unfinished), once this
    /// run has taken the restore of `backup` over from any earlier run (the fence): nothing
    /// an earlier run still has in flight can change them after they are read.
    pub async fn read(conn: &mut Conn, ledger: Ledger) -> Result<Checkpoints> {
        let backup = ledger.backup.clone();
        let mut cp = Checkpoints { ledger, ..Default::default() };
        if !schema_exists(conn, &cp.ledger.schema).await? {
            return Ok(cp);
        }
        take_over(conn, &cp.ledger).await?;
        let restores: Vec<(Vec<u8>, String, String, Option<String>)> = conn
            .query(format!(
                "SELECT backup, source, CAST(started_at AS CHAR), CAST(completed_at AS CHAR) FROM {}",
                cp.ledger.table("restore")
            ))
            .await
            .map_err(LoadError::sql("reading the checkpoints"))?;
        for (id, source, started_at, completed) in restores {
            let recorded = Recorded { backup: text(id), source, started_at, completed: completed.is_some() };
            if recorded.backup == backup {
                cp.resumed = Some(recorded);
            } else if !recorded.completed {
                cp.others.push(Unfinished { restore: recorded, tables: HashSet::new() });
            }
        }
        let chunks: Vec<ChunkRow> = conn
            .exec(
                format!(
                    "SELECT db, tbl, chunk, rows_loaded, content FROM {} WHERE backup = ?",
                    cp.ledger.table("chunks")
                ),
                (&backup,),
            )
            .await
            .map_err(LoadError::sql("reading the checkpoints"))?;
        for (db, tbl, chunk, rows, content) in chunks {
            cp.chunks.insert((text(db), text(tbl), chunk), DoneChunk { rows, content: content.map(text) });
        }
        let steps: Vec<StepRow> = conn
            .query(format!("SELECT backup, kind, db, name, detail FROM {}", cp.ledger.table("steps")))
            .await
            .map_err(LoadError::sql("reading the checkpoints"))?;
        for (id, kind, db, name, detail) in steps {
            let (id, kind, db, name) = (text(id), text(kind), text(db), text(name));
            if id == backup {
                cp.steps.insert((kind, db, name), detail.map(text));
            } else if kind == step::TABLE {
                if let Some(o) = cp.others.iter_mut().find(|o| o.restore.backup == id) {
                    o.tables.insert((db, name));
                }
            }
        }
        Ok(cp)
    }

    /// True when this run continues an earlier one.
    pub fn is_resume(&self) -> bool {
        self.resumed.is_some()
    }

    /// The unfinished restore of another backup that created `db`.`table`, if any.
    pub fn claimed_by_other(&self, db: &str, table: &str) -> Option<&Recorded> {
        let key = (db.to_string(), table.to_string());
        self.others.iter().find(|o| o.tables.contains(&key)).map(|o| &o.restore)
    }

    /// Refuses when an unfinished restore of a different backup created any of `tables`:
    /// resuming it with this backup would mix two backups' rows.
    pub fn refuse_other_restores<'a>(&self, tables: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<()> {
        for (db, table) in tables {
            if let Some(other) = self.claimed_by_other(db, table) {
                return Err(different_backup(other, &qualified(db, table)));
            }
        }
        Ok(())
    }

    /// The chunk, if the checkpoints record it committed.
    pub fn chunk(&self, db: &str, table: &str, chunk: u64) -> Option<&DoneChunk> {
        self.chunks.get(&(db.to_string(), table.to_string(), chunk))
    }

    /// Committed chunks of one table and the rows they hold.
    pub fn table_chunks(&self, db: &str, table: &str) -> (usize, u64) {
        self.chunks
            .iter()
            .filter(|((d, t, _), _)| d == db && t == table)
            .fold((0, 0), |(n, rows), (_, c)| (n + 1, rows + c.rows))
    }

    /// All committed chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The step, if recorded: `Some(detail)`.
    pub fn step(&self, kind: &str, db: &str, name: &str) -> Option<&Option<String>> {
        self.steps.get(&(kind.to_string(), db.to_string(), name.to_string()))
    }

    /// True if the step is recorded.
    pub fn has(&self, kind: &str, db: &str, name: &str) -> bool {
        self.step(kind, db, name).is_some()
    }

    /// Names recorded under `kind` (db, name).
    pub fn steps_of(&self, kind: &str) -> impl Iterator<Item = (&str, &str)> + '_ {
        let kind = kind.to_string();
        self.steps.keys().filter(move |(k, _, _)| *k == kind).map(|(_, d, n)| (d.as_str(), n.as_str()))
    }
}

#[cfg(test)]
impl Checkpoints {
    /// An interrupted run that recorded `steps` (kind, db, name, detail) and `chunks` (db,
    /// table, chunk, rows, content).
    pub(crate) fn set_for_tests(
        &mut self,
        steps: &[(&str, &str, &str, Option<String>)],
        chunks: &[(&str, &str, u64, u64, Option<String>)],
    ) {
        let started_at = "2026-12-02 00:00:00".into();
        self.resumed =
            Some(Recorded { backup: self.ledger.backup.clone(), source: "test".into(), started_at, completed: false });
        for (kind, db, name, detail) in steps {
            self.steps.insert((kind.to_string(), db.to_string(), name.to_string()), detail.clone());
        }
        for (db, table, chunk, rows, content) in chunks {
            self.chunks.insert(
                (db.to_string(), table.to_string(), *chunk),
                DoneChunk { rows: *rows, content: content.clone() },
            );
        }
    }
}

/// The refusal for a table an unfinished restore of another backup created.
pub fn different_backup(other: &Recorded, object: &str) -> LoadError {
    LoadError::Refused(format!(
        "{object} belongs to an unfinished restore of a different backup ({}, begun {}); its checkpoints are in \
         floodgate's checkpoint schema. Resume it with that backup (and the same --database/--exclude/--into), \
         or pass --restart to drop its partial tables and start this one. Nothing was changed.",
        other.source, other.started_at
    ))
}

/// Whether floodgate's schema holds restore checkpoints. A database of that name that is
/// someone else's is refused (floodgate reads nothing from it and writes nothing to it).
async fn schema_exists(conn: &mut Conn, schema: &CheckpointSchema) -> Result<bool> {
    match schema.owner(conn).await? {
        Owner::Absent => return Ok(false),
        Owner::Someone(tables) => return Err(schema.foreign(&tables).into()),
        Owner::Floodgate => {}
    }
    let n: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN \
             ('restore', 'chunks', 'steps')",
            (schema.name(),),
        )
        .await
        .map_err(LoadError::sql("reading the checkpoints"))?;
    Ok(n.unwrap_or(0) == 3)
}

/// Makes this run the owner of the backup's restore: writes its token over an earlier run's,
/// which waits (a row lock) for every chunk commit that run has in flight, and makes any
/// later one fail.
async fn take_over(conn: &mut Conn, ledger: &Ledger) -> Result<()> {
    let schema = quote(ledger.schema.name());
    conn.query_drop(RUNS.replace("{schema}", &schema))
        .await
        .map_err(LoadError::sql("creating the checkpoint tables"))?;
    autocommit(
        conn,
        &format!(
            "INSERT INTO {} (backup, token) VALUES (?, ?) ON DUPLICATE KEY UPDATE token = VALUES(token)",
            ledger.table("runs")
        ),
        (&ledger.backup, &ledger.token),
    )
    .await
    .map_err(LoadError::sql("taking the restore over from an earlier run"))
}

/// A token no other run has: what this run writes in `floodgate.runs`.
pub fn new_token() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let seed = format!("{}:{nanos}", std::process::id());
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(seed.as_bytes()))
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Creates the checkpoint schema (if missing) and records the restore that starts now. A
/// finished restore of the same backup kept with --keep-checkpoints is continued as is.
pub async fn begin(conn: &mut Conn, checkpoints: &Checkpoints, source: &str) -> Result<()> {
    let ledger = &checkpoints.ledger;
    ledger.schema.claim(conn).await?;
    let schema = quote(ledger.schema.name());
    for t in TABLES {
        conn.query_drop(t.replace("{schema}", &schema))
            .await
            .map_err(LoadError::sql("creating the checkpoint tables"))?;
    }
    take_over(conn, ledger).await?;

    autocommit(
        conn,
        &format!(
            "INSERT IGNORE INTO {} (backup, source, tool_version, started_at) VALUES (?, ?, ?, NOW(6))",
            ledger.table("restore")
        ),
        (&ledger.backup, source, env!("CARGO_PKG_VERSION")),
    )
    .await
    .map_err(LoadError::sql("recording the restore"))
}

/// Runs one autocommit write to the checkpoint tables, again after a deadlock or a lock wait
/// timeout (the one retry policy's waits): restores of different backups share these
/// tables, and InnoDB may pick either of two concurrent writers as the victim.
async fn autocommit(
    conn: &mut Conn,
    statement: &str,
    params: impl Into<Params>,
) -> std::result::Result<(), mysql_async::Error> {
    use floodgate_conn::retry::{transient, POLICY};
    let params = params.into();
    let mut attempt = 0;
    loop {
        let result = match &params {
            Params::Empty => conn.query_drop(statement).await,
            p => conn.exec_drop(statement, p.clone()).await,
        };
        match result {
            Err(e) if transient(&e) == Some(floodgate_conn::Transient::Retry) && attempt < POLICY.retries => {
                attempt += 1;
                tokio::time::sleep(POLICY.wait(attempt)).await;
            }
            other => return other,
        }
    }
}

/// Records a chunk and commits its transaction, in one round trip: the checkpoint row and the
/// chunk's rows commit together or not at all.
pub async fn commit_chunk(
    conn: &mut Conn,
    ledger: &Ledger,
    (db, table, chunk): (&str, &str, u64),
    rows: u64,
    content: Option<&str>,
) -> Result<()> {
    let content = content.map(|c| hex_literal(c.as_bytes())).unwrap_or_else(|| "NULL".into());
    let backup = hex_literal(ledger.backup.as_bytes());
    // The fence: rows_loaded is NULL, which the column refuses (and the COMMIT after it never
    // runs), unless this run still owns the restore; the shared lock holds off a takeover
    // until the COMMIT.
    let rows_if_owner = format!(
        "(SELECT IF(token = {}, {rows}, NULL) FROM {} WHERE backup = {backup} LOCK IN SHARE MODE)",
        hex_literal(ledger.token.as_bytes()),
        ledger.table("runs"),
    );
    let statement = format!(
        "INSERT INTO {} (backup, db, tbl, chunk, rows_loaded, content, loaded_at) \
         VALUES ({backup}, {}, {}, {chunk}, {rows_if_owner}, {content}, NOW(6)); COMMIT",
        ledger.table("chunks"),
        hex_literal(db.as_bytes()),
        hex_literal(table.as_bytes()),
    );
    let what = format!("{}: recording and committing chunk {chunk}", qualified(db, table));
    conn.query_drop(statement).await.map_err(|e| match &e {
        mysql_async::Error::Server(se) if se.code == ER_BAD_NULL_ERROR => LoadError::Refused(format!(
            "{what}: another floodgate run has taken this restore over (it resumed it); this run stops, and its \
             uncommitted chunk is not loaded"
        )),
        _ => LoadError::sql(what)(e),
    })
}

/// "Column cannot be null": the fence in [`commit_chunk`] refused the commit.
const ER_BAD_NULL_ERROR: u16 = 1048;

/// `X'…'`: any bytes as a literal, no quoting rules to get wrong.
fn hex_literal(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(3 + bytes.len() * 2);
    s.push_str("X'");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('\'');
    s
}

/// After a lost connection: did the chunk commit before the connection went? Its checkpoint
/// row says so, since both commit together. Returns the rows it loaded.
pub async fn committed(conn: &mut Conn, ledger: &Ledger, db: &str, table: &str, chunk: u64) -> Result<Option<u64>> {
    conn.exec_first(
        format!(
            "SELECT rows_loaded FROM {} WHERE backup = ? AND db = ? AND tbl = ? AND chunk = ?",
            ledger.table("chunks")
        ),
        (&ledger.backup, db.as_bytes(), table.as_bytes(), chunk),
    )
    .await
    .map_err(LoadError::sql(format!("{}: reading chunk {chunk}'s checkpoint", qualified(db, table))))
}

/// Records a step (autocommit).
pub async fn record_step(
    conn: &mut Conn,
    ledger: &Ledger,
    (kind, db, name): (&str, &str, &str),
    detail: Option<&str>,
) -> Result<()> {
    autocommit(
        conn,
        &format!(
            "INSERT INTO {} (backup, kind, db, name, detail, done_at) VALUES (?, ?, ?, ?, ?, NOW(6)) \
             ON DUPLICATE KEY UPDATE detail = VALUES(detail), done_at = VALUES(done_at)",
            ledger.table("steps")
        ),
        (&ledger.backup, kind.as_bytes(), db.as_bytes(), name.as_bytes(), detail),
    )
    .await
    .map_err(LoadError::sql(format!("recording step {kind} of {}", qualified(db, name))))
}

/// Records many steps of one kind at once (autocommit), a few hundred rows a statement.
pub async fn record_steps(conn: &mut Conn, ledger: &Ledger, kind: &str, names: &[(&str, &str)]) -> Result<()> {
    for batch in names.chunks(500) {
        let values: Vec<String> = batch
            .iter()
            .map(|(db, name)| {
                format!(
                    "({}, {}, {}, {}, NULL, NOW(6))",
                    hex_literal(ledger.backup.as_bytes()),
                    hex_literal(kind.as_bytes()),
                    hex_literal(db.as_bytes()),
                    hex_literal(name.as_bytes())
                )
            })
            .collect();
        let statement = format!(
            "INSERT IGNORE INTO {} (backup, kind, db, name, detail, done_at) VALUES {}",
            ledger.table("steps"),
            values.join(", ")
        );
        autocommit(conn, &statement, ())
            .await
            .map_err(LoadError::sql(format!("recording {} {kind} steps", batch.len())))?;
    }
    Ok(())
}

/// Forgets a table's chunks: a non-transactional table is reloaded whole.
pub async fn forget_table(conn: &mut Conn, ledger: &Ledger, db: &str, table: &str) -> Result<()> {
    let context = || format!("{}: clearing its checkpoints", qualified(db, table));
    autocommit(
        conn,
        &format!("DELETE FROM {} WHERE backup = ? AND db = ? AND tbl = ?", ledger.table("chunks")),
        (&ledger.backup, db.as_bytes(), table.as_bytes()),
    )
    .await
    .map_err(LoadError::sql(context()))?;
    autocommit(
        conn,
        &format!("DELETE FROM {} WHERE backup = ? AND kind = ? AND db = ? AND name = ?", ledger.table("steps")),
        (&ledger.backup, step::LOADED.as_bytes(), db.as_bytes(), table.as_bytes()),
    )
    .await
    .map_err(LoadError::sql(context()))
}

/// The restore is complete: drop its checkpoints (and the schema once no restore is left in
/// it), or keep them marked complete.
pub async fn finish(conn: &mut Conn, ledger: &Ledger, keep: bool) -> Result<()> {
    let context = "removing the checkpoints";
    if keep {
        let statement = format!("UPDATE {} SET completed_at = NOW(6) WHERE backup = ?", ledger.table("restore"));
        return autocommit(conn, &statement, (&ledger.backup,)).await.map_err(LoadError::sql(context));
    }
    for table in ["chunks", "steps", "runs", "restore"] {
        autocommit(conn, &format!("DELETE FROM {} WHERE backup = ?", ledger.table(table)), (&ledger.backup,))
            .await
            .map_err(LoadError::sql(context))?;
    }
    drop_schema_if_unused(conn, &ledger.schema).await
}

/// Drops floodgate's schema unless another restore's checkpoints, a binlog replay's, or
/// settings `--fast-target` must still put back are in it.
pub async fn drop_schema_if_unused(conn: &mut Conn, schema: &CheckpointSchema) -> Result<()> {
    let context = "removing the checkpoint schema";
    let tables: Vec<String> = conn
        .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (schema.name(),))
        .await
        .map_err(LoadError::sql(context))?;
    let in_use = ["saved_settings", "binlog_checkpoint"];
    if tables.iter().any(|t| in_use.contains(&t.as_str())) {
        return Ok(());
    }
    if tables.iter().any(|t| t == "restore") {
        let left: Option<u64> = conn
            .query_first(format!("SELECT COUNT(*) FROM {}", schema.table("restore")))
            .await
            .map_err(LoadError::sql(context))?;
        if left.unwrap_or(0) > 0 {
            return Ok(());
        }
    }
    schema.drop_if_ours(conn).await?;
    Ok(())
}

/// `--restart`: drops what unfinished restores created (databases they created whole; their
/// tables in databases that existed before) and every checkpoint.
pub async fn discard(conn: &mut Conn, schema: &CheckpointSchema) -> Result<Vec<String>> {
    let mut dropped = Vec::new();
    if !schema_exists(conn, schema).await? {
        return Ok(dropped);
    }
    let created: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = conn
        .query(format!(
            "SELECT s.kind, s.db, s.name FROM {} s JOIN {} r USING (backup) \
             WHERE r.completed_at IS NULL AND s.kind IN ('database', 'table') ORDER BY s.kind",
            schema.table("steps"),
            schema.table("restore")
        ))
        .await
        .map_err(LoadError::sql("reading the checkpoints"))?;
    let databases: HashSet<String> =
        created.iter().filter(|(k, _, _)| k == step::DATABASE.as_bytes()).map(|(_, d, _)| text(d.clone())).collect();
    for db in &databases {
        conn.query_drop(format!("DROP DATABASE IF EXISTS {}", quote(db)))
            .await
            .map_err(LoadError::sql(format!("--restart: dropping database {}", quote(db))))?;
        dropped.push(quote(db));
    }
    for (kind, db, table) in created {
        let (db, table) = (text(db), text(table));
        if kind != step::TABLE.as_bytes() || databases.contains(&db) {
            continue;
        }
        let name = qualified(&db, &table);
        conn.query_drop(format!("DROP TABLE IF EXISTS {name}"))
            .await
            .map_err(LoadError::sql(format!("--restart: dropping {name}")))?;
        dropped.push(name);
    }
    // Every restore's checkpoints go; the schema itself only when nothing else is kept in it.
    for table in ["chunks", "steps", "runs", "restore"] {
        conn.query_drop(format!("DELETE FROM {}", schema.table(table)))
            .await
            .map_err(LoadError::sql("--restart: clearing the checkpoints"))?;
    }
    drop_schema_if_unused(conn, schema).await?;
    Ok(dropped)
}

/// Server errors that mean "this object is already there": the one statement a killed run may
/// have executed without recording it.
pub fn already_exists(e: &mysql_async::Error) -> bool {
    // 1007 database, 1050 table/view, 1061 key name, 1304 routine, 1359 trigger, 1537 event,
    // 1826 foreign key name.
    matches!(e, mysql_async::Error::Server(se) if matches!(se.code, 1007 | 1050 | 1061 | 1304 | 1359 | 1537 | 1826))
}

/// Identity of a directory backup as selected: its format, its manifest or metadata file, and
/// every file it would load (path relative to the backup, size, recorded hash). Moving the
/// directory keeps it; a different dump, or a different --database/--exclude, changes it.
pub fn plan_identity(plan: &floodgate_format::RestorePlan) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut put = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    put(plan.format.name().as_bytes());
    // A MySQL Shell dump is named by its `@.json`, written first: its identity must not change
    // as its data files appear (`--wait-for-dump`).
    let growing = matches!(plan.format, floodgate_format::Format::MysqlShell { .. });
    for name in ["manifest.json", "metadata", "@.json"] {
        if let Ok(bytes) = std::fs::read(plan.root.join(name)) {
            put(&bytes);
        }
    }
    let relative = |p: &std::path::Path| p.strip_prefix(&plan.root).unwrap_or(p).to_string_lossy().into_owned();
    for db in &plan.databases {
        put(db.name.as_bytes());
        for t in &db.tables {
            put(t.name.as_bytes());
            put(relative(&t.schema.path).as_bytes());
            if let Some(tag) = etag(&t.schema) {
                put(tag.as_bytes());
            }
            for c in t.chunks.iter().filter(|_| !growing) {
                put(relative(&c.file.path).as_bytes());
                put(&c.file.bytes.to_le_bytes());
                if let Some(tag) = etag(&c.file) {
                    put(tag.as_bytes());
                }
                if let Some(check) = &c.rows {
                    put(check.sha256.as_bytes());
                }
            }
        }
        for v in &db.views {
            put(v.name.as_bytes());
        }
    }
    format!("{}:{:032x}", plan.format.name(), h.digest128())
}

/// An object's ETag (a backup in a bucket, whose metadata files the identity cannot read
/// from disk); none for a file on disk.
fn etag(file: &floodgate_format::SqlFile) -> Option<&str> {
    file.object.as_ref().and_then(|o| o.etag())
}

/// Identity of a mysqldump stream: the first bytes of the stream as stored (they hold the
/// dump's header and first tables), the selection and the chunk size. Each chunk's content digest is checked
/// again as the re-read reaches it, so a stream that differs later is refused there.
pub fn stream_identity(prefix: &[u8], selection: &floodgate_format::Selection, chunk_bytes: usize) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(prefix);
    // The chunk size decides where chunks are cut, so the numbers of the chunks.
    let selected = format!("{:?}|{:?}|{:?}|{chunk_bytes}", selection.into, selection.databases, selection.exclude);
    h.update(selected.as_bytes());
    if !selection.renames.is_empty() {
        h.update(format!("|{:?}", selection.renames).as_bytes());
    }
    format!("mysqldump:{:032x}", h.digest128())
}

/// Digest of a piece of a stream (a chunk's statements, a CREATE statement).
pub fn content_digest<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    format!("{:032x}", h.digest128())
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_format::Selection;

    #[test]
    fn stream_identity_covers_selection_and_chunk_size() {
        let all = Selection::new(None, vec![], vec![]);
        let one = Selection::new(None, vec!["shop".into()], vec![]);
        let base = stream_identity(b"-- dump", &all, 4 << 20);
        assert_eq!(base, stream_identity(b"-- dump", &all, 4 << 20));
        assert_ne!(base, stream_identity(b"-- other dump", &all, 4 << 20));
        assert_ne!(base, stream_identity(b"-- dump", &one, 4 << 20));
        assert_ne!(base, stream_identity(b"-- dump", &all, 1 << 20));
        assert!(base.starts_with("mysqldump:"));
    }

    #[test]
    fn content_digest_separates_parts() {
        // Length-prefixed: moving a byte across a statement boundary changes the digest.
        assert_ne!(content_digest([&b"ab"[..], b"c"]), content_digest([&b"a"[..], b"bc"]));
        assert_eq!(content_digest([&b"ab"[..], b"c"]), content_digest([&b"ab"[..], b"c"]));
    }

    #[test]
    fn already_exists_codes() {
        let err = |code| {
            mysql_async::Error::Server(mysql_async::ServerError { code, message: String::new(), state: String::new() })
        };
        assert!(already_exists(&err(1061)));
        assert!(already_exists(&err(1304)));
        assert!(!already_exists(&err(1062)), "a duplicate row is not an existing object");
    }
}
