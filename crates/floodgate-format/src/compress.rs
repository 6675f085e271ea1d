//! Transparent decompression, chosen by the file's magic bytes, never by its name alone.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::{FormatError, Result};

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain bytes.
    None,
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// zstd, possibly several frames.
    Zstd,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Identifies the compression from the first bytes of a file.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// The file-name suffix that announces this compression, if any.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }
}

/// Strips a `.gz` or `.zst` suffix from a file name.
pub fn strip_suffix(name: &str) -> &str {
    name.strip_suffix(".gz").or_else(|| name.strip_suffix(".zst")).unwrap_or(name)
}

/// Wraps `reader` in the decoder its first bytes call for.
pub fn decoder<R: Read + Send + 'static>(reader: R) -> std::io::Result<Box<dyn Read + Send>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered.fill_buf()?;
    Ok(match Compression::sniff(head) {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    })
}

/// Opens a planned backup file ([`crate::files::open_planned`]) and decompresses it if its
/// magic bytes say so.
pub fn open_planned(file: &crate::SqlFile) -> Result<Box<dyn Read + Send>> {
    let (f, _) = crate::files::open_planned(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => FormatError::corrupt(&file.path, None, e.to_string()),
        _ => FormatError::io(&file.path, e),
    })?;
    decoder(f).map_err(|e| FormatError::io(&file.path, e))
}

/// Opens a backup's file (on disk or in object storage) and decompresses it if its magic
/// bytes say so.
pub fn open_file(file: &crate::SqlFile) -> Result<Box<dyn Read + Send>> {
    match &file.object {
        Some(object) => decoder(object.reader(0)).map_err(|e| FormatError::io(&file.path, e)),
        None => open(&file.path),
    }
}

/// Opens `path` and decompresses it if its magic bytes say so.
pub fn open(path: &Path) -> Result<Box<dyn Read + Send>> {
    let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
    decoder(file).map_err(|e| FormatError::io(path, e))
}

/// A reader that yields at most `limit` bytes of `inner`: a byte more is an error
/// (`InvalidData`) at once, so a file or a decompressed stream larger than its manifest
/// declares stops there instead of running on (a zstd or gzip bomb expands ~32,000:1).
#[derive(Debug)]
pub struct AtMost<R> {
    inner: R,
    limit: u64,
    left: u64,
    /// What is counted, for the error: "decompressed bytes", "bytes on disk".
    what: &'static str,
}

impl<R: Read> AtMost<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, limit: u64, what: &'static str) -> Self {
        AtMost { inner, limit, left: limit, what }
    }
}

impl<R: Read> Read for AtMost<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // One byte past the limit is enough to know it is passed.
        let room = usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..room])?;
        if n as u64 > self.left {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("more than the {} {} the manifest declares", self.limit, self.what),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Appends `data` as one zstd frame of raw (stored) blocks: valid zstd that any decoder
/// reads, at the cost of a copy. `floodgate dump --compress-level 0` writes these, for disks
/// fast enough that compressing costs more time than it saves.
pub fn stored_zstd_frame(data: &[u8], out: &mut Vec<u8>) {
    // RFC 8878: raw blocks hold at most 128 KiB each.
    const MAX_BLOCK: usize = 128 << 10;
    out.extend_from_slice(&ZSTD_MAGIC);
    // Frame header descriptor: single segment (no window descriptor), 8-byte content size.
    out.push(0b1110_0000);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let mut blocks = data.chunks(MAX_BLOCK).peekable();
    if blocks.peek().is_none() {
        // An empty frame still needs one (last, empty) block.
        out.extend_from_slice(&[1, 0, 0]);
    }
    while let Some(block) = blocks.next() {
        let last = u32::from(blocks.peek().is_none());
        // Block header, little endian: last flag, type 0 (raw), size.
        let header = last | (block.len() as u32) << 3;
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(block);
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn stored_frames_decode_to_their_input() {
        for len in [0, 1, 128 << 10, (128 << 10) + 1, 1 << 20, (1 << 20) + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut frame = Vec::new();
            stored_zstd_frame(&data, &mut frame);
            assert_eq!(zstd::decode_all(&frame[..]).unwrap(), data, "{len} bytes");
            assert_eq!(Compression::sniff(&frame), Compression::Zstd);
        }
        // Frames concatenate like any zstd frames.
        let mut two = Vec::new();
        stored_zstd_frame(b"one ", &mut two);
        stored_zstd_frame(b"two", &mut two);
        assert_eq!(zstd::decode_all(&two[..]).unwrap(), b"one two");
    }
    use super::*;
    use std::io::Write;

    fn roundtrip(data: &[u8], compressed: Vec<u8>) {
        let mut out = Vec::new();
        decoder(std::io::Cursor::new(compressed)).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn sniffs_and_decodes_each_kind() {
        let data = b"INSERT INTO t VALUES (1);\n".repeat(100);
        roundtrip(&data, data.clone());
        roundtrip(&data, zstd::encode_all(&data[..], 3).unwrap());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        roundtrip(&data, gz.finish().unwrap());
    }

    /// A stream longer than its limit fails on the first byte past it; one exactly as long
    /// reads to its end.
    #[test]
    fn at_most_stops_one_byte_past_the_limit() {
        let data = vec![7u8; 1000];
        let mut out = Vec::new();
        AtMost::new(&data[..], 1000, "bytes").read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 1000);
        let mut short = AtMost::new(&data[..], 999, "decompressed bytes");
        let err = std::io::copy(&mut short, &mut std::io::sink()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("more than the 999 decompressed bytes"), "{err}");
    }

    #[test]
    fn corrupt_gzip_is_an_error_not_a_panic() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&b"hello world ".repeat(1000)).unwrap();
        let mut bytes = gz.finish().unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        let mut out = Vec::new();
        assert!(decoder(std::io::Cursor::new(bytes)).unwrap().read_to_end(&mut out).is_err());
    }
}
