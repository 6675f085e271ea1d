//! floodgate-wire against a hostile server: `data` is everything the server sends (greeting,
//! login replies, result sets). Never panics; every row has exactly as many fields as its
//! result set has columns, or ends at its first error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else { return };
    rt.block_on(async {
        let stream = Box::new(tokio::io::join(std::io::Cursor::new(data.to_vec()), tokio::io::sink()));
        let Ok(mut conn) = floodgate_wire::Conn::handshake(stream, true, "root", b"secret").await else { return };
        for _ in 0..2 {
            let Ok(mut rows) = conn.query("SELECT a, b FROM t").await else { return };
            let columns = rows.columns();
            while let Ok(Some(row)) = rows.next().await {
                let fields: Vec<_> = row.fields().collect();
                // Either every column's value, or values up to the first error, which ends it.
                match fields.iter().position(Result::is_err) {
                    None => assert_eq!(fields.len(), columns),
                    Some(bad) => {
                        assert_eq!(bad, fields.len() - 1);
                        return;
                    }
                }
            }
        }
        let _ = conn.execute("SET NAMES binary").await;
    });
});
