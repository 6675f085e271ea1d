//! Applying transactions exactly as the server wrote them: row events go back to the server
//! as `BINLOG '<base64>'` statements (after the file's format description, once per
//! connection, as mariadb-binlog prints them); statements run as text after the session
//! context their query event carries (timestamp, sql_mode, character sets, ...).

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use floodgate_conn::retry::{self, Transient};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::event::{Event, Query};
use crate::reader::RawEvent;
use crate::txn::Txn;
use crate::{BinlogError, Result};

/// Session bits of a query event's flags2 (sql_priv.h, the same in MySQL and MariaDB).
const OPTION_AUTO_IS_NULL: u32 = 1 << 14;
const OPTION_NO_FOREIGN_KEY_CHECKS: u32 = 1 << 26;
const OPTION_RELAXED_UNIQUE_CHECKS: u32 = 1 << 27;
/// MariaDB-only flags2 bits (sql_priv.h); MySQL logs explicit_defaults_for_timestamp as a
/// status variable instead. Bit 24 checked against a 10.11 binlog (mariadb-binlog prints
/// explicit_defaults_for_timestamp=1 for flags2 0x01000000).
const OPTION_NO_CHECK_CONSTRAINT_CHECKS: u32 = 1 << 15;
const OPTION_EXPLICIT_DEF_TIMESTAMP: u32 = 1 << 24;
const OPTION_IF_EXISTS: u32 = 1 << 28;

/// Base64 of the concatenation of `events`, appended to `out` without first copying the
/// events into one buffer: a carry of up to two bytes joins one event to the next so the
/// text is what encoding the concatenation would give (the server decodes it as one run).
fn encode_events(out: &mut Vec<u8>, events: impl Iterator<Item = impl AsRef<[u8]>>) {
    let mut carry = [0u8; 3];
    let mut carried = 0;
    for event in events {
        let mut bytes = event.as_ref();
        if carried > 0 {
            let take = (3 - carried).min(bytes.len());
            carry[carried..carried + take].copy_from_slice(&bytes[..take]);
            carried += take;
            bytes = &bytes[take..];
            if carried < 3 {
                continue;
            }
            append_base64(out, &carry);
        }
        let whole = bytes.len() - bytes.len() % 3;
        append_base64(out, &bytes[..whole]);
        let rest = &bytes[whole..];
        carry[..rest.len()].copy_from_slice(rest);
        carried = rest.len();
    }
    if carried > 0 {
        append_base64(out, &carry[..carried]);
    }
}

/// Encodes `bytes` at the end of `out`, in place.
fn append_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let engine = &base64::engine::general_purpose::STANDARD;
    let start = out.len();
    out.resize(start + base64::encoded_len(bytes.len(), true).unwrap_or(0), 0);
    let written = engine.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
}

/// `BINLOG '...'` for a run of raw events.
fn binlog_statement(out: &mut Vec<u8>, events: &[&[u8]]) {
    out.extend_from_slice(b"BINLOG '");
    encode_events(out, events.iter());
    out.extend_from_slice(b"'");
}

/// The checkpoint row for `txns` (applied in one server transaction, all from one file, in
/// binlog order), written in the same transaction as their changes: one row per server
/// transaction, not per binlog transaction, so the bookkeeping stays small next to the work.
fn checkpoint_insert(out: &mut Vec<u8>, tables: &CheckpointTables, txns: &[Arc<Txn>]) {
    let (Some(first), Some(last)) = (txns.first(), txns.last()) else { return };
    let more = txns[1..].iter().map(|t| t.start.to_string()).collect::<Vec<_>>().join(",");
    out.extend_from_slice(
        format!(
            "INSERT INTO {} (file, pos, last_pos, more) VALUES ('{}',{},{},'{more}');\n",
            tables.batches,
            sql_escape(&first.file.name),
            first.start,
            last.start
        )
        .as_bytes(),
    );
}

/// The replay's checkpoint tables in floodgate's schema, quoted: the low-water mark (row 1)
/// and the DDL about to run (row 2), and a row per applied server transaction above the mark
/// (see `checkpoint_insert`).
#[derive(Debug, Clone)]
pub(crate) struct CheckpointTables {
    pub checkpoint: String,
    pub batches: String,
}

