//! `restore --check`: before anything is written, which privileges the restoring account has
//! for each step of this restore, and what happens without them: a step done another way
//! (binary logging stays on), skipped with a notice, or a refusal. Read from
//! information_schema's USER_PRIVILEGES and SCHEMA_PRIVILEGES for the account and the roles
//! it has enabled (privileges of the same name on MySQL and MariaDB; dynamic ones on either).

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::{LoadError, Result};

/// What a step lacking its privilege leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Without {
    /// The restore is refused before anything is written.
    Refused,
    /// The restore goes on without the step and says so.
    Notice,
}

/// One step of the restore and the privileges it needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepCheck {
    pub step: String,
    /// Each group is needed; within a group any one privilege will do.
    pub needs: Vec<Vec<String>>,
    /// The groups the account has none of.
    pub missing: Vec<Vec<String>>,
    pub without: Without,
    /// What happens without them.
    pub consequence: String,
}

impl StepCheck {
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
    }
}

/// What this restore will do that needs a privilege.
#[derive(Debug, Clone, Default)]
pub struct Steps {
    /// Databases created and loaded, as the target will name them.
    pub databases: Vec<String>,
    pub checkpoint_schema: String,
    /// sql_log_bin is turned off (not `--binlog`).
    pub binlog_off: bool,
    /// The restore loads with LOAD DATA LOCAL (local_infile is turned on if it is off).
    pub load_data_local: bool,
    /// Every chunk could load through INSERT statements instead (not a mydumper LOAD DATA
    /// file or a MySQL Shell data file).
    pub inserts_can_load: bool,
    /// Definers are kept as the backup has them (not `--skip-definer`/`--definer`).
    pub keep_definers: bool,
    pub fast_target: bool,
    pub users: bool,
}

/// Privileges the account has: global ones, and per database those whose pattern matches.
struct Held {
    global: Vec<String>,
    /// `'user'@'host'`.
    grantee: String,
}

/// Connects to `target` and checks every step of `steps` against what the account holds.
pub async fn check_target(target: &crate::ConnectOptions, steps: &Steps) -> Result<Vec<StepCheck>> {
    let mut conn = floodgate_conn::connect(target, &[]).await?;
    let checks = check(&mut conn, steps).await;
    let _ = conn.disconnect().await;
    checks
}

/// Checks every step of `steps` against what the account on `conn` holds.
pub async fn check(conn: &mut Conn, steps: &Steps) -> Result<Vec<StepCheck>> {
    let held = Held::read(conn).await?;
    let mut out = Vec::new();
    let object_privileges = ["CREATE", "ALTER", "INDEX", "INSERT", "SELECT", "CREATE VIEW", "SHOW VIEW"]
        .into_iter()
        .chain(["CREATE ROUTINE", "ALTER ROUTINE", "TRIGGER", "EVENT"]);
    for db in &steps.databases {
        let needs: Vec<Vec<String>> = object_privileges.clone().map(|p| vec![p.to_string()]).collect();
        out.push(
            held.step(
                conn,
                format!("create and load `{db}`"),
                Some(db),
                needs,
                Without::Refused,
                "the restore is refused (the server would deny the first CREATE or load)",
            )
            .await?,
        );
    }
    let schema = &steps.checkpoint_schema;
    let needs = ["CREATE", "INSERT", "SELECT", "UPDATE", "DELETE", "DROP"].map(|p| vec![p.to_string()]).to_vec();
    out.push(
        held.step(
            conn,
            format!("checkpoints in `{schema}`"),
            Some(schema),
            needs,
            Without::Refused,
            "the restore is refused: it cannot record what it committed",
        )
        .await?,
    );
    if steps.binlog_off {
        let needs = vec![any(&["SUPER", "BINLOG ADMIN", "BINLOG_ADMIN"])];
        out.push(
            held.step(
                conn,
                "stop binary logging for the load (sql_log_bin = 0)".into(),
                None,
                needs,
                Without::Notice,
                "the rows are written to the binary log and reach any replica (pass --binlog to say that is meant)",
            )
            .await?,
        );
    }
    let local_infile: Option<u8> =
        conn.query_first("SELECT @@GLOBAL.local_infile").await.map_err(LoadError::sql("reading local_infile"))?;
    if steps.load_data_local && local_infile != Some(1) {
        let needs = vec![any(&["SUPER", "SYSTEM_VARIABLES_ADMIN"])];
        let (without, consequence) = match steps.inserts_can_load {
            true => (Without::Notice, "the data loads through INSERT statements: exact, slower than LOAD DATA"),
            false => (Without::Refused, "the restore is refused (these data files load only with LOAD DATA)"),
        };
        let step = "turn local_infile on for LOAD DATA LOCAL (it is OFF)".to_string();
        out.push(held.step(conn, step, None, needs, without, consequence).await?);
    }
    if steps.keep_definers {
        let needs = vec![any(&["SUPER", "SET USER", "SET_USER_ID", "SET_ANY_DEFINER"])];
        out.push(
            held.step(
                conn,
                "create views, routines, triggers and events with their DEFINER".into(),
                None,
                needs,
                Without::Refused,
                "an object whose definer is another account fails (pass --skip-definer or --definer USER@HOST)",
            )
            .await?,
        );
    }
    if steps.fast_target {
        let needs = vec![any(&["SUPER", "SYSTEM_VARIABLES_ADMIN"])];
        out.push(
            held.step(
                conn,
                "--fast-target: relax durability".into(),
                None,
                needs,
                Without::Refused,
                "--fast-target is refused",
            )
            .await?,
        );
    }
    if steps.users {
        let needs = vec![any(&["CREATE USER"]), any(&["GRANT OPTION"])];
        out.push(
            held.step(
                conn,
                "--users: create accounts and grant".into(),
                None,
                needs,
                Without::Refused,
                "the accounts are not restored (--ignore-grant-errors keeps going)",
            )
            .await?,
        );
    }
    Ok(out)
}

