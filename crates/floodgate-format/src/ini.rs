//! A tolerant reader for mydumper's INI-like `metadata` file.
//!
//! It is not quite INI: sections repeat (`[config]` at the start and the end), section names
//! are quoted identifiers (`` [`db`.`t`] ``), and some values are informational comments
//! (`# SOURCE_LOG_POS = 1234`). Comment lines that look like `key = value` are kept and
//! marked, everything else that does not parse is ignored.

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// The line was commented out with `#`.
    pub commented: bool,
}

/// A `[section]` and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub entries: Vec<Entry>,
}

impl Section {
    /// The first uncommented value for `key` (case-insensitive), else a commented one.
    pub fn get(&self, key: &str) -> Option<&str> {
        let matching = |c: bool| self.entries.iter().find(|e| e.commented == c && e.key.eq_ignore_ascii_case(key));
        matching(false).or_else(|| matching(true)).map(|e| e.value.as_str())
    }
}

pub fn parse(text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('[') && line.ends_with(']') && line.len() >= 2 {
            sections.push(Section { name: line[1..line.len() - 1].to_string(), entries: Vec::new() });
            continue;
        }
        let (commented, body) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let Some((key, value)) = body.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            continue;
        }
        if let Some(section) = sections.last_mut() {
            section.entries.push(Entry { key: key.to_string(), value: value.trim().to_string(), commented });
        }
    }
    sections
}

/// Strips one level of matching quotes.
pub fn unquote(value: &str) -> &str {
    let v = value.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mydumper_metadata() {
        let text = "# Started dump at: 2025-01-01 10:00:00\n[config]\nquote-character = BACKTICK\n\n[myloader_session_variables]\nSQL_MODE='NO_AUTO_VALUE_ON_ZERO,STRICT' /*!40101\n\n[source]\n# SOURCE_LOG_FILE = \"binlog.000017\"\n# SOURCE_LOG_POS = 241149225\n\n[`db`.`t`]\nreal_table_name=t\nrows = 1234\n[config]\nnum-sequences = 0\n# Finished dump at: x\n";
        let s = parse(text);
        assert_eq!(s.len(), 5);
        assert_eq!(s[2].get("SOURCE_LOG_POS"), Some("241149225"));
        assert_eq!(unquote(s[2].get("SOURCE_LOG_FILE").unwrap()), "binlog.000017");
        assert_eq!(s[3].name, "`db`.`t`");
        assert_eq!(s[3].get("rows"), Some("1234"));
    }
}
