//! Typed events: the fields replay needs, parsed from one event's bytes. Layouts follow
//! MariaDB's `sql/log_event.h` and MySQL's `libbinlogevents`; offsets are relative to the
//! end of the common 19-byte header, and the body excludes the trailing CRC32.

use crate::cursor::{usize_of, Cursor};
use crate::rows::TableMap;

/// Event type codes (the byte at offset 4 of the header).
pub mod code {
    #![allow(missing_docs)]
    pub const QUERY: u8 = 2;
    pub const STOP: u8 = 3;
    pub const ROTATE: u8 = 4;
    pub const INTVAR: u8 = 5;
    pub const RAND: u8 = 13;
    pub const USER_VAR: u8 = 14;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const BEGIN_LOAD_QUERY: u8 = 17;
    pub const EXECUTE_LOAD_QUERY: u8 = 18;
    pub const TABLE_MAP: u8 = 19;
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const INCIDENT: u8 = 26;
    pub const HEARTBEAT: u8 = 27;
    pub const ROWS_QUERY: u8 = 29;
    pub const WRITE_ROWS_V2: u8 = 30;
    pub const UPDATE_ROWS_V2: u8 = 31;
    pub const DELETE_ROWS_V2: u8 = 32;
    pub const MYSQL_GTID: u8 = 33;
    pub const ANONYMOUS_GTID: u8 = 34;
    pub const PREVIOUS_GTIDS: u8 = 35;
    pub const TRANSACTION_PAYLOAD: u8 = 40;
    pub const ANNOTATE_ROWS: u8 = 160;
    pub const BINLOG_CHECKPOINT: u8 = 161;
    pub const MARIADB_GTID: u8 = 162;
    pub const GTID_LIST: u8 = 163;
    pub const START_ENCRYPTION: u8 = 164;
    pub const QUERY_COMPRESSED: u8 = 165;
    pub const WRITE_ROWS_COMPRESSED_V1: u8 = 166;
    pub const DELETE_ROWS_COMPRESSED_V2: u8 = 171;
    pub const XA_PREPARE: u8 = 172;
}

/// Length of the common header of a v4 event.
pub const HEADER_LEN: usize = 19;

/// The common header of every v4 event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Seconds since the epoch when the statement started.
    pub timestamp: u32,
    /// Event type code.
    pub type_code: u8,
    /// Originating server.
    pub server_id: u32,
    /// Whole event length, header and checksum included.
    pub size: u32,
    /// Offset of the next event (0 for artificial events).
    pub log_pos: u32,
    /// Header flags.
    pub flags: u16,
}

impl Header {
    /// Parses the first 19 bytes; None if there are fewer.
    pub fn parse(b: &[u8]) -> Option<Header> {
        let mut c = Cursor::new(b);
        Some(Header {
            timestamp: c.u32()?,
            type_code: c.u8()?,
            server_id: c.u32()?,
            size: c.u32()?,
            log_pos: c.u32()?,
            flags: c.u16()?,
        })
    }
}

/// The format description event that starts every file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatDescription {
    /// 4 for every server since MySQL 5.0.
    pub binlog_version: u16,
    /// e.g. `10.11.19-MariaDB-log`.
    pub server_version: String,
    /// Post-header length per event type (index = type code - 1).
    pub post_header: Vec<u8>,
    /// True when every later event ends in a CRC32.
    pub checksum: bool,
}

impl FormatDescription {
    /// Post-header length of `type_code` (0 if the server did not list it).
    pub fn post_header_len(&self, type_code: u8) -> usize {
        usize::from(type_code).checked_sub(1).and_then(|i| self.post_header.get(i)).map_or(0, |&n| usize::from(n))
    }

    /// Parses the body of a format description event (header stripped, checksum kept: the
    /// checksum algorithm byte sits just before it).
    pub fn parse(body_with_crc: &[u8]) -> Option<FormatDescription> {
        let mut c = Cursor::new(body_with_crc);
        let binlog_version = c.u16()?;
        let version = c.bytes(50)?;
        let server_version =
            String::from_utf8_lossy(version.split(|&b| b == 0).next().unwrap_or_default()).into_owned();
        c.skip(4)?; // create timestamp
        let header_len = c.u8()?;
        if usize::from(header_len) != HEADER_LEN || binlog_version != 4 {
            return None;
        }
        let rest = c.rest();
        // Servers that know checksums (MySQL 5.6.1+, MariaDB 5.3+) end the event with the
        // algorithm byte and a 4-byte checksum field, even when the algorithm is "off".
        let (post_header, checksum) = if knows_checksums(&server_version) {
            let alg_at = rest.len().checked_sub(5)?;
            (rest[..alg_at].to_vec(), rest[alg_at] == 1)
        } else {
            (rest.to_vec(), false)
        };
        Some(FormatDescription { binlog_version, server_version, post_header, checksum })
    }
}

