//! A chunk: one unit of data work, loaded in one transaction with its checkpoint row. Three
//! kinds of body, one per kind of source file:
//!
//! * [`Body::Rows`]: a native chunk, rows already in LOAD DATA form, hashed as they stream;
//! * [`Body::File`]: a mydumper chunk file, INSERTs (converted to LOAD DATA rows when the
//!   file is large enough) or LOAD DATA statements with their `.dat` payloads;
//! * [`Body::Dump`]: consecutive INSERTs cut from a mysqldump stream, converted to LOAD
//!   DATA rows ahead of the transaction;
//! * [`Body::Delimited`]: a MySQL Shell data file, rows in its own dialect, streamed to one
//!   LOAD DATA that decodes its encoded columns, checked against the size the dump recorded.
//!
//! Any error leaves the transaction uncommitted: the worker drops or rolls back the
//! connection, so no row of a failed chunk stays.

use std::sync::{Arc, Mutex};

use floodgate_format::ident::{qualified, quote};
use floodgate_format::mysqldump::DumpSource;
use floodgate_format::split::{Statement, Terminator};
use floodgate_format::{Chunk, Delimited, RowsCheck, SqlFile};
use floodgate_pipeline::PipelineError;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::checkpoint;
use crate::convert::{self, Outcome, Piece, TableSpec};
use crate::session::Session;
use crate::sql::{self, StatementKind};
use crate::tables::TableId;
use crate::{LoadError, Result};

/// INSERT files at least this large have their INSERTs converted to LOAD DATA rows, as the
/// mysqldump stream's are (`convert`): the server parses the rows for less. Converting needs
/// the table's columns (two information_schema lookups per table), which on a table of a few
/// rows costs more than it saves.
pub const CONVERT_MIN_BYTES: u64 = 1 << 20;

/// A chunk on its way to a loader.
pub(crate) struct Job {
    /// Its number within its table: the checkpoint's key, the same on every run.
    pub number: u64,
    /// Bytes of the backup counted done when it commits.
    pub progress_bytes: u64,
    pub body: Body,
}

/// What a chunk holds.
pub(crate) enum Body {
    /// A native rows file: must hash and count to `check`.
    Rows { file: SqlFile, check: RowsCheck, columns: Vec<String> },
    /// A mydumper chunk file.
    File { chunk: Chunk, terminator: Terminator, convert: bool },
    /// Consecutive INSERTs of a dump stream; `content` is the digest of their text, recorded
    /// with the chunk and compared on every later read; `names` the dump's character set.
    Dump { text: DumpText, content: String, names: String },
    /// A data file of delimited rows.
    Delimited { file: SqlFile, delimited: Delimited },
}

/// Where a dump chunk's statements are.
pub(crate) enum DumpText {
    /// In memory: read from a compressed stream or standard input, which cannot be read again.
    Held(Vec<Statement>),
    /// Bytes `offset..offset + len` of the plain dump file, read again when the chunk loads.
    InFile { source: Arc<DumpSource>, offset: u64, len: u64 },
}

impl DumpText {
    /// The chunk's statements. Bytes read again must give the statements the first read
    /// gave (`content`, their digest): anything else means the file changed under the restore.
    pub fn statements(self, content: &str) -> Result<Vec<Statement>> {
        let (source, offset, len) = match self {
            DumpText::Held(statements) => return Ok(statements),
            DumpText::InFile { source, offset, len } => (source, offset, len),
        };
        let statements = source.read_range(offset, len)?;
        if checkpoint::content_digest(statements.iter().map(|s| &s.text[..])) != content {
            return Err(LoadError::Integrity {
                context: format!("{} bytes {offset}..{}", source.name(), offset + len),
                reason: "these bytes hold other statements than when the file was first read: it changed during \
                         the restore"
                    .into(),
            });
        }
        Ok(statements)
    }
}

/// A chunk ready to load: a dump chunk's INSERTs are converted before its transaction opens,
/// so a retry does not convert them again.
pub(crate) enum Ready {
    Rows { file: SqlFile, check: RowsCheck, columns: Vec<String> },
    File { chunk: Chunk, terminator: Terminator, convert: bool },
    Pieces { spec: Arc<TableSpec>, pieces: Vec<Piece>, content: String },
    Delimited { file: SqlFile, delimited: Delimited },
}

