//! Names of the post-data objects (views, triggers, routines, events) a backup's statements
//! create or drop: the restore orders them by kind, and a drill checks that each one exists
//! after the restore ([`ExpectedObjects`]).

use std::collections::BTreeMap;

/// The kinds of post-data object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// `CREATE VIEW`.
    View,
    /// `CREATE TRIGGER`.
    Trigger,
    /// `CREATE PROCEDURE`.
    Procedure,
    /// `CREATE FUNCTION`.
    Function,
    /// `CREATE EVENT`.
    Event,
}

impl ObjectKind {
    /// Lower-case name for messages and reports.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::View => "view",
            ObjectKind::Trigger => "trigger",
            ObjectKind::Procedure => "procedure",
            ObjectKind::Function => "function",
            ObjectKind::Event => "event",
        }
    }

    fn from_word(word: &str) -> Option<ObjectKind> {
        Some(match word {
            "VIEW" => ObjectKind::View,
            "TRIGGER" => ObjectKind::Trigger,
            "PROCEDURE" => ObjectKind::Procedure,
            "FUNCTION" => ObjectKind::Function,
            "EVENT" => ObjectKind::Event,
            _ => return None,
        })
    }
}

/// What a statement does to a post-data object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectChange {
    /// True for CREATE, false for DROP.
    pub create: bool,
    /// The kind of object.
    pub kind: ObjectKind,
    /// Its database, when the statement qualifies the name.
    pub database: Option<String>,
    /// Its name.
    pub name: String,
}

/// A post-data object a restore must leave on the target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedObject {
    /// View, trigger, procedure, function or event.
    pub kind: ObjectKind,
    /// Its database.
    pub database: String,
    /// Its name.
    pub name: String,
}

/// Objects by (kind, database, name); CREATEs add and DROPs remove, in statement order, so
/// the set is what the backup leaves behind.
#[derive(Debug, Default, Clone)]
pub struct ExpectedObjects(BTreeMap<(ObjectKind, String, String), ExpectedObject>);

impl ExpectedObjects {
    /// Applies a CREATE or DROP seen while `current_db` was selected.
    pub fn apply(&mut self, change: ObjectChange, current_db: &str) {
        let database = change.database.unwrap_or_else(|| current_db.to_string());
        let key = (change.kind, database.clone(), change.name.clone());
        if change.create {
            self.0.insert(key, ExpectedObject { kind: change.kind, database, name: change.name });
        } else {
            self.0.remove(&key);
        }
    }

    /// Adds an object the restore must produce.
    pub fn insert(&mut self, kind: ObjectKind, database: &str, name: &str) {
        let object = ExpectedObject { kind, database: database.into(), name: name.into() };
        self.0.insert((kind, database.into(), name.into()), object);
    }

    /// The objects, in (kind, database, name) order.
    pub fn iter(&self) -> impl Iterator<Item = &ExpectedObject> {
        self.0.values()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    /// An unquoted word, as written.
    Word(String),
    /// A backtick-quoted name, unquoted.
    Quoted(String),
    Dot,
}

/// Tokens of a statement's head: words, quoted names and dots. Skips whitespace, comments,
/// the markers of conditional comments, strings and the `=`/`@`/`,` of clauses such as
/// `DEFINER=`u`@`h``; stops at anything else (a parenthesis, an operator).
fn head_tokens(text: &[u8], limit: usize) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < text.len() && tokens.len() < limit {
        let rest = &text[i..];
        let c = rest[0];
        if c.is_ascii_whitespace() || matches!(c, b'=' | b'@' | b',') {
            i += 1;
        } else if c == b'.' {
            tokens.push(Token::Dot);
            i += 1;
        } else if let Some(len) = crate::sqltext::comment_len(rest) {
            i += len;
        } else if c == b'`' {
            match crate::sqltext::identifier(text, i) {
                Some((name, end)) => {
                    tokens.push(Token::Quoted(name));
                    i = end;
                }
                None => break,
            }
        } else if matches!(c, b'\'' | b'"') {
            match rest[1..].iter().position(|&d| d == c) {
                Some(end) => i += end + 2,
                None => break,
            }
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' {
            let len = rest.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'$').count();
            tokens.push(Token::Word(String::from_utf8_lossy(&rest[..len]).into_owned()));
            i += len;
        } else {
            break;
        }
    }
    tokens
}

