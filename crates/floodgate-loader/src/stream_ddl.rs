//! Table DDL of a mysqldump stream on several connections. The sequencer reads the dump in
//! order on one connection; each table's CREATE goes to one of N DDL connections (round
//! robin), preceded by the session statements the dump ran since that connection's last
//! CREATE, so it runs under the session it would have had in order. Creating thousands of
//! tables one after the other was most of a schema-heavy dump's restore time (each CREATE
//! waits on the filesystem). The table's loaders wait for its spec (`SpecReady`), which the
//! DDL connection publishes once the table exists.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use floodgate_format::split::Statement;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::{mpsc, watch};

use crate::checkpoint::{self, step};
use crate::convert::{table_spec, TableSpec};
use crate::error::Transient;
use crate::report::TableReport;
use crate::{ConnectOptions, LoadError, Result};

type SpecResult = std::result::Result<Arc<TableSpec>, String>;

/// A table's spec, now or once its CREATE has run.
#[derive(Clone)]
pub(crate) struct SpecReady(watch::Receiver<Option<SpecResult>>);

impl SpecReady {
    /// A spec known already (a table an earlier run created).
    pub(crate) fn known(spec: Arc<TableSpec>) -> SpecReady {
        let (_tx, rx) = watch::channel(Some(Ok(spec)));
        SpecReady(rx)
    }

    /// A spec a DDL connection will publish.
    fn pending() -> (watch::Sender<Option<SpecResult>>, SpecReady) {
        let (tx, rx) = watch::channel(None);
        (tx, SpecReady(rx))
    }

    /// The spec if the table exists already.
    pub(crate) fn peek(&self) -> Option<Arc<TableSpec>> {
        self.0.borrow().as_ref().and_then(|r| r.as_ref().ok().cloned())
    }

    /// Waits until the table exists; its CREATE's error if it failed.
    pub(crate) async fn wait(mut self) -> Result<Arc<TableSpec>> {
        let value = self
            .0
            .wait_for(Option::is_some)
            .await
            .map_err(|_| LoadError::Refused("a table's CREATE never ran: its DDL connection stopped".into()))?;
        match value.as_ref() {
            Some(Ok(spec)) => Ok(spec.clone()),
            Some(Err(e)) => Err(LoadError::Refused(e.clone())),
            None => Err(LoadError::Refused("internal error: a table spec vanished".into())),
        }
    }
}

/// One table to create.
struct DdlJob {
    index: usize,
    db: String,
    table: String,
    /// Session statements since this connection's previous job, in dump order.
    session: Vec<Statement>,
    create: Statement,
    /// Recorded with the table's checkpoint intent (a resumed run compares it).
    digest: String,
    /// The dump's character set, for the spec.
    names: String,
    ready: watch::Sender<Option<SpecResult>>,
}

/// The sequencer's side: hands CREATEs out and keeps each connection's session in step.
pub(crate) struct DdlPool {
    senders: Vec<mpsc::Sender<DdlJob>>,
    next: usize,
    /// Every session statement the dump has run so far, and how far each connection is.
    session_log: Vec<Statement>,
    replayed: Vec<usize>,
    /// Tables handed out and not yet seen created (a barrier waits for them).
    in_flight: Vec<SpecReady>,
}

/// What a DDL connection needs besides its jobs.
#[derive(Clone)]
pub(crate) struct DdlContext {
    pub(crate) target: ConnectOptions,
    pub(crate) init: Vec<String>,
    pub(crate) source: String,
    pub(crate) backup: String,
    pub(crate) reports: Arc<Mutex<Vec<TableReport>>>,
    pub(crate) reconnect_wait: Duration,
}

impl DdlPool {
    /// Starts `connections` DDL connections on `set`.
    pub(crate) fn spawn(
        set: &mut tokio::task::JoinSet<Result<()>>,
        connections: usize,
        context: &DdlContext,
    ) -> DdlPool {
        let mut senders = Vec::new();
        for _ in 0..connections.max(1) {
            let (tx, rx) = mpsc::channel(64);
            let context = context.clone();
            set.spawn(async move { run(context, rx).await });
            senders.push(tx);
        }
        let replayed = vec![0; senders.len()];
        DdlPool { senders, next: 0, session_log: Vec::new(), replayed, in_flight: Vec::new() }
    }

    /// A session statement the control connection just ran: every DDL connection runs it
    /// too, before its next CREATE.
    pub(crate) fn log_session(&mut self, s: &Statement) {
        self.session_log.push(s.clone());
    }