impl Body {
    /// Gets the chunk ready on `conn` (which a dump chunk needs to read its table's columns).
    pub async fn ready(self, session: &Session, table: TableId, conn: &mut Conn) -> Result<Ready> {
        Ok(match self {
            Body::Rows { file, check, columns } => Ready::Rows { file, check, columns },
            Body::File { chunk, terminator, convert } => Ready::File { chunk, terminator, convert },
            Body::Delimited { file, delimited } => Ready::Delimited { file, delimited },
            Body::Dump { text, content, names } => {
                let spec = session.tables.spec(table, &names, conn).await?;
                let (encoder, digest) = (spec.clone(), content.clone());
                let as_inserts = session.options.no_local_infile;
                let pieces = session
                    .pipeline
                    .run(move || {
                        let statements = text.statements(&digest)?;
                        Ok::<_, LoadError>(match as_inserts {
                            // No LOAD DATA LOCAL on this target: the INSERTs run as written.
                            true => statements.into_iter().map(convert::Piece::Insert).collect(),
                            false => convert::encode_chunk(&encoder, statements),
                        })
                    })
                    .await
                    .ok_or_else(|| LoadError::Internal("the encoder stopped".into()))??;
                Ready::Pieces { spec, pieces, content }
            }
        })
    }
}

impl Ready {
    /// Loads the chunk in one transaction and commits it with its checkpoint row.
    pub async fn load(&self, session: &Session, (table, number): (TableId, u64), conn: &mut Conn) -> Result<Outcome> {
        let (db, name) = session.tables.name(table)?;
        let (outcome, content) = match self {
            Ready::Rows { file, check, columns } if session.options.no_local_infile => {
                (insert_rows(session, conn, (&db, &name), file, check, columns).await?, None)
            }
            Ready::Rows { file, check, columns } => {
                (load_rows(session, conn, (&db, &name), file, check, columns).await?, None)
            }
            Ready::File { chunk, terminator, convert } => {
                let mut run = FileRun {
                    session,
                    table,
                    file: chunk.file.path.display().to_string(),
                    names: "utf8mb4".into(),
                    convert: *convert,
                    pending: Vec::new(),
                    outcome: Outcome::default(),
                };
                run.load(conn, chunk, *terminator, (&db, &name)).await?;
                (run.outcome, None)
            }
            Ready::Pieces { spec, pieces, content } => {
                // Fallback INSERTs name their table without its database, as the dump does.
                conn.query_drop(format!("USE {}; START TRANSACTION", quote(&db)))
                    .await
                    .map_err(LoadError::sql(format!("{}: starting a transaction", qualified(&db, &name))))?;
                let mut outcome = Outcome::default();
                convert::run_pieces(conn, spec, pieces.clone(), (&session.source, session.max_packet), &mut outcome)
                    .await?;
                (outcome, Some(content.as_str()))
            }
            Ready::Delimited { file, delimited } => {
                (load_delimited(session, conn, (&db, &name), file, delimited).await?, None)
            }
        };
        crate::failpoint::hit("data.load").await;
        checkpoint::commit_chunk(conn, session.ledger(), (&db, &name, number), outcome.rows, content).await?;
        Ok(outcome)
    }
}

/// A native rows file: one LOAD DATA of the table's columns, as binary. The file is hashed
/// while it streams; a mismatch ends the stream with an error, and the transaction is never
/// committed.
async fn load_rows(
    session: &Session,
    conn: &mut Conn,
    (db, table): (&str, &str),
    file: &SqlFile,
    check: &RowsCheck,
    columns: &[String],
) -> Result<Outcome> {
    let name = qualified(db, table);
    let at = format!("{name}: {}", file.path.display());
    conn.query_drop("START TRANSACTION").await.map_err(LoadError::sql(format!("{at}: starting a transaction")))?;
    let list = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let statement = format!(
        "LOAD DATA LOCAL INFILE 'floodgate-chunk' INTO TABLE {name} CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({list})"
    );
    let stream = session.pipeline.bytes_verified(file, check);
    let rows = stream_into_load(conn, stream, statement.as_bytes(), &at, &file.name(), true).await?;
    if rows != check.rows {
        return Err(LoadError::Integrity {
            context: at,
            reason: format!("{rows} rows loaded, the manifest says {}", check.rows),
        });
    }
    Ok(Outcome { rows, inserts: 0, loads: 1 })
}

