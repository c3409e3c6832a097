//! What one bench run does: the workload, the pacing and the bounds.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::error::{BenchError, Result};
use crate::limits;
use crate::workload::VALUE_STAMP_BYTES;

/// Record value sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeDistribution {
    Fixed {
        bytes: usize,
    },
    /// Uniform in `min..=max`.
    Uniform {
        min: usize,
        max: usize,
    },
}

impl SizeDistribution {
    pub fn mean_bytes(&self) -> f64 {
        match *self {
            Self::Fixed { bytes } => bytes as f64,
            Self::Uniform { min, max } => (min + max) as f64 / 2.0,
        }
    }
    fn min_max(&self) -> (usize, usize) {
        match *self {
            Self::Fixed { bytes } => (bytes, bytes),
            Self::Uniform { min, max } => (min, max),
        }
    }
}

/// `1024` or `100..2000` (uniform, inclusive).
impl FromStr for SizeDistribution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|e| format!("record size `{t}`: {e}"))
        };
        match s.split_once("..") {
            Some((a, b)) => Ok(Self::Uniform {
                min: parse(a)?,
                max: parse(b.trim_start_matches('='))?,
            }),
            None => Ok(Self::Fixed { bytes: parse(s)? }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// As fast as the in-flight limit lets it.
    FlatOut,
    /// Records per second over all producers; latency counts from each record's
    /// scheduled send time, so a stalled broker cannot hide its stall.
    RecordsPerSecond(f64),
    /// Value bytes per second over all producers, converted with the mean record size.
    BytesPerSecond(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompressionCodec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl FromStr for CompressionCodec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "none" => Self::None,
            "gzip" => Self::Gzip,
            "snappy" => Self::Snappy,
            "lz4" => Self::Lz4,
            "zstd" => Self::Zstd,
            other => {
                return Err(format!(
                    "unknown compression `{other}` (none, gzip, snappy, lz4, zstd)"
                ))
            }
        })
    }
}

impl CompressionCodec {
    pub fn to_kafka(self) -> kafka_protocol::records::Compression {
        use kafka_protocol::records::Compression;
        match self {
            Self::None => Compression::None,
            Self::Gzip => Compression::Gzip,
            Self::Snappy => Compression::Snappy,
            Self::Lz4 => Compression::Lz4,
            Self::Zstd => Compression::Zstd,
        }
    }
}

/// Produce acks: 0 (no response), 1 (leader), -1 (all in-sync replicas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Acks(pub i16);

impl FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "0" => Ok(Self(0)),
            "1" => Ok(Self(1)),
            "all" | "-1" => Ok(Self(-1)),
            other => Err(format!("acks `{other}`: use 0, 1 or all")),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchConfig {
    /// Label for reports and plots, e.g. "kafka-4.1.1 fsync".
    pub label: String,
    /// host:port of the broker to bootstrap from.
    pub bootstrap: String,
    pub topic_prefix: String,
    pub topics: u32,
    pub partitions: u32,
    /// Create missing topics with CreateTopics (replication factor 1).
    pub create_topics: bool,
    pub producers: u32,
    /// Consumers split the topic-partitions among themselves (manual assignment) and
    /// measure end-to-end latency from the producer's stamp in each record.
    pub consumers: u32,
    pub record_size: SizeDistribution,
    /// `Some(n)`: records carry one of n keys and go to the key's partition.
    pub key_cardinality: Option<u64>,
    pub compression: CompressionCodec,
    pub acks: Acks,
    pub batch_bytes: usize,
    pub linger: Duration,
    pub in_flight: usize,
    pub pace: Pace,
    pub warmup: Duration,
    /// Generation stops at this time or at `records_max`, whichever comes first.
    pub duration: Duration,
    pub records_max: Option<u64>,
    /// How long to wait for outstanding acks and for consumers to catch up.
    pub drain_timeout: Duration,
    pub request_timeout: Duration,
    /// Cores the load generator's threads are pinned to, round-robin; empty: no pinning.
    pub cpus: Vec<usize>,
    pub seed: u64,
    /// Where the JSON summary and `.hgrm` files go; `None`: console only.
    pub output_dir: Option<PathBuf>,
    /// Print a progress line to stderr once a second.
    pub progress: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            label: "run".into(),
            bootstrap: "127.0.0.1:9092".into(),
            topic_prefix: "sluice-bench".into(),
            topics: 1,
            partitions: 1,
            create_topics: true,
            producers: 1,
            consumers: 0,
            record_size: SizeDistribution::Fixed { bytes: 1024 },
            key_cardinality: None,
            compression: CompressionCodec::None,
            acks: Acks(-1),
            batch_bytes: 64 << 10,
            linger: Duration::from_millis(5),
            in_flight: 5,
            pace: Pace::FlatOut,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            records_max: None,
            drain_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(30),
            cpus: Vec::new(),
            seed: 0x5_1u64 << 32 | 0xCE,
            output_dir: None,
            progress: true,
        }
    }
}

