#!/usr/bin/env python3
"""Writes the hostile seeds (fuzz/README.md, "Hostile seeds"): decompression bombs, huge
length prefixes and statements that never end. Each is about 4 KB: libFuzzer's inputs grow
to its largest seed, and a 32 KB seed slowed the `split` target a hundredfold; 4 KB is far
past the harnesses' limits (a statement limit under 128 bytes, declared chunk sizes under
64 KiB).
Run from the repository root; the files are committed, this says how they were made."""
import hashlib
import struct
import subprocess
from pathlib import Path

SEEDS = Path("fuzz/seeds")


def write(target, name, data):
    path = SEEDS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def rle_frame(byte, blocks, prefix=b""):
    """A zstd frame: `prefix` as a raw block, then RLE blocks of 128 KiB of `byte` (4 bytes
    each: 32,768:1). Window 128 KiB, no content size."""
    out = bytearray(b"\x28\xb5\x2f\xfd\x00" + bytes([7 << 3]))
    if prefix:
        out += struct.pack("<I", len(prefix) << 3)[:3] + prefix
    for i in range(blocks):
        last = 1 if i + 1 == blocks else 0
        out += struct.pack("<I", last | 1 << 1 | (128 << 10) << 3)[:3] + bytes([byte])
    return bytes(out)


def zstd(data, *args):
    return subprocess.run(["zstd", "-q", "-c", *args], input=data, capture_output=True, check=True).stdout


def chunk_seed(declared_bytes, rows, stored):
    """native_chunk input: declared decompressed size and rows (u16 each), the stored file."""
    return struct.pack("<HH", declared_bytes, rows) + stored


rows = b"".join(b"%d\tname %d\t\\N\tx\\\ty\\\\z\n" % (i, i) for i in range(200))
write("native_chunk", "rows", chunk_seed(len(rows), 200, zstd(rows)))
write("native_chunk", "rows-two-frames", chunk_seed(len(rows) * 2, 400, zstd(rows) + zstd(rows, "-1")))
# 1,000 RLE blocks: 4 KB that decompress to 131 MB, one endless row.
write("native_chunk", "bomb-endless-row", chunk_seed(65535, 1, rle_frame(ord("x"), 1_000)))
write("native_chunk", "bomb-of-line-ends", chunk_seed(65535, 65535, rle_frame(ord("\n"), 1_000)))
write("native_chunk", "bomb-then-garbage", chunk_seed(1000, 0, rle_frame(ord("x"), 1_000) + b"garbage"))
write("native_chunk", "declared-larger-than-it-is", chunk_seed(len(rows) + 1, 200, zstd(rows)))

insert = b"INSERT INTO `t` VALUES (1,'a')"
write("split", "endless-insert.sql", b"SET NAMES utf8mb4;\n" + insert + b",(2,'b')" * 500)
write("split", "endless-string.sql", b"SELECT 1;\nINSERT INTO `t` VALUES ('" + b"x" * 4000)
write("split", "endless-comment.sql", b"SELECT 1;\n/* " + b"x" * 4000)
write("split", "endless-delimiter-line.sql", b"SELECT 1;\nDELIMITER " + b";" * 4000)
write("mysqldump_classify", "endless-insert.sql", b"USE `d`;\n" + insert + b",(2,'b')" * 500)
write("insert_encoder", "endless-values.sql", insert + b",(2,'b')" * 500)

# A MariaDB binlog's format description event, then events whose length field is the
# largest accepted (1 GiB, the body missing) and one past any limit.
fde = (SEEDS / "binlog_reader" / "types").read_bytes()[:4 + 252]


def event_header(size, type_code=2):
    return struct.pack("<IBIII", 0, type_code, 1, size, 0) + b"\x00\x00"


write("binlog_reader", "huge-event-length", fde + event_header(1 << 30) + b"body cut short")
write("binlog_reader", "impossible-event-length", fde + event_header(0xFFFFFFFF) + b"x" * 64)

# A server whose first packet claims 16 MiB - 1 (more to follow), and a login followed by
# a result set whose packet claims the same.
login = (SEEDS / "wire_client" / "login-and-rows").read_bytes()
greeting_len = int.from_bytes(login[:3], "little") + 4
ok_len = int.from_bytes(login[greeting_len:greeting_len + 3], "little") + 4
write("wire_client", "huge-first-packet", b"\xff\xff\xff\x00" + login[4:greeting_len])
write("wire_client", "huge-result-packet", login[:greeting_len + ok_len] + b"\xff\xff\xff\x01" + b"\x02" * 64)

for path in sorted(SEEDS.glob("*/*")):
    if path.suffix != ".py":
        print(f"{path}: {path.stat().st_size} bytes, sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:12]}")
