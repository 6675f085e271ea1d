//! The INSERT path: a native rows file (LOAD DATA's default format: `\t` between fields, `\n`
//! after each row, `\` escapes, `\N` for NULL) turned into multi-row INSERT statements, for
//! a target that takes no LOAD DATA LOCAL (`local_infile` off and this account may not turn
//! it on). Every field becomes a quoted string of its exact bytes (the session is binary),
//! which the server assigns to its column as LOAD DATA assigns a field: a number parsed, a
//! BIT or BLOB given the bytes. Slower than LOAD DATA (the server parses every value), but
//! exact, and checked the same way (rows counted against the manifest, the file hashed).

/// Builds `INSERT INTO t (cols) VALUES (...),(...)` statements of at most about `limit`
/// bytes from rows fed in blocks cut anywhere.
pub(crate) struct InsertBuilder {
    head: Vec<u8>,
    columns: usize,
    limit: usize,
    statement: Vec<u8>,
    /// Rows in `statement`.
    pending: u64,
    /// The start of a row cut by the end of the last block.
    partial: Vec<u8>,
    /// The last block ended on an escape character: the next byte is escaped.
    escaped: bool,
    /// Rows made into statements so far.
    pub rows: u64,
}

impl InsertBuilder {
    /// `table` and `columns` already quoted.
    pub fn new(table: &str, columns: &[String], limit: usize) -> InsertBuilder {
        let head = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", ")).into_bytes();
        InsertBuilder {
            statement: head.clone(),
            head,
            columns: columns.len(),
            limit: limit.max(1024),
            pending: 0,
            partial: Vec::new(),
            escaped: false,
            rows: 0,
        }
    }

    /// Adds the rows of `block`; returns the statements that are full.
    pub fn push(&mut self, block: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut full = Vec::new();
        let mut start = 0;
        let mut escaped = self.escaped;
        for (i, &b) in block.iter().enumerate() {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'\n') => {
                    if self.partial.is_empty() {
                        self.add_row(&block[start..i])?;
                    } else {
                        let mut row = std::mem::take(&mut self.partial);
                        row.extend_from_slice(&block[start..i]);
                        self.add_row(&row)?;
                    }
                    start = i + 1;
                    if self.statement.len() >= self.limit {
                        full.push(self.take());
                    }
                }
                (false, _) => {}
            }
        }
        // The rest of the block begins the next row (re-scanned whole once it ends).
        self.partial.extend_from_slice(&block[start..]);
        self.escaped = escaped;
        Ok(full)
    }

    /// The last statement, once the input has ended; an unterminated last row is damage.
    pub fn finish(mut self) -> Result<Option<Vec<u8>>, String> {
        if !self.partial.is_empty() {
            return Err(format!("the last row ({} bytes) has no line end: the file is truncated", self.partial.len()));
        }
        Ok((self.pending > 0).then(|| self.take()))
    }

    fn take(&mut self) -> Vec<u8> {
        self.pending = 0;
        std::mem::replace(&mut self.statement, self.head.clone())
    }

    fn add_row(&mut self, row: &[u8]) -> Result<(), String> {
        if self.pending > 0 {
            self.statement.push(b',');
        }
        self.statement.push(b'(');
        let mut fields = 0;
        for field in split_fields(row) {
            if fields > 0 {
                self.statement.push(b',');
            }
            push_literal(field, &mut self.statement);
            fields += 1;
        }
        if fields != self.columns {
            return Err(format!("row {} has {fields} fields, the table {} columns", self.rows + 1, self.columns));
        }
        self.statement.push(b')');
        self.pending += 1;
        self.rows += 1;
        Ok(())
    }
}

/// The fields of one row: split at unescaped tabs.
fn split_fields(row: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut escaped = false;
    let mut cuts = Vec::new();
    for (i, &b) in row.iter().enumerate() {
        match (escaped, b) {
            (true, _) => escaped = false,
            (false, b'\\') => escaped = true,
            (false, b'\t') => {
                cuts.push((start, i));
                start = i + 1;
            }
            (false, _) => {}
        }
    }
    cuts.push((start, row.len()));
    cuts.into_iter().map(move |(a, b)| &row[a..b])
}

/// A field as an SQL literal: `NULL` for `\N`, else its bytes unescaped (LOAD DATA's rules)
/// and quoted for the server (`\`, `'` and NUL escaped; the session's sql_mode has no
/// NO_BACKSLASH_ESCAPES on this path).
fn push_literal(field: &[u8], out: &mut Vec<u8>) {
    if field == b"\\N" {
        out.extend_from_slice(b"NULL");
        return;
    }
    out.push(b'\'');
    let mut bytes = field.iter();
    while let Some(&b) = bytes.next() {
        let value = match b {
            b'\\' => match bytes.next() {
                Some(b'0') => 0,
                Some(b'b') => 8,
                Some(b'n') => b'\n',
                Some(b'r') => b'\r',
                Some(b't') => b'\t',
                Some(b'Z') => 0x1a,
                Some(&other) => other,
                None => b'\\',
            },
            other => other,
        };
        match value {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            0 => out.extend_from_slice(b"\\0"),
            v => out.push(v),
        }
    }
    out.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn columns(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("`c{i}`")).collect()
    }

    #[test]
    fn rows_become_quoted_literals() {
        let mut b = InsertBuilder::new("`d`.`t`", &columns(3), 1 << 20);
        assert!(b.push(b"1\ta\\tb\t\\N\n2\tit's \\\\ \\0\t\\\\N\n").unwrap().is_empty());
        let last = String::from_utf8(b.finish().unwrap().unwrap()).unwrap();
        assert_eq!(
            last,
            "INSERT INTO `d`.`t` (`c0`, `c1`, `c2`) VALUES ('1','a\tb',NULL),('2','it\\'s \\\\ \\0','\\\\N')"
        );
    }

    #[test]
    fn damage_is_refused() {
        let mut b = InsertBuilder::new("t", &columns(2), 1 << 20);
        assert!(b.push(b"1\n").is_err(), "a field short");
        let mut b = InsertBuilder::new("t", &columns(1), 1 << 20);
        b.push(b"1\n2").unwrap();
        assert!(b.finish().is_err(), "an unterminated row");
    }

    proptest! {
        /// Rows cut into blocks anywhere give the same statements as whole, and statements
        /// split at the limit hold every row once.
        #[test]
        fn blocks_cut_anywhere(
            rows in proptest::collection::vec(proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 2), 0..40),
            cuts in proptest::collection::vec(0usize..400, 0..6),
        ) {
            let mut text = Vec::new();
            for row in &rows {
                for (i, f) in row.iter().enumerate() {
                    if i > 0 { text.push(b'\t'); }
                    floodgate_pipeline::insert::escape_field(f, &mut text);
                }
                text.push(b'\n');
            }
            let whole = {
                let mut b = InsertBuilder::new("t", &columns(2), 200);
                let mut all = b.push(&text).unwrap();
                all.extend(b.finish().unwrap());
                all
            };
            let mut b = InsertBuilder::new("t", &columns(2), 200);
            let mut pieces = Vec::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            cuts.sort_unstable();
            let mut at = 0;
            for c in cuts.into_iter().chain(std::iter::once(text.len())) {
                pieces.extend(b.push(&text[at..c]).unwrap());
                at = c;
            }
            prop_assert_eq!(b.rows, rows.len() as u64);
            pieces.extend(b.finish().unwrap());
            prop_assert_eq!(pieces, whole);
        }
    }
}
