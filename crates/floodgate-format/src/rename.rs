//! Restoring databases under other names (`--rename-db OLD:NEW`, and `--into NEW` for a
//! backup of one database): the SQL a backup runs names its databases in `CREATE DATABASE`,
//! `USE`, and qualified references (`` `shop`.`t` ``, which MySQL writes in every view body,
//! and routines and triggers may hold, also across databases). Those are rewritten; strings
//! and comments never are (a name in a string is data).
//!
//! A name is only rewritten where it can only be a database: before a `.` or after
//! `DATABASE`/`SCHEMA`/`USE`. A statement that also uses the name for something else (a
//! table or alias named like its database: `` `shop`.`id` `` may then be that table's column)
//! cannot be rewritten safely, and is refused rather than guessed at.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// Renames databases in SQL text: each name in the backup to its name on the target.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Rename {
    map: BTreeMap<String, String>,
}

impl Rename {
    /// One database, `from` in the backup, `to` on the target.
    pub fn one(from: &str, to: &str) -> Rename {
        Rename::new([(from.to_string(), to.to_string())])
    }

    /// Every `(from, to)` pair; a pair naming the same database twice is left out.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Rename {
        Rename { map: pairs.into_iter().filter(|(from, to)| from != to).collect() }
    }

    /// The target's name for the backup's database `db`, if it is renamed.
    pub fn get(&self, db: &str) -> Option<&str> {
        self.map.get(db).map(String::as_str)
    }

    /// True when no database is renamed.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// `OLD:NEW, ...`, for messages.
    pub fn describe(&self) -> String {
        self.map.iter().map(|(from, to)| format!("{from}:{to}")).collect::<Vec<_>>().join(", ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A bare word or a backquoted identifier.
    Word {
        quoted: bool,
    },
    Dot,
    /// Any other punctuation or operator.
    Other,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
    /// The identifier's name (a backquoted one unquoted).
    name: String,
}

impl Rename {
    /// `text` with the databases renamed, or why it cannot be done safely.
    pub fn rewrite<'a>(&self, text: &'a [u8]) -> Result<Cow<'a, [u8]>, String> {
        if self.map.is_empty() {
            return Ok(Cow::Borrowed(text));
        }
        let tokens = tokenize(text);
        let mut rewrite: Vec<(usize, &str)> = Vec::new();
        let mut other_uses: Vec<&str> = Vec::new();
        let trigger =
            tokens.iter().any(|t| t.kind == (Kind::Word { quoted: false }) && t.name.eq_ignore_ascii_case("TRIGGER"));
        for (i, t) in tokens.iter().enumerate() {
            if !matches!(t.kind, Kind::Word { .. }) {
                continue;
            }
            let Some((from, to)) = self.map.iter().find(|(from, _)| t.name.eq_ignore_ascii_case(from)) else {
                continue;
            };
            // In a trigger, a bare NEW.col or OLD.col is the row (in any case), not a database.
            let row_alias = trigger
                && t.kind == (Kind::Word { quoted: false })
                && (t.name.eq_ignore_ascii_case("NEW") || t.name.eq_ignore_ascii_case("OLD"));
            if row_alias {
                other_uses.push(from);
                continue;
            }
            if &t.name != from {
                continue;
            }
            let after_dot = i > 0 && tokens[i - 1].kind == Kind::Dot;
            let before_dot = tokens.get(i + 1).is_some_and(|n| n.kind == Kind::Dot);
            if (before_dot && !after_dot) || names_database(&tokens[..i]) {
                rewrite.push((i, to));
            } else {
                other_uses.push(from);
            }
        }
        if rewrite.is_empty() {
            return Ok(Cow::Borrowed(text));
        }
        if let Some(name) = other_uses.iter().find(|name| rewrite.iter().any(|&(i, _)| &tokens[i].name == *name)) {
            return Err(format!(
                "the name `{name}` is both a renamed database and another object in this statement, so which \
                 references to rename cannot be told; restore without renaming it and rename afterwards"
            ));
        }
        let mut out = Vec::with_capacity(text.len() + rewrite.iter().map(|(_, to)| to.len() + 2).sum::<usize>());
        let mut at = 0;
        for (i, to) in rewrite {
            let t = &tokens[i];
            out.extend_from_slice(&text[at..t.start]);
            out.extend_from_slice(crate::ident::quote(to).as_bytes());
            at = t.end;
        }
        out.extend_from_slice(&text[at..]);
        Ok(Cow::Owned(out))
    }
}

