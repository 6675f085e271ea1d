//! One object, pinned at what the restore planned from: its size and ETag. Every GET asks
//! for that ETag (`If-Match`) and checks the answer's size and ETag too, so an object
//! replaced mid-restore is refused rather than half-read from two versions.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as StorePath;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::options::{env, options, Profile, StoreOptions};
use crate::retry::retrying;
use crate::{runtime, ObjectUrl, Result, StorageError, StorageErrorKind};

/// How long looking at an object the first time keeps trying: a wrong endpoint should fail
/// in seconds, before anything else is done, not after the data-read patience.
const FIRST_CONTACT: Duration = Duration::from_secs(5);

/// GET requests this process made (see [`gets`]).
static GETS: AtomicU64 = AtomicU64::new(0);

/// GET requests this process has made to object storage, retries included.
pub fn gets() -> u64 {
    GETS.load(Ordering::Relaxed)
}

/// An object as planned: where it is, its size and its ETag.
#[derive(Clone)]
pub struct Object {
    store: Arc<AmazonS3>,
    url: ObjectUrl,
    path: StorePath,
    size: u64,
    etag: Option<String>,
    /// Last written, seconds since the epoch.
    modified: u64,
    gets: Arc<AtomicU64>,
}

fn seconds(meta: &object_store::ObjectMeta) -> u64 {
    u64::try_from(meta.last_modified.timestamp()).unwrap_or(0)
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Object({}, {} bytes, etag {:?})", self.url, self.size, self.etag)
    }
}

impl PartialEq for Object {
    fn eq(&self, other: &Self) -> bool {
        (&self.url, self.size, &self.etag) == (&other.url, other.size, &other.etag)
    }
}

impl Eq for Object {}

impl Object {
    /// Looks the object up (one HEAD): it must exist and be readable with the credentials
    /// found. Fails within seconds on a wrong endpoint, bucket, key or credentials.
    pub fn open(url: &str) -> Result<Object> {
        let parsed = ObjectUrl::parse(url)?;
        let store = client(&parsed.bucket)?;
        let path = parsed.store_path()?;
        let shown = parsed.to_url();
        let meta = {
            let (store, path, shown) = (store.clone(), path.clone(), shown.clone());
            runtime::block_on(async move {
                retrying(&format!("looking at {shown}"), FIRST_CONTACT, || async {
                    store.head(&path).await.map_err(|e| StorageError::from_store(&shown, &e))
                })
                .await
            })?
        };
        let modified = seconds(&meta);
        Ok(Object { store, url: parsed, path, size: meta.size, etag: meta.e_tag, modified, gets: Arc::default() })
    }

    /// Every object under `prefix` (`s3://bucket/some/prefix/`), with its size and ETag as
    /// listed: a directory backup is planned from one listing.
    pub fn list(prefix: &str) -> Result<Vec<Object>> {
        let parsed = ObjectUrl::parse(prefix)?;
        let store = client(&parsed.bucket)?;
        let shown = parsed.to_url();
        let bucket = parsed.bucket.clone();
        let listed = {
            let (store, shown) = (store.clone(), shown.clone());
            let key = parsed.key.clone();
            runtime::block_on(async move {
                retrying(&format!("listing {shown}"), FIRST_CONTACT, || async {
                    let prefix =
                        (!key.is_empty()).then(|| StorePath::parse(key.as_str())).transpose().map_err(|e| {
                            StorageError::new(
                                StorageErrorKind::Usage,
                                &shown,
                                format!("not a key object storage takes: {e}"),
                            )
                        })?;
                    let mut stream = store.list(prefix.as_ref());
                    let mut all = Vec::new();
                    while let Some(meta) = stream.next().await {
                        all.push(meta.map_err(|e| StorageError::from_store(&shown, &e))?);
                    }
                    Ok(all)
                })
                .await
            })?
        };
        Ok(listed
            .into_iter()
            .map(|meta| Object {
                modified: seconds(&meta),
                store: store.clone(),
                url: ObjectUrl { bucket: bucket.clone(), key: meta.location.to_string() },
                path: meta.location,
                size: meta.size,
                etag: meta.e_tag,
                gets: Arc::default(),
            })
            .collect())
    }

    /// The key, relative to `prefix` when it lies under it.
    pub fn key(&self) -> &str {
        &self.url.key
    }