/// A native rows file through INSERT statements, for a target without LOAD DATA LOCAL
/// ([`crate::inserts`]): the same transaction, hashing and row checks as [`load_rows`].
async fn insert_rows(
    session: &Session,
    conn: &mut Conn,
    (db, table): (&str, &str),
    file: &SqlFile,
    check: &RowsCheck,
    columns: &[String],
) -> Result<Outcome> {
    let name = qualified(db, table);
    let at = format!("{name}: {}", file.path.display());
    let integrity = |reason: String| LoadError::Integrity { context: at.clone(), reason };
    // The literals are the fields' bytes (as LOAD DATA's CHARACTER SET binary takes them),
    // escaped with backslashes.
    for setting in
        ["SET NAMES binary", "SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')"]
    {
        conn.query_drop(setting).await.map_err(LoadError::sql(format!("{at}: {setting}")))?;
    }
    conn.query_drop("START TRANSACTION").await.map_err(LoadError::sql(format!("{at}: starting a transaction")))?;
    let quoted: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let limit = usize::try_from((session.max_packet / 2).min(8 << 20)).unwrap_or(8 << 20);
    let mut builder = crate::inserts::InsertBuilder::new(&name, &quoted, limit);
    let mut stream = session.pipeline.bytes_verified(file, check);
    let mut outcome = Outcome::default();
    while let Some(block) = stream.blocks.recv().await {
        let block = block.map_err(|source| LoadError::Chunk { table: at.clone(), source })?;
        for statement in builder.push(&block).map_err(integrity)? {
            convert::run_insert(conn, &statement, (&at, session.max_packet), &mut outcome).await?;
        }
    }
    let sent = builder.rows;
    if let Some(last) = builder.finish().map_err(integrity)? {
        convert::run_insert(conn, &last, (&at, session.max_packet), &mut outcome).await?;
    }
    if sent != check.rows || outcome.rows != sent {
        return Err(integrity(format!("{sent} rows read, {} stored, the manifest says {}", outcome.rows, check.rows)));
    }
    Ok(outcome)
}

/// A delimited data file: one LOAD DATA in the file's own dialect, its encoded columns
/// decoded as they load. The stream stops at the size the dump recorded and fails if the
/// file is shorter, so a damaged file never commits.
async fn load_delimited(
    session: &Session,
    conn: &mut Conn,
    (db, table): (&str, &str),
    file: &SqlFile,
    delimited: &Delimited,
) -> Result<Outcome> {
    let name = qualified(db, table);
    let at = format!("{name}: {}", file.path.display());
    conn.query_drop("START TRANSACTION").await.map_err(LoadError::sql(format!("{at}: starting a transaction")))?;
    let auto_increment = match delimited.dialect.decode.is_empty() {
        true => None,
        false => auto_increment_column(conn, db, table).await?,
    };
    let statement = sql::delimited_load(db, table, delimited, auto_increment.as_deref());
    let stream = session.pipeline.bytes_sized(file, delimited.bytes);
    // Rows are counted by unescaped line ends, which holds when a backslash escapes every
    // line end inside a value; without an escape character only the server's count is known.
    let counted =
        !delimited.dialect.fields_escaped_by.is_empty() && delimited.dialect.lines_terminated_by.ends_with('\n');
    let rows = stream_into_load(conn, stream, statement.as_bytes(), &at, &file.name(), counted).await?;
    Ok(Outcome { rows, inserts: 0, loads: 1 })
}

