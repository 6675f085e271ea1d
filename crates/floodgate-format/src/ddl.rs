//! Rewrites CREATE TABLE statements so secondary indexes are built after the data.
//!
//! Loading rows into a table that already has its secondary indexes maintains every index
//! row by row; building them afterwards sorts once. [`defer_indexes`] takes the CREATE TABLE
//! a dump carries (the `SHOW CREATE TABLE` form: one definition per line) and splits it into
//! a CREATE TABLE without the deferrable indexes plus the ALTER TABLE statements that add
//! them back. The result, once the ALTERs ran, has the same `SHOW CREATE TABLE` as the
//! original: indexes are only deferred when that keeps their order.

use crate::ident;

/// One top-level definition inside `CREATE TABLE t ( ... )`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// The text as written, without the separating comma.
    pub text: String,
    /// What it defines.
    pub kind: DefinitionKind,
    /// For indexes and foreign keys: the column names it lists, in order.
    pub columns: Vec<String>,
}

/// The kinds of table definitions that matter for deferring indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefinitionKind {
    /// A column; `auto_increment` says whether it is one.
    Column {
        /// Column name.
        name: String,
        /// The column is AUTO_INCREMENT.
        auto_increment: bool,
    },
    /// PRIMARY KEY.
    Primary,
    /// UNIQUE KEY / UNIQUE INDEX.
    Unique,
    /// Plain KEY / INDEX.
    Key,
    /// FULLTEXT KEY.
    Fulltext,
    /// SPATIAL KEY.
    Spatial,
    /// CONSTRAINT ... FOREIGN KEY (cols) REFERENCES parent (cols).
    ForeignKey {
        /// Referenced table (as written, possibly `db`.`t`; last part only).
        parent: String,
        /// Referenced columns.
        parent_columns: Vec<String>,
    },
    /// CHECK constraints, PERIOD FOR and anything else: kept as is.
    Other,
}

impl DefinitionKind {
    fn is_secondary_index(&self) -> bool {
        matches!(self, DefinitionKind::Key | DefinitionKind::Fulltext | DefinitionKind::Spatial)
    }
}

/// A parsed CREATE TABLE.
#[derive(Debug, Clone)]
pub struct CreateTable {
    /// Text up to and including the opening parenthesis.
    pub head: String,
    /// The definitions in order.
    pub definitions: Vec<Definition>,
    /// Text after the closing parenthesis: table options and partitioning.
    pub tail: String,
}