fn knows_checksums(version: &str) -> bool {
    let mut parts = version.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version.contains("MariaDB") {
        v >= (5, 3, 0)
    } else {
        v >= (5, 6, 1)
    }
}

/// A transaction's global id and the server's group-commit information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gtid {
    /// MariaDB `domain-server-seq`, with `commit_id` when the transaction was group-committed.
    Mariadb {
        /// Replication domain.
        domain: u32,
        /// Originating server.
        server_id: u32,
        /// Sequence number in the domain.
        seq: u64,
        /// FL_* flags (1 standalone, 2 group commit id, 4 transactional, 32 DDL...).
        flags: u8,
        /// Transactions with the same commit id committed together.
        commit_id: Option<u64>,
    },
    /// MySQL `uuid:gno` (gno 0 for anonymous), with its logical clock.
    Mysql {
        /// Source UUID bytes.
        sid: [u8; 16],
        /// Transaction number.
        gno: u64,
        /// Sequence number of the last transaction this one may depend on.
        last_committed: Option<i64>,
        /// This transaction's logical timestamp.
        sequence_number: Option<i64>,
    },
}

/// MariaDB GTID flag: a single statement with no BEGIN/COMMIT (DDL, non-transactional).
pub const FL_STANDALONE: u8 = 1;

impl Gtid {
    /// `domain-server-seq` (MariaDB) or `uuid:gno` (MySQL), as the servers print them.
    pub fn text(&self) -> String {
        match self {
            Gtid::Mariadb { domain, server_id, seq, .. } => format!("{domain}-{server_id}-{seq}"),
            Gtid::Mysql { sid, gno, .. } => {
                let h: String = sid.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}-{}-{}-{}-{}:{gno}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
            }
        }
    }
}

/// The session context a query event carries (its status variables).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryContext {
    /// Connection id on the source (`pseudo_thread_id`, which temporary tables key on).
    pub thread_id: u32,
    /// Event time; with `micros` from MariaDB's Q_HRNOW.
    pub timestamp: u32,
    /// Microseconds of the timestamp.
    pub micros: Option<u32>,
    /// Session option bits (foreign_key_checks, unique_checks, sql_auto_is_null).
    pub flags2: Option<u32>,
    /// `sql_mode` as a number.
    pub sql_mode: Option<u64>,
    /// auto_increment_increment, auto_increment_offset.
    pub auto_increment: Option<(u16, u16)>,
    /// character_set_client, collation_connection, collation_server (collation ids).
    pub charset: Option<(u16, u16, u16)>,
    /// time_zone name.
    pub time_zone: Option<String>,
    /// lc_time_names id.
    pub lc_time_names: Option<u16>,
    /// collation_database id.
    pub charset_database: Option<u16>,
    /// MySQL's explicit_defaults_for_timestamp (MariaDB keeps it in flags2).
    pub explicit_defaults: Option<u8>,
    /// Current database.
    pub db: Vec<u8>,
    /// LOG_EVENT_SUPPRESS_USE_F: the statement must not run under `USE db` (CREATE DATABASE).
    pub suppress_use: bool,
}

/// A statement, as text with its session context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Session context.
    pub context: QueryContext,
    /// The statement's bytes, in the character set of `context.charset`.
    pub text: Vec<u8>,
    /// Error code the statement had on the source (replayed statements must match).
    pub error_code: u16,
}

impl Query {
    /// BEGIN, COMMIT, ROLLBACK or XA END-like transaction markers.
    pub fn marker(&self) -> Option<Marker> {
        let t = self.text.trim_ascii();
        if t.eq_ignore_ascii_case(b"BEGIN") {
            Some(Marker::Begin)
        } else if t.eq_ignore_ascii_case(b"COMMIT") {
            Some(Marker::Commit)
        } else if t.eq_ignore_ascii_case(b"ROLLBACK") {
            Some(Marker::Rollback)
        } else {
            None
        }
    }
}

/// Transaction markers logged as query events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// BEGIN
    Begin,
    /// COMMIT
    Commit,
    /// ROLLBACK
    Rollback,
}

/// What kind of row change a rows event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsKind {
    /// Inserts (after images).
    Write,
    /// Updates (before and after images).
    Update,
    /// Deletes (before images).
    Delete,
}

