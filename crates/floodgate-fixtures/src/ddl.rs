//! The text of Shell's SQL files (`Schema_dumper` of Shell 8.4, format 2.0.1): the comment
//! header, schema DDL with events and routines, table, trigger and view files.

/// What `shcore::get_long_version()` returns in the Shell this writer emulates.
pub const SHELL_LONG_VERSION: &str = "Ver 8.4.8 for Linux on x86_64 - for MySQL 8.4.8 (MySQL Community Server - GPL)";
/// The Shell release itself (`targetVersion` of `@.json`).
pub const SHELL_VERSION: &str = "8.4.8";
/// Dump format version every Shell since 8.0.27 writes.
pub const DUMP_VERSION: &str = "2.0.1";

/// `shcore::quote_identifier`: always backticks, inner backticks doubled.
pub fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `` `s`.`t` ``
pub fn quote_pair(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_identifier(schema), quote_identifier(table))
}

/// `fix_identifier_with_newline`: names in comments must not end the comment line.
fn fix_newline(name: &str) -> String {
    name.replace('\n', "\n-- ")
}

/// The comment header on top of every SQL file. `server_version` is the x.y.z the client
/// library reports for the connection.
pub fn header(server_version: &str, db: Option<&str>, table: Option<&str>) -> String {
    let mut out = format!(
        "-- MySQLShell dump {DUMP_VERSION}  Distrib {SHELL_LONG_VERSION}, for Linux (x86_64)\n--\n-- Host: localhost"
    );
    if let Some(db) = db {
        out.push_str(&format!("    Database: {}", fix_newline(db)));
    }
    if let Some(table) = table {
        out.push_str(&format!("    Table: {}", fix_newline(table)));
    }
    out.push_str(&format!(
        "\n-- ------------------------------------------------------\n-- Server version\t{server_version}\n"
    ));
    out
}

/// Character set context of a stored object, from its SHOW CREATE row.
#[derive(Debug, Clone)]
pub struct ObjectContext {
    pub sql_mode: String,
    pub character_set_client: String,
    pub collation_connection: String,
    pub database_collation: String,
}

/// An event as SHOW CREATE EVENT returns it.
#[derive(Debug, Clone)]
pub struct EventDdl {
    pub name: String,
    pub time_zone: String,
    pub create: String,
    pub context: ObjectContext,
}

/// A function or procedure as SHOW CREATE FUNCTION/PROCEDURE returns it.
#[derive(Debug, Clone)]
pub struct RoutineDdl {
    pub name: String,
    pub create: String,
    pub context: ObjectContext,
}

/// A trigger as SHOW CREATE TRIGGER returns it.
#[derive(Debug, Clone)]
pub struct TriggerDdl {
    pub name: String,
    pub create: String,
    pub context: ObjectContext,
}

fn switch_db_collation(out: &mut String, db: &str, delimiter: &str, current: &str, required: &str) -> bool {
    if current == required {
        return false;
    }
    out.push_str(&format!(
        "ALTER DATABASE {} CHARACTER SET {} COLLATE {} {delimiter}\n",
        quote_identifier(db),
        charset_of(required),
        required
    ));
    true
}

fn restore_db_collation(out: &mut String, db: &str, delimiter: &str, collation: &str) {
    out.push_str(&format!(
        "ALTER DATABASE {} CHARACTER SET {} COLLATE {} {delimiter}\n",
        quote_identifier(db),
        charset_of(collation),
        collation
    ));
}

/// The character set a collation belongs to: its name up to the first `_`, which holds for
/// every collation the servers ship (`utf8mb4_unicode_ci`, `latin1_swedish_ci`, `binary`).
fn charset_of(collation: &str) -> &str {
    collation.split('_').next().unwrap_or(collation)
}

fn switch_cs_variables(out: &mut String, d: &str, client: &str, connection: &str) {
    out.push_str(&format!(
        "/*!50003 SET @saved_cs_client      = @@character_set_client */ {d}\n\
         /*!50003 SET @saved_cs_results     = @@character_set_results */ {d}\n\
         /*!50003 SET @saved_col_connection = @@collation_connection */ {d}\n\
         /*!50003 SET character_set_client  = {client} */ {d}\n\
         /*!50003 SET character_set_results = {client} */ {d}\n\
         /*!50003 SET collation_connection  = {connection} */ {d}\n"
    ));
}