/// Words after which no post-data object can follow: the statement is about another kind.
const OTHER_OBJECTS: [&str; 9] =
    ["TABLE", "DATABASE", "SCHEMA", "INDEX", "SEQUENCE", "USER", "ROLE", "SERVER", "TABLESPACE"];

/// The view, trigger, routine or event a `CREATE` or `DROP` statement names, if it is one.
pub fn object_change(text: &[u8]) -> Option<ObjectChange> {
    let tokens = head_tokens(text, 40);
    let create = match tokens.first() {
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("CREATE") => true,
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("DROP") => false,
        _ => return None,
    };
    let mut rest = tokens.iter().skip(1);
    let kind = loop {
        match rest.next()? {
            Token::Word(w) => {
                let upper = w.to_ascii_uppercase();
                if OTHER_OBJECTS.contains(&upper.as_str()) {
                    return None;
                }
                if let Some(kind) = ObjectKind::from_word(&upper) {
                    break kind;
                }
            }
            Token::Quoted(_) | Token::Dot => {}
        }
    };
    let mut names = Vec::new();
    let mut expect_name = true;
    for t in rest {
        match t {
            Token::Word(w)
                if names.is_empty() && ["IF", "NOT", "EXISTS"].contains(&w.to_ascii_uppercase().as_str()) => {}
            Token::Word(w) | Token::Quoted(w) if expect_name => {
                names.push(w.clone());
                expect_name = false;
            }
            Token::Dot if !expect_name && names.len() == 1 => expect_name = true,
            _ => break,
        }
    }
    let (database, name) = match names.len() {
        1 => (None, names.pop()?),
        2 => {
            let name = names.pop()?;
            (names.pop(), name)
        }
        _ => return None,
    };
    Some(ObjectChange { create, kind, database, name })
}