impl CheckpointTables {
    pub(crate) fn new(schema: &floodgate_conn::CheckpointSchema) -> CheckpointTables {
        CheckpointTables { checkpoint: schema.table("binlog_checkpoint"), batches: schema.table("binlog_batches") }
    }
}

pub(crate) fn sql_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The user variable that carries a batch's events to `BINLOG @var, @empty` (MariaDB): set
/// through a prepared statement, the base64 text is never scanned by the SQL lexer, which
/// was a tenth of the server's work when it came as a literal.
const ER_PARSE_ERROR: u16 = 1064;

/// The apply connections' client character set between statements: the events' base64
/// arrives as a parameter in this character set, and with a multi-byte one the server walks
/// it character by character to describe it (a twentieth of its work). Statements from the
/// binlog set their own character set first; `barrier` puts this one back after them.
pub(crate) const APPLY_CHARSET: &str = "SET character_set_client = binary";
const EVENTS_VAR: &str = "@floodgate_binlog_events";
const EMPTY_VAR: &str = "@floodgate_binlog_empty";

/// How a batch reaches the server.
pub(crate) enum RowsBatch {
    /// One statement with the events as a `BINLOG '...'` literal (MySQL, old MariaDB).
    Literal(Vec<u8>),
    /// The events' base64 for `SET @var = ?`, then a statement that applies `@var`.
    Variable { events: Vec<u8>, sql: Vec<u8> },
}

/// A batch of row-only transactions as one server transaction: they are independent of
/// every transaction running elsewhere, and in binlog order among themselves:
/// `BEGIN; INSERT checkpoint row; BINLOG <every event of every transaction>`, then `COMMIT`.
/// The BINLOG statement comes last in its packet: with statements after it, the
/// next command on the connection failed with "packet out of order" (MariaDB 10.11; most
/// likely the reply to a BINLOG statement that applied rows lacks the "more results" flag,
/// not confirmed in the server source), so nothing may follow it in the same packet.
pub(crate) fn render_rows_batch(txns: &[Arc<Txn>], tables: &CheckpointTables, via_variable: bool) -> RowsBatch {
    let encoded_len = txns.iter().map(|t| t.bytes as usize * 4 / 3 + 64).sum::<usize>();
    let mut sql = Vec::with_capacity(256 + if via_variable { 0 } else { encoded_len });
    sql.extend_from_slice(b"BEGIN;\n");
    checkpoint_insert(&mut sql, tables, txns);
    let events = txns.iter().flat_map(|t| t.events.iter().map(|e| e.bytes.as_slice()));
    if via_variable {
        let mut encoded = Vec::with_capacity(encoded_len);
        encode_events(&mut encoded, events);
        sql.extend_from_slice(format!("BINLOG {EVENTS_VAR}, {EMPTY_VAR}").as_bytes());
        RowsBatch::Variable { events: encoded, sql }
    } else {
        sql.extend_from_slice(b"BINLOG '");
        encode_events(&mut sql, events);
        sql.extend_from_slice(b"'");
        RowsBatch::Literal(sql)
    }
}

