//! The decisions of a dump stream's restore, with no I/O: statements go in, in dump order,
//! and [`Action`]s come out saying what to run where. The driver (`stream/mod.rs`) executes
//! them on the control connection, the DDL connections and the chunk queue.
//!
//! The rules:
//! * Session statements (`SET`, `USE`) run in order on the control connection and are
//!   logged for the DDL connections; those of the dump's header also run on every loader.
//! * A table's CREATE is held until its first chunk is cut or its rows end: whether its
//!   secondary indexes are deferred depends on how much data it has ([`DEFER_MIN_BYTES`]),
//!   and a dump says that only after the CREATE. Session statements after a held CREATE wait
//!   behind it, so it still runs under the session it had.
//! * Each table's consecutive INSERTs are cut into chunks of about `chunk_bytes`; a chunk
//!   ends at any statement that does not continue it. A table's rows must come in one run.
//! * A schema statement that is not a new table's first (an ALTER, database DDL) waits for
//!   every CREATE handed out; one that may read loaded rows (anything but creating or
//!   dropping a database none of them belong to) also waits for every queued chunk.
//! * Views, triggers, routines and events wait until after all data, with the session
//!   statements around them.
//! * A statement that changes the server's global state (`SET GLOBAL gtid_slave_pos`,
//!   `CHANGE MASTER TO`) runs once, after every row before it, and is recorded so that a
//!   resumed restore does not run it again.
//! * Nothing the target already has is replaced unless `overwrite`; a resumed restore skips
//!   the DDL of tables it created and the chunks it committed (whose content must match).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use floodgate_format::ddl::{self, ReferencedColumns};
use floodgate_format::ident::{qualified, quote};
use floodgate_format::mysqldump::{schema_target, use_target, Item, Scanner, SchemaTarget};
use floodgate_format::split::Statement;
use floodgate_format::{sqltext, Selection};

use crate::checkpoint::{self, step, Checkpoints};
use crate::convert::set_names;
use crate::grant_tables::{self, GrantRows};
use crate::planned::DEFER_MIN_BYTES;
use crate::resume::{chunk_done, Resumed};
use crate::tables::TableId;
use crate::{LoadError, Result};

/// What to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// A table the stream names: registered under the next id (0, 1, 2, ...).
    Table { db: String, name: String },
    /// The table exists already (an interrupted run created it, or the dump has rows for a
    /// table it never creates): its loaders need not wait for a CREATE.
    Exists(TableId),
    /// An interrupted run left the table partial; it was emptied to load again whole.
    Reloaded(TableId),
    /// Run on the control connection. `session`: also on every DDL connection before its
    /// next CREATE; `header`: also on every loader connection (the dump's header).
    Run { statement: Statement, session: bool, header: bool },
    /// Record the database as floodgate's before the CREATE DATABASE that follows.
    RecordDatabase(String),
    /// Run once on the control connection and record it (`key`, `digest`): a statement that
    /// changes the server's global state, which a resumed restore must not repeat.
    Global { statement: Statement, key: String, digest: String },
    /// Tell the user.
    Notice(String),
    /// Wait until every CREATE handed out has run.
    WaitCreates,
    /// Wait until every chunk queued so far has committed.
    WaitRows,
    /// The table's secondary indexes are built after its data: these ALTERs, these names.
    Defer { table: TableId, alters: Vec<String>, deferred: Vec<String> },
    /// An interrupted run built the table's deferred indexes already.
    IndexesBuilt(TableId),
    /// Create the table on a DDL connection, recording it as floodgate's (with the digest of
    /// its CREATE) first.
    Create { table: TableId, statement: Statement, digest: String },
    /// Queue a chunk of the table's rows.
    Chunk(ChunkCut),
    /// An interrupted run committed this chunk (same content): skip it.
    Resumed { table: TableId, rows: u64, bytes: u64 },
    /// No more rows of the table.
    Seal(TableId),
}

/// A chunk cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkCut {
    pub table: TableId,
    /// Its number within its table, the same on every read of the same stream.
    pub number: u64,
    pub text: CutText,
    /// Bytes of its statements' text.
    pub bytes: u64,
    /// Digest of its statements.
    pub content: String,
    /// The character set of its text (the dump's `SET NAMES` then).
    pub names: String,
}

/// Where a cut chunk's statements are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CutText {
    Held(Vec<Statement>),
    /// Bytes `offset..offset + len` of the file, to be read again when the chunk loads.
    Range {
        offset: u64,
        len: u64,
    },
}

/// Knobs the decisions depend on.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub defer_indexes: bool,
    /// `--create-invisible-pks`.
    pub invisible_pks: bool,
    pub overwrite: bool,
    /// SQL text per chunk.
    pub chunk_bytes: usize,
    /// Chunks are byte ranges of the file (a plain file, read again), not held statements.
    pub in_file: bool,
    /// The target compares table names without case (`lower_case_table_names`).
    pub fold_case: bool,
    /// floodgate's own schema: the dump may not create or drop it.
    pub checkpoint_schema: floodgate_conn::CheckpointSchema,
    /// Run the dump's account statements (`--users`).
    pub users: bool,
    /// The account floodgate restores as, which no statement may touch (nor root, nor the
    /// server's own accounts).
    pub me: (String, String),
}

