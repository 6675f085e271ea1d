//! INSERT statements turned into LOAD DATA rows: the server parses a row of LOAD DATA for
//! less than the same row as INSERT values, and the conversion runs on the client's pipeline
//! pool. Shared by the mysqldump stream and mydumper's INSERT files. A statement that does
//! not convert exactly (an expression, a column the target lacks, a value the encoder
//! refuses) runs as the INSERT it was, in its place.

use bytes::Bytes;
use floodgate_format::ident::{qualified, quote};
use floodgate_format::split::Statement;
use floodgate_format::sqltext;
use floodgate_pipeline::insert::{self, ColumnClass};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::{sql, LoadError, Result};

/// A column as the loader treats it.
#[derive(Debug, Clone)]
pub(crate) struct ColumnSpec {
    pub(crate) name: String,
    pub(crate) class: ColumnClass,
    pub(crate) generated: bool,
}

/// What the loader needs to know about a table to convert its INSERTs.
#[derive(Debug)]
pub(crate) struct TableSpec {
    pub(crate) db: String,
    pub(crate) name: String,
    pub(crate) columns: Vec<ColumnSpec>,
    /// The character set the dump's text is in (its `SET NAMES`).
    pub(crate) names: String,
    /// Its engine rolls back (InnoDB); a non-transactional table is recorded once complete.
    pub(crate) transactional: bool,
}

/// `SET NAMES cs` (possibly inside a conditional comment): the character set.
pub(crate) fn set_names(text: &[u8]) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let at = upper.windows(9).position(|w| w == b"SET NAMES")? + 9;
    let i = sqltext::skip_ws(text, at);
    let (cs, _) = sqltext::identifier(text, i).or_else(|| {
        text.get(i).filter(|c| **c == b'\'')?;
        let end = text[i + 1..].iter().position(|c| *c == b'\'')?;
        Some((String::from_utf8_lossy(&text[i + 1..i + 1 + end]).into_owned(), 0))
    })?;
    Some(cs.to_ascii_lowercase())
}

