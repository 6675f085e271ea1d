//! Groups events into transactions (GTID/BEGIN ... XID/COMMIT; a DDL is a transaction of one
//! statement) and applies the start/stop options, the database filter and the checkpoint's
//! "already applied" set, reading the files one after the other.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use crate::event::{code, Event, Gtid, Marker, FL_STANDALONE};
use crate::reader::{ChainCheck, FileInfo, FileReader, RawEvent};
use crate::{BinlogError, Result};

/// A transaction ready to replay.
#[derive(Debug, Clone)]
pub struct Txn {
    /// The file it is in.
    pub file: Arc<FileInfo>,
    /// Offset of its first event (its GTID, or BEGIN).
    pub start: u64,
    /// Offset just past its last event.
    pub end: u64,
    /// Timestamp of its first event.
    pub timestamp: u32,
    /// Its GTID, when the server logs them.
    pub gtid: Option<Gtid>,
    /// The events to replay, in order: table maps, rows, statements, INSERT_ID/RAND context.
    /// GTID, BEGIN, XID and COMMIT are left out; replay writes its own.
    pub events: Vec<RawEvent>,
    /// Run inside BEGIN ... COMMIT (false for a standalone statement such as DDL).
    pub transactional: bool,
    /// Ends in ROLLBACK on the source (non-transactional changes logged anyway).
    pub rollback: bool,
    /// Contains a statement: applied alone, after everything before it and before anything
    /// after it.
    pub barrier: bool,
    /// Bytes of binary log it spans (for progress).
    pub bytes: u64,
}

/// Where to start and stop, and what to leave out.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Offset in the first file (an event boundary).
    pub start_position: Option<u64>,
    /// Offset in the last file: events starting here or later are not replayed.
    pub stop_position: Option<u64>,
    /// Unix time: the first event at or after it ends the replay (as mariadb-binlog does).
    pub stop_datetime: Option<u32>,
    /// Start at or after this time.
    pub start_datetime: Option<u32>,
    /// Stop after the transaction with this GTID (inclusive).
    pub stop_gtid: Option<String>,
    /// Only changes to these databases (empty: all).
    pub databases: Vec<String>,
}

/// Transactions already applied on the target, from the checkpoint.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Everything before (file name, offset) is applied.
    pub low_water: Option<(String, u64)>,
    /// Transactions after the low-water mark that are applied, by (file name, start).
    pub beyond: HashSet<(String, u64)>,
}

impl Applied {
    pub(crate) fn contains(&self, file: &str, start: u64) -> bool {
        let below = self.low_water.as_ref().is_some_and(|(f, p)| (file, start) < (f.as_str(), *p));
        below || self.beyond.contains(&(file.to_string(), start))
    }
}

/// Reads transactions from a chain of files.
pub struct TxnReader {
    files: Vec<PathBuf>,
    next_file: usize,
    current: Option<FileReader>,
    chain: ChainCheck,
    rotate_to: Option<String>,
    limits: Limits,
    applied: Applied,
    done: bool,
    light: bool,
    /// Transactions left out because the checkpoint says they are applied.
    pub skipped_applied: u64,
}

struct Open {
    txn: Txn,
    in_block: bool,
    standalone: bool,
}

impl TxnReader {
    /// Reads `files` in the order given.
    pub fn new(files: Vec<PathBuf>, limits: Limits, applied: Applied) -> Result<TxnReader> {
        if files.is_empty() {
            return Err(BinlogError::Usage("no binary log files given".into()));
        }
        Ok(TxnReader {
            files,
            next_file: 0,
            current: None,
            chain: ChainCheck::default(),
            rotate_to: None,
            limits,
            applied,
            done: false,
            light: false,
            skipped_applied: 0,
        })
    }

    /// Checks framing, checksums, the file chain and transaction boundaries without parsing
    /// row events (see `FileReader::light`); the transactions it returns carry no row events.
    pub fn light(mut self) -> TxnReader {
        self.light = true;
        self
    }

    fn is_last_file(&self) -> bool {
        self.next_file == self.files.len()
    }