/// What became of the dump's account statements.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AccountCounts {
    /// Run (`--users`).
    pub run: u64,
    /// Not run: no `--users`.
    pub left_out: u64,
    /// Not run: they name an account floodgate never changes.
    pub protected: u64,
}

/// What the target held, per database, when the dump first named it.
#[derive(Debug, Clone, Default)]
struct TargetDb {
    exists: bool,
    /// Tables and views, lower-cased when the target folds case.
    tables: HashSet<String>,
}

/// A table's CREATE waiting for its rows (see the module's rules).
#[derive(Debug)]
struct HeldCreate {
    table: TableId,
    db: String,
    name: String,
    create: Statement,
    digest: String,
    /// Session statements (`SET ...`) that followed the CREATE in the dump.
    after: Vec<Statement>,
}

/// The chunk being filled.
#[derive(Debug)]
struct Pending {
    table: TableId,
    statements: Vec<Statement>,
    bytes: u64,
}

/// The state machine.
pub(crate) struct Sequencer {
    source: String,
    scanner: Scanner,
    selection: Selection,
    rules: Rules,
    checkpoints: Arc<Checkpoints>,
    resumed: Resumed,
    target: HashMap<String, TargetDb>,
    /// (db, table) -> id, and back.
    ids: HashMap<(String, String), TableId>,
    names: Vec<(String, String)>,
    sealed: HashSet<TableId>,
    chunks_cut: Vec<u64>,
    /// Tables already checked against what the target holds.
    checked: HashSet<(String, String)>,
    open_table: Option<TableId>,
    pending: Option<Pending>,
    /// The pending chunk takes no more statements: another statement came after its last.
    /// It is sent when the next rows arrive or the table ends, which says whether it was the
    /// table's last.
    pending_closed: bool,
    held: Option<HeldCreate>,
    /// The character set of the dump's text (its last `SET NAMES`).
    charset: String,
    /// Still reading the dump's header (session statements before any schema or data).
    in_header: bool,
    /// Statements replayed after all data: post-data and the session statements around them.
    post: Vec<Statement>,
    actions: Vec<Action>,
    accounts: AccountCounts,
    /// The privilege tables of the `mysql` schema the selection leaves out, kept for
    /// `--users` ([`crate::grant_tables`]).
    grant_rows: GrantRows,
}

impl Sequencer {
    pub fn new(
        source: String,
        selection: Selection,
        rules: Rules,
        checkpoints: Arc<Checkpoints>,
        resumed: Resumed,
    ) -> Sequencer {
        Sequencer {
            source,
            scanner: Scanner::for_selection(&selection),
            selection,
            rules,
            checkpoints,
            resumed,
            target: HashMap::new(),
            ids: HashMap::new(),
            names: Vec::new(),
            sealed: HashSet::new(),
            chunks_cut: Vec::new(),
            checked: HashSet::new(),
            open_table: None,
            pending: None,
            pending_closed: false,
            held: None,
            charset: "utf8mb4".into(),
            in_header: true,
            post: Vec::new(),
            actions: Vec::new(),
            accounts: AccountCounts::default(),
            grant_rows: GrantRows::default(),
        }
    }

    /// The privilege tables' statements kept for `--users`.
    pub fn take_grant_rows(&mut self) -> GrantRows {
        std::mem::take(&mut self.grant_rows)
    }

    /// What became of the dump's account statements so far.
    pub fn account_counts(&self) -> AccountCounts {
        self.accounts
    }

    /// With `--into`, a dump made without `--databases` names no database: create and select
    /// the named one first, here and for the post-data replay.
    pub fn start(&mut self) -> Vec<Action> {
        if let Some(db) = self.scanner.current_db().map(str::to_string) {
            let create = statement(format!("CREATE DATABASE IF NOT EXISTS {}", quote(&db)));
            let use_db = statement(format!("USE {}", quote(&db)));
            self.actions.push(Action::Run { statement: create, session: false, header: false });
            self.actions.push(Action::Run { statement: use_db.clone(), session: true, header: false });
            self.post.push(use_db);
        }
        std::mem::take(&mut self.actions)
    }

    /// Classifies the next statement of the dump.
    pub fn classify(&mut self, s: Statement) -> Result<Item> {
        Ok(self.scanner.next(s, &self.source)?)
    }

    /// A database whose state on the target `item`'s decisions need, not yet learnt.
    pub fn needs(&self, item: &Item) -> Option<String> {
        let Item::Schema(s) = item else { return None };
        let db = match schema_target(&s.text)? {
            SchemaTarget::Table(db, _) if db.is_empty() => self.scanner.current_db()?.to_string(),
            SchemaTarget::Table(db, _) | SchemaTarget::Database(db) => db,
        };
        (!self.target.contains_key(&db)).then_some(db)
    }

    /// What the target holds in `db`: whether it exists, and its tables and views.
    pub fn learn(&mut self, db: String, exists: bool, tables: Vec<String>) {
        let tables = tables.into_iter().map(|t| self.fold(&t)).collect();
        self.target.insert(db, TargetDb { exists, tables });
    }

