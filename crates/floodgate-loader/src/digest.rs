//! Content digests computed from a server's rows, to compare with a native backup's.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use floodgate_format::ident::{qualified, quote};
use floodgate_format::model::RestorePlan;
use floodgate_format::native::ContentDigest;
use floodgate_pipeline::insert::escape_field;

use crate::rows::{RowConn, RowConnector};
use crate::{ConnectOptions, LoadError, Result};

/// Appends a row in LOAD DATA's default format, without its line end (values escaped,
/// `\N` for NULL, tabs between): the bytes the content digest is computed over, by
/// `floodgate dump` and on a restored target alike. Values must be read with `SET NAMES
/// binary`, so strings arrive as the column's bytes. `seen` gets each value with its
/// column index as it is encoded (the dump keeps its key column's).
pub fn encode_row<'v>(
    values: impl Iterator<Item = Result<Option<&'v [u8]>>>,
    out: &mut Vec<u8>,
    mut seen: impl FnMut(usize, Option<&'v [u8]>),
) -> Result<()> {
    for (i, value) in values.enumerate() {
        let value = value?;
        if i > 0 {
            out.push(b'\t');
        }
        match value {
            None => out.extend_from_slice(b"\\N"),
            Some(b) => escape_field(b, out),
        }
        seen(i, value);
    }
    Ok(())
}

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
        results.extend(joined.map_err(|e| LoadError::Refused(format!("internal error: a digest worker failed: {e}")))?);
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
