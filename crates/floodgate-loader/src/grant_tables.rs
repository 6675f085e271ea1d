//! Accounts from the privilege tables of a whole-server dump (`mariadb-dump --all-databases`
//! holds `mysql.global_priv`, `mysql.db`, ... as rows), restored with `--users`. Loading those
//! tables as the dump has them, as `mariadb < dump.sql` does, would replace the target's
//! accounts, its root and floodgate's own included. Instead the dump's rows go into temporary
//! tables on one connection, the rows of accounts floodgate never touches are dropped, and the
//! rest are copied into the target's own tables, the columns both have, then `FLUSH
//! PRIVILEGES`. Rows the target already holds identically (a resumed run) are not copied again;
//! an account the target holds differently is refused by name, or kept as the target has it
//! under `--ignore-grant-errors`.

use floodgate_format::split::Statement;
use floodgate_format::sqltext;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::session::Session;
use crate::{LoadError, Result};

/// The privilege tables, with the columns that name the account a row belongs to. The
/// first two are where accounts themselves live (MariaDB 10.4+, and MySQL); the others
/// grant to them.
const GRANT_TABLES: [(&str, &str, &str); 12] = [
    ("global_priv", "User", "Host"),
    ("user", "User", "Host"),
    ("db", "User", "Host"),
    ("tables_priv", "User", "Host"),
    ("columns_priv", "User", "Host"),
    ("procs_priv", "User", "Host"),
    ("proxies_priv", "User", "Host"),
    ("roles_mapping", "User", "Host"),
    ("global_grants", "USER", "HOST"),
    ("default_roles", "USER", "HOST"),
    ("role_edges", "TO_USER", "TO_HOST"),
    ("password_history", "User", "Host"),
];

/// The most dump text of privilege tables kept in memory: far beyond any real server's
/// accounts, and a bound on what a hostile dump can make floodgate hold.
const MAX_BYTES: usize = 64 << 20;

/// True for a table of the `mysql` schema that holds accounts or their privileges.
pub(crate) fn is_grant_table(table: &str) -> bool {
    GRANT_TABLES.iter().any(|(t, _, _)| *t == table)
}

/// The dump's CREATE TABLEs and INSERTs of the privilege tables, as the stream met them.
#[derive(Debug, Default)]
pub(crate) struct GrantRows {
    statements: Vec<Statement>,
    bytes: usize,
}