/// A rows event's header; the row images stay in the raw bytes (see `rows.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    /// Table id from the preceding table map.
    pub table_id: u64,
    /// Insert, update or delete.
    pub kind: RowsKind,
    /// STMT_END_F (1) etc.
    pub flags: u16,
    /// Compressed (MariaDB 166-171): images are not decoded.
    pub compressed: bool,
    /// Offset of the column count within the event body.
    pub body_start: usize,
}

/// One parsed event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Starts every file.
    FormatDescription(FormatDescription),
    /// Ends a file (or starts a relay log): the next file's name.
    Rotate {
        /// Position in the next file.
        position: u64,
        /// The next file's name.
        next: String,
    },
    /// Clean server shutdown.
    Stop,
    /// Starts a transaction (MariaDB or MySQL).
    Gtid(Gtid),
    /// MariaDB: the last GTID of each (domain, server) when the file started.
    GtidList(Vec<(u32, u32, u64)>),
    /// A statement (DDL, statement-format DML, BEGIN/COMMIT).
    Query(Query),
    /// Commits a transaction.
    Xid(u64),
    /// Maps a table id to a table and its column types.
    TableMap(TableMap),
    /// Row changes.
    Rows(Rows),
    /// `SET INSERT_ID=` (2) or `SET LAST_INSERT_ID=` (1) before a statement.
    Intvar {
        /// 1 LAST_INSERT_ID, 2 INSERT_ID.
        kind: u8,
        /// The value.
        value: u64,
    },
    /// RAND() seeds before a statement.
    Rand {
        /// seed1
        seed1: u64,
        /// seed2
        seed2: u64,
    },
    /// Anything replay does not need to look inside (annotations, checkpoints, heartbeats)
    /// or must refuse (the caller decides by type code).
    Other(u8),
}

/// Parses an event body (common header and checksum removed).
pub fn parse(header: &Header, body: &[u8], fde: &FormatDescription) -> Option<Event> {
    let t = header.type_code;
    let mut c = Cursor::new(body);
    Some(match t {
        code::ROTATE => {
            let position = c.u64()?;
            Event::Rotate { position, next: String::from_utf8_lossy(c.rest()).into_owned() }
        }
        code::STOP => Event::Stop,
        code::MARIADB_GTID => Event::Gtid(mariadb_gtid(&mut c, header.server_id)?),
        code::MYSQL_GTID | code::ANONYMOUS_GTID => Event::Gtid(mysql_gtid(&mut c)?),
        code::GTID_LIST => Event::GtidList(gtid_list(&mut c)?),
        code::QUERY => Event::Query(query(&mut c, header, fde.post_header_len(t))?),
        code::XID => Event::Xid(c.u64()?),
        code::TABLE_MAP => Event::TableMap(TableMap::parse(body, fde.post_header_len(t))?),
        code::WRITE_ROWS_V1..=code::DELETE_ROWS_V1
        | code::WRITE_ROWS_V2..=code::DELETE_ROWS_V2
        | code::WRITE_ROWS_COMPRESSED_V1..=code::DELETE_ROWS_COMPRESSED_V2 => {
            Event::Rows(rows(body, t, fde.post_header_len(t))?)
        }
        code::INTVAR => Event::Intvar { kind: c.u8()?, value: c.u64()? },
        code::RAND => Event::Rand { seed1: c.u64()?, seed2: c.u64()? },
        _ => Event::Other(t),
    })
}

fn mariadb_gtid(c: &mut Cursor<'_>, server_id: u32) -> Option<Gtid> {
    let seq = c.u64()?;
    let domain = c.u32()?;
    let flags = c.u8()?;
    let commit_id = if flags & 2 != 0 { Some(c.u64()?) } else { None };
    Some(Gtid::Mariadb { domain, server_id, seq, flags, commit_id })
}

fn mysql_gtid(c: &mut Cursor<'_>) -> Option<Gtid> {
    c.skip(1)?; // commit flag
    let mut sid = [0u8; 16];
    sid.copy_from_slice(c.bytes(16)?);
    let gno = c.u64()?;
    let (mut last_committed, mut sequence_number) = (None, None);
    // Logical clock (5.7.6+): type byte 2, then two 8-byte signed counters.
    if c.u8() == Some(2) {
        last_committed = c.u64().map(|v| i64::from_le_bytes(v.to_le_bytes()));
        sequence_number = c.u64().map(|v| i64::from_le_bytes(v.to_le_bytes()));
    }
    Some(Gtid::Mysql { sid, gno, last_committed, sequence_number })
}