/// The table a `CREATE TRIGGER` statement attaches its trigger to (`... ON [db.]table ...`):
/// (its database if named, the table).
pub fn trigger_table(text: &[u8]) -> Option<(Option<String>, String)> {
    let change = object_change(text).filter(|c| c.create && c.kind == ObjectKind::Trigger)?;
    let tokens = head_tokens(text, 60);
    let name_at = tokens.iter().position(|t| matches!(t, Token::Word(w) | Token::Quoted(w) if *w == change.name))?;
    let on =
        name_at + tokens[name_at..].iter().position(|t| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case("ON")))?;
    let name = |t: Option<&Token>| match t {
        Some(Token::Word(w) | Token::Quoted(w)) => Some(w.clone()),
        _ => None,
    };
    let first = name(tokens.get(on + 1))?;
    match tokens.get(on + 2) {
        Some(Token::Dot) => Some((Some(first), name(tokens.get(on + 3))?)),
        _ => Some((None, first)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_a_trigger_is_on() {
        let t = |s: &str| trigger_table(s.as_bytes());
        assert_eq!(
            t("/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `t_ins` AFTER INSERT ON `orders` FOR EACH ROW BEGIN END */"),
            Some((None, "orders".into()))
        );
        assert_eq!(
            t("CREATE TRIGGER on_x BEFORE UPDATE ON d.`x.y.z` FOR EACH ROW SET @a = 1"),
            Some((Some("d".into()), "x.y.z".into()))
        );
        assert_eq!(t("CREATE VIEW v AS SELECT 1"), None);
    }

    fn created(text: &str) -> Option<(ObjectKind, Option<String>, String)> {
        object_change(text.as_bytes()).filter(|c| c.create).map(|c| (c.kind, c.database, c.name))
    }

    #[test]
    fn names_of_what_mariadb_dump_writes() {
        assert_eq!(
            created("/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `t_ins` AFTER INSERT ON `orders` FOR EACH ROW BEGIN END */"),
            Some((ObjectKind::Trigger, None, "t_ins".into()))
        );
        assert_eq!(
            created("/*!50001 CREATE ALGORITHM=UNDEFINED */ /*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */ /*!50001 VIEW `view; odd` AS select 1 AS `1` */"),
            Some((ObjectKind::View, None, "view; odd".into()))
        );
        assert_eq!(
            created("CREATE DEFINER=`root`@`localhost` FUNCTION `f`(a int) RETURNS int RETURN 1"),
            Some((ObjectKind::Function, None, "f".into()))
        );
        assert_eq!(
            created("CREATE DEFINER=`root`@`localhost` PROCEDURE `d`.`add_order`(IN c INT) BEGIN END"),
            Some((ObjectKind::Procedure, Some("d".into()), "add_order".into()))
        );
        assert_eq!(
            created("/*!50106 CREATE*/ /*!50117 DEFINER=`root`@`localhost`*/ /*!50106 EVENT IF NOT EXISTS `nightly` ON SCHEDULE EVERY 1 DAY DO SELECT 1 */"),
            Some((ObjectKind::Event, None, "nightly".into()))
        );
        assert_eq!(
            created("CREATE OR REPLACE VIEW plain_name AS SELECT 1"),
            Some((ObjectKind::View, None, "plain_name".into()))
        );
    }

    #[test]
    fn drops_and_other_statements() {
        let drop = object_change(b"/*!50001 DROP VIEW IF EXISTS `v`*/").unwrap();
        assert!(!drop.create);
        assert_eq!((drop.kind, drop.name.as_str()), (ObjectKind::View, "v"));
        assert_eq!(object_change(b"DROP TABLE IF EXISTS `view`"), None);
        assert_eq!(object_change(b"CREATE TABLE `trigger` (a int)"), None);
        assert_eq!(object_change(b"SET NAMES utf8mb4"), None);
        assert_eq!(object_change(b"ALTER DATABASE `d` CHARACTER SET latin1"), None);
    }

    #[test]
    fn drops_remove_and_creates_add() {
        let mut o = ExpectedObjects::default();
        for s in [
            "DROP VIEW IF EXISTS `v`",
            "CREATE VIEW `v` AS SELECT 1",
            "CREATE TRIGGER `other`.`t` AFTER INSERT ON x FOR EACH ROW SET @a = 1",
            "CREATE PROCEDURE p() BEGIN END",
            "DROP PROCEDURE p",
        ] {
            o.apply(object_change(s.as_bytes()).unwrap(), "d");
        }
        let names: Vec<_> = o.iter().map(|e| format!("{} {}.{}", e.kind.name(), e.database, e.name)).collect();
        assert_eq!(names, ["view d.v", "trigger other.t"]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = object_change(&text);
        }
    }
}

/// What to do with the `DEFINER=` clause of a view, routine, trigger or event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DefinerRule {
    /// Create the object with the definer the backup names.
    #[default]
    Keep,
    /// Leave the clause out: the object is created with the restoring account as definer.
    Skip,
    /// Name this account instead (`user`@`host`, quoted).
    Replace(String),
}

/// Where a statement's `DEFINER = account` clause is, and the account it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definer {
    /// Byte range of `DEFINER = account` in the statement.
    pub span: std::ops::Range<usize>,
    /// The account: (user, host), unquoted; None for `CURRENT_USER`.
    pub account: Option<(String, String)>,
}

/// The `DEFINER=` clause in the head of a CREATE statement (before the object's keyword,
/// inside a conditional comment or not), if it has one. `SQL SECURITY DEFINER` is not one.
pub fn definer(text: &[u8]) -> Option<Definer> {
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if matches!(c, b'\'' | b'"' | b'`') {
            i += text[i + 1..].iter().position(|&d| d == c)? + 2;
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == b'_') {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == b'_') {
            i += 1;
        }
        let word = text[start..i].to_ascii_uppercase();
        if ObjectKind::from_word(&String::from_utf8_lossy(&word)).is_some() {
            return None; // the object's name and body follow: no clause in the head
        }
        if word == b"DEFINER" {
            let mut j = crate::sqltext::skip_ws(text, i);
            if text.get(j) != Some(&b'=') {
                continue; // SQL SECURITY DEFINER
            }
            j = crate::sqltext::skip_ws(text, j + 1);
            let (account, end) = account(text, j)?;
            return Some(Definer { span: start..end, account });
        }
    }
    None
}