    /// The next event, moving through the files; None after the last one.
    fn next_event(&mut self) -> Result<Option<(Arc<FileInfo>, RawEvent)>> {
        loop {
            if let Some(reader) = &mut self.current {
                if let Some(ev) = reader.next_event()? {
                    let info = reader.info().clone();
                    self.chain.observe(&info, &ev)?;
                    if let Event::Rotate { next, .. } = &ev.event {
                        self.rotate_to = Some(next.clone());
                    }
                    return Ok(Some((info, ev)));
                }
                let info = reader.info().clone();
                self.chain.end_file(&info, reader.offset(), self.rotate_to.take());
                self.current = None;
            }
            let Some(path) = self.files.get(self.next_file).cloned() else { return Ok(None) };
            let index = self.next_file;
            self.next_file += 1;
            let mut reader = FileReader::open(&path, index)?;
            if self.light {
                reader = reader.light();
            }
            self.chain.start_file(reader.info())?;
            if index == 0 {
                if let Some(start) = self.limits.start_position {
                    skip_to(&mut reader, start, &mut self.chain)?;
                }
            }
            self.current = Some(reader);
        }
    }

    /// The next transaction to replay; None at the end or at a stop condition.
    pub fn next_txn(&mut self) -> Result<Option<Txn>> {
        let mut open: Option<Open> = None;
        while !self.done {
            let Some((file, ev)) = self.next_event()? else {
                if let Some(o) = open {
                    return Err(BinlogError::Corrupt {
                        file: o.txn.file.path.clone(),
                        offset: o.txn.start,
                        reason: "truncated: the transaction starting here never commits".into(),
                    });
                }
                return Ok(None);
            };
            if self.stops_before(&ev) {
                self.done = true;
                return Ok(None);
            }
            if let Some(txn) = self.step(&mut open, file, ev)? {
                if let Some(t) = self.accept(txn) {
                    return Ok(Some(t));
                }
            }
        }
        Ok(None)
    }

    fn stops_before(&self, ev: &RawEvent) -> bool {
        let by_time = self.limits.stop_datetime.is_some_and(|t| ev.header.timestamp >= t && ev.header.log_pos != 0);
        let by_pos = self.is_last_file() && self.limits.stop_position.is_some_and(|p| ev.offset >= p);
        by_time || by_pos
    }

    /// Applies filters to a complete transaction; None if nothing of it is to be replayed.
    fn accept(&mut self, mut txn: Txn) -> Option<Txn> {
        if let (Some(stop), Some(g)) = (&self.limits.stop_gtid, &txn.gtid) {
            if g.text() == *stop {
                self.done = true;
            }
        }
        if self.limits.start_datetime.is_some_and(|t| txn.timestamp < t) {
            return None;
        }
        if self.applied.contains(&txn.file.name, txn.start) {
            self.skipped_applied += 1;
            return None;
        }
        if !self.limits.databases.is_empty() {
            filter_databases(&mut txn, &self.limits.databases);
        }
        (!txn.events.is_empty()).then_some(txn)
    }

