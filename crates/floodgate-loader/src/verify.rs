//! Phase 5, verification: every table's row count against the backup's record (or the rows
//! loaded), and content digests recomputed from the target's rows where the backup carries them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use floodgate_format::ident::{qualified, quote};
use floodgate_format::model::RestorePlan;
use floodgate_format::native::ContentDigest;
use floodgate_pipeline::encode_row;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::{ConnectOptions, LoadError, Result};
use floodgate_conn::{RowConn, RowConnector};

/// The content digest of `db`.`table` over `columns` and its row count, read over `conn`
/// (whose session must be `SET NAMES binary`).
pub async fn table_digest(
    conn: &mut RowConn,
    db: &str,
    table: &str,
    columns: &[String],
) -> Result<(ContentDigest, u64)> {
    let name = qualified(db, table);
    let list = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let mut result = conn.rows(&format!("SELECT {list} FROM {name}"), &format!("reading {name}")).await?;
    result.expect_columns(columns.len(), &name)?;
    let mut digest = ContentDigest::default();
    let mut rows = 0;
    let mut buf = Vec::new();
    while let Some(row) = result.next().await? {
        buf.clear();
        encode_row(row.values(), &mut buf, |_, _| {})?;
        digest.add_row(&buf);
        rows += 1;
    }
    Ok((digest, rows))
}

/// Recomputes MySQL Shell's checksums (`@.checksums.json`) of each part of each table on
/// the target and compares them with the source's. Returns a line per table checked; any
/// part that differs is an integrity error naming the table, its part and both values.
pub(crate) async fn verify_checksums(conn: &mut Conn, plan: &RestorePlan) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    let checked: Vec<_> = plan.tables().filter_map(|(db, t)| Some((db, t, t.checksums.as_ref()?))).collect();
    if checked.is_empty() {
        return Ok(lines);
    }
    // As MySQL Shell computes them: numbers and dates as ASCII text, TIMESTAMPs in UTC.
    conn.query_drop("SET @@SESSION.character_set_connection = ascii, @@SESSION.time_zone = '+00:00'")
        .await
        .map_err(LoadError::sql("setting up the checksum session"))?;
    for (db, table, sums) in checked {
        let name = qualified(&db.name, &table.name);
        for part in &sums.parts {
            let (count, checksum) = part_checksum(conn, (&db.name, &table.name), sums, part).await?;
            let what = match (&part.partition, &part.boundary) {
                (Some(p), Some(b)) => format!("partition {p}, {b}"),
                (Some(p), None) => format!("partition {p}"),
                (None, Some(b)) => b.clone(),
                (None, None) => "all rows".into(),
            };
            if count != part.count || (count > 0 && checksum != part.checksum) {
                bad.push(format!(
                    "{name} ({what}): {count} rows with checksum {checksum} on the target, the dump recorded {} rows                      with {}",
                    part.count, part.checksum
                ));
            }
        }
        lines.push(format!("{name}: {} part(s) match the dump's checksums", sums.parts.len()));
    }
    conn.query_drop("SET @@SESSION.character_set_connection = utf8mb4")
        .await
        .map_err(LoadError::sql("ending the checksum session"))?;
    if !bad.is_empty() {
        return Err(LoadError::Integrity { context: "checksum verification".into(), reason: bad.join("; ") });
    }
    Ok(lines)
}

