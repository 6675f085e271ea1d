//! The drill's metrics in node_exporter's textfile format (`--prometheus FILE.prom`).
//!
//! node_exporter's textfile collector reads every `*.prom` file in its directory on each
//! scrape, so the file is written whole to a temporary name in the same directory and
//! renamed over the old one: a scrape never sees half a file. A failed drill keeps the
//! previous file's last-success timestamp, so "time since the last good drill" keeps
//! growing across failures instead of resetting.

use std::path::Path;

use crate::report::{DrillReport, Status};
use crate::{DrillError, Result};

const LAST_SUCCESS: &str = "floodgate_drill_last_success_timestamp_seconds";

/// Writes the metrics of `report` to `path`, labelled `backup="label"`; `finished_at` is
/// the drill's end in seconds since the epoch.
pub fn write_textfile(path: &Path, label: &str, report: &DrillReport, finished_at: f64) -> Result<()> {
    let previous = std::fs::read_to_string(path).ok().and_then(|t| last_success(&t));
    let success = report.status == Status::Success;
    let last = if success { Some(finished_at) } else { previous };
    let text = render(label, report, finished_at, last);
    // Group-readable (0640): node_exporter reads it, and may run in the file's group.
    floodgate_format::files::replace(path, text.as_bytes(), 0o640)
        .map_err(DrillError::io(format!("writing --prometheus {}", path.display())))
}

/// The value of the last-success metric in an earlier file, if it has one.
fn last_success(text: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(LAST_SUCCESS))
        .find_map(|l| l.rsplit(' ').next().and_then(|v| v.trim().parse::<f64>().ok()))
}

/// A label value with `\`, `"` and line feeds escaped, as the exposition format requires.
fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn render(label: &str, report: &DrillReport, finished_at: f64, last_success: Option<f64>) -> String {
    let l = format!("{{backup=\"{}\"}}", escape(label));
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, value: String| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name}{l} {value}\n"));
    };
    let success = u8::from(report.status == Status::Success);
    metric(
        "floodgate_drill_success",
        "1 if the last restore drill passed every check, 0 if it failed.",
        success.to_string(),
    );
    metric(
        "floodgate_drill_exit_code",
        "Exit code of the last drill (0 ok, 1 failure, 3 integrity).",
        report.exit_code.to_string(),
    );
    metric(
        "floodgate_drill_duration_seconds",
        "Wall seconds of the last drill, start to end.",
        format!("{:.3}", report.seconds),
    );
    metric(
        "floodgate_drill_restore_seconds",
        "Seconds the last drill's restore took (the recovery time), NaN if it did not finish.",
        report.restore_seconds.map_or("NaN".into(), |s| format!("{s:.3}")),
    );
    metric("floodgate_drill_bytes", "Bytes of backup data the last drill restored.", report.bytes.to_string());
    metric("floodgate_drill_rows", "Rows the last drill restored.", report.rows.to_string());
    metric(
        "floodgate_drill_last_run_timestamp_seconds",
        "When the last drill ended, seconds since the epoch.",
        format!("{finished_at:.0}"),
    );
    if let Some(t) = last_success {
        metric(LAST_SUCCESS, "When a drill of this backup last passed, seconds since the epoch.", format!("{t:.0}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_escapes() {
        assert_eq!(
            last_success("# HELP x\nfloodgate_drill_last_success_timestamp_seconds{backup=\"a b\"} 1700000000\n"),
            Some(1.7e9)
        );
        assert_eq!(last_success("floodgate_drill_success{backup=\"a\"} 1\n"), None);
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