/// The table's AUTO_INCREMENT column, if it has one.
async fn auto_increment_column(conn: &mut Conn, db: &str, table: &str) -> Result<Option<String>> {
    conn.exec_first(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
         AND EXTRA LIKE '%auto_increment%'",
        (db, table),
    )
    .await
    .map_err(LoadError::sql(format!("reading the columns of {}", qualified(db, table))))
}

/// The statements of one mydumper chunk file on their way to the server: INSERTs converted
/// to LOAD DATA rows when `convert`, LOAD DATA statements fed their own `.dat` file.
struct FileRun<'a> {
    session: &'a Session,
    table: TableId,
    file: String,
    /// The character set of the file's text (its last `SET NAMES`).
    names: String,
    convert: bool,
    /// Consecutive INSERTs not yet sent.
    pending: Vec<Statement>,
    outcome: Outcome,
}

impl FileRun<'_> {
    async fn load(
        &mut self,
        conn: &mut Conn,
        chunk: &Chunk,
        terminator: Terminator,
        (db, table): (&str, &str),
    ) -> Result<()> {
        let name = qualified(db, table);
        conn.query_drop(format!("SET NAMES utf8mb4; USE {}; START TRANSACTION", quote(db)))
            .await
            .map_err(LoadError::sql(format!("{name}: starting a transaction for {}", self.file)))?;
        let mut statements = self.session.pipeline.statements(&chunk.file, terminator);
        while let Some(batch) = statements.recv().await {
            let batch = batch.map_err(|source| LoadError::Chunk { table: name.clone(), source })?;
            for s in batch {
                let file = &self.file;
                let at = format!("{name}: {file} at byte {}", s.offset);
                match sql::kind(&s.text) {
                    StatementKind::Insert if self.convert => self.pending.push(s),
                    StatementKind::Insert => {
                        convert::run_insert(conn, &s.text, (&at, self.session.max_packet), &mut self.outcome).await?
                    }
                    StatementKind::LoadData => {
                        self.flush(conn).await?;
                        self.outcome.rows += load_data(self.session, conn, chunk, &s.text, &at).await?;
                        self.outcome.loads += 1;
                    }
                    StatementKind::Other => {
                        self.flush(conn).await?;
                        if let Some(cs) = convert::set_names(&s.text) {
                            self.names = cs;
                        }
                        conn.query_drop(&s.text[..]).await.map_err(LoadError::sql(at))?;
                    }
                }
            }
            self.flush(conn).await?;
        }
        Ok(())
    }

    /// Converts and sends the pending INSERTs, in order, before anything else runs.
    async fn flush(&mut self, conn: &mut Conn) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let spec = self.session.tables.spec(self.table, &self.names, conn).await?;
        let statements = std::mem::take(&mut self.pending);
        let encoder = spec.clone();
        let pieces = self
            .session
            .pipeline
            .run(move || convert::encode_chunk(&encoder, statements))
            .await
            .ok_or_else(|| LoadError::Internal("the encoder stopped".into()))?;
        convert::run_pieces(conn, &spec, pieces, (&self.file, self.session.max_packet), &mut self.outcome).await
    }
}

/// Streams the chunk's data file into a LOAD DATA LOCAL statement and checks that every row
/// arrived: LOCAL turns duplicate keys and bad values into warnings, so they are errors here.
async fn load_data(session: &Session, conn: &mut Conn, chunk: &Chunk, text: &[u8], at: &str) -> Result<u64> {
    let integrity = |reason: String| LoadError::Integrity { context: at.to_string(), reason };
    let requested =
        sql::infile_name(text).ok_or_else(|| integrity("LOAD DATA statement without a file name".into()))?;
    let file = floodgate_format::mydumper::resolve_infile(chunk, &requested).ok_or_else(|| {
        integrity(format!("LOAD DATA names `{requested}`, which is not this chunk's data file; refusing to send it"))
    })?;
    let stream = session.pipeline.bytes(file);
    stream_into_load(conn, stream, &sql::with_binary_charset(text), at, &file.name(), true).await
}

