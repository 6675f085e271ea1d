//! `--into`'s rewriter over any bytes: never panics, changes nothing when the name is absent,
//! and leaves no reference it should have renamed: a second pass over its output changes
//! nothing more.
#![no_main]

use floodgate_format::rename::Rename;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rename = Rename { from: "shop".into(), to: "other_db".into() };
    match rename.rewrite(data) {
        Ok(out) => {
            if !data.windows(4).any(|w| w.eq_ignore_ascii_case(b"shop")) {
                assert_eq!(out.as_ref(), data);
            }
            let again = rename.rewrite(&out).expect("what the first pass accepted, the second accepts");
            assert_eq!(again.as_ref(), out.as_ref());
        }
        Err(reason) => assert!(reason.contains("shop")),
    }
});
