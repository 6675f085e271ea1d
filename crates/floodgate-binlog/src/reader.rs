//! Event framing: the file magic, the format description, one event at a time with its
//! CRC32 checked, and the chain of files (each file's Rotate names the next; MariaDB's
//! GTID list at the start of a file must continue where the previous file stopped).
//!
//! Memory is one event at a time; the caller decides what to keep.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::event::{self, code, Event, FormatDescription, Gtid, Header, HEADER_LEN};
use crate::{BinlogError, Result};

/// Magic bytes at the start of every binary log.
pub const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];

/// Largest event accepted (max_allowed_packet's ceiling); a larger size is damage.
const MAX_EVENT: u32 = 1 << 30;

/// LOG_EVENT_BINLOG_IN_USE_F: set in the format description of a file still being written,
/// and cleared in place when it is closed, so the checksum is computed without it.
const IN_USE: u16 = 0x1;

/// One event as read: its position, raw bytes (header and checksum included, as a BINLOG
/// statement needs them) and the parsed form.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// Byte offset of the event in its file.
    pub offset: u64,
    /// Common header.
    pub header: Header,
    /// The whole event.
    pub bytes: Vec<u8>,
    /// Parsed.
    pub event: Event,
}

/// A file being read, and what the events of that file share.
#[derive(Debug)]
pub struct FileInfo {
    /// Path as given.
    pub path: PathBuf,
    /// File name (what Rotate events and checkpoints use).
    pub name: String,
    /// Position of this file in the chain (0 = first).
    pub index: usize,
    /// The format description, raw (replay sends it first on every connection).
    pub fde_bytes: Vec<u8>,
    /// The format description, parsed.
    pub fde: FormatDescription,
}

/// Reads one file's events.
pub struct FileReader {
    info: Arc<FileInfo>,
    input: BufReader<Box<dyn Read + Send>>,
    offset: u64,
    light: bool,
    /// The light read's event buffer.
    scratch: Vec<u8>,
}

/// Bytes a light read keeps of a table map or rows event: the header and the post-header
/// (table id and flags), all a transaction's boundaries need.
const LIGHT_HEAD: usize = HEADER_LEN + 10;

impl FileReader {
    /// Opens `path` (a file, or an `s3://bucket/key` object read in ranged GETs), checks the
    /// magic and reads the format description.
    pub fn open(path: &Path, index: usize) -> Result<FileReader> {
        let io = |source| BinlogError::Io { file: path.to_path_buf(), source };
        if let Some(url) = path.to_str().filter(|p| floodgate_storage::is_url(p)) {
            let object = floodgate_storage::Object::open(url).map_err(|e| io(std::io::Error::other(e)))?;
            return FileReader::from_reader(path, index, Box::new(object.reader(0)));
        }
        let file = File::open(path).map_err(io)?;
        FileReader::from_reader(path, index, Box::new(file))
    }

