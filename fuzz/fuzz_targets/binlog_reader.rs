//! The binary log reader: framing, checksums, every event parser, row images against the
//! table maps read before them. Never panics; accepted events tile the input exactly.
#![no_main]

use std::collections::HashMap;
use std::path::Path;

use floodgate_binlog::event::{Event, HEADER_LEN};
use floodgate_binlog::reader::FileReader;
use floodgate_binlog::rows;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let Ok(mut reader) = FileReader::from_reader(Path::new("fuzz"), 0, Box::new(std::io::Cursor::new(data.to_vec())))
    else {
        return;
    };
    let crc = if reader.info().fde.checksum { 4 } else { 0 };
    let mut maps = HashMap::new();
    let mut at = reader.offset();
    while let Ok(Some(ev)) = reader.next_event() {
        assert_eq!(ev.offset, at);
        at += u64::from(ev.header.size);
        assert!(at <= len);
        match &ev.event {
            Event::TableMap(m) => {
                maps.insert(m.table_id, m.clone());
            }
            Event::Rows(r) => {
                if let (Some(m), Some(body)) = (maps.get(&r.table_id), ev.bytes.get(HEADER_LEN..ev.bytes.len() - crc)) {
                    let _ = rows::images(body, r, m);
                }
            }
            _ => {}
        }
    }
});
