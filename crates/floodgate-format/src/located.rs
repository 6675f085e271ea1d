//! Where a directory backup's files are: a directory on disk, or a prefix in object storage
//! listed once. Every directory reader (native, mydumper, MySQL Shell) finds and reads its
//! files through [`Located`], so each reads a bucket exactly as it reads a disk: the same
//! names, the same checks, and every file it plans a [`SqlFile`] the restore reads back
//! pinned (inode on disk, size and ETag in a bucket).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::model::SqlFile;
use crate::{FormatError, Result};

/// A directory backup, on disk or under a prefix in object storage.
#[derive(Debug, Clone)]
pub enum Located {
    /// A directory, canonical.
    Dir(PathBuf),
    Objects {
        /// `s3://bucket/prefix`, without the last `/`: the root paths are shown under.
        root: PathBuf,
        /// The objects under the prefix, by name relative to it.
        by_name: HashMap<String, floodgate_storage::Object>,
    },
}

impl Located {
    /// A directory (canonical), or an `s3://bucket/prefix/` URL (listed now).
    pub fn open(source: &Path) -> Result<Located> {
        match source.to_str().filter(|s| floodgate_storage::is_url(s)) {
            Some(url) => Located::listed(url, floodgate_storage::Object::list(url)?),
            None => Ok(Located::Dir(source.canonicalize().map_err(|e| FormatError::io(source, e))?)),
        }
    }

    /// The backup under `prefix`, from its listing.
    pub fn listed(prefix: &str, objects: Vec<floodgate_storage::Object>) -> Result<Located> {
        let key_prefix = floodgate_storage::ObjectUrl::parse(prefix)?.key;
        let by_name = objects
            .into_iter()
            .filter_map(|o| {
                let rel = o.key().strip_prefix(&key_prefix)?.trim_start_matches('/').to_string();
                Some((rel, o))
            })
            .collect();
        Ok(Located::Objects { root: PathBuf::from(prefix.trim_end_matches('/')), by_name })
    }

    /// The directory, or the prefix as a path (for messages).
    pub fn root(&self) -> PathBuf {
        match self {
            Located::Dir(root) | Located::Objects { root, .. } => root.clone(),
        }
    }

