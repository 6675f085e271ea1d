//! `@.checksums.json`: Shell's bit_xor-of-sha256 checksum per data task, computed in the
//! dump's snapshot (modules/util/common/dump/checksums.cc).

use mysql_async::Conn;

use crate::ddl::quote_identifier;
use crate::json::{Json, Obj};
use crate::server::{exec, first_row, text};
use crate::Error;

const SHA_BITS: usize = 256;

/// The select expression, decided once per dump as Shell's `Checksums::configure` does.
#[derive(Debug, Clone)]
pub struct ChecksumQuery {
    /// `{}` stands for the `sha2(concat_ws(...))` generator.
    template: String,
    /// Run before every checksum query (the slice form resets `@h`).
    extra: Vec<String>,
}

fn generator(values: &[String]) -> String {
    format!("sha2(concat_ws('#',{}),{SHA_BITS})", values.join(","))
}

impl ChecksumQuery {
    /// MySQL 8.0+ XORs binary strings directly; every other server, MariaDB included (Shell
    /// sees it as "5.6.0"), XORs the hash in 64-bit slices through `conv()`. The slice
    /// whose `@h:=` assignment is evaluated first is found by trial, as Shell does.
    pub async fn configure(conn: &mut Conn, mysql_8: bool) -> Result<ChecksumQuery, Error> {
        if mysql_8 {
            return Ok(ChecksumQuery { template: "hex(bit_xor(unhex({})))".into(), extra: vec![] });
        }
        let values = vec!["'s'".to_string()];
        let expected = text(&first_row(conn, &format!("select {}", generator(&values))).await?[0]);
        let characters = SHA_BITS / 4;
        let slices = characters.div_ceil(16);
        let extra = vec!["set @h:=''".to_string()];
        for assign in 0..slices {
            let template = slice_template(characters, slices, assign);
            let candidate = ChecksumQuery { template, extra: extra.clone() };
            for q in &candidate.extra {
                exec(conn, q).await?;
            }
            let actual = text(&first_row(conn, &format!("select {}", candidate.expr(&values))).await?[0]);
            if actual.eq_ignore_ascii_case(&expected) {
                return Ok(candidate);
            }
        }
        Err(Error::Server("couldn't prepare the checksum query".into()))
    }

    fn expr(&self, values: &[String]) -> String {
        self.template.replace("{}", &generator(values))
    }
}

/// `concat(lpad(hex(bit_xor(cast(conv(substring(@h,1,16),16,10) as unsigned))),16,'0'),…)`
/// with `@h:={}` in slice `assign`.
fn slice_template(characters: usize, slices: usize, assign: usize) -> String {
    let mut parts = Vec::with_capacity(slices);
    let mut start = 1;
    for i in 0..slices {
        let length = (characters + 1 - start).min(16);
        let var = if i == assign { "@h:={}" } else { "@h" };
        parts.push(format!(
            "lpad(hex(bit_xor(cast(conv(substring({var},{start},{length}),16,10) as unsigned))),{length},'0')"
        ));
        start += 16;
    }
    format!("concat({})", parts.join(","))
}

/// One table's checksum inputs and results.
#[derive(Debug, Clone)]
pub struct TableChecksums {
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    pub index_columns: Vec<String>,
    pub null_columns: Vec<String>,
    /// partition ("" when not partitioned) → chunk id (-1: one task) → result.
    pub partitions: Vec<(String, Vec<(i64, ChunkChecksum)>)>,
}

#[derive(Debug, Clone)]
pub struct ChunkChecksum {
    pub checksum: String,
    pub count: u64,
    pub boundary: String,
}

impl TableChecksums {
    fn select_expr(&self, q: &ChecksumQuery) -> String {
        let mut values: Vec<String> =
            self.columns.iter().map(|c| format!("convert({} using binary)", quote_identifier(c))).collect();
        if !self.null_columns.is_empty() {
            // concat_ws() skips NULLs: a bit field tells (NULL,'x') from ('x',NULL)
            let flags: Vec<String> =
                self.null_columns.iter().map(|c| format!("isnull({})", quote_identifier(c))).collect();
            values.push(format!("concat({})", flags.join(",")));
        }
        q.expr(&values)
    }