/// Why a CREATE TABLE could not be taken apart. The caller then runs it unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse CREATE TABLE: {0}")]
pub struct ParseError(pub &'static str);

/// Splits text at top-level commas between the parentheses of a CREATE TABLE.
pub fn parse_create_table(sql: &str) -> Result<CreateTable, ParseError> {
    let bytes = sql.as_bytes();
    let open = find_top_level(bytes, 0, b'(').ok_or(ParseError("no opening parenthesis"))?;
    let head_upper = sql[..open].to_ascii_uppercase();
    if !head_upper.trim_start().starts_with("CREATE") || !head_upper.contains("TABLE") {
        return Err(ParseError("not a CREATE TABLE"));
    }
    if head_upper.contains(" LIKE ") || head_upper.contains(" SELECT ") {
        return Err(ParseError("CREATE TABLE ... LIKE/SELECT"));
    }
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut start = open + 1;
    let mut defs = Vec::new();
    let mut i = open + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == b'\\' && q != b'`' {
                i += 2;
                continue;
            }
            if b == q {
                if bytes.get(i + 1) == Some(&q) {
                    i += 2;
                    continue;
                }
                quote = None;
            }
            i += 1;
            continue;
        }
        match b {
            b'\'' | b'"' | b'`' => quote = Some(b),
            b'(' => depth += 1,
            b')' if depth == 0 => {
                defs.push(sql[start..i].to_string());
                let definitions = defs
                    .into_iter()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .map(|t| classify(&t))
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(CreateTable { head: sql[..=open].to_string(), definitions, tail: sql[i + 1..].to_string() });
            }
            b')' => depth -= 1,
            b',' if depth == 0 => {
                defs.push(sql[start..i].to_string());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    Err(ParseError("unbalanced parentheses"))
}

fn find_top_level(bytes: &[u8], from: usize, want: u8) -> Option<usize> {
    let mut quote: Option<u8> = None;
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' || b == b'`' => quote = Some(b),
            None if b == want => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

fn starts_with_word(s: &str, word: &str) -> bool {
    s.get(..word.len()).is_some_and(|head| head.eq_ignore_ascii_case(word))
        && s[word.len()..].chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
}

fn classify(text: &str) -> Result<Definition, ParseError> {
    let mut rest = text;
    let mut constraint = false;
    if starts_with_word(rest, "CONSTRAINT") {
        constraint = true;
        rest = rest[10..].trim_start();
        // optional symbol
        if !starts_with_word(rest, "FOREIGN")
            && !starts_with_word(rest, "PRIMARY")
            && !starts_with_word(rest, "UNIQUE")
            && !starts_with_word(rest, "CHECK")
        {
            rest = skip_identifier(rest).trim_start();
        }
    }
    let kind = if starts_with_word(rest, "PRIMARY") {
        DefinitionKind::Primary
    } else if starts_with_word(rest, "UNIQUE") {
        DefinitionKind::Unique
    } else if starts_with_word(rest, "FULLTEXT") {
        DefinitionKind::Fulltext
    } else if starts_with_word(rest, "SPATIAL") {
        DefinitionKind::Spatial
    } else if starts_with_word(rest, "KEY") || starts_with_word(rest, "INDEX") {
        DefinitionKind::Key
    } else if starts_with_word(rest, "FOREIGN") {
        let (cols, after) = paren_columns(rest).ok_or(ParseError("foreign key columns"))?;
        let refs = after.trim_start();
        if !starts_with_word(refs, "REFERENCES") {
            return Err(ParseError("foreign key without REFERENCES"));
        }
        let target = refs[10..].trim_start();
        let parent = last_identifier(target);
        let (parent_columns, _) = paren_columns(target).ok_or(ParseError("referenced columns"))?;
        return Ok(Definition {
            text: text.to_string(),
            kind: DefinitionKind::ForeignKey { parent, parent_columns },
            columns: cols,
        });
    } else if constraint || starts_with_word(rest, "CHECK") || starts_with_word(rest, "PERIOD") {
        DefinitionKind::Other
    } else {
        let name = match ident::unquote_prefix(rest) {
            Some((n, _)) => n,
            None => rest.split_whitespace().next().unwrap_or_default().to_string(),
        };
        let upper = text.to_ascii_uppercase();
        return Ok(Definition {
            text: text.to_string(),
            kind: DefinitionKind::Column { name, auto_increment: upper.contains("AUTO_INCREMENT") },
            columns: Vec::new(),
        });
    };
    let columns = paren_columns(rest).map(|(c, _)| c).unwrap_or_default();
    Ok(Definition { text: text.to_string(), kind, columns })
}

fn skip_identifier(s: &str) -> &str {
    if let Some((_, rest)) = ident::unquote_prefix(s) {
        return rest;
    }
    let end = s.find(|c: char| c.is_whitespace() || c == '(').unwrap_or(s.len());
    &s[end..]
}

/// The last identifier before the first '(' of `s` (so `db`.`t` (..) gives `t`).
fn last_identifier(s: &str) -> String {
    let mut rest = s;
    let mut last = String::new();
    loop {
        rest = rest.trim_start();
        if let Some((name, after)) = ident::unquote_prefix(rest) {
            last = name;
            rest = after;
        } else {
            let end = rest.find(|c: char| c.is_whitespace() || c == '(' || c == '.').unwrap_or(rest.len());
            if end == 0 {
                return last;
            }
            last = rest[..end].to_string();
            rest = &rest[end..];
        }
        match rest.strip_prefix('.') {
            Some(r) => rest = r,
            None => return last,
        }
    }
}

/// Column names in the first parenthesised list of `s`; prefix lengths and ASC/DESC dropped.
fn paren_columns(s: &str) -> Option<(Vec<String>, &str)> {
    let open = find_top_level(s.as_bytes(), 0, b'(')?;
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s[open..].char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => continue,
            None if c == '`' || c == '\'' || c == '"' => quote = Some(c),
            None if c == '(' => depth += 1,
            None if c == ')' => {
                depth -= 1;
                if depth == 0 {
                    let inner = &s[open + 1..open + i];
                    let cols = split_top_level_commas(inner)
                        .into_iter()
                        .map(|part| {
                            let part = part.trim();
                            match ident::unquote_prefix(part) {
                                Some((n, _)) => n,
                                None => {
                                    part.split(|c: char| c == '(' || c.is_whitespace()).next().unwrap_or("").to_string()
                                }
                            }
                        })
                        .collect();
                    return Some((cols, &s[open + i + 1..]));
                }
            }
            None => {}
        }
    }
    None
}