    /// `s3://bucket/key`.
    pub fn url(&self) -> String {
        self.url.to_url()
    }

    /// Its size when it was looked up.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its ETag when it was looked up.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// When it was last written, in seconds since the epoch (0 if the store did not say).
    pub fn modified(&self) -> u64 {
        self.modified
    }

    /// GET requests made for this object (and its clones) so far.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::Relaxed)
    }

    /// Bytes `offset..offset + len` (clipped to the object), in one ranged GET, retried.
    pub fn read_range(&self, offset: u64, len: u64) -> Result<Bytes> {
        let this = self.clone();
        runtime::block_on(async move { this.get(offset, len).await })
    }

    /// A reader of the object from `offset` to its end. Ranged GETs of
    /// [`StoreOptions::part_bytes`] run [`StoreOptions::parallel`] at a time ahead of the
    /// reader and are handed over in order: that many parts are all it holds.
    pub fn reader(&self, offset: u64) -> ObjectReader {
        let o = options();
        self.reader_with(offset, o.part_bytes, o.parallel)
    }

    /// [`Object::reader`] with its own part size and parallelism (a look at the first bytes
    /// needs one small part, not eight large ones).
    pub fn reader_with(&self, offset: u64, part_bytes: u64, parallel: usize) -> ObjectReader {
        let part_bytes = part_bytes.max(1);
        let parts: Vec<(u64, u64)> = (offset..self.size)
            .step_by(usize::try_from(part_bytes).unwrap_or(usize::MAX))
            .map(|start| (start, part_bytes.min(self.size - start)))
            .collect();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let this = self.clone();
        let feeder = runtime::spawn(async move {
            let mut fetched = futures::stream::iter(parts)
                .map(|(start, len)| {
                    let this = this.clone();
                    async move { this.get(start, len).await }
                })
                .buffered(parallel.max(1));
            while let Some(part) = fetched.next().await {
                let failed = part.is_err();
                if tx.send(part).await.is_err() || failed {
                    break;
                }
            }
        });
        ObjectReader { rx, current: Bytes::new(), feeder: feeder.ok(), url: self.url() }
    }

    /// One ranged GET, retried, checked against the planned size and ETag.
    async fn get(&self, offset: u64, len: u64) -> Result<Bytes> {
        let shown = self.url();
        let end = (offset + len).min(self.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let what = format!("reading bytes {offset}..{end} of {shown}");
        retrying(&what, options().retry_for, || async {
            self.gets.fetch_add(1, Ordering::Relaxed);
            GETS.fetch_add(1, Ordering::Relaxed);
            let request = GetOptions {
                range: Some(GetRange::Bounded(offset..end)),
                if_match: self.etag.clone(),
                ..Default::default()
            };
            let got =
                self.store.get_opts(&self.path, request).await.map_err(|e| StorageError::from_store(&shown, &e))?;
            self.check(&got.meta)?;
            // A body cut short by a stalled or reset transfer is an error here, and retried.
            let bytes = got.bytes().await.map_err(|e| StorageError::from_store(&shown, &e))?;
            if bytes.len() as u64 != end - offset {
                return Err(StorageError::new(
                    StorageErrorKind::Unreachable,
                    &shown,
                    format!("asked for bytes {offset}..{end}, got {} bytes", bytes.len()),
                ));
            }
            Ok(bytes)
        })
        .await
    }

    /// The object a GET answered from must be the one planned.
    fn check(&self, meta: &object_store::ObjectMeta) -> Result<()> {
        let etag_changed = self.etag.is_some() && meta.e_tag.is_some() && meta.e_tag != self.etag;
        if meta.size != self.size || etag_changed {
            return Err(StorageError::new(
                StorageErrorKind::Changed,
                self.url(),
                format!(
                    "the object changed during the restore: it was {} bytes (ETag {}) when planned, now {} bytes (ETag {})",
                    self.size,
                    self.etag.as_deref().unwrap_or("none"),
                    meta.size,
                    meta.e_tag.as_deref().unwrap_or("none")
                ),
            ));
        }
        Ok(())
    }
}

