//! CREATE TABLE on several connections, for every source. Creating thousands of tables one
//! after the other was most of a schema-heavy restore's time (each CREATE waits on the
//! filesystem), so each table's CREATE goes to one of N DDL connections, round robin. A dump
//! stream's CREATE must run under the session the dump had set up at that point: every
//! session statement the stream runs is logged here, and a connection runs the ones it has
//! not seen before its next CREATE. A table's loaders wait until its CREATE has run
//! ([`crate::tables::Tables::wait_created`]).

use std::sync::Arc;
use std::time::Instant;

use floodgate_format::split::Statement;
use floodgate_format::sqltext::head_words;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::mpsc;

use crate::checkpoint::{self, step};
use crate::session::Session;
use crate::tables::TableId;
use crate::{LoadError, Result};
use floodgate_conn::Transient;

/// One table to create.
pub(crate) struct CreateJob {
    pub table: TableId,
    /// The CREATE TABLE, with whatever session statements its file has around it.
    pub statements: Vec<Statement>,
    /// Where the statements come from, for messages (a file, or the dump).
    pub file: String,
    /// Record the table as floodgate's (with this digest of its CREATE) before creating it.
    /// None when the source recorded it already.
    pub intent: Option<String>,
}

struct Handed {
    job: CreateJob,
    /// Session statements the dump ran since this connection's previous job, in order.
    session: Vec<Statement>,
}

/// The sources' side: hands CREATEs out and keeps each connection's session in step.
pub(crate) struct DdlPool {
    senders: Vec<mpsc::Sender<Handed>>,
    next: usize,
    /// Every session statement the dump has run so far, and how far each connection is.
    session_log: Vec<Statement>,
    replayed: Vec<usize>,
    /// Tables handed out and not yet waited for.
    in_flight: Vec<TableId>,
    session: Arc<Session>,
}

impl DdlPool {
    /// Starts `connections` DDL connections on `set`.
    pub fn spawn(set: &mut tokio::task::JoinSet<Result<()>>, connections: usize, session: &Arc<Session>) -> DdlPool {
        let mut senders = Vec::new();
        for _ in 0..connections.max(1) {
            let (tx, rx) = mpsc::channel(64);
            let session = session.clone();
            set.spawn(async move { run(session, rx).await });
            senders.push(tx);
        }
        let replayed = vec![0; senders.len()];
        DdlPool { senders, next: 0, session_log: Vec::new(), replayed, in_flight: Vec::new(), session: session.clone() }
    }

    /// A session statement the dump just ran: every DDL connection runs it too, before its
    /// next CREATE.
    pub fn log_session(&mut self, s: &Statement) {
        self.session_log.push(s.clone());
    }

    /// Hands a CREATE to the next connection.
    pub async fn create(&mut self, job: CreateJob) -> Result<()> {
        let w = self.next % self.senders.len();
        self.next += 1;
        let session = self.session_log.get(self.replayed[w]..).unwrap_or_default().to_vec();
        self.replayed[w] = self.session_log.len();
        let table = job.table;
        if self.senders[w].send(Handed { job, session }).await.is_err() {
            // The connection stopped on an error, which the join reports.
            return Err(LoadError::Internal("a DDL connection stopped".into()));
        }
        self.in_flight.push(table);
        Ok(())
    }

    /// Waits until every CREATE handed out has run: before a statement that may depend on
    /// any of them (database DDL, an ALTER), or before the data of a planned backup.
    pub async fn barrier(&mut self) -> Result<()> {
        for table in std::mem::take(&mut self.in_flight) {
            self.session.tables.wait_created(table).await?;
        }
        Ok(())
    }
}