    fn fold(&self, name: &str) -> String {
        if self.rules.fold_case {
            name.to_lowercase()
        } else {
            name.to_string()
        }
    }

    /// Decides what `item` needs done.
    pub fn feed(&mut self, item: Item) -> Result<Vec<Action>> {
        self.handle(item)?;
        Ok(std::mem::take(&mut self.actions))
    }

    /// The stream ended: the last table's rows are complete. Returns the last actions, the
    /// post-data statements, and the names of `--database`/`--exclude` that matched nothing.
    pub fn finish(mut self) -> Result<(Vec<Action>, Vec<Statement>, Vec<String>)> {
        self.seal_open()?;
        Ok((self.actions, self.post, self.selection.unmatched()))
    }

    /// The server's own schemas (`mysql`, ...) the dump held and the selection left out.
    pub fn server_schemas_left_out(&self) -> Vec<String> {
        self.selection.server_schemas_left_out()
    }

    fn current_db(&self) -> String {
        self.scanner.current_db().unwrap_or_default().to_string()
    }

    fn handle(&mut self, item: Item) -> Result<()> {
        let selected = self.selected(&item);
        if !(selected && matches!(item, Item::Rows { .. })) {
            // A chunk is a run of consecutive INSERTs: in a file, one byte range of them.
            self.pending_closed = true;
        }
        if !selected {
            return self.keep_grant_table(item);
        }
        match item {
            Item::Context(s) => {
                if let Some(cs) = set_names(&s.text) {
                    self.charset = cs;
                }
                match &mut self.held {
                    Some(held) => held.after.push(s.clone()),
                    None => {
                        self.actions.push(Action::Run { statement: s.clone(), session: true, header: self.in_header })
                    }
                }
                self.post.push(s);
            }
            Item::Skip(_) => {}
            Item::Account(s) => self.account(s)?,
            Item::Global(s) => {
                let key = format!("byte {}", s.offset);
                if !self.checkpoints.has(step::GLOBAL, "", &key) {
                    // It takes effect where the dump has it: after every row before it (a
                    // replication position must not claim rows that are not in yet).
                    self.seal_open()?;
                    if !self.ids.is_empty() {
                        self.actions.extend([Action::WaitCreates, Action::WaitRows]);
                    }
                    let digest = checkpoint::content_digest([&s.text[..]]);
                    self.actions.push(Action::Global { statement: s, key, digest });
                }
            }
            Item::Post(s) => {
                self.in_header = false;
                self.seal_open()?;
                self.post.push(s);
            }
            Item::Schema(s) => {
                self.in_header = false;
                self.seal_open()?;
                if !self.names_new_table(&s) {
                    // It may depend on a table being created elsewhere (ALTER, DROP DATABASE...).
                    self.actions.push(Action::WaitCreates);
                    if self.reads_loaded_rows(&s) {
                        // Or on rows still queued (an UPDATE, an ALTER of a loaded table).
                        self.actions.push(Action::WaitRows);
                    }
                }
                self.schema(s)?;
            }
            Item::Rows { db, table, statement } => {
                self.in_header = false;
                crate::target::refuse_own_schema(&self.rules.checkpoint_schema, std::iter::once(db.as_str()))?;
                let key = (db.clone(), table.clone());
                let never_created = !self.ids.contains_key(&key) && !self.resumed.contains_key(&key);
                let id = self.table_id(&db, &table);
                if never_created {
                    // Rows for a table the dump does not create: it must exist on the target
                    // already, and its loaders need not wait for a CREATE.
                    self.actions.push(Action::Exists(id));
                }
                if self.open_table != Some(id) {
                    self.seal_open()?;
                    if self.sealed.contains(&id) {
                        return Err(LoadError::Refused(format!(
                            "{} at byte {}: more rows for {} after its data ended; floodgate loads each table's rows \
                             as one run",
                            self.source,
                            statement.offset,
                            qualified(&db, &table)
                        )));
                    }
                    self.open_table = Some(id);
                }
                self.add_rows(id, statement)?;
            }
        }
        Ok(())
    }

    /// With `--users`, keeps what the dump says of the `mysql` schema's privilege tables (left
    /// out of the restore as rows): their CREATE TABLE and their INSERTs.
    fn keep_grant_table(&mut self, item: Item) -> Result<()> {
        if !self.rules.users {
            return Ok(());
        }
        let current = self.current_db();
        let kept = match &item {
            Item::Rows { db, table, .. } => db == "mysql" && grant_tables::is_grant_table(table),
            Item::Schema(s) => match schema_target(&s.text) {
                Some(SchemaTarget::Table(db, t)) => {
                    let db = if db.is_empty() { current } else { db };
                    let words = sqltext::head_words(&s.text, 2);
                    db == "mysql" && grant_tables::is_grant_table(&t) && words == ["CREATE", "TABLE"]
                }
                _ => false,
            },
            _ => false,
        };
        match item {
            Item::Rows { statement, .. } | Item::Schema(statement) if kept => {
                self.grant_rows.keep(statement, &self.source)
            }
            _ => Ok(()),
        }
    }

