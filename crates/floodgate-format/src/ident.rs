//! Quoting of MySQL identifiers.

/// Quotes `name` with backticks, doubling any backtick inside, so any name is safe in SQL.
pub fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
    out
}

/// `db`.`table`, both quoted.
pub fn qualified(db: &str, table: &str) -> String {
    format!("{}.{}", quote(db), quote(table))
}

/// Reads one backtick-quoted identifier at the start of `s`; returns it unquoted and the rest.
pub fn unquote_prefix(s: &str) -> Option<(String, &str)> {
    let rest = s.strip_prefix('`')?;
    let mut name = String::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '`' {
            if let Some((_, '`')) = chars.peek() {
                chars.next();
                name.push('`');
                continue;
            }
            return Some((name, &rest[i + 1..]));
        }
        name.push(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips() {
        for name in ["plain", "with space", "odd ``tick`` ; 'q'", "`", ""] {
            let q = quote(name);
            let (back, rest) = unquote_prefix(&q).unwrap();
            assert_eq!(back, name);
            assert_eq!(rest, "");
        }
    }
}