impl GrantRows {
    /// Keeps a CREATE TABLE or INSERT of a privilege table.
    pub fn keep(&mut self, statement: Statement, source: &str) -> Result<()> {
        self.bytes += statement.text.len();
        if self.bytes > MAX_BYTES {
            return Err(LoadError::Refused(format!(
                "{source} at byte {}: the `mysql` schema's privilege tables hold more than {} MiB; --users restores \
                 accounts from them in memory. Restore the accounts from `mariadb-dump --system=users` instead",
                statement.offset,
                MAX_BYTES >> 20
            )));
        }
        self.statements.push(statement);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

/// Restores the accounts `rows` hold into the target's privilege tables. Returns the number
/// of accounts restored.
pub(crate) async fn restore(session: &Session, rows: GrantRows) -> Result<usize> {
    let mut conn = session.connect().await?;
    let me = crate::accounts::current_user(&mut conn).await?;
    let schema = session.options.checkpoint_schema.name().to_string();
    run(&mut conn, &format!("USE {}", floodgate_format::ident::quote(&schema)), "selecting floodgate's schema").await?;
    let mut loaded = Vec::new();
    for s in &rows.statements {
        let text = match as_temporary(&s.text) {
            Some(create) => {
                loaded.push(create_target(&s.text).unwrap_or_default());
                create
            }
            None => s.text.clone(),
        };
        conn.query_drop(&text[..])
            .await
            .map_err(LoadError::sql(format!("{} at byte {} (mysql schema, --users)", session.source, s.offset)))?;
    }
    loaded.retain(|t| is_grant_table(t));
    loaded.dedup();
    let copied = copy_into_target(&mut conn, session, &loaded, &me).await;
    for table in &loaded {
        // The temporary tables go with the connection anyway; dropped now so a failure above
        // leaves nothing named like the server's own tables behind.
        let _ =
            conn.query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {}", floodgate_format::ident::quote(table))).await;
    }
    copied
}

async fn copy_into_target(
    conn: &mut Conn,
    session: &Session,
    loaded: &[String],
    me: &(String, String),
) -> Result<usize> {
    let columns_of = |t: &str| GRANT_TABLES.iter().find(|(n, _, _)| *n == t).map(|(_, u, h)| (*u, *h));
    for table in loaded {
        let Some((user, host)) = columns_of(table) else { continue };
        for (u, h) in never_touched(conn, table, (user, host), me).await? {
            conn.exec_drop(
                format!("DELETE FROM {} WHERE {} = ? AND {} = ?", quote(table), quote(user), quote(host)),
                (u, h),
            )
            .await
            .map_err(LoadError::sql(format!("--users: leaving out accounts of mysql.{table}")))?;
        }
    }
    let mut accounts = 0;
    let mut plans = Vec::new();
    for table in loaded {
        let common = common_columns(conn, table).await?;
        if common.is_empty() {
            let rows = count(conn, table).await?;
            if rows > 0 && !session.options.ignore_grant_errors {
                return Err(LoadError::Refused(format!(
                    "--users: the dump's mysql.{table} holds {rows} row(s) and the target has no such table (a dump \
                     of another server kind or version). Nothing of the dump's privilege tables was applied; \
                     restore the accounts from `--system=users` or SHOW CREATE USER / SHOW GRANTS instead, or \
                     pass --ignore-grant-errors to go on without them"
                )));
            }
            continue;
        }
        forget_identical(conn, table, &common).await?;
        if matches!(table.as_str(), "global_priv" | "user") {
            refuse_changed_accounts(conn, session, table, loaded).await?;
            accounts += count(conn, table).await?;
        }
        plans.push((table, common));
    }
    for (table, common) in plans {
        let list = common.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let ignore = if session.options.ignore_grant_errors { "IGNORE " } else { "" };
        conn.query_drop(format!(
            "INSERT {ignore}INTO mysql.{} ({list}) SELECT {list} FROM {}",
            quote(table),
            quote(table)
        ))
        .await
        .map_err(LoadError::sql(format!("--users: copying the dump's mysql.{table} into the target's")))?;
    }
    run(conn, "FLUSH PRIVILEGES", "--users: FLUSH PRIVILEGES").await?;
    Ok(accounts as usize)
}

/// The accounts of `table` floodgate never changes: root, the server's own, and itself.
async fn never_touched(
    conn: &mut Conn,
    table: &str,
    (user, host): (&str, &str),
    me: &(String, String),
) -> Result<Vec<(String, String)>> {
    let all: Vec<(String, String)> = conn
        .query(format!("SELECT DISTINCT {}, {} FROM {}", quote(user), quote(host), quote(table)))
        .await
        .map_err(LoadError::sql(format!("--users: reading the accounts of mysql.{table}")))?;
    Ok(all.into_iter().filter(|a| crate::accounts::protected(a, me)).collect())
}

/// Columns the dump's table and the target's have both, in the target's order.
async fn common_columns(conn: &mut Conn, table: &str) -> Result<Vec<String>> {
    let context = || format!("--users: reading the columns of mysql.{table}");
    let target: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'mysql' AND TABLE_NAME = ? \
             AND TABLE_NAME IN (SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'mysql' \
             AND TABLE_TYPE = 'BASE TABLE') ORDER BY ORDINAL_POSITION",
            (table,),
        )
        .await
        .map_err(LoadError::sql(context()))?;
    let dumped: Vec<String> = conn
        .query_map(format!("SHOW COLUMNS FROM {}", quote(table)), |row: mysql_async::Row| {
            row.get::<String, _>(0).unwrap_or_default()
        })
        .await
        .map_err(LoadError::sql(context()))?;
    Ok(target.into_iter().filter(|c| dumped.iter().any(|d| d.eq_ignore_ascii_case(c))).collect())
}

/// Drops the dump's rows the target holds exactly (a resumed run copied them already).
async fn forget_identical(conn: &mut Conn, table: &str, common: &[String]) -> Result<()> {
    let same = common.iter().map(|c| format!("d.{0} <=> t.{0}", quote(c))).collect::<Vec<_>>().join(" AND ");
    conn.query_drop(format!("DELETE d FROM {} d JOIN mysql.{} t ON {same}", quote(table), quote(table)))
        .await
        .map_err(LoadError::sql(format!("--users: comparing mysql.{table} with the target's")))
}

/// An account the target has and the dump defines differently: refused by name (the
/// target's is kept, and its grants from the dump skipped, under `--ignore-grant-errors`).
async fn refuse_changed_accounts(conn: &mut Conn, session: &Session, table: &str, loaded: &[String]) -> Result<()> {
    let clash: Vec<(String, String)> = conn
        .query(format!(
            "SELECT d.User, d.Host FROM {} d JOIN mysql.{} t ON t.User = d.User AND t.Host = d.Host ORDER BY 1, 2",
            quote(table),
            quote(table)
        ))
        .await
        .map_err(LoadError::sql(format!("--users: comparing the accounts of mysql.{table}")))?;
    if clash.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = clash.iter().map(|(u, h)| format!("'{u}'@'{h}'")).collect();
    if !session.options.ignore_grant_errors {
        return Err(LoadError::Refused(format!(
            "--users: the target already has {} and the dump's mysql.{table} defines it differently. Nothing of the \
             dump's privilege tables was applied; drop it on the target, or pass --ignore-grant-errors to keep the \
             target's",
            names.join(", ")
        )));
    }
    session.progress.notice(format!("--ignore-grant-errors: kept the target's {}", names.join(", ")));
    for (u, h) in clash {
        for (t, user, host) in GRANT_TABLES.iter().filter(|(t, _, _)| loaded.iter().any(|l| l == t)) {
            conn.exec_drop(
                format!("DELETE FROM {} WHERE {} = ? AND {} = ?", quote(t), quote(user), quote(host)),
                (&u, &h),
            )
            .await
            .map_err(LoadError::sql(format!("--users: leaving out {u}@{h} of mysql.{t}")))?;
        }
    }
    Ok(())
}

async fn count(conn: &mut Conn, table: &str) -> Result<u64> {
    let n: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {}", quote(table)))
        .await
        .map_err(LoadError::sql(format!("--users: counting mysql.{table}")))?;
    Ok(n.unwrap_or(0))
}

async fn run(conn: &mut Conn, statement: &str, context: &str) -> Result<()> {
    conn.query_drop(statement).await.map_err(LoadError::sql(context.to_string()))
}

fn quote(name: &str) -> String {
    floodgate_format::ident::quote(name)
}

/// `CREATE TABLE ...` as `CREATE TEMPORARY TABLE ...`; None for any other statement.
fn as_temporary(text: &[u8]) -> Option<Vec<u8>> {
    let words = sqltext::head_words(text, 2);
    if words.first().is_none_or(|w| w != "CREATE") || words.get(1).is_none_or(|w| w != "TABLE") {
        return None;
    }
    // mysqldump writes it plainly: `CREATE TABLE`, no comment in between.
    let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = text.get(start..)?;
    if !rest.get(..6)?.eq_ignore_ascii_case(b"CREATE") {
        return None;
    }
    Some([&b"CREATE TEMPORARY"[..], &rest[6..]].concat())
}

/// The table a CREATE TABLE names.
fn create_target(text: &[u8]) -> Option<String> {
    match floodgate_format::mysqldump::schema_target(text)? {
        floodgate_format::mysqldump::SchemaTarget::Table(_, t) => Some(t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_table_becomes_temporary() {
        let t = as_temporary(b"\nCREATE TABLE `global_priv` (\n `Host` char(255)) ENGINE=Aria").unwrap();
        assert_eq!(
            String::from_utf8(t).unwrap(),
            "CREATE TEMPORARY TABLE `global_priv` (\n `Host` char(255)) ENGINE=Aria"
        );
        assert!(as_temporary(b"INSERT INTO `db` VALUES (1)").is_none());
        assert!(as_temporary(b"CREATE VIEW `user` AS SELECT 1").is_none());
        assert_eq!(create_target(b"CREATE TABLE `db` (a int)").as_deref(), Some("db"));
    }
}
