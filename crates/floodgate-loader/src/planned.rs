//! The planned source: a backup whose every table, chunk and post-data file is known up
//! front (native, mydumper; MySQL Shell to come). Its work, in order: databases, every
//! table's CREATE over the DDL connections (secondary indexes of large tables deferred),
//! then every chunk into the queue at once, largest tables first by the queue's rule.

use floodgate_format::ddl::{self, ReferencedColumns};
use floodgate_format::ident::{qualified, quote};
use floodgate_format::split::Statement;
use floodgate_format::sqltext::head_words;
use std::collections::HashSet;

use floodgate_format::{Database, RestorePlan, SqlFile, Table};
use floodgate_pipeline::{Phase, Progress};
use mysql_async::prelude::Queryable;

use crate::checkpoint::{self, step};
use crate::ddl::CreateJob;
use crate::engine::{Loaded, Work};
use crate::job::{Body, Job};
use crate::post::{Pass, PostData, Script};
use crate::report::TableReport;
use crate::resume::chunk_done;
use crate::tables::TableId;
use crate::target::Existing;
use crate::{LoadError, Result};

/// Tables with less data than this keep their secondary indexes in the CREATE: building an
/// index afterwards costs an ALTER TABLE (and a round trip) per table, which on a small table
/// outweighs maintaining the index row by row. Measured on 2,000 tables of 50 rows
/// (benches/RESULTS.md, smalltables).
pub const DEFER_MIN_BYTES: u64 = 4 << 20;

/// Creates the plan's databases and tables, queues its chunks, and returns its post-data. A
/// dump still being written is followed until it ends (`--wait-for-dump`), and `plan`
/// becomes the finished dump's.
pub(crate) async fn load(work: &mut Work<'_>, plan: &mut RestorePlan, existing: &Existing) -> Result<Loaded> {
    let started = std::time::Instant::now();
    work.session.progress.set_phase(Phase::Schema);
    let first: Vec<Script> = plan.before.iter().map(|f| opening_script(plan, f)).collect::<Result<_>>()?;
    let definers = work.session.options.definers.clone();
    crate::post::run_in_order(work.control, &work.session.checkpoints, &first, &definers).await?;
    let (grants, grants_file) = create_accounts(work, plan).await?;
    create_databases(work, plan, existing).await?;
    let referenced = referenced_columns(plan)?;
    let mut ids = Vec::new();
    for (db, table) in plan.tables() {
        let id = work.session.tables.add(TableReport {
            database: db.name.clone(),
            table: table.name.clone(),
            expected_rows: table.expected_rows,
            ..Default::default()
        })?;
        create_table(work, plan, (&db.name, table), id, &referenced).await?;
        ids.push(id);
    }
    work.ddl.barrier().await?;
    let schema_seconds = started.elapsed().as_secs_f64();
    work.session.progress.set_phase(Phase::Data);
    learn_engines(work, plan, &ids).await?;
    let mut queued = HashSet::new();
    for ((db, table), &id) in plan.tables().zip(&ids) {
        queue_chunks(work, plan.format.terminator(), (&db.name, table), id, &mut queued).await?;
    }
    if plan.growing {
        follow(work, plan, &ids, &mut queued).await?;
    }
    for &id in &ids {
        work.session.tables.seal(id)?;
    }
    Ok(Loaded { post: post_data(plan)?, unmatched: Vec::new(), schema_seconds, grants, grants_file })
}

/// With `--users`, creates the backup's accounts (before any object: definers must exist)
/// and returns the blocks that grant them, for after every object. Without it, says the
/// backup has accounts that are not restored.
async fn create_accounts(
    work: &mut Work<'_>,
    plan: &RestorePlan,
) -> Result<(Vec<floodgate_format::shell::AccountBlock>, String)> {
    let Some(file) = &plan.users else { return Ok((Vec::new(), String::new())) };
    let mut blocks = floodgate_format::shell::account_blocks(file)?;
    for block in &mut blocks {
        for statement in &mut block.statements {
            let renamed = plan.rename_text(statement.as_bytes(), file, 0)?;
            *statement = String::from_utf8_lossy(&renamed).into_owned();
        }
    }
    let name = file.path.display().to_string();
    if !work.session.options.users {
        if !blocks.is_empty() {
            let accounts = blocks.iter().filter(|b| b.step == floodgate_format::shell::AccountStep::Create).count();
            work.session.progress.notice(format!(
                "{name} holds {accounts} account(s); they are not restored (pass --users to restore them)"
            ));
        }
        return Ok((Vec::new(), name));
    }
    let step = floodgate_format::shell::AccountStep::Create;
    let created = crate::accounts::apply(work.control, &work.session, &blocks, step, &name).await?;
    work.session.progress.notice(format!("--users: {created} account(s) created from {name}"));
    Ok((blocks, name))
}

