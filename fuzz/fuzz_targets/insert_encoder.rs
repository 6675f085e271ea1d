//! The INSERT-to-LOAD-DATA encoder and the INSERT head parser: never panic, and a successful
//! encode of n rows writes exactly n unescaped row ends (what the pipeline's `RowCounter`
//! counts to report progress).
#![no_main]

use floodgate_format::sqltext::parse_insert_head;
use floodgate_pipeline::insert::{encode_values, ColumnClass};
use floodgate_pipeline::RowCounter;
use libfuzzer_sys::fuzz_target;

const COLUMNS: [ColumnClass; 3] = [ColumnClass::Raw, ColumnClass::Text, ColumnClass::Bit(2)];

fn encode_and_count(values: &[u8]) {
    let mut out = Vec::new();
    if let Ok(n) = encode_values(values, &COLUMNS, &mut out) {
        let counted = RowCounter::default().count(&out);
        assert_eq!(counted, n, "encode_values said {n} rows but wrote {counted} row ends: {out:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    // The input as a bare VALUES list, as the brief's property states it.
    encode_and_count(data);
    // And as a whole statement, the way the loader uses both: head first, then the list after
    // VALUES. The head's offset must lie inside the statement for that slice to be sound.
    if let Some(head) = parse_insert_head(data) {
        assert!(head.values_at <= data.len(), "values_at {} past the end ({})", head.values_at, data.len());
        encode_and_count(&data[head.values_at..]);
    }
});
