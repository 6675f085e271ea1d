//! `--set-gtid-purged`: the restored server takes the source's GTID position at the snapshot,
//! so it can become a replica of the source (or of its replicas) without a gap or a repeat.
//! MySQL: `GTID_PURGED = '+<set>'` (appended to what the target has). MariaDB, from a
//! MariaDB source: `gtid_slave_pos`. Checked before anything changes; applied once, at the
//! end, and recorded so a resumed restore does not apply it again.

use floodgate_conn::server::ServerInfo;
use floodgate_format::Position;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::checkpoint::{self, step, Checkpoints};
use crate::{LoadError, Result};

/// The checkpoint step's name.
const KEY: &str = "set-gtid-purged";

/// The statement that sets the target's GTID position, or why it cannot be set.
pub(crate) fn statement(position: Option<&Position>, server: &ServerInfo) -> Result<String> {
    let gtid = position.and_then(|p| p.gtid_executed.as_deref()).map(str::trim).filter(|g| !g.is_empty());
    let Some(gtid) = gtid else {
        return Err(LoadError::Refused(
            "--set-gtid-purged: the backup records no GTID set (the source had none, or the dump tool could not \
             read it); nothing was changed"
                .into(),
        ));
    };
    if gtid.contains(['\'', '\\']) {
        return Err(LoadError::Refused(format!("--set-gtid-purged: {gtid:?} is not a GTID set")));
    }
    let mariadb_set = gtid.split(',').all(|g| {
        let parts: Vec<&str> = g.trim().split('-').collect();
        parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    match (server.is_mariadb(), mariadb_set) {
        (true, true) => Ok(format!("SET GLOBAL gtid_slave_pos = '{gtid}'")),
        (false, false) => Ok(format!("SET @@GLOBAL.GTID_PURGED = '+{gtid}'")),
        (true, false) => Err(LoadError::Refused(format!(
            "--set-gtid-purged: the backup's GTID set {gtid} is MySQL's; a MariaDB target cannot take it. Nothing \
             was changed"
        ))),
        (false, true) => Err(LoadError::Refused(format!(
            "--set-gtid-purged: the backup's GTID position {gtid} is MariaDB's; a MySQL target cannot take it. \
             Nothing was changed"
        ))),
    }
}

/// Applies `statement` once across runs.
pub(crate) async fn apply(conn: &mut Conn, checkpoints: &Checkpoints, statement: &str) -> Result<bool> {
    if checkpoints.has(step::GLOBAL, "", KEY) {
        return Ok(false);
    }
    conn.query_drop(statement).await.map_err(LoadError::sql(format!("--set-gtid-purged: {statement}")))?;
    checkpoint::record_step(conn, &checkpoints.ledger, (step::GLOBAL, "", KEY), None).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(version: &str) -> ServerInfo {
        ServerInfo { version: version.into(), ..Default::default() }
    }

    fn at(gtid: &str) -> Position {
        Position { gtid_executed: Some(gtid.into()), ..Default::default() }
    }

    #[test]
    fn each_server_gets_its_own_statement_and_the_wrong_kind_is_refused() {
        let (maria, mysql) = (server("10.11.19-MariaDB"), server("8.0.41"));
        assert_eq!(statement(Some(&at("0-1-42,1-2-7")), &maria).unwrap(), "SET GLOBAL gtid_slave_pos = '0-1-42,1-2-7'");
        let uuid = "2d75bd50-5781-11ec-86fb-a4bb6dd118c2:1-5628";
        assert_eq!(statement(Some(&at(uuid)), &mysql).unwrap(), format!("SET @@GLOBAL.GTID_PURGED = '+{uuid}'"));
        assert!(statement(Some(&at(uuid)), &maria).is_err());
        assert!(statement(Some(&at("0-1-42")), &mysql).is_err());
        assert!(statement(Some(&at("")), &maria).is_err());
        assert!(statement(None, &maria).is_err());
        assert!(statement(Some(&at("0-1-1'; DROP")), &maria).is_err());
    }
}
