//! Starting a restore against the target's checkpoints: resume, refuse, or restart, and the
//! checks that make sure what an earlier run left is still what it left.

use std::collections::HashMap;

use floodgate_format::ident::qualified;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::checkpoint::{self, step, Checkpoints};
use crate::{LoadError, Progress, RestoreOptions, Result};

/// Reads the checkpoints: `--restart` discards unfinished restores first; a restore of the
/// same backup (and selection) resumes.
pub async fn prepare(
    conn: &mut Conn,
    options: &RestoreOptions,
    progress: &Progress,
    identity: &str,
) -> Result<Checkpoints> {
    if options.restart {
        let dropped = checkpoint::discard(conn, &options.checkpoint_schema).await?;
        if !dropped.is_empty() {
            progress.notice(format!("--restart: dropped what the unfinished restore created: {}", dropped.join(", ")));
        }
    }
    let ledger = checkpoint::Ledger {
        schema: options.checkpoint_schema.clone(),
        backup: identity.to_string(),
        token: checkpoint::new_token(),
    };
    let checkpoints = Checkpoints::read(conn, ledger).await?;
    if options.resume && !checkpoints.is_resume() {
        return Err(LoadError::Refused(
            "--resume: the target holds no interrupted restore of this backup; run without --resume to start one"
                .into(),
        ));
    }
    Ok(checkpoints)
}

/// Tables an interrupted run of this restore created that still exist.
pub type Resumed = HashMap<(String, String), ResumedTable>;

/// A table an interrupted run created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumedTable {
    /// It loads again whole: a non-transactional table never recorded complete may hold part
    /// of a chunk, so its chunk checkpoints do not count.
    pub reload: bool,
    /// It held rows and was emptied for that.
    pub emptied: bool,
}

/// Checks what an interrupted run left (every table it created holds exactly the rows of
/// its recorded chunks) and empties non-transactional tables it left partial. Nothing to do
/// on a fresh start.
pub async fn resumed_tables(conn: &mut Conn, checkpoints: &Checkpoints, progress: &Progress) -> Result<Resumed> {
    let mut resumed = Resumed::new();
    if !checkpoints.is_resume() {
        return Ok(resumed);
    }
    let recorded: Vec<(String, String)> =
        checkpoints.steps_of(step::TABLE).map(|(d, t)| (d.to_string(), t.to_string())).collect();
    check_tables(conn, checkpoints, &recorded).await?;
    for (key, state) in tables_on_target(conn, &recorded).await? {
        let (db, table) = &key;
        if !checkpoints.has(step::TABLE, db, table) {
            continue;
        }
        // Its chunk checkpoints count only once the whole table is recorded as loaded.
        let reload = !state.transactional && !checkpoints.has(step::LOADED, db, table);
        let emptied = reload && empty_partial_table(conn, checkpoints, progress, (db.as_str(), table.as_str())).await?;
        resumed.insert(key, ResumedTable { reload, emptied });
    }
    Ok(resumed)
}

/// True if an interrupted run committed chunk `number` of `db`.`table` and this run keeps it.
pub fn chunk_done<'c>(
    resumed: &Resumed,
    checkpoints: &'c Checkpoints,
    (db, table): (&str, &str),
    number: u64,
) -> Option<&'c checkpoint::DoneChunk> {
    let kept = resumed.get(&(db.to_string(), table.to_string())).is_some_and(|t| !t.reload);
    kept.then(|| checkpoints.chunk(db, table, number)).flatten()
}

/// Says what an earlier run did and what remains.
/// `total_chunks` is unknown for a stream until it is read.
pub fn announce(progress: &Progress, checkpoints: &Checkpoints, source: &str, total_chunks: Option<usize>) {
    let Some(previous) = &checkpoints.resumed else { return };
    let done = checkpoints.chunk_count();
    let indexed = checkpoints.steps_of(step::INDEXES).count();
    let remain = match total_chunks {
        Some(total) => format!(
            "{done} of {total} chunks already loaded, {indexed} tables complete; {} chunks remain",
            total.saturating_sub(done)
        ),
        None => format!("{done} chunks already loaded, {indexed} tables complete; the rest of the stream remains"),
    };
    progress.notice(format!("resuming the restore of {source} begun {}: {remain}", previous.started_at));
}

