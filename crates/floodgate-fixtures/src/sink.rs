//! One data file as Shell writes it locally: the data under `<name>.dumping`, compressed as
//! one stream, the `.idx` straight under its final name, then a rename once both are done.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::encode::IdxCadence;

/// Data file compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    Gzip,
    None,
}

impl Compression {
    /// Suffix after the dialect's extension (`tsv.zst`).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
            Compression::None => "",
        }
    }

    /// The `compression` value of `S@T.json`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Compression> {
        match s {
            "zstd" => Some(Compression::Zstd),
            "gzip" => Some(Compression::Gzip),
            "none" => Some(Compression::None),
            _ => None,
        }
    }
}

enum Encoder {
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    Plain(BufWriter<File>),
}

impl Encoder {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.write_all(buf),
            Encoder::Gzip(e) => e.write_all(buf),
            Encoder::Plain(e) => e.write_all(buf),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        let mut inner = match self {
            Encoder::Zstd(e) => e.finish()?,
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Plain(e) => e,
        };
        // no fsync: these are test fixtures, and Shell does not sync either
        inner.flush()
    }
}

/// A data file being written.
pub struct DataFile {
    final_path: PathBuf,
    dumping_path: PathBuf,
    encoder: Encoder,
    idx: IdxCadence,
    rows: u64,
}

/// What a finished data file holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Written {
    pub bytes: u64,
    pub rows: u64,
}

impl DataFile {
    /// Opens `<dir>/<name>.dumping`; `name` is the final file name with its extension.
    pub fn create(dir: &Path, name: &str, compression: Compression) -> std::io::Result<DataFile> {
        let final_path = dir.join(name);
        let dumping_path = dir.join(format!("{name}.dumping"));
        let file = BufWriter::new(File::create(&dumping_path)?);
        let encoder = match compression {
            // level 1 and no content checksum: Shell's zstd defaults
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(file, 1)?),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(file, flate2::Compression::new(1))),
            Compression::None => Encoder::Plain(file),
        };
        Ok(DataFile { final_path, dumping_path, encoder, idx: IdxCadence::default(), rows: 0 })
    }

    /// Writes one encoded row, terminator included.
    pub fn row(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.encoder.write_all(bytes)?;
        self.idx.row(bytes.len() as u64);
        self.rows += 1;
        Ok(())
    }

    /// Uncompressed bytes so far.
    pub fn bytes(&self) -> u64 {
        self.idx.total()
    }

    /// Finishes the stream, writes the `.idx` (under its final name, as Shell does, so it
    /// may be seen before its data file), then renames the data file into place.
    pub fn finish(self) -> std::io::Result<Written> {
        self.encoder.finish()?;
        let mut idx_name = self.final_path.clone().into_os_string();
        idx_name.push(".idx");
        let mut idx = File::create(PathBuf::from(idx_name))?;
        idx.write_all(&self.idx.finish())?;
        std::fs::rename(&self.dumping_path, &self.final_path)?;
        Ok(Written { bytes: self.idx.total(), rows: self.rows })
    }
}