    /// Hands a CREATE to the next connection; returns what its loaders wait on.
    pub(crate) async fn create(
        &mut self,
        (index, db, table): (usize, &str, &str),
        create: Statement,
        digest: String,
        names: &str,
    ) -> Result<SpecReady> {
        let w = self.next % self.senders.len();
        self.next += 1;
        let session = self.session_log.get(self.replayed[w]..).unwrap_or_default().to_vec();
        self.replayed[w] = self.session_log.len();
        let (tx, ready) = SpecReady::pending();
        let job = DdlJob {
            index,
            db: db.to_string(),
            table: table.to_string(),
            session,
            create,
            digest,
            names: names.to_string(),
            ready: tx,
        };
        if self.senders[w].send(job).await.is_err() {
            // The connection stopped on an error, which the join reports.
            return Err(LoadError::Refused("a DDL connection stopped".into()));
        }
        self.in_flight.push(ready.clone());
        Ok(ready)
    }

    /// Waits until every CREATE handed out has run (before a statement that may depend on
    /// any of them: database-level DDL, ALTER, a table seen before).
    pub(crate) async fn barrier(&mut self) -> Result<()> {
        for ready in std::mem::take(&mut self.in_flight) {
            ready.wait().await?;
        }
        Ok(())
    }
}

async fn run(context: DdlContext, mut jobs: mpsc::Receiver<DdlJob>) -> Result<()> {
    let mut conn: Option<Conn> = None;
    // Every session statement this connection was handed: a new connection (after a lost
    // one) replays them all to stand where the dump's session stood.
    let mut session: Vec<Statement> = Vec::new();
    while let Some(job) = jobs.recv().await {
        let started = Instant::now();
        let new_from = session.len();
        session.extend(job.session.iter().cloned());
        match create_with_retries(&context, &mut conn, &session, new_from, &job).await {
            Ok(spec) => {
                let _ = job.ready.send(Some(Ok(spec)));
                if let Ok(mut r) = context.reports.lock() {
                    r[job.index].schema_seconds += started.elapsed().as_secs_f64();
                }
            }
            Err(e) => {
                let _ = job.ready.send(Some(Err(e.to_string())));
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
    context: &DdlContext,
    slot: &mut Option<Conn>,
    session: &[Statement],
    mut from: usize,
    job: &DdlJob,
) -> Result<Arc<TableSpec>> {
    let what = format!("creating {}", floodgate_format::ident::qualified(&job.db, &job.table));
    let mut attempt = 0;
    let mut reconnected = false;
    loop {
        let conn = match slot {
            Some(c) => c,
            None => {
                from = 0;
                slot.insert(crate::retry::reconnect(&context.target, &context.init, context.reconnect_wait).await?)
            }
        };
        let error = match create(context, conn, &session[from..], job, reconnected).await {
            Ok(spec) => return Ok(spec),
            Err(e) => e,
        };
        match crate::retry::before_retry(error, attempt, &what).await? {
            // The session statements ran before the failure; running them twice would not
            // leave the same state (`SET @saved = @@x` pairs).
            Transient::Retry => from = session.len(),
            Transient::Reconnect => {
                *slot = None;
                reconnected = true;
            }
        }
        attempt += 1;
    }
}

async fn create(
    context: &DdlContext,
    conn: &mut Conn,
    session: &[Statement],
    job: &DdlJob,
    may_exist: bool,
) -> Result<Arc<TableSpec>> {
    let at = |s: &Statement| format!("{} at byte {}", context.source, s.offset);
    if let Some(first) = session.first() {
        // Plain SET and USE statements: one round trip for all of them.
        let batch: Vec<&[u8]> = session.iter().map(|s| &s.text[..]).collect();
        conn.query_drop(batch.join(&b";\n"[..])).await.map_err(LoadError::sql(at(first)))?;
    }
    // Recorded before it exists: if this run dies now, the next knows it is ours.
    checkpoint::record_step(conn, &context.backup, (step::TABLE, &job.db, &job.table), Some(&job.digest)).await?;
    match conn.query_drop(&job.create.text[..]).await {
        Ok(()) => {}
        Err(mysql_async::Error::Server(e)) if may_exist && e.code == ER_TABLE_EXISTS => {}
        Err(e) => return Err(LoadError::sql(at(&job.create))(e)),
    }
    crate::failpoint::hit("schema.table").await;
    Ok(Arc::new(table_spec(conn, &job.db, &job.table, &job.names).await?))
}

/// ER_TABLE_EXISTS_ERROR.
const ER_TABLE_EXISTS: u16 = 1050;
