//! Turns extended INSERT statements into LOAD DATA rows.
//!
//! `INSERT INTO t VALUES (..),(..)` as mysqldump writes it costs the server a SQL parse per
//! value; the same rows as LOAD DATA's default format (`\t` between fields, `\n` after each
//! row, `\` escapes, `\N` for NULL) load several times faster and over several connections.
//! [`encode_values`] converts the VALUES list exactly or says why it cannot, in which case the
//! caller runs the statement as the INSERT it was.
//!
//! Exactness rules: a quoted string becomes its bytes after SQL unescaping (the column's
//! conversion is done by the server, see the loader's column plan); numbers pass through as
//! written (the server parses them the same way from a string); NULL becomes `\N`. Hex and
//! bit literals and charset introducers other than `_binary` are only exact for binary
//! columns, so they are accepted there and refused elsewhere.

use floodgate_format::sqltext::{identifier, keyword, skip_ws};

/// How the loader will load a column, which decides which literals encode exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnClass {
    /// Stored as the literal's bytes: numbers, temporals, binary strings, and character
    /// columns in the dump's own character set.
    Raw,
    /// A character column converted from the dump's character set by `CONVERT(@v USING cs)`;
    /// only quoted strings, numbers and NULL are exact.
    Text,
    /// A BIT column of this many bytes: quoted strings hold its raw bytes, `b'..'` and
    /// integers its value.
    Bit(u8),
}

/// Why a VALUES list was not encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Valid SQL this encoder does not turn into LOAD DATA exactly; run the INSERT instead.
    #[error("not convertible to LOAD DATA: {0}")]
    Unsupported(&'static str),
    /// The text is not a VALUES list.
    #[error("malformed VALUES list at byte {at}: {what}")]
    Malformed {
        /// Offset in the VALUES text.
        at: usize,
        /// What was expected.
        what: &'static str,
    },
}

/// For each byte: the letter that follows the backslash when it must be escaped in LOAD
/// DATA's default format, or 0 when it goes through as is.
static ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'\\' as usize] = b'\\';
    t[b'\t' as usize] = b't';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[0] = b'0';
    t[0x1a] = b'Z';
    t
};

/// Appends `bytes` to `out` escaped for LOAD DATA's default format.
///
/// Most fields need no escape at all, so the scan looks at eight bytes at a time for a byte
/// that might (a control byte below 0x20, or a backslash) and copies clean runs whole: the
/// byte-at-a-time table lookup was a tenth of `floodgate dump`'s CPU.
pub fn escape_field(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len());
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            if !may_need_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let end = (i + 8).min(bytes.len());
        for (j, &b) in bytes.iter().enumerate().take(end).skip(i) {
            let esc = ESCAPES[usize::from(b)];
            if esc != 0 {
                out.extend_from_slice(&bytes[start..j]);
                out.push(b'\\');
                out.push(esc);
                start = j + 1;
            }
        }
        i = end;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// True if some byte of `word` is below 0x20 or is a backslash: every byte ESCAPES maps is
/// one of those (a true answer may be a false alarm; a false one never misses).
fn may_need_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below n (n <= 128) sets its high bit in (x - n) & !x (the classic "has less").
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    let x = word ^ (ONES * u64::from(b'\\'));
    let backslash = x.wrapping_sub(ONES) & !x & HIGH;
    below_space | backslash != 0
}

/// Encodes a VALUES list (the text after `VALUES`, up to the end of the statement) as LOAD
/// DATA rows appended to `out`, one class per column. Returns the number of rows.
/// On error `out` may hold a partial row; callers truncate it back.
pub fn encode_values(values: &[u8], columns: &[ColumnClass], out: &mut Vec<u8>) -> Result<u64, EncodeError> {
    let mut i = skip_ws(values, 0);
    let mut rows = 0;
    let mut scratch = Vec::new();
    loop {
        if values.get(i) != Some(&b'(') {
            return Err(EncodeError::Malformed { at: i, what: "`(` starting a row" });
        }
        i += 1;
        for (n, class) in columns.iter().enumerate() {
            i = skip_ws(values, i);
            if n > 0 {
                out.push(b'\t');
            }
            i = encode_value(values, i, *class, out, &mut scratch)?;
            i = skip_ws(values, i);
            let want = if n + 1 == columns.len() { b')' } else { b',' };
            if values.get(i) != Some(&want) {
                return Err(if values.get(i) == Some(&b',') || values.get(i) == Some(&b')') {
                    EncodeError::Malformed { at: i, what: "a row with as many values as columns" }
                } else {
                    EncodeError::Malformed { at: i, what: "`,` or `)` after a value" }
                });
            }
            i += 1;
        }
        out.push(b'\n');
        rows += 1;
        i = skip_ws(values, i);
        match values.get(i) {
            Some(b',') => i = skip_ws(values, i + 1),
            None => return Ok(rows),
            Some(b';') if skip_ws(values, i + 1) == values.len() => return Ok(rows),
            Some(_) => return Err(EncodeError::Unsupported("text after the VALUES list (ON DUPLICATE KEY?)")),
        }
    }
}

