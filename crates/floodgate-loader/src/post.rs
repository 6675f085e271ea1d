//! Phase 4: views (stand-ins first, so views on views resolve), routines and events, then
//! triggers, which must not exist while rows load or they would fire on restored data.

use floodgate_format::ident::{qualified, quote};
use floodgate_format::SqlFile;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::checkpoint::{self, step, Checkpoints};
use crate::restore::Ctx;
use crate::{LoadError, Result};

/// Counts of what was applied.
#[derive(Debug, Default)]
pub struct Applied {
    pub views: usize,
    pub post_files: usize,
    pub trigger_files: usize,
}

pub async fn apply(ctx: &Ctx, conn: &mut Conn) -> Result<Applied> {
    let mut applied = Applied::default();
    let terminator = ctx.plan.format.terminator();
    for db in &ctx.plan.databases {
        use_db(conn, &db.name).await?;
        applied.views += create_views(ctx, conn, &db.name, &db.views).await?;
        for file in &db.post {
            run_file(ctx, conn, &db.name, file, terminator).await?;
            use_db(conn, &db.name).await?;
            applied.post_files += 1;
        }
    }
    for db in &ctx.plan.databases {
        use_db(conn, &db.name).await?;
        for file in &db.triggers {
            run_file(ctx, conn, &db.name, file, terminator).await?;
            use_db(conn, &db.name).await?;
            applied.trigger_files += 1;
        }
    }
    Ok(applied)
}

/// Creates views in dependency order: rounds of attempts, where a view whose base view does
/// not exist yet waits for the next round. Only views that still cannot be created (a cycle
/// through a missing object) fall back to the dump's stand-in tables. Creating a view on top
/// of a stand-in instead of the real view would store a differently qualified definition.
async fn create_views(ctx: &Ctx, conn: &mut Conn, db: &str, views: &[floodgate_format::View]) -> Result<usize> {
    let terminator = ctx.plan.format.terminator();
    let mut pending: Vec<&floodgate_format::View> = views.iter().collect();
    let mut stand_ins_created = false;
    let mut created = 0;
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut first_error = None;
        for view in pending.iter().copied() {
            let result = run_file(ctx, conn, db, &view.definition, terminator).await;
            use_db(conn, db).await?;
            match result {
                Ok(()) => created += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                    failed.push(view);
                }
            }
        }
        if failed.len() == pending.len() {
            if stand_ins_created {
                if let Some(e) = first_error {
                    return Err(e);
                }
            }
            for view in &failed {
                if let Some(stand_in) = &view.placeholder {
                    run_file(ctx, conn, db, stand_in, terminator).await?;
                    use_db(conn, db).await?;
                }
            }
            stand_ins_created = true;
        }
        pending = failed;
    }
    Ok(created)
}

async fn use_db(conn: &mut Conn, db: &str) -> Result<()> {
    conn.query_drop(format!("SET NAMES utf8mb4; USE {}", quote(db)))
        .await
        .map_err(LoadError::sql(format!("USE {}", quote(db))))
}

/// Runs a post-data file, statement by statement, each recorded in the checkpoints once it
/// ran: a resumed restore skips the object statements an earlier run completed (session
/// statements always run, they set up the ones that follow).
async fn run_file(
    ctx: &Ctx,
    conn: &mut Conn,
    db: &str,
    file: &SqlFile,
    terminator: floodgate_format::split::Terminator,
) -> Result<()> {
    let mut statements = floodgate_format::read_statements(file, terminator)?;
    for s in &mut statements {
        if let std::borrow::Cow::Owned(fixed) = ctx.plan.format.restore_post_statement(&s.text) {
            s.text = fixed;
        }
    }
    let relative = file.path.strip_prefix(&ctx.plan.root).unwrap_or(&file.path).to_string_lossy().into_owned();
    let mut steps = PostSteps { checkpoints: &ctx.checkpoints, db, name: &relative };
    for (n, s) in statements.iter().enumerate() {
        let at = || format!("{} at byte {}", file.path.display(), s.offset);
        steps.run(conn, n, &s.text, at).await?;
    }
    Ok(())
}

/// Post-data statements of one file or stream, recorded as they complete.
pub(crate) struct PostSteps<'a> {
    pub checkpoints: &'a Checkpoints,
    pub db: &'a str,
    /// Names the statement sequence (file path relative to the backup, or the stream).
    pub name: &'a str,
}

impl PostSteps<'_> {
    /// Runs statement `n` unless an earlier run did; records it.
    pub async fn run(&mut self, conn: &mut Conn, n: usize, text: &[u8], at: impl Fn() -> String) -> Result<()> {
        let key = format!("{}#{n}", self.name);
        let session = is_session_statement(text);
        if !session && self.checkpoints.has(step::POST, self.db, &key) {
            return Ok(());
        }
        match conn.query_drop(text).await {
            Ok(()) => {}
            // The one statement a killed run may have completed without recording it.
            Err(e) if self.checkpoints.is_resume() && checkpoint::already_exists(&e) => {}
            Err(e) => return Err(LoadError::Sql { context: at(), source: e }),
        }
        crate::failpoint::hit("post.statement").await;
        if !session {
            checkpoint::record_step(conn, &self.checkpoints.backup, (step::POST, self.db, &key), None).await?;
        }
        Ok(())
    }
}

/// SET and USE change only the session: re-run on resume, never recorded.
fn is_session_statement(text: &[u8]) -> bool {
    matches!(
        floodgate_format::sqltext::head_words(text, 1).first().map(String::as_str),
        Some("SET" | "USE" | "DELIMITER") | None
    )
}

/// Row counts on the target for every table, checked against what was loaded and what the
/// backup recorded. Returns one line per table checked; mismatches are an error.
pub async fn verify_counts(conn: &mut Conn, reports: &[crate::TableReport]) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    // Many tables per round trip: on thousands of small tables the round trips were most of
    // the verification's time. Each count is tagged with its table's position.
    for (batch_no, batch) in reports.chunks(COUNTS_PER_QUERY).enumerate() {
        let first = batch_no * COUNTS_PER_QUERY;
        let query = batch
            .iter()
            .enumerate()
            .map(|(i, r)| format!("SELECT {}, COUNT(*) FROM {}", first + i, qualified(&r.database, &r.table)))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let names = batch.iter().map(|r| qualified(&r.database, &r.table)).collect::<Vec<_>>().join(", ");
        let counts: Vec<(usize, u64)> =
            conn.query(query).await.map_err(LoadError::sql(format!("counting rows of {names}")))?;
        let counts: std::collections::HashMap<usize, u64> = counts.into_iter().collect();
        for (i, r) in batch.iter().enumerate() {
            let name = qualified(&r.database, &r.table);
            let count = counts.get(&(first + i)).copied().unwrap_or(0);
            let expected = r.expected_rows.unwrap_or(r.rows);
            if count != expected {
                bad.push(format!("{name}: {count} rows on the target, {expected} expected"));
            }
            lines.push(format!("{name}: {count} rows"));
        }
    }
    if !bad.is_empty() {
        return Err(LoadError::Integrity { context: "row count verification".into(), reason: bad.join("; ") });
    }
    Ok(lines)
}

/// Tables counted per query by `verify_counts`.
const COUNTS_PER_QUERY: usize = 64;