/// Reads an object in order from parts fetched ahead ([`Object::reader`]).
pub struct ObjectReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes>>,
    current: Bytes,
    feeder: Option<tokio::task::JoinHandle<()>>,
    url: String,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match futures::executor::block_on(self.rx.recv()) {
                Some(Ok(part)) => self.current = part,
                Some(Err(e)) => return Err(std::io::Error::new(io_kind(e.kind), e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        // A reader dropped early (an error downstream, a cancelled restore) stops fetching.
        if let Some(feeder) = self.feeder.take() {
            feeder.abort();
        }
        tracing::trace!("reader of {} closed", self.url);
    }
}

/// How a storage failure shows to a reader of bytes: a store that cannot be reached is not
/// damage in the backup (the pipeline takes other read errors for damage); an object that
/// changed is.
fn io_kind(kind: StorageErrorKind) -> std::io::ErrorKind {
    match kind {
        StorageErrorKind::Unreachable => std::io::ErrorKind::TimedOut,
        StorageErrorKind::Denied => std::io::ErrorKind::PermissionDenied,
        StorageErrorKind::NotFound => std::io::ErrorKind::NotFound,
        StorageErrorKind::Usage => std::io::ErrorKind::InvalidInput,
        StorageErrorKind::Changed => std::io::ErrorKind::InvalidData,
    }
}

/// The client of `bucket`, made once per process.
pub(crate) fn client(bucket: &str) -> Result<Arc<AmazonS3>> {
    static CLIENTS: Mutex<Option<HashMap<String, Arc<AmazonS3>>>> = Mutex::new(None);
    let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    let clients = clients.get_or_insert_with(HashMap::new);
    if let Some(c) = clients.get(bucket) {
        return Ok(c.clone());
    }
    // object_store's HTTPS goes through rustls; floodgate uses its ring provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let made = Arc::new(build(bucket, options())?);
    clients.insert(bucket.to_string(), made.clone());
    Ok(made)
}

fn build(bucket: &str, o: &StoreOptions) -> Result<AmazonS3> {
    let url = format!("s3://{bucket}/");
    let profile = Profile::load();
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let given = o.credentials.clone();
    let key_id = given
        .as_ref()
        .map(|c| c.key_id.clone())
        .or_else(|| env("AWS_ACCESS_KEY_ID"))
        .or_else(|| profile.get("aws_access_key_id").map(str::to_string));
    let secret = given
        .map(|c| c.secret)
        .or_else(|| env("AWS_SECRET_ACCESS_KEY"))
        .or_else(|| profile.get("aws_secret_access_key").map(str::to_string));
    match (key_id, secret) {
        (Some(id), Some(secret)) => {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret);
            if let Some(token) =
                env("AWS_SESSION_TOKEN").or_else(|| profile.get("aws_session_token").map(str::to_string))
            {
                builder = builder.with_token(token);
            }
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(StorageError::new(
                StorageErrorKind::Denied,
                url,
                "only half a key: both an access key id and a secret access key are needed (AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or aws_access_key_id and aws_secret_access_key in the profile)",
            ))
        }
        (None, None) if env("AWS_WEB_IDENTITY_TOKEN_FILE").is_none() && metadata_disabled() => {
            return Err(StorageError::new(
                StorageErrorKind::Denied,
                url,
                "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a shared \
                 credentials file (instance credentials are off: AWS_EC2_METADATA_DISABLED)",
            ))
        }
        (None, None) => {}
    }
    let region = o
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| profile.get("region").map(str::to_string))
        .unwrap_or_else(|| "us-east-1".into());
    builder = builder.with_region(region);
    let endpoint = o
        .endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .or_else(|| profile.get("endpoint_url").map(str::to_string));
    let mut client = ClientOptions::new().with_timeout(o.request_timeout).with_connect_timeout(Duration::from_secs(5));
    if let Some(endpoint) = endpoint {
        // A store of one's own (MinIO, Ceph, R2...) is addressed path-style; plain HTTP only
        // when its URL says so.
        client = client.with_allow_http(endpoint.starts_with("http://"));
        builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
    }
    // Requests are retried by this crate's policy (retry.rs), which also covers bodies cut
    // short; object_store's own retries would multiply its waits.
    let retry = RetryConfig { max_retries: 0, retry_timeout: o.request_timeout, ..Default::default() };
    builder
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .map_err(|e| StorageError::new(StorageErrorKind::Usage, url, format!("cannot set up the client: {e}")))
}

/// `AWS_EC2_METADATA_DISABLED=true`: the AWS tools' switch for instance credentials.
fn metadata_disabled() -> bool {
    env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}