/// The statements of a barrier transaction, each its own round trip (a statement's
/// character set must be in force before the server parses it).
pub(crate) fn render_barrier(txn: &Arc<Txn>, tables: &CheckpointTables) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if txn.transactional {
        out.push(b"BEGIN".to_vec());
    }
    let mut run: Vec<&RawEvent> = Vec::new();
    let flush = |run: &mut Vec<&RawEvent>, out: &mut Vec<Vec<u8>>| {
        if !run.is_empty() {
            let mut s = Vec::new();
            let evs: Vec<&[u8]> = run.iter().map(|e| e.bytes.as_slice()).collect();
            binlog_statement(&mut s, &evs);
            out.push(s);
            run.clear();
        }
    };
    for ev in &txn.events {
        match &ev.event {
            Event::TableMap(_) | Event::Rows(_) => run.push(ev),
            Event::Intvar { kind, value } => {
                flush(&mut run, &mut out);
                let var = if *kind == 1 { "LAST_INSERT_ID" } else { "INSERT_ID" };
                out.push(format!("SET {var}={value}").into_bytes());
            }
            Event::Rand { seed1, seed2 } => {
                flush(&mut run, &mut out);
                out.push(format!("SET @@RAND_SEED1={seed1}, @@RAND_SEED2={seed2}").into_bytes());
            }
            Event::Query(q) => {
                flush(&mut run, &mut out);
                out.push(context_statement(q, txn.file.fde.server_version.contains("MariaDB")).into_bytes());
                if !q.context.db.is_empty() && !q.context.suppress_use {
                    let mut u = b"USE `".to_vec();
                    for &b in &q.context.db {
                        if b == b'`' {
                            u.push(b'`');
                        }
                        u.push(b);
                    }
                    u.push(b'`');
                    out.push(u);
                }
                out.push(q.text.clone());
            }
            _ => {}
        }
    }
    flush(&mut run, &mut out);
    if txn.transactional {
        let mut ck = Vec::new();
        checkpoint_insert(&mut ck, tables, std::slice::from_ref(txn));
        out.push(ck);
        out.push(if txn.rollback { b"ROLLBACK".to_vec() } else { b"COMMIT".to_vec() });
    }
    out
}

/// `SET` of the session context a query event carries, as mariadb-binlog prints it.
pub(crate) fn context_statement(q: &Query, mariadb: bool) -> String {
    let c = &q.context;
    let mut s = format!("SET @@session.pseudo_thread_id={}, TIMESTAMP={}", c.thread_id, c.timestamp);
    if let Some(us) = c.micros {
        let _ = write!(s, ".{us:06}");
    }
    if let Some(f) = c.flags2 {
        let on = |bit: u32| u8::from(f & bit != 0);
        let _ = write!(
            s,
            ", @@session.foreign_key_checks={}, @@session.sql_auto_is_null={}, @@session.unique_checks={}",
            1 - on(OPTION_NO_FOREIGN_KEY_CHECKS),
            on(OPTION_AUTO_IS_NULL),
            1 - on(OPTION_RELAXED_UNIQUE_CHECKS)
        );
    }
    match (c.flags2, c.explicit_defaults) {
        (Some(f), _) if mariadb => {
            let on = |bit: u32| u8::from(f & bit != 0);
            let _ = write!(
                s,
                ", @@session.check_constraint_checks={}, @@session.sql_if_exists={}, \
                 @@session.explicit_defaults_for_timestamp={}",
                1 - on(OPTION_NO_CHECK_CONSTRAINT_CHECKS),
                on(OPTION_IF_EXISTS),
                on(OPTION_EXPLICIT_DEF_TIMESTAMP)
            );
        }
        (_, Some(e)) => {
            let _ = write!(s, ", @@session.explicit_defaults_for_timestamp={e}");
        }
        _ => {}
    }
    if let Some(m) = c.sql_mode {
        let _ = write!(s, ", @@session.sql_mode={m}");
    }
    if let Some((inc, off)) = c.auto_increment {
        let _ = write!(s, ", @@session.auto_increment_increment={inc}, @@session.auto_increment_offset={off}");
    }
    if let Some((client, conn, server)) = c.charset {
        let _ = write!(
            s,
            ", @@session.character_set_client={client}, @@session.collation_connection={conn}, @@session.collation_server={server}"
        );
    }
    if let Some(tz) = &c.time_zone {
        let _ = write!(s, ", @@session.time_zone='{}'", sql_escape(tz));
    }
    if let Some(lc) = c.lc_time_names {
        let _ = write!(s, ", @@session.lc_time_names={lc}");
    }
    if let Some(db) = c.charset_database {
        let _ = write!(s, ", @@session.collation_database={db}");
    }
    s
}

/// Where a transaction is, for messages.
pub(crate) fn describe(txn: &Txn) -> String {
    let gtid = txn.gtid.as_ref().map(|g| format!(" (GTID {})", g.text())).unwrap_or_default();
    format!("{} at offset {}{gtid}", txn.file.path.display(), txn.start)
}

