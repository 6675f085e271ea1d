//! Shows a restore's progress: an indicatif bar on a terminal, a plain line every few
//! seconds otherwise (logs, CI, cron), nothing with --progress none.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use floodgate_pipeline::Progress;
use indicatif::{HumanBytes, HumanCount, ProgressBar, ProgressStyle};

use crate::args::ProgressArg;

/// The running display; stop it with [`Display::finish`].
pub struct Display {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Display {
    pub fn start(progress: Arc<Progress>, mode: ProgressArg) -> Display {
        let stop = Arc::new(AtomicBool::new(false));
        let tty = std::io::stderr().is_terminal();
        let thread = match mode {
            ProgressArg::None => Some(spawn_notices(progress, stop.clone())),
            ProgressArg::Auto if tty => Some(spawn_bar(progress, stop.clone())),
            _ => Some(spawn_plain(progress, stop.clone(), plain_interval())),
        };
        Display { stop, thread }
    }

    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn plain_interval() -> Duration {
    let secs = std::env::var("FLOODGATE_PROGRESS_INTERVAL").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(10.0);
    Duration::from_secs_f64(secs.max(0.1))
}

fn summary(p: &Progress) -> String {
    let paused = p.paused().map(|why| format!(", paused ({why})")).unwrap_or_default();
    format!(
        "{} rows, tables {}/{}, chunks {}/{}{paused}",
        HumanCount(Progress::get(&p.rows_done)),
        Progress::get(&p.tables_done),
        Progress::get(&p.tables_total),
        Progress::get(&p.chunks_done),
        Progress::get(&p.chunks_total)
    )
}

/// The bar when the total is known: a percentage and an ETA.
const KNOWN: &str = "{spinner} {prefix:9} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}";
/// Standard input has no size: what was read, and how fast, but no percentage or ETA.
const UNKNOWN: &str = "{spinner} {prefix:9} {bytes} read, {bytes_per_sec} {msg}";

fn spawn_bar(progress: Arc<Progress>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let bar = ProgressBar::new(Progress::get(&progress.bytes_total).max(1));
        let style = |template: &str| {
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ")
        };
        let mut known = None;
        while !stop.load(Ordering::Relaxed) {
            for n in progress.take_notices() {
                bar.println(format!("floodgate: {n}"));
            }
            let total = Progress::get(&progress.bytes_total);
            if known != Some(total > 0) {
                known = Some(total > 0);
                bar.set_style(style(if total > 0 { KNOWN } else { UNKNOWN }));
            }
            bar.set_length(total.max(1));
            bar.set_position(Progress::get(&progress.bytes_done));
            bar.set_prefix(progress.phase().name());
            bar.set_message(summary(&progress));
            bar.tick();
            std::thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
    })
}

fn spawn_plain(progress: Arc<Progress>, stop: Arc<AtomicBool>, every: Duration) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut next = started + every;
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            print_notices(&progress);
            if !stopping {
                std::thread::sleep(Duration::from_millis(50));
                if Instant::now() < next {
                    continue;
                }
                next += every;
            }
            eprintln!("floodgate: {}", plain_line(&progress, started.elapsed().as_secs_f64()));
            // One last line when the restore ends, so a log always shows where it stopped.
            if stopping {
                break;
            }
        }
    })
}

/// One progress line: with a percentage and an ETA when the total is known, else what was
/// read and the rates (standard input has no size).
fn plain_line(progress: &Progress, elapsed: f64) -> String {
    let done = Progress::get(&progress.bytes_done);
    let total = Progress::get(&progress.bytes_total);
    let phase = progress.phase().name();
    if total == 0 {
        let rate = |n: u64| if elapsed > 0.0 { n as f64 / elapsed } else { 0.0 };
        return format!(
            "{phase}: {} read ({}/s), {} ({:.0} rows/s), elapsed {elapsed:.0}s",
            HumanBytes(done),
            HumanBytes(rate(done) as u64),
            summary(progress),
            rate(Progress::get(&progress.rows_done))
        );
    }
    let eta = if done > 0 { elapsed * (total - done.min(total)) as f64 / done as f64 } else { f64::NAN };
    format!(
        "{phase}: {:.0}% {}/{} {}, elapsed {elapsed:.0}s, ETA {}",
        100.0 * done.min(total) as f64 / total as f64,
        HumanBytes(done),
        HumanBytes(total),
        summary(progress),
        if eta.is_finite() { format!("{eta:.0}s") } else { "?".into() }
    )
}

fn print_notices(progress: &Progress) {
    for n in progress.take_notices() {
        eprintln!("floodgate: {n}");
    }
}

/// With `--progress none`: no progress, but what the user must know (resuming) still shows.
fn spawn_notices(progress: Arc<Progress>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || loop {
        let stopping = stop.load(Ordering::Relaxed);
        print_notices(&progress);
        if stopping {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_total_shows_no_percentage() {
        let p = Progress::default();
        Progress::add(&p.bytes_done, 321 << 20);
        Progress::add(&p.rows_done, 5000);
        let line = plain_line(&p, 10.0);
        assert!(!line.contains('%') && !line.contains("ETA"), "{line}");
        assert!(line.contains("321.00 MiB read (32.10 MiB/s)") && line.contains("500 rows/s"), "{line}");
        Progress::add(&p.bytes_total, 642 << 20);
        let line = plain_line(&p, 10.0);
        assert!(line.contains("50% 321.00 MiB/642.00 MiB") && line.contains("ETA 10s"), "{line}");
    }
}
