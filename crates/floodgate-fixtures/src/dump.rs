//! The dump itself: read everything in one snapshot, write the files in Shell's order.

use std::collections::BTreeMap;
use std::path::Path;

use mysql_async::Conn;

use crate::checksum::{checksums_json, ChecksumQuery, TableChecksums};
use crate::ddl::{self, quote_identifier, quote_pair};
use crate::encode::{encode_row, FieldRule};
use crate::json::{Json, Obj};
use crate::names::Basenames;
use crate::server::{exec, first_row, for_each_row, is_bit, is_string_type, lit, number, rows, text};
use crate::sink::{DataFile, Written};
use crate::{Error, ShellDumpOptions};

/// Schemas a dumpInstance leaves out.
const SYSTEM_SCHEMAS: &[&str] = &["mysql", "sys", "information_schema", "performance_schema", "ndbinfo"];
/// Used when the server has no row length statistics (Shell's `k_default_row_size`).
const DEFAULT_ROW_SIZE: u64 = 256;

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Σ uncompressed data bytes (`dataBytes`).
    pub data_bytes: u64,
    /// (schema, table) → rows written (`tableRows`).
    pub table_rows: BTreeMap<(String, String), u64>,
    /// Data file name → uncompressed bytes (`chunkFileBytes`).
    pub chunk_file_bytes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
struct ColumnInfo {
    name: String,
    data_type: String,
    nullable: bool,
    generated: bool,
}

impl ColumnInfo {
    /// Shell's `csv_unsafe`: selected through TO_BASE64 and decoded with FROM_BASE64.
    fn csv_unsafe(&self) -> bool {
        let t = self.data_type.to_ascii_lowercase();
        t.ends_with("binary")
            || t.ends_with("blob")
            || t == "bit"
            || matches!(
                t.as_str(),
                "geometry"
                    | "point"
                    | "linestring"
                    | "polygon"
                    | "multipoint"
                    | "multilinestring"
                    | "multipolygon"
                    | "geometrycollection"
                    | "geomcollection"
                    | "vector"
            )
    }

    fn integer(&self) -> bool {
        matches!(self.data_type.to_ascii_lowercase().as_str(), "tinyint" | "smallint" | "mediumint" | "int" | "bigint")
    }
}

#[derive(Debug, Clone)]
struct Stream {
    /// Partition name, "" for the whole table.
    partition: String,
    basename: String,
    rows: u64,
    avg_row_length: u64,
}

#[derive(Debug, Clone)]
struct TableInfo {
    name: String,
    basename: String,
    columns: Vec<ColumnInfo>,
    primary: Vec<String>,
    /// The chunking index: (columns, leading column is an integer).
    index: Option<(Vec<String>, bool)>,
    partitions: Vec<Stream>,
    whole: Stream,
    triggers: Vec<String>,
}

impl TableInfo {
    fn dump_columns(&self) -> impl Iterator<Item = &ColumnInfo> {
        self.columns.iter().filter(|c| !c.generated)
    }

    fn streams(&self) -> Vec<&Stream> {
        if self.partitions.is_empty() {
            vec![&self.whole]
        } else {
            self.partitions.iter().collect()
        }
    }
}

#[derive(Debug, Clone)]
struct SchemaInfo {
    name: String,
    basename: String,
    collation: String,
    tables: Vec<TableInfo>,
    views: Vec<(String, String)>,
    events: Vec<String>,
    functions: Vec<String>,
    procedures: Vec<String>,
}

/// Instance-wide facts for `@.json`.
#[derive(Debug, Clone, Default)]
struct Instance {
    user: String,
    server: String,
    version: String,
    header_version: String,
    mariadb: bool,
    binlog_file: String,
    binlog_position: u64,
    gtid_executed: String,
}

/// Writes a MySQL Shell dump of `conn`'s server into `out` (created if missing, must be
/// empty). The connection's session is changed (names, time zone, sql_mode, a transaction).
pub async fn write_shell_dump(conn: &mut Conn, out: &Path, options: &ShellDumpOptions) -> Result<Summary, Error> {
    std::fs::create_dir_all(out).map_err(|e| io_error(out, e))?;
    let writer = Writer { dir: out, options, instance_dump: options.schemas.is_empty() };
    writer.run(conn).await
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), source }
}

struct Writer<'a> {
    dir: &'a Path,
    options: &'a ShellDumpOptions,
    instance_dump: bool,
}

