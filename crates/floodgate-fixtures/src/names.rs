//! File basenames as MySQL Shell builds them: every name is percent-encoded byte by byte and
//! then cut to 225 code points with a per-prefix ordinal, so that the longest data file name
//! (`<basename><ordinal>@@<chunk>.<ext>.dumping`) still fits in NAME_MAX.

use std::collections::HashMap;

/// Code points a basename may have before it is cut (Shell's `Basenames` limit).
pub const MAX_BASENAME_CODE_POINTS: usize = 225;

/// Shell's `encode_schema_basename` step: ASCII bytes outside `0-9A-Za-z-._~` become `%XX`
/// (uppercase hex); bytes of multibyte UTF-8 characters are kept, so names stay readable.
pub fn hexencode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if !c.is_ascii() || c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~') {
            out.push(c);
        } else {
            out.push_str(&format!("%{:02X}", c as u32));
        }
    }
    out
}

/// Hands out truncated basenames. The ordinal counter is per truncated prefix and shared by
/// the whole dump, as Shell's is: two long names with the same first 225 code points get
/// `prefix0` and `prefix1`.
#[derive(Debug, Default)]
pub struct Basenames {
    used: HashMap<String, usize>,
}

impl Basenames {
    /// The basename for an already encoded name.
    pub fn get(&mut self, encoded: &str) -> String {
        match encoded.char_indices().nth(MAX_BASENAME_CODE_POINTS) {
            None => encoded.to_string(),
            Some((cut, _)) => {
                let prefix = &encoded[..cut];
                let counter = self.used.entry(prefix.to_string()).or_insert(0);
                let name = format!("{prefix}{counter}");
                *counter += 1;
                name
            }
        }
    }

    /// `S`: the schema basename.
    pub fn schema(&mut self, schema: &str) -> String {
        self.get(&hexencode(schema))
    }

    /// `S@T`: the basename of a table or view.
    pub fn table(&mut self, schema: &str, table: &str) -> String {
        self.get(&format!("{}@{}", hexencode(schema), hexencode(table)))
    }

    /// `S@T@P`: the basename of one partition's data stream.
    pub fn partition(&mut self, schema: &str, table: &str, partition: &str) -> String {
        self.get(&format!("{}@{}@{}", hexencode(schema), hexencode(table), hexencode(partition)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn spec_examples() {
        let mut b = Basenames::default();
        assert_eq!(b.schema("sak ila"), "sak%20ila");
        assert_eq!(b.schema("sakila.table@real_table"), "sakila.table%40real_table");
        assert_eq!(b.table("sákila", "tablê@"), "sákila@tablê%40");
        assert_eq!(b.table("", ""), "@");
        assert_eq!(b.schema("'\""), "%27%22");
        assert_eq!(b.schema("`"), "%60");
        assert_eq!(b.schema("new\nline"), "new%0Aline");
        assert_eq!(b.schema("foo`bar("), "foo%60bar%28");
        assert_eq!(hexencode("a-b_c.d~e\u{7f}"), "a-b_c.d~e%7F");
    }

    #[test]
    fn truncation_counts_code_points_and_numbers_each_prefix() {
        let mut b = Basenames::default();
        let exact = "x".repeat(225);
        assert_eq!(b.get(&exact), exact);
        let long = "ä".repeat(300);
        let first = b.get(&long);
        assert_eq!(first.chars().count(), 226);
        assert!(first.ends_with('0'));
        assert_eq!(b.get(&format!("{}tail", "ä".repeat(230))), format!("{}1", "ä".repeat(225)));
        // another prefix starts its own counter
        assert_eq!(b.get(&"y".repeat(226)), format!("{}0", "y".repeat(225)));
    }

    #[test]
    fn cut_may_fall_inside_an_escape() {
        let mut b = Basenames::default();
        let name = format!("{}{}", "a".repeat(224), " b");
        let encoded = hexencode(&name);
        assert_eq!(b.get(&encoded), format!("{}%0", "a".repeat(224)));
    }
}