/// Reads the table's columns from the target and decides how each loads.
pub(crate) async fn table_spec(conn: &mut Conn, db: &str, table: &str, names: &str) -> Result<TableSpec> {
    let rows: Vec<(String, String, Option<String>, String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, COLUMN_TYPE, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .map_err(LoadError::sql(format!("reading the columns of {}", qualified(db, table))))?;
    let transactional: Option<String> = conn
        .exec_first(
            "SELECT e.TRANSACTIONS FROM information_schema.TABLES t JOIN information_schema.ENGINES e \
             ON e.ENGINE = t.ENGINE WHERE t.TABLE_SCHEMA = ? AND t.TABLE_NAME = ?",
            (db, table),
        )
        .await
        .map_err(LoadError::sql(format!("reading the engine of {}", qualified(db, table))))?;
    let transactional = transactional.is_none_or(|t| t.eq_ignore_ascii_case("YES"));
    let names_base = base_charset(names);
    let columns = rows
        .into_iter()
        // An INSERT without a column list never fills an invisible column (such as the
        // primary key --create-invisible-pks adds): it is not among the VALUES.
        .filter(|(_, _, _, _, extra)| !extra.to_ascii_uppercase().contains("INVISIBLE"))
        .map(|(name, data_type, charset, column_type, extra)| {
            let class = match (data_type.as_str(), charset) {
                ("bit", _) => ColumnClass::Bit(bit_bytes(&column_type)),
                // MySQL's JSON type refuses binary input: convert from the dump's text.
                ("json", _) => ColumnClass::Text,
                (_, Some(cs)) if names_base != "binary" && base_charset(&cs) != names_base => ColumnClass::Text,
                _ => ColumnClass::Raw,
            };
            let generated = extra.to_ascii_uppercase().contains("GENERATED");
            ColumnSpec { name, class, generated }
        })
        .collect();
    Ok(TableSpec { db: db.into(), name: table.into(), columns, names: names.into(), transactional })
}

/// utf8 and utf8mb3 are one character set; so are their spellings across versions.
fn base_charset(cs: &str) -> String {
    match cs.to_ascii_lowercase().as_str() {
        "utf8" | "utf8mb3" => "utf8mb3".into(),
        other => other.into(),
    }
}

fn bit_bytes(column_type: &str) -> u8 {
    let bits: u32 = column_type.trim_start_matches("bit(").trim_end_matches(')').parse().unwrap_or(1);
    u8::try_from(bits.div_ceil(8).clamp(1, 8)).unwrap_or(8)
}

/// One step of a chunk's transaction.
#[derive(Clone)]
pub(crate) enum Piece {
    /// Rows in LOAD DATA format for these columns (names; `@vN` for converted ones).
    Load { columns: Vec<usize>, data: Bytes, rows: u64, first_offset: u64 },
    /// A statement that runs as written.
    Insert(Statement),
}

/// A piece while it is being encoded (rows still growing).
enum Draft {
    Load { columns: Vec<usize>, data: Vec<u8>, rows: u64, first_offset: u64 },
    Insert(Statement),
}

/// Converts a chunk's statements; runs on the pipeline pool.
pub(crate) fn encode_chunk(spec: &TableSpec, statements: Vec<Statement>) -> Vec<Piece> {
    let mut drafts: Vec<Draft> = Vec::new();
    for s in statements {
        match encode_statement(spec, &s, drafts.last_mut()) {
            Encoded::Appended => {}
            Encoded::New(draft) => drafts.push(draft),
            Encoded::AsInsert => drafts.push(Draft::Insert(s)),
        }
    }
    drafts
        .into_iter()
        .map(|d| match d {
            Draft::Load { columns, data, rows, first_offset } => {
                Piece::Load { columns, data: Bytes::from(data), rows, first_offset }
            }
            Draft::Insert(s) => Piece::Insert(s),
        })
        .collect()
}

enum Encoded {
    Appended,
    New(Draft),
    AsInsert,
}

fn encode_statement(spec: &TableSpec, s: &Statement, last: Option<&mut Draft>) -> Encoded {
    let Some(head) = sqltext::parse_insert_head(&s.text) else { return Encoded::AsInsert };
    if !head.plain || head.table != spec.name {
        return Encoded::AsInsert;
    }
    // Without a column list the values cover every column, generated ones too (mariadb-dump
    // writes their values; the server ignores them): those go to a throwaway variable.
    let columns: Option<Vec<usize>> = match &head.columns {
        Some(names) => names.iter().map(|n| spec.columns.iter().position(|c| &c.name == n)).collect(),
        None => Some((0..spec.columns.len()).collect()),
    };
    let Some(columns) = columns else { return Encoded::AsInsert };
    let classes: Vec<ColumnClass> = columns.iter().map(|&c| spec.columns[c].class).collect();
    let values = &s.text[head.values_at..];
    if let Some(Draft::Load { columns: cols, data, rows, .. }) = last {
        if *cols == columns {
            let mark = data.len();
            return match insert::encode_values(values, &classes, data) {
                Ok(n) => {
                    *rows += n;
                    Encoded::Appended
                }
                Err(_) => {
                    data.truncate(mark);
                    Encoded::AsInsert
                }
            };
        }
    }
    let mut data = Vec::with_capacity(s.text.len());
    match insert::encode_values(values, &classes, &mut data) {
        Ok(rows) => Encoded::New(Draft::Load { columns, data, rows, first_offset: s.offset }),
        Err(_) => Encoded::AsInsert,
    }
}

/// The LOAD DATA statement for a piece: binary input, converted where the column needs it.
fn load_statement(spec: &TableSpec, columns: &[usize]) -> String {
    let mut list = Vec::new();
    let mut sets = Vec::new();
    for (n, &c) in columns.iter().enumerate() {
        let col = &spec.columns[c];
        if col.generated {
            list.push(format!("@generated{n}"));
        } else if col.class == ColumnClass::Text {
            list.push(format!("@v{n}"));
            sets.push(format!("{} = CONVERT(@v{n} USING {})", quote(&col.name), spec.names));
        } else {
            list.push(quote(&col.name));
        }
    }
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE 'floodgate-chunk' INTO TABLE {} CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        qualified(&spec.db, &spec.name),
        list.join(", ")
    );
    if !sets.is_empty() {
        sql.push_str(" SET ");
        sql.push_str(&sets.join(", "));
    }
    sql
}