fn split_top_level_commas(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '`' || c == '\'' || c == '"' => quote = Some(c),
            None if c == '(' => depth += 1,
            None if c == ')' => depth -= 1,
            None if c == ',' && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            None => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A CREATE TABLE split for a deferred-index load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredTable {
    /// CREATE TABLE without the deferred indexes.
    pub create: String,
    /// The ALTER TABLE statements that add them back (empty when nothing is deferred).
    /// InnoDB builds one FULLTEXT index per statement, so each gets its own.
    pub alters: Vec<String>,
    /// Names of the deferred indexes, for reports.
    pub deferred: Vec<String>,
}

/// Columns of another table that a foreign key somewhere references: the index that serves
/// them must exist while that key is created, so it is never deferred.
#[derive(Debug, Clone, Default)]
pub struct ReferencedColumns(pub Vec<Vec<String>>);

/// Splits `create_sql` for `db`.`table` into a lean CREATE TABLE plus ALTERs.
///
/// Kept in the CREATE: the primary key, unique keys, any index a foreign key of this table or
/// a foreign key pointing at it needs, the index an AUTO_INCREMENT column needs, and every
/// secondary index that comes before one of those (so the final index order, which
/// `SHOW CREATE TABLE` shows, is the original one). Only InnoDB tables are rewritten.
pub fn defer_indexes(
    db: &str,
    table: &str,
    create_sql: &str,
    referenced: &ReferencedColumns,
) -> Result<DeferredTable, ParseError> {
    let unchanged = || DeferredTable { create: create_sql.to_string(), alters: Vec::new(), deferred: Vec::new() };
    let parsed = parse_create_table(create_sql)?;
    if !is_innodb(&parsed.tail) {
        return Ok(unchanged());
    }
    let needed = needed_indexes(&parsed, referenced);
    let last_needed = parsed
        .definitions
        .iter()
        .enumerate()
        .filter(|(i, d)| d.kind.is_secondary_index() && needed.contains(i))
        .map(|(i, _)| i)
        .max();
    let deferrable = |i: usize, d: &Definition| d.kind.is_secondary_index() && last_needed.is_none_or(|l| i > l);
    let (mut keep, mut defer) = (Vec::new(), Vec::new());
    for (i, d) in parsed.definitions.iter().enumerate() {
        if deferrable(i, d) {
            defer.push(d);
        } else {
            keep.push(d.text.as_str());
        }
    }
    if defer.is_empty() {
        return Ok(unchanged());
    }
    let create = format!("{}\n  {}\n){}", parsed.head, keep.join(",\n  "), parsed.tail);
    let target = ident::qualified(db, table);
    let plain: Vec<String> =
        defer.iter().filter(|d| d.kind != DefinitionKind::Fulltext).map(|d| format!("ADD {}", d.text)).collect();
    let mut alters = Vec::new();
    if !plain.is_empty() {
        alters.push(format!("ALTER TABLE {target} {}", plain.join(", ")));
    }
    for d in defer.iter().filter(|d| d.kind == DefinitionKind::Fulltext) {
        alters.push(format!("ALTER TABLE {target} ADD {}", d.text));
    }
    let deferred = defer.iter().map(|d| index_name(&d.text)).collect();
    Ok(DeferredTable { create, alters, deferred })
}

/// The column [`add_invisible_primary_key`] adds, as MySQL Shell's `createInvisiblePKs` and
/// MySQL's `sql_generate_invisible_primary_key` name it.
pub const INVISIBLE_PK: &str = "my_row_id";

/// What [`add_invisible_primary_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvisiblePk {
    /// The table has a primary key: unchanged.
    HasOne,
    /// The CREATE TABLE with `my_row_id` added as an invisible AUTO_INCREMENT primary key.
    Added(String),
    /// It cannot get one (an AUTO_INCREMENT column of its own, a column already named
    /// `my_row_id`): the reason, for the notice.
    Cannot(&'static str),
}

/// `--create-invisible-pks`: a table without a primary key gets an invisible
/// `my_row_id BIGINT UNSIGNED AUTO_INCREMENT` one, first, for servers that require one
/// (`sql_require_primary_key`, Group Replication, managed services). Invisible, so `SELECT *`
/// and an INSERT without a column list see the table as it was.
pub fn add_invisible_primary_key(create_sql: &str) -> Result<InvisiblePk, ParseError> {
    let parsed = parse_create_table(create_sql)?;
    let defs = &parsed.definitions;
    if defs.iter().any(|d| d.kind == DefinitionKind::Primary) {
        return Ok(InvisiblePk::HasOne);
    }
    let column = |f: &dyn Fn(&str, bool) -> bool| {
        defs.iter()
            .any(|d| matches!(&d.kind, DefinitionKind::Column { name, auto_increment } if f(name, *auto_increment)))
    };
    if column(&|name, _| name.eq_ignore_ascii_case(INVISIBLE_PK)) {
        return Ok(InvisiblePk::Cannot("it already has a column named my_row_id"));
    }
    if column(&|_, auto_increment| auto_increment) {
        return Ok(InvisiblePk::Cannot("it has an AUTO_INCREMENT column of its own, and a table may have one"));
    }
    let mut parts = vec![format!("`{INVISIBLE_PK}` bigint unsigned NOT NULL AUTO_INCREMENT INVISIBLE")];
    parts.extend(defs.iter().map(|d| d.text.clone()));
    parts.push(format!("PRIMARY KEY (`{INVISIBLE_PK}`)"));
    Ok(InvisiblePk::Added(format!(
        "{}
  {}
){}",
        parsed.head,
        parts.join(
            ",
  "
        ),
        parsed.tail
    )))
}

