//! Latency histograms as the admin endpoint exports them: a fixed bucket ladder (so series
//! from different shards add up in Prometheus) plus a few quantiles for `/status`, taken
//! from an hdrhistogram on the shard that recorded it.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded, microseconds (longer ones are clamped to it).
pub const LATENCY_US_MAX: u64 = 60_000_000;

/// Upper bounds (microseconds, inclusive) of the exported histogram buckets; `+Inf` follows.
pub const BUCKET_BOUNDS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

const _: () = assert!(BUCKET_BOUNDS_US[BUCKET_BOUNDS_US.len() - 1] < LATENCY_US_MAX);

/// An empty histogram with the bounds every latency histogram here uses (1 us to
/// [`LATENCY_US_MAX`], two significant digits: 1% error).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 2)
        .expect("constant bounds: low 1 >= 1, high > 2 * low, 2 significant digits <= 5")
}

/// A `Send` copy of one latency histogram, reduced to what is exported.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySnapshot {
    /// Values recorded.
    pub count: u64,
    /// Sum of the values, microseconds.
    pub sum_us: u64,
    /// Values at most `BUCKET_BOUNDS_US[i]`, cumulative (Prometheus `le` buckets).
    pub buckets: Vec<u64>,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl LatencySnapshot {
    /// Reduces `h`. `sum_us`: the exact sum when the recorder kept one; otherwise pass
    /// `None` and the histogram's mean times its count stands in (within its 1%).
    pub fn from_histogram(h: &Histogram<u64>, sum_us: Option<u64>) -> LatencySnapshot {
        let count = h.len();
        if count == 0 {
            return LatencySnapshot {
                buckets: vec![0; BUCKET_BOUNDS_US.len()],
                ..LatencySnapshot::default()
            };
        }
        let buckets = BUCKET_BOUNDS_US
            .iter()
            .map(|&bound| h.count_between(0, bound))
            .collect();
        LatencySnapshot {
            count,
            sum_us: sum_us.unwrap_or_else(|| (h.mean() * count as f64).round() as u64),
            buckets,
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_at_the_count() {
        let mut h = new_histogram();
        for us in [10, 60, 60, 700, 3_000, 20_000_000] {
            h.record(us).expect("in range");
        }
        let s = LatencySnapshot::from_histogram(&h, Some(20_003_830));
        assert_eq!(s.count, 6);
        assert_eq!(s.sum_us, 20_003_830);
        // <=50: 10; <=100: +60,60; <=1000: +700; <=5000: +3000; 20 s is above every bound.
        assert_eq!(&s.buckets[..6], &[1, 3, 3, 3, 4, 4]);
        assert_eq!(s.buckets[6], 5);
        assert_eq!(*s.buckets.last().expect("non-empty"), 5);
        assert!(s.buckets.windows(2).all(|w| w[0] <= w[1]));
        assert!(s.max_us >= 19_800_000 && s.max_us <= 20_200_000);
    }

    #[test]
    fn empty_histogram_has_zero_buckets() {
        let s = LatencySnapshot::from_histogram(&new_histogram(), None);
        assert_eq!(s.count, 0);
        assert_eq!(s.buckets, vec![0; BUCKET_BOUNDS_US.len()]);
    }

    #[test]
    fn missing_sum_is_estimated_from_the_mean() {
        let mut h = new_histogram();
        for _ in 0..4 {
            h.record(1_000).expect("in range");
        }
        let s = LatencySnapshot::from_histogram(&h, None);
        assert!((3_960..=4_040).contains(&s.sum_us), "{}", s.sum_us);
    }
}