/// Runs `statement` (a LOAD DATA LOCAL) with `stream` as its file, and checks every row sent
/// arrived: LOCAL turns duplicate keys and bad values into warnings, so they are errors here.
async fn stream_into_load(
    conn: &mut Conn,
    stream: floodgate_pipeline::ByteStream,
    statement: &[u8],
    at: &str,
    file_name: &str,
    counted: bool,
) -> Result<u64> {
    let integrity = |reason: String| LoadError::Integrity { context: at.to_string(), reason };
    let rows_sent = stream.rows.clone();
    let failure: Arc<Mutex<Option<PipelineError>>> = Arc::default();
    let slot = failure.clone();
    let blocks = stream.blocks;
    conn.set_infile_handler(async move {
        let data = futures::stream::unfold((blocks, slot), |(mut rx, slot)| async move {
            let item = match rx.recv().await? {
                Ok(b) => Ok(b),
                Err(e) => {
                    let msg = e.to_string();
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(e);
                    }
                    Err(std::io::Error::other(msg))
                }
            };
            Some((item, (rx, slot)))
        });
        Ok(data.boxed())
    });
    let result = conn.query_drop(statement).await;
    if let Some(e) = failure.lock().ok().and_then(|mut s| s.take()) {
        return Err(LoadError::Chunk { table: at.to_string(), source: e });
    }
    result.map_err(|e| sql::load_data_error(at, e))?;
    let affected = conn.affected_rows();
    let info = conn.info().into_owned();
    let warnings = sql::data_warnings(conn).await?;
    let expected = match counted {
        true => rows_sent.load(std::sync::atomic::Ordering::Relaxed),
        false => affected,
    };
    let skipped = info_number(&info, "Skipped:").unwrap_or(0);
    if affected != expected || skipped > 0 || !warnings.is_empty() {
        return Err(integrity(format!(
            "sent {expected} rows from {file_name}, the server stored {affected} ({info}){}",
            if warnings.is_empty() { String::new() } else { format!(": {}", sql::describe_warnings(&warnings)) }
        )));
    }
    Ok(affected)
}

fn info_number(info: &str, key: &str) -> Option<u64> {
    let at = info.find(key)? + key.len();
    info[at..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_format::Classify;

    #[test]
    fn parses_load_data_info() {
        let info = "Records: 10  Deleted: 0  Skipped: 2  Warnings: 2";
        assert_eq!(info_number(info, "Skipped:"), Some(2));
        assert_eq!(info_number(info, "Records:"), Some(10));
    }

    /// A chunk read again from the file must hold the statements the first read found:
    /// a file changed or cut in between is an integrity error naming the bytes.
    #[test]
    fn a_chunk_read_again_must_match_its_first_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.sql");
        let text =
            "SET NAMES utf8mb4;\nINSERT INTO t VALUES (1);\n-- note\nINSERT INTO t VALUES (2)  ;\nUNLOCK TABLES;\n";
        std::fs::write(&path, text).unwrap();
        let source = Arc::new(floodgate_format::mysqldump::detect(&path).unwrap());
        assert!(source.seekable());
        let all = floodgate_format::split::split_all(text.as_bytes(), Terminator::Delimiter).unwrap();
        let rows = &all[1..3];
        let content = checkpoint::content_digest(rows.iter().map(|s| &s.text[..]));
        let (offset, len) = (rows[0].offset, rows[1].offset + rows[1].text.len() as u64 - rows[0].offset);
        let range = || DumpText::InFile { source: source.clone(), offset, len };
        let again = range().statements(&content).unwrap();
        assert_eq!(
            again.iter().map(|s| (&s.text, s.offset)).collect::<Vec<_>>(),
            rows.iter().map(|s| (&s.text, s.offset)).collect::<Vec<_>>()
        );

        std::fs::write(&path, text.replace("(2)", "(3)")).unwrap();
        let err = range().statements(&content).unwrap_err();
        assert_eq!(err.exit_code(), 3, "{err}");
        assert!(err.to_string().contains(&format!("dump.sql bytes {offset}..{}", offset + len)), "{err}");

        std::fs::write(&path, &text[..offset as usize + 10]).unwrap();
        let err = range().statements(&content).unwrap_err();
        assert_eq!(err.exit_code(), 3, "{err}");
        assert!(err.to_string().contains("shorter than when it was first read"), "{err}");
    }
}
