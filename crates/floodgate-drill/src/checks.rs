//! Checks against the target: that it holds no user data before a drill, that every
//! post-data object of the backup exists after it, and the user's `--verify-query` SQL.

use std::path::Path;

use floodgate_conn::ConnError;
use floodgate_format::ident::qualified;
use floodgate_format::objects::ObjectKind;
use floodgate_format::split::{split_all, Statement, Terminator};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

use crate::report::Check;
use crate::{DrillError, Result};
use floodgate_format::objects::{ExpectedObject, ExpectedObjects};

/// Checks every expected object exists; returns the check, or an integrity error listing
/// the missing ones.
pub async fn objects_present(conn: &mut Conn, expected: &ExpectedObjects) -> Result<Check> {
    let mut missing = Vec::new();
    for o in expected.iter() {
        if !exists(conn, o).await? {
            missing.push(format!("{} {}", o.kind.name(), qualified(&o.database, &o.name)));
        }
    }
    if !missing.is_empty() {
        return Err(DrillError::Integrity {
            context: "post-data objects".into(),
            reason: format!("the backup defines, but the target lacks: {}", missing.join(", ")),
        });
    }
    let mut counts = std::collections::BTreeMap::new();
    for o in expected.iter() {
        *counts.entry(o.kind.name()).or_insert(0) += 1;
    }
    let detail = if counts.is_empty() {
        "the backup defines no views, routines, triggers or events".to_string()
    } else {
        let list: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}(s)")).collect();
        format!("all present: {}", list.join(", "))
    };
    Ok(Check::new("objects", true, detail))
}

async fn exists(conn: &mut Conn, o: &ExpectedObject) -> Result<bool> {
    let (sql, params): (&str, Vec<Value>) = match o.kind {
        ObjectKind::View => (
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE = 'VIEW'",
            vec![o.database.clone().into(), o.name.clone().into()],
        ),
        ObjectKind::Trigger => (
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME = ?",
            vec![o.database.clone().into(), o.name.clone().into()],
        ),
        ObjectKind::Procedure | ObjectKind::Function => (
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_NAME = ? AND ROUTINE_TYPE = ?",
            vec![o.database.clone().into(), o.name.clone().into(), o.kind.name().to_ascii_uppercase().into()],
        ),
        ObjectKind::Event => (
            "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND EVENT_NAME = ?",
            vec![o.database.clone().into(), o.name.clone().into()],
        ),
    };
    let n: Option<u64> = conn.exec_first(sql, params).await.map_err(ConnError::sql(format!(
        "looking for {} {}",
        o.kind.name(),
        qualified(&o.database, &o.name)
    )))?;
    Ok(n.unwrap_or(0) > 0)
}

/// The user's checks: SQL statements read from a file (`;` ends each; `DELIMITER` works as
/// in the `mysql` client).
#[derive(Debug, Clone)]
pub struct VerifyQueries {
    file: String,
    text: Vec<u8>,
    statements: Vec<Statement>,
}

impl VerifyQueries {
    /// Reads and splits `path` (before the restore, so a typo fails fast).
    pub fn read(path: &Path) -> Result<VerifyQueries> {
        let text = std::fs::read(path).map_err(DrillError::io(format!("reading --verify-query {}", path.display())))?;
        let statements = split_all(&text, Terminator::Delimiter)
            .map_err(|e| DrillError::Refused(format!("--verify-query {}: {e}", path.display())))?;
        if statements.is_empty() {
            return Err(DrillError::Refused(format!("--verify-query {}: no SQL statements in it", path.display())));
        }
        Ok(VerifyQueries { file: path.display().to_string(), text, statements })
    }

    /// Runs every statement. `SET` and `USE` set the session up; every other statement
    /// must return a row whose first column is true (not NULL, not 0, not empty). All run,
    /// then any false one fails the drill, naming its file, line and text. Each result is
    /// pushed to `checks`, the false ones too.
    pub async fn run(&self, conn: &mut Conn, checks: &mut Vec<Check>) -> Result<()> {
        let mut failed = Vec::new();
        for s in &self.statements {
            let sql = String::from_utf8_lossy(&s.text).trim().to_string();
            let at = format!("{} line {}", self.file, self.line(s.offset));
            let head = floodgate_format::sqltext::head_words(&s.text, 1);
            if matches!(head.first().map(String::as_str), Some("SET" | "USE")) {
                conn.query_drop(&sql).await.map_err(ConnError::sql(format!("--verify-query {at}")))?;
                continue;
            }
            let first: Option<mysql_async::Row> =
                conn.query_first(&sql).await.map_err(ConnError::sql(format!("--verify-query {at}")))?;
            let value = first.and_then(|r| r.as_ref(0).cloned()).unwrap_or(Value::NULL);
            let passed = truthy(&value);
            let detail = format!("{at}: `{}` returned {}", shorten(&sql), show(&value));
            if !passed {
                failed.push(detail.clone());
            }
            checks.push(Check::new("verify_query", passed, detail));
        }
        if !failed.is_empty() {
            return Err(DrillError::Integrity {
                context: "--verify-query".into(),
                reason: format!("{} check(s) false: {}", failed.len(), failed.join("; ")),
            });
        }
        Ok(())
    }

    fn line(&self, offset: u64) -> usize {
        let end = usize::try_from(offset).unwrap_or(usize::MAX).min(self.text.len());
        1 + self.text[..end].iter().filter(|&&b| b == b'\n').count()
    }
}

/// MySQL's truth: a number other than zero; a string that reads as such a number.
fn truthy(v: &Value) -> bool {
    match v {
        Value::NULL => false,
        Value::Int(i) => *i != 0,
        Value::UInt(u) => *u != 0,
        Value::Float(f) => *f != 0.0,
        Value::Double(d) => *d != 0.0,
        Value::Bytes(b) => String::from_utf8_lossy(b).trim().parse::<f64>().is_ok_and(|n| n != 0.0),
        Value::Date(..) | Value::Time(..) => true,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::NULL => "NULL (or no row)".into(),
        Value::Bytes(b) => {
            let text = String::from_utf8_lossy(b);
            // The text protocol sends numbers as strings: show them as numbers.
            if text.trim().parse::<f64>().is_ok() {
                text.into_owned()
            } else {
                format!("'{text}'")
            }
        }
        other => other.as_sql(false),
    }
}

fn shorten(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(120) {
        Some((i, _)) => format!("{}...", &one_line[..i]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_follows_mysql() {
        assert!(truthy(&Value::Int(1)));
        assert!(!truthy(&Value::Int(0)));
        assert!(!truthy(&Value::NULL));
        assert!(truthy(&Value::Bytes(b"1".to_vec())));
        assert!(truthy(&Value::Bytes(b"2.5".to_vec())));
        assert!(!truthy(&Value::Bytes(b"0".to_vec())));
        assert!(!truthy(&Value::Bytes(b"yes".to_vec())));
        assert!(!truthy(&Value::Bytes(Vec::new())));
    }

    #[test]
    fn queries_are_split_and_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checks.sql");
        std::fs::write(&path, "-- rows\nSELECT COUNT(*) > 0 FROM d.t;\n\nSELECT 1;\n").unwrap();
        let q = VerifyQueries::read(&path).unwrap();
        assert_eq!(q.statements.len(), 2);
        assert_eq!(q.line(q.statements[1].offset), 4);
        std::fs::write(&path, "-- nothing\n").unwrap();
        assert!(VerifyQueries::read(&path).is_err());
    }
}
