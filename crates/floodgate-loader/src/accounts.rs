//! Accounts and grants a backup carries (MySQL Shell's `@.users.sql`), restored with
//! `--users`: every account is created before any object (an object's DEFINER must exist)
//! and granted after every object (a grant names tables, routines and roles). Never root,
//! the server's own accounts, or the account floodgate restores as: a restore must not lock
//! its operator out or change what it runs with. Every statement is idempotent (`CREATE USER
//! IF NOT EXISTS`, `GRANT`), so a resumed restore runs them again.

use floodgate_format::shell::{AccountBlock, AccountStep};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::session::Session;
use crate::{LoadError, Result};

/// Accounts no restore touches: the superuser and the server's own.
const NEVER: [&str; 5] = ["root", "mariadb.sys", "mysql.sys", "mysql.session", "mysql.infoschema"];

/// True for an account (user, host) floodgate never changes: root, the server's own, and
/// `me`, the account it restores as.
pub(crate) fn protected((user, host): &(String, String), me: &(String, String)) -> bool {
    NEVER.contains(&user.as_str()) || (user, host) == (&me.0, &me.1)
}

/// Runs the blocks of `step` for every account but those floodgate never touches. Returns
/// how many accounts it restored.
pub(crate) async fn apply(
    conn: &mut Conn,
    session: &Session,
    blocks: &[AccountBlock],
    step: AccountStep,
    file: &str,
) -> Result<usize> {
    let me = current_user(conn).await?;
    let mut done = 0;
    for block in blocks.iter().filter(|b| b.step == step) {
        if protected(&block.user_host(), &me) {
            if step == AccountStep::Create {
                session.progress.notice(format!(
                    "--users: {} is not restored: floodgate never changes root, the server's own accounts or the \
                     account it restores as",
                    block.account
                ));
            }
            continue;
        }
        match run_block(conn, block).await {
            Ok(()) => done += 1,
            Err(e) if session.options.ignore_grant_errors => {
                session.progress.notice(format!("--ignore-grant-errors: {file}: account {}: {e}", block.account))
            }
            Err(e) => {
                return Err(LoadError::Refused(format!(
                    "{file}: account {}: {e}. Nothing after it was applied; fix it on the target, or pass \
                     --ignore-grant-errors to go on without it",
                    block.account
                )))
            }
        }
    }
    Ok(done)
}

async fn run_block(conn: &mut Conn, block: &AccountBlock) -> std::result::Result<(), mysql_async::Error> {
    for statement in &block.statements {
        conn.query_drop(statement.as_str()).await?;
    }
    Ok(())
}

/// The account this connection is: `CURRENT_USER()` as (user, host).
pub(crate) async fn current_user(conn: &mut Conn) -> Result<(String, String)> {
    let me: Option<String> =
        conn.query_first("SELECT CURRENT_USER()").await.map_err(LoadError::sql("reading CURRENT_USER()"))?;
    Ok(floodgate_format::shell::split_account(&me.unwrap_or_default()))
}