/// One apply connection and the format description it has seen last.
pub(crate) struct Applier {
    pub(crate) conn: Conn,
    fde_file: Option<usize>,
    /// Whether the server takes `BINLOG @var, @var` (MariaDB 10.2+): found out by the first
    /// format description sent, which goes that way first.
    via_variable: Option<bool>,
    /// The standalone DDL an interrupted run began and did not record (file name, start):
    /// it may have run. Run again, "already exists / does not exist" means it did.
    unrecorded_ddl: Option<(String, u64)>,
    tables: Arc<CheckpointTables>,
}

/// Errors a DDL statement gives when it already ran: the object exists (database 1007,
/// table 1050, column 1060, key 1061, routine 1304, trigger 1359, event 1537, foreign key
/// 1826) or is already gone (database 1008, table 1051, column or key 1091, table 1146,
/// routine 1305, trigger 1360, event 1539).
const ALREADY_APPLIED: [u16; 14] = [1007, 1050, 1060, 1061, 1304, 1359, 1537, 1826, 1008, 1051, 1091, 1146, 1305, 1360];

/// A standalone DDL statement: CREATE, ALTER, DROP, RENAME or TRUNCATE, which commits by
/// itself (it cannot share a transaction with its checkpoint row).
fn is_ddl(txn: &Txn) -> bool {
    !txn.transactional
        && txn.events.iter().any(|e| match &e.event {
            Event::Query(q) => {
                let head = String::from_utf8_lossy(&q.text[..q.text.len().min(16)]).trim_start().to_ascii_uppercase();
                ["CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE"].iter().any(|w| head.starts_with(w))
            }
            _ => false,
        })
}

impl Applier {
    pub(crate) fn new(conn: Conn, tables: Arc<CheckpointTables>, unrecorded_ddl: Option<(String, u64)>) -> Applier {
        Applier { conn, fde_file: None, via_variable: None, unrecorded_ddl, tables }
    }

    /// Applies a batch of row transactions in one server transaction. A deadlock or lock
    /// wait timeout retries it; any other failure is retried one transaction at a time so the
    /// error names the transaction that failed.
    pub(crate) async fn rows(&mut self, txns: &[Arc<Txn>]) -> Result<()> {
        let Some(first) = txns.first() else { return Ok(()) };
        self.send_fde(first).await.map_err(BinlogError::sql("sending the format description"))?;
        let batch = render_rows_batch(txns, &self.tables, self.via_variable == Some(true));
        let mut attempts = 0;
        loop {
            let e = match self.try_rows(&batch).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            self.rollback().await?;
            // The one retry policy, for what this connection can retry by itself (a deadlock,
            // a lock wait timeout); a lost connection ends the replay, which resumes from its
            // checkpoint.
            if retry::transient(&e) == Some(Transient::Retry) && attempts < retry::POLICY.retries {
                attempts += 1;
                tracing::warn!("{e}; retrying {} ({attempts}/{})", describe(first), retry::POLICY.retries);
                tokio::time::sleep(retry::POLICY.wait(attempts)).await;
                continue;
            }
            if txns.len() > 1 {
                for t in txns {
                    Box::pin(self.rows(std::slice::from_ref(t))).await?;
                }
                return Ok(());
            }
            return Err(BinlogError::sql(format!("applying {}", describe(first)))(e));
        }
    }

    /// One attempt; the batch's format description has been sent (`rows`: a batch is from
    /// one file).
    async fn try_rows(&mut self, batch: &RowsBatch) -> std::result::Result<(), mysql_async::Error> {
        match batch {
            RowsBatch::Literal(sql) => self.conn.query_drop(sql.as_slice()).await?,
            RowsBatch::Variable { events, sql } => {
                self.set_events_variable(events).await?;
                self.conn.query_drop(sql.as_slice()).await?;
            }
        }
        self.conn.query_drop("COMMIT").await
    }

    /// Sets the events variable through a prepared statement: the parameter travels as is
    /// (binary protocol), with no escaping and no lexing.
    async fn set_events_variable(&mut self, base64: &[u8]) -> std::result::Result<(), mysql_async::Error> {
        self.conn.exec_drop(format!("SET {EVENTS_VAR} = ?, {EMPTY_VAR} = ''"), (base64,)).await
    }