/// A table as an earlier run left it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableOnTarget {
    pub exists: bool,
    /// Its engine rolls back (InnoDB); false for MyISAM, Aria, MEMORY.
    pub transactional: bool,
}

/// Whether each table exists on the target and whether its engine is transactional.
pub async fn tables_on_target(
    conn: &mut Conn,
    tables: &[(String, String)],
) -> Result<HashMap<(String, String), TableOnTarget>> {
    let mut dbs: Vec<&str> = tables.iter().map(|(d, _)| d.as_str()).collect();
    dbs.sort_unstable();
    dbs.dedup();
    let mut found = HashMap::new();
    for db in dbs {
        let rows: Vec<(String, Option<String>)> = conn
            .exec(
                "SELECT t.TABLE_NAME, e.TRANSACTIONS FROM information_schema.TABLES t \
                 LEFT JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE \
                 WHERE t.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE'",
                (db,),
            )
            .await
            .map_err(LoadError::sql("reading the target's tables"))?;
        for (name, transactions) in rows {
            let transactional = transactions.is_some_and(|t| t.eq_ignore_ascii_case("YES"));
            found.insert((db.to_string(), name), TableOnTarget { exists: true, transactional });
        }
    }
    Ok(found)
}

/// Refuses to resume over tables someone changed since the restore stopped: a table
/// floodgate created must still exist once it holds loaded chunks, and a transactional one
/// must hold exactly the rows its committed chunks loaded.
pub async fn check_tables(conn: &mut Conn, checkpoints: &Checkpoints, tables: &[(String, String)]) -> Result<()> {
    let on_target = tables_on_target(conn, tables).await?;
    let mut problems = Vec::new();
    for (db, table) in tables {
        let (chunks, rows) = checkpoints.table_chunks(db, table);
        let state = on_target.get(&(db.clone(), table.clone())).copied().unwrap_or_default();
        if let Some(problem) = check_table(conn, checkpoints, db, table, state, chunks, rows).await? {
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(LoadError::Refused(format!(
        "cannot resume: {}. The target was changed after the restore stopped; nothing was changed now. \
         Pass --restart to drop the partial restore and start over.",
        problems.join("; ")
    )))
}

async fn check_table(
    conn: &mut Conn,
    checkpoints: &Checkpoints,
    db: &str,
    table: &str,
    state: TableOnTarget,
    chunks: usize,
    rows: u64,
) -> Result<Option<String>> {
    let name = qualified(db, table);
    if !state.exists {
        return Ok((chunks > 0).then(|| format!("{name} had {chunks} chunks loaded but no longer exists")));
    }
    if !checkpoints.has(step::TABLE, db, table) {
        return Ok(None); // not floodgate's: the target check refuses it unless --overwrite
    }
    if !state.transactional && !checkpoints.has(step::LOADED, db, table) {
        return Ok(None); // reloaded whole anyway
    }
    let count: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {name}"))
        .await
        .map_err(LoadError::sql(format!("counting rows of {name}")))?;
    let count = count.unwrap_or(0);
    Ok((count != rows).then(|| format!("{name} holds {count} rows, but the checkpoints record {rows} loaded")))
}

/// A non-transactional table an interrupted run left partial: a chunk may be in it in part,
/// so it is emptied (and its checkpoints forgotten) to load again whole. Returns true if it
/// was; an empty table needs nothing.
pub async fn empty_partial_table(
    conn: &mut Conn,
    checkpoints: &Checkpoints,
    progress: &Progress,
    (db, table): (&str, &str),
) -> Result<bool> {
    if !checkpoints.is_resume() || checkpoints.has(step::LOADED, db, table) {
        return Ok(false);
    }
    let name = qualified(db, table);
    let any: Option<u8> = conn
        .query_first(format!("SELECT 1 FROM {name} LIMIT 1"))
        .await
        .map_err(LoadError::sql(format!("checking whether {name} is empty")))?;
    if any.is_none() {
        return Ok(false);
    }
    progress.notice(format!(
        "{name} is not transactional (its engine cannot roll back a chunk) and the interrupted run left it \
         partly loaded: it is emptied and loaded again whole"
    ));
    conn.query_drop(format!("TRUNCATE TABLE {name}"))
        .await
        .map_err(LoadError::sql(format!("emptying {name} to load it again")))?;
    checkpoint::forget_table(conn, &checkpoints.ledger, db, table).await?;
    Ok(true)
}
