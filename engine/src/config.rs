//! Engine configuration: shard placement, I/O resources, durability and log defaults.
//! Read from the `[engine]` table of the broker's TOML config; every field has a default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::limits::{SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SHARDS_MAX};
pub use crate::runtime::numa::NumaMemory;

/// When an append's future resolves relative to the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Durability {
    /// fdatasync after every single append; the append resolves when durable.
    PerWrite,
    /// One fdatasync covers every append that arrived while the previous one was in flight;
    /// the append resolves when durable. The default.
    #[default]
    GroupCommit,
    /// Appends resolve once written (in the device, not synced); a shard task syncs every
    /// `interval_ms`.
    Interval { interval_ms: u64 },
    /// Appends resolve once written; sync only on segment roll and shutdown.
    None,
}

/// Kafka's `cleanup.policy`: what happens to old data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupPolicy {
    /// `delete`: retention.ms / retention.bytes delete whole old segments.
    #[default]
    Delete,
    /// `compact`: the cleaner keeps the latest record per key; nothing expires by age.
    Compact,
    /// `compact,delete`: both.
    CompactDelete,
}

impl CleanupPolicy {
    /// Parses Kafka's comma-separated list ("delete", "compact", "compact,delete").
    pub fn parse(value: &str) -> Option<CleanupPolicy> {
        let (mut compact, mut delete) = (false, false);
        for p in value.split(',').map(str::trim) {
            match p {
                "compact" => compact = true,
                "delete" => delete = true,
                _ => return None,
            }
        }
        match (compact, delete) {
            (true, true) => Some(CleanupPolicy::CompactDelete),
            (true, false) => Some(CleanupPolicy::Compact),
            (false, true) => Some(CleanupPolicy::Delete),
            (false, false) => None,
        }
    }
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }
}

/// Per-partition log settings (Kafka topic-level config names in comments).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// segment.bytes
    pub segment_bytes: u64,
    /// segment.ms; 0 disables rolling by age.
    pub segment_ms: i64,
    /// retention.ms; negative keeps forever.
    pub retention_ms: i64,
    /// retention.bytes; negative keeps forever.
    pub retention_bytes: i64,
    /// index.interval.bytes
    pub index_interval_bytes: u64,
    /// message.timestamp.type = LogAppendTime when true.
    pub log_append_time: bool,
    /// cleanup.policy
    pub cleanup_policy: CleanupPolicy,
    /// min.cleanable.dirty.ratio: the cleaner runs when dirty bytes / cleanable bytes of
    /// the closed segments reach it.
    pub min_cleanable_dirty_ratio: f64,
    /// min.compaction.lag.ms: records younger than this stay uncompacted.
    pub min_compaction_lag_ms: i64,
    /// delete.retention.ms: how long a tombstone (null value) outlives its batch timestamp
    /// before the cleaner removes it.
    pub delete_retention_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: crate::limits::INDEX_INTERVAL_BYTES,
            log_append_time: false,
            cleanup_policy: CleanupPolicy::Delete,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            delete_retention_ms: 86_400_000,
        }
    }
}

impl LogConfig {
    /// The segment size actually used: clamped to the engine's bounds and aligned.
    pub fn segment_bytes_clamped(&self) -> u64 {
        let s = self
            .segment_bytes
            .clamp(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX);
        s - s % crate::limits::IO_ALIGNMENT_BYTES as u64
    }
}