fn any(privileges: &[&str]) -> Vec<String> {
    privileges.iter().map(|p| p.to_string()).collect()
}

impl Held {
    async fn read(conn: &mut Conn) -> Result<Held> {
        let conn_user: String = conn
            .query_first("SELECT CURRENT_USER()")
            .await
            .map_err(LoadError::sql("reading CURRENT_USER()"))?
            .unwrap_or_default();
        let grantee = grantee(&conn_user);
        let global: Vec<String> = conn
            .exec(
                format!(
                    "SELECT DISTINCT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE {GRANTEES} \
                     UNION SELECT 'GRANT OPTION' FROM information_schema.USER_PRIVILEGES \
                     WHERE {GRANTEES} AND IS_GRANTABLE = 'YES'"
                ),
                (&grantee, &grantee),
            )
            .await
            .map_err(LoadError::sql("reading information_schema.USER_PRIVILEGES"))?;
        Ok(Held { global, grantee })
    }

    /// The step, with the groups of `needs` the account holds none of, globally or (with
    /// `db`) on a database grant whose pattern matches `db`.
    async fn step(
        &self,
        conn: &mut Conn,
        step: String,
        db: Option<&str>,
        needs: Vec<Vec<String>>,
        without: Without,
        consequence: &str,
    ) -> Result<StepCheck> {
        let on_db: Vec<String> = match db {
            Some(db) => conn
                .exec(
                    format!(
                        "SELECT DISTINCT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES \
                         WHERE {GRANTEES} AND ? LIKE TABLE_SCHEMA"
                    ),
                    (&self.grantee, db),
                )
                .await
                .map_err(LoadError::sql("reading information_schema.SCHEMA_PRIVILEGES"))?,
            None => Vec::new(),
        };
        let has = |p: &String| self.global.iter().chain(&on_db).any(|h| h.eq_ignore_ascii_case(p));
        let missing = needs.iter().filter(|group| !group.iter().any(has)).cloned().collect();
        Ok(StepCheck { step, needs, missing, without, consequence: consequence.to_string() })
    }
}

/// `'user'@'host'`, as information_schema writes grantees, from CURRENT_USER()'s
/// `user@host` (a user name may hold `@`; a host never does).
fn grantee(current_user: &str) -> String {
    let (user, host) = current_user.rsplit_once('@').unwrap_or((current_user, "%"));
    format!("'{user}'@'{host}'")
}

/// The account, and the roles it has enabled (MariaDB writes a role's grantee `'role'`,
/// MySQL `'role'@'%'`).
const GRANTEES: &str = "(GRANTEE = ? \
     OR GRANTEE IN (SELECT CONCAT('''', ROLE_NAME, '''') FROM information_schema.ENABLED_ROLES) \
     OR GRANTEE IN (SELECT CONCAT('''', ROLE_NAME, '''@''%''') FROM information_schema.ENABLED_ROLES))";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grantees_as_information_schema_writes_them() {
        assert_eq!(grantee("app@localhost"), "'app'@'localhost'");
        assert_eq!(grantee("a@b@%"), "'a@b'@'%'");
    }
}