    /// Feeds one event to the open transaction; returns it when it completes.
    fn step(&mut self, open: &mut Option<Open>, file: Arc<FileInfo>, ev: RawEvent) -> Result<Option<Txn>> {
        let offset = ev.offset;
        let end = ev.offset + u64::from(ev.header.size);
        let unsupported =
            |reason: &str| BinlogError::Unsupported { file: file.path.clone(), offset, reason: reason.to_string() };
        match &ev.event {
            Event::Gtid(g) => {
                if let Gtid::Mariadb { flags, .. } = g {
                    if flags & (64 | 128) != 0 {
                        return Err(unsupported("XA transaction"));
                    }
                }
                if let Some(o) = open.take() {
                    return Err(BinlogError::Corrupt {
                        file: file.path.clone(),
                        offset: ev.offset,
                        reason: format!("a new transaction starts before the one at offset {} ended", o.txn.start),
                    });
                }
                let standalone = matches!(g, Gtid::Mariadb { flags, .. } if flags & FL_STANDALONE != 0);
                let in_block = matches!(g, Gtid::Mariadb { .. }) && !standalone;
                let mut txn = new_txn(&file, &ev);
                txn.gtid = Some(g.clone());
                *open = Some(Open { txn, in_block, standalone });
                Ok(None)
            }
            Event::Query(q) => match q.marker() {
                Some(Marker::Begin) => {
                    let o = open.get_or_insert_with(|| Open {
                        txn: new_txn(&file, &ev),
                        in_block: true,
                        standalone: false,
                    });
                    o.in_block = true;
                    o.standalone = false;
                    Ok(None)
                }
                Some(m @ (Marker::Commit | Marker::Rollback)) if open.as_ref().is_some_and(|o| o.in_block) => {
                    Ok(open.take().map(|o| finish(o, end, m == Marker::Rollback)))
                }
                _ => {
                    let o = open.get_or_insert_with(|| Open {
                        txn: new_txn(&file, &ev),
                        in_block: false,
                        standalone: true,
                    });
                    o.txn.barrier = true;
                    let single = !o.in_block;
                    o.txn.events.push(ev);
                    Ok(if single { open.take().map(|o| finish(o, end, false)) } else { None })
                }
            },
            Event::Xid(_) => match open.take() {
                Some(o) => Ok(Some(finish(o, end, false))),
                None => Err(BinlogError::Corrupt {
                    file: file.path.clone(),
                    offset: ev.offset,
                    reason: "COMMIT (XID) outside a transaction".into(),
                }),
            },
            Event::TableMap(_) | Event::Rows(_) | Event::Intvar { .. } | Event::Rand { .. } => {
                let end_of_statement = matches!(&ev.event, Event::Rows(r) if r.flags & 1 != 0);
                let o =
                    open.get_or_insert_with(|| Open { txn: new_txn(&file, &ev), in_block: false, standalone: true });
                let single = !o.in_block && end_of_statement;
                o.txn.events.push(ev);
                Ok(if single { open.take().map(|o| finish(o, end, false)) } else { None })
            }
            // Unparsed row events of a light read belong to the open transaction.
            Event::Other(t @ (code::TABLE_MAP | 23..=25 | 30..=32 | 166..=171)) => {
                // Rows flags follow the 6-byte table id; STMT_END_F ends a statement.
                let flags = ev.bytes.get(crate::event::HEADER_LEN + 6).copied().unwrap_or(0);
                let end_of_statement = *t != code::TABLE_MAP && flags & 1 != 0;
                let o =
                    open.get_or_insert_with(|| Open { txn: new_txn(&file, &ev), in_block: false, standalone: true });
                let single = !o.in_block && end_of_statement;
                Ok(if single { open.take().map(|o| finish(o, end, false)) } else { None })
            }
            Event::Other(t) => match *t {
                code::USER_VAR => Err(unsupported("user variable event (statement-format replay of user variables)")),
                code::BEGIN_LOAD_QUERY | code::EXECUTE_LOAD_QUERY => Err(unsupported("LOAD DATA in statement format")),
                code::QUERY_COMPRESSED => Err(unsupported("compressed query event (log_bin_compress)")),
                code::XA_PREPARE => Err(unsupported("XA PREPARE")),
                code::TRANSACTION_PAYLOAD => Err(unsupported("compressed transaction payload")),
                code::START_ENCRYPTION => Err(unsupported("encrypted binary log")),
                code::INCIDENT => Err(unsupported("incident event: the source lost events here")),
                39 => Err(unsupported("partial JSON update rows event")),
                _ => Ok(None),
            },
            Event::FormatDescription(_) | Event::Rotate { .. } | Event::Stop | Event::GtidList(_) => Ok(None),
        }
    }
}

fn new_txn(file: &Arc<FileInfo>, ev: &RawEvent) -> Txn {
    Txn {
        file: file.clone(),
        start: ev.offset,
        end: ev.offset,
        timestamp: ev.header.timestamp,
        gtid: None,
        events: Vec::new(),
        transactional: true,
        rollback: false,
        barrier: false,
        bytes: 0,
    }
}

fn finish(o: Open, end: u64, rollback: bool) -> Txn {
    let mut txn = o.txn;
    txn.end = end;
    txn.bytes = txn.end.saturating_sub(txn.start);
    txn.rollback = rollback;
    txn.transactional = !o.standalone;
    txn
}

/// Keeps only the events of the wanted databases: row changes by their table map's
/// database, statements by their current database (as `mariadb-binlog --database` does).
fn filter_databases(txn: &mut Txn, dbs: &[String]) {
    let wanted = |db: &[u8]| dbs.iter().any(|d| d.as_bytes() == db);
    let mut keep_tables = HashSet::new();
    txn.events.retain(|ev| match &ev.event {
        Event::TableMap(m) => {
            let keep = wanted(m.db.as_bytes());
            if keep {
                keep_tables.insert(m.table_id);
            }
            keep
        }
        Event::Rows(r) => keep_tables.contains(&r.table_id),
        Event::Query(q) => wanted(&q.context.db),
        _ => true,
    });
    // Context events (INSERT_ID, RAND) alone mean nothing.
    if txn.events.iter().all(|e| matches!(e.event, Event::Intvar { .. } | Event::Rand { .. })) {
        txn.events.clear();
    }
    txn.barrier = txn.events.iter().any(|e| matches!(e.event, Event::Query(_)));
}