/// `[engine]` section of the config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Where partition directories live.
    pub data_dir: PathBuf,
    /// CPU ids that run shards, one shard each. Empty: one shard per online core.
    pub cores: Vec<usize>,
    /// Number of shards when `cores` is empty; 0 means one per online core.
    pub shards: usize,
    /// Pin each shard's thread to its core (the default). `false` keeps the shard count
    /// but leaves the threads to the OS scheduler - to measure what pinning buys, or on a
    /// machine whose cores are shared with other pinned work.
    pub pin_threads: bool,
    /// io_uring registered I/O memory per shard, bytes.
    pub io_memory_bytes: usize,
    /// io_uring ring depth per shard.
    pub ring_depth: usize,
    /// When appends resolve and how syncs are batched.
    pub durability: Durability,
    /// How often the retention task looks at each partition.
    pub retention_check_interval_ms: u64,
    /// How often the log cleaner looks at each compacted partition (Kafka's
    /// log.cleaner.backoff.ms).
    pub compaction_check_interval_ms: u64,
    /// Defaults for every partition log (topics override them).
    pub log: LogConfig,
    /// Pins: "topic" or "topic/partition" -> shard index.
    pub pin: BTreeMap<String, usize>,
    /// How each shard's memory is tied to its core's NUMA node.
    pub numa_memory: NumaMemory,
    /// The NUMA node of each shard's core (index = shard), or None to leave its memory
    /// alone. Not read from the file: `sluice serve` fills it from the machine's topology.
    #[serde(skip)]
    pub memory_nodes: Vec<Option<usize>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            data_dir: PathBuf::from("./data"),
            cores: Vec::new(),
            shards: 0,
            pin_threads: true,
            io_memory_bytes: 64 << 20,
            ring_depth: 256,
            durability: Durability::GroupCommit,
            retention_check_interval_ms: 30_000,
            compaction_check_interval_ms: 15_000,
            log: LogConfig::default(),
            pin: BTreeMap::new(),
            numa_memory: NumaMemory::default(),
            memory_nodes: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Invalid(String),
}

impl EngineConfig {
    /// Shard count this config asks for, given the machine's online core count.
    pub fn shard_count(&self, online_cores: usize) -> usize {
        if !self.cores.is_empty() {
            self.cores.len()
        } else if self.shards > 0 {
            self.shards
        } else {
            online_cores.max(1)
        }
    }

    pub fn validate(&self, online_cores: usize) -> Result<(), ConfigError> {
        let n = self.shard_count(online_cores);
        if n == 0 || n > SHARDS_MAX {
            return Err(ConfigError::Invalid(format!(
                "shard count {n} not in 1..={SHARDS_MAX}"
            )));
        }
        for (key, shard) in &self.pin {
            if *shard >= n {
                return Err(ConfigError::Invalid(format!(
                    "pin {key:?} -> shard {shard}, but only {n} shards run"
                )));
            }
        }
        if self.ring_depth < 8 || self.ring_depth > 32768 {
            return Err(ConfigError::Invalid(format!(
                "ring_depth {} not in 8..=32768",
                self.ring_depth
            )));
        }
        if let Durability::Interval { interval_ms } = self.durability {
            if interval_ms == 0 {
                return Err(ConfigError::Invalid(
                    "durability interval_ms must be > 0".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_all_defaults() {
        let c: EngineConfig = toml::from_str("").expect("empty parses");
        assert_eq!(c, EngineConfig::default());
        assert_eq!(c.shard_count(2), 2);
    }

    #[test]
    fn config_file_sets_cores_durability_and_pins() {
        let c: EngineConfig = toml::from_str(
            r#"
            cores = [1]
            io_memory_bytes = 1048576
            durability = { mode = "interval", interval_ms = 5 }
            numa_memory = "bind"
            [log]
            segment_bytes = 8388608
            [pin]
            "orders" = 0
            "orders/3" = 0
            "#,
        )
        .expect("parses");
        assert_eq!(c.shard_count(8), 1);
        assert_eq!(c.durability, Durability::Interval { interval_ms: 5 });
        assert_eq!(c.numa_memory, NumaMemory::Bind);
        assert_eq!(c.log.segment_bytes, 8 << 20);
        c.validate(8).expect("valid");
    }

    #[test]
    fn pin_to_missing_shard_is_rejected() {
        let c: EngineConfig = toml::from_str("shards = 2\n[pin]\n\"t\" = 5\n").expect("parses");
        assert!(c.validate(2).is_err());
    }
}
