//! Sharing a live target. `--throttle NAME>N` holds the loaders between chunks while a global
//! status variable is above N, and `--max-replica-lag S` while a `--replica` is more than S
//! seconds behind or not replicating (each sampled once a second on connections of their
//! own, as myloader's and pt-online-schema-change's throttles do); `--max-rate` spaces chunk
//! starts so the bytes loaded average at most that rate. A loader always finishes the chunk
//! it is in: pausing inside its transaction would only hold its locks longer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use floodgate_pipeline::Progress;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::watch;

use crate::{LoadError, Result};

/// How often the status variable is read.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// `NAME>N`: pause while the global status variable NAME is above N.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLimit {
    pub name: String,
    pub above: u64,
}

impl std::str::FromStr for StatusLimit {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let usage = || format!("{text:?}: NAME>N, a global status variable and a number, e.g. Threads_running>20");
        let (name, limit) = text.split_once('>').ok_or_else(usage)?;
        let name = name.trim();
        let plain = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let above = limit.trim().parse::<u64>().map_err(|_| usage())?;
        match plain {
            true => Ok(StatusLimit { name: name.to_string(), above }),
            false => Err(usage()),
        }
    }
}

impl std::fmt::Display for StatusLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}>{}", self.name, self.above)
    }
}

/// The gate every loader passes before a chunk.
pub(crate) struct Throttle {
    limit: Option<StatusLimit>,
    /// Bytes per second.
    rate: Option<f64>,
    /// `--max-replica-lag` seconds.
    max_replica_lag: Option<u64>,
    closed: watch::Sender<bool>,
    /// When the next chunk may start under `rate`.
    next_start: Mutex<Instant>,
    /// Microseconds loaders spent held, summed over loaders.
    held_micros: AtomicU64,
    /// Microseconds the gate was closed by the status limit (wall time).
    paused_micros: AtomicU64,
}

impl Throttle {
    pub fn new(limit: Option<StatusLimit>, rate: Option<f64>, max_replica_lag: Option<u64>) -> Throttle {
        Throttle {
            rate: rate.filter(|r| *r > 0.0),
            // Closed until the first sample says otherwise (see `watch`).
            closed: watch::channel(limit.is_some() || max_replica_lag.is_some()).0,
            max_replica_lag,
            next_start: Mutex::new(Instant::now()),
            held_micros: AtomicU64::new(0),
            paused_micros: AtomicU64::new(0),
            limit,
        }
    }

    /// True when neither limit is set.
    pub fn is_off(&self) -> bool {
        self.limit.is_none() && self.rate.is_none() && self.max_replica_lag.is_none()
    }

    /// Waits until a chunk of `bytes` may start: the status limit is not exceeded, and
    /// under `--max-rate` its turn has come.
    pub async fn before_chunk(&self, bytes: u64) {
        if self.is_off() {
            return;
        }
        let started = Instant::now();
        let mut closed = self.closed.subscribe();
        let _ = closed.wait_for(|closed| !closed).await;
        if let Some(rate) = self.rate {
            let start = match self.next_start.lock() {
                Ok(mut next) => {
                    let start = (*next).max(Instant::now());
                    *next = start + Duration::from_secs_f64(bytes as f64 / rate);
                    start
                }
                Err(_) => Instant::now(),
            };
            tokio::time::sleep_until(start.into()).await;
        }
        self.held_micros.fetch_add(micros(started.elapsed()), Ordering::Relaxed);
    }

    /// Reads the status variable once: refused when the server has no such variable.
    pub async fn sample(&self, conn: &mut Conn) -> Result<Option<u64>> {
        let Some(limit) = &self.limit else { return Ok(None) };
        let query = format!("SHOW GLOBAL STATUS WHERE Variable_name = '{}'", limit.name);
        let row: Option<(String, String)> =
            conn.query_first(&query).await.map_err(LoadError::sql(format!("--throttle {limit}: {query}")))?;
        let Some((_, value)) = row else {
            return Err(LoadError::Refused(format!(
                "--throttle {limit}: the target has no global status variable {} (see SHOW GLOBAL STATUS)",
                limit.name
            )));
        };
        value
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| LoadError::Refused(format!("--throttle {limit}: {} is {value:?}, not a number", limit.name)))
    }

    /// Samples the status variable (on `conn`) and each replica's lag every second and opens
    /// or closes the gate, telling the user each time; runs until the task is dropped. A
    /// sample that fails (a server restarting) does not hold the loaders: they then meet the
    /// failure themselves, or the replica is waited for at the next sample.
    pub async fn watch(&self, mut conn: Option<Conn>, mut replicas: Vec<Replica>, progress: &Progress) {
        // The gate starts closed, so no loader slips past before the first sample.
        let mut paused_since: Option<Instant> = Some(Instant::now());
        let mut first = true;
        loop {
            let mut reasons = Vec::new();
            if let (Some(limit), Some(conn)) = (&self.limit, conn.as_mut()) {
                if let Ok(Some(value)) = self.sample(conn).await {
                    if value > limit.above {
                        reasons.push(format!("{} = {value} > {}", limit.name, limit.above));
                    }
                }
            }
            for replica in &mut replicas {
                reasons.extend(replica.behind().await);
            }
            let reason = reasons.join("; ");
            match (!reasons.is_empty(), paused_since) {
                (true, _) if first => {
                    progress.set_paused(Some(reason.clone()));
                    progress.notice(format!("paused between chunks: {reason}"));
                }
                (true, None) => {
                    progress.set_paused(Some(reason.clone()));
                    progress.notice(format!("paused between chunks: {reason}"));
                    paused_since = Some(Instant::now());
                    self.closed.send_replace(true);
                }
                (true, Some(_)) => progress.set_paused(Some(reason)),
                (false, Some(since)) => {
                    self.paused_micros.fetch_add(micros(since.elapsed()), Ordering::Relaxed);
                    progress.set_paused(None);
                    if !first {
                        progress.notice(format!("resumed after {:.0} s", since.elapsed().as_secs_f64()));
                    }
                    paused_since = None;
                    self.closed.send_replace(false);
                }
                (false, None) => {}
            }
            first = false;
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    }

    /// What the throttles cost this restore, for the report.
    pub fn report(&self) -> Option<ThrottleReport> {
        (!self.is_off()).then(|| ThrottleReport {
            limit: self.limit.as_ref().map(ToString::to_string),
            max_replica_lag: self.max_replica_lag,
            max_rate_bytes_per_second: self.rate.map(|r| r as u64),
            paused_seconds: seconds(self.paused_micros.load(Ordering::Relaxed)),
            loader_wait_seconds: seconds(self.held_micros.load(Ordering::Relaxed)),
        })
    }
}

