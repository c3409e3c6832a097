//! The `/status` JSON document (`sluice status` reads it): this broker, its shards, the
//! partitions each shard owns and their load. Counters are totals since the partition was
//! opened or the shard started; `sluice status` turns two readings into rates.

use serde::{Deserialize, Serialize};

use super::lag::GroupLag;
use super::snapshot::BrokerSnapshot;
use crate::limits::ADMIN_STATUS_PARTITIONS_PER_SHARD_MAX;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Every broker this one knows of: itself only until clusters exist.
    pub brokers: Vec<BrokerStatus>,
    pub shards: Vec<ShardStatus>,
    /// Shards that did not answer this request.
    pub unreachable_shards: Vec<usize>,
    pub topics: Vec<TopicStatus>,
    /// Always 0: every partition has one replica in this build.
    pub under_replicated_partitions: u64,
    /// Lag of every committed group offset, by group, topic and partition.
    #[serde(default)]
    pub consumer_group_lag: Vec<GroupLag>,
    /// Partitions moved between shards at run time (`sluice admin move-partition`).
    #[serde(default)]
    pub placement: PlacementStatus,
}

/// The runtime placement as shard 0 (which runs every move) sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlacementStatus {
    /// Grows with every move; 0 when nothing was ever moved.
    pub version: u64,
    /// Partitions off their configured shard, sorted.
    pub moved: Vec<MovedPartition>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MovedPartition {
    pub topic: String,
    pub partition: i32,
    pub shard: usize,
}

impl PlacementStatus {
    pub fn from_overrides(o: &sluice_engine::runtime::PlacementOverrides) -> Self {
        let mut moved: Vec<MovedPartition> = o
            .moved
            .iter()
            .map(|(tp, s)| MovedPartition {
                topic: tp.topic.clone(),
                partition: tp.partition.0,
                shard: s.0,
            })
            .collect();
        moved.sort();
        PlacementStatus {
            version: o.version,
            moved,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BrokerStatus {
    pub node_id: i32,
    pub cluster_id: String,
    pub host: String,
    pub port: u16,
    pub listeners: String,
    pub version: String,
    pub uptime_seconds: u64,
    pub shards: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardStatus {
    pub shard: usize,
    pub connections: usize,
    /// Requests handled, all APIs.
    pub requests: u64,
    /// Partitions open on the shard.
    pub partitions: usize,
    pub log_size_bytes: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub fsyncs: u64,
    pub fsync_p99_us: u64,
    /// The shard's partitions, at most `ADMIN_STATUS_PARTITIONS_PER_SHARD_MAX` of them.
    pub partition_list: Vec<PartitionStatus>,
    /// Partitions left out of `partition_list` by that bound.
    pub partitions_omitted: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub size_bytes: u64,
    pub segments: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicStatus {
    pub name: String,
    pub partitions: i32,
}

impl StatusReport {
    pub fn from_snapshot(s: &BrokerSnapshot) -> StatusReport {
        let shards = s
            .shards
            .iter()
            .map(|sh| {
                let listed = sh
                    .partitions
                    .len()
                    .min(ADMIN_STATUS_PARTITIONS_PER_SHARD_MAX);
                ShardStatus {
                    shard: sh.shard,
                    connections: sh.connections,
                    requests: sh.requests.iter().map(|a| a.requests).sum(),
                    partitions: sh.partitions.len(),
                    log_size_bytes: sh.partitions.iter().map(|p| p.size_bytes).sum(),
                    bytes_in: sh.partitions.iter().map(|p| p.appended_bytes).sum(),
                    bytes_out: sh.partitions.iter().map(|p| p.read_bytes).sum(),
                    fsyncs: sh.fsync_latency.count,
                    fsync_p99_us: sh.fsync_latency.p99_us,
                    partition_list: sh.partitions[..listed]
                        .iter()
                        .map(|p| PartitionStatus {
                            topic: p.topic.clone(),
                            partition: p.partition,
                            log_start_offset: p.log_start_offset,
                            high_watermark: p.high_watermark,
                            log_end_offset: p.log_end_offset,
                            size_bytes: p.size_bytes,
                            segments: p.segments,
                            bytes_in: p.appended_bytes,
                            bytes_out: p.read_bytes,
                        })
                        .collect(),
                    partitions_omitted: sh.partitions.len() - listed,
                }
            })
            .collect();
        StatusReport {
            brokers: vec![BrokerStatus {
                node_id: s.node_id,
                cluster_id: s.cluster_id.clone(),
                host: s.advertised_host.clone(),
                port: s.advertised_port,
                listeners: s.listeners.clone(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                uptime_seconds: s.uptime_seconds,
                shards: s.shard_count,
            }],
            shards,
            unreachable_shards: s.unreachable_shards.clone(),
            topics: s
                .topics
                .iter()
                .map(|(name, partitions)| TopicStatus {
                    name: name.clone(),
                    partitions: *partitions,
                })
                .collect(),
            under_replicated_partitions: 0,
            consumer_group_lag: s.group_lag.clone(),
            // Filled in by the endpoint from shard 0's placement.
            placement: PlacementStatus::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::snapshot::{PartitionSnapshot, ShardSnapshot};

    #[test]
    fn shard_load_sums_its_partitions_and_the_list_is_bounded() {
        let many = ADMIN_STATUS_PARTITIONS_PER_SHARD_MAX + 5;
        let partitions = (0..many)
            .map(|i| PartitionSnapshot {
                topic: "t".into(),
                partition: i as i32,
                appended_bytes: 10,
                read_bytes: 1,
                size_bytes: 20,
                ..PartitionSnapshot::default()
            })
            .collect();
        let snap = BrokerSnapshot {
            node_id: 1,
            shard_count: 1,
            shards: vec![ShardSnapshot {
                shard: 0,
                partitions,
                ..ShardSnapshot::default()
            }],
            topics: vec![("t".into(), many as i32)],
            ..BrokerSnapshot::default()
        };
        let report = StatusReport::from_snapshot(&snap);
        let shard = &report.shards[0];
        assert_eq!(shard.partitions, many);
        assert_eq!(shard.bytes_in, 10 * many as u64);
        assert_eq!(shard.bytes_out, many as u64);
        assert_eq!(shard.log_size_bytes, 20 * many as u64);
        assert_eq!(
            shard.partition_list.len(),
            ADMIN_STATUS_PARTITIONS_PER_SHARD_MAX
        );
        assert_eq!(shard.partitions_omitted, 5);
        let json = serde_json::to_string(&report).expect("serializes");
        let back: StatusReport = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, report);
    }
}