/// How often a dump still being written is looked at again.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Follows a MySQL Shell dump still being written: every second, queues the data files that
/// have appeared (final names only), until `@.done.json` does; then `plan` becomes the
/// finished dump, checked whole. Gives up after `--wait-for-dump` seconds with no new file.
async fn follow(
    work: &mut Work<'_>,
    plan: &mut RestorePlan,
    ids: &[TableId],
    queued: &mut HashSet<(TableId, u64)>,
) -> Result<()> {
    let wait = work.session.options.wait_for_dump.unwrap_or_default();
    let mut last_news = std::time::Instant::now();
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let root = plan.root.clone();
        let now = tokio::task::spawn_blocking(move || floodgate_format::shell::read_unfinished(&root))
            .await
            .map_err(|e| LoadError::Internal(format!("reading the dump: {e}")))??;
        let Some(mut now) = now else { continue };
        keep_planned_tables(&mut now, plan);
        let before = queued.len();
        for ((db, table), &id) in now.tables().zip(ids) {
            queue_chunks(work, now.format.terminator(), (&db.name, table), id, queued).await?;
        }
        let finished = !now.growing;
        if queued.len() > before || finished {
            last_news = std::time::Instant::now();
        }
        if finished {
            *plan = now;
            return Ok(());
        }
        if last_news.elapsed() > wait {
            return Err(LoadError::Refused(format!(
                "{}: no new data file and no @.done.json for {} s (--wait-for-dump): the dump seems to have \
                 stopped. What loaded is checkpointed; run again to resume once the dump is complete",
                plan.root.display(),
                wait.as_secs()
            )));
        }
    }
}

/// Keeps, in a fresh read of the dump, the tables the restore planned (in its order): the
/// selection was made on the first read.
fn keep_planned_tables(now: &mut RestorePlan, planned: &RestorePlan) {
    let mut fresh: std::collections::HashMap<(String, String), Table> = std::mem::take(&mut now.databases)
        .into_iter()
        .flat_map(|d| {
            let db = d.name.clone();
            d.tables.into_iter().map(move |t| ((db.clone(), t.name.clone()), t))
        })
        .collect();
    now.databases = planned
        .databases
        .iter()
        .map(|d| Database {
            tables: d.tables.iter().filter_map(|t| fresh.remove(&(d.name.clone(), t.name.clone()))).collect(),
            ..d.clone()
        })
        .collect();
}

/// Drops conflicts (only under --overwrite, checked before), creates the databases, and
/// records every table as floodgate's before any CREATE TABLE runs.
async fn create_databases(work: &mut Work<'_>, plan: &RestorePlan, existing: &Existing) -> Result<()> {
    let (conn, ledger) = (&mut *work.control, work.session.ledger().clone());
    for (db, name, is_view) in &existing.conflicts {
        let what = if *is_view { "VIEW" } else { "TABLE" };
        conn.query_drop(format!("DROP {what} IF EXISTS {}", qualified(db, name)))
            .await
            .map_err(LoadError::sql(format!("dropping {} (--overwrite)", qualified(db, name))))?;
    }
    for db in &plan.databases {
        if existing.databases.contains(&db.name) {
            continue;
        }
        // Recorded before it exists: if this run dies now, the next knows the database is its.
        checkpoint::record_step(conn, &ledger, (step::DATABASE, &db.name, ""), None).await?;
        match &db.create {
            Some(file) => {
                // Only the database's own statements: MySQL Shell's schema script goes on
                // with the routines and events, which wait for after the data.
                let statements = plan.statements(file)?;
                for s in statements.into_iter().filter(|s| is_database_statement(&s.text)) {
                    conn.query_drop(&s.text[..]).await.map_err(LoadError::sql(format!(
                        "{} at byte {}",
                        file.path.display(),
                        s.offset
                    )))?;
                }
                conn.query_drop("SET NAMES utf8mb4").await.map_err(LoadError::sql("SET NAMES"))?;
            }
            None => conn
                .query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", quote(&db.name)))
                .await
                .map_err(LoadError::sql(format!("creating database {}", quote(&db.name))))?,
        }
    }
    // Recorded before any CREATE TABLE: a table that exists on resume with this record is ours.
    let tables: Vec<(&str, &str)> = plan.tables().map(|(d, t)| (d.name.as_str(), t.name.as_str())).collect();
    checkpoint::record_steps(conn, &ledger, step::TABLE, &tables).await
}

