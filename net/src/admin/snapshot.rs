//! One consistent-enough picture of the broker for `/metrics` and `/status`: shard 0 asks
//! every shard (over `route_to_owner`) for a `Send` copy of its counters and of the
//! partitions it owns, then adds the cluster's topic list. Each shard's copy is taken in
//! one synchronous step on that shard; copies of different shards are moments apart.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use sluice_engine::log::stats::SYNC_LATENCY_US_MAX;
use sluice_engine::runtime::Shard;
use sluice_engine::ShardId;

use super::lag::{self, GroupLag};
use super::latency::{new_histogram, LatencySnapshot, LATENCY_US_MAX};
use super::requests::{self, ApiSnapshot};
use crate::broker::Broker;

// Partition fdatasync histograms are merged into one with our bounds.
const _: () = assert!(SYNC_LATENCY_US_MAX <= LATENCY_US_MAX);

/// One partition as its owning shard saw it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionSnapshot {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub size_bytes: u64,
    pub segments: usize,
    /// Record batch bytes appended since this broker opened the partition.
    pub appended_bytes: u64,
    pub appended_batches: u64,
    /// Record batch bytes read (fetches, replica reads) since the partition was opened.
    pub read_bytes: u64,
    pub syncs: u64,
    /// Log cleaner (compacted topics): bytes of segments it read and of cleaned copies it
    /// wrote since the partition was opened.
    pub cleaner_bytes_read: u64,
    pub cleaner_bytes_written: u64,
    /// When the cleaner last finished a pass here (Unix ms; -1: never).
    pub cleaner_last_run_ms: i64,
}

/// One shard's counters and partitions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShardSnapshot {
    pub shard: usize,
    /// Kafka connections this shard serves now.
    pub connections: usize,
    pub requests: Vec<ApiSnapshot>,
    /// The partitions open on this shard (every partition it owns after start-up
    /// recovery, plus those opened since), by topic and partition.
    pub partitions: Vec<PartitionSnapshot>,
    /// fdatasync latency over all of this shard's partitions.
    pub fsync_latency: LatencySnapshot,
}

/// What the admin endpoint renders.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BrokerSnapshot {
    pub node_id: i32,
    pub cluster_id: String,
    pub advertised_host: String,
    pub advertised_port: u16,
    pub listeners: String,
    pub uptime_seconds: u64,
    pub shard_count: usize,
    /// Shards that answered, by shard id.
    pub shards: Vec<ShardSnapshot>,
    /// Shards that did not answer (gone); their series are missing, not zero.
    pub unreachable_shards: Vec<usize>,
    /// Topics in the cluster metadata: name and partition count.
    pub topics: Vec<(String, i32)>,
    /// Lag of every committed offset whose partition is open, by group, topic, partition.
    pub group_lag: Vec<GroupLag>,
}

thread_local! {
    static BROKER: RefCell<Weak<Broker>> = const { RefCell::new(Weak::new()) };
}

/// Makes this shard's broker context reachable from snapshot work routed here.
pub fn register(broker: &Rc<Broker>) {
    BROKER.with(|b| *b.borrow_mut() = Rc::downgrade(broker));
}

/// Collects every shard's snapshot (asking them one after another) and the topic list.
pub async fn gather(broker: &Rc<Broker>, uptime_seconds: u64) -> BrokerSnapshot {
    let shard_count = broker.shard.shard_count();
    let mut shards = Vec::with_capacity(shard_count);
    let mut unreachable_shards = Vec::new();
    for i in 0..shard_count {
        let answer = broker
            .shard
            .route_to_owner(ShardId(i), |shard| {
                Box::pin(async move { shard_snapshot(&shard) })
            })
            .await;
        match answer {
            Ok(s) => shards.push(s),
            Err(e) => {
                tracing::warn!(shard = i, error = %e, "shard did not answer the metrics snapshot");
                unreachable_shards.push(i);
            }
        }
    }
    let mut committed = Vec::new();
    for i in 0..shard_count {
        let ctx = broker.owner_context();
        let answer = broker
            .shard
            .route_to_owner(ShardId(i), move |shard| {
                Box::pin(async move { lag::committed_on_this_shard(&shard, &ctx).await })
            })
            .await;
        match answer {
            Ok(Ok(c)) => committed.extend(c),
            Ok(Err(code)) => {
                tracing::warn!(
                    shard = i,
                    code,
                    "group coordinator gave no committed offsets"
                )
            }
            Err(e) => {
                tracing::warn!(shard = i, error = %e, "shard did not answer for group offsets")
            }
        }
    }
    let group_lag = lag::lag(&committed, shards.iter().flat_map(|s| &s.partitions));
    let topics = broker
        .store
        .snapshot()
        .topics
        .values()
        .map(|t| (t.name.clone(), t.partitions))
        .collect();
    BrokerSnapshot {
        node_id: broker.config.node_id,
        cluster_id: broker.config.cluster_id.clone(),
        advertised_host: broker.advertised_host.clone(),
        advertised_port: broker.advertised_port,
        listeners: broker.config.listeners.clone(),
        uptime_seconds,
        shard_count,
        shards,
        unreachable_shards,
        topics,
        group_lag,
    }
}

/// This shard's snapshot; runs on the shard, in one step (no await inside).
fn shard_snapshot(shard: &Rc<Shard>) -> ShardSnapshot {
    let connections = BROKER.with(|b| b.borrow().upgrade().map_or(0, |b| b.connections.get()));
    let mut fsync = new_histogram();
    let mut partitions: Vec<PartitionSnapshot> = shard
        .partitions()
        .iter()
        .map(|log| {
            let stats = log.stats();
            let syncs = stats.syncs.get();
            if syncs > 0 {
                if let Err(e) = fsync.add(stats.sync_latency_us()) {
                    tracing::warn!(partition = %log.topic_partition(), error = ?e, "fsync histogram not merged");
                }
            }
            let tp = log.topic_partition();
            PartitionSnapshot {
                topic: tp.topic.clone(),
                partition: tp.partition.0,
                log_start_offset: log.log_start_offset().0,
                high_watermark: log.high_watermark().0,
                log_end_offset: log.log_end_offset().0,
                size_bytes: log.size_bytes(),
                segments: log.segment_count(),
                appended_bytes: stats.appended_bytes.get(),
                appended_batches: stats.appended_batches.get(),
                read_bytes: stats.read_bytes.get(),
                syncs,
                cleaner_bytes_read: stats.cleaner_bytes_read.get(),
                cleaner_bytes_written: stats.cleaner_bytes_written.get(),
                cleaner_last_run_ms: stats.cleaner_last_run_ms.get(),
            }
        })
        .collect();
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    ShardSnapshot {
        shard: shard.id().0,
        connections,
        requests: requests::on_this_shard().snapshot(),
        partitions,
        fsync_latency: LatencySnapshot::from_histogram(&fsync, None),
    }
}
