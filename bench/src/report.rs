//! What a run reports: the JSON summary, the console table, `.hgrm` files and the
//! progress line.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::BenchConfig;
use crate::error::{BenchError, Result};
use crate::histogram::{LatencyHistogram, LatencySummary, Timeline};
use crate::shared::Shared;

const BYTES_PER_MB: f64 = 1e6;

#[derive(Debug, Default)]
pub struct Histograms {
    pub produce_ack: LatencyHistogram,
    pub end_to_end: LatencyHistogram,
    pub fetch: LatencyHistogram,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub records: u64,
    pub seconds: f64,
    pub records_per_second: f64,
    /// Record value bytes, 10^6 bytes per MB.
    pub megabytes_per_second: f64,
}

impl Throughput {
    /// Over the whole buckets between the end of warm-up and the end of generation.
    pub fn over(timeline: &Timeline, from_ns: u64, to_ns: u64) -> Self {
        let (records, bytes, seconds) = timeline.window(from_ns, to_ns);
        if seconds <= 0.0 {
            return Self::default();
        }
        Self {
            records,
            seconds,
            records_per_second: records as f64 / seconds,
            megabytes_per_second: bytes as f64 / seconds / BYTES_PER_MB,
        }
    }
}

/// The JSON summary of one run (`<label>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub label: String,
    pub broker: String,
    pub started_unix_ms: u64,
    pub elapsed_seconds: f64,
    /// The configuration as run (free-form so older summaries still load).
    pub config: serde_json::Value,
    pub records_sent: u64,
    pub records_acknowledged: u64,
    pub records_failed: u64,
    pub records_consumed: u64,
    pub bytes_sent: u64,
    pub fell_behind_schedule: bool,
    pub consumers_incomplete: bool,
    pub first_error: Option<String>,
    /// Acknowledged (acks=0: sent) throughput during the measured window.
    pub produce: Throughput,
    pub consume: Throughput,
    /// Ack time minus intended send time (scheduled time at a fixed rate; the time the
    /// record was generated when flat out), after warm-up.
    pub produce_ack: LatencySummary,
    /// Consume time minus the intended send time stamped in the record.
    pub end_to_end: LatencySummary,
    /// Fetch request to response.
    pub fetch: LatencySummary,
}

impl Summary {
    pub fn new(config: &BenchConfig, broker: &str, started_unix_ms: u64) -> Self {
        let empty = LatencyHistogram::new().summary();
        Self {
            label: config.label.clone(),
            broker: broker.to_string(),
            started_unix_ms,
            elapsed_seconds: 0.0,
            config: serde_json::to_value(config).unwrap_or(serde_json::Value::Null),
            records_sent: 0,
            records_acknowledged: 0,
            records_failed: 0,
            records_consumed: 0,
            bytes_sent: 0,
            fell_behind_schedule: false,
            consumers_incomplete: false,
            first_error: None,
            produce: Throughput::default(),
            consume: Throughput::default(),
            produce_ack: empty.clone(),
            end_to_end: empty.clone(),
            fetch: empty,
        }
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| BenchError::Input {
            path: path.into(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| BenchError::Json {
            path: path.into(),
            source,
        })
    }

    /// The console table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "sluice bench: {} against {}", self.label, self.broker);
        let _ = writeln!(
            out,
            "{:<12} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}   (ms)",
            "latency", "count", "p50", "p90", "p99", "p99.9", "p99.99", "max"
        );
        for (name, s) in [
            ("produce ack", &self.produce_ack),
            ("end-to-end", &self.end_to_end),
            ("fetch", &self.fetch),
        ] {
            if s.count == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "{name:<12} {:>10} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.p9999_ms, s.max_ms
            );
        }
        let _ = writeln!(
            out,
            "produce  {:>12.0} records/s {:>9.1} MB/s   (over {:.1} s after warm-up)",
            self.produce.records_per_second,
            self.produce.megabytes_per_second,
            self.produce.seconds
        );
        if self.records_consumed > 0 {
            let _ = writeln!(
                out,
                "consume  {:>12.0} records/s {:>9.1} MB/s",
                self.consume.records_per_second, self.consume.megabytes_per_second
            );
        }
        let _ = writeln!(
            out,
            "records  sent {} acknowledged {} failed {} consumed {}",
            self.records_sent,
            self.records_acknowledged,
            self.records_failed,
            self.records_consumed
        );
        if self.fell_behind_schedule {
            let _ = writeln!(
                out,
                "WARNING: the producers fell behind the fixed-rate schedule"
            );
        }
        if self.consumers_incomplete {
            let _ = writeln!(
                out,
                "WARNING: consumers stopped before reading every acknowledged record"
            );
        }
        if let Some(e) = &self.first_error {
            let _ = writeln!(out, "first error: {e}");
        }
        out
    }
}