    /// An account statement: run in order with `--users` (after the CREATEs handed out, since
    /// a GRANT may name a table), unless it names an account floodgate never changes.
    fn account(&mut self, s: Statement) -> Result<()> {
        self.in_header = false;
        self.seal_open()?;
        if !self.rules.users {
            self.accounts.left_out += 1;
            return Ok(());
        }
        if floodgate_format::mysqldump::named_accounts(&s.text)
            .iter()
            .any(|a| crate::accounts::protected(a, &self.rules.me))
        {
            self.accounts.protected += 1;
            return Ok(());
        }
        if !self.ids.is_empty() {
            self.actions.push(Action::WaitCreates);
        }
        self.accounts.run += 1;
        self.actions.push(Action::Run { statement: s, session: false, header: false });
        Ok(())
    }

    /// False for statements `--database`/`--exclude` leave out. Session statements always
    /// run; schema, rows and post-data statements follow the database they belong to.
    fn selected(&mut self, item: &Item) -> bool {
        let current = self.current_db();
        match item {
            // `USE` of a database left out would fail: it was never created.
            Item::Context(s) => use_target(&s.text).is_none_or(|db| self.selection.wants_db(&db)),
            Item::Skip(_) | Item::Global(_) | Item::Account(_) => true,
            Item::Rows { db, table, .. } => self.selection.wants_table(db, table),
            Item::Schema(s) => match schema_target(&s.text) {
                Some(SchemaTarget::Table(db, t)) => {
                    let db = if db.is_empty() { current } else { db };
                    self.selection.wants_table(&db, &t)
                }
                Some(SchemaTarget::Database(db)) => self.selection.wants_db(&db),
                None => self.selection.wants_db(&current),
            },
            Item::Post(s) => self.selection.wants_db(&current) && !self.names_excluded_table(&current, &s.text),
        }
    }

    /// A trigger on an excluded table (`... ON `t` ...`) cannot be created without it.
    fn names_excluded_table(&self, db: &str, text: &[u8]) -> bool {
        let words = sqltext::head_words(text, 3);
        if !words.iter().any(|w| w == "TRIGGER") {
            return false;
        }
        let text = String::from_utf8_lossy(text);
        self.selection.exclude.iter().any(|e| {
            e.split_once('.').is_some_and(|(d, t)| {
                d == db && (text.contains(&format!(" ON {}", quote(t))) || text.contains(&format!(" ON {t} ")))
            })
        })
    }

    /// The first statement seen about a table (mysqldump's `DROP TABLE IF EXISTS` and the
    /// CREATE right after it): it depends on no table another connection is creating.
    fn names_new_table(&self, s: &Statement) -> bool {
        let Some(SchemaTarget::Table(db, table)) = schema_target(&s.text) else { return false };
        let head = sqltext::head_words(&s.text, 1).first().cloned().unwrap_or_default();
        let db = if db.is_empty() { self.current_db() } else { db };
        matches!(head.as_str(), "DROP" | "CREATE") && !self.ids.contains_key(&(db, table))
    }

    /// Whether a schema statement that is not a new table's may need the rows queued so far:
    /// anything but creating or dropping a database none of them belong to.
    fn reads_loaded_rows(&self, s: &Statement) -> bool {
        match schema_target(&s.text) {
            Some(SchemaTarget::Database(db)) => self.ids.keys().any(|(d, _)| *d == db),
            _ => true,
        }
    }

    /// The table's id, registering it the first time the stream names it.
    fn table_id(&mut self, db: &str, table: &str) -> TableId {
        let key = (db.to_string(), table.to_string());
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.names.len();
        self.ids.insert(key.clone(), id);
        self.names.push(key.clone());
        self.chunks_cut.push(0);
        self.actions.push(Action::Table { db: db.into(), name: table.into() });
        if let Some(resumed) = self.resumed.get(&key) {
            self.actions.push(Action::Exists(id));
            if resumed.emptied {
                self.actions.push(Action::Reloaded(id));
            }
        }
        id
    }

    /// Schema statements: refuse to replace existing data, hold CREATEs, run the rest in
    /// order. The DDL of a table an interrupted run created is skipped (after checking it
    /// is the same).
    fn schema(&mut self, s: Statement) -> Result<()> {
        let head = sqltext::head_words(&s.text, 1).first().cloned().unwrap_or_default();
        match schema_target(&s.text) {
            Some(SchemaTarget::Table(db, table)) => {
                let db = if db.is_empty() { self.current_db() } else { db };
                crate::target::refuse_own_schema(&self.rules.checkpoint_schema, std::iter::once(db.as_str()))?;
                let resumed = self.resumed.contains_key(&(db.clone(), table.clone()));
                let absent = !resumed && !self.guard_table(&db, &table, s.offset)?;
                if absent && head == "DROP" && sqltext::head_words(&s.text, 5).iter().any(|w| w == "EXISTS") {
                    // mysqldump's DROP TABLE IF EXISTS of a table the target does not have:
                    // nothing to drop, and the server's look for its files costs milliseconds.
                    return Ok(());
                }
                if head == "CREATE" {
                    let id = self.table_id(&db, &table);
                    let digest = checkpoint::content_digest([&s.text[..]]);
                    self.open_table = Some(id);
                    if !resumed {
                        self.held =
                            Some(HeldCreate { table: id, db, name: table, create: s, digest, after: Vec::new() });
                        return Ok(());
                    }
                    self.same_create(&db, &table, &digest, s.offset)?;
                    let mut create = s;
                    if self.rules.defer_indexes {
                        self.defer_indexes(id, &db, &table, &mut create);
                    }
                    if self.checkpoints.has(step::INDEXES, &db, &table) {
                        self.actions.push(Action::IndexesBuilt(id));
                    }
                    return Ok(());
                }
                if resumed {
                    return Ok(()); // its DROP TABLE IF EXISTS would drop what was loaded
                }
            }
            Some(SchemaTarget::Database(db)) => {
                crate::target::refuse_own_schema(&self.rules.checkpoint_schema, std::iter::once(db.as_str()))?;
                if head == "DROP" && self.resumed.keys().any(|(d, _)| *d == db) {
                    return Ok(()); // it holds tables an interrupted run loaded
                }
                self.guard_database(&db, &s, &head)?;
                if head == "CREATE" && !self.target.get(&db).is_some_and(|t| t.exists) {
                    self.actions.push(Action::RecordDatabase(db));
                }
            }
            None => {}
        }
        self.actions.push(Action::Run { statement: s, session: false, header: false });
        Ok(())
    }

