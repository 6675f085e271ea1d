//! What a server is and holds: its version and flavour, the session a load runs under, and
//! the one definition of "user data on this server" that `--fast-target`, drills and
//! `floodgate dump` share.

use floodgate_format::SessionSettings;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::schema::{CheckpointSchema, Owner};
use crate::{ConnError, Result};

/// A server's version and the settings that decide what may be sent to it, read once per
/// command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    /// `SELECT VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1` or `8.0.40`.
    pub version: String,
    /// The largest statement the server accepts, in bytes.
    pub max_allowed_packet: u64,
    /// `read_only` (or MySQL's `super_read_only`) is on: the server is not meant to be
    /// written to.
    pub read_only: bool,
}

impl ServerInfo {
    /// Reads the version and settings over `conn`.
    pub async fn read(conn: &mut Conn) -> Result<ServerInfo> {
        let row: Option<(String, u64, u64)> = conn
            .query_first("SELECT VERSION(), @@GLOBAL.max_allowed_packet, @@GLOBAL.read_only")
            .await
            .map_err(ConnError::sql("reading the server version"))?;
        let (version, max_allowed_packet, read_only) = row.unwrap_or_default();
        let mut info = ServerInfo { version, max_allowed_packet, read_only: read_only != 0 };
        if info.is_mysql8() {
            let super_read_only: Option<u64> = conn
                .query_first("SELECT @@GLOBAL.super_read_only")
                .await
                .map_err(ConnError::sql("reading super_read_only"))?;
            info.read_only |= super_read_only.unwrap_or(0) != 0;
        }
        Ok(info)
    }

    /// Whether the server replicates from another (its replication SQL or I/O thread runs),
    /// or None when this account may not look (no REPLICATION CLIENT / SLAVE MONITOR).
    pub async fn is_replica(&self, conn: &mut Conn) -> Option<bool> {
        let rows: Vec<mysql_async::Row> = conn.query(self.replica_status_statement()).await.ok()?;
        let running = |row: &mysql_async::Row, column: &str| {
            row.columns_ref().iter().position(|c| c.name_str() == column).and_then(|i| row.get::<String, _>(i))
                == Some("Yes".to_string())
        };
        Some(rows.iter().any(|r| {
            ["Slave_SQL_Running", "Slave_IO_Running", "Replica_SQL_Running", "Replica_IO_Running"]
                .iter()
                .any(|c| running(r, c))
        }))
    }

    /// How far this replica is behind its source, in seconds: `None` when it is no replica
    /// (no replication configured), `Some(None)` when replication is stopped (the SQL or
    /// I/O thread is not running: `Seconds_Behind_Master` is NULL). With several sources,
    /// the furthest behind.
    pub async fn replication_lag(&self, conn: &mut Conn) -> Result<Option<Option<u64>>> {
        let statement = self.replica_status_statement();
        let rows: Vec<mysql_async::Row> = conn.query(statement).await.map_err(ConnError::sql(statement))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut worst = Some(0u64);
        for row in &rows {
            let position = row
                .columns_ref()
                .iter()
                .position(|c| matches!(c.name_str().as_ref(), "Seconds_Behind_Master" | "Seconds_Behind_Source"));
            let lag: Option<u64> = position.and_then(|i| row.get::<Option<u64>, _>(i)).flatten();
            worst = match (worst, lag) {
                (Some(w), Some(l)) => Some(w.max(l)),
                _ => None,
            };
        }
        Ok(Some(worst))
    }

    /// The largest event a replica applies: the least of max_allowed_packet and its
    /// replication packet limit (MariaDB's and MySQL's before 8.0.26 `slave_max_allowed_packet`,
    /// MySQL 8.0.26+'s `replica_max_allowed_packet`).
    pub async fn replica_packet_limit(&self, conn: &mut Conn) -> Result<u64> {
        let (major, minor) = self.major_minor();
        let variable = match !self.is_mariadb() && (major, minor, self.patch()) >= (8, 0, 26) {
            true => "replica_max_allowed_packet",
            false => "slave_max_allowed_packet",
        };
        let query = format!("SELECT @@GLOBAL.{variable}");
        let limit: Option<u64> = conn.query_first(&query).await.map_err(ConnError::sql(query.clone()))?;
        Ok(limit.unwrap_or(u64::MAX).min(self.max_allowed_packet))
    }

    fn replica_status_statement(&self) -> &'static str {
        match self.is_mariadb() {
            true => "SHOW ALL SLAVES STATUS",
            false if self.major_minor() >= (8, 0) => "SHOW REPLICA STATUS",
            false => "SHOW SLAVE STATUS",
        }
    }

    /// The patch number of the version (0 where unreadable).
    fn patch(&self) -> u32 {
        self.version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .nth(2)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// MariaDB (any version), as opposed to MySQL.
    pub fn is_mariadb(&self) -> bool {
        self.version.contains("MariaDB")
    }

    /// The major and minor version numbers (0 where unreadable).
    pub fn major_minor(&self) -> (u32, u32) {
        let mut parts = self.version.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty());
        let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (next(), next())
    }

    /// MySQL 8.0 or later (untested here: no MySQL binaries on the build machine).
    pub fn is_mysql8(&self) -> bool {
        !self.is_mariadb() && self.major_minor().0 >= 8
    }
}

