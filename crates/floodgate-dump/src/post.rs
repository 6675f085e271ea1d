//! post/<db>.sql: routines and events, views (in dependency order: a view may call a
//! function), then triggers (which may call a procedure), each with the session it was
//! created under, in `DELIMITER ;;` blocks a `mysql` client can replay too.

use floodgate_format::ident::quote;
use floodgate_format::native::encode_name;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use crate::{sql, write_file, Result, Sink};

/// Writes one post file per database that has post-data objects; returns (db, relative path).
pub async fn write_all(conn: &mut Conn, sink: &Sink, databases: &[String]) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for db in databases {
        let mut text = String::new();
        let routines: [(&str, &str, ShowColumns); 3] = [
            (
                "FUNCTION",
                "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'FUNCTION' ORDER BY 1",
                (2, 1, 3, 4),
            ),
            (
                "PROCEDURE",
                "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'PROCEDURE' ORDER BY 1",
                (2, 1, 3, 4),
            ),
            ("EVENT", "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY 1", (3, 1, 4, 5)),
        ];
        for (kind, list, columns) in routines {
            text.push_str(&object_blocks(conn, db, kind, list, columns).await?);
        }
        for (_, body) in ordered_views(conn, db).await? {
            text.push_str(&body);
        }
        text.push_str(
            &object_blocks(
                conn,
                db,
                "TRIGGER",
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER",
                (2, 1, 3, 4),
            )
            .await?,
        );
        if text.is_empty() {
            continue;
        }
        let rel = format!("post/{}.sql", encode_name(db));
        write_file(sink, &rel, format!("DELIMITER ;;\n{text}DELIMITER ;\n").as_bytes()).await?;
        files.push((db.clone(), rel));
    }
    Ok(files)
}

/// Columns of a `SHOW CREATE` result: (create statement, sql_mode, charset, collation).
type ShowColumns = (usize, usize, usize, usize);

/// `SHOW CREATE <kind>` of every object `list` names, each in its own session block.
async fn object_blocks(
    conn: &mut Conn,
    db: &str,
    kind: &str,
    list: &str,
    (create, mode, charset, collation): ShowColumns,
) -> Result<String> {
    let names: Vec<String> = conn.exec(list, (db,)).await.map_err(sql(format!("listing {kind}s of {db}")))?;
    let mut text = String::new();
    for n in names {
        let row: Option<Row> = conn
            .query_first(format!("SHOW CREATE {kind} {}.{}", quote(db), quote(&n)))
            .await
            .map_err(sql(format!("SHOW CREATE {kind} {n}")))?;
        if let Some(r) = row {
            text.push_str(&block(get(&r, create), get(&r, mode), get(&r, charset), get(&r, collation)));
        }
    }
    Ok(text)
}

fn get(r: &Row, i: usize) -> String {
    r.get::<Option<String>, _>(i).flatten().unwrap_or_default()
}

fn block(create: String, sql_mode: String, charset: String, collation: String) -> String {
    format!(
        "SET SESSION sql_mode = '{}', character_set_client = {}, collation_connection = {};;\n{create};;\n",
        sql_mode.replace('\'', "''"),
        if charset.is_empty() { "utf8mb4".into() } else { charset },
        if collation.is_empty() { "utf8mb4_general_ci".into() } else { collation },
    )
}

/// Views with the ones they read from first (a view's text naming another view's quoted
/// name counts as reading it; a cycle cannot exist, so leftovers keep name order).
async fn ordered_views(conn: &mut Conn, db: &str) -> Result<Vec<(String, String)>> {
    let names: Vec<String> = conn
        .exec("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY 1", (db,))
        .await
        .map_err(sql("listing views"))?;
    let mut views = Vec::new();
    for n in &names {
        let row: Option<Row> = conn
            .query_first(format!("SHOW CREATE VIEW {}.{}", quote(db), quote(n)))
            .await
            .map_err(sql(format!("SHOW CREATE VIEW {n}")))?;
        if let Some(r) = row {
            // View, Create View, character_set_client, collation_connection
            views.push((n.clone(), block(get(&r, 1), String::new(), get(&r, 2), get(&r, 3))));
        }
    }
    let mut ordered: Vec<(String, String)> = Vec::new();
    while !views.is_empty() {
        let ready = views
            .iter()
            .position(|(name, body)| !views.iter().any(|(other, _)| other != name && body.contains(&quote(other))));
        let i = ready.unwrap_or(0);
        ordered.push(views.remove(i));
    }
    Ok(ordered)
}
