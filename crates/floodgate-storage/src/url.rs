//! `s3://bucket/key` URLs.

use crate::{Result, StorageError, StorageErrorKind};

/// True when `source` names an object store rather than a local path.
pub fn is_url(source: &str) -> bool {
    source.starts_with("s3://")
}

/// A bucket and a key (or a prefix, ending in `/`) in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectUrl {
    pub bucket: String,
    pub key: String,
}

impl ObjectUrl {
    /// Parses `s3://bucket/key`. The key is taken as written: no percent-decoding, no `.` or
    /// `..` segments (a backup's names must not lead elsewhere in the bucket).
    pub fn parse(url: &str) -> Result<ObjectUrl> {
        let invalid = |why: &str| StorageError::new(StorageErrorKind::Usage, url, why.to_string());
        let rest = url.strip_prefix("s3://").ok_or_else(|| invalid("not an s3:// URL"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || !bucket.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
            return Err(invalid("the bucket name is empty or holds characters bucket names cannot"));
        }
        if key.split('/').any(|s| s == "." || s == "..") || key.contains("//") {
            return Err(invalid("the key holds an empty, `.` or `..` segment"));
        }
        Ok(ObjectUrl { bucket: bucket.to_string(), key: key.to_string() })
    }

    /// The key as object_store names it: the bytes as written (object_store's `From<&str>`
    /// would percent-encode a `%`, and `a%2Eb` would be stored as `a%252Eb`).
    pub(crate) fn store_path(&self) -> Result<object_store::path::Path> {
        object_store::path::Path::parse(&self.key).map_err(|e| {
            StorageError::new(StorageErrorKind::Usage, self.to_url(), format!("not a key object storage takes: {e}"))
        })
    }

    /// `s3://bucket/key`.
    pub fn to_url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

impl std::fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_are_refused() {
        let u = ObjectUrl::parse("s3://backups/nightly/shop.sql.zst").unwrap();
        assert_eq!((u.bucket.as_str(), u.key.as_str()), ("backups", "nightly/shop.sql.zst"));
        assert_eq!(u.to_string(), "s3://backups/nightly/shop.sql.zst");
        assert_eq!(ObjectUrl::parse("s3://b").unwrap().key, "");
        for bad in ["s3:///k", "s3://b/../k", "s3://b/a//k", "s3://b?x/k", "http://b/k", "s3://b/./k"] {
            assert!(ObjectUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(is_url("s3://b/k") && !is_url("/tmp/s3://b"));
    }
}