/// Turns binary logging off for the session (needs SUPER or BINLOG ADMIN).
pub const SKIP_BINLOG: &str = "SET SESSION sql_log_bin = 0";

/// sql_mode for dumps that do not record one: what mysqldump and myloader use, so zero in an
/// AUTO_INCREMENT column stays zero and zero dates load.
const DEFAULT_SQL_MODE: &str = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION";

/// The statements every connection of a restore runs first: the dump's sql_mode and
/// time_zone, foreign key checks off, and binary logging off unless `binlog`.
pub fn load_session(settings: &SessionSettings, binlog: bool, server: &ServerInfo) -> Vec<String> {
    let mut init = vec!["SET NAMES utf8mb4".to_string()];
    if !binlog {
        init.push(SKIP_BINLOG.into());
    }
    // unique_checks stays on (DESIGN.md says off; see ARCHITECTURE.md): off, a transaction
    // loading 50 KB blob rows into an empty table cost MariaDB twice the CPU, and it gained
    // nothing on sysbench's rows.
    init.push("SET SESSION foreign_key_checks = 0".into());
    // Every warning of a statement is read back: none may hide behind the first 64.
    init.push("SET SESSION max_error_count = 65535".into());
    let mut mode = settings.sql_mode.clone().unwrap_or_else(|| DEFAULT_SQL_MODE.into());
    if server.is_mysql8() {
        // MySQL 8.0 removed NO_AUTO_CREATE_USER; dumps from 5.7 and MariaDB still carry it.
        mode = mode.split(',').filter(|m| !m.eq_ignore_ascii_case("NO_AUTO_CREATE_USER")).collect::<Vec<_>>().join(",");
    }
    init.push(format!("SET SESSION sql_mode = '{}'", mode.replace('\'', "''")));
    let tz = settings.time_zone.clone().unwrap_or_else(|| "+00:00".into());
    init.push(format!("SET SESSION time_zone = '{}'", tz.replace('\'', "''")));
    init
}

/// The default name of the schema that holds floodgate's checkpoints on a target
/// ([`CheckpointSchema`]).
pub const CHECKPOINT_SCHEMA: &str = "floodgate";

/// The server's own schemas: never user data, never dumped.
pub const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "sys", "information_schema", "performance_schema"];

/// A database outside the server's own schemas and floodgate's checkpoint schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDatabase {
    /// Its name.
    pub name: String,
    /// Tables, views, routines and events in it.
    pub objects: u64,
}

impl UserDatabase {
    /// It holds something: a database with no object (a distribution's empty `test`) has no
    /// data to lose.
    pub fn holds_data(&self) -> bool {
        self.objects > 0
    }
}

/// Every database on the server that is not one of its own schemas nor floodgate's checkpoint
/// schema (a user's database of that name counts), with the objects it holds, in name order.
/// "User data on this server" means any of these with an object in it.
pub async fn user_databases(conn: &mut Conn, checkpoints: &CheckpointSchema) -> Result<Vec<UserDatabase>> {
    let ours = checkpoints.owner(conn).await? == Owner::Floodgate;
    let rows: Vec<(String, u64)> = conn
        .query(
            "SELECT s.SCHEMA_NAME, \
               (SELECT COUNT(*) FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = s.SCHEMA_NAME) + \
               (SELECT COUNT(*) FROM information_schema.ROUTINES r WHERE r.ROUTINE_SCHEMA = s.SCHEMA_NAME) + \
               (SELECT COUNT(*) FROM information_schema.EVENTS e WHERE e.EVENT_SCHEMA = s.SCHEMA_NAME) \
             FROM information_schema.SCHEMATA s ORDER BY s.SCHEMA_NAME",
        )
        .await
        .map_err(ConnError::sql("listing the server's databases"))?;
    Ok(rows
        .into_iter()
        .filter(|(name, _)| {
            let system = SYSTEM_SCHEMAS.contains(&name.as_str());
            let floodgates = ours && name == checkpoints.name();
            !system && !floodgates
        })
        .map(|(name, objects)| UserDatabase { name, objects })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let maria = ServerInfo { version: "10.11.19-MariaDB-0+deb12u1".into(), ..Default::default() };
        assert!(maria.is_mariadb() && !maria.is_mysql8());
        assert_eq!(maria.major_minor(), (10, 11));
        let mysql = ServerInfo { version: "8.0.40".into(), ..Default::default() };
        assert!(mysql.is_mysql8());
        assert_eq!(ServerInfo::default().major_minor(), (0, 0));
    }

    #[test]
    fn mysql8_loses_no_auto_create_user() {
        let settings =
            SessionSettings { sql_mode: Some("NO_AUTO_CREATE_USER,ANSI_QUOTES".into()), ..Default::default() };
        let mysql = load_session(&settings, false, &ServerInfo { version: "8.0.40".into(), ..Default::default() });
        assert!(mysql.contains(&"SET SESSION sql_mode = 'ANSI_QUOTES'".to_string()), "{mysql:?}");
        let maria =
            load_session(&settings, true, &ServerInfo { version: "10.11.2-MariaDB".into(), ..Default::default() });
        assert!(!maria.contains(&SKIP_BINLOG.to_string()));
        assert!(maria.iter().any(|s| s.contains("NO_AUTO_CREATE_USER")));
    }
}