fn is_innodb(tail: &str) -> bool {
    let upper = tail.to_ascii_uppercase();
    match upper.find("ENGINE") {
        Some(at) => upper[at + 6..].trim_start_matches([' ', '=']).starts_with("INNODB"),
        // No ENGINE clause: the server default, InnoDB on every supported version.
        None => true,
    }
}

/// Positions of indexes that must exist at CREATE time.
fn needed_indexes(parsed: &CreateTable, referenced: &ReferencedColumns) -> Vec<usize> {
    let defs = &parsed.definitions;
    let mut wanted: Vec<Vec<String>> = referenced.0.clone();
    for d in defs {
        if let DefinitionKind::ForeignKey { .. } = d.kind {
            wanted.push(d.columns.clone());
        }
        if let DefinitionKind::Column { name, auto_increment: true } = &d.kind {
            wanted.push(vec![name.clone()]);
        }
    }
    let mut needed = Vec::new();
    for cols in wanted {
        // Any PRIMARY or UNIQUE key (never deferred) that serves these columns suffices.
        let served_by_kept = defs.iter().any(|d| {
            matches!(d.kind, DefinitionKind::Primary | DefinitionKind::Unique) && d.columns.starts_with(&cols)
        });
        if served_by_kept {
            continue;
        }
        if let Some(i) = defs.iter().position(|d| d.kind == DefinitionKind::Key && d.columns.starts_with(&cols)) {
            needed.push(i);
        }
    }
    needed
}