    /// Refuses to replace a table the target has (unless --overwrite). Returns whether it
    /// exists, as far as this run knows (true when it did not look).
    fn guard_table(&mut self, db: &str, table: &str, offset: u64) -> Result<bool> {
        let key = qualified(db, table);
        if self.rules.overwrite || !self.checked.insert((db.to_string(), table.to_string())) {
            return Ok(true);
        }
        let exists = self.target.get(db).is_some_and(|t| t.tables.contains(&self.fold(table)));
        if let (true, Some(other)) = (exists, self.checkpoints.claimed_by_other(db, table)) {
            return Err(checkpoint::different_backup(other, &format!("{} at byte {offset}: {key}", self.source)));
        }
        if exists {
            return Err(LoadError::Refused(format!(
                "{} at byte {offset}: the target already has {key}, which this dump would replace. Nothing of it was \
                 changed. Restore into a fresh server, drop it, or pass --overwrite.",
                self.source
            )));
        }
        Ok(false)
    }

    fn guard_database(&self, db: &str, s: &Statement, head: &str) -> Result<()> {
        let holds_tables = self.target.get(db).is_some_and(|t| !t.tables.is_empty());
        if head != "DROP" || self.rules.overwrite || !holds_tables {
            return Ok(());
        }
        Err(LoadError::Refused(format!(
            "{} at byte {}: the dump drops database {}, which holds tables on the target. Pass --overwrite to allow it.",
            self.source,
            s.offset,
            quote(db)
        )))
    }

    /// A resumed table's CREATE must be the one the interrupted run executed.
    fn same_create(&self, db: &str, table: &str, digest: &str, offset: u64) -> Result<()> {
        match self.checkpoints.step(step::TABLE, db, table) {
            Some(Some(recorded)) if recorded != digest => Err(LoadError::Refused(format!(
                "{} at byte {offset}: the CREATE TABLE of {} differs from the one the interrupted restore ran: this is \
                 a different dump. Resume with the original, or pass --restart to start over.",
                self.source,
                qualified(db, table)
            ))),
            _ => Ok(()),
        }
    }

    fn defer_indexes(&mut self, table: TableId, db: &str, name: &str, create: &mut Statement) {
        let Ok(text) = std::str::from_utf8(&create.text) else { return };
        match ddl::defer_indexes(db, name, text, &ReferencedColumns::default()) {
            Ok(d) => {
                create.text = d.create.into_bytes();
                self.actions.push(Action::Defer { table, alters: d.alters, deferred: d.deferred });
            }
            Err(e) => tracing::warn!(table = %qualified(db, name), "indexes not deferred: {e}"),
        }
    }

    /// Hands the held CREATE out (and the session statements behind it). `small` says the
    /// table's rows all fit in its first chunk, under `DEFER_MIN_BYTES`: it keeps its indexes.
    fn release_held(&mut self, small: bool) {
        let Some(mut held) = self.held.take() else { return };
        if self.rules.invisible_pks {
            let table = (held.db.as_str(), held.name.as_str());
            if let Some(notice) = crate::ddl::invisible_primary_key(table, &mut held.create.text) {
                self.actions.push(Action::Notice(notice));
            }
        }
        if self.rules.defer_indexes && !small {
            self.defer_indexes(held.table, &held.db, &held.name, &mut held.create);
        }
        self.actions.push(Action::Create { table: held.table, statement: held.create, digest: held.digest });
        for s in held.after {
            self.actions.push(Action::Run { statement: s, session: true, header: false });
        }
    }

    fn add_rows(&mut self, table: TableId, statement: Statement) -> Result<()> {
        let len = statement.text.len() as u64;
        match &mut self.pending {
            Some(p) if p.table == table && !self.pending_closed => {
                p.statements.push(statement);
                p.bytes += len;
            }
            _ => {
                // More rows of the same table after a closed chunk: that one was not its last.
                let last = self.pending.as_ref().is_none_or(|p| p.table != table);
                self.flush(last)?;
                self.pending = Some(Pending { table, statements: vec![statement], bytes: len });
                self.pending_closed = false;
            }
        }
        if self.pending.as_ref().is_some_and(|p| p.bytes as usize >= self.rules.chunk_bytes) {
            self.flush(false)?;
        }
        Ok(())
    }