    /// The format description of the transaction's file, once per connection and file. The
    /// first one also finds out whether the server takes events in a variable: MySQL has no
    /// `BINLOG @var` and answers with a parse error.
    async fn send_fde(&mut self, txn: &Txn) -> std::result::Result<(), mysql_async::Error> {
        if self.fde_file == Some(txn.file.index) {
            return Ok(());
        }
        if self.via_variable != Some(false) {
            let mut encoded = Vec::new();
            encode_events(&mut encoded, std::iter::once(&txn.file.fde_bytes));
            self.set_events_variable(&encoded).await?;
            match self.conn.query_drop(format!("BINLOG {EVENTS_VAR}, {EMPTY_VAR}")).await {
                Ok(()) => self.via_variable = Some(true),
                Err(mysql_async::Error::Server(e)) if e.code == ER_PARSE_ERROR && self.via_variable.is_none() => {
                    self.via_variable = Some(false);
                }
                Err(e) => return Err(e),
            }
        }
        if self.via_variable == Some(false) {
            let mut s = Vec::new();
            binlog_statement(&mut s, &[&txn.file.fde_bytes]);
            self.conn.query_drop(s.as_slice()).await?;
        }
        self.fde_file = Some(txn.file.index);
        Ok(())
    }

    async fn rollback(&mut self) -> Result<()> {
        self.conn.query_drop("ROLLBACK").await.map_err(BinlogError::sql("ROLLBACK after a failed transaction"))
    }

    /// Applies a barrier transaction alone. A standalone statement (DDL) cannot share a
    /// transaction with its checkpoint row; that row is written right after it.
    pub(crate) async fn barrier(&mut self, txn: &Arc<Txn>) -> Result<()> {
        self.send_fde(txn).await.map_err(BinlogError::sql("sending the format description"))?;
        let ddl = is_ddl(txn);
        let may_have_run = ddl && self.unrecorded_ddl.as_ref() == Some(&(txn.file.name.clone(), txn.start));
        if ddl {
            // Its checkpoint row can only follow it: say first that it is about to run, so a
            // resumed replay knows it may have.
            let intent = format!(
                "REPLACE INTO {} (id, file, pos) VALUES (2, '{}', {})",
                self.tables.checkpoint,
                sql_escape(&txn.file.name),
                txn.start
            );
            self.conn.query_drop(intent).await.map_err(BinlogError::sql(format!("recording {}", describe(txn))))?;
        }
        for statement in render_barrier(txn, &self.tables) {
            if let Err(e) = self.conn.query_drop(statement.as_slice()).await {
                if may_have_run && matches!(&e, mysql_async::Error::Server(se) if ALREADY_APPLIED.contains(&se.code)) {
                    tracing::info!("{} ran before the interrupted replay recorded it: {e}", describe(txn));
                    continue;
                }
                let _ = self.conn.query_drop("ROLLBACK").await;
                let text = String::from_utf8_lossy(&statement);
                let short: String = text.chars().take(200).collect();
                return Err(BinlogError::sql(format!("applying {}: `{short}`", describe(txn)))(e));
            }
        }
        if !txn.transactional {
            let mut ck = Vec::new();
            checkpoint_insert(&mut ck, &self.tables, std::slice::from_ref(txn));
            self.conn
                .query_drop(ck.as_slice())
                .await
                .map_err(BinlogError::sql(format!("checkpoint after {}", describe(txn))))?;
        }
        self.conn.query_drop(APPLY_CHARSET).await.map_err(BinlogError::sql(format!("after {}", describe(txn))))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use proptest::prelude::*;

    use super::encode_events;

    proptest! {
        /// Encoding events one after the other gives the base64 of their concatenation,
        /// whatever their lengths (the carry between them is what makes this hold).
        #[test]
        fn events_encode_as_their_concatenation(events in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..8)) {
            let mut out = b"BINLOG '".to_vec();
            encode_events(&mut out, events.iter());
            let whole: Vec<u8> = events.concat();
            let expected = format!("BINLOG '{}", base64::engine::general_purpose::STANDARD.encode(&whole));
            prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }
}
