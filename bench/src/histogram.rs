//! Latency bookkeeping: HDR histograms in nanoseconds, their percentile summaries, the
//! `.hgrm` percentile-distribution text, and the per-interval throughput counters.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::limits::{BUCKET_MS, LATENCY_NS_MAX};

const SIGNIFICANT_DIGITS: u8 = 3;
const NS_PER_MS: f64 = 1e6;
/// hdrhistogram's sub-bucket count for SIGNIFICANT_DIGITS, as the `.hgrm` footer states it.
const SUB_BUCKETS: u64 = (2 * 10u64.pow(SIGNIFICANT_DIGITS as u32)).next_power_of_two();

/// One latency histogram (ns). Values above `LATENCY_NS_MAX` are clamped and counted.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    histogram: Histogram<u64>,
    clamped: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        // Static bounds that hdrhistogram accepts (1 <= low, high >= 2*low, digits <= 5).
        let histogram = Histogram::new_with_bounds(1, LATENCY_NS_MAX, SIGNIFICANT_DIGITS)
            .expect("static histogram bounds are valid");
        Self {
            histogram,
            clamped: 0,
        }
    }

    pub fn record_ns(&mut self, latency_ns: u64) {
        self.record_ns_n(latency_ns, 1);
    }

    pub fn record_ns_n(&mut self, latency_ns: u64, count: u64) {
        let value = latency_ns.clamp(1, LATENCY_NS_MAX);
        if value != latency_ns.max(1) {
            self.clamped += count;
        }
        self.histogram.saturating_record_n(value, count);
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Same bounds on both sides by construction, so `add` cannot fail.
        self.histogram
            .add(&other.histogram)
            .expect("histograms share bounds");
        self.clamped += other.clamped;
    }

    pub fn summary(&self) -> LatencySummary {
        let h = &self.histogram;
        let ms = |ns: u64| ns as f64 / NS_PER_MS;
        let q = |p: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(p))
            }
        };
        let spectrum = if h.is_empty() {
            Vec::new()
        } else {
            h.iter_quantiles(2)
                .map(|v| SpectrumPoint {
                    percentile: v.quantile_iterated_to() * 100.0,
                    value_ms: ms(h.highest_equivalent(v.value_iterated_to())),
                })
                .take_while(|p| p.percentile < 100.0)
                .chain(std::iter::once(SpectrumPoint {
                    percentile: 100.0,
                    value_ms: ms(h.max()),
                }))
                .collect()
        };
        LatencySummary {
            count: h.len(),
            clamped: self.clamped,
            mean_ms: if h.is_empty() {
                0.0
            } else {
                h.mean() / NS_PER_MS
            },
            p50_ms: q(0.50),
            p90_ms: q(0.90),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            p9999_ms: q(0.9999),
            max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            spectrum,
        }
    }

    /// The percentile distribution in HdrHistogram's `.hgrm` text format, values in ms,
    /// readable by HdrHistogram's plotFiles.html.
    pub fn to_hgrm(&self) -> String {
        let h = &self.histogram;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:>12} {:>14} {:>10} {:>14}\n",
            "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
        );
        if !h.is_empty() {
            for v in h.iter_quantiles(5) {
                let q = v.quantile_iterated_to();
                let value = h.highest_equivalent(v.value_iterated_to()) as f64 / NS_PER_MS;
                if q < 1.0 {
                    let _ = writeln!(
                        out,
                        "{value:>12.3} {q:>2.12} {:>10} {:>14.2}",
                        v.count_since_last_iteration(),
                        1.0 / (1.0 - q)
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "{value:>12.3} {q:>2.12} {:>10}",
                        v.count_since_last_iteration()
                    );
                }
            }
        }
        let mean = if h.is_empty() {
            0.0
        } else {
            h.mean() / NS_PER_MS
        };
        let stdev = if h.is_empty() {
            0.0
        } else {
            h.stdev() / NS_PER_MS
        };
        let _ = writeln!(
            out,
            "#[Mean    = {mean:>12.3}, StdDeviation   = {stdev:>12.3}]"
        );
        let _ = writeln!(
            out,
            "#[Max     = {:>12.3}, Total count    = {:>12}]",
            h.max() as f64 / NS_PER_MS,
            h.len()
        );
        let _ = writeln!(
            out,
            "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
            h.buckets(),
            SUB_BUCKETS
        );
        out
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectrumPoint {
    pub percentile: f64,
    pub value_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    /// Samples above the histogram's range, recorded at its top.
    pub clamped: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub p9999_ms: f64,
    pub max_ms: f64,
    /// The percentile spectrum, for plots comparing runs.
    pub spectrum: Vec<SpectrumPoint>,
}

impl LatencySummary {
    /// p50 <= p90 <= ... <= max, the check every report relies on.
    pub fn is_monotonic(&self) -> bool {
        let v = [
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.p9999_ms,
            self.max_ms,
        ];
        v.windows(2).all(|w| w[0] <= w[1])
            && self
                .spectrum
                .windows(2)
                .all(|w| w[0].percentile <= w[1].percentile && w[0].value_ms <= w[1].value_ms)
    }
}

