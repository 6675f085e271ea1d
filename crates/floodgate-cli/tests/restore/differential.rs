//! Differential tests: random rows of every column type, dumped by mariadb-dump, restored by
//! `mariadb < dump.sql` and by floodgate into two databases; both must be the same.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;

use crate::common::*;

const TABLE: &str = "CREATE TABLE t (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT NULL, bi BIGINT NULL, ub BIGINT UNSIGNED NULL,
  dec6 DECIMAL(30,6) NULL, f FLOAT NULL, d DOUBLE NULL,
  vc VARCHAR(64) CHARACTER SET utf8mb4 NULL, lat VARCHAR(64) CHARACTER SET latin1 NULL,
  vb VARBINARY(64) NULL, bl BLOB NULL, bits BIT(13) NULL,
  dt DATETIME(6) NULL, ts TIMESTAMP(3) NULL DEFAULT NULL, dte DATE NULL, tm TIME(2) NULL, y YEAR NULL,
  e ENUM('a','b c','ü') NULL, st SET('x','y','z') NULL, j JSON NULL, pt POINT NULL,
  gen BIGINT AS (ti * 2) VIRTUAL,
  KEY k_vc (vc), KEY k_dt (dt)
) ENGINE=InnoDB";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// One row as SQL literals (exact: text through CONVERT of hex bytes).
fn row() -> impl Strategy<Value = Vec<String>> {
    let null_or = |s: BoxedStrategy<String>| prop_oneof![1 => Just("NULL".to_string()), 6 => s].boxed();
    let text = |chars: &'static str| {
        prop::string::string_regex(chars)
            .unwrap()
            .prop_map(|s| format!("CONVERT(X'{}' USING utf8mb4)", hex(s.as_bytes())))
    };
    (
        null_or(any::<i8>().prop_map(|v| v.to_string()).boxed()),
        null_or(any::<i64>().prop_map(|v| v.to_string()).boxed()),
        null_or(any::<u64>().prop_map(|v| v.to_string()).boxed()),
        null_or((any::<i64>(), 0u32..1_000_000).prop_map(|(a, b)| format!("{}.{b:06}", a % 10i64.pow(18))).boxed()),
        null_or((-1e30f32..1e30f32).prop_map(|v| format!("{v:e}")).boxed()),
        null_or(any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(|v| format!("{v:e}")).boxed()),
        null_or(text("[a-zA-Z0-9 \\t\\n\\\\'\",;%_ü😀中]{0,20}").boxed()),
        null_or(text("[a-zA-Z0-9 \\t\\\\'éèÿß]{0,20}").boxed()),
        null_or(prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| format!("X'{}'", hex(&b))).boxed()),
        null_or(prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| format!("X'{}'", hex(&b))).boxed()),
        null_or((0u16..8192).prop_map(|v| format!("b'{v:b}'")).boxed()),
        null_or(
            (1000i32..9999, 1u32..13, 1u32..28, 0u32..24, 0u32..60, 0u32..1_000_000)
                .prop_map(|(y, m, d, h, mi, us)| format!("'{y}-{m:02}-{d:02} {h:02}:{mi:02}:07.{us:06}'"))
                .boxed(),
        ),
    )
        .prop_flat_map(move |a| {
            let null_or = |s: BoxedStrategy<String>| prop_oneof![1 => Just("NULL".to_string()), 6 => s].boxed();
            (
                Just(a),
                null_or(
                    (1971i32..2037, 1u32..13, 1u32..28, 0u32..1000)
                        .prop_map(|(y, m, d, ms)| format!("'{y}-{m:02}-{d:02} 12:00:00.{ms:03}'"))
                        .boxed(),
                ),
                null_or(
                    (1000i32..9999, 1u32..13, 1u32..28).prop_map(|(y, m, d)| format!("'{y}-{m:02}-{d:02}'")).boxed(),
                ),
                null_or(
                    (-838i32..838, 0u32..60, 0u32..100).prop_map(|(h, m, c)| format!("'{h}:{m:02}:00.{c:02}'")).boxed(),
                ),
                null_or((1901u32..2155).prop_map(|y| y.to_string()).boxed()),
                null_or(prop::sample::select(vec!["'a'", "'b c'", "'ü'"]).prop_map(str::to_string).boxed()),
                null_or(prop::sample::select(vec!["''", "'x'", "'x,z'", "'x,y,z'"]).prop_map(str::to_string).boxed()),
                null_or(
                    (any::<i32>(), "[a-z\\\\\"]{0,8}")
                        .prop_map(|(n, s)| format!("JSON_OBJECT('n', {n}, 's', '{}')", s.replace('\\', "\\\\")))
                        .boxed(),
                ),
                null_or(
                    (-180i32..180, -90i32..90).prop_map(|(x, y)| format!("ST_GeomFromText('POINT({x} {y})')")).boxed(),
                ),
            )
        })
        .prop_map(|(a, b0, b1, b2, b3, b4, b5, b6, b7)| {
            let mut v = vec![a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7, a.8, a.9, a.10, a.11];
            v.extend([b0, b1, b2, b3, b4, b5, b6, b7]);
            v
        })
}

static CASE: AtomicU32 = AtomicU32::new(0);

fn mariadb_dump_db(db: &str, extra: &[&str]) -> Vec<u8> {
    let out = Command::new("mariadb-dump")
        .args(["--no-defaults", "-uroot", "--single-transaction"])
        .arg(format!("--socket={}", source().socket().display()))
        .args(extra)
        .arg(db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn client_restore(db: &str, dump: &[u8]) {
    sql(target(), &format!("CREATE DATABASE {db}"));
    let mut child = Command::new("mariadb")
        .args(["--no-defaults", "-uroot", db])
        .arg(format!("--socket={}", target().socket().display()))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(dump).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 20, ..ProptestConfig::default() })]

    #[test]
    fn floodgate_equals_the_mariadb_client(rows in prop::collection::vec(row(), 1..40), extended in any::<bool>()) {
        let case = CASE.fetch_add(1, Ordering::Relaxed);
        let db = format!("diff_{case}");
        let mut script = format!("SET NAMES utf8mb4; SET time_zone='+00:00'; DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; {TABLE};\n");
        for (i, r) in rows.iter().enumerate() {
            script.push_str(&format!(
                "INSERT INTO t (id, ti, bi, ub, dec6, f, d, vc, lat, vb, bl, bits, dt, ts, dte, tm, y, e, st, j, pt) VALUES ({i}, {});\n",
                r.join(", ")
            ));
        }
        sql(source(), &script);
        let dump = mariadb_dump_db(&db, if extended { &[] } else { &["--skip-extended-insert"] });
        client_restore(&format!("{db}_client"), &dump);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.sql");
        std::fs::write(&path, &dump).unwrap();
        let into = format!("{db}_fg");
        let out = restore(target(), &path, &["--into", &into, "-t", "3"]);
        prop_assert!(out.status.success(), "{}", stderr(&out));
        let (a, b) = (fingerprint(target(), &format!("{db}_client")), fingerprint(target(), &into));
        prop_assert_eq!(a.differences(&b), Vec::<String>::new());
        prop_assert_eq!(a.tables["t"].0, rows.len() as u64);
    }
}