impl BenchConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(BenchError::Config(m));
        let (min, max) = self.record_size.min_max();
        if min < VALUE_STAMP_BYTES || max < min || max > limits::RECORD_BYTES_MAX {
            return bad(format!(
                "record size {min}..={max}: must be within {VALUE_STAMP_BYTES}..={} (the first \
                 {VALUE_STAMP_BYTES} bytes carry the send-time stamp)",
                limits::RECORD_BYTES_MAX
            ));
        }
        if self.topics == 0 || self.partitions == 0 {
            return bad("need at least one topic and one partition".into());
        }
        if u64::from(self.topics) * u64::from(self.partitions)
            > u64::from(limits::TOPIC_PARTITIONS_MAX)
        {
            return bad(format!(
                "more than {} topic-partitions",
                limits::TOPIC_PARTITIONS_MAX
            ));
        }
        if self.producers == 0 || self.producers > limits::PRODUCERS_MAX {
            return bad(format!("producers must be 1..={}", limits::PRODUCERS_MAX));
        }
        if self.consumers > limits::CONSUMERS_MAX {
            return bad(format!("consumers must be 0..={}", limits::CONSUMERS_MAX));
        }
        if self.in_flight == 0 || self.in_flight > limits::IN_FLIGHT_MAX {
            return bad(format!("in-flight must be 1..={}", limits::IN_FLIGHT_MAX));
        }
        if self.batch_bytes < max || self.batch_bytes > limits::BATCH_BYTES_MAX {
            return bad(format!(
                "batch size {} must hold one record ({max}) and be at most {}",
                self.batch_bytes,
                limits::BATCH_BYTES_MAX
            ));
        }
        if self.key_cardinality == Some(0) {
            return bad("key cardinality must be at least 1".into());
        }
        if self.duration.is_zero() || self.warmup + self.duration > limits::DURATION_MAX {
            return bad(format!(
                "warm-up + duration must be within 0..{:?}",
                limits::DURATION_MAX
            ));
        }
        if self.warmup >= self.duration {
            return bad("warm-up must be shorter than the duration".into());
        }
        match self.pace {
            Pace::RecordsPerSecond(r) | Pace::BytesPerSecond(r) if !(r.is_finite() && r > 0.0) => {
                return bad(format!("rate {r} must be positive"));
            }
            _ => {}
        }
        if self.acks.0 == 0 && self.consumers > 0 {
            // Without acks the consumers cannot know when everything has arrived.
            return bad("end-to-end runs need acks 1 or all".into());
        }
        Ok(())
    }

    /// Records per second for each producer, or `None` when flat out.
    pub fn records_per_second_per_producer(&self) -> Option<f64> {
        let total = match self.pace {
            Pace::FlatOut => return None,
            Pace::RecordsPerSecond(r) => r,
            Pace::BytesPerSecond(b) => b / self.record_size.mean_bytes(),
        };
        Some(total / f64::from(self.producers))
    }

    pub fn topic_name(&self, index: u32) -> String {
        format!("{}-{index}", self.topic_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_distribution_parses_fixed_and_ranges() {
        assert_eq!("1024".parse(), Ok(SizeDistribution::Fixed { bytes: 1024 }));
        assert_eq!(
            "100..2000".parse(),
            Ok(SizeDistribution::Uniform {
                min: 100,
                max: 2000
            })
        );
        assert_eq!(
            "100..=2000".parse(),
            Ok(SizeDistribution::Uniform {
                min: 100,
                max: 2000
            })
        );
        assert!("abc".parse::<SizeDistribution>().is_err());
    }

    #[test]
    fn default_config_is_valid_and_bad_ones_are_refused() {
        assert!(BenchConfig::default().validate().is_ok());
        let tiny = BenchConfig {
            record_size: SizeDistribution::Fixed { bytes: 8 },
            ..Default::default()
        };
        assert!(tiny.validate().is_err());
        let no_acks_e2e = BenchConfig {
            acks: Acks(0),
            consumers: 1,
            ..Default::default()
        };
        assert!(no_acks_e2e.validate().is_err());
        let small_batch = BenchConfig {
            batch_bytes: 512,
            ..Default::default()
        };
        assert!(small_batch.validate().is_err());
    }

    #[test]
    fn byte_rate_is_split_over_producers_in_records() {
        let c = BenchConfig {
            producers: 2,
            pace: Pace::BytesPerSecond(1024.0 * 1000.0),
            ..Default::default()
        };
        assert_eq!(c.records_per_second_per_producer(), Some(500.0));
    }
}