    /// Computes one chunk's checksum and records it.
    pub async fn compute(
        &mut self,
        conn: &mut Conn,
        q: &ChecksumQuery,
        partition: &str,
        chunk: i64,
        boundary: &str,
    ) -> Result<(), Error> {
        let mut sql = format!(
            "SELECT count(*),{} FROM {}.{}",
            self.select_expr(q),
            quote_identifier(&self.schema),
            quote_identifier(&self.table)
        );
        if !partition.is_empty() {
            sql.push_str(&format!(" PARTITION ({})", quote_identifier(partition)));
        }
        if !boundary.is_empty() {
            sql.push_str(&format!(" WHERE {boundary}"));
        }
        if !self.index_columns.is_empty() {
            let order: Vec<String> = self.index_columns.iter().map(|c| quote_identifier(c)).collect();
            sql.push_str(&format!(" ORDER BY {}", order.join(",")));
        }
        exec(conn, "SET @saved_character_set_connection = @@character_set_connection").await?;
        exec(conn, "SET @@character_set_connection = ascii").await?;
        for extra in &q.extra {
            exec(conn, extra).await?;
        }
        let row = first_row(conn, &sql).await;
        exec(conn, "SET @@character_set_connection = @saved_character_set_connection").await?;
        let row = row?;
        let count = text(&row[0]).parse().unwrap_or(0);
        let checksum = text(&row[1]).to_uppercase();
        let result = ChunkChecksum { checksum, count, boundary: boundary.to_string() };
        match self.partitions.iter_mut().find(|(p, _)| p == partition) {
            Some((_, chunks)) => chunks.push((chunk, result)),
            None => self.partitions.push((partition.to_string(), vec![(chunk, result)])),
        }
        Ok(())
    }

    fn to_json(&self) -> Json {
        let mut t = Obj::new().put("columns", Json::strs(&self.columns));
        if !self.index_columns.is_empty() {
            t.push("indexColumns", Json::strs(&self.index_columns));
        }
        if !self.null_columns.is_empty() {
            t.push("nullColumns", Json::strs(&self.null_columns));
        }
        let mut partitions = Obj::new();
        for (name, chunks) in &self.partitions {
            let mut sorted = chunks.clone();
            sorted.sort_by_key(|(id, _)| *id);
            let mut c = Obj::new();
            for (id, r) in sorted {
                let mut o = Obj::new().put("checksum", Json::str(&r.checksum)).put("count", Json::UInt(r.count));
                if !r.boundary.is_empty() {
                    o.push("boundary", Json::str(&r.boundary));
                }
                c.push(&id.to_string(), o.build());
            }
            partitions.push(name, c.build());
        }
        t.put("partitions", partitions.build()).build()
    }
}

/// The whole `@.checksums.json` document.
pub fn checksums_json(tables: &[TableChecksums]) -> Json {
    let config = Obj::new()
        .put("version", Json::str("1.0.0"))
        .put("algorithm", Json::str("bit_xor"))
        .put("hash", Json::str("sha256"))
        .build();
    let mut data: Vec<(String, Json)> = Vec::new();
    for t in tables {
        let entry = (t.table.clone(), t.to_json());
        match data.iter_mut().find(|(s, _)| *s == t.schema) {
            Some((_, Json::Obj(members))) => members.push(entry),
            _ => data.push((t.schema.clone(), Json::Obj(vec![entry]))),
        }
    }
    Obj::new().put("config", config).put("data", Json::Obj(data)).build()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn slice_form_matches_shell() {
        let t = slice_template(64, 4, 0);
        assert!(
            t.starts_with("concat(lpad(hex(bit_xor(cast(conv(substring(@h:={},1,16),16,10) as unsigned))),16,'0'),")
        );
        assert!(t.ends_with("lpad(hex(bit_xor(cast(conv(substring(@h,49,16),16,10) as unsigned))),16,'0'))"));
    }
}