    /// Reads a binary log from any byte stream; `path` names it in errors.
    pub fn from_reader(path: &Path, index: usize, input: Box<dyn Read + Send>) -> Result<FileReader> {
        let io = |source| BinlogError::Io { file: path.to_path_buf(), source };
        let mut input = BufReader::with_capacity(1 << 20, input);
        let mut magic = [0u8; 4];
        read_full(&mut input, &mut magic).map_err(io)?;
        if magic != MAGIC {
            return Err(corrupt(path, 0, "not a binary log (bad magic bytes)"));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (header, bytes) = read_event(&mut input, path, 4)?
            .ok_or_else(|| corrupt(path, 4, "truncated: no format description event"))?;
        if header.type_code != code::FORMAT_DESCRIPTION {
            return Err(corrupt(path, 4, "the first event is not a format description (not a v4 binary log)"));
        }
        let body = bytes.get(HEADER_LEN..).unwrap_or_default();
        let fde = FormatDescription::parse(body).ok_or_else(|| corrupt(path, 4, "malformed format description"))?;
        if fde.checksum {
            let mut copy = bytes.clone();
            // INVARIANT: read_event returned at least HEADER_LEN bytes.
            let flags = header.flags & !IN_USE;
            copy[17..19].copy_from_slice(&flags.to_le_bytes());
            verify_crc(&copy, path, 4)?;
        }
        let size = u64::from(header.size);
        let info = Arc::new(FileInfo { path: path.to_path_buf(), name, index, fde_bytes: bytes, fde });
        Ok(FileReader { info, input, offset: 4 + size, light: false, scratch: Vec::new() })
    }

    /// Frames and checksums every event but parses only those that delimit transactions and
    /// chain files (table maps and row events come back as `Event::Other`): the check pass
    /// before a replay, at a fraction of the cost.
    pub fn light(mut self) -> FileReader {
        self.light = true;
        self
    }

    /// The file's shared information.
    pub fn info(&self) -> &Arc<FileInfo> {
        &self.info
    }

    /// Offset of the next event.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next event, or None at the end of the file.
    pub fn next_event(&mut self) -> Result<Option<RawEvent>> {
        let path = &self.info.path;
        let offset = self.offset;
        // A light read checks an event where it lands in a reused buffer and keeps only the
        // head of table maps and row events (the bulk of a binlog): no copy of their rows.
        let mut bytes = if self.light { std::mem::take(&mut self.scratch) } else { Vec::new() };
        let Some(header) = read_event_into(&mut self.input, path, offset, &mut bytes)? else {
            return Ok(None);
        };
        // The checksum first: a flipped bit anywhere in the event, its header included, is
        // then reported as what it is.
        let crc_len = if self.info.fde.checksum && header.type_code != code::FORMAT_DESCRIPTION { 4 } else { 0 };
        if crc_len == 4 {
            verify_crc(&bytes, path, offset)?;
        }
        if header.log_pos != 0 && u64::from(header.log_pos) != offset + u64::from(header.size) {
            return Err(corrupt(
                path,
                offset,
                &format!("event claims to end at {} but is {} bytes long", header.log_pos, header.size),
            ));
        }
        let body_end = bytes.len().checked_sub(crc_len).filter(|&e| e >= HEADER_LEN);
        let body = body_end.and_then(|e| bytes.get(HEADER_LEN..e)).unwrap_or_default();
        let bulk = matches!(header.type_code, code::TABLE_MAP | 23..=25 | 30..=32 | 166..=171);
        let parsed = if self.light && bulk {
            Some(Event::Other(header.type_code))
        } else {
            event::parse(&header, body, &self.info.fde)
        };
        let event = parsed.ok_or_else(|| {
            corrupt(path, offset, &format!("malformed event of type {} ({} bytes)", header.type_code, header.size))
        })?;
        self.offset += u64::from(header.size);
        if self.light {
            let keep = if bulk { LIGHT_HEAD.min(bytes.len()) } else { bytes.len() };
            let kept = bytes.get(..keep).unwrap_or_default().to_vec();
            self.scratch = bytes;
            return Ok(Some(RawEvent { offset, header, bytes: kept, event }));
        }
        Ok(Some(RawEvent { offset, header, bytes, event }))
    }
}

fn corrupt(path: &Path, offset: u64, reason: &str) -> BinlogError {
    BinlogError::Corrupt { file: path.to_path_buf(), offset, reason: reason.to_string() }
}

fn verify_crc(bytes: &[u8], path: &Path, offset: u64) -> Result<()> {
    let split = bytes.len().checked_sub(4).filter(|&s| s >= HEADER_LEN);
    let Some(split) = split else {
        return Err(corrupt(path, offset, "event too short to hold a checksum"));
    };
    let (data, tail) = bytes.split_at(split);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let computed = crc32fast::hash(data);
    if stored != computed {
        return Err(BinlogError::Checksum { file: path.to_path_buf(), offset, stored, computed });
    }
    Ok(())
}

/// Reads as many bytes as there are, up to `buf.len()`; returns how many.
fn read_some(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<()> {
    let n = read_some(input, buf)?;
    if n < buf.len() {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file ends inside its header"));
    }
    Ok(())
}

/// One event's header and bytes; None at a clean end of file.
fn read_event<R: Read>(input: &mut R, path: &Path, offset: u64) -> Result<Option<(Header, Vec<u8>)>> {
    let mut bytes = Vec::new();
    Ok(read_event_into(input, path, offset, &mut bytes)?.map(|header| (header, bytes)))
}

/// Reads one event into `bytes` (cleared first, its allocation reused); None at a clean end
/// of file.
fn read_event_into<R: Read>(input: &mut R, path: &Path, offset: u64, bytes: &mut Vec<u8>) -> Result<Option<Header>> {
    let io = |source| BinlogError::Io { file: path.to_path_buf(), source };
    let mut head = [0u8; HEADER_LEN];
    let got = read_some(input, &mut head).map_err(io)?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER_LEN {
        return Err(corrupt(path, offset, &format!("truncated: the file ends {got} bytes into an event header")));
    }
    let header = Header::parse(&head).ok_or_else(|| corrupt(path, offset, "unreadable event header"))?;
    if header.size < 19 || header.size > MAX_EVENT {
        return Err(corrupt(path, offset, &format!("impossible event length {}", header.size)));
    }
    let size = usize::try_from(header.size).map_err(|_| corrupt(path, offset, "event length too large"))?;
    // read_to_end fills spare capacity without zeroing it first (zeroing fresh pages was a
    // tenth of the replay's CPU).
    bytes.clear();
    bytes.reserve(size);
    bytes.extend_from_slice(&head);
    let rest = u64::try_from(size - HEADER_LEN).map_err(|_| corrupt(path, offset, "event length too large"))?;
    let got = input.take(rest).read_to_end(bytes).map_err(io)?;
    if got < size - HEADER_LEN {
        return Err(corrupt(
            path,
            offset,
            &format!("truncated: event of {} bytes, the file ends after {}", size, got + HEADER_LEN),
        ));
    }
    Ok(Some(header))
}

/// Checks that consecutive files form one sequence, from what each file says about its
/// successor (Rotate) and its predecessor (MariaDB GTID list).
#[derive(Debug, Default)]
pub struct ChainCheck {
    previous: Option<(PathBuf, u64, Option<String>)>,
    last_gtid: HashMap<(u32, u32), u64>,
    checked_list: bool,
}

impl ChainCheck {
    /// Called for every event of the current file, in order.
    pub fn observe(&mut self, file: &FileInfo, ev: &RawEvent) -> Result<()> {
        match &ev.event {
            Event::Gtid(Gtid::Mariadb { domain, server_id, seq, .. }) => {
                self.last_gtid.insert((*domain, *server_id), *seq);
            }
            Event::GtidList(list) if !self.checked_list => {
                self.checked_list = true;
                self.check_list(file, list)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn check_list(&self, file: &FileInfo, list: &[(u32, u32, u64)]) -> Result<()> {
        let Some((prev, end, _)) = &self.previous else { return Ok(()) };
        for (domain, server, seq) in list {
            if let Some(last) = self.last_gtid.get(&(*domain, *server)) {
                if last != seq {
                    return Err(BinlogError::Gap {
                        file: prev.clone(),
                        offset: *end,
                        reason: format!(
                            "its last GTID is {domain}-{server}-{last} but {} starts after {domain}-{server}-{seq}",
                            file.name
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Called when a file ends, with its last event (a Rotate names the next file).
    pub fn end_file(&mut self, file: &FileInfo, end: u64, rotate_to: Option<String>) {
        self.previous = Some((file.path.clone(), end, rotate_to));
        self.checked_list = false;
    }

    /// Called when the next file opens: is it the one the previous file expects?
    pub fn start_file(&self, file: &FileInfo) -> Result<()> {
        let Some((prev, end, rotate_to)) = &self.previous else { return Ok(()) };
        let gap = |reason: String| BinlogError::Gap { file: prev.clone(), offset: *end, reason };
        match rotate_to {
            Some(next) if *next != file.name => {
                Err(gap(format!("it rotates to {next}, but the next file given is {}", file.name)))
            }
            Some(_) => Ok(()),
            None => {
                // No Rotate (the server stopped or crashed): the next file must be numbered next.
                let prev_name = prev.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                match (sequence_number(&prev_name), sequence_number(&file.name)) {
                    (Some((a, n)), Some((b, m))) if a == b && m == n + 1 => Ok(()),
                    _ => Err(gap(format!("{} does not follow {prev_name}", file.name))),
                }
            }
        }
    }
}

/// `binlog.000012` -> ("binlog", 12).
fn sequence_number(name: &str) -> Option<(&str, u64)> {
    let (base, num) = name.rsplit_once('.')?;
    Some((base, num.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn read_all(bytes: Vec<u8>) -> Result<Vec<RawEvent>> {
        let mut r = FileReader::from_reader(Path::new("mem"), 0, Box::new(std::io::Cursor::new(bytes)))?;
        let mut out = Vec::new();
        while let Some(e) = r.next_event()? {
            out.push(e);
        }
        Ok(out)
    }

    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/binlog/binlog.000002")).unwrap()
    }

    #[test]
    fn reads_a_real_mariadb_binlog() {
        let events = read_all(fixture()).unwrap();
        assert!(events.iter().any(|e| matches!(e.event, Event::TableMap(_))));
        assert!(matches!(events.last().unwrap().event, Event::Rotate { ref next, .. } if next == "binlog.000003"));
        // Offsets tile the file, right after the format description.
        let mut at = fde_end();
        for e in &events {
            assert_eq!(e.offset, at);
            at += u64::from(e.header.size);
        }
        assert_eq!(at, fixture().len() as u64);
    }

    fn fde_end() -> u64 {
        let r = FileReader::from_reader(Path::new("m"), 0, Box::new(std::io::Cursor::new(fixture()))).unwrap();
        r.offset()
    }

    #[test]
    fn every_flipped_byte_is_an_error_not_a_panic() {
        let good = fixture();
        for i in (0..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[i] ^= 0x20;
            // With CRC32 on, every change is caught by a checksum or framing check.
            assert!(read_all(bad).is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn every_truncation_is_an_error_or_a_clean_prefix() {
        let good = fixture();
        let ends: Vec<u64> =
            read_all(good.clone()).unwrap().iter().map(|e| e.offset + u64::from(e.header.size)).collect();
        for n in 0..good.len() {
            let r = read_all(good[..n].to_vec());
            let boundary = n as u64 == fde_end() || ends.contains(&(n as u64));
            assert_eq!(r.is_ok(), boundary, "cut at {n}: {r:?}");
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = read_all(bytes);
        }

        #[test]
        fn mutated_binlogs_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
            let mut bytes = fixture();
            for (at, b) in edits {
                let i = at % bytes.len();
                bytes[i] = b;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            let _ = read_all(bytes);
        }
    }

    #[test]
    fn sequence_numbers() {
        assert_eq!(sequence_number("binlog.000012"), Some(("binlog", 12)));
        assert_eq!(sequence_number("binlog"), None);
    }
}