fn gtid_list(c: &mut Cursor<'_>) -> Option<Vec<(u32, u32, u64)>> {
    // The low 28 bits are the count; the top bits are flags.
    let count = c.u32()? & 0x0fff_ffff;
    let mut out = Vec::new();
    for _ in 0..count {
        out.push((c.u32()?, c.u32()?, c.u64()?));
    }
    Some(out)
}

fn query(c: &mut Cursor<'_>, header: &Header, post_header_len: usize) -> Option<Query> {
    let thread_id = c.u32()?;
    c.skip(4)?; // exec time
    let db_len = usize::from(c.u8()?);
    let error_code = c.u16()?;
    let status_len = if post_header_len >= 13 { usize::from(c.u16()?) } else { 0 };
    c.skip(post_header_len.saturating_sub(13))?;
    let status = c.bytes(status_len)?;
    let suppress_use = header.flags & 0x8 != 0;
    let mut context = QueryContext { thread_id, timestamp: header.timestamp, suppress_use, ..Default::default() };
    status_vars(status, &mut context)?;
    context.db = c.bytes(db_len)?.to_vec();
    c.skip(1)?; // NUL after the database name
    Some(Query { context, text: c.rest().to_vec(), error_code })
}

/// Reads the status variables the server would apply. An unknown code stops the parse, as in
/// the server (codes are written in increasing order, so everything before it was read).
fn status_vars(status: &[u8], q: &mut QueryContext) -> Option<()> {
    let mut c = Cursor::new(status);
    while let Some(code) = c.u8() {
        match code {
            0 => q.flags2 = Some(c.u32()?),
            1 => q.sql_mode = Some(c.u64()?),
            2 => {
                let n = usize::from(c.u8()?);
                c.skip(n + 1)?;
            }
            3 => q.auto_increment = Some((c.u16()?, c.u16()?)),
            4 => q.charset = Some((c.u16()?, c.u16()?, c.u16()?)),
            5 => {
                let n = usize::from(c.u8()?);
                q.time_zone = Some(String::from_utf8_lossy(c.bytes(n)?).into_owned());
            }
            6 => {
                let n = usize::from(c.u8()?);
                c.skip(n)?;
            }
            7 => q.lc_time_names = Some(c.u16()?),
            8 => q.charset_database = Some(c.u16()?),
            9 => c.skip(8)?,
            10 => c.skip(4)?,
            11 => {
                let user = usize::from(c.u8()?);
                c.skip(user)?;
                let host = usize::from(c.u8()?);
                c.skip(host)?;
            }
            12 => {
                let n = c.u8()?;
                // 254 = "more than 16 databases" with no names following.
                if n != 254 {
                    for _ in 0..n {
                        let rest = c.rest();
                        let len = rest.iter().position(|&b| b == 0)?;
                        c.skip(len + 1)?;
                    }
                }
            }
            13 | 128 => {
                let v = c.uint(3)?;
                q.micros = u32::try_from(v).ok();
            }
            16 => q.explicit_defaults = Some(c.u8()?),
            19 | 20 | 130 => c.skip(1)?,
            17 | 129 => c.skip(8)?,
            18 => c.skip(2)?,
            _ => break,
        }
    }
    Some(())
}

fn rows(body: &[u8], t: u8, post_header_len: usize) -> Option<Rows> {
    let (kind, v2, compressed) = match t {
        code::WRITE_ROWS_V1 => (RowsKind::Write, false, false),
        code::UPDATE_ROWS_V1 => (RowsKind::Update, false, false),
        code::DELETE_ROWS_V1 => (RowsKind::Delete, false, false),
        code::WRITE_ROWS_V2 => (RowsKind::Write, true, false),
        code::UPDATE_ROWS_V2 => (RowsKind::Update, true, false),
        code::DELETE_ROWS_V2 => (RowsKind::Delete, true, false),
        166 | 169 => (RowsKind::Write, t == 169, true),
        167 | 170 => (RowsKind::Update, t == 170, true),
        _ => (RowsKind::Delete, t == 171, true),
    };
    let mut c = Cursor::new(body);
    let table_id = if post_header_len == 6 { u64::from(c.u32()?) } else { c.uint(6)? };
    let flags = c.u16()?;
    if v2 && !compressed {
        // extra_data_len counts its own two bytes.
        let extra = usize::from(c.u16()?);
        c.skip(extra.checked_sub(2)?)?;
    } else if v2 {
        let extra = usize::from(c.u16()?);
        c.skip(extra.saturating_sub(2))?;
    }
    Some(Rows { table_id, kind, flags, compressed, body_start: c.pos() })
}

/// The length of a packed-length value, for callers outside this module.
pub(crate) fn packed_len(c: &mut Cursor<'_>) -> Option<usize> {
    c.packed().and_then(usize_of)
}
