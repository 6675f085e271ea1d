//! The tables of a restore: each one's CREATE (pending, done or failed), its chunks queued
//! and committed, its deferred indexes, the column specs its INSERTs convert with, and its
//! report. A source registers tables and seals them once it has queued every chunk; a table
//! that is sealed with every queued chunk committed is complete, and goes to the index
//! builders. The same for a planned backup (all tables known up front) and a dump stream
//! (tables as the stream reaches them).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use mysql_async::Conn;
use tokio::sync::{mpsc, watch};

use crate::convert::{table_spec, Outcome, TableSpec};
use crate::report::TableReport;
use crate::session::poisoned;
use crate::{LoadError, Result};

/// A table's position in the registry (and in the report).
pub(crate) type TableId = usize;

/// Whether a table's CREATE has run: `None` while pending, then its outcome.
type Created = Option<std::result::Result<(), String>>;

/// A complete table: every chunk committed. Its deferred indexes are built next.
#[derive(Debug)]
pub(crate) struct Complete {
    pub table: TableId,
    pub db: String,
    pub name: String,
    /// ALTER TABLE statements adding the deferred indexes (none: nothing to build).
    pub alters: Vec<String>,
    /// Its engine rolls back (InnoDB); a non-transactional table's completion is recorded.
    pub transactional: Option<bool>,
}

struct Entry {
    report: TableReport,
    created: watch::Sender<Created>,
    queued: u64,
    committed: u64,
    sealed: bool,
    completed: bool,
    alters: Vec<String>,
    started: Option<Instant>,
    transactional: Option<bool>,
    /// Column specs by the character set of the text they convert (a dump's `SET NAMES`).
    specs: Vec<Arc<TableSpec>>,
}

/// The registry.
pub(crate) struct Tables {
    entries: Mutex<Vec<Entry>>,
    complete: Mutex<Option<mpsc::UnboundedSender<Complete>>>,
}

impl Tables {
    /// A registry that sends complete tables to `complete`.
    pub fn new(complete: mpsc::UnboundedSender<Complete>) -> Tables {
        Tables { entries: Mutex::default(), complete: Mutex::new(Some(complete)) }
    }

    fn with<T>(&self, id: TableId, f: impl FnOnce(&mut Entry) -> T) -> Result<T> {
        let mut entries = self.entries.lock().map_err(|_| poisoned())?;
        let entry = entries.get_mut(id).ok_or_else(|| LoadError::Internal(format!("no table #{id}")))?;
        Ok(f(entry))
    }

    /// Registers a table; `report` carries what is known up front (its name, rows the backup
    /// records).
    pub fn add(&self, report: TableReport) -> Result<TableId> {
        let mut entries = self.entries.lock().map_err(|_| poisoned())?;
        entries.push(Entry {
            report,
            created: watch::channel(None).0,
            queued: 0,
            committed: 0,
            sealed: false,
            completed: false,
            alters: Vec::new(),
            started: None,
            transactional: None,
            specs: Vec::new(),
        });
        Ok(entries.len() - 1)
    }

    /// The table's database and name.
    pub fn name(&self, id: TableId) -> Result<(String, String)> {
        self.with(id, |e| (e.report.database.clone(), e.report.table.clone()))
    }

    /// Publishes the outcome of the table's CREATE (Ok for a table that existed already).
    pub fn created(&self, id: TableId, outcome: std::result::Result<(), String>) -> Result<()> {
        self.with(id, |e| {
            e.created.send_replace(Some(outcome));
        })
    }