/// Records and bytes per `BUCKET_MS` interval since the run epoch, to compute throughput
/// over exactly the measured window.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    records: Vec<u64>,
    bytes: Vec<u64>,
}

impl Timeline {
    pub fn add(&mut self, at_ns: u64, records: u64, bytes: u64) {
        let bucket = usize::try_from(at_ns / (BUCKET_MS * 1_000_000)).unwrap_or(usize::MAX);
        // Runs are bounded by DURATION_MAX plus the drain timeout; this bound keeps a
        // wild clock from allocating without limit.
        let bucket = bucket.min(1 << 20);
        if self.records.len() <= bucket {
            self.records.resize(bucket + 1, 0);
            self.bytes.resize(bucket + 1, 0);
        }
        self.records[bucket] += records;
        self.bytes[bucket] += bytes;
    }

    pub fn merge(&mut self, other: &Timeline) {
        if self.records.len() < other.records.len() {
            self.records.resize(other.records.len(), 0);
            self.bytes.resize(other.bytes.len(), 0);
        }
        for (i, (r, b)) in other.records.iter().zip(&other.bytes).enumerate() {
            self.records[i] += r;
            self.bytes[i] += b;
        }
    }

    /// (records, bytes) in the buckets that lie wholly within `[from_ns, to_ns)`, and
    /// that window's length in seconds.
    pub fn window(&self, from_ns: u64, to_ns: u64) -> (u64, u64, f64) {
        let width = BUCKET_MS * 1_000_000;
        let first = from_ns.div_ceil(width) as usize;
        let last = (to_ns / width) as usize; // exclusive
        if last <= first {
            return (0, 0, 0.0);
        }
        let end = last.min(self.records.len());
        let records = self.records.get(first..end).map_or(0, |s| s.iter().sum());
        let bytes = self.bytes.get(first..end).map_or(0, |s| s.iter().sum());
        (
            records,
            bytes,
            (last - first) as f64 * BUCKET_MS as f64 / 1000.0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = LatencyHistogram::new();
        for ms in 1..=1000u64 {
            h.record_ns(ms * 1_000_000);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 500.0).abs() < 1.0, "{}", s.p50_ms);
        assert!((s.p99_ms - 990.0).abs() < 1.0, "{}", s.p99_ms);
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{}", s.max_ms);
        assert!(s.is_monotonic());
        assert_eq!(s.spectrum.last().map(|p| p.percentile), Some(100.0));
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_tail() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record_ns_n(1_000_000, 999);
        b.record_ns(50_000_000);
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 1000);
        assert!(s.p50_ms < 1.01);
        assert!((s.max_ms - 50.0).abs() < 0.1);
        assert!(s.p9999_ms > 49.0);
    }

    #[test]
    fn out_of_range_latency_is_clamped_and_counted() {
        let mut h = LatencyHistogram::new();
        h.record_ns(u64::MAX);
        h.record_ns(0);
        let s = h.summary();
        assert_eq!(s.count, 2);
        assert_eq!(s.clamped, 1);
    }

    #[test]
    fn empty_histogram_summarises_to_zeros() {
        let s = LatencyHistogram::new().summary();
        assert_eq!(s.count, 0);
        assert_eq!(s.max_ms, 0.0);
        assert!(s.spectrum.is_empty());
        assert!(s.is_monotonic());
    }

    #[test]
    fn non_monotonic_summary_is_detected() {
        let mut s = LatencyHistogram::new().summary();
        s.p50_ms = 2.0;
        s.p90_ms = 1.0;
        assert!(!s.is_monotonic());
    }

    #[test]
    fn hgrm_has_header_rows_and_footer() {
        let mut h = LatencyHistogram::new();
        for us in 1..=10_000u64 {
            h.record_ns(us * 1000);
        }
        let text = h.to_hgrm();
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
        assert!(text.contains("#[Max     =       10.0"), "{text}");
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
        assert!(text.contains("Total count    =        10000]"));
        let rows = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .count();
        assert!(rows > 20);
    }

    #[test]
    fn timeline_counts_only_whole_buckets_inside_the_window() {
        let mut t = Timeline::default();
        let ms = 1_000_000u64;
        t.add(50 * ms, 1, 10); // bucket 0
        t.add(150 * ms, 2, 20); // bucket 1
        t.add(250 * ms, 4, 40); // bucket 2
        let mut other = Timeline::default();
        other.add(350 * ms, 8, 80); // bucket 3
        t.merge(&other);
        assert_eq!(t.window(100 * ms, 400 * ms), (14, 140, 0.3));
        assert_eq!(t.window(120 * ms, 400 * ms), (12, 120, 0.2));
        assert_eq!(t.window(0, 100 * ms), (1, 10, 0.1));
        assert_eq!(t.window(300 * ms, 300 * ms), (0, 0, 0.0));
    }
}