    /// The names directly in the backup (not in its subdirectories), sorted. A name that is
    /// not UTF-8 is refused: no reader could match it against the names its metadata gives.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        match self {
            Located::Dir(root) => {
                for entry in std::fs::read_dir(root).map_err(|e| FormatError::io(root, e))? {
                    let os_name = entry.map_err(|e| FormatError::io(root, e))?.file_name();
                    let Some(name) = os_name.to_str() else {
                        return Err(FormatError::UnsafePath {
                            path: root.clone(),
                            name: os_name.to_string_lossy().into_owned(),
                            reason: "file name is not UTF-8".into(),
                        });
                    };
                    names.push(name.to_string());
                }
            }
            Located::Objects { by_name, .. } => {
                names.extend(by_name.keys().filter(|k| !k.is_empty() && !k.contains('/')).cloned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The backup's subdirectory `name` (one plain name) as a backup of its own: a directory
    /// inside this one (not this one again, not reached through a link out), or the objects
    /// under `prefix/name/`.
    pub fn subdirectory(&self, name: &str) -> Result<Located> {
        let root = self.root();
        check_relative(name, &root)?;
        let out = |reason: &str| FormatError::UnsafePath {
            path: root.clone(),
            name: name.to_string(),
            reason: reason.to_string(),
        };
        match self {
            Located::Dir(dir) => {
                let sub = dir.join(name);
                let sub = sub.canonicalize().map_err(|e| FormatError::io(&sub, e))?;
                match sub.starts_with(dir) && &sub != dir && sub.is_dir() {
                    true => Ok(Located::Dir(sub)),
                    false => Err(out("must be a directory inside the backup")),
                }
            }
            Located::Objects { by_name, .. } => {
                let inner = format!("{name}/");
                let by_name: HashMap<_, _> = by_name
                    .iter()
                    .filter_map(|(k, o)| Some((k.strip_prefix(&inner)?.to_string(), o.clone())))
                    .collect();
                match by_name.is_empty() {
                    true => Err(FormatError::io(
                        &root.join(name),
                        std::io::Error::new(std::io::ErrorKind::NotFound, "nothing stored under this prefix"),
                    )),
                    false => Ok(Located::Objects { root: root.join(name), by_name }),
                }
            }
        }
    }

    /// True if the backup has a file at `rel` (a relative path; no link is followed out).
    pub fn has(&self, rel: &str) -> bool {
        match self {
            Located::Dir(_) => self.file(rel).is_ok(),
            Located::Objects { by_name, .. } => check_relative(rel, &self.root()).is_ok() && by_name.contains_key(rel),
        }
    }

    /// The file at `rel`, a relative path inside the backup: on disk a regular file, reached
    /// through links only if they stay inside the directory; in a bucket, an object under the
    /// prefix. A missing file is an I/O "not found" error naming it (readers of a dump still
    /// being written tell it from damage).
    pub fn file(&self, rel: &str) -> Result<SqlFile> {
        let root = self.root();
        check_relative(rel, &root)?;
        let path = root.join(rel);
        match self {
            Located::Dir(root) => {
                let real = path.canonicalize().map_err(|e| FormatError::io(&path, e))?;
                if !real.starts_with(root) {
                    return Err(FormatError::UnsafePath {
                        path: path.clone(),
                        name: real.display().to_string(),
                        reason: "leads out of the backup directory".into(),
                    });
                }
                let meta = std::fs::metadata(&real).map_err(|e| FormatError::io(&path, e))?;
                if !meta.is_file() {
                    return Err(FormatError::corrupt(&path, None, "expected a regular file"));
                }
                Ok(SqlFile::found(path, &meta))
            }
            Located::Objects { by_name, .. } => match by_name.get(rel) {
                Some(object) => Ok(SqlFile::remote(object.clone())),
                None => {
                    Err(FormatError::io(&path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such object")))
                }
            },
        }
    }

    /// The whole of a small file (metadata, a manifest): at most `limit` bytes, else refused
    /// as no `what` (a huge or endless file is never read into memory).
    pub fn read(&self, rel: &str, limit: u64, what: &str) -> Result<Vec<u8>> {
        let file = self.file(rel)?;
        crate::files::read_whole(&file, limit)?
            .ok_or_else(|| FormatError::corrupt(&file.path, None, format!("larger than {limit} bytes: not {what}")))
    }
}

/// A path named by a backup's metadata must be relative and plain: no `..`, `.`, root or
/// empty component. `at` is where it was read, for the message.
pub fn check_relative(relative: &str, at: &Path) -> Result<()> {
    let unsafe_path = |reason: &str| FormatError::UnsafePath {
        path: at.to_path_buf(),
        name: relative.to_string(),
        reason: reason.to_string(),
    };
    let rel = Path::new(relative);
    if relative.is_empty() || rel.is_absolute() {
        return Err(unsafe_path("paths in a backup must be relative"));
    }
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) || relative.contains("//") {
        return Err(unsafe_path("`..`, `.` and roots are not allowed in backup paths"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_found_inside_and_never_through_a_link_out() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.sql"), "select 1;").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("sub/a.sql"), dir.path().join("in")).unwrap();
        let located = Located::open(dir.path()).unwrap();
        assert_eq!(located.names().unwrap(), ["in", "out", "sub"]);
        assert_eq!(located.file("sub/a.sql").unwrap().bytes, 9);
        assert_eq!(located.file("in").unwrap().bytes, 9);
        assert!(matches!(located.file("out"), Err(FormatError::UnsafePath { .. })));
        assert!(matches!(located.file("sub"), Err(FormatError::Corrupt { .. })));
        assert!(matches!(located.file("../x"), Err(FormatError::UnsafePath { .. })));
        match located.file("gone") {
            Err(FormatError::Io { source, .. }) => assert_eq!(source.kind(), std::io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
        assert!(located.has("sub/a.sql") && !located.has("out") && !located.has("gone"));
        assert_eq!(located.read("sub/a.sql", 9, "a script").unwrap(), b"select 1;");
        assert!(matches!(located.read("sub/a.sql", 8, "a script"), Err(FormatError::Corrupt { .. })));
    }
}
