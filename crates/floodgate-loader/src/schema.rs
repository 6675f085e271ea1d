//! Target checks and the schema phase: databases, then tables with deferred indexes.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use floodgate_format::ddl::{self, ReferencedColumns};
use floodgate_format::ident::{qualified, quote};
use floodgate_format::split::Statement;
use floodgate_format::{RestorePlan, SqlFile};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::checkpoint::{self, step, Checkpoints};
use crate::restore::Ctx;
use crate::{connect, LoadError, Result};
use floodgate_format::sqltext::head_words;

/// What already exists on the target.
#[derive(Debug, Default)]
pub struct Existing {
    pub databases: BTreeSet<String>,
    /// (db, name, is_view) the backup also defines; dropped first under --overwrite.
    pub conflicts: Vec<(String, String, bool)>,
}

/// Refuses a target that holds objects the backup would overwrite, unless `overwrite`.
/// Objects an interrupted run of this restore created are floodgate's, not conflicts.
pub async fn check_target(
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

/// A table after the schema phase: what remains to add once its rows are in.
#[derive(Debug, Clone, Default)]
pub struct PreparedTable {
    pub alters: Vec<String>,
    pub deferred: Vec<String>,
    pub seconds: f64,
}

/// Drops conflicts (only under --overwrite, checked before), creates databases.
pub async fn create_databases(ctx: &Ctx, conn: &mut Conn, existing: &Existing) -> Result<()> {
    for (db, name, is_view) in &existing.conflicts {
        let what = if *is_view { "VIEW" } else { "TABLE" };
        conn.query_drop(format!("DROP {what} IF EXISTS {}", qualified(db, name)))
            .await
            .map_err(LoadError::sql(format!("dropping {} (--overwrite)", qualified(db, name))))?;
    }
    for db in &ctx.plan.databases {
        if existing.databases.contains(&db.name) {
            continue;
        }
        // Recorded before it exists: if this run dies now, the next knows the database is its.
        checkpoint::record_step(conn, &ctx.checkpoints.backup, (step::DATABASE, &db.name, ""), None).await?;
        match &db.create {
            Some(file) => {
                let statements = floodgate_format::read_statements(file, ctx.plan.format.terminator())?;
                crate::sql::run_file_statements(conn, file, &statements).await?;
                conn.query_drop("SET NAMES utf8mb4").await.map_err(LoadError::sql("SET NAMES"))?;
            }
            None => conn
                .query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", quote(&db.name)))
                .await
                .map_err(LoadError::sql(format!("creating database {}", quote(&db.name))))?,
        }
    }
    // Recorded before any CREATE TABLE: a table that exists on resume with this record is ours.
    let tables: Vec<(&str, &str)> = ctx.plan.tables().map(|(d, t)| (d.name.as_str(), t.name.as_str())).collect();
    checkpoint::record_steps(conn, &ctx.checkpoints.backup, step::TABLE, &tables).await?;
    Ok(())
}

/// Reads every table's schema file and collects the columns foreign keys point at.
fn read_schemas(ctx: &Ctx) -> Result<(Vec<Vec<Statement>>, ReferencedColumns)> {
    let mut all = Vec::new();
    let mut referenced: Vec<(String, String, Vec<String>)> = Vec::new();
    for (db, table) in ctx.plan.tables() {
        let statements = floodgate_format::read_statements(&table.schema, ctx.plan.format.terminator())?;
        for s in &statements {
            if let Some(parsed) = create_table_text(s).and_then(|t| ddl::parse_create_table(t).ok()) {
                for d in parsed.definitions {
                    if let ddl::DefinitionKind::ForeignKey { parent, parent_columns } = d.kind {
                        referenced.push((db.name.clone(), parent, parent_columns));
                    }
                }
            }
        }
        all.push(statements);
    }
    let _ = referenced.len();
    Ok((all, ReferencedColumns(referenced.into_iter().map(|(d, t, c)| [vec![d, t], c].concat()).collect())))
}

fn create_table_text(s: &Statement) -> Option<&str> {
    let words = head_words(&s.text, 3);
    let is_create = words.first().map(String::as_str) == Some("CREATE")
        && (words.get(1).map(String::as_str) == Some("TABLE") || words.get(2).map(String::as_str) == Some("TABLE"));
    if !is_create {
        return None;
    }
    std::str::from_utf8(&s.text).ok()
}

/// Columns of `db`.`table` that some foreign key references.
fn referenced_for(all: &ReferencedColumns, db: &str, table: &str) -> ReferencedColumns {
    ReferencedColumns(
        all.0.iter().filter(|v| v.len() >= 2 && v[0] == db && v[1] == table).map(|v| v[2..].to_vec()).collect(),
    )
}

/// Tables with less data than this keep their secondary indexes in the CREATE: building an
/// index afterwards costs an ALTER TABLE (and a round trip) per table, which on a small table
/// outweighs maintaining the index row by row. Measured on 2,000 tables of 50 rows
/// (benches/RESULTS.md, smalltables).
pub const DEFER_MIN_BYTES: u64 = 4 << 20;

/// Creates every table over the loader connections. Returns one entry per plan table.
pub async fn create_tables(ctx: &Arc<Ctx>) -> Result<Vec<PreparedTable>> {
    let (schemas, referenced) = read_schemas(ctx)?;
    let jobs: VecDeque<(usize, Vec<Statement>)> = schemas.into_iter().enumerate().collect();
    let total = jobs.len();
    let queue = Arc::new(Mutex::new(jobs));
    let results = Arc::new(Mutex::new(vec![PreparedTable::default(); total]));
    let referenced = Arc::new(referenced);
    let workers = ctx.options.threads.min(total).max(1);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (ctx, queue, results, referenced) = (ctx.clone(), queue.clone(), results.clone(), referenced.clone());
        set.spawn(async move {
            let mut conn = connect(&ctx.target, &ctx.init).await?;
            loop {
                let job = queue.lock().map_err(|_| poisoned())?.pop_front();
                let Some((i, statements)) = job else { break };
                let prepared = create_one(&ctx, &mut conn, i, &statements, &referenced).await?;
                results.lock().map_err(|_| poisoned())?[i] = prepared;
            }
            Ok::<_, LoadError>(())
        });
    }
    crate::restore::join_all(&mut set).await?;
    let results = results.lock().map_err(|_| poisoned())?.clone();
    Ok(results)
}

