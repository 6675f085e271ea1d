//! A database's fingerprint: what two copies must share to be the same data.
//!
//! Row counts, `CHECKSUM TABLE`, `SHOW CREATE TABLE`, and the definitions of views, triggers,
//! routines and events. Tests compare a source with its restored copy; drills compare a
//! restore with what the backup records.

use std::collections::BTreeMap;

use floodgate_format::ident::{qualified, quote};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use crate::{LoadError, Result};

/// Everything compared, keyed by object name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Fingerprint {
    /// table -> (rows, checksum, SHOW CREATE TABLE)
    pub tables: BTreeMap<String, (u64, Option<u64>, String)>,
    /// view -> definition
    pub views: BTreeMap<String, String>,
    /// trigger -> (table, timing, event, statement)
    pub triggers: BTreeMap<String, String>,
    /// routine -> SHOW CREATE
    pub routines: BTreeMap<String, String>,
    /// event -> SHOW CREATE
    pub events: BTreeMap<String, String>,
}

impl Fingerprint {
    /// Lines describing each difference, empty when equal.
    pub fn differences(&self, other: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        diff_maps("table", &self.tables, &other.tables, &mut out);
        diff_maps("view", &self.views, &other.views, &mut out);
        diff_maps("trigger", &self.triggers, &other.triggers, &mut out);
        diff_maps("routine", &self.routines, &other.routines, &mut out);
        diff_maps("event", &self.events, &other.events, &mut out);
        out
    }
}

fn diff_maps<V: PartialEq + std::fmt::Debug>(
    what: &str,
    a: &BTreeMap<String, V>,
    b: &BTreeMap<String, V>,
    out: &mut Vec<String>,
) {
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("{what} {k}: missing in the second")),
            Some(w) if w != v => out.push(format!("{what} {k}: {v:?} != {w:?}")),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("{what} {k}: missing in the first"));
    }
}

fn err(what: String) -> impl FnOnce(mysql_async::Error) -> LoadError {
    LoadError::sql(what)
}

/// Computes the fingerprint of database `db`.
pub async fn database(conn: &mut Conn, db: &str) -> Result<Fingerprint> {
    conn.query_drop("SET NAMES utf8mb4").await.map_err(err("SET NAMES".into()))?;
    let mut fp = Fingerprint::default();
    let objects: Vec<(String, String)> = conn
        .exec("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1", (db,))
        .await
        .map_err(err(format!("listing tables of {db}")))?;
    for (name, kind) in objects {
        let q = qualified(db, &name);
        if kind == "VIEW" {
            let def: Option<String> = conn
                .exec_first(
                    "SELECT VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    (db, &name),
                )
                .await
                .map_err(err(format!("reading view {q}")))?;
            fp.views.insert(name, def.unwrap_or_default());
            continue;
        }
        let rows: Option<u64> =
            conn.query_first(format!("SELECT COUNT(*) FROM {q}")).await.map_err(err(format!("counting {q}")))?;
        let checksum: Option<Row> =
            conn.query_first(format!("CHECKSUM TABLE {q}")).await.map_err(err(format!("checksumming {q}")))?;
        let checksum = checksum.and_then(|r| r.get::<Option<u64>, _>(1).flatten());
        let create: Option<(String, String)> =
            conn.query_first(format!("SHOW CREATE TABLE {q}")).await.map_err(err(format!("SHOW CREATE {q}")))?;
        fp.tables.insert(name, (rows.unwrap_or(0), checksum, create.map(|c| c.1).unwrap_or_default()));
    }
    let triggers: Vec<(String, String, String, String, String)> = conn
        .exec(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT \
             FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
            (db,),
        )
        .await
        .map_err(err(format!("listing triggers of {db}")))?;
    for (name, table, timing, event, body) in triggers {
        fp.triggers.insert(name, format!("{timing} {event} ON {table}: {body}"));
    }
    let routines: Vec<(String, String)> = conn
        .exec("SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?", (db,))
        .await
        .map_err(err(format!("listing routines of {db}")))?;
    for (name, kind) in routines {
        let row: Option<Row> = conn
            .query_first(format!("SHOW CREATE {kind} {}.{}", quote(db), quote(&name)))
            .await
            .map_err(err(format!("SHOW CREATE {kind} {name}")))?;
        let body = row.and_then(|r| r.get::<Option<String>, _>(2).flatten()).unwrap_or_default();
        fp.routines.insert(format!("{kind} {name}"), body);
    }
    let events: Vec<String> = conn
        .exec("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?", (db,))
        .await
        .map_err(err(format!("listing events of {db}")))?;
    for name in events {
        let row: Option<Row> = conn
            .query_first(format!("SHOW CREATE EVENT {}.{}", quote(db), quote(&name)))
            .await
            .map_err(err(format!("SHOW CREATE EVENT {name}")))?;
        let body = row.and_then(|r| r.get::<Option<String>, _>(3).flatten()).unwrap_or_default();
        fp.events.insert(name, body);
    }
    Ok(fp)
}