fn restore_cs_variables(out: &mut String, d: &str) {
    out.push_str(&format!(
        "/*!50003 SET character_set_client  = @saved_cs_client */ {d}\n\
         /*!50003 SET character_set_results = @saved_cs_results */ {d}\n\
         /*!50003 SET collation_connection  = @saved_col_connection */ {d}\n"
    ));
}

fn switch_sql_mode(out: &mut String, d: &str, mode: &str) {
    out.push_str(&format!(
        "/*!50003 SET @saved_sql_mode       = @@sql_mode */ {d}\n/*!50003 SET sql_mode              = '{mode}' */ {d}\n"
    ));
}

fn restore_sql_mode(out: &mut String, d: &str) {
    out.push_str(&format!("/*!50003 SET sql_mode              = @saved_sql_mode */ {d}\n"));
}

/// `Object_guard_msg`: `-- begin <type> `db`.<quoted name>`.
fn guard(kind: &str, db: &str, quoted_name: &str) -> String {
    fix_newline(&format!("{kind} {}.{quoted_name}", quote_identifier(db)))
}

/// `create_delimiter`: the shortest run of 2+ semicolons that does not occur in the text.
pub fn create_delimiter(text: &str) -> String {
    let mut delimiter = String::from(";;");
    while text.contains(&delimiter) {
        delimiter.push(';');
    }
    delimiter
}

/// `fixup_event_ddl`: `CREATE DEFINER=`u`@`h` EVENT ` gains `IF NOT EXISTS `. Returns the
/// statement unchanged when it is not in that shape.
pub fn fixup_event_ddl(create: &str) -> String {
    let Some(rest) = create.strip_prefix("CREATE DEFINER=") else {
        return create.to_string();
    };
    let Some(user_len) = span_backticked(rest) else {
        return create.to_string();
    };
    let after_user = &rest[user_len..];
    let Some(after_at) = after_user.strip_prefix('@') else {
        return create.to_string();
    };
    let Some(host_len) = span_backticked(after_at) else {
        return create.to_string();
    };
    let skip = create.len() - after_at.len() + host_len + " EVENT ".len();
    if skip > create.len() || !create.is_char_boundary(skip) {
        return create.to_string();
    }
    format!("{}IF NOT EXISTS {}", &create[..skip], &create[skip..])
}