impl Writer<'_> {
    fn origin(&self) -> &'static str {
        if self.instance_dump {
            "dumpInstance"
        } else {
            "dumpSchemas"
        }
    }

    fn write(&self, name: &str, content: &[u8]) -> Result<(), Error> {
        let path = self.dir.join(name);
        std::fs::write(&path, content).map_err(|e| io_error(&path, e))
    }

    fn extension(&self) -> String {
        format!("{}{}", self.options.dialect.extension(), self.options.compression.suffix())
    }

    async fn run(&self, conn: &mut Conn) -> Result<Summary, Error> {
        // Shell's dump session (Dumper::open_session), then one snapshot for every read
        for q in
            ["SET SQL_MODE = ''", "SET NAMES 'utf8mb4'", "SET TIME_ZONE = '+00:00'", "SET SQL_QUOTE_SHOW_CREATE = 1"]
        {
            exec(conn, q).await?;
        }
        exec(conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
        exec(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT").await?;
        let begin = utc_now();
        let instance = read_instance(conn).await?;
        let mut basenames = Basenames::default();
        let schemas = self.read_schemas(conn, &mut basenames).await?;
        let users = if self.instance_dump && self.options.users { Some(read_users(conn).await?) } else { None };

        self.write("@.json", self.dump_json(&instance, &schemas, users.as_deref(), &begin).pretty().as_bytes())?;
        let header = ddl::header(&instance.header_version, None, None);
        self.write("@.sql", header.as_bytes())?;
        self.write("@.post.sql", header.as_bytes())?;
        if let Some(users) = &users {
            self.write("@.users.sql", ddl::users_sql(&header, users).as_bytes())?;
        }
        for schema in &schemas {
            self.write_schema_metadata(conn, &instance, schema).await?;
        }
        let checksum_query = if self.options.checksum {
            Some(ChecksumQuery::configure(conn, !instance.mariadb && is_mysql_8(&instance.version)).await?)
        } else {
            None
        };
        let mut summary = Summary::default();
        let mut checksums = Vec::new();
        let mut table_bytes: Vec<(String, String, u64)> = Vec::new();
        for schema in &schemas {
            for table in &schema.tables {
                let mut sums = checksum_query.as_ref().map(|_| table_checksums(&schema.name, table));
                let written = self
                    .dump_table_data(conn, schema, table, &mut summary, checksum_query.as_ref(), sums.as_mut())
                    .await?;
                summary.data_bytes += written.bytes;
                summary.table_rows.insert((schema.name.clone(), table.name.clone()), written.rows);
                table_bytes.push((schema.name.clone(), table.name.clone(), written.bytes));
                checksums.extend(sums);
            }
        }
        exec(conn, "COMMIT").await?;
        if self.options.checksum {
            self.write("@.checksums.json", checksums_json(&checksums).pretty().as_bytes())?;
        }
        if self.options.write_done {
            self.write("@.done.json", done_json(&summary, &table_bytes).pretty().as_bytes())?;
        }
        Ok(summary)
    }

    /// The options object, as if the caller had passed exactly the non-default ones.
    fn options_json(&self) -> Option<Json> {
        let o = self.options;
        let mut given: BTreeMap<&str, Json> = BTreeMap::new();
        if o.bytes_per_chunk != 64_000_000 {
            given.insert("bytesPerChunk", Json::str(o.bytes_per_chunk.to_string()));
        }
        if o.checksum {
            given.insert("checksum", Json::Bool(true));
        }
        if !o.chunking {
            given.insert("chunking", Json::Bool(false));
        }
        if o.compression != crate::Compression::Zstd {
            given.insert("compression", Json::str(o.compression.name()));
        }
        if let Some(d) = o.dialect.option_name() {
            given.insert("dialect", Json::str(d));
        }
        if self.instance_dump && !o.users {
            given.insert("users", Json::Bool(false));
        }
        (!given.is_empty()).then(|| Json::Obj(given.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
    }

    fn dump_json(
        &self,
        instance: &Instance,
        schemas: &[SchemaInfo],
        users: Option<&[ddl::UserDdl]>,
        begin: &str,
    ) -> Json {
        let mut doc = Obj::new()
            .put("dumper", Json::str(format!("mysqlsh {}", ddl::SHELL_LONG_VERSION)))
            .put("version", Json::str(ddl::DUMP_VERSION))
            .put("origin", Json::str(self.origin()));
        if let Some(options) = self.options_json() {
            doc.push("options", options);
        }
        doc.push("schemas", Json::Arr(schemas.iter().map(|s| Json::str(&s.name)).collect()));
        doc.push("basenames", Json::Obj(schemas.iter().map(|s| (s.name.clone(), Json::str(&s.basename))).collect()));
        if let Some(users) = users {
            doc.push("users", Json::Arr(users.iter().map(|u| Json::str(&u.account)).collect()));
        }
        let capabilities = if schemas.iter().flat_map(|s| &s.tables).any(|t| !t.partitions.is_empty()) {
            vec![Obj::new()
                .put("id", Json::str("partition_awareness"))
                .put(
                    "description",
                    Json::str("Partition awareness - dumper treats each partition as a separate table, improving both dump and load times."),
                )
                .put("versionRequired", Json::str("8.0.27"))
                .build()]
        } else {
            vec![]
        };
        doc.put("defaultCharacterSet", Json::str("utf8mb4"))
            .put("tzUtc", Json::Bool(true))
            .put("bytesPerChunk", Json::UInt(self.options.bytes_per_chunk))
            .put("user", Json::str(&instance.user))
            .put("hostname", Json::str(client_hostname()))
            .put("server", Json::str(&instance.server))
            .put("serverVersion", Json::str(instance.version_as_shell()))
            .put("binlogFile", Json::str(&instance.binlog_file))
            .put("binlogPosition", Json::UInt(instance.binlog_position))
            .put("gtidExecuted", Json::str(&instance.gtid_executed))
            .put("gtidExecutedInconsistent", Json::Bool(false))
            .put("consistent", Json::Bool(true))
            .put("targetVersion", Json::str(ddl::SHELL_VERSION))
            .put("partialRevokes", Json::Bool(false))
            .put("compatibilityOptions", Json::Arr(vec![]))
            .put("capabilities", Json::Arr(capabilities))
            .put("checksum", Json::Bool(self.options.checksum))
            .put("begin", Json::str(begin))
            .build()
    }

    async fn read_schemas(&self, conn: &mut Conn, basenames: &mut Basenames) -> Result<Vec<SchemaInfo>, Error> {
        let names: Vec<String> = if self.instance_dump {
            let excluded: Vec<String> = SYSTEM_SCHEMAS.iter().map(|s| lit(s)).collect();
            let q = format!(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ({}) ORDER BY SCHEMA_NAME",
                excluded.join(",")
            );
            rows(conn, &q).await?.iter().map(|r| text(&r[0])).collect()
        } else {
            self.options.schemas.clone()
        };
        let mut out = Vec::new();
        for name in names {
            out.push(read_schema(conn, basenames, &name).await?);
        }
        Ok(out)
    }

    async fn write_schema_metadata(
        &self,
        conn: &mut Conn,
        instance: &Instance,
        schema: &SchemaInfo,
    ) -> Result<(), Error> {
        let s = &schema.name;
        let mut basenames: Vec<(String, Json)> =
            schema.tables.iter().map(|t| (t.name.clone(), Json::str(&t.basename))).collect();
        basenames.extend(schema.views.iter().map(|(v, b)| (v.clone(), Json::str(b))));
        let doc = Obj::new()
            .put("schema", Json::str(s))
            .put("includesDdl", Json::Bool(true))
            .put("includesViewsDdl", Json::Bool(true))
            .put("includesData", Json::Bool(true))
            .put("tables", Json::Arr(schema.tables.iter().map(|t| Json::str(&t.name)).collect()))
            .put("views", Json::Arr(schema.views.iter().map(|(v, _)| Json::str(v)).collect()))
            .put("events", Json::strs(&schema.events))
            .put("functions", Json::strs(&schema.functions))
            .put("procedures", Json::strs(&schema.procedures))
            .put("basenames", Json::Obj(basenames))
            .build();
        self.write(&format!("{}.json", schema.basename), doc.pretty().as_bytes())?;

        let header = ddl::header(&instance.header_version, Some(s), None);
        let create_db =
            text(&first_row(conn, &format!("SHOW CREATE DATABASE IF NOT EXISTS {}", quote_identifier(s))).await?[1]);
        let events = read_events(conn, schema).await?;
        let functions = read_routines(conn, s, "FUNCTION", &schema.functions).await?;
        let procedures = read_routines(conn, s, "PROCEDURE", &schema.procedures).await?;
        let sql = ddl::schema_sql(&header, s, &create_db, &schema.collation, &events, &functions, &procedures);
        self.write(&format!("{}.sql", schema.basename), sql.as_bytes())?;

        exec(conn, &format!("USE {}", quote_identifier(s))).await?;
        for (view, basename) in &schema.views {
            let header = ddl::header(&instance.header_version, Some(s), Some(view));
            let cols = rows(conn, &format!("SHOW FIELDS FROM {}", quote_pair(s, view))).await?;
            let cols: Vec<String> = cols.iter().map(|r| text(&r[0])).collect();
            self.write(&format!("{basename}.pre.sql"), ddl::view_pre_sql(&header, view, &cols).as_bytes())?;
            let create = text(&first_row(conn, &format!("SHOW CREATE TABLE {}", quote_pair(s, view))).await?[1]);
            let info = first_row(
                conn,
                &format!(
                    "SELECT CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.VIEWS WHERE TABLE_SCHEMA={} AND TABLE_NAME={}",
                    lit(s),
                    lit(view)
                ),
            )
            .await?;
            let sql = ddl::view_sql(&header, view, &create, &text(&info[0]), &text(&info[1]));
            self.write(&format!("{basename}.sql"), sql.as_bytes())?;
        }
        for table in &schema.tables {
            self.write_table_metadata(conn, instance, schema, table).await?;
        }
        Ok(())
    }

    async fn write_table_metadata(
        &self,
        conn: &mut Conn,
        instance: &Instance,
        schema: &SchemaInfo,
        table: &TableInfo,
    ) -> Result<(), Error> {
        let d = self.options.dialect;
        let columns: Vec<&ColumnInfo> = table.dump_columns().collect();
        let mut options = Obj::new()
            .put("schema", Json::str(&schema.name))
            .put("table", Json::str(&table.name))
            .put("columns", Json::Arr(columns.iter().map(|c| Json::str(&c.name)).collect()));
        let decode: Vec<(String, Json)> =
            columns.iter().filter(|c| c.csv_unsafe()).map(|c| (c.name.clone(), Json::str("FROM_BASE64"))).collect();
        if !decode.is_empty() {
            options.push("decodeColumns", Json::Obj(decode));
        }
        let options = options
            .put("defaultCharacterSet", Json::str("utf8mb4"))
            .put("fieldsTerminatedBy", Json::str((d.terminated_by() as char).to_string()))
            .put("fieldsEnclosedBy", Json::str(d.enclosed_by().map(|c| (c as char).to_string()).unwrap_or_default()))
            .put("fieldsOptionallyEnclosed", Json::Bool(d.optionally_enclosed()))
            .put("fieldsEscapedBy", Json::str((d.escaped_by() as char).to_string()))
            .put("linesTerminatedBy", Json::str(String::from_utf8_lossy(d.lines_terminated_by())))
            .build();
        let doc = Obj::new()
            .put("options", options)
            .put("triggers", Json::strs(&table.triggers))
            .put("includesData", Json::Bool(!columns.is_empty()))
            .put("includesDdl", Json::Bool(true))
            .put("extension", Json::str(self.extension()))
            .put("chunking", Json::Bool(self.options.chunking))
            .put("compression", Json::str(self.options.compression.name()))
            .put("primaryIndex", Json::strs(&table.primary))
            .put("partitions", Json::Arr(table.partitions.iter().map(|p| Json::str(&p.partition)).collect()))
            .put(
                "basenames",
                Json::Obj(table.partitions.iter().map(|p| (p.partition.clone(), Json::str(&p.basename))).collect()),
            )
            .build();
        self.write(&format!("{}.json", table.basename), doc.pretty().as_bytes())?;

        let s = &schema.name;
        let header = ddl::header(&instance.header_version, Some(s), Some(&table.name));
        let create = text(&first_row(conn, &format!("SHOW CREATE TABLE {}", quote_pair(s, &table.name))).await?[1]);
        self.write(&format!("{}.sql", table.basename), ddl::table_sql(&header, &table.name, &create).as_bytes())?;
        if !table.triggers.is_empty() {
            let mut triggers = Vec::new();
            for name in &table.triggers {
                let r = first_row(conn, &format!("SHOW CREATE TRIGGER {}", quote_pair(s, name))).await?;
                triggers.push(ddl::TriggerDdl {
                    name: name.clone(),
                    create: text(&r[2]),
                    context: context(&r[1], &r[3], &r[4], &r[5]),
                });
            }
            let sql = ddl::triggers_sql(&header, s, &table.name, &schema.collation, &triggers);
            self.write(&format!("{}.triggers.sql", table.basename), sql.as_bytes())?;
        }
        Ok(())
    }

    /// Writes every data file of one table; returns its bytes and rows.
    async fn dump_table_data(
        &self,
        conn: &mut Conn,
        schema: &SchemaInfo,
        table: &TableInfo,
        summary: &mut Summary,
        checksum: Option<&ChecksumQuery>,
        mut sums: Option<&mut TableChecksums>,
    ) -> Result<Written, Error> {
        let mut total = Written::default();
        if table.dump_columns().next().is_none() {
            return Ok(total);
        }
        for stream in table.streams() {
            let tasks = self.plan(conn, schema, table, stream).await?;
            for task in tasks {
                let w = self.run_task(conn, schema, table, stream, &task, summary).await?;
                total.bytes += w.bytes;
                total.rows += w.rows;
                if let (Some(q), Some(sums)) = (checksum, sums.as_deref_mut()) {
                    sums.compute(conn, q, &stream.partition, task.checksum_id, &task.boundary).await?;
                }
            }
        }
        Ok(total)
    }

    /// Splits one stream into data tasks as `create_ranged_tasks` does.
    async fn plan(
        &self,
        conn: &mut Conn,
        schema: &SchemaInfo,
        table: &TableInfo,
        stream: &Stream,
    ) -> Result<Vec<Task>, Error> {
        if !self.options.chunking {
            return Ok(vec![Task {
                file: None,
                last: true,
                boundary: String::new(),
                checksum_id: -1,
                split_by_bytes: false,
            }]);
        }
        let Some((index, integer)) = &table.index else {
            return Ok(vec![Task {
                file: Some(0),
                last: false,
                boundary: String::new(),
                checksum_id: -1,
                split_by_bytes: true,
            }]);
        };
        let from = from_clause(&schema.name, &table.name, &stream.partition);
        let cols: Vec<String> = index.iter().map(|c| quote_identifier(c)).collect();
        let cols = cols.join(",");
        let asc = rows(conn, &format!("SELECT SQL_NO_CACHE {cols} FROM {from} ORDER BY {cols} LIMIT 1")).await?;
        let desc_order: Vec<String> = index.iter().map(|c| format!("{} DESC", quote_identifier(c))).collect();
        let desc =
            rows(conn, &format!("SELECT SQL_NO_CACHE {cols} FROM {from} ORDER BY {} LIMIT 1", desc_order.join(",")))
                .await?;
        let (Some(first), Some(last)) = (asc.into_iter().next(), desc.into_iter().next()) else {
            return Ok(vec![Task {
                file: Some(0),
                last: true,
                boundary: String::new(),
                checksum_id: 0,
                split_by_bytes: false,
            }]);
        };
        let avg = if stream.avg_row_length == 0 { DEFAULT_ROW_SIZE } else { stream.avg_row_length };
        let rows_per_chunk = self.options.bytes_per_chunk / avg;
        let boundaries = if *integer {
            integer_ranges(&index[0], &text(&first[0]), &text(&last[0]), stream.rows, rows_per_chunk)?
        } else {
            self.non_integer_ranges(conn, &from, index, first, last, rows_per_chunk).await?
        };
        let n = boundaries.len();
        Ok(boundaries
            .into_iter()
            .enumerate()
            .map(|(i, boundary)| Task {
                file: Some(i),
                last: i + 1 == n,
                boundary,
                checksum_id: i as i64,
                split_by_bytes: false,
            })
            .collect())
    }

    /// `chunk_non_integer_column`: walk the index `rows_per_chunk` rows at a time.
    async fn non_integer_ranges(
        &self,
        conn: &mut Conn,
        from: &str,
        index: &[String],
        first: Vec<crate::server::Cell>,
        end: Vec<crate::server::Cell>,
        rows_per_chunk: u64,
    ) -> Result<Vec<String>, Error> {
        let cols: Vec<String> = index.iter().map(|c| quote_identifier(c)).collect();
        let cols = cols.join(",");
        let skip = rows_per_chunk.max(1) - 1;
        let mut begin = first;
        let mut out = Vec::new();
        loop {
            let q = format!(
                "SELECT SQL_NO_CACHE {cols} FROM {from} WHERE {} ORDER BY {cols} LIMIT {skip},2",
                compare(index, &begin, ">")
            );
            let mut found = rows(conn, &q).await?.into_iter();
            let range_end = found.next().unwrap_or_else(|| end.clone());
            out.push(format!("{}AND{}", compare(index, &begin, ">"), compare(index, &range_end, "<")));
            if range_end == end {
                return Ok(out);
            }
            match found.next() {
                Some(next) => begin = next,
                None => return Ok(out),
            }
        }
    }

    async fn run_task(
        &self,
        conn: &mut Conn,
        schema: &SchemaInfo,
        table: &TableInfo,
        stream: &Stream,
        task: &Task,
        summary: &mut Summary,
    ) -> Result<Written, Error> {
        let columns: Vec<&ColumnInfo> = table.dump_columns().collect();
        let select: Vec<String> = columns
            .iter()
            .map(|c| {
                if c.csv_unsafe() {
                    format!("TO_BASE64({})", quote_identifier(&c.name))
                } else {
                    quote_identifier(&c.name)
                }
            })
            .collect();
        let mut q = format!(
            "SELECT SQL_NO_CACHE {} FROM {}",
            select.join(","),
            from_clause(&schema.name, &table.name, &stream.partition)
        );
        if !task.boundary.is_empty() {
            q.push_str(&format!(" WHERE {}", task.boundary));
        }
        if let (Some((index, _)), false) = (&table.index, task.split_by_bytes) {
            let order: Vec<String> = index.iter().map(|c| quote_identifier(c)).collect();
            q.push_str(&format!(" ORDER BY {}", order.join(",")));
        }
        q.push_str(&format!(
            " /* mysqlsh {}, dumping table {}, ID: chunk {} */",
            self.origin(),
            quote_pair(&schema.name, &table.name),
            task.checksum_id
        ));
        let base64: Vec<bool> = columns.iter().map(|c| c.csv_unsafe()).collect();
        let mut state = TaskState {
            writer: self,
            basename: &stream.basename,
            task,
            file: None,
            number: task.file,
            total: Written::default(),
            summary,
        };
        let mut rules: Option<Vec<FieldRule>> = None;
        let mut buf = Vec::new();
        let dialect = self.options.dialect;
        for_each_row(conn, &q, |cols, cells| {
            let rules = rules.get_or_insert_with(|| {
                cols.iter()
                    .zip(&base64)
                    .map(|(c, b)| FieldRule::new(is_string_type(c), !is_string_type(c) && !is_bit(c), *b))
                    .collect()
            });
            buf.clear();
            let values: Vec<Option<&[u8]>> = cells.iter().map(|c| c.as_deref()).collect();
            encode_row(dialect, rules, &values, &mut buf);
            state.row(&buf)
        })
        .await?;
        state.finish()
    }
}

/// One data task: one file, or (unindexed tables) a run of files cut by size.
#[derive(Debug, Clone)]
struct Task {
    /// Chunk number of the (first) file; None: the unchunked `B.E`.
    file: Option<usize>,
    last: bool,
    boundary: String,
    checksum_id: i64,
    split_by_bytes: bool,
}

/// The open file of a task and what it has written.
struct TaskState<'a, 'b> {
    writer: &'a Writer<'a>,
    basename: &'a str,
    task: &'a Task,
    file: Option<(String, DataFile)>,
    number: Option<usize>,
    total: Written,
    summary: &'b mut Summary,
}

impl TaskState<'_, '_> {
    fn file_name(&self, number: Option<usize>, last: bool) -> String {
        let ext = self.writer.extension();
        match number {
            None => format!("{}.{ext}", self.basename),
            Some(n) if last => format!("{}@@{n}.{ext}", self.basename),
            Some(n) => format!("{}@{n}.{ext}", self.basename),
        }
    }

    fn open(&mut self) -> Result<(), Error> {
        if self.file.is_none() {
            let name = self.file_name(self.number, self.task.last);
            let f = DataFile::create(self.writer.dir, &name, self.writer.options.compression)
                .map_err(|e| io_error(&self.writer.dir.join(&name), e))?;
            self.file = Some((name, f));
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), Error> {
        if let Some((name, f)) = self.file.take() {
            let w = f.finish().map_err(|e| io_error(&self.writer.dir.join(&name), e))?;
            self.total.bytes += w.bytes;
            self.total.rows += w.rows;
            self.summary.chunk_file_bytes.insert(name, w.bytes);
            self.number = self.number.map(|n| n + 1);
        }
        Ok(())
    }

    fn row(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.open()?;
        if let Some((name, f)) = self.file.as_mut() {
            f.row(bytes).map_err(|e| io_error(&self.writer.dir.join(name.as_str()), e))?;
            // unindexed tables: a file is closed once it reaches bytesPerChunk (dumper.cc:670)
            if self.task.split_by_bytes && f.bytes() >= self.writer.options.bytes_per_chunk {
                self.close()?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Written, Error> {
        if self.task.split_by_bytes {
            // the open file (or an empty one if the table is empty) is closed, then an
            // always-empty last chunk follows
            if self.file.is_some() || self.total.rows == 0 {
                self.open()?;
                self.close()?;
            }
            let name = self.file_name(self.number, true);
            let f = DataFile::create(self.writer.dir, &name, self.writer.options.compression)
                .map_err(|e| io_error(&self.writer.dir.join(&name), e))?;
            self.file = Some((name, f));
            self.close()?;
        } else {
            self.open()?;
            self.close()?;
        }
        Ok(self.total)
    }
}

fn from_clause(schema: &str, table: &str, partition: &str) -> String {
    if partition.is_empty() {
        quote_pair(schema, table)
    } else {
        format!("{} PARTITION ({})", quote_pair(schema, table), quote_identifier(partition))
    }
}

/// `chunk_integer_column` with its constant step: `rows / rows_per_chunk` ranges over
/// `[min, max]`, the last one ending at max. Boundaries are `` `c` BETWEEN a AND b `` or
/// `` `c`=a ``, as Shell 8.4 writes them.
fn integer_ranges(
    column: &str,
    min: &str,
    max: &str,
    row_count: u64,
    rows_per_chunk: u64,
) -> Result<Vec<String>, Error> {
    let parse = |s: &str| s.trim().parse::<i128>().map_err(|_| Error::Server(format!("not an integer key value: {s}")));
    let (min, max) = (parse(min)?, parse(max)?);
    let estimated_chunks = row_count.checked_div(rows_per_chunk).map_or(row_count, |n| n.max(1)).max(1);
    let range = max - min + 1;
    let step = (range / estimated_chunks as i128).max(1);
    let q = quote_identifier(column);
    let mut out = Vec::new();
    let mut current = min;
    loop {
        let begin = current;
        current = if current > max - (step - 1) { max } else { current + step - 1 };
        out.push(if begin == current { format!("{q}={begin}") } else { format!("{q} BETWEEN {begin} AND {current}") });
        if current >= max {
            return Ok(out);
        }
        current += 1;
    }
}

/// Shell's `compare`: `(`a`>v OR(`a`=v AND(`b`>=w)))` over the index columns.
fn compare(index: &[String], values: &[crate::server::Cell], op: &str) -> String {
    let quoted = |i: usize| quote_value(values.get(i).and_then(|v| v.as_deref()));
    let last = index.len() - 1;
    let mut result = format!("{}{op}={}", quote_identifier(&index[last]), quoted(last));
    for i in (0..last).rev() {
        let c = quote_identifier(&index[i]);
        let v = quoted(i);
        result = format!("{c}{op}{v} OR({c}={v} AND({result}))");
    }
    format!("({result})")
}

/// A key value for a boundary: text as an escaped literal, other bytes as hex.
fn quote_value(v: Option<&[u8]>) -> String {
    match v {
        None => "NULL".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => lit(s),
            Err(_) => format!("X'{}'", b.iter().map(|x| format!("{x:02X}")).collect::<String>()),
        },
    }
}

fn table_checksums(schema: &str, table: &TableInfo) -> TableChecksums {
    let columns: Vec<&ColumnInfo> = table.dump_columns().collect();
    TableChecksums {
        schema: schema.to_string(),
        table: table.name.clone(),
        columns: columns.iter().map(|c| c.name.clone()).collect(),
        index_columns: table.index.as_ref().map(|(c, _)| c.clone()).unwrap_or_default(),
        null_columns: columns.iter().filter(|c| c.nullable).map(|c| c.name.clone()).collect(),
        partitions: Vec::new(),
    }
}

fn done_json(summary: &Summary, table_bytes: &[(String, String, u64)]) -> Json {
    let mut bytes: Vec<(String, Json)> = Vec::new();
    let mut rows: Vec<(String, Json)> = Vec::new();
    for (schema, table, b) in table_bytes {
        let r = summary.table_rows.get(&(schema.clone(), table.clone())).copied().unwrap_or(0);
        push_nested(&mut bytes, schema, table, *b);
        push_nested(&mut rows, schema, table, r);
    }
    Obj::new()
        .put("end", Json::str(utc_now()))
        .put("dataBytes", Json::UInt(summary.data_bytes))
        .put("tableDataBytes", Json::Obj(bytes))
        .put("tableRows", Json::Obj(rows))
        .put(
            "chunkFileBytes",
            Json::Obj(summary.chunk_file_bytes.iter().map(|(k, v)| (k.clone(), Json::UInt(*v))).collect()),
        )
        .build()
}

fn push_nested(map: &mut Vec<(String, Json)>, schema: &str, table: &str, value: u64) {
    let entry = (table.to_string(), Json::UInt(value));
    match map.iter_mut().find(|(s, _)| s == schema) {
        Some((_, Json::Obj(members))) => members.push(entry),
        _ => map.push((schema.to_string(), Json::Obj(vec![entry]))),
    }
}

fn context(
    sql_mode: &crate::server::Cell,
    client: &crate::server::Cell,
    conn: &crate::server::Cell,
    db: &crate::server::Cell,
) -> ddl::ObjectContext {
    ddl::ObjectContext {
        sql_mode: text(sql_mode),
        character_set_client: text(client),
        collation_connection: text(conn),
        database_collation: text(db),
    }
}

async fn read_events(conn: &mut Conn, schema: &SchemaInfo) -> Result<Vec<ddl::EventDdl>, Error> {
    let mut out = Vec::new();
    for name in &schema.events {
        let r = first_row(conn, &format!("SHOW CREATE EVENT {}", quote_pair(&schema.name, name))).await?;
        out.push(ddl::EventDdl {
            name: name.clone(),
            time_zone: text(&r[2]),
            create: text(&r[3]),
            context: context(&r[1], &r[4], &r[5], &r[6]),
        });
    }
    Ok(out)
}

async fn read_routines(
    conn: &mut Conn,
    schema: &str,
    kind: &str,
    names: &[String],
) -> Result<Vec<ddl::RoutineDdl>, Error> {
    let mut out = Vec::new();
    for name in names {
        let r = first_row(conn, &format!("SHOW CREATE {kind} {}", quote_pair(schema, name))).await?;
        out.push(ddl::RoutineDdl {
            name: name.clone(),
            create: text(&r[2]),
            context: context(&r[1], &r[3], &r[4], &r[5]),
        });
    }
    Ok(out)
}

async fn read_schema(conn: &mut Conn, basenames: &mut Basenames, name: &str) -> Result<SchemaInfo, Error> {
    let s = lit(name);
    let collation = text(
        &first_row(
            conn,
            &format!("SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME={s}"),
        )
        .await?[0],
    );
    let listed = rows(
        conn,
        &format!("SELECT TABLE_NAME, TABLE_TYPE, TABLE_ROWS, AVG_ROW_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA={s} ORDER BY TABLE_NAME"),
    )
    .await?;
    let mut tables = Vec::new();
    let mut views = Vec::new();
    let schema_basename = basenames.schema(name);
    for r in listed {
        let table = text(&r[0]);
        match text(&r[1]).as_str() {
            "VIEW" => views.push(table),
            "BASE TABLE" | "SYSTEM VERSIONED" => {
                let whole = Stream {
                    partition: String::new(),
                    basename: String::new(),
                    rows: number(&r[2]),
                    avg_row_length: number(&r[3]),
                };
                tables.push(read_table(conn, basenames, name, &table, whole).await?);
            }
            _ => {}
        }
    }
    let views = views.into_iter().map(|v| (v.clone(), basenames.table(name, &v))).collect();
    let list = |kind: &str| {
        format!("SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA={s} AND ROUTINE_TYPE='{kind}' ORDER BY ROUTINE_NAME")
    };
    let functions = rows(conn, &list("FUNCTION")).await?.iter().map(|r| text(&r[0])).collect();
    let procedures = rows(conn, &list("PROCEDURE")).await?.iter().map(|r| text(&r[0])).collect();
    let events = rows(
        conn,
        &format!("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA={s} ORDER BY EVENT_NAME"),
    )
    .await?
    .iter()
    .map(|r| text(&r[0]))
    .collect();
    Ok(SchemaInfo {
        name: name.to_string(),
        basename: schema_basename,
        collation,
        tables,
        views,
        events,
        functions,
        procedures,
    })
}

async fn read_table(
    conn: &mut Conn,
    basenames: &mut Basenames,
    schema: &str,
    table: &str,
    mut whole: Stream,
) -> Result<TableInfo, Error> {
    let (s, t) = (lit(schema), lit(table));
    let cols = rows(
        conn,
        &format!(
            "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA={s} AND TABLE_NAME={t} ORDER BY ORDINAL_POSITION"
        ),
    )
    .await?;
    let columns: Vec<ColumnInfo> = cols
        .iter()
        .map(|r| ColumnInfo {
            name: text(&r[0]),
            data_type: text(&r[1]),
            nullable: text(&r[2]) == "YES",
            generated: text(&r[3]).to_ascii_uppercase().contains("GENERATED"),
        })
        .collect();
    let keys = rows(
        conn,
        &format!(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS WHERE TABLE_SCHEMA={s} AND TABLE_NAME={t} ORDER BY INDEX_NAME, SEQ_IN_INDEX"
        ),
    )
    .await?;
    let (primary, index) = choose_index(&columns, &keys);
    let basename = basenames.table(schema, table);
    whole.basename = basename.clone();
    let parts = rows(
        conn,
        &format!(
            "SELECT PARTITION_NAME, SUBPARTITION_NAME, TABLE_ROWS, AVG_ROW_LENGTH FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA={s} AND TABLE_NAME={t} AND PARTITION_NAME IS NOT NULL ORDER BY PARTITION_ORDINAL_POSITION, SUBPARTITION_ORDINAL_POSITION"
        ),
    )
    .await?;
    let partitions = parts
        .iter()
        .map(|r| {
            let leaf = if r[1].is_some() { text(&r[1]) } else { text(&r[0]) };
            let basename = basenames.partition(schema, table, &leaf);
            Stream { partition: leaf, basename, rows: number(&r[2]), avg_row_length: number(&r[3]) }
        })
        .collect();
    let triggers = rows(
        conn,
        &format!("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA={s} AND EVENT_OBJECT_TABLE={t} ORDER BY ACTION_ORDER"),
    )
    .await?
    .iter()
    .map(|r| text(&r[0]))
    .collect();
    Ok(TableInfo { name: table.to_string(), basename, columns, primary, index, partitions, whole, triggers })
}

/// `select_index`: the PRIMARY KEY, else the unique key with all columns NOT NULL, fewest
/// columns first, integer leading column preferred; keys with ENUM columns or prefix parts
/// are never used. Returns (primary key columns, chunking index).
fn choose_index(
    columns: &[ColumnInfo],
    keys: &[Vec<crate::server::Cell>],
) -> (Vec<String>, Option<(Vec<String>, bool)>) {
    let mut by_name: Vec<(String, bool, Vec<String>, bool)> = Vec::new();
    for r in keys {
        let (name, unique, column, prefix) = (text(&r[0]), text(&r[1]) == "0", text(&r[2]), r[3].is_some());
        match by_name.iter_mut().find(|(n, ..)| *n == name) {
            Some(entry) => {
                entry.2.push(column);
                entry.3 |= prefix;
            }
            None => by_name.push((name, unique, vec![column], prefix)),
        }
    }
    let info = |c: &str| columns.iter().find(|x| x.name == c);
    let primary = by_name.iter().find(|(n, ..)| n == "PRIMARY").map(|(_, _, c, _)| c.clone()).unwrap_or_default();
    let usable = |cols: &[String]| {
        cols.iter().all(|c| info(c).is_some_and(|i| !i.nullable && !i.data_type.eq_ignore_ascii_case("enum")))
    };
    let leading_integer = |cols: &[String]| cols.first().and_then(|c| info(c)).is_some_and(ColumnInfo::integer);
    let chosen = if !primary.is_empty() && usable(&primary) {
        Some(primary.clone())
    } else {
        by_name
            .iter()
            .filter(|(n, unique, cols, prefix)| n != "PRIMARY" && *unique && !*prefix && usable(cols))
            .min_by_key(|(_, _, cols, _)| (cols.len(), !leading_integer(cols)))
            .map(|(_, _, cols, _)| cols.clone())
    };
    (
        primary,
        chosen.map(|cols| {
            let integer = leading_integer(&cols);
            (cols, integer)
        }),
    )
}

async fn read_instance(conn: &mut Conn) -> Result<Instance, Error> {
    let r = first_row(
        conn,
        "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1), @@GLOBAL.HOSTNAME, @@GLOBAL.VERSION, @@GLOBAL.log_bin",
    )
    .await?;
    let version = text(&r[2]);
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    let log_bin = text(&r[3]) == "1";
    let (binlog_file, binlog_position) = if log_bin { read_binlog(conn, mariadb).await? } else { (String::new(), 0) };
    // MariaDB has no GTID_EXECUTED: Shell's query fails and it records ""
    let gtid_executed =
        if mariadb { String::new() } else { text(&first_row(conn, "SELECT @@GLOBAL.GTID_EXECUTED").await?[0]) };
    let header_version = if mariadb {
        // MariaDB's handshake announces "5.5.5-<version>", which libmysqlclient reports
        "5.5.5".to_string()
    } else {
        version.split('-').next().unwrap_or(&version).to_string()
    };
    Ok(Instance {
        user: text(&r[0]),
        server: text(&r[1]),
        version,
        header_version,
        mariadb,
        binlog_file,
        binlog_position,
        gtid_executed,
    })
}

/// The binlog position of the snapshot. MariaDB reports it for the consistent snapshot
/// itself (`binlog_snapshot_*`), which is what Shell's lock + SHOW MASTER STATUS yields.
async fn read_binlog(conn: &mut Conn, mariadb: bool) -> Result<(String, u64), Error> {
    if mariadb {
        let status = rows(conn, "SHOW STATUS LIKE 'binlog_snapshot_%'").await?;
        let get = |k: &str| {
            status.iter().find(|r| text(&r[0]).eq_ignore_ascii_case(k)).map(|r| text(&r[1])).unwrap_or_default()
        };
        return Ok((get("binlog_snapshot_file"), get("binlog_snapshot_position").parse().unwrap_or(0)));
    }
    let status = rows(conn, "SHOW MASTER STATUS").await?;
    Ok(status.first().map(|r| (text(&r[0]), number(&r[1]))).unwrap_or_default())
}

impl Instance {
    /// `serverVersion`: MariaDB is disguised as "5.6.0-<real>" by Shell.
    fn version_as_shell(&self) -> String {
        if self.mariadb {
            format!("5.6.0-{}", self.version)
        } else {
            self.version.clone()
        }
    }
}

fn is_mysql_8(version: &str) -> bool {
    version.split('.').next().and_then(|m| m.parse::<u32>().ok()).is_some_and(|m| m >= 8)
}

/// Accounts for `@.users.sql`. Left out: mariadb.sys and root (server-owned), roles (no
/// SHOW CREATE USER), and names with `'`, which Shell refuses to dump.
async fn read_users(conn: &mut Conn) -> Result<Vec<ddl::UserDdl>, Error> {
    let list = rows(conn, "SELECT User, Host FROM mysql.user WHERE is_role <> 'Y' ORDER BY User, Host").await?;
    let mut out = Vec::new();
    for r in list {
        let (user, host) = (text(&r[0]), text(&r[1]));
        if matches!(user.as_str(), "mariadb.sys" | "root" | "mysql.sys" | "mysql.session" | "mysql.infoschema")
            || user.contains('\'')
        {
            continue;
        }
        let account = ddl::make_account(&user, &host);
        let create_user = text(&first_row(conn, &format!("SHOW CREATE USER {account}")).await?[0]);
        let grants = rows(conn, &format!("SHOW GRANTS FOR {account}")).await?.iter().map(|g| text(&g[0])).collect();
        out.push(ddl::UserDdl { account, create_user, grants });
    }
    Ok(out)
}

/// The client's host name (Shell's `Net::get_hostname`).
fn client_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Current UTC time as `YYYY-MM-DD HH:MM:SS`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format_utc(secs)
}

/// `YYYY-MM-DD HH:MM:SS`, as MySQL Shell writes times: floodgate's RFC 3339 without `T`/`Z`.
fn format_utc(secs: u64) -> String {
    floodgate_format::native::rfc3339(secs).replace('T', " ").replace('Z', "")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn utc_format() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(1_709_210_096), "2024-02-29 12:34:56");
    }

    #[test]
    fn integer_ranges_constant_step() {
        let r = integer_ranges("id", "1", "2000", 2000, 100).unwrap();
        assert_eq!(r.len(), 20);
        assert_eq!(r[0], "`id` BETWEEN 1 AND 100");
        assert_eq!(r[19], "`id` BETWEEN 1901 AND 2000");
        assert_eq!(integer_ranges("id", "5", "5", 1, 100).unwrap(), vec!["`id`=5"]);
    }

    #[test]
    fn compare_nests_like_shell() {
        let idx = vec!["a".to_string(), "b".to_string()];
        let v = vec![Some(b"x".to_vec()), Some(b"2".to_vec())];
        assert_eq!(compare(&idx, &v, ">"), "(`a`>'x' OR(`a`='x' AND(`b`>='2')))");
    }
}