/// Runs a chunk's pieces in the caller's open transaction, adding what they loaded to
/// `outcome`. `source` names the file in errors. LOCAL turns duplicate keys and bad values
/// into warnings, so those are errors here, and every row sent must be stored.
pub(crate) async fn run_pieces(
    conn: &mut Conn,
    spec: &TableSpec,
    pieces: Vec<Piece>,
    (source, max_packet): (&str, u64),
    outcome: &mut Outcome,
) -> Result<()> {
    let name = qualified(&spec.db, &spec.name);
    for piece in pieces {
        match piece {
            Piece::Insert(s) => {
                let at = format!("{source} at byte {} ({name})", s.offset);
                run_insert(conn, &s.text, (&at, max_packet), outcome).await?;
            }
            Piece::Load { columns, data, rows, first_offset } => {
                let at = format!("{source} at byte {first_offset} ({name})");
                let blocks: Vec<Bytes> = data.chunks_exact_or_rest(1 << 20);
                conn.set_infile_handler(async move { Ok(futures::stream::iter(blocks.into_iter().map(Ok)).boxed()) });
                conn.query_drop(load_statement(spec, &columns)).await.map_err(|e| sql::load_data_error(&at, e))?;
                let affected = conn.affected_rows();
                sql::reject_data_warnings(conn, &at).await?;
                if affected != rows {
                    return Err(LoadError::Integrity {
                        context: at,
                        reason: format!("sent {rows} rows, the server stored {affected}"),
                    });
                }
                outcome.rows += affected;
                outcome.loads += 1;
            }
        }
    }
    Ok(())
}

/// Runs one INSERT as written, adding the rows it stored to `outcome`; a warning (a value the
/// server changed) is an error naming `at`, and so is a statement larger than the server's
/// `max_allowed_packet`, found before it is sent (the server would drop the connection, which
/// looks like a transient failure).
pub(crate) async fn run_insert(
    conn: &mut Conn,
    text: &[u8],
    (at, max_packet): (&str, u64),
    outcome: &mut Outcome,
) -> Result<()> {
    sql::fits_packet(text, max_packet, at)?;
    conn.query_drop(text).await.map_err(LoadError::sql(at))?;
    outcome.rows += conn.affected_rows();
    outcome.inserts += 1;
    sql::reject_data_warnings(conn, at).await
}

/// What loading a chunk did: rows stored, statements run each way.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) rows: u64,
    pub(crate) inserts: u64,
    pub(crate) loads: u64,
}

/// Splits a buffer into blocks without copying.
trait Blocks {
    fn chunks_exact_or_rest(self, size: usize) -> Vec<Bytes>;
}

impl Blocks for Bytes {
    fn chunks_exact_or_rest(mut self, size: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        while self.len() > size {
            out.push(self.split_to(size));
        }
        if !self.is_empty() {
            out.push(self);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_names_is_found() {
        assert_eq!(set_names(b"/*!40101 SET NAMES utf8mb4 */").as_deref(), Some("utf8mb4"));
        assert_eq!(set_names(b"SET NAMES 'latin1'").as_deref(), Some("latin1"));
        assert_eq!(set_names(b"SET sql_mode=''"), None);
    }

    #[test]
    fn bit_widths() {
        assert_eq!(bit_bytes("bit(1)"), 1);
        assert_eq!(bit_bytes("bit(9)"), 2);
        assert_eq!(bit_bytes("bit(64)"), 8);
    }

    #[test]
    fn load_statement_converts_foreign_charsets() {
        let spec = TableSpec {
            db: "d".into(),
            name: "t".into(),
            names: "utf8mb4".into(),
            transactional: true,
            columns: vec![
                ColumnSpec { name: "a".into(), class: ColumnClass::Raw, generated: false },
                ColumnSpec { name: "l".into(), class: ColumnClass::Text, generated: false },
            ],
        };
        assert_eq!(
            load_statement(&spec, &[0, 1]),
            "LOAD DATA LOCAL INFILE 'floodgate-chunk' INTO TABLE `d`.`t` CHARACTER SET binary FIELDS TERMINATED BY '\\t' \
             ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (`a`, @v1) SET `l` = CONVERT(@v1 USING utf8mb4)"
        );
    }
}
