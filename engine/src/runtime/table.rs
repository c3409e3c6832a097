//! The shard table: which shard owns which partition. Immutable after start-up and shared
//! by every shard (an `Arc`), so any shard can route without asking anyone.

use std::collections::BTreeMap;

use crate::ids::{ShardId, TopicPartition};

/// Cluster-independent, broker-local view: partition -> owning shard on this broker.
#[derive(Clone, Debug)]
pub struct ShardTable {
    shard_count: usize,
    /// "topic" or "topic/partition" -> shard index (validated against `shard_count`).
    pins: BTreeMap<String, usize>,
}

impl ShardTable {
    pub fn new(shard_count: usize, pins: BTreeMap<String, usize>) -> Self {
        assert!(shard_count > 0, "a broker runs at least one shard");
        assert!(
            pins.values().all(|s| *s < shard_count),
            "pins were validated against the shard count"
        );
        ShardTable { shard_count, pins }
    }

    pub fn shard_count(&self) -> usize {
        self.shard_count
    }

    /// Deterministic owner: an explicit pin for the partition, then for the topic, else the
    /// topic's hash plus the partition number, so a topic's partitions spread over shards
    /// round-robin and every broker start computes the same answer.
    pub fn owner(&self, tp: &TopicPartition) -> ShardId {
        if let Some(s) = self.pins.get(&format!("{}/{}", tp.topic, tp.partition.0)) {
            return ShardId(*s);
        }
        if let Some(s) = self.pins.get(&tp.topic) {
            return ShardId(*s);
        }
        let spread = fnv1a(tp.topic.as_bytes()).wrapping_add(tp.partition.0 as u64);
        ShardId((spread % self.shard_count as u64) as usize)
    }

    /// Owner of a key that is not a partition (a consumer group id, say).
    pub fn owner_of_key(&self, key: &str) -> ShardId {
        ShardId((fnv1a(key.as_bytes()) % self.shard_count as u64) as usize)
    }
}

/// FNV-1a, 64-bit: stable across Rust versions and runs, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_a_topic_spread_round_robin() {
        let t = ShardTable::new(4, BTreeMap::new());
        let owners: Vec<usize> = (0..8)
            .map(|p| t.owner(&TopicPartition::new("orders", p)).0)
            .collect();
        for w in owners.windows(2) {
            assert_eq!((w[0] + 1) % 4, w[1]);
        }
    }

    #[test]
    fn pins_override_partition_then_topic() {
        let pins = BTreeMap::from([("orders".to_string(), 2), ("orders/5".to_string(), 1)]);
        let t = ShardTable::new(3, pins);
        assert_eq!(t.owner(&TopicPartition::new("orders", 0)), ShardId(2));
        assert_eq!(t.owner(&TopicPartition::new("orders", 5)), ShardId(1));
    }

    #[test]
    fn assignment_is_stable_across_instances() {
        let a = ShardTable::new(7, BTreeMap::new());
        let b = ShardTable::new(7, BTreeMap::new());
        for p in 0..50 {
            let tp = TopicPartition::new(format!("topic-{p}"), p);
            assert_eq!(a.owner(&tp), b.owner(&tp));
        }
        // Pinned value: FNV-1a must not change between releases, or data would move.
        assert_eq!(fnv1a(b"sluice"), 0xf9a0_2fd5_dc57_4c88);
    }
}
