//! `--into`'s and `--rename-db`'s rewriter over any bytes: never panics, changes nothing
//! when no renamed name is there, and leaves no reference it should have renamed: a second
//! pass over its output changes nothing more.
#![no_main]

use floodgate_format::rename::Rename;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rename = Rename::new([("shop".into(), "other_db".into()), ("hr".into(), "people_db".into())]);
    let mentions = |name: &[u8]| data.windows(name.len()).any(|w| w.eq_ignore_ascii_case(name));
    match rename.rewrite(data) {
        Ok(out) => {
            if !mentions(b"shop") && !mentions(b"hr") {
                assert_eq!(out.as_ref(), data);
            }
            let again = rename.rewrite(&out).expect("what the first pass accepted, the second accepts");
            assert_eq!(again.as_ref(), out.as_ref());
        }
        Err(reason) => assert!(reason.contains("`shop`") || reason.contains("`hr`")),
    }
});
