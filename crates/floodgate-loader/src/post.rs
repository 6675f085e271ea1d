//! Phase 4, post-data objects, for every source: routines and events first, then views in
//! dependency order (a view may call a function or read another view), then triggers (a
//! trigger may call a procedure; it must not exist while rows load, or it would fire on
//! restored data).
//!
//! A backup's post-data statements come as [`Script`]s: a file of routines, one view's file,
//! a dump stream's post-data statements with the session statements around them. Each pass
//! walks every script and runs only the statements of its kind, replaying the session
//! statements (`SET`, `USE`) that precede each one, so every object is created under the
//! session it had in the backup, whatever order the backup listed them in. Each statement
//! is recorded in the checkpoints once it ran; a resumed restore skips those.

use std::collections::BTreeSet;

use floodgate_format::ident::{qualified, quote};
use floodgate_format::objects::{apply_definer_rule, definer, object_change, Definer, DefinerRule, ObjectKind};
use floodgate_format::split::Statement;
use floodgate_format::sqltext::head_words;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::checkpoint::{self, step, Checkpoints};
use crate::{LoadError, Result};

/// The passes, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Routines, events and anything else that is not a view or a trigger, in backup order.
    Routines,
    /// Views, in rounds until every one resolves.
    Views,
    /// Triggers.
    Triggers,
}

/// What a statement of a script is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `SET`, `USE`: replayed before the statements after it, never recorded.
    Session,
    /// Runs in this pass.
    Object(Pass),
}

/// Statements that run in one session, in order.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    /// Names its statements in the checkpoints (`key#n`).
    key: String,
    /// The database the checkpoints file it under ("" for a dump stream).
    db: String,
    /// Names it in errors: a file path, or the dump.
    file: String,
    /// Selected before it runs.
    use_db: Option<String>,
    statements: Vec<Statement>,
    roles: Vec<Role>,
    /// Its object statements form one unit, created (or retried) together: one view's file
    /// (drop its stand-in, create it).
    whole: bool,
    /// A view's stand-in, created only when views cannot be created in any order.
    stand_in: Option<Box<Script>>,
}

impl Script {
    /// Statements classified one by one: views, triggers, and the rest (routines, events).
    pub fn classified(
        key: String,
        db: String,
        file: String,
        use_db: Option<String>,
        statements: Vec<Statement>,
    ) -> Script {
        let roles = statements.iter().map(|s| role(&s.text)).collect();
        Script { key, db, file, use_db, statements, roles, whole: false, stand_in: None }
    }

    /// One view's file, with the stand-in to create if views on views cannot be ordered.
    pub fn view(mut file: Script, stand_in: Option<Script>) -> Script {
        file.roles = file
            .statements
            .iter()
            .map(|s| if is_session(&s.text) { Role::Session } else { Role::Object(Pass::Views) })
            .collect();
        file.whole = true;
        file.stand_in = stand_in.map(Box::new);
        file
    }

    /// Keeps only the statements `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&Statement) -> bool) {
        let kept: Vec<bool> = self.statements.iter().map(&keep).collect();
        let mut flags = kept.iter();
        self.statements.retain(|_| *flags.next().unwrap_or(&true));
        let mut flags = kept.iter();
        self.roles.retain(|_| *flags.next().unwrap_or(&true));
    }

    /// Everything runs in one pass (a trigger file; a stand-in).
    pub fn all_in(mut self, pass: Pass) -> Script {
        self.roles = self
            .statements
            .iter()
            .map(|s| if is_session(&s.text) { Role::Session } else { Role::Object(pass) })
            .collect();
        self
    }

    /// The statements of `pass` as units: each alone, or all together in a whole script.
    fn units(&self, pass: Pass) -> Vec<Vec<usize>> {
        let mine: Vec<usize> = (0..self.statements.len()).filter(|&i| self.roles[i] == Role::Object(pass)).collect();
        match self.whole {
            true if mine.is_empty() => Vec::new(),
            true => vec![mine],
            false => mine.into_iter().map(|i| vec![i]).collect(),
        }
    }
}

fn is_session(text: &[u8]) -> bool {
    matches!(head_words(text, 1).first().map(String::as_str), Some("SET" | "USE" | "DELIMITER") | None)
}

fn role(text: &[u8]) -> Role {
    if is_session(text) {
        return Role::Session;
    }
    match object_change(text).map(|c| c.kind) {
        Some(ObjectKind::View) => Role::Object(Pass::Views),
        Some(ObjectKind::Trigger) => Role::Object(Pass::Triggers),
        _ => Role::Object(Pass::Routines),
    }
}

/// A backup's post-data: scripts, each counted as a routines file or a trigger file when it
/// came from one.
#[derive(Debug, Default)]
pub(crate) struct PostData {
    pub scripts: Vec<Script>,
    /// Files of routines and events, and of triggers, for the report.
    pub routine_files: usize,
    pub trigger_files: usize,
    /// Scripts run after every pass, as the backup ends (MySQL Shell's `@.post.sql`).
    pub last: Vec<Script>,
}