    /// Cuts the pending chunk; `last` says the table's rows end with it.
    fn flush(&mut self, last: bool) -> Result<()> {
        let Some(Pending { table, statements, bytes }) = self.pending.take() else { return Ok(()) };
        if self.held.as_ref().is_some_and(|h| h.table == table) {
            self.release_held(last && bytes < DEFER_MIN_BYTES);
        }
        let number = self.chunks_cut[table];
        self.chunks_cut[table] += 1;
        let content = checkpoint::content_digest(statements.iter().map(|s| &s.text[..]));
        let (db, name) = &self.names[table];
        if let Some(done) = chunk_done(&self.resumed, &self.checkpoints, (db, name), number) {
            if done.content.as_deref() != Some(content.as_str()) {
                return Err(LoadError::Refused(format!(
                    "{} at byte {}: the rows of {} (chunk {number}) differ from those the interrupted restore loaded: \
                     this is a different dump. Resume with the original, or pass --restart to start over.",
                    self.source,
                    statements.first().map(|s| s.offset).unwrap_or_default(),
                    qualified(db, name)
                )));
            }
            self.actions.push(Action::Resumed { table, rows: done.rows, bytes });
            return Ok(());
        }
        let text = match (self.rules.in_file, statements.first(), statements.last()) {
            (true, Some(first), Some(last)) => {
                CutText::Range { offset: first.offset, len: last.offset + last.text.len() as u64 - first.offset }
            }
            _ => CutText::Held(statements),
        };
        let names = self.charset.clone();
        self.actions.push(Action::Chunk(ChunkCut { table, number, text, bytes, content, names }));
        Ok(())
    }

    /// Ends the open table's rows: cuts its last chunk and seals it.
    fn seal_open(&mut self) -> Result<()> {
        self.flush(true)?;
        // A table without rows: nothing to defer.
        self.release_held(true);
        if let Some(t) = self.open_table.take() {
            self.sealed.insert(t);
            self.actions.push(Action::Seal(t));
        }
        Ok(())
    }
}