/// File-name-safe form of a label.
pub fn slug(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

/// Writes `<slug>.json` and `<slug>.<histogram>.hgrm`; returns the JSON path.
pub fn write_outputs(dir: &Path, summary: &Summary, histograms: &Histograms) -> Result<PathBuf> {
    let out_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BenchError::Output { path, source }
    };
    std::fs::create_dir_all(dir).map_err(out_err(dir))?;
    let base = slug(&summary.label);
    for (name, h) in [
        ("produce-ack", &histograms.produce_ack),
        ("end-to-end", &histograms.end_to_end),
        ("fetch", &histograms.fetch),
    ] {
        if h.count() == 0 {
            continue;
        }
        let path = dir.join(format!("{base}.{name}.hgrm"));
        std::fs::write(&path, h.to_hgrm()).map_err(out_err(&path))?;
    }
    let path = dir.join(format!("{base}.json"));
    let json = serde_json::to_string_pretty(summary).map_err(|source| BenchError::Json {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&path, json + "\n").map_err(out_err(&path))?;
    Ok(path)
}

/// One status line a second on stderr until `done`.
pub fn progress_loop(shared: &Shared, config: &BenchConfig, done: &AtomicBool) {
    let c = &shared.counters;
    let (mut last_sent, mut last_bytes, mut last_ns) = (0u64, 0u64, 0u64);
    'lines: loop {
        // Short naps so the run does not wait up to a second for this thread at the end.
        for _ in 0..10 {
            if done.load(Ordering::Relaxed) {
                break 'lines;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let now = shared.now_ns();
        let sent = c.records_sent.load(Ordering::Relaxed);
        let bytes = c.bytes_sent.load(Ordering::Relaxed);
        let dt = (now - last_ns) as f64 / 1e9;
        let phase = if now < shared.warmup_ns {
            "warm-up"
        } else if shared.producers_done.load(Ordering::Relaxed) {
            "drain"
        } else {
            "measure"
        };
        eprintln!(
            "[{:>6.1}s {:<7}] sent {:>11} ({:>9.0} rec/s {:>7.1} MB/s) acked {:>11} failed {} in-flight {:>3} consumed {:>11}  [{}]",
            now as f64 / 1e9,
            phase,
            sent,
            (sent - last_sent) as f64 / dt,
            (bytes - last_bytes) as f64 / dt / BYTES_PER_MB,
            c.records_acked.load(Ordering::Relaxed),
            c.records_failed.load(Ordering::Relaxed),
            c.in_flight.load(Ordering::Relaxed),
            c.records_consumed.load(Ordering::Relaxed),
            config.label,
        );
        (last_sent, last_bytes, last_ns) = (sent, bytes, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_keeps_labels_readable_and_safe() {
        assert_eq!(slug("Kafka 4.1.1 / flush=1"), "kafka-4.1.1---flush-1");
        assert_eq!(slug("sluice"), "sluice");
    }

    #[test]
    fn summary_round_trips_through_json() {
        let mut s = Summary::new(&BenchConfig::default(), "127.0.0.1:9092", 1);
        let mut h = LatencyHistogram::new();
        h.record_ns(1_500_000);
        s.produce_ack = h.summary();
        let text = serde_json::to_string(&s).expect("serialises");
        let back: Summary = serde_json::from_str(&text).expect("parses");
        assert_eq!(back.produce_ack, s.produce_ack);
        assert!(s.table().contains("produce ack"));
    }
}