/// Hands the table's CREATE (its indexes deferred when its data is large) to a DDL
/// connection; a table an interrupted run created is not created again.
async fn create_table(
    work: &mut Work<'_>,
    plan: &RestorePlan,
    (db, table): (&str, &Table),
    id: TableId,
    referenced: &ReferencedColumns,
) -> Result<()> {
    let mut statements = vec![session_statement(format!("SET NAMES utf8mb4; USE {}", quote(db)))];
    let defer = work.session.options.defer_indexes && table.data_bytes() >= DEFER_MIN_BYTES;
    for mut s in plan.statements(&table.schema)? {
        if work.session.options.create_invisible_pks {
            if let Some(notice) = crate::ddl::invisible_primary_key((db, &table.name), &mut s.text) {
                work.session.progress.notice(notice);
            }
        }
        if let Some(create) = create_table_text(&s).filter(|_| defer) {
            match ddl::defer_indexes(db, &table.name, create, &referenced_for(referenced, db, &table.name)) {
                Ok(d) => {
                    work.session.tables.defer(id, d.alters, d.deferred)?;
                    s.text = d.create.into_bytes();
                }
                Err(e) => tracing::warn!(table = %qualified(db, &table.name), "indexes not deferred: {e}"),
            }
        }
        statements.push(s);
    }
    if work.session.checkpoints.has(step::INDEXES, db, &table.name) {
        work.session.tables.indexes_built(id)?;
    }
    let key = (db.to_string(), table.name.clone());
    if let Some(resumed) = work.resumed.get(&key) {
        if resumed.emptied {
            work.session.tables.reloaded(id)?;
        }
        // An earlier run created it.
        return work.session.tables.created(id, Ok(()));
    }
    let file = table.schema.path.display().to_string();
    work.ddl.create(CreateJob { table: id, statements, file, intent: None }).await
}

/// `CREATE DATABASE` (or `SCHEMA`) and the session statements around it.
fn is_database_statement(text: &[u8]) -> bool {
    creates_database(text) || head_words(text, 1).first().is_some_and(|w| w == "SET")
}

fn creates_database(text: &[u8]) -> bool {
    let words = head_words(text, 2);
    words.first().is_some_and(|w| w == "CREATE") && words.get(1).is_some_and(|w| w == "DATABASE" || w == "SCHEMA")
}

fn session_statement(text: String) -> Statement {
    Statement { offset: 0, text: text.into_bytes(), terminated: true }
}

/// Whether each table's engine rolls back, one query per database.
async fn learn_engines(work: &mut Work<'_>, plan: &RestorePlan, ids: &[TableId]) -> Result<()> {
    let names: Vec<(String, String)> = plan.tables().map(|(d, t)| (d.name.clone(), t.name.clone())).collect();
    let found = crate::resume::tables_on_target(work.control, &names).await?;
    for (key, &id) in names.iter().zip(ids) {
        if let Some(t) = found.get(key) {
            work.session.tables.set_transactional(id, t.transactional)?;
        }
    }
    Ok(())
}

/// Queues every chunk of the table an earlier run did not commit and this run has not queued.
async fn queue_chunks(
    work: &mut Work<'_>,
    terminator: floodgate_format::split::Terminator,
    (db, table): (&str, &Table),
    id: TableId,
    queued: &mut HashSet<(TableId, u64)>,
) -> Result<()> {
    let session = work.session.clone();
    for chunk in &table.chunks {
        // The chunk's number is the checkpoints' key: the same on every read of the backup.
        let number = chunk.index;
        if !queued.insert((id, number)) {
            continue;
        }
        if let Some(done) = chunk_done(work.resumed, &session.checkpoints, (db, &table.name), number) {
            session.tables.resumed(id, done.rows, chunk.bytes())?;
            Progress::add(&session.progress.rows_done, done.rows);
            Progress::add(&session.progress.bytes_done, chunk.bytes());
            Progress::add(&session.progress.chunks_done, 1);
            continue;
        }
        let body = match (&chunk.rows, &chunk.delimited) {
            (Some(check), _) => {
                Body::Rows { file: chunk.file.clone(), check: check.clone(), columns: table.columns.clone() }
            }
            (None, Some(delimited)) => Body::Delimited { file: chunk.file.clone(), delimited: delimited.clone() },
            (None, None) => Body::File {
                chunk: chunk.clone(),
                terminator,
                convert: chunk.bytes() >= session.options.convert_min_bytes,
            },
        };
        let job = Job { number, progress_bytes: chunk.bytes(), body };
        session.tables.queued(id, chunk.bytes())?;
        work.queue.push(id, chunk.bytes(), job).await.map_err(|_| crate::engine::loaders_stopped())?;
    }
    Ok(())
}