/// One part's row count and checksum on the target: the XOR of every row's SHA-256 over
/// its columns (`#`-separated, as binary) and its nullable columns' NULL-ness. The XOR of
/// 256-bit values is taken as four 64-bit XORs, which every server can do (MySQL 8 XORs
/// binary strings whole; the bits are the same).
async fn part_checksum(
    conn: &mut Conn,
    (db, table): (&str, &str),
    sums: &floodgate_format::model::RowChecksums,
    part: &floodgate_format::model::RowChecksum,
) -> Result<(u64, String)> {
    let mut fields: Vec<String> = sums.columns.iter().map(|c| format!("CONVERT({} USING binary)", quote(c))).collect();
    if !sums.null_columns.is_empty() {
        let nulls: Vec<String> = sums.null_columns.iter().map(|c| format!("ISNULL({})", quote(c))).collect();
        fields.push(format!("CONCAT({})", nulls.join(",")));
    }
    let slices: Vec<String> = (0..4)
        .map(|i| {
            format!("LPAD(HEX(BIT_XOR(CAST(CONV(SUBSTRING(h, {}, 16), 16, 10) AS UNSIGNED))), 16, '0')", 1 + 16 * i)
        })
        .collect();
    let partition = part.partition.as_ref().map(|p| format!(" PARTITION ({})", quote(p))).unwrap_or_default();
    let filter = part.boundary.as_ref().map(|b| format!(" WHERE {b}")).unwrap_or_default();
    let name = qualified(db, table);
    let query = format!(
        "SELECT COUNT(*), UPPER(CONCAT({})) FROM (SELECT SHA2(CONCAT_WS('#', {}), 256) AS h FROM {name}{partition}{filter}) rows_hashed",
        slices.join(", "),
        fields.join(", ")
    );
    let row: Option<(u64, String)> =
        conn.query_first(query).await.map_err(LoadError::sql(format!("computing the checksums of {name}")))?;
    Ok(row.unwrap_or_default())
}

/// A table whose digest is to be checked: (database, table, columns, the backup's digest).
type DigestJob = (String, String, Vec<String>, String);

/// Recomputes each table's content digest on the target over up to `threads` connections,
/// largest tables first, and compares it with the backup's. Returns a line per table, in
/// the plan's order; any mismatch is an integrity error naming every table that differs.
pub(crate) async fn verify_digests(target: &ConnectOptions, plan: &RestorePlan, threads: usize) -> Result<Vec<String>> {
    let mut jobs: Vec<(usize, u64, DigestJob)> = plan
        .tables()
        .filter_map(|(db, t)| {
            let expected = t.content_digest.clone()?;
            Some((t.data_bytes(), (db.name.clone(), t.name.clone(), t.columns.clone(), expected)))
        })
        .enumerate()
        .map(|(i, (bytes, job))| (i, bytes, job))
        .collect();
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    jobs.sort_by_key(|(_, bytes, _)| std::cmp::Reverse(*bytes));
    let queue = Arc::new(Mutex::new(jobs.into_iter().map(|(i, _, job)| (i, job)).collect::<VecDeque<_>>()));
    let workers = threads.clamp(1, queue.lock().map(|q| q.len()).unwrap_or(1));
    let mut connector = RowConnector::new(target);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let mut conn = connector.connect(&["SET NAMES binary".to_string()]).await?;
        let queue = queue.clone();
        set.spawn(async move {
            let mut done = Vec::new();
            loop {
                let job = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some((i, (db, table, columns, expected))) = job else { break };
                let result = table_digest(&mut conn, &db, &table, &columns).await;
                let failed = result.is_err();
                done.push((i, qualified(&db, &table), expected, result));
                if failed {
                    break;
                }
            }
            conn.close().await;
            done
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = set.join_next().await {
        results.extend(joined.map_err(|e| LoadError::Internal(format!("a digest worker failed: {e}")))?);
    }
    results.sort_by_key(|(i, ..)| *i);
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    for (_, name, expected, result) in results {
        let (digest, rows) = result?;
        if digest.hex() != expected {
            bad.push(format!("{name}: content digest {} over {rows} rows, the backup says {expected}", digest.hex()));
        } else {
            lines.push(format!("{name}: content digest matches ({rows} rows)"));
        }
    }
    if !bad.is_empty() {
        return Err(LoadError::Integrity { context: "content digest verification".into(), reason: bad.join("; ") });
    }
    Ok(lines)
}

/// Row counts on the target for every table, checked against what was loaded and what the
/// backup recorded. Returns one line per table checked; mismatches are an error.
pub(crate) async fn verify_counts(conn: &mut Conn, reports: &[crate::TableReport]) -> Result<Vec<String>> {
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