fn encode_value(
    s: &[u8],
    i: usize,
    class: ColumnClass,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let Some(&c) = s.get(i) else {
        return Err(EncodeError::Malformed { at: i, what: "a value" });
    };
    match c {
        b'\'' | b'"' => {
            scratch.clear();
            let end = unquote(s, i, scratch)?;
            escape_field(scratch, out);
            Ok(end)
        }
        b'N' | b'n' if keyword(s, i, b"NULL").is_some() => {
            out.extend_from_slice(b"\\N");
            Ok(i + 4)
        }
        b'0' if matches!(s.get(i + 1), Some(b'x') | Some(b'X')) => {
            if class == ColumnClass::Text {
                return Err(EncodeError::Unsupported("hex literal for a character column"));
            }
            let len = s[i + 2..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
            scratch.clear();
            decode_hex(&s[i + 2..i + 2 + len], scratch).ok_or(EncodeError::Malformed { at: i, what: "hex digits" })?;
            escape_field(scratch, out);
            Ok(i + 2 + len)
        }
        b'x' | b'X' if s.get(i + 1) == Some(&b'\'') => {
            if class == ColumnClass::Text {
                return Err(EncodeError::Unsupported("hex literal for a character column"));
            }
            let close = s[i + 2..]
                .iter()
                .position(|&c| c == b'\'')
                .ok_or(EncodeError::Malformed { at: i, what: "closing `'`" })?;
            scratch.clear();
            decode_hex(&s[i + 2..i + 2 + close], scratch)
                .ok_or(EncodeError::Malformed { at: i, what: "hex digits" })?;
            escape_field(scratch, out);
            Ok(i + 3 + close)
        }
        b'b' | b'B' if s.get(i + 1) == Some(&b'\'') => {
            let ColumnClass::Bit(width) = class else {
                return Err(EncodeError::Unsupported("bit literal for a non-BIT column"));
            };
            let close = s[i + 2..]
                .iter()
                .position(|&c| c == b'\'')
                .ok_or(EncodeError::Malformed { at: i, what: "closing `'`" })?;
            let digits = &s[i + 2..i + 2 + close];
            if digits.len() > 64 || !digits.iter().all(|c| *c == b'0' || *c == b'1') {
                return Err(EncodeError::Malformed { at: i, what: "binary digits" });
            }
            let value = digits.iter().fold(0u64, |v, d| (v << 1) | u64::from(d - b'0'));
            let bytes = value.to_be_bytes();
            escape_field(&bytes[8 - usize::from(width.clamp(1, 8))..], out);
            Ok(i + 3 + close)
        }
        b'_' => {
            let (intro, e) = identifier(s, i).ok_or(EncodeError::Malformed { at: i, what: "a charset introducer" })?;
            if !intro.eq_ignore_ascii_case("_binary") || class == ColumnClass::Text {
                return Err(EncodeError::Unsupported("charset introducer"));
            }
            let j = skip_ws(s, e);
            encode_value(s, j, ColumnClass::Raw, out, scratch)
        }
        b'-' | b'+' | b'.' | b'0'..=b'9' => {
            if let ColumnClass::Bit(_) = class {
                return Err(EncodeError::Unsupported("integer literal for a BIT column"));
            }
            let len = s[i..]
                .iter()
                .enumerate()
                .take_while(|(k, c)| {
                    c.is_ascii_digit()
                        || matches!(c, b'.' | b'e' | b'E')
                        || (matches!(c, b'-' | b'+') && (*k == 0 || matches!(s[i + k - 1], b'e' | b'E')))
                })
                .count();
            out.extend_from_slice(&s[i..i + len]);
            Ok(i + len)
        }
        _ => Err(EncodeError::Unsupported("an expression or keyword value")),
    }
}

fn decode_hex(digits: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    // An odd number of digits has an implied leading zero.
    let (first, rest) = if digits.len() % 2 == 1 { (Some(&digits[0]), &digits[1..]) } else { (None, digits) };
    if let Some(&d) = first {
        out.push(nibble(d)?);
    }
    for pair in rest.chunks_exact(2) {
        out.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    Some(())
}

/// Unescapes a quoted SQL string starting at `s[i]` (the quote) into `out`; returns the index
/// after the closing quote. MySQL's escapes: `\0 \b \n \r \t \Z \\ \' \"`, `\%` and `\_` keep
/// their backslash, any other `\x` is `x`, and a doubled quote is one quote.
fn unquote(s: &[u8], i: usize, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
    let q = s[i];
    let mut j = i + 1;
    loop {
        let rest = &s[j..];
        let Some(k) = rest.iter().position(|&c| c == q || c == b'\\') else {
            return Err(EncodeError::Malformed { at: i, what: "a closing quote" });
        };
        out.extend_from_slice(&rest[..k]);
        j += k;
        if s[j] == q {
            if s.get(j + 1) == Some(&q) {
                out.push(q);
                j += 2;
                continue;
            }
            return Ok(j + 1);
        }
        let Some(&e) = s.get(j + 1) else {
            return Err(EncodeError::Malformed { at: j, what: "an escaped character" });
        };
        match e {
            b'0' => out.push(0),
            b'b' => out.push(8),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'Z' => out.push(0x1a),
            b'%' | b'_' => out.extend_from_slice(&[b'\\', e]),
            other => out.push(other),
        }
        j += 2;
    }
}

/// Appends a row in LOAD DATA's default format, without its line end (values escaped,
/// `\N` for NULL, tabs between): the bytes the content digest is computed over, by
/// `floodgate dump` and on a restored target alike. Values must be read with `SET NAMES
/// binary`, so strings arrive as the column's bytes. `seen` gets each value with its
/// column index as it is encoded (the dump keeps its key column's).
pub fn encode_row<'v, E>(
    values: impl Iterator<Item = Result<Option<&'v [u8]>, E>>,
    out: &mut Vec<u8>,
    mut seen: impl FnMut(usize, Option<&'v [u8]>),
) -> Result<(), E> {
    for (i, value) in values.enumerate() {
        let value = value?;
        if i > 0 {
            out.push(b'\t');
        }
        match value {
            None => out.extend_from_slice(b"\\N"),
            Some(b) => escape_field(b, out),
        }
        seen(i, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(values: &str, cols: &[ColumnClass]) -> Result<String, EncodeError> {
        let mut out = Vec::new();
        encode_values(values.as_bytes(), cols, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    use floodgate_format::sqltext::parse_insert_head as parse_head;

    #[test]
    fn heads() {
        let h = parse_head(b"INSERT INTO `db`.`t``x` (`a`,b) VALUES (1,2)").unwrap();
        assert_eq!(h.table, "t`x");
        assert_eq!(h.columns, Some(vec!["a".into(), "b".into()]));
        assert!(h.plain);
        assert!(!parse_head(b"INSERT IGNORE INTO t VALUES (1)").unwrap().plain);
        assert!(!parse_head(b"REPLACE INTO t VALUES (1)").unwrap().plain);
        assert_eq!(parse_head(b"INSERT INTO t SELECT 1"), None);
    }

    #[test]
    fn values_become_rows() {
        use ColumnClass::*;
        assert_eq!(
            enc("(1,'a\\tb','it''s \\\\N',NULL,-1.5e-3),(2,'\\0\\Z\\n','',NULL,0)", &[Raw, Raw, Raw, Raw, Raw])
                .unwrap(),
            "1\ta\\tb\tit's \\\\N\t\\N\t-1.5e-3\n2\t\\0\\Z\\n\t\t\\N\t0\n"
        );
        assert_eq!(enc("(0x00FF,X'41',_binary 'z')", &[Raw, Raw, Raw]).unwrap(), "\\0\u{fffd}\tA\tz\n");
        assert_eq!(enc("(b'101',b'1')", &[Bit(2), Bit(1)]).unwrap(), "\\0\u{5}\t\u{1}\n");
        assert_eq!(enc("('\\%\\_')", &[Raw]).unwrap(), "\\\\%\\\\_\n");
    }

    #[test]
    fn refuses_what_is_not_exact() {
        use ColumnClass::*;
        assert!(matches!(enc("(0x41)", &[Text]), Err(EncodeError::Unsupported(_))));
        assert!(matches!(enc("(_utf8mb4 'x')", &[Raw]), Err(EncodeError::Unsupported(_))));
        assert!(matches!(enc("(NOW())", &[Raw]), Err(EncodeError::Unsupported(_))));
        assert!(matches!(enc("(1) ON DUPLICATE KEY UPDATE a=1", &[Raw]), Err(EncodeError::Unsupported(_))));
        assert!(matches!(enc("(5)", &[Bit(1)]), Err(EncodeError::Unsupported(_))));
        assert!(matches!(enc("(1,2)", &[Raw]), Err(EncodeError::Malformed { .. })));
        assert!(matches!(enc("(1", &[Raw]), Err(EncodeError::Malformed { .. })));
        assert!(matches!(enc("('abc", &[Raw]), Err(EncodeError::Malformed { .. })));
    }

    /// A decoder for LOAD DATA's default format, to check the encoder against.
    fn decode_rows(data: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = Vec::new();
        let mut i = 0;
        let mut is_null = false;
        while i < data.len() {
            match data[i] {
                b'\\' => {
                    let e = data[i + 1];
                    if e == b'N' {
                        is_null = true;
                    } else {
                        field.push(match e {
                            b'0' => 0,
                            b'b' => 8,
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'Z' => 0x1a,
                            o => o,
                        });
                    }
                    i += 2;
                    continue;
                }
                b'\t' | b'\n' => {
                    row.push(if is_null { None } else { Some(std::mem::take(&mut field)) });
                    is_null = false;
                    if data[i] == b'\n' {
                        rows.push(std::mem::take(&mut row));
                    }
                }
                c => field.push(c),
            }
            i += 1;
        }
        rows
    }

    fn sql_quote(bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![b'\''];
        for &b in bytes {
            match b {
                b'\'' => out.extend_from_slice(b"\\'"),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0 => out.extend_from_slice(b"\\0"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                0x1a => out.extend_from_slice(b"\\Z"),
                _ => out.push(b),
            }
        }
        out.push(b'\'');
        out
    }

    proptest! {
        /// The word-at-a-time scan escapes exactly what the byte table says, at any length
        /// and with special bytes anywhere (biased towards them to hit every word position).
        #[test]
        fn escaping_matches_the_byte_table(bytes in prop::collection::vec(prop_oneof![
            Just(0u8), Just(b'\t'), Just(b'\n'), Just(b'\r'), Just(b'\\'), Just(0x1a), Just(0x1f), Just(0x20), any::<u8>()
        ], 0..40)) {
            let mut expected = Vec::new();
            for &b in &bytes {
                match ESCAPES[usize::from(b)] {
                    0 => expected.push(b),
                    e => expected.extend_from_slice(&[b'\\', e]),
                }
            }
            let mut out = b"x".to_vec();
            escape_field(&bytes, &mut out);
            prop_assert_eq!(&out[1..], &expected[..]);
        }

        #[test]
        fn strings_round_trip(rows in prop::collection::vec(prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..20)), 3), 1..10)) {
            let mut sql = Vec::new();
            for (r, row) in rows.iter().enumerate() {
                sql.extend_from_slice(if r == 0 { b"(" } else { b",(" });
                for (c, v) in row.iter().enumerate() {
                    if c > 0 { sql.push(b','); }
                    match v { None => sql.extend_from_slice(b"NULL"), Some(b) => sql.extend(sql_quote(b)) }
                }
                sql.push(b')');
            }
            let mut out = Vec::new();
            let n = encode_values(&sql, &[ColumnClass::Raw; 3], &mut out).unwrap();
            prop_assert_eq!(n as usize, rows.len());
            prop_assert_eq!(decode_rows(&out), rows);
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_head(&bytes);
            let _ = encode_values(&bytes, &[ColumnClass::Raw, ColumnClass::Text, ColumnClass::Bit(2)], &mut Vec::new());
        }
    }
}