async fn run(session: Arc<Session>, mut jobs: mpsc::Receiver<Handed>) -> Result<()> {
    let mut conn: Option<Conn> = None;
    // Every session statement this connection was handed: a new connection (after a lost
    // one) replays them all to stand where the dump's session stood.
    let mut log: Vec<Statement> = Vec::new();
    while let Some(Handed { job, session: new }) = jobs.recv().await {
        let started = Instant::now();
        let from = log.len();
        log.extend(new);
        match create_with_retries(&session, &mut conn, &log, from, &job).await {
            Ok(()) => {
                session.tables.created(job.table, Ok(()))?;
                session.tables.schema_seconds(job.table, started.elapsed().as_secs_f64())?;
            }
            Err(e) => {
                session.tables.created(job.table, Err(e.to_string()))?;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Creates the job's table, retrying a deadlock on the same connection and a lost
/// connection on a new one (which replays the whole session first). After a lost
/// connection the table may exist already: the CREATE then stands as done.
async fn create_with_retries(
    session: &Session,
    slot: &mut Option<Conn>,
    log: &[Statement],
    mut from: usize,
    job: &CreateJob,
) -> Result<()> {
    let (db, table) = session.tables.name(job.table)?;
    let what = format!("creating {}", floodgate_format::ident::qualified(&db, &table));
    let mut attempt = 0;
    let mut reconnected = false;
    loop {
        let conn = match slot {
            Some(c) => c,
            None => {
                from = 0;
                let wait = session.options.reconnect_wait;
                slot.insert(floodgate_conn::retry::reconnect(&session.target, &session.init, wait).await?)
            }
        };
        let error = match create(session, conn, &log[from..], job, (&db, &table), reconnected).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        match floodgate_conn::retry::POLICY.before_retry(error, attempt, &what).await? {
            // The session statements ran before the failure; running them twice would not
            // leave the same state (`SET @saved = @@x` pairs).
            Transient::Retry => from = log.len(),
            Transient::Reconnect => {
                *slot = None;
                reconnected = true;
            }
        }
        attempt += 1;
    }
}

async fn create(
    session: &Session,
    conn: &mut Conn,
    log: &[Statement],
    job: &CreateJob,
    (db, table): (&str, &str),
    may_exist: bool,
) -> Result<()> {
    let at = |s: &Statement| format!("{} at byte {}", job.file, s.offset);
    if let Some(first) = log.first() {
        // Plain SET and USE statements: one round trip for all of them.
        let batch: Vec<&[u8]> = log.iter().map(|s| &s.text[..]).collect();
        conn.query_drop(batch.join(&b";\n"[..]))
            .await
            .map_err(LoadError::sql(format!("{} at byte {}", session.source, first.offset)))?;
    }
    if let Some(digest) = &job.intent {
        // Recorded before it exists: if this run dies now, the next knows it is ours.
        checkpoint::record_step(conn, session.ledger(), (step::TABLE, db, table), Some(digest)).await?;
    }
    for s in &job.statements {
        match conn.query_drop(&s.text[..]).await {
            Ok(()) => {}
            Err(mysql_async::Error::Server(e)) if may_exist && e.code == ER_TABLE_EXISTS && is_create(&s.text) => {}
            Err(e) => return Err(LoadError::sql(at(s))(e)),
        }
    }
    crate::failpoint::hit("schema.table").await;
    Ok(())
}

fn is_create(text: &[u8]) -> bool {
    head_words(text, 1).first().map(String::as_str) == Some("CREATE")
}

/// ER_TABLE_EXISTS_ERROR.
const ER_TABLE_EXISTS: u16 = 1050;

/// `--create-invisible-pks` on one statement of a table's schema: a CREATE TABLE of a table
/// without a primary key gets an invisible `my_row_id` one
/// ([`floodgate_format::ddl::add_invisible_primary_key`]). Returns a notice for a table that
/// cannot get one, or whose CREATE cannot be read (it then runs as written).
pub(crate) fn invisible_primary_key((db, table): (&str, &str), text: &mut Vec<u8>) -> Option<String> {
    use floodgate_format::ddl::{add_invisible_primary_key, InvisiblePk};
    let words = head_words(text, 3);
    let is_create_table = words.first().is_some_and(|w| w == "CREATE") && words.iter().skip(1).any(|w| w == "TABLE");
    if !is_create_table {
        return None;
    }
    let name = floodgate_format::ident::qualified(db, table);
    let sql = std::str::from_utf8(text).ok()?;
    match add_invisible_primary_key(sql) {
        Ok(InvisiblePk::HasOne) => None,
        Ok(InvisiblePk::Added(with)) => {
            *text = with.into_bytes();
            None
        }
        Ok(InvisiblePk::Cannot(why)) => Some(format!("--create-invisible-pks: {name} keeps no primary key: {why}")),
        Err(e) => Some(format!("--create-invisible-pks: {name} keeps no primary key: {e}")),
    }
}