fn poisoned() -> LoadError {
    LoadError::Refused("internal error: a worker panicked".into())
}

async fn create_one(
    ctx: &Ctx,
    conn: &mut Conn,
    index: usize,
    statements: &[Statement],
    referenced: &ReferencedColumns,
) -> Result<PreparedTable> {
    let Some((db, table)) = ctx.plan.tables().nth(index) else {
        return Ok(PreparedTable::default());
    };
    let started = Instant::now();
    conn.query_drop(format!("SET NAMES utf8mb4; USE {}", quote(&db.name)))
        .await
        .map_err(LoadError::sql(format!("USE {}", quote(&db.name))))?;
    // Its intent was recorded before any CREATE (see `create_databases`).
    let created =
        ctx.checkpoints.has(step::TABLE, &db.name, &table.name) && table_exists(conn, &db.name, &table.name).await?;
    let mut prepared = PreparedTable::default();
    for s in statements {
        let text = match create_table_text(s) {
            Some(create) if ctx.options.defer_indexes && table.data_bytes() >= DEFER_MIN_BYTES => {
                match ddl::defer_indexes(
                    &db.name,
                    &table.name,
                    create,
                    &referenced_for(referenced, &db.name, &table.name),
                ) {
                    Ok(d) => {
                        prepared.alters = d.alters;
                        prepared.deferred = d.deferred;
                        d.create.into_bytes()
                    }
                    Err(e) => {
                        tracing::warn!(table = %qualified(&db.name, &table.name), "indexes not deferred: {e}");
                        s.text.clone()
                    }
                }
            }
            _ => s.text.clone(),
        };
        if created && is_ddl(&s.text) {
            continue; // an earlier run created the table
        }
        execute_with_retry(conn, &text, &table.schema, s.offset).await?;
    }
    crate::failpoint::hit("schema.table").await;
    if ctx.checkpoints.has(step::INDEXES, &db.name, &table.name) {
        prepared.alters.clear();
    }
    prepared.seconds = started.elapsed().as_secs_f64();
    Ok(prepared)
}

fn is_ddl(text: &[u8]) -> bool {
    matches!(head_words(text, 1).first().map(String::as_str), Some("CREATE" | "DROP" | "ALTER" | "RENAME"))
}

async fn table_exists(conn: &mut Conn, db: &str, table: &str) -> Result<bool> {
    let found: Option<u8> = conn
        .exec_first("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (db, table))
        .await
        .map_err(LoadError::sql("reading the target's tables"))?;
    Ok(found.is_some())
}

/// Runs a DDL statement, retrying deadlocks (concurrent CREATE TABLE can deadlock on the
/// data dictionary).
async fn execute_with_retry(conn: &mut Conn, text: &[u8], file: &SqlFile, offset: u64) -> Result<()> {
    let mut attempt = 0;
    loop {
        match conn.query_drop(text).await {
            Ok(()) => return Ok(()),
            Err(mysql_async::Error::Server(e)) if e.code == 1213 && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
            Err(e) => {
                return Err(LoadError::Sql { context: format!("{} at byte {offset}", file.path.display()), source: e })
            }
        }
    }
}
