//! Files floodgate reads from a backup ([`open_planned`], [`read_whole`], [`read_at`]), and files it writes: a dump's chunks, schema and manifest, reports and metrics. They
//! hold a copy of the database (or name its hosts), so they are private to their owner:
//! directories 0700, files 0600 unless a reader needs more. Files are created new, never
//! through a symbolic link (`O_NOFOLLOW`), and a file that replaces another is written under
//! an unpredictable temporary name and renamed over it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Owner only: read and write.
pub const PRIVATE: u32 = 0o600;

/// Creates `dir` and its missing parents, readable by their owner only.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates a new file with `mode`; fails if anything (a file, a link) is already there.
pub fn create_new(path: &Path, mode: u32) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(libc::O_NOFOLLOW).open(path)
}

/// Writes `bytes` to `path` with `mode`, replacing what is there atomically: a temporary file
/// beside it, synced, renamed over it, the directory synced. A symbolic link at `path` is
/// replaced, never followed.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = temporary_beside(path);
    let written = create_new(&tmp, mode).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all())
}

/// `.NAME.RANDOM.tmp` in the same directory: hidden, not matching the final name's
/// extension (a collector of `*.prom` never reads it half-written), and not guessable, so
/// no one can plant a link there first.
fn temporary_beside(path: &Path) -> PathBuf {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{:016x}.tmp", hasher.finish()))
}

/// Opens a backup file for reading, once, and checks it is the regular file the plan was
/// made from: one replaced since by a link elsewhere, a FIFO or another file is refused
/// (`InvalidData`). Opened without blocking, so a FIFO cannot hang the open. Returns the
/// reader and the file's size now. An object in object storage is read in ranges, each
/// checked to be the object as listed (an object replaced since is `InvalidData` too).
pub fn open_planned(file: &crate::SqlFile) -> std::io::Result<(Box<dyn std::io::Read + Send>, u64)> {
    use std::os::unix::fs::MetadataExt;
    if let Some(object) = &file.object {
        return Ok((Box::new(object.reader(0)), object.size()));
    }
    let f = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&file.path)?;
    let meta = f.metadata()?;
    let swapped = |what: &str| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what} since the backup was read: not read"))
    };
    if !meta.is_file() {
        return Err(swapped("no longer a regular file"));
    }
    match file.identity {
        Some(id) if (id.dev, id.ino) != (meta.dev(), meta.ino()) => Err(swapped("replaced by another file")),
        _ => Ok((Box::new(f), meta.len())),
    }
}

/// The whole of `file` if it holds at most `limit` bytes, else None: small files only
/// (metadata, scripts), read once, pinned as [`open_planned`] pins them.
pub fn read_whole(file: &crate::SqlFile, limit: u64) -> crate::Result<Option<Vec<u8>>> {
    use std::io::Read;
    if let Some(object) = &file.object {
        return match object.size() <= limit {
            true => Ok(Some(object.read_range(0, object.size())?.to_vec())),
            false => Ok(None),
        };
    }
    let failed = |e| crate::FormatError::io(&file.path, e);
    let (reader, _) = open_planned(file).map_err(failed)?;
    let mut bytes = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(failed)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// `len` bytes of `file` from `offset` (an index's last entry, a trailer).
pub fn read_at(file: &crate::SqlFile, offset: u64, len: u64) -> crate::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    if let Some(object) = &file.object {
        return Ok(object.read_range(offset, len)?.to_vec());
    }
    let failed = |e| crate::FormatError::io(&file.path, e);
    let mut f = File::open(&file.path).map_err(failed)?;
    let mut bytes = vec![0; usize::try_from(len).map_err(|e| failed(std::io::Error::other(e)))?];
    f.seek(SeekFrom::Start(offset)).and_then(|_| f.read_exact(&mut bytes)).map_err(failed)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn files_are_private_and_links_are_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        create_private_dir(&sub).unwrap();
        assert_eq!(std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777, 0o700);
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let report = sub.join("report.json");
        std::os::unix::fs::symlink(&victim, &report).unwrap();
        assert!(create_new(&report, PRIVATE).is_err(), "never through a link");
        replace(&report, b"{}", PRIVATE).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        let meta = std::fs::symlink_metadata(&report).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1, "no temporary file left");
    }
}