/// True when the tokens before a name end with `DATABASE`/`SCHEMA` (past an `IF [NOT]
/// EXISTS`) or `USE`: the name is a database's.
fn names_database(before: &[Token]) -> bool {
    let words: Vec<String> = before
        .iter()
        .rev()
        .take(4)
        .take_while(|t| t.kind == Kind::Word { quoted: false })
        .map(|t| t.name.to_ascii_uppercase())
        .collect();
    let skip = words.iter().take_while(|w| matches!(w.as_str(), "IF" | "NOT" | "EXISTS")).count();
    let lead = words.get(skip).map(String::as_str);
    match lead {
        Some("DATABASE" | "SCHEMA") => true,
        Some("USE") => skip == 0,
        _ => false,
    }
}

/// Splits SQL into identifiers, dots and other tokens, leaving out strings, comments and
/// whitespace. The body of a versioned comment (`/*!50001 ... */`) is SQL and is kept.
fn tokenize(text: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        let start = i;
        match b {
            b'\'' | b'"' => {
                i = skip_quoted(text, i, b);
                tokens.push(Token { kind: Kind::Other, start, end: i, name: String::new() });
            }
            b'`' => {
                let (end, name) = backquoted(text, i);
                i = end;
                tokens.push(Token { kind: Kind::Word { quoted: true }, start, end, name });
            }
            b'#' => i = line_end(text, i),
            b'-' if text.get(i + 1) == Some(&b'-') && text.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) => {
                i = line_end(text, i)
            }
            b'/' if text.get(i + 1) == Some(&b'*') => i = comment(text, i),
            b'*' if text.get(i + 1) == Some(&b'/') => i += 2,
            b'.' => {
                i += 1;
                tokens.push(Token { kind: Kind::Dot, start, end: i, name: String::new() });
            }
            _ if is_word_byte(b) => {
                while i < text.len() && is_word_byte(text[i]) {
                    i += 1;
                }
                let name = String::from_utf8_lossy(&text[start..i]).into_owned();
                tokens.push(Token { kind: Kind::Word { quoted: false }, start, end: i, name });
            }
            _ if b.is_ascii_whitespace() => i += 1,
            _ => {
                i += 1;
                tokens.push(Token { kind: Kind::Other, start, end: i, name: String::new() });
            }
        }
    }
    tokens
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The end of a string quoted by `q` (backslash escapes and doubled quotes inside).
fn skip_quoted(text: &[u8], mut i: usize, q: u8) -> usize {
    i += 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            c if c == q && text.get(i + 1) == Some(&q) => i += 2,
            c if c == q => return i + 1,
            _ => i += 1,
        }
    }
    text.len()
}

/// The end of a backquoted identifier and its name (doubled backquotes are one).
fn backquoted(text: &[u8], mut i: usize) -> (usize, String) {
    let mut name = Vec::new();
    i += 1;
    while i < text.len() {
        if text[i] == b'`' {
            if text.get(i + 1) == Some(&b'`') {
                name.push(b'`');
                i += 2;
                continue;
            }
            return (i + 1, String::from_utf8_lossy(&name).into_owned());
        }
        name.push(text[i]);
        i += 1;
    }
    (text.len(), String::from_utf8_lossy(&name).into_owned())
}

fn line_end(text: &[u8], i: usize) -> usize {
    text[i..].iter().position(|&b| b == b'\n').map_or(text.len(), |p| i + p + 1)
}