fn statement(text: String) -> Statement {
    Statement { offset: 0, text: text.into_bytes(), terminated: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            invisible_pks: false,
            defer_indexes: true,
            overwrite: false,
            chunk_bytes: 1 << 20,
            in_file: false,
            fold_case: false,
            checkpoint_schema: Default::default(),
            users: false,
            me: Default::default(),
        }
    }

    fn sequencer(rules: Rules) -> Sequencer {
        Sequencer::new("dump.sql".into(), Selection::default(), rules, Arc::default(), Resumed::new())
    }

    /// Feeds `texts` in order (at increasing offsets), telling the sequencer the target holds
    /// `on_target` tables in every database it asks about; returns the actions, with the
    /// statements' text in place of the statements.
    fn feed(seq: &mut Sequencer, texts: &[&str], on_target: &[&str]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut offset = 0;
        for text in texts {
            let item = seq.classify(Statement { offset, text: text.as_bytes().to_vec(), terminated: true })?;
            offset += text.len() as u64 + 2;
            if let Some(db) = seq.needs(&item) {
                seq.learn(db, !on_target.is_empty(), on_target.iter().map(|t| t.to_string()).collect());
            }
            out.extend(seq.feed(item)?.iter().map(show));
        }
        Ok(out)
    }

    fn finish(seq: Sequencer) -> (Vec<String>, Vec<String>) {
        let (actions, post, _) = seq.finish().unwrap();
        (
            actions.iter().map(show).collect(),
            post.iter().map(|s| String::from_utf8_lossy(&s.text).into_owned()).collect(),
        )
    }

    fn show(a: &Action) -> String {
        let text = |s: &Statement| String::from_utf8_lossy(&s.text).into_owned();
        match a {
            Action::Table { db, name } => format!("table {db}.{name}"),
            Action::Exists(t) => format!("exists #{t}"),
            Action::Reloaded(t) => format!("reloaded #{t}"),
            Action::Run { statement, session, header } => {
                format!(
                    "run{}{} {}",
                    if *session { " session" } else { "" },
                    if *header { " header" } else { "" },
                    text(statement)
                )
            }
            Action::RecordDatabase(db) => format!("record {db}"),
            Action::Global { statement, .. } => format!("global {}", text(statement)),
            Action::Notice(text) => format!("notice {text}"),
            Action::WaitCreates => "wait creates".into(),
            Action::WaitRows => "wait rows".into(),
            Action::Defer { table, deferred, .. } => format!("defer #{table} {}", deferred.join(",")),
            Action::IndexesBuilt(t) => format!("indexes built #{t}"),
            Action::Create { table, statement, .. } => format!("create #{table} {}", text(statement)),
            Action::Chunk(c) => match &c.text {
                CutText::Held(s) => format!("chunk #{}.{} of {} statements", c.table, c.number, s.len()),
                CutText::Range { offset, len } => format!("chunk #{}.{} bytes {offset}+{len}", c.table, c.number),
            },
            Action::Resumed { table, rows, .. } => format!("resumed #{table} {rows} rows"),
            Action::Seal(t) => format!("seal #{t}"),
        }
    }

    const DUMP: [&str; 12] = [
        "/*!40101 SET NAMES utf8mb4 */",
        "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `d`",
        "USE `d`",
        "DROP TABLE IF EXISTS `t`",
        "CREATE TABLE `t` (`a` int, KEY `k` (`a`))",
        "SET character_set_client = @saved_cs_client",
        "LOCK TABLES `t` WRITE",
        "INSERT INTO `t` VALUES (1)",
        "INSERT INTO `t` VALUES (2)",
        "UNLOCK TABLES",
        "/*!50003 CREATE*/ /*!50003 TRIGGER `tr` AFTER INSERT ON `t` FOR EACH ROW SET @x = 1 */",
        "/*!50001 CREATE VIEW `v` AS SELECT 1 AS `a` */",
    ];

    #[test]
    fn a_small_table_is_created_at_its_first_chunk_with_its_indexes() {
        let mut seq = sequencer(rules());
        let actions = feed(&mut seq, &DUMP, &[]).unwrap();
        assert_eq!(
            actions,
            [
                "run session header /*!40101 SET NAMES utf8mb4 */",
                // Database DDL waits for every CREATE handed out (none yet).
                "wait creates",
                // Recorded as floodgate's before it exists.
                "record d",
                "run CREATE DATABASE /*!32312 IF NOT EXISTS*/ `d`",
                "run session USE `d`",
                // DROP TABLE IF EXISTS of a table the target does not have: not sent.
                "table d.t",
                // The CREATE is held: the SET after it waits behind it.
                "create #0 CREATE TABLE `t` (`a` int, KEY `k` (`a`))",
                "run session SET character_set_client = @saved_cs_client",
                "chunk #0.0 of 2 statements",
                "seal #0",
            ]
        );
        let (last, post) = finish(seq);
        assert!(last.is_empty(), "{last:?}");
        // Triggers and views wait for all data, with the session statements around them.
        assert_eq!(post.len(), 5, "{post:?}");
        assert!(post[3].contains("TRIGGER") && post[4].contains("VIEW"), "{post:?}");
    }

    #[test]
    fn a_large_table_defers_its_indexes_and_is_cut_into_chunks() {
        let mut seq = sequencer(Rules { chunk_bytes: 30, in_file: true, ..rules() });
        let mut dump = DUMP[..9].to_vec();
        dump.extend(["INSERT INTO `t` VALUES (3)", "INSERT INTO `t` VALUES (4)", "UNLOCK TABLES"]);
        let actions = feed(&mut seq, &dump, &[]).unwrap();
        let tail: Vec<&str> = actions.iter().skip(6).map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                // Its first chunk fills before the rows end: the table is large, indexes wait.
                "defer #0 k",
                "create #0 CREATE TABLE `t` (\n  `a` int\n)",
                "run session SET character_set_client = @saved_cs_client",
                // Byte ranges of the file, read again when they load.
                "chunk #0.0 bytes 223+54",
                "chunk #0.1 bytes 279+54",
            ]
        );
        // The table's rows end with the stream.
        assert_eq!(finish(seq).0, ["seal #0"]);
    }

    #[test]
    fn a_statement_after_the_rows_waits_for_creates_and_rows() {
        let mut seq = sequencer(rules());
        feed(&mut seq, &DUMP[..9], &[]).unwrap();
        let actions = feed(&mut seq, &["UPDATE `t` SET `a` = `a` + 1"], &[]).unwrap();
        assert_eq!(
            actions,
            [
                // The rows end: the held CREATE goes out with the only chunk.
                "create #0 CREATE TABLE `t` (`a` int, KEY `k` (`a`))",
                "run session SET character_set_client = @saved_cs_client",
                "chunk #0.0 of 2 statements",
                "seal #0",
                // The UPDATE may read those rows: it waits for the CREATE and the chunk.
                "wait creates",
                "wait rows",
                "run UPDATE `t` SET `a` = `a` + 1"
            ]
        );
        // A new table's DROP/CREATE does not wait for anything.
        let actions = feed(&mut seq, &["DROP TABLE IF EXISTS `u`", "CREATE TABLE `u` (b int)"], &[]).unwrap();
        assert_eq!(actions, ["table d.u"]);
        // Database DDL waits for creates, and for rows only if its tables have some queued.
        let actions = feed(&mut seq, &["CREATE DATABASE `e`"], &[]).unwrap();
        assert_eq!(
            actions,
            ["create #1 CREATE TABLE `u` (b int)", "seal #1", "wait creates", "record e", "run CREATE DATABASE `e`"]
        );
    }

    #[test]
    fn tables_the_target_has_are_refused_unless_overwrite() {
        let mut seq = sequencer(rules());
        let err = feed(&mut seq, &DUMP[..5], &["t"]).unwrap_err();
        assert!(err.to_string().contains("dump.sql at byte"), "{err}");
        assert!(err.to_string().contains("already has `d`.`t`"), "{err}");
        let mut seq = sequencer(Rules { overwrite: true, ..rules() });
        let actions = feed(&mut seq, &DUMP[..5], &["t"]).unwrap();
        assert!(actions.contains(&"run DROP TABLE IF EXISTS `t`".to_string()), "{actions:?}");
    }

    #[test]
    fn rows_of_a_table_after_its_data_ended_are_refused() {
        let mut seq = sequencer(rules());
        feed(&mut seq, &DUMP[..10], &[]).unwrap();
        feed(&mut seq, &["CREATE TABLE `u` (b int)", "INSERT INTO `u` VALUES (1)"], &[]).unwrap();
        let err = feed(&mut seq, &["INSERT INTO `t` VALUES (9)"], &[]).unwrap_err();
        assert!(err.to_string().contains("more rows for `d`.`t` after its data ended"), "{err}");
    }

    #[test]
    fn a_resumed_restore_skips_its_ddl_and_committed_chunks() {
        let mut checkpoints = Checkpoints::default();
        let create = "CREATE TABLE `t` (`a` int, KEY `k` (`a`))";
        let rows = ["INSERT INTO `t` VALUES (1)", "INSERT INTO `t` VALUES (2)"];
        let content = checkpoint::content_digest(rows.iter().map(|r| r.as_bytes()));
        checkpoints.set_for_tests(
            &[(step::TABLE, "d", "t", Some(checkpoint::content_digest([create.as_bytes()])))],
            &[("d", "t", 0, 2, Some(content))],
        );
        let resumed =
            Resumed::from([(("d".into(), "t".into()), crate::resume::ResumedTable { reload: false, emptied: false })]);
        let mut seq =
            Sequencer::new("dump.sql".into(), Selection::default(), rules(), Arc::new(checkpoints), resumed.clone());
        let mut actions = feed(&mut seq, &DUMP[..10], &["t"]).unwrap();
        actions.extend(finish(seq).0);
        assert!(!actions.iter().any(|a| a.starts_with("create") || a.contains("DROP")), "{actions:?}");
        assert!(actions.contains(&"exists #0".to_string()), "{actions:?}");
        assert!(actions.contains(&"resumed #0 2 rows".to_string()), "{actions:?}");

        // The same table from another dump: its rows differ from the recorded chunk's.
        let mut other = Checkpoints::default();
        other.set_for_tests(&[(step::TABLE, "d", "t", None)], &[("d", "t", 0, 2, Some("another".into()))]);
        let mut seq = Sequencer::new("dump.sql".into(), Selection::default(), rules(), Arc::new(other), resumed);
        feed(&mut seq, &DUMP[..10], &["t"]).unwrap();
        let err = seq.finish().expect_err("the chunk's content differs");
        assert!(err.to_string().contains("dump.sql at byte"), "{err}");
        assert!(err.to_string().contains("differ from those the interrupted restore loaded"), "{err}");
    }

    #[test]
    fn global_statements_run_once_and_never_as_session_context() {
        let mut seq = sequencer(rules());
        let dump = [
            "CHANGE MASTER TO MASTER_USE_GTID=slave_pos",
            DUMP[0],
            "USE `d`",
            "INSERT INTO `t` VALUES (1)",
            "SET GLOBAL gtid_slave_pos='0-1-3'",
        ];
        let actions = feed(&mut seq, &dump, &[]).unwrap();
        assert_eq!(
            actions,
            [
                "global CHANGE MASTER TO MASTER_USE_GTID=slave_pos",
                "run session header /*!40101 SET NAMES utf8mb4 */",
                "run session header USE `d`",
                "table d.t",
                "exists #0",
                // The position is set after the rows before it are in.
                "chunk #0.0 of 1 statements",
                "seal #0",
                "wait creates",
                "wait rows",
                "global SET GLOBAL gtid_slave_pos='0-1-3'",
            ]
        );
        let (_, post) = finish(seq);
        assert!(!post.iter().any(|p| p.contains("GLOBAL") || p.contains("CHANGE")), "{post:?}");
        // A resumed restore that ran them skips them.
        let mut checkpoints = Checkpoints::default();
        // `feed` puts each statement two bytes after the one before.
        let second = format!("byte {}", dump[..4].iter().map(|s| s.len() + 2).sum::<usize>());
        checkpoints.set_for_tests(&[(step::GLOBAL, "", "byte 0", None), (step::GLOBAL, "", &second, None)], &[]);
        let mut seq =
            Sequencer::new("dump.sql".into(), Selection::default(), rules(), Arc::new(checkpoints), Resumed::new());
        let actions = feed(&mut seq, &dump, &[]).unwrap();
        assert!(!actions.iter().any(|a| a.starts_with("global")), "{actions:?}");
    }

    #[test]
    fn a_selection_leaves_out_other_databases_and_excluded_tables() {
        let selection = Selection::new(None, vec![], vec!["d.t".into()]);
        let mut seq = Sequencer::new("dump.sql".into(), selection, rules(), Arc::default(), Resumed::new());
        let actions = feed(&mut seq, &DUMP, &[]).unwrap();
        assert!(!actions.iter().any(|a| a.contains("`t`") || a.starts_with("chunk")), "{actions:?}");
        let (_, post) = finish(seq);
        assert!(!post.iter().any(|p| p.contains("TRIGGER")), "a trigger on an excluded table is left out: {post:?}");
    }
}