/// Length of a leading backtick-quoted identifier, doubled backticks included.
fn span_backticked(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'`') {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            if bytes.get(i + 1) == Some(&b'`') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// `S.sql`: header, CREATE DATABASE, events, then functions and procedures.
pub fn schema_sql(
    header: &str,
    db: &str,
    create_database: &str,
    db_collation: &str,
    events: &[EventDdl],
    functions: &[RoutineDdl],
    procedures: &[RoutineDdl],
) -> String {
    let mut out = header.to_string();
    out.push_str(&format!("\n--\n-- Current Database: {}\n--\n", fix_newline(db)));
    out.push_str(&format!("\n{create_database};\n"));
    out.push_str(&format!("\nUSE {};\n", quote_identifier(db)));
    events_section(&mut out, db, db_collation, events);
    out.push_str(&format!("\n--\n-- Dumping routines for database '{}'\n--\n\n", fix_newline(db)));
    for (kind, routines) in [("FUNCTION", functions), ("PROCEDURE", procedures)] {
        for routine in routines {
            routine_block(&mut out, db, db_collation, kind, routine);
        }
    }
    out
}

/// `dump_events_for_db`. The delimiter of a DROP EVENT is the one left over from the
/// previous event (`;` for the first), a quirk kept from mysqldump.
fn events_section(out: &mut String, db: &str, db_collation: &str, events: &[EventDdl]) {
    out.push_str(&format!("\n--\n-- Dumping events for database '{}'\n--\n", fix_newline(db)));
    if events.is_empty() {
        return;
    }
    out.push_str("/*!50106 SET @save_time_zone= @@TIME_ZONE */ ;\n\n");
    let mut delimiter = String::from(";");
    for event in events {
        let name = quote_identifier(&event.name);
        let g = guard("event", db, &name);
        out.push_str(&format!("-- begin {g}\n"));
        out.push_str(&format!("/*!50106 DROP EVENT IF EXISTS {name} */{delimiter}\n"));
        delimiter = create_delimiter(&event.create);
        out.push_str(&format!("DELIMITER {delimiter}\n"));
        let ctx = &event.context;
        let altered = switch_db_collation(out, db, &delimiter, db_collation, &ctx.database_collation);
        switch_cs_variables(out, &delimiter, &ctx.character_set_client, &ctx.collation_connection);
        switch_sql_mode(out, &delimiter, &ctx.sql_mode);
        out.push_str(&format!(
            "/*!50003 SET @saved_time_zone      = @@time_zone */ {delimiter}\n/*!50003 SET time_zone             = '{}' */ {delimiter}\n",
            event.time_zone
        ));
        out.push_str(&format!("/*!50106 {} */ {delimiter}\n", fixup_event_ddl(&event.create)));
        out.push_str(&format!("/*!50003 SET time_zone             = @saved_time_zone */ {delimiter}\n"));
        restore_sql_mode(out, &delimiter);
        restore_cs_variables(out, &delimiter);
        if altered {
            restore_db_collation(out, db, &delimiter, db_collation);
        }
        out.push_str(&format!("-- end {g}\n\n"));
    }
    out.push_str("DELIMITER ;\n/*!50106 SET TIME_ZONE= @save_time_zone */ ;\n");
}

fn routine_block(out: &mut String, db: &str, db_collation: &str, kind: &str, routine: &RoutineDdl) {
    let name = quote_identifier(&routine.name);
    let g = guard(&kind.to_lowercase(), db, &name);
    out.push_str(&format!("-- begin {g}\n"));
    out.push_str(&format!("/*!50003 DROP {kind} IF EXISTS {name} */;\n"));
    let ctx = &routine.context;
    let altered = switch_db_collation(out, db, ";", db_collation, &ctx.database_collation);
    switch_cs_variables(out, ";", &ctx.character_set_client, &ctx.collation_connection);
    switch_sql_mode(out, ";", &ctx.sql_mode);
    out.push_str(&format!("DELIMITER ;;\n{} ;;\nDELIMITER ;\n", routine.create));
    restore_sql_mode(out, ";");
    restore_cs_variables(out, ";");
    if altered {
        restore_db_collation(out, db, ";", db_collation);
    }
    out.push_str(&format!("-- end {g}\n\n"));
}

/// `S@T.sql`. Every `CREATE TABLE ` gains `IF NOT EXISTS` (Shell's plain string replace).
pub fn table_sql(header: &str, table: &str, create_table: &str) -> String {
    format!(
        "{header}\n--\n-- Table structure for table {}\n--\n\n\
         /*!40101 SET @saved_cs_client     = @@character_set_client */;\n\
         /*!50503 SET character_set_client = utf8mb4 */;\n\
         {};\n\
         /*!40101 SET character_set_client = @saved_cs_client */;\n",
        fix_newline(&quote_identifier(table)),
        create_table.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ")
    )
}

/// `S@T.triggers.sql`, triggers in ACTION_ORDER.
pub fn triggers_sql(header: &str, db: &str, table: &str, db_collation: &str, triggers: &[TriggerDdl]) -> String {
    let mut out = header.to_string();
    if !triggers.is_empty() {
        out.push_str(&format!("\n--\n-- Dumping triggers for table '{db}'.'{table}'\n--\n\n"));
    }
    // 5.7 servers put the schema into CREATE TRIGGER; Shell strips it
    let with_schema = format!(" TRIGGER {}.", quote_identifier(db));
    for trigger in triggers {
        let name = quote_identifier(&trigger.name);
        let g = guard("trigger", db, &name);
        out.push_str(&format!("-- begin {g}\n"));
        let ctx = &trigger.context;
        let altered = switch_db_collation(&mut out, db, ";", db_collation, &ctx.database_collation);
        switch_cs_variables(&mut out, ";", &ctx.character_set_client, &ctx.collation_connection);
        switch_sql_mode(&mut out, ";", &ctx.sql_mode);
        out.push_str(&format!("/*!50032 DROP TRIGGER IF EXISTS {name} */;\n"));
        let body = trigger.create.replace(&with_schema, " TRIGGER ");
        out.push_str(&format!("DELIMITER ;;\n/*!50003 {body} */;;\nDELIMITER ;\n"));
        restore_sql_mode(&mut out, ";");
        restore_cs_variables(&mut out, ";");
        if altered {
            restore_db_collation(&mut out, db, ";", db_collation);
        }
        out.push_str(&format!("-- end {g}\n\n"));
    }
    out
}

/// `S@V.pre.sql`: a placeholder view with the real column names.
pub fn view_pre_sql(header: &str, view: &str, columns: &[String]) -> String {
    let q = quote_identifier(view);
    let mut out = format!(
        "{header}\n--\n-- Temporary view structure for view {}\n--\n\n\
         DROP TABLE IF EXISTS {q};\n\
         /*!50001 DROP VIEW IF EXISTS {q}*/;\n",
        fix_newline(&q)
    );
    if columns.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "SET @saved_cs_client     = @@character_set_client;\n\
         /*!50503 SET character_set_client = utf8mb4 */;\n\
         /*!50001 CREATE VIEW {q} AS SELECT\n"
    ));
    let items: Vec<String> = columns.iter().map(|c| format!(" 1 AS {}", quote_identifier(c))).collect();
    out.push_str(&items.join(",\n"));
    out.push_str(" */;\nSET character_set_client = @saved_cs_client;\n");
    out
}

