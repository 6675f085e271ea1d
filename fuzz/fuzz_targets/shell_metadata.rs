//! The MySQL Shell dump reader over hostile metadata: the input, cut at 0xFF bytes, becomes
//! `@.json`, `s.json`, `s@t.json`, `@.done.json`, a data file's `.idx` and `@.users.sql` of
//! a dump directory (with `s.sql`, `s@t.sql` and an empty `s@t@@0.tsv` beside them).
//! `shell::read`, `shell::read_unfinished` and `shell::account_blocks` must return, never
//! panic, and any plan they accept names only files inside the directory.
#![no_main]

use std::path::PathBuf;

use floodgate_format::{shell, SqlFile};
use libfuzzer_sys::fuzz_target;

const FILES: [&str; 6] = ["@.json", "s.json", "s@t.json", "@.done.json", "s@t@@0.tsv.idx", "@.users.sql"];

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("floodgate-fuzz-shell-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    for name in FILES {
        let _ = std::fs::remove_file(dir.join(name));
    }
    for (name, part) in FILES.iter().zip(data.split(|&b| b == 0xFF)) {
        std::fs::write(dir.join(name), part).unwrap();
    }
    for (name, text) in [("s.sql", "CREATE DATABASE s;\n"), ("s@t.sql", "CREATE TABLE t (id int);\n"), ("s@t@@0.tsv", "")] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let root = dir.canonicalize().unwrap();
    for plan in [shell::read(&dir).ok(), shell::read_unfinished(&dir).ok().flatten()].into_iter().flatten() {
        for (_, table) in plan.tables() {
            for chunk in &table.chunks {
                assert!(chunk.file.path.starts_with(&root), "{:?} is outside the dump", chunk.file.path);
            }
        }
    }
    let users = dir.join("@.users.sql");
    if let Ok(meta) = std::fs::metadata(&users) {
        let _ = shell::account_blocks(&SqlFile::unchecked(users, meta.len()));
    }
});