/// What the post-data phase did.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub views: usize,
}

/// Runs the passes over `post` on `conn`, each object's `DEFINER=` treated as `definers`
/// says, once every definer the objects will have is known to exist on the target.
pub(crate) async fn apply(
    conn: &mut Conn,
    checkpoints: &Checkpoints,
    post: &PostData,
    definers: &DefinerRule,
) -> Result<Applied> {
    refuse_missing_definers(conn, post, definers).await?;
    let mut runner = Runner { conn, checkpoints, definers, at: None, views: BTreeSet::new() };
    for script in &post.scripts {
        for unit in script.units(Pass::Routines) {
            runner.run(script, &unit).await?;
        }
    }
    runner.views(&post.scripts).await?;
    for script in &post.scripts {
        for unit in script.units(Pass::Triggers) {
            runner.run(script, &unit).await?;
        }
    }
    let views = runner.views.len();
    run_in_order(runner.conn, checkpoints, &post.last, definers).await?;
    Ok(Applied { views })
}

/// Runs every statement of `scripts` in order (each recorded once it ran): scripts that
/// open or close a backup (MySQL Shell's `@.sql`, `@.post.sql`).
pub(crate) async fn run_in_order(
    conn: &mut Conn,
    checkpoints: &Checkpoints,
    scripts: &[Script],
    definers: &DefinerRule,
) -> Result<()> {
    let mut runner = Runner { conn, checkpoints, definers, at: None, views: BTreeSet::new() };
    for script in scripts {
        for unit in script.units(Pass::Routines) {
            runner.run(script, &unit).await?;
        }
    }
    Ok(())
}

struct Runner<'a> {
    conn: &'a mut Conn,
    checkpoints: &'a Checkpoints,
    definers: &'a DefinerRule,
    /// The script (by key) whose session this connection stands in, and how far into it.
    at: Option<(String, usize)>,
    /// Views created, by (database or script, name).
    views: BTreeSet<(String, String)>,
}

impl Runner<'_> {
    /// Views in rounds: a view whose base view or function does not exist yet fails and is
    /// tried in the next round. When a round creates nothing, the stand-ins of the views
    /// left are created (a cycle through a missing object), and then a round that creates
    /// nothing reports the first error.
    async fn views(&mut self, scripts: &[Script]) -> Result<()> {
        let mut pending: Vec<(&Script, Vec<usize>)> =
            scripts.iter().flat_map(|s| s.units(Pass::Views).into_iter().map(move |u| (s, u))).collect();
        let mut stand_ins_created = false;
        while !pending.is_empty() {
            let mut failed = Vec::new();
            let mut first_error = None;
            for (script, unit) in pending.iter().cloned() {
                if let Err(e) = self.run(script, &unit).await {
                    if e.transient().is_some() {
                        return Err(e);
                    }
                    first_error.get_or_insert(e);
                    failed.push((script, unit));
                }
            }
            if failed.len() == pending.len() {
                if stand_ins_created {
                    return Err(first_error.unwrap_or_else(|| LoadError::Internal("views failed without error".into())));
                }
                for (script, _) in &failed {
                    if let Some(stand_in) = &script.stand_in {
                        for unit in stand_in.units(Pass::Views) {
                            self.run(stand_in, &unit).await?;
                        }
                    }
                }
                stand_ins_created = true;
            }
            pending = failed;
        }
        Ok(())
    }

    /// Runs one unit of `script`: the session statements before each of its statements, then
    /// the statement unless an earlier run recorded it.
    async fn run(&mut self, script: &Script, unit: &[usize]) -> Result<()> {
        for &i in unit {
            self.catch_up(script, i).await?;
            let s = &script.statements[i];
            let key = format!("{}#{i}", script.key);
            if !self.checkpoints.has(step::POST, &script.db, &key) {
                let text = apply_definer_rule(&s.text, self.definers);
                match self.conn.query_drop(&text[..]).await {
                    Ok(()) => {}
                    // The one statement a killed run may have completed without recording it.
                    Err(e) if self.checkpoints.is_resume() && checkpoint::already_exists(&e) => {}
                    Err(e) => {
                        self.at = None; // a failed statement may have left the session anywhere
                        return Err(LoadError::sql(format!("{} at byte {}", script.file, s.offset))(e));
                    }
                }
                crate::failpoint::hit("post.statement").await;
                checkpoint::record_step(self.conn, &self.checkpoints.ledger, (step::POST, &script.db, &key), None)
                    .await?;
            }
            if let Some(change) = object_change(&s.text).filter(|c| c.create && c.kind == ObjectKind::View) {
                self.views.insert((change.database.unwrap_or_else(|| script.db.clone()), change.name));
            }
            self.at = Some((script.key.clone(), i + 1));
        }
        Ok(())
    }

    /// Brings the connection's session to where `script` stood just before statement `i`:
    /// the script's database, then its session statements up to `i`, in one round trip.
    async fn catch_up(&mut self, script: &Script, i: usize) -> Result<()> {
        let from = match &self.at {
            Some((at, next)) if *at == script.key && *next <= i => *next,
            _ => {
                let select = match &script.use_db {
                    Some(db) => format!("SET NAMES utf8mb4; USE {}", quote(db)),
                    None => "SET NAMES utf8mb4".into(),
                };
                self.conn.query_drop(&select).await.map_err(LoadError::sql(format!("{}: {select}", script.file)))?;
                0
            }
        };
        let session: Vec<&[u8]> =
            (from..i).filter(|&j| script.roles[j] == Role::Session).map(|j| &script.statements[j].text[..]).collect();
        if let Some(first) = (from..i).find(|&j| script.roles[j] == Role::Session) {
            let at = format!("{} at byte {}", script.file, script.statements[first].offset);
            self.conn.query_drop(session.join(&b";\n"[..])).await.map_err(LoadError::sql(at))?;
        }
        self.at = Some((script.key.clone(), i));
        Ok(())
    }
}

