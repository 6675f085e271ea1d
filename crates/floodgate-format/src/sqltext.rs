//! Small lexical helpers over SQL text as bytes: words, identifiers, statement heads.

/// The parts of an INSERT statement that matter for conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertHead {
    /// `INSERT IGNORE`, `REPLACE`, or `INSERT ... ON DUPLICATE KEY`: not convertible as is.
    pub plain: bool,
    /// The table name as written (unquoted; the last part if qualified).
    pub table: String,
    /// Explicit column list, if any.
    pub columns: Option<Vec<String>>,
    /// Offset of the first byte after `VALUES`.
    pub values_at: usize,
}

/// The index of the first non-whitespace byte at or after `i`.
pub fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// If the case-insensitive `word` stands at `i` as a whole word, the index after it.
pub fn keyword(s: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    let end = i + word.len();
    let head = s.get(i..end)?;
    if !head.eq_ignore_ascii_case(word) {
        return None;
    }
    match s.get(end) {
        Some(c) if c.is_ascii_alphanumeric() || *c == b'_' => None,
        _ => Some(end),
    }
}

/// Reads a possibly backtick-quoted identifier at `i`; returns it and the index after it.
pub fn identifier(s: &[u8], i: usize) -> Option<(String, usize)> {
    if s.get(i) == Some(&b'`') {
        let mut name = Vec::new();
        let mut j = i + 1;
        while j < s.len() {
            if s[j] == b'`' {
                if s.get(j + 1) == Some(&b'`') {
                    name.push(b'`');
                    j += 2;
                    continue;
                }
                return Some((String::from_utf8(name).ok()?, j + 1));
            }
            name.push(s[j]);
            j += 1;
        }
        return None;
    }
    let len = s[i..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'$').count();
    if len == 0 {
        return None;
    }
    Some((String::from_utf8(s[i..i + len].to_vec()).ok()?, i + len))
}

/// Parses `INSERT [IGNORE] INTO [db.]t [(cols)] VALUES`; None if the statement is another form.
pub fn parse_insert_head(stmt: &[u8]) -> Option<InsertHead> {
    let mut i = skip_ws(stmt, 0);
    let mut plain = true;
    if let Some(e) = keyword(stmt, i, b"INSERT") {
        i = skip_ws(stmt, e);
    } else if let Some(e) = keyword(stmt, i, b"REPLACE") {
        plain = false;
        i = skip_ws(stmt, e);
    } else {
        return None;
    }
    for modifier in [&b"LOW_PRIORITY"[..], b"DELAYED", b"HIGH_PRIORITY", b"IGNORE"] {
        if let Some(e) = keyword(stmt, i, modifier) {
            plain &= modifier != b"IGNORE";
            i = skip_ws(stmt, e);
        }
    }
    if let Some(e) = keyword(stmt, i, b"INTO") {
        i = skip_ws(stmt, e);
    }
    let (mut table, mut e) = identifier(stmt, i)?;
    while stmt.get(e) == Some(&b'.') {
        let (t, e2) = identifier(stmt, e + 1)?;
        table = t;
        e = e2;
    }
    i = skip_ws(stmt, e);
    let mut columns = None;
    if stmt.get(i) == Some(&b'(') {
        let mut cols = Vec::new();
        i = skip_ws(stmt, i + 1);
        loop {
            let (c, e) = identifier(stmt, i)?;
            cols.push(c);
            i = skip_ws(stmt, e);
            match stmt.get(i) {
                Some(b',') => i = skip_ws(stmt, i + 1),
                Some(b')') => {
                    i = skip_ws(stmt, i + 1);
                    break;
                }
                _ => return None,
            }
        }
        columns = Some(cols);
    }
    let e = keyword(stmt, i, b"VALUES").or_else(|| keyword(stmt, i, b"VALUE"))?;
    Some(InsertHead { plain, table, columns, values_at: e })
}

/// Comment syntax at the start of `rest`: the bytes to skip for a comment (to the end of
/// `rest` if it is unterminated), or for the `/*!NNNNN` opener or `*/` closer of a
/// conditional comment, whose content is SQL. None if `rest` starts with no comment.
pub fn comment_len(rest: &[u8]) -> Option<usize> {
    if rest.starts_with(b"/*!") || rest.starts_with(b"/*M!") {
        let open = if rest[2] == b'!' { 3 } else { 4 };
        return Some(open + rest[open..].iter().take_while(|c| c.is_ascii_digit()).count());
    }
    if rest.starts_with(b"*/") {
        return Some(2);
    }
    if rest.starts_with(b"/*") {
        return Some(rest.windows(2).position(|w| w == b"*/").map_or(rest.len(), |end| end + 2));
    }
    if rest.starts_with(b"--") || rest.first() == Some(&b'#') {
        return Some(rest.iter().position(|&c| c == b'\n').map_or(rest.len(), |end| end + 1));
    }
    None
}

/// The first `n` words of a statement's head, upper-cased. Skips whitespace, comments, the
/// `/*!NNNNN` opener and `*/` closer of conditional comments, quoted names and strings, and
/// the `=`, `@`, `,` and `.` of clauses like `DEFINER=`user`@`host``; stops at anything else
/// (a parenthesis, an operator). Enough to tell what a statement does.
pub fn head_words(text: &[u8], n: usize) -> Vec<String> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < text.len() && words.len() < n {
        let rest = &text[i..];
        let c = rest[0];
        if c.is_ascii_whitespace() || matches!(c, b'=' | b'@' | b',' | b'.') {
            i += 1;
        } else if let Some(len) = comment_len(rest) {
            i += len;
        } else if matches!(c, b'`' | b'\'' | b'"') {
            match rest[1..].iter().position(|&d| d == c) {
                Some(end) => i += end + 2,
                None => break,
            }
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            let len = rest.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
            words.push(String::from_utf8_lossy(&rest[..len]).to_ascii_uppercase());
            i += len;
        } else {
            break;
        }
    }
    words
}