fn index_name(text: &str) -> String {
    text.split_once('`')
        .and_then(|(_, rest)| ident::unquote_prefix(&format!("`{rest}")).map(|(n, _)| n))
        .unwrap_or_else(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invisible_primary_key_only_where_there_is_none() {
        let create =
            "CREATE TABLE `log` (\n  `at` datetime NOT NULL,\n  `what` text,\n  KEY `at` (`at`)\n) ENGINE=InnoDB";
        let InvisiblePk::Added(with) = add_invisible_primary_key(create).unwrap() else { panic!() };
        assert_eq!(
            with,
            "CREATE TABLE `log` (\n  `my_row_id` bigint unsigned NOT NULL AUTO_INCREMENT INVISIBLE,\n  `at` datetime NOT \
             NULL,\n  `what` text,\n  KEY `at` (`at`),\n  PRIMARY KEY (`my_row_id`)\n) ENGINE=InnoDB"
        );
        assert_eq!(add_invisible_primary_key(ORDERS).unwrap(), InvisiblePk::HasOne);
        let own = "CREATE TABLE t (\n  id int NOT NULL AUTO_INCREMENT,\n  UNIQUE KEY (id)\n)";
        assert!(matches!(add_invisible_primary_key(own).unwrap(), InvisiblePk::Cannot(_)));
    }

    const ORDERS: &str = "CREATE TABLE `orders` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `customer_id` int(11) NOT NULL,\n  `amount` decimal(10,2) NOT NULL,\n  `note` text DEFAULT NULL COMMENT 'a, (b)',\n  PRIMARY KEY (`id`),\n  KEY `idx_amount` (`amount`),\n  KEY `idx_customer` (`customer_id`),\n  KEY `idx_amount2` (`amount`,`id`),\n  FULLTEXT KEY `ft_note` (`note`),\n  CONSTRAINT `fk` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`) ON DELETE CASCADE\n) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4";

    #[test]
    fn parses_definitions() {
        let t = parse_create_table(ORDERS).unwrap();
        assert_eq!(t.definitions.len(), 10);
        assert_eq!(t.definitions[3].text, "`note` text DEFAULT NULL COMMENT 'a, (b)'");
        assert_eq!(
            t.definitions[9].kind,
            DefinitionKind::ForeignKey { parent: "customers".into(), parent_columns: vec!["id".into()] }
        );
        assert_eq!(t.definitions[9].columns, vec!["customer_id".to_string()]);
        assert!(t.tail.starts_with(" ENGINE=InnoDB"));
    }

    #[test]
    fn keeps_order_when_a_foreign_key_needs_an_index() {
        let d = defer_indexes("db", "orders", ORDERS, &ReferencedColumns::default()).unwrap();
        // idx_customer serves the FK, so it and everything before it stay.
        assert!(d.create.contains("KEY `idx_amount` (`amount`)"));
        assert!(d.create.contains("KEY `idx_customer`"));
        assert!(!d.create.contains("idx_amount2"));
        assert!(!d.create.contains("FULLTEXT"));
        assert_eq!(
            d.alters,
            vec![
                "ALTER TABLE `db`.`orders` ADD KEY `idx_amount2` (`amount`,`id`)".to_string(),
                "ALTER TABLE `db`.`orders` ADD FULLTEXT KEY `ft_note` (`note`)".to_string(),
            ]
        );
        assert_eq!(d.deferred, vec!["idx_amount2", "ft_note"]);
    }

    #[test]
    fn defers_all_plain_secondaries() {
        let sql = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `k` int,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`k`),\n  KEY `k1` (`k`)\n) ENGINE=InnoDB";
        let d = defer_indexes("d", "t", sql, &ReferencedColumns::default()).unwrap();
        assert_eq!(d.create, "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `k` int,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`k`)\n) ENGINE=InnoDB");
        assert_eq!(d.alters, vec!["ALTER TABLE `d`.`t` ADD KEY `k1` (`k`)".to_string()]);
    }

    #[test]
    fn myisam_and_auto_increment_keys_stay() {
        let myisam = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  KEY `k1` (`id`)\n) ENGINE=MyISAM";
        assert!(defer_indexes("d", "t", myisam, &ReferencedColumns::default()).unwrap().alters.is_empty());
        let ai = "CREATE TABLE `t` (\n  `a` int NOT NULL,\n  `id` int NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`a`,`id`),\n  KEY `k_id` (`id`)\n) ENGINE=InnoDB";
        assert!(defer_indexes("d", "t", ai, &ReferencedColumns::default()).unwrap().alters.is_empty());
    }

    #[test]
    fn referenced_columns_keep_their_index() {
        let sql = "CREATE TABLE `p` (\n  `id` int NOT NULL,\n  `code` int NOT NULL,\n  PRIMARY KEY (`id`),\n  KEY `c` (`code`)\n) ENGINE=InnoDB";
        let r = ReferencedColumns(vec![vec!["code".into()]]);
        assert!(defer_indexes("d", "p", sql, &r).unwrap().alters.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(sql in "CREATE TABLE[ `(),a-zé'\"\\\\KEYPRIMARYUNIQUEFORIGNREFSCDTXé]{0,80}") {
            let _ = defer_indexes("d", "t", &sql, &ReferencedColumns(vec![vec!["a".into()]]));
        }

        #[test]
        fn never_panics_on_any_text(sql in ".{0,200}") {
            let _ = defer_indexes("d", "t", &sql, &ReferencedColumns::default());
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for s in
            ["", "CREATE TABLE", "CREATE TABLE t (", "SELECT 1", "CREATE TABLE t (a int, ((", "CREATE TABLE t LIKE u"]
        {
            assert!(parse_create_table(s).is_err(), "{s}");
        }
    }
}