/// Reads events up to `start` in the first file; `start` must be an event boundary.
fn skip_to(reader: &mut FileReader, start: u64, chain: &mut ChainCheck) -> Result<()> {
    while reader.offset() < start {
        let info = reader.info().clone();
        let Some(ev) = reader.next_event()? else { break };
        chain.observe(&info, &ev)?;
    }
    if reader.offset() != start {
        return Err(BinlogError::Usage(format!(
            "--start-position {start} is not the start of an event in {} (the nearest is {})",
            reader.info().path.display(),
            reader.offset()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::rows;

    fn fixture() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/binlog/binlog.000002"))
    }

    fn all(limits: Limits) -> Vec<Txn> {
        let mut r = TxnReader::new(vec![fixture()], limits, Applied::default()).unwrap();
        let mut out = Vec::new();
        while let Some(t) = r.next_txn().unwrap() {
            out.push(t);
        }
        out
    }

    /// fixtures/binlog/binlog.000002: CREATE DATABASE, CREATE TABLE of every column type,
    /// row INSERT/UPDATE/DELETE, a table without a key, a statement-format INSERT.
    #[test]
    fn groups_the_fixture_into_transactions() {
        let txns = all(Limits::default());
        let kinds: Vec<bool> = txns.iter().map(|t| t.barrier).collect();
        assert_eq!(kinds, [true, true, false, false, false, true, false, true], "{txns:#?}");
        assert!(txns.iter().all(|t| t.gtid.is_some()));
        assert!(!txns[0].transactional && txns[2].transactional);
        // The statement-format INSERT carries its INSERT_ID-free context and text.
        let last = txns.last().unwrap();
        assert!(last
            .events
            .iter()
            .any(|e| matches!(&e.event, Event::Query(q) if q.text.starts_with(b"INSERT INTO types.nokey"))));
    }

    #[test]
    fn every_row_image_of_every_column_type_decodes() {
        let mut decoded = 0;
        for t in all(Limits::default()) {
            let mut maps = std::collections::HashMap::new();
            for e in &t.events {
                match &e.event {
                    Event::TableMap(m) => {
                        maps.insert(m.table_id, m.clone());
                    }
                    Event::Rows(r) => {
                        let body = &e.bytes[crate::event::HEADER_LEN..e.bytes.len() - 4];
                        let images = rows::images(body, r, &maps[&r.table_id]).unwrap();
                        assert!(!images.is_empty());
                        decoded += images.len();
                    }
                    _ => {}
                }
            }
        }
        // 2 inserted + 1 updated (2 images) + 1 deleted + 1 no-key insert.
        assert_eq!(decoded, 6);
    }

    #[test]
    fn a_light_read_finds_the_same_transactions() {
        let full: Vec<(u64, u64)> = all(Limits::default()).iter().map(|t| (t.start, t.end)).collect();
        let mut r = TxnReader::new(vec![fixture()], Limits::default(), Applied::default()).unwrap().light();
        let mut light = Vec::new();
        while let Some(t) = r.next_txn().unwrap() {
            light.push((t.start, t.end));
        }
        // Row-only transactions come back empty from a light read and are dropped as such.
        assert!(light.iter().all(|t| full.contains(t)), "{light:?} vs {full:?}");
        assert_eq!(light.len(), all(Limits::default()).iter().filter(|t| t.barrier).count());
    }

    #[test]
    fn stop_position_and_database_filter() {
        let txns = all(Limits::default());
        let cut = txns[3].start;
        assert_eq!(all(Limits { stop_position: Some(cut), ..Default::default() }).len(), 3);
        assert!(all(Limits { databases: vec!["other".into()], ..Default::default() }).is_empty());
        assert_eq!(all(Limits { start_position: Some(cut), ..Default::default() }).len(), txns.len() - 3);
        // --stop-gtid includes the transaction it names.
        let gtid = txns[2].gtid.as_ref().unwrap().text();
        let upto = all(Limits { stop_gtid: Some(gtid.clone()), ..Default::default() });
        assert_eq!(upto.len(), 3, "{gtid}");
        assert_eq!(upto[2].gtid.as_ref().unwrap().text(), gtid);
    }
}