/// Refuses to create objects whose definer (as `rule` leaves it) has no account on the
/// target: they would be created, with a note, and fail when used (a view, a trigger on every
/// insert). Each is named. Where this account may not read the account list, the check is
/// skipped with a warning.
async fn refuse_missing_definers(conn: &mut Conn, post: &PostData, rule: &DefinerRule) -> Result<()> {
    let mut missing = Vec::new();
    let mut known: std::collections::HashMap<(String, String), bool> = Default::default();
    for script in &post.scripts {
        let mut current_db = script.use_db.clone().unwrap_or_else(|| script.db.clone());
        for (s, role) in script.statements.iter().zip(&script.roles) {
            if let Some(db) = floodgate_format::mysqldump::use_target(&s.text) {
                current_db = db;
            }
            let Role::Object(_) = role else { continue };
            let text = apply_definer_rule(&s.text, rule);
            let (Some(change), Some(Definer { account: Some(account), .. })) = (object_change(&text), definer(&text))
            else {
                continue;
            };
            let exists = match known.get(&account) {
                Some(&exists) => exists,
                None => match account_exists(conn, &account).await {
                    Some(exists) => *known.entry(account.clone()).or_insert(exists),
                    None => {
                        tracing::warn!("cannot read the target's accounts: the definers of views, routines, triggers and events are not checked");
                        return Ok(());
                    }
                },
            };
            if !exists {
                let db = change.database.clone().unwrap_or_else(|| current_db.clone());
                missing.push(format!(
                    "{} {} (DEFINER=`{}`@`{}`)",
                    change.kind.name(),
                    qualified(&db, &change.name),
                    account.0,
                    account.1
                ));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    missing.dedup();
    Err(LoadError::Refused(format!(
        "the backup's {} object(s) name a definer the target has no account for: {}. They were not created \
         (the rows are restored and checkpointed). Create those accounts, or run again with --skip-definer \
         (create them as the restoring account) or --definer USER@HOST.",
        missing.len(),
        missing.join(", ")
    )))
}

/// Whether `user`@`host` is an account on the target; None if this account may not look.
async fn account_exists(conn: &mut Conn, (user, host): &(String, String)) -> Option<bool> {
    let n: Option<u64> =
        conn.exec_first("SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?", (user, host)).await.ok()?;
    Some(n.unwrap_or(0) > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(text: &str) -> Statement {
        Statement { offset: 0, text: text.as_bytes().to_vec(), terminated: true }
    }

    #[test]
    fn passes_put_routines_before_views_before_triggers() {
        let script = Script::classified(
            "post/d.sql".into(),
            "d".into(),
            "post/d.sql".into(),
            Some("d".into()),
            vec![
                st("CREATE VIEW v AS SELECT f()"),
                st("SET sql_mode = ''"),
                st("CREATE TRIGGER t AFTER INSERT ON x FOR EACH ROW CALL p()"),
                st("CREATE FUNCTION f() RETURNS INT RETURN 1"),
                st("/*!50003 CREATE*/ /*!50020 DEFINER=`root`@`%`*/ /*!50003 PROCEDURE `p`() BEGIN END */"),
                st("ALTER DATABASE d CHARACTER SET latin1"),
            ],
        );
        assert_eq!(script.units(Pass::Routines), vec![vec![3], vec![4], vec![5]]);
        assert_eq!(script.units(Pass::Views), vec![vec![0]]);
        assert_eq!(script.units(Pass::Triggers), vec![vec![2]]);
        let view = Script::view(
            Script::classified(
                "v.sql".into(),
                "d".into(),
                "v.sql".into(),
                None,
                vec![st("SET NAMES binary"), st("DROP TABLE IF EXISTS v"), st("CREATE VIEW v AS SELECT 1")],
            ),
            None,
        );
        assert_eq!(view.units(Pass::Views), vec![vec![1, 2]], "a view's file is one unit");
        assert!(view.units(Pass::Routines).is_empty());
    }
}