/// Past a comment; a versioned one (`/*!50001`, `/*M!100101`) only past its marker, since
/// what it holds runs.
fn comment(text: &[u8], i: usize) -> usize {
    let marker = match (text.get(i + 2), text.get(i + 3)) {
        (Some(b'!'), _) => Some(i + 3),
        (Some(b'M'), Some(b'!')) => Some(i + 4),
        _ => None,
    };
    if let Some(mut j) = marker {
        while j < text.len() && text[j].is_ascii_digit() {
            j += 1;
        }
        return j;
    }
    text[i + 2..].windows(2).position(|w| w == b"*/").map_or(text.len(), |p| i + 2 + p + 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shop() -> Rename {
        Rename::one("shop", "shop_copy")
    }

    fn renamed(sql: &str) -> String {
        String::from_utf8(shop().rewrite(sql.as_bytes()).unwrap().into_owned()).unwrap()
    }

    #[test]
    fn the_database_is_renamed_where_only_it_can_be_meant() {
        assert_eq!(
            renamed("CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop`"),
            "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop_copy`"
        );
        assert_eq!(renamed("USE `shop`"), "USE `shop_copy`");
        assert_eq!(
            renamed("ALTER DATABASE shop CHARACTER SET utf8mb4"),
            "ALTER DATABASE `shop_copy` CHARACTER SET utf8mb4"
        );
        assert_eq!(
            renamed("CREATE VIEW `v` AS select `shop`.`t`.`a` AS `a` from `shop`.`t` where `shop`.f(1) = 'shop.t'"),
            "CREATE VIEW `v` AS select `shop_copy`.`t`.`a` AS `a` from `shop_copy`.`t` where `shop_copy`.f(1) = 'shop.t'"
        );
        assert_eq!(
            renamed("/*!50001 CREATE VIEW v AS SELECT * FROM shop . t */"),
            "/*!50001 CREATE VIEW v AS SELECT * FROM `shop_copy` . t */"
        );
    }

    #[test]
    fn strings_comments_and_other_names_are_left_alone() {
        for sql in [
            "SELECT 'shop.t', \"shop\".x -- shop.t\n",
            "/* shop.t */ SELECT 1 # shop.t",
            "SELECT `shopx`.a FROM shopx",
            "CREATE TABLE `t` (`shop` int)",
            "SELECT t.shop FROM t",
        ] {
            assert_eq!(renamed(sql), sql);
        }
    }

    #[test]
    fn a_name_that_is_also_another_object_is_refused() {
        assert!(shop().rewrite(b"SELECT shop.id FROM shop.shop").is_err());
        assert!(shop().rewrite(b"SELECT s.id FROM `shop`.t AS shop").is_err());
    }

    #[test]
    fn a_triggers_new_and_old_rows_are_not_databases() {
        let new = Rename::one("new", "n2");
        let sql = b"CREATE TRIGGER tr BEFORE INSERT ON `new`.t FOR EACH ROW SET NEW.a = 1";
        assert!(new.rewrite(sql).is_err(), "`new`.t is the database, NEW.a the row: ambiguous, refused");
        let sql = b"CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = OLD.a";
        assert_eq!(new.rewrite(sql).unwrap().as_ref(), sql);
    }

    #[test]
    fn several_databases_are_renamed_in_one_statement() {
        let r = Rename::new([("shop".into(), "s2".into()), ("hr".into(), "h2".into()), ("same".into(), "same".into())]);
        let sql = b"CREATE VIEW v AS SELECT * FROM `shop`.t JOIN hr.people p ON p.id = t.id WHERE same.f() > 0";
        assert_eq!(
            String::from_utf8(r.rewrite(sql).unwrap().into_owned()).unwrap(),
            "CREATE VIEW v AS SELECT * FROM `s2`.t JOIN `h2`.people p ON p.id = t.id WHERE same.f() > 0"
        );
        assert_eq!(r.describe(), "hr:h2, shop:s2");
        let err = r.rewrite(b"SELECT hr.id FROM hr.hr").unwrap_err();
        assert!(err.contains("`hr`"), "{err}");
        // A column named like a renamed database elsewhere in the statement does not matter
        // when that database is not referenced.
        assert_eq!(r.rewrite(b"SELECT t.shop FROM t").unwrap().as_ref(), b"SELECT t.shop FROM t");
    }

    proptest! {
        #[test]
        fn rewriting_never_panics_and_keeps_text_without_the_name(text in proptest::collection::vec(any::<u8>(), 0..300)) {
            let r = Rename::one("\u{1}never", "x");
            let same = r.rewrite(&text).unwrap();
            prop_assert_eq!(same.as_ref(), &text[..]);
            let _ = shop().rewrite(&text);
        }
    }
}
