//! Throughput of the pipeline stages, in bytes per second of their input.
//!
//! Run with `cargo bench -p floodgate-benches`.

use std::io::{Read, Write};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use floodgate_format::split::{split_all, Terminator};
use floodgate_pipeline::insert::{encode_values, ColumnClass};
use floodgate_pipeline::RowCounter;
use sha2::Digest;

/// mydumper-style INSERT statements, ~8 MiB, with quotes and escapes in the values.
fn insert_text() -> Vec<u8> {
    let mut out = Vec::new();
    let mut id = 0u64;
    while out.len() < 8 << 20 {
        out.extend_from_slice(b"INSERT INTO `sbtest1` VALUES");
        for i in 0..1000 {
            id += 1;
            let sep = if i == 0 { "(" } else { ",(" };
            writeln!(out, "{sep}{id},{},\"{:x}-it\\'s \\\"q\\\";x\",\"pad{}\")", id * 7 % 1000, id * 2654435761, id)
                .unwrap();
        }
        out.extend_from_slice(b";\n");
    }
    out
}

/// mysqldump `--skip-extended-insert` style: one short INSERT per row, ~8 MiB.
fn row_insert_text() -> Vec<u8> {
    let mut out = Vec::new();
    let mut id = 0u64;
    while out.len() < 8 << 20 {
        id += 1;
        writeln!(
            out,
            "INSERT INTO `sbtest1` VALUES ({id},{},'{:x}-it\\'s','pad{id}');",
            id * 7 % 1000,
            id * 2654435761
        )
        .unwrap();
    }
    out
}

/// LOAD DATA default-format rows, ~8 MiB.
fn tsv_text() -> Vec<u8> {
    let mut out = Vec::new();
    let mut id = 0u64;
    while out.len() < 8 << 20 {
        id += 1;
        writeln!(out, "{id}\t{}\t{:x}-with\\ttab\\\\\tpad{id}", id * 7 % 1000, id * 2654435761).unwrap();
    }
    out
}

fn bench(c: &mut Criterion) {
    let sql = insert_text();
    let tsv = tsv_text();
    let zst = zstd::encode_all(&tsv[..], 3).unwrap();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&tsv).unwrap();
        e.finish().unwrap()
    };

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes(sql.len() as u64));
    g.bench_function("split_semicolon_newline", |b| {
        b.iter(|| split_all(black_box(&sql), Terminator::SemicolonNewline).unwrap().len())
    });
    g.bench_function("split_delimiter", |b| {
        b.iter(|| split_all(black_box(&sql), Terminator::Delimiter).unwrap().len())
    });
    let rows = row_insert_text();
    g.throughput(Throughput::Bytes(rows.len() as u64));
    g.bench_function("split_delimiter_one_row_statements", |b| {
        b.iter(|| split_all(black_box(&rows), Terminator::Delimiter).unwrap().len())
    });
    g.throughput(Throughput::Bytes(sql.len() as u64));
    // The INSERT encoder on the VALUES lists of the same statements (what a loader converts).
    let statements: Vec<Vec<u8>> = split_all(&sql, Terminator::Delimiter)
        .unwrap()
        .into_iter()
        .map(|s| {
            let at = floodgate_format::sqltext::parse_insert_head(&s.text).unwrap().values_at;
            s.text[at..].to_vec()
        })
        .collect();
    let classes = [ColumnClass::Raw; 4];
    g.bench_function("insert_encoder", |b| {
        let mut out = Vec::with_capacity(sql.len());
        b.iter(|| {
            out.clear();
            statements.iter().map(|v| encode_values(v, &classes, &mut out).unwrap()).sum::<u64>()
        })
    });
    g.throughput(Throughput::Bytes(tsv.len() as u64));
    g.bench_function("row_counter", |b| b.iter(|| RowCounter::default().count(black_box(&tsv))));
    g.bench_function("zstd_decompress", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(tsv.len());
            zstd::stream::read::Decoder::new(&zst[..]).unwrap().read_to_end(&mut out).unwrap();
            out.len()
        })
    });
    g.bench_function("gzip_decompress", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(tsv.len());
            flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut out).unwrap();
            out.len()
        })
    });
    // `floodgate verify` of one native chunk: SHA-256 of the stored bytes, decompression, row
    // parsing and the per-row content digest; throughput in decompressed bytes.
    let sha = sha2::Sha256::digest(&zst).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let rows = RowCounter::default().count(&tsv);
    let check =
        floodgate_format::RowsCheck { sha256: sha, rows, bytes: tsv.len() as u64, compressed_bytes: zst.len() as u64 };
    g.bench_function("verify_chunk", |b| {
        b.iter(|| floodgate_pipeline::verify::check_stored(&zst[..], &check).unwrap().rows)
    });
    g.throughput(Throughput::Bytes(zst.len() as u64));
    g.bench_function("sha256", |b| b.iter(|| sha2::Sha256::digest(black_box(&zst))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
