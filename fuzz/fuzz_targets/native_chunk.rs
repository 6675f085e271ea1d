//! A native chunk as `floodgate verify` reads it (`verify::check_stored`), against what a
//! crafted manifest declares: never panics, never yields more than the declared sizes (a
//! decompression bomb stops one byte past them), and a chunk it accepts is exactly what was
//! declared. Also the content digest of the same bytes read as rows, whole and in two pieces.
#![no_main]

use floodgate_format::native::{ContentDigest, RowState};
use floodgate_format::RowsCheck;
use floodgate_pipeline::verify::check_stored;
use floodgate_pipeline::{HashingReader, RowCounter};
use libfuzzer_sys::fuzz_target;

fn sha256_hex(bytes: &[u8]) -> String {
    let mut h = HashingReader::new(bytes);
    let _ = std::io::copy(&mut h, &mut std::io::sink());
    h.hex()
}

/// The rows of `text` and their digest, fed in two pieces cut at `cut`.
fn digest_in_two(text: &[u8], cut: usize) -> (u64, ContentDigest, bool) {
    let mut digest = ContentDigest::default();
    let mut state = RowState::default();
    let rows = digest.add_rows(&text[..cut], &mut state) + digest.add_rows(&text[cut..], &mut state);
    (rows, digest, state.at_row_end())
}

fuzz_target!(|data: &[u8]| {
    // Four bytes declare the decompressed size and the rows (small, so bombs reach the
    // size); the rest is the stored file, hashed here so the checks past the hash run.
    let Some((head, stored)) = data.split_first_chunk::<4>() else { return };
    let bytes = u64::from(u16::from_le_bytes([head[0], head[1]]));
    let rows = u64::from(u16::from_le_bytes([head[2], head[3]]));
    let check = RowsCheck { sha256: sha256_hex(stored), rows, bytes, compressed_bytes: stored.len() as u64 };
    if let Ok(outcome) = check_stored(stored, &check) {
        assert_eq!((outcome.bytes, outcome.rows), (bytes, rows));
        let decoded = zstd::decode_all(stored).expect("an accepted chunk decodes");
        assert_eq!(decoded.len() as u64, bytes);
        assert_eq!(RowCounter::default().count(&decoded), rows);
        let (whole_rows, whole, _) = digest_in_two(&decoded, 0);
        assert_eq!((whole_rows, whole), (rows, outcome.digest));
    }
    // One stored byte fewer than the file holds is refused, whatever the file.
    if !stored.is_empty() {
        let short = RowsCheck { compressed_bytes: stored.len() as u64 - 1, ..check };
        assert!(check_stored(stored, &short).is_err(), "a file larger than declared was accepted");
    }
    // The digest does not depend on where blocks end (a row across them is hashed as it
    // streams).
    let cut = usize::from(head[0]) % (stored.len() + 1);
    assert_eq!(digest_in_two(stored, 0), digest_in_two(stored, cut));
});
