//! The statement splitter: never panics, and cutting the input into two reads does not change
//! the statements it finds (the property `split::tests::reads_do_not_change_the_split` checks
//! with SQL-ish atoms; here on arbitrary bytes), nor which statements a size limit refuses;
//! no statement it accepts is larger than the limit.
#![no_main]

use floodgate_format::split::{split_all, SplitError, Splitter, Statement, Terminator};
use libfuzzer_sys::fuzz_target;

/// Splits `data` fed as two pushes, `data[..cut]` then `data[cut..]`.
fn split_in_two(data: &[u8], cut: usize, t: Terminator) -> Result<Vec<Statement>, SplitError> {
    split_in_two_within(data, cut, t, usize::MAX)
}

/// The same, refusing statements larger than `limit` bytes.
fn split_in_two_within(data: &[u8], cut: usize, t: Terminator, limit: usize) -> Result<Vec<Statement>, SplitError> {
    let mut s = Splitter::new(t, limit);
    let mut out = Vec::new();
    s.push(&data[..cut], &mut out)?;
    s.push(&data[cut..], &mut out)?;
    s.finish(&mut out)?;
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the cut (it stays part of the SQL too): every position of inputs up
    // to 255 bytes is reachable, which is where libFuzzer's minimised cases live.
    let cut = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    for t in [Terminator::Delimiter, Terminator::SemicolonNewline] {
        let whole = split_all(data, t);
        let pieces = split_in_two(data, cut, t);
        match (&whole, &pieces) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{t:?}: split at byte {cut} differs from the one-shot split"),
            (Err(_), Err(_)) => {}
            _ => panic!("{t:?}: one-shot gives {whole:?} but split at byte {cut} gives {pieces:?}"),
        }
        // The second byte picks a limit small enough for libFuzzer's inputs to pass it.
        let limit = data.get(1).map_or(0, |&b| usize::from(b) % 128);
        let whole = split_in_two_within(data, 0, t, limit);
        let pieces = split_in_two_within(data, cut, t, limit);
        match (&whole, &pieces) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "{t:?}, limit {limit}: split at byte {cut} differs from the one-shot split");
                assert!(a.iter().all(|s| s.text.len() <= limit), "{t:?}: a statement over the limit {limit}");
            }
            (Err(_), Err(_)) => {}
            _ => panic!("{t:?}, limit {limit}: one-shot gives {whole:?} but split at byte {cut} gives {pieces:?}"),
        }
    }
});