/// Every table's CREATE TABLE, for the columns that foreign keys reference: their indexes
/// stay in the CREATE.
fn referenced_columns(plan: &RestorePlan) -> Result<ReferencedColumns> {
    let mut referenced = Vec::new();
    for (db, table) in plan.tables() {
        for s in plan.statements(&table.schema)? {
            let Some(parsed) = create_table_text(&s).and_then(|t| ddl::parse_create_table(t).ok()) else { continue };
            for d in parsed.definitions {
                if let ddl::DefinitionKind::ForeignKey { parent, parent_columns } = d.kind {
                    referenced.push([vec![db.name.clone(), parent], parent_columns].concat());
                }
            }
        }
    }
    Ok(ReferencedColumns(referenced))
}

fn create_table_text(s: &Statement) -> Option<&str> {
    let words = head_words(&s.text, 3);
    let is_create = words.first().map(String::as_str) == Some("CREATE")
        && (words.get(1).map(String::as_str) == Some("TABLE") || words.get(2).map(String::as_str) == Some("TABLE"));
    is_create.then(|| std::str::from_utf8(&s.text).ok()).flatten()
}

/// Columns of `db`.`table` that some foreign key references.
fn referenced_for(all: &ReferencedColumns, db: &str, table: &str) -> ReferencedColumns {
    ReferencedColumns(
        all.0.iter().filter(|v| v.len() >= 2 && v[0] == db && v[1] == table).map(|v| v[2..].to_vec()).collect(),
    )
}

/// The plan's post-data files as scripts: routine and event files, each view's file (with
/// its stand-in), trigger files.
fn post_data(plan: &RestorePlan) -> Result<PostData> {
    let mut post = PostData::default();
    for db in &plan.databases {
        for file in &db.post {
            post.scripts.push(script(plan, &db.name, file)?);
            post.routine_files += 1;
        }
        for view in &db.views {
            let stand_in = match &view.placeholder {
                Some(file) => Some(script(plan, &db.name, file)?.all_in(Pass::Views)),
                None => None,
            };
            post.scripts.push(Script::view(script(plan, &db.name, &view.definition)?, stand_in));
        }
        // A trigger on a table `--exclude` left out cannot be created without it.
        let tables: HashSet<&str> = db.tables.iter().map(|t| t.name.as_str()).collect();
        for file in &db.triggers {
            let mut trigger_script = script(plan, &db.name, file)?;
            trigger_script.retain(|s| match floodgate_format::objects::trigger_table(&s.text) {
                Some((on_db, table)) => on_db.is_some_and(|d| d != db.name) || tables.contains(table.as_str()),
                None => true,
            });
            post.scripts.push(trigger_script);
            post.trigger_files += 1;
        }
    }
    for file in &plan.after {
        post.last.push(opening_script(plan, file)?);
    }
    Ok(post)
}

/// A script that opens or closes the backup, in no database.
fn opening_script(plan: &RestorePlan, file: &SqlFile) -> Result<Script> {
    let statements = plan.statements(file)?;
    Ok(Script::classified(script_key(plan, file), String::new(), file.path.display().to_string(), None, statements)
        .all_in(Pass::Routines))
}

/// A script's name in the checkpoints: its path in the backup.
fn script_key(plan: &RestorePlan, file: &SqlFile) -> String {
    file.path.strip_prefix(&plan.root).unwrap_or(&file.path).to_string_lossy().into_owned()
}

/// A post-data file's statements, as the dump tool meant them (see
/// [`floodgate_format::Format::restore_post_statement`]).
fn script(plan: &RestorePlan, db: &str, file: &SqlFile) -> Result<Script> {
    let mut statements = plan.statements(file)?;
    // The database exists by now (MySQL Shell's schema script opens with its CREATE).
    statements.retain(|s| !creates_database(&s.text));
    for s in &mut statements {
        if let std::borrow::Cow::Owned(fixed) = plan.format.restore_post_statement(&s.text) {
            s.text = fixed;
        }
    }
    Ok(Script::classified(
        script_key(plan, file),
        db.to_string(),
        file.path.display().to_string(),
        Some(db.to_string()),
        statements,
    ))
}