/// A replica (`--replica`) whose lag holds the loaders (`--max-replica-lag`).
pub(crate) struct Replica {
    /// How the user named it.
    pub name: String,
    pub conn: Conn,
    pub info: floodgate_conn::server::ServerInfo,
    pub max_lag: u64,
}

impl Replica {
    /// Connects to each replica: one that does not replicate is refused (a typo would
    /// otherwise throttle nothing). Returns them with the least replication packet limit.
    pub async fn connect_all(replicas: &[crate::ConnectOptions], max_lag: u64) -> Result<(Vec<Replica>, u64)> {
        let mut out = Vec::new();
        let mut packet = u64::MAX;
        for options in replicas {
            let name = options.describe();
            let mut conn = floodgate_conn::connect(options, &[]).await?;
            let info = floodgate_conn::server::ServerInfo::read(&mut conn).await?;
            if info.replication_lag(&mut conn).await?.is_none() {
                return Err(LoadError::Refused(format!(
                    "--replica {name} is not a replica (it shows no replication status); nothing was changed"
                )));
            }
            packet = packet.min(info.replica_packet_limit(&mut conn).await?);
            out.push(Replica { name, conn, info, max_lag });
        }
        Ok((out, packet))
    }

    /// Why the loaders must wait for this replica now, if they must.
    async fn behind(&mut self) -> Option<String> {
        match self.info.replication_lag(&mut self.conn).await {
            Ok(Some(Some(lag))) if lag > self.max_lag => {
                Some(format!("replica {} is {lag} s behind (--max-replica-lag {})", self.name, self.max_lag))
            }
            Ok(Some(Some(_))) => None,
            Ok(Some(None)) => Some(format!("replica {} is not replicating (Seconds_Behind_Master is NULL)", self.name)),
            Ok(None) => Some(format!("replica {} no longer shows a replication status", self.name)),
            Err(e) => {
                tracing::warn!("reading the lag of replica {}: {e}", self.name);
                None
            }
        }
    }
}

/// `--throttle` and `--max-rate` in the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ThrottleReport {
    /// `NAME>N`, as given.
    pub limit: Option<String>,
    /// `--max-replica-lag` seconds.
    pub max_replica_lag: Option<u64>,
    pub max_rate_bytes_per_second: Option<u64>,
    /// Wall seconds the status limit or a lagging replica held the loaders.
    pub paused_seconds: f64,
    /// Seconds loaders waited before chunks, summed over loaders (both throttles).
    pub loader_wait_seconds: f64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn seconds(micros: u64) -> f64 {
    micros as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_as_name_above_number() {
        let l: StatusLimit = "Threads_running>20".parse().unwrap();
        assert_eq!(l, StatusLimit { name: "Threads_running".into(), above: 20 });
        assert_eq!(l.to_string(), "Threads_running>20");
        assert_eq!(" Threads_connected > 5 ".parse::<StatusLimit>().unwrap().above, 5);
        for bad in ["Threads_running", ">4", "Threads_running>x", "a'b>1", "x>-1", "Threads running>3", ""] {
            assert!(bad.parse::<StatusLimit>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn max_rate_spaces_chunk_starts() {
        let throttle = Throttle::new(None, Some(1_000_000.0), None);
        let started = Instant::now();
        for _ in 0..3 {
            throttle.before_chunk(100_000).await;
        }
        // The first starts at once, the third 0.2 s of budget later.
        assert!(started.elapsed() >= Duration::from_millis(190), "{:?}", started.elapsed());
        assert!(throttle.report().unwrap().loader_wait_seconds > 0.15);
    }

    #[tokio::test]
    async fn a_closed_gate_holds_loaders_until_it_opens() {
        let throttle = std::sync::Arc::new(Throttle::new(Some("x>1".parse().unwrap()), None, None));
        throttle.closed.send_replace(true);
        let waiter = {
            let throttle = throttle.clone();
            tokio::spawn(async move { throttle.before_chunk(1).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        throttle.closed.send_replace(false);
        waiter.await.unwrap();
    }
}
