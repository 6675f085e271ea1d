//! Running statements from a backup and holding the server to them.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use floodgate_format::sqltext::head_words;

use crate::{LoadError, Result};

/// A warning or error the server attached to the last statement.
#[derive(Debug, Clone)]
pub struct ServerWarning {
    pub level: String,
    pub code: u32,
    pub message: String,
}

/// Warnings that never mean lost data: 1906, a value given for a generated column was
/// ignored (mariadb-dump writes them; the server computes its own).
const BENIGN_WARNINGS: [u32; 1] = [1906];

/// The warnings of the last statement that can mean lost or altered data (`Note`s excluded).
/// Every warning is read (load sessions keep up to 65535 per statement, `max_error_count`):
/// a changed value must not hide behind benign warnings. If the server kept fewer than it
/// counted, the ones it dropped cannot be checked, and that is a warning of its own.
pub async fn data_warnings(conn: &mut Conn) -> Result<Vec<ServerWarning>> {
    let counted = conn.get_warnings();
    if counted == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, u32, String)> =
        conn.query("SHOW WARNINGS").await.map_err(LoadError::sql("SHOW WARNINGS"))?;
    let kept = rows.len();
    let mut warnings: Vec<ServerWarning> = rows
        .into_iter()
        .filter(|(level, code, _)| level != "Note" && !BENIGN_WARNINGS.contains(code))
        .map(|(level, code, message)| ServerWarning { level, code, message })
        .collect();
    if kept < usize::from(counted) {
        warnings.push(ServerWarning {
            level: "Warning".into(),
            code: 0,
            message: format!(
                "the statement drew {counted} warnings and the server kept {kept}: the rest cannot be checked"
            ),
        });
    }
    Ok(warnings)
}

/// Fails with an integrity error naming `at` if the last data statement drew warnings that
/// can mean lost or changed values.
pub async fn reject_data_warnings(conn: &mut Conn, at: &str) -> Result<()> {
    let warnings = data_warnings(conn).await?;
    if warnings.is_empty() {
        return Ok(());
    }
    Err(LoadError::Integrity {
        context: at.to_string(),
        reason: format!("the server changed or dropped values: {}", describe_warnings(&warnings)),
    })
}

/// Refuses a statement larger than the server accepts (`max_allowed_packet`; 0: unknown),
/// naming it and both sizes: sent, it would cost a dropped connection and eight retries.
pub fn fits_packet(text: &[u8], max_packet: u64, at: &str) -> Result<()> {
    let len = text.len() as u64;
    if max_packet == 0 || len < max_packet {
        return Ok(());
    }
    Err(LoadError::TooLarge(format!(
        "{at}: the statement is {len} bytes, larger than the target's max_allowed_packet ({max_packet}); \
         raise it on the target (SET GLOBAL max_allowed_packet = {}) and run again",
        len.next_power_of_two().max(1 << 20)
    )))
}

/// The error for a failed LOAD DATA LOCAL: a clear refusal when the server does not allow
/// LOCAL INFILE (MySQL 1148/3948, MariaDB 4166), else the server's error at `at`.
pub fn load_data_error(at: &str, e: mysql_async::Error) -> LoadError {
    match &e {
        mysql_async::Error::Server(se) if matches!(se.code, 1148 | 3948 | 4166) => LoadError::Refused(format!(
            "{at}: the target refuses LOAD DATA LOCAL INFILE ({}). Enable it with SET GLOBAL local_infile = 1.",
            se.message
        )),
        _ => LoadError::sql(at.to_string())(e),
    }
}

pub fn describe_warnings(w: &[ServerWarning]) -> String {
    w.iter().map(|w| format!("{} {}: {}", w.level, w.code, w.message)).collect::<Vec<_>>().join("; ")
}

/// What a statement from a backup does, by its leading keyword (conditional comments opened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    Insert,
    LoadData,
    Other,
}

pub fn kind(text: &[u8]) -> StatementKind {
    let head = head_words(text, 2);
    match head.first().map(String::as_str) {
        Some("INSERT") | Some("REPLACE") => StatementKind::Insert,
        Some("LOAD") if head.get(1).map(String::as_str) == Some("DATA") => StatementKind::LoadData,
        _ => StatementKind::Other,
    }
}

