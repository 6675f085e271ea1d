//! The CREATE TABLE parser and the index-deferring rewriter: never panic on any text.
#![no_main]

use floodgate_format::ddl::{defer_indexes, parse_create_table, ReferencedColumns};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_create_table(&text);
    let _ = defer_indexes("d", "t", &text, &ReferencedColumns::default());
    // A foreign key elsewhere pointing at `id` takes the "needed index" paths too.
    let _ = defer_indexes("d", "t", &text, &ReferencedColumns(vec![vec!["id".into()]]));
});