    /// Waits until the table exists; its CREATE's error if it failed.
    pub async fn wait_created(&self, id: TableId) -> Result<()> {
        let mut rx = self.with(id, |e| e.created.subscribe())?;
        let outcome = rx.wait_for(Option::is_some).await.map_err(|_| poisoned())?.clone();
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(LoadError::Refused(format!("the table's CREATE failed: {e}"))),
            None => Err(LoadError::Internal("a table's CREATE vanished".into())),
        }
    }

    /// Indexes to add once the data is in, as ALTER statements, and their names for the report.
    pub fn defer(&self, id: TableId, alters: Vec<String>, deferred: Vec<String>) -> Result<()> {
        self.with(id, |e| {
            e.alters = alters;
            e.report.deferred_indexes = deferred;
        })
    }

    /// An earlier run built the table's deferred indexes.
    pub fn indexes_built(&self, id: TableId) -> Result<()> {
        self.with(id, |e| e.alters.clear())
    }

    /// Whether the table's engine rolls back, when found out other than by its spec.
    pub fn set_transactional(&self, id: TableId, transactional: bool) -> Result<()> {
        self.with(id, |e| e.transactional = Some(transactional))
    }

    /// A non-transactional table an interrupted run left partial was emptied to load again.
    pub fn reloaded(&self, id: TableId) -> Result<()> {
        self.with(id, |e| e.report.reloaded = true)
    }

    /// Seconds its CREATE took.
    pub fn schema_seconds(&self, id: TableId, seconds: f64) -> Result<()> {
        self.with(id, |e| e.report.schema_seconds += seconds)
    }

    /// Seconds its deferred indexes took.
    pub fn index_seconds(&self, id: TableId, seconds: f64) -> Result<()> {
        self.with(id, |e| e.report.index_seconds = seconds)
    }

    /// A chunk of `bytes` went to the loaders.
    pub fn queued(&self, id: TableId, bytes: u64) -> Result<()> {
        self.with(id, |e| {
            e.queued += 1;
            e.report.chunks += 1;
            e.report.bytes += bytes;
        })
    }

    /// A loader begins one of the table's chunks: its data phase starts with the first.
    pub fn loading(&self, id: TableId) -> Result<()> {
        self.with(id, |e| {
            e.started.get_or_insert_with(Instant::now);
        })
    }

    /// A chunk an earlier run committed is skipped.
    pub fn resumed(&self, id: TableId, rows: u64, bytes: u64) -> Result<()> {
        self.with(id, |e| {
            e.report.chunks += 1;
            e.report.chunks_resumed += 1;
            e.report.rows += rows;
            e.report.bytes += bytes;
        })
    }

    /// A queued chunk committed.
    pub fn committed(&self, id: TableId, outcome: &Outcome) -> Result<()> {
        let complete = self.with(id, |e| {
            e.committed += 1;
            e.report.rows += outcome.rows;
            e.report.insert_statements += outcome.inserts;
            e.report.load_data_statements += outcome.loads;
            take_complete(e, id)
        })?;
        self.send(complete)
    }

    /// No more chunks of the table will be queued.
    pub fn seal(&self, id: TableId) -> Result<()> {
        let complete = self.with(id, |e| {
            e.sealed = true;
            take_complete(e, id)
        })?;
        self.send(complete)
    }

    fn send(&self, complete: Option<Complete>) -> Result<()> {
        if let Some(c) = complete {
            if let Some(tx) = self.complete.lock().map_err(|_| poisoned())?.as_ref() {
                let _ = tx.send(c);
            }
        }
        Ok(())
    }

    /// No table will complete any more (the data phase is over, or failed): the index
    /// builders stop once they have built what they were sent.
    pub fn close(&self) {
        if let Ok(mut c) = self.complete.lock() {
            c.take();
        }
    }

    /// The table's column spec for text in character set `names`, read over `conn` the
    /// first time.
    pub async fn spec(&self, id: TableId, names: &str, conn: &mut Conn) -> Result<Arc<TableSpec>> {
        let (known, (db, name)) = self.with(id, |e| {
            (e.specs.iter().find(|s| s.names == names).cloned(), (e.report.database.clone(), e.report.table.clone()))
        })?;
        if let Some(spec) = known {
            return Ok(spec);
        }
        let spec = Arc::new(table_spec(conn, &db, &name, names).await?);
        self.with(id, |e| {
            e.transactional = Some(spec.transactional);
            e.specs.push(spec.clone());
        })?;
        Ok(spec)
    }

    /// Every table's report, in registration order.
    pub fn reports(&self) -> Result<Vec<TableReport>> {
        Ok(self.entries.lock().map_err(|_| poisoned())?.iter().map(|e| e.report.clone()).collect())
    }
}

/// The table's completion, the first time it is sealed with every queued chunk committed.
fn take_complete(e: &mut Entry, id: TableId) -> Option<Complete> {
    if e.completed || !e.sealed || e.committed < e.queued {
        return None;
    }
    e.completed = true;
    if let Some(started) = e.started {
        e.report.data_seconds = started.elapsed().as_secs_f64();
    }
    Some(Complete {
        table: id,
        db: e.report.database.clone(),
        name: e.report.table.clone(),
        alters: std::mem::take(&mut e.alters),
        transactional: e.transactional,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str) -> TableReport {
        TableReport { database: "d".into(), table: name.into(), ..Default::default() }
    }

    #[test]
    fn a_table_completes_once_sealed_and_every_chunk_committed() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let tables = Tables::new(tx);
        let t = tables.add(report("t")).unwrap();
        let empty = tables.add(report("empty")).unwrap();
        tables.defer(t, vec!["ALTER TABLE ...".into()], vec!["k".into()]).unwrap();
        tables.queued(t, 10).unwrap();
        tables.queued(t, 10).unwrap();
        tables.committed(t, &Outcome { rows: 5, inserts: 0, loads: 1 }).unwrap();
        tables.seal(t).unwrap();
        assert!(rx.try_recv().is_err(), "one chunk is still loading");
        tables.seal(empty).unwrap();
        assert_eq!(rx.try_recv().unwrap().table, empty, "a table with no chunks completes when sealed");
        tables.committed(t, &Outcome { rows: 7, inserts: 1, loads: 0 }).unwrap();
        let done = rx.try_recv().unwrap();
        assert_eq!((done.table, done.alters.len()), (t, 1));
        let r = &tables.reports().unwrap()[t];
        assert_eq!((r.rows, r.chunks, r.bytes, r.insert_statements), (12, 2, 20, 1));
        tables.close();
        assert!(rx.try_recv().is_err());
    }
}
