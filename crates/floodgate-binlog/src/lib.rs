//! Parallel binary-log replay for point-in-time recovery.
//!
//! [`TxnReader`] streams v4 binary logs (MariaDB and MySQL) as transactions, checking every
//! event's CRC32 and that the files form one unbroken chain. [`replay`] applies them over N
//! connections: transactions whose row changes touch disjoint unique-key values run at once,
//! conflicting ones keep their binlog order, statements (DDL, statement-format DML) run
//! alone. Row changes are sent back as `BINLOG '...'` statements, byte for byte what the
//! source logged, so the target ends exactly where serial replay (`mariadb-binlog | mariadb`)
//! would. A checkpoint in floodgate's schema (`binlog_checkpoint`, `binlog_batches`), written
//! in the same transactions as the changes, makes an interrupted replay resume exactly.
#![deny(missing_docs)]

mod apply;
mod cursor;
mod error;
pub mod event;
pub mod reader;
mod replay;
pub mod rows;
pub mod schedule;
pub mod txn;

pub use error::{BinlogError, Result};
pub use replay::{replay, where_is, ReplayOptions, ReplayReport};
pub use txn::{Applied, Limits, Txn, TxnReader};

/// Parses `YYYY-MM-DD HH:MM:SS` (UTC) or `@SECONDS` into Unix seconds.
pub fn parse_datetime(text: &str) -> Option<u32> {
    let t = text.trim();
    if let Some(secs) = t.strip_prefix('@') {
        return secs.parse().ok();
    }
    let (date, time) = t.split_once([' ', 'T']).unwrap_or((t, "00:00:00"));
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut h = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next().unwrap_or(Some(0))?, h.next().unwrap_or(Some(0))?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u32::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_datetime("2026-11-25 21:30:00"), Some(1_795_642_200));
        assert_eq!(parse_datetime("@12"), Some(12));
        assert_eq!(parse_datetime("2026-13-01"), None);
    }
}
