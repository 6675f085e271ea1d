//! Endpoints, credentials and limits, found where AWS users keep them: the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`), then the shared files of `AWS_PROFILE` (`~/.aws/credentials`,
//! `~/.aws/config`, or `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE`), then instance or
//! web-identity credentials as object_store finds them (unless `AWS_EC2_METADATA_DISABLED`).
//! A secret is never printed: [`StoreOptions`] holds none, and errors name keys, not values.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// How floodgate talks to object storage. Set once per process ([`configure`]); the
/// defaults suit AWS and a store on the same network alike.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The store's URL (`--s3-endpoint`, else `AWS_ENDPOINT_URL`, else the profile's
    /// `endpoint_url`): MinIO, Ceph, R2... addressed path-style. None: AWS itself.
    pub endpoint: Option<String>,
    /// Region for signing (else `AWS_REGION`, the profile's, or `us-east-1`).
    pub region: Option<String>,
    /// How long a read keeps retrying a store that fails or does not answer before the
    /// restore stops (it resumes from its checkpoints when run again).
    pub retry_for: Duration,
    /// One request's limit: a transfer that stalls longer is cut and retried.
    pub request_timeout: Duration,
    /// Bytes per ranged GET.
    pub part_bytes: u64,
    /// Ranged GETs in flight per object read.
    pub parallel: usize,
    /// A key given by the program itself (tests); floodgate's binary leaves it to the
    /// environment and the profile files.
    pub credentials: Option<Credentials>,
}

/// An access key id and its secret. Its Debug shows the id only.
#[derive(Clone)]
pub struct Credentials {
    pub key_id: String,
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, secret hidden)", self.key_id)
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            endpoint: None,
            region: None,
            retry_for: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            part_bytes: 4 << 20,
            parallel: 4,
            credentials: None,
        }
    }
}

impl StoreOptions {
    /// Sizes reads so that `readers` objects read at once (a restore's loaders each reading a
    /// chunk) hold about a quarter of `budget` bytes: each holds its parts in flight, one
    /// waiting and one being read, of [`StoreOptions::part_bytes`] each; at least one in
    /// flight, at most eight.
    pub fn within_budget(mut self, budget: u64, readers: usize) -> StoreOptions {
        let per_reader = budget / 4 / self.part_bytes.max(1) / (readers.max(1) as u64);
        self.parallel = per_reader.saturating_sub(2).clamp(1, 8) as usize;
        self
    }
}

static OPTIONS: OnceLock<StoreOptions> = OnceLock::new();

/// Sets the process's storage options; the first call wins (the binary makes it once, from
/// its flags, before anything is read).
pub fn configure(options: StoreOptions) {
    let _ = OPTIONS.set(options);
}

pub(crate) fn options() -> &'static StoreOptions {
    OPTIONS.get_or_init(StoreOptions::default)
}

/// Credentials and settings of one profile in the shared AWS files.
#[derive(Default)]
pub(crate) struct Profile {
    pub values: HashMap<String, String>,
}

impl Profile {
    /// `AWS_PROFILE` (or `default`) from the credentials file, then the config file (where
    /// its section is `[profile NAME]`, except `[default]`).
    pub fn load() -> Profile {
        let name = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        let credentials =
            std::env::var_os("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from).unwrap_or(home.join(".aws/credentials"));
        let config = std::env::var_os("AWS_CONFIG_FILE").map(PathBuf::from).unwrap_or(home.join(".aws/config"));
        let mut values = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&credentials) {
            values.extend(section(&text, &name));
        }
        if let Ok(text) = std::fs::read_to_string(&config) {
            let header = if name == "default" { name.clone() } else { format!("profile {name}") };
            for (k, v) in section(&text, &header) {
                values.entry(k).or_insert(v);
            }
        }
        Profile { values }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// The `key = value` lines of INI section `[name]`.
fn section(text: &str, name: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = header.trim() == name;
            continue;
        }
        if let (true, Some((k, v))) = (inside, line.split_once('=')) {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

/// The environment variable, when set and not empty.
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_section_is_read_and_others_are_not() {
        let text =
            "[default]\naws_access_key_id = A\n# c\n[profile ops]\nregion = eu-west-1\nendpoint_url=http://x:9000\n";
        assert_eq!(section(text, "default"), vec![("aws_access_key_id".into(), "A".into())]);
        assert_eq!(
            section(text, "profile ops"),
            vec![("region".into(), "eu-west-1".into()), ("endpoint_url".into(), "http://x:9000".into())]
        );
        assert!(section(text, "ops").is_empty());
    }

    #[test]
    fn parts_in_flight_follow_the_budget() {
        let parts =
            |budget_mib: u64, readers| StoreOptions::default().within_budget(budget_mib << 20, readers).parallel;
        assert_eq!(parts(256, 1), 8, "one stream: as many as allowed");
        assert_eq!(parts(256, 4), 2, "four loaders: 4 x (2 + 2) x 4 MiB = 64 MiB");
        assert_eq!(parts(256, 16), 1);
        assert_eq!(parts(0, 1), 1);
    }
}