/// The file name in `LOAD DATA [LOW_PRIORITY|CONCURRENT] LOCAL INFILE 'name'`.
pub fn infile_name(text: &[u8]) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let at = upper.windows(6).position(|w| w == b"INFILE")? + 6;
    let rest = &text[at..];
    let start = rest.iter().position(|c| !c.is_ascii_whitespace())?;
    let quote = rest[start];
    if quote != b'\'' && quote != b'"' {
        return None;
    }
    let mut name = Vec::new();
    let mut i = start + 1;
    while i < rest.len() {
        match rest[i] {
            b'\\' if i + 1 < rest.len() => {
                name.push(rest[i + 1]);
                i += 2;
            }
            c if c == quote => return String::from_utf8(name).ok(),
            c => {
                name.push(c);
                i += 1;
            }
        }
    }
    None
}

/// Adds `CHARACTER SET binary` to a LOAD DATA statement that names no character set, so the
/// file's bytes are stored exactly as dumped (mydumper writes them under `SET NAMES binary`,
/// and without the clause the server would read them in the database's character set).
pub fn with_binary_charset(text: &[u8]) -> Vec<u8> {
    let upper = text.to_ascii_uppercase();
    if upper.windows(13).any(|w| w == b"CHARACTER SET") {
        return text.to_vec();
    }
    // Insert after `INTO TABLE <name>`: find the first FIELDS/COLUMNS/LINES/IGNORE/( or end.
    let Some(into) = upper.windows(10).position(|w| w == b"INTO TABLE") else {
        return text.to_vec();
    };
    let mut i = into + 10;
    while i < text.len() && text[i].is_ascii_whitespace() {
        i += 1;
    }
    // skip the (possibly qualified, possibly quoted) table name
    loop {
        if i < text.len() && text[i] == b'`' {
            i += 1;
            while i < text.len() {
                if text[i] == b'`' {
                    if text.get(i + 1) == Some(&b'`') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
        } else {
            while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == b'_' || text[i] == b'$') {
                i += 1;
            }
        }
        if text.get(i) == Some(&b'.') {
            i += 1;
            continue;
        }
        break;
    }
    let mut out = text[..i].to_vec();
    out.extend_from_slice(b" CHARACTER SET binary");
    out.extend_from_slice(&text[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statements() {
        assert_eq!(kind(b"INSERT INTO `t` VALUES (1)"), StatementKind::Insert);
        assert_eq!(kind(b"/*!40000 ALTER TABLE t DISABLE KEYS */"), StatementKind::Other);
        assert_eq!(kind(b"  load data local infile 'x' into table t"), StatementKind::LoadData);
        assert_eq!(kind(b"/*!40101 SET NAMES binary*/"), StatementKind::Other);
    }

    #[test]
    fn infile_names() {
        assert_eq!(
            infile_name(b"LOAD DATA LOCAL INFILE 'db.t.00001.dat' INTO TABLE `t`").as_deref(),
            Some("db.t.00001.dat")
        );
        assert_eq!(infile_name(b"LOAD DATA LOCAL INFILE 'a\\'b' INTO TABLE t").as_deref(), Some("a'b"));
        assert_eq!(infile_name(b"LOAD DATA LOCAL INFILE"), None);
    }

    #[test]
    fn adds_binary_charset() {
        let s = with_binary_charset(
            b"LOAD DATA LOCAL INFILE 'x.dat' INTO TABLE `we``ird` FIELDS TERMINATED BY '\\t' (`a`)",
        );
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "LOAD DATA LOCAL INFILE 'x.dat' INTO TABLE `we``ird` CHARACTER SET binary FIELDS TERMINATED BY '\\t' (`a`)"
        );
        let kept = b"LOAD DATA LOCAL INFILE 'x' INTO TABLE t CHARACTER SET utf8mb4";
        assert_eq!(with_binary_charset(kept), kept.to_vec());
    }
}

/// The LOAD DATA of a delimited data file, in its own dialect: every field into its column,
/// encoded ones through a user variable and their decoder (`FROM_BASE64(@c)`), the text read
/// in the file's character set (LOAD DATA ignores SET NAMES). Plain INTO: each chunk is its
/// own transaction, so a duplicate key is an error, never a silent overwrite.
///
/// `auto_increment`: the table's AUTO_INCREMENT column. With a SET clause, MariaDB 10.11's
/// LOAD DATA ignores NO_AUTO_VALUE_ON_ZERO for a column loaded directly (a 0 becomes the next
/// id); through a variable it is kept. So that column goes through one too.
pub fn delimited_load(db: &str, table: &str, d: &floodgate_format::Delimited, auto_increment: Option<&str>) -> String {
    use floodgate_format::ident::{qualified, quote};
    let dialect = &d.dialect;
    let decoded = |c: &str| dialect.decode.iter().find(|(col, _)| col == c).map(|(_, how)| how.as_str());
    let mut sets: Vec<String> =
        dialect.decode.iter().map(|(c, how)| format!("{} = {how}(@{})", quote(c), quote(c))).collect();
    let shielded =
        auto_increment.filter(|c| !sets.is_empty() && decoded(c).is_none() && dialect.columns.iter().any(|x| x == c));
    if let Some(c) = shielded {
        sets.push(format!("{} = @{}", quote(c), quote(c)));
    }
    let fields: Vec<String> = dialect
        .columns
        .iter()
        .map(|c| match decoded(c).is_some() || shielded == Some(c.as_str()) {
            true => format!("@{}", quote(c)),
            false => quote(c),
        })
        .collect();
    let partition = d.partition.as_ref().map(|p| format!(" PARTITION ({})", quote(p))).unwrap_or_default();
    let enclosed = match (dialect.fields_enclosed_by.is_empty(), dialect.fields_optionally_enclosed) {
        (true, _) => String::new(),
        (false, true) => format!(" OPTIONALLY ENCLOSED BY {}", literal(&dialect.fields_enclosed_by)),
        (false, false) => format!(" ENCLOSED BY {}", literal(&dialect.fields_enclosed_by)),
    };
    let mut statement = format!(
        "LOAD DATA LOCAL INFILE 'floodgate-chunk' INTO TABLE {}{partition} CHARACTER SET {} \
         FIELDS TERMINATED BY {}{enclosed} ESCAPED BY {} LINES STARTING BY '' TERMINATED BY {} ({})",
        qualified(db, table),
        literal(&dialect.charset),
        literal(&dialect.fields_terminated_by),
        literal(&dialect.fields_escaped_by),
        literal(&dialect.lines_terminated_by),
        fields.join(", "),
    );
    if !sets.is_empty() {
        statement.push_str(" SET ");
        statement.push_str(&sets.join(", "));
    }
    statement
}

/// A string literal for any text: quotes, backslashes and control bytes escaped.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod delimited_tests {
    use floodgate_format::{Delimited, Dialect};

    #[test]
    fn a_shell_data_file_loads_in_its_dialect_with_its_columns_decoded() {
        let dialect = Dialect {
            columns: vec!["id".into(), "img".into(), "it's".into()],
            decode: vec![("img".into(), "FROM_BASE64".into())],
            charset: "utf8mb4".into(),
            fields_terminated_by: ",".into(),
            fields_enclosed_by: "\"".into(),
            fields_optionally_enclosed: true,
            fields_escaped_by: "\\".into(),
            lines_terminated_by: "\r\n".into(),
        };
        let d = Delimited { bytes: 0, partition: Some("p0".into()), dialect };
        assert_eq!(
            super::delimited_load("s", "t", &d, None),
            "LOAD DATA LOCAL INFILE 'floodgate-chunk' INTO TABLE `s`.`t` PARTITION (`p0`) CHARACTER SET 'utf8mb4' \
             FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' LINES STARTING BY '' \
             TERMINATED BY '\\r\\n' (`id`, @`img`, `it's`) SET `img` = FROM_BASE64(@`img`)"
        );
        let shielded = super::delimited_load("s", "t", &d, Some("id"));
        assert!(
            shielded.ends_with("(@`id`, @`img`, `it's`) SET `img` = FROM_BASE64(@`img`), `id` = @`id`"),
            "{shielded}"
        );
    }
}