/// `CURRENT_USER[()]` or `user@host`, each part quoted or bare; returns it and where it ends.
fn account(text: &[u8], at: usize) -> Option<(Option<(String, String)>, usize)> {
    let rest = &text[at..];
    if rest.len() >= 12 && rest[..12].eq_ignore_ascii_case(b"CURRENT_USER") {
        let end = at + 12;
        let end = if text[end..].starts_with(b"()") { end + 2 } else { end };
        return Some((None, end));
    }
    let (user, end) = account_part(text, at)?;
    if text.get(end) != Some(&b'@') {
        return Some((Some((user, "%".into())), end));
    }
    let (host, end) = account_part(text, end + 1)?;
    Some((Some((user, host)), end))
}

fn account_part(text: &[u8], at: usize) -> Option<(String, usize)> {
    let q = *text.get(at)?;
    if matches!(q, b'`' | b'\'' | b'"') {
        let mut out = Vec::new();
        let mut i = at + 1;
        while i < text.len() {
            if text[i] == q {
                if text.get(i + 1) == Some(&q) {
                    out.push(q);
                    i += 2;
                    continue;
                }
                return Some((String::from_utf8_lossy(&out).into_owned(), i + 1));
            }
            out.push(text[i]);
            i += 1;
        }
        return None;
    }
    let len =
        text[at..].iter().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'%' | b'-')).count();
    (len > 0).then(|| (String::from_utf8_lossy(&text[at..at + len]).into_owned(), at + len))
}

/// The statement with its `DEFINER=` clause treated as `rule` says.
pub fn apply_definer_rule<'a>(text: &'a [u8], rule: &DefinerRule) -> std::borrow::Cow<'a, [u8]> {
    let Some(found) = definer(text).filter(|_| *rule != DefinerRule::Keep) else {
        return std::borrow::Cow::Borrowed(text);
    };
    let mut out = text[..found.span.start].to_vec();
    if let DefinerRule::Replace(account) = rule {
        out.extend_from_slice(b"DEFINER=");
        out.extend_from_slice(account.as_bytes());
    }
    out.extend_from_slice(&text[found.span.end..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod definer_tests {
    use super::*;

    #[test]
    fn definers_of_what_dump_tools_write() {
        let view = b"/*!50001 CREATE ALGORITHM=UNDEFINED */ /*!50013 DEFINER=`ghost`@`%` SQL SECURITY DEFINER */ /*!50001 VIEW `v` AS select 1 */";
        let d = definer(view).unwrap();
        assert_eq!(d.account, Some(("ghost".into(), "%".into())));
        assert_eq!(&view[d.span.clone()], b"DEFINER=`ghost`@`%`");
        let skipped = apply_definer_rule(view, &DefinerRule::Skip);
        assert_eq!(
            String::from_utf8_lossy(&skipped),
            "/*!50001 CREATE ALGORITHM=UNDEFINED */ /*!50013  SQL SECURITY DEFINER */ /*!50001 VIEW `v` AS select 1 */"
        );
        let replaced = apply_definer_rule(view, &DefinerRule::Replace("`app`@`localhost`".into()));
        assert!(String::from_utf8_lossy(&replaced).contains("/*!50013 DEFINER=`app`@`localhost` SQL SECURITY"));
        let routine = b"CREATE DEFINER='root'@'localhost' PROCEDURE p() SELECT 'DEFINER=`x`@`y`'";
        assert_eq!(definer(routine).unwrap().account, Some(("root".into(), "localhost".into())));
        assert_eq!(
            definer(b"CREATE DEFINER = CURRENT_USER() TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @a=1")
                .unwrap()
                .account,
            None
        );
        assert_eq!(definer(b"CREATE PROCEDURE p() SELECT 'DEFINER=`x`@`y`'"), None, "only in the head");
        assert_eq!(definer(b"CREATE SQL SECURITY DEFINER VIEW v AS SELECT 1"), None);
        assert_eq!(
            apply_definer_rule(b"CREATE VIEW v AS SELECT 1", &DefinerRule::Skip),
            &b"CREATE VIEW v AS SELECT 1"[..]
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = definer(&text);
            let _ = apply_definer_rule(&text, &DefinerRule::Skip);
        }
    }
}