/// `S@V.sql`: the final view.
pub fn view_sql(header: &str, view: &str, create_view: &str, client_cs: &str, collation_connection: &str) -> String {
    let q = quote_identifier(view);
    format!(
        "{header}\n--\n-- Final view structure for view {}\n--\n\n\
         /*!50001 DROP VIEW IF EXISTS {q}*/;\n\
         /*!50001 SET @saved_cs_client          = @@character_set_client */;\n\
         /*!50001 SET @saved_cs_results         = @@character_set_results */;\n\
         /*!50001 SET @saved_col_connection     = @@collation_connection */;\n\
         /*!50001 SET character_set_client      = {client_cs} */;\n\
         /*!50001 SET character_set_results     = {client_cs} */;\n\
         /*!50001 SET collation_connection      = {collation_connection} */;\n\
         /*!50001 {create_view} */;\n\
         /*!50001 SET character_set_client      = @saved_cs_client */;\n\
         /*!50001 SET character_set_results     = @saved_cs_results */;\n\
         /*!50001 SET collation_connection      = @saved_col_connection */;\n",
        fix_newline(&q)
    )
}

/// One account of `@.users.sql`.
#[derive(Debug, Clone)]
pub struct UserDdl {
    /// `'user'@'host'` as `make_account` writes it.
    pub account: String,
    pub create_user: String,
    pub grants: Vec<String>,
}

/// `@.users.sql`, 2.0.x layout: all CREATE USER blocks, then all grant blocks.
pub fn users_sql(header: &str, users: &[UserDdl]) -> String {
    let mut out = header.to_string();
    out.push_str("--\n-- Dumping user accounts\n--\n\n");
    for u in users {
        let create = u.create_user.replacen("CREATE USER ", "CREATE USER IF NOT EXISTS ", 1);
        out.push_str(&format!("-- begin user {}\n{create};\n-- end user {}\n\n", u.account, u.account));
    }
    for u in users {
        out.push_str(&format!("-- begin grants {}\n", u.account));
        for g in &u.grants {
            out.push_str(&format!("{g};\n"));
        }
        out.push_str(&format!("-- end grants {}\n\n", u.account));
    }
    out.push_str("-- End of dumping user accounts\n\n");
    out
}

/// `shcore::make_account`: `'user'@'host'` with SQL string escaping.
pub fn make_account(user: &str, host: &str) -> String {
    format!("'{}'@'{}'", escape_sql_string(user), escape_sql_string(host))
}

/// Escaping inside a single-quoted SQL literal.
pub fn escape_sql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn event_fixup_adds_if_not_exists() {
        assert_eq!(
            fixup_event_ddl("CREATE DEFINER=`ro``ot`@`localhost` EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT 1"),
            "CREATE DEFINER=`ro``ot`@`localhost` EVENT IF NOT EXISTS `e` ON SCHEDULE EVERY 1 DAY DO SELECT 1"
        );
        assert_eq!(fixup_event_ddl("CREATE EVENT e"), "CREATE EVENT e");
    }

    #[test]
    fn delimiter_avoids_the_body() {
        assert_eq!(create_delimiter("DO SELECT 1"), ";;");
        assert_eq!(create_delimiter("a;;b"), ";;;");
    }

    #[test]
    fn header_breaks_newlines_in_names() {
        let h = header("5.5.5", Some("db"), Some("new\nline"));
        assert!(h.contains("-- Host: localhost    Database: db    Table: new\n-- line\n"));
        assert!(h.ends_with("-- Server version\t5.5.5\n"));
    }

    #[test]
    fn view_placeholder_layout() {
        let s = view_pre_sql("H\n", "v", &["a".into(), "b`".into()]);
        assert!(s.ends_with("/*!50001 CREATE VIEW `v` AS SELECT\n 1 AS `a`,\n 1 AS `b``` */;\nSET character_set_client = @saved_cs_client;\n"));
    }
}
