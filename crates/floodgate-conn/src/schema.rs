//! floodgate's own schema on a server: the checkpoints of restores and binlog replays, and
//! the settings `--fast-target` must put back. floodgate marks the schema when it creates
//! it, and never adopts, writes into or drops a database of that name it did not mark: a
//! user's own database called `floodgate` is the user's.

use floodgate_format::ident::quote;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::{ConnError, Result};

/// The table whose presence says a schema is floodgate's.
const MARKER: &str = "floodgate_schema";

/// Tables floodgate keeps in its schema. A schema that holds only these (written by a
/// floodgate older than the marker) is floodgate's too.
const KNOWN_TABLES: [&str; 7] =
    [MARKER, "restore", "chunks", "steps", "saved_settings", "binlog_checkpoint", "binlog_batches"];

/// Who a database of the checkpoint schema's name belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// There is none.
    Absent,
    /// floodgate created it.
    Floodgate,
    /// Someone else's, holding these tables.
    Someone(Vec<String>),
}

/// The schema floodgate keeps its state in (`floodgate` unless `--checkpoint-schema`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSchema {
    name: String,
}

impl Default for CheckpointSchema {
    fn default() -> Self {
        CheckpointSchema::new(crate::server::CHECKPOINT_SCHEMA)
    }
}

impl CheckpointSchema {
    /// The schema called `name`.
    pub fn new(name: impl Into<String>) -> CheckpointSchema {
        CheckpointSchema { name: name.into() }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One of its tables, quoted for SQL: `` `floodgate`.`chunks` ``.
    pub fn table(&self, table: &str) -> String {
        format!("{}.{}", quote(&self.name), quote(table))
    }

    /// Who the database of this name belongs to.
    pub async fn owner(&self, conn: &mut Conn) -> Result<Owner> {
        let context = || format!("looking at the schema `{}`", self.name);
        let exists: Option<String> = conn
            .exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (&self.name,))
            .await
            .map_err(ConnError::sql(context()))?;
        if exists.is_none() {
            return Ok(Owner::Absent);
        }
        let tables: Vec<String> = conn
            .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1", (&self.name,))
            .await
            .map_err(ConnError::sql(context()))?;
        let marked = tables.iter().any(|t| t == MARKER);
        let only_ours = !tables.is_empty() && tables.iter().all(|t| KNOWN_TABLES.contains(&t.as_str()));
        Ok(if marked || only_ours { Owner::Floodgate } else { Owner::Someone(tables) })
    }

    /// Creates and marks the schema, or checks that the existing one is floodgate's. A
    /// database of this name that is someone else's is refused: nothing is written to it.
    pub async fn claim(&self, conn: &mut Conn) -> Result<()> {
        if let Owner::Someone(tables) = self.owner(conn).await? {
            return Err(self.foreign(&tables));
        }
        let context = || format!("creating floodgate's schema `{}`", self.name);
        conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", quote(&self.name)))
            .await
            .map_err(ConnError::sql(context()))?;
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {} (created_by VARCHAR(64) NOT NULL) ENGINE=InnoDB \
             COMMENT 'floodgate keeps its checkpoints in this schema and drops it when it is no longer needed'",
            self.table(MARKER)
        ))
        .await
        .map_err(ConnError::sql(context()))
    }

    /// Drops the schema if it is floodgate's; someone else's is left as it is.
    pub async fn drop_if_ours(&self, conn: &mut Conn) -> Result<bool> {
        if self.owner(conn).await? != Owner::Floodgate {
            return Ok(false);
        }
        conn.query_drop(format!("DROP DATABASE IF EXISTS {}", quote(&self.name)))
            .await
            .map_err(ConnError::sql(format!("dropping floodgate's schema `{}`", self.name)))?;
        Ok(true)
    }

    /// The refusal for a database of this name that is not floodgate's.
    pub fn foreign(&self, tables: &[String]) -> ConnError {
        let holds = match tables.len() {
            0 => "it is empty".to_string(),
            n => format!("it holds {n} table(s): {}", tables.iter().take(5).cloned().collect::<Vec<_>>().join(", ")),
        };
        ConnError::Refused(format!(
            "the server has a database `{}` that floodgate did not create ({holds}); floodgate keeps its \
             checkpoints in a schema of its own and will not write into or drop yours. Nothing was changed. \
             Choose another name with --checkpoint-schema NAME.",
            self.name
        ))
    }
}
