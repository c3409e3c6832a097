//! Work that runs on the shard owning a partition (sent there by [`crate::routing`]).
//! Each function takes plain `Send` inputs and returns plain `Send` outcomes carrying
//! Kafka error codes: this is where engine errors meet the protocol.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use sluice_engine::log::producers::SequenceError;
use sluice_engine::log::{AppendOptions, LogError, PartitionLog};
use sluice_engine::runtime::{EngineError, Shard};
use sluice_engine::{LeaderEpoch, Offset, TopicPartition};

use crate::errors;
use crate::metadata::{topic_config, MetadataStore, TopicDefaults};

/// What owner-side work needs besides the shard: the cluster's topic view and defaults.
#[derive(Clone)]
pub struct OwnerContext {
    pub store: Arc<dyn MetadataStore>,
    pub defaults: Arc<TopicDefaults>,
    /// Cluster membership; `None` on a single broker (every partition led here, epoch 0).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// The log config of a topic's partitions. `__consumer_offsets` always compacts (its
/// records are keyed by group/topic/partition, and a delete policy would drop commits),
/// also when it was created before the broker compacted anything.
fn log_config_for(
    ctx: &OwnerContext,
    topic: &str,
    configs: &std::collections::BTreeMap<String, String>,
) -> sluice_engine::LogConfig {
    let mut cfg = topic_config::log_config(&ctx.defaults, configs);
    if crate::group::offsets::is_internal(topic) && !cfg.cleanup_policy.compacts() {
        cfg.cleanup_policy = sluice_engine::CleanupPolicy::Compact;
    }
    cfg
}

/// The partition's log on this (owner) shard, opened on first use if the metadata says
/// the partition exists (after a restart, or when another shard just created the topic).
pub async fn partition_log(
    shard: &Rc<Shard>,
    ctx: &OwnerContext,
    tp: &TopicPartition,
) -> Result<Rc<PartitionLog>, i16> {
    if let Some(log) = shard.partition_for_work(tp) {
        return Ok(log);
    }
    let snapshot = ctx.store.snapshot();
    let Some(topic) = snapshot.topic(&tp.topic) else {
        return Err(errors::UNKNOWN_TOPIC_OR_PARTITION);
    };
    if tp.partition.0 < 0 || tp.partition.0 >= topic.partitions {
        return Err(errors::UNKNOWN_TOPIC_OR_PARTITION);
    }
    let cfg = log_config_for(ctx, &tp.topic, &topic.configs);
    shard
        .open_partition(tp.clone(), cfg)
        .await
        .map_err(|e| match e {
            // Moved (or moving) to another shard: the client retries after a metadata refresh.
            EngineError::NotOwner { .. } | EngineError::MoveInProgress(_) => {
                tracing::debug!(partition = %tp, error = %e, "partition is not on this shard");
                errors::NOT_LEADER_OR_FOLLOWER
            }
            e => {
                tracing::warn!(partition = %tp, error = %e, "opening partition failed");
                errors::KAFKA_STORAGE_ERROR
            }
        })
}

fn log_error_code(tp: &TopicPartition, e: &LogError) -> i16 {
    match e {
        LogError::OffsetOutOfRange { .. } => errors::OFFSET_OUT_OF_RANGE,
        LogError::Batch {
            source: sluice_engine::batch::BatchError::TooLarge { .. },
            ..
        } => errors::MESSAGE_TOO_LARGE,
        // Kafka refuses a keyless record on a compacted topic with INVALID_RECORD.
        LogError::Batch {
            source: sluice_engine::batch::BatchError::MissingKey,
            ..
        } => errors::INVALID_RECORD,
        LogError::Batch { .. } => errors::CORRUPT_MESSAGE,
        // Idempotent producers. A duplicate batch is not an error: the engine answers it
        // with the original offsets (DUPLICATE_SEQUENCE_NUMBER is not used by modern
        // clients).
        LogError::Sequence {
            source: SequenceError::OutOfOrder { .. },
            ..
        } => errors::OUT_OF_ORDER_SEQUENCE_NUMBER,
        LogError::Sequence {
            source: SequenceError::StaleEpoch { .. },
            ..
        } => errors::INVALID_PRODUCER_EPOCH,
        LogError::Closed { .. } => errors::NOT_LEADER_OR_FOLLOWER,
        other => {
            tracing::warn!(partition = %tp, error = %other, "log error");
            errors::KAFKA_STORAGE_ERROR
        }
    }
}

/// Result of appending one partition's record set.
#[derive(Debug, Clone)]
pub struct ProduceOutcome {
    pub error_code: i16,
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    pub error_message: Option<String>,
}

impl ProduceOutcome {
    pub fn error(code: i16, message: Option<String>) -> Self {
        ProduceOutcome {
            error_code: code,
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
            error_message: message,
        }
    }
}

/// Appends `records`; resolves when the engine's durability policy says the append is
/// done (group commit by default: fdatasync'd), which is what acks=1 and acks=all wait
/// for on a single broker. In a cluster the partition's leader replica appends: acks=1
/// answers after its own durable append, acks=all once every in-sync replica has it
/// durably (the high watermark passed it), or REQUEST_TIMED_OUT after `timeout_ms`.
pub async fn produce(
    shard: Rc<Shard>,
    ctx: OwnerContext,
    tp: TopicPartition,
    records: Bytes,
    acks: i16,
    timeout_ms: i32,
) -> ProduceOutcome {
    if ctx.cluster.is_some() {
        return produce_replicated(&ctx, &tp, records, acks, timeout_ms).await;
    }
    let log = match partition_log(&shard, &ctx, &tp).await {
        Ok(log) => log,
        Err(code) => return ProduceOutcome::error(code, None),
    };
    let batch_bytes_max = ctx
        .store
        .snapshot()
        .topic(&tp.topic)
        .map_or(ctx.defaults.max_message_bytes.max(0) as usize, |t| {
            topic_config::max_message_bytes(&ctx.defaults, &t.configs)
        });
    let opts = AppendOptions {
        leader_epoch: LeaderEpoch(0),
        batch_bytes_max,
    };
    match log.append(&records, opts).await {
        Ok(info) => ProduceOutcome {
            error_code: errors::NONE,
            base_offset: info.base_offset.0,
            log_append_time_ms: info.log_append_time_ms,
            log_start_offset: info.log_start_offset.0,
            error_message: None,
        },
        Err(e) => ProduceOutcome::error(log_error_code(&tp, &e), Some(e.to_string())),
    }
}

fn max_message_bytes(ctx: &OwnerContext, tp: &TopicPartition) -> usize {
    ctx.store
        .snapshot()
        .topic(&tp.topic)
        .map_or(ctx.defaults.max_message_bytes.max(0) as usize, |t| {
            topic_config::max_message_bytes(&ctx.defaults, &t.configs)
        })
}

async fn produce_replicated(
    ctx: &OwnerContext,
    tp: &TopicPartition,
    records: Bytes,
    acks: i16,
    timeout_ms: i32,
) -> ProduceOutcome {
    let driver = match crate::cluster::replicas::check_leader(tp, -1) {
        Ok(d) => d,
        Err(code) => return ProduceOutcome::error(code, None),
    };
    // The topic's max.message.bytes (the replica appends with the engine's ceiling).
    let limit = max_message_bytes(ctx, tp);
    for b in sluice_engine::batch::batches(&records) {
        match b {
            Ok(v) if v.len() > limit => {
                return ProduceOutcome::error(
                    errors::MESSAGE_TOO_LARGE,
                    Some(format!("batch of {} bytes exceeds {limit}", v.len())),
                )
            }
            Ok(_) => {}
            Err(e) => return ProduceOutcome::error(errors::CORRUPT_MESSAGE, Some(e.to_string())),
        }
    }
    let timeout = std::time::Duration::from_millis(timeout_ms.max(0) as u64).min(
        std::time::Duration::from_millis(crate::limits::PRODUCE_TIMEOUT_MS_MAX),
    );
    let append = async { Some(driver.produce(&records, acks == -1).await) };
    let expired = async {
        glommio::timer::sleep(timeout).await;
        None
    };
    match futures_lite::future::race(append, expired).await {
        None => ProduceOutcome::error(errors::REQUEST_TIMED_OUT, None),
        Some(Ok(info)) => ProduceOutcome {
            error_code: errors::NONE,
            base_offset: info.base_offset.0,
            log_append_time_ms: info.log_append_time_ms,
            log_start_offset: info.log_start_offset.0,
            error_message: None,
        },
        Some(Err(e)) => {
            use sluice_replication::driver::DriverError;
            use sluice_replication::partition::ProduceError;
            let code = match &e {
                DriverError::Produce(ProduceError::NotLeader) => errors::NOT_LEADER_OR_FOLLOWER,
                DriverError::Produce(ProduceError::NotEnoughReplicas) => {
                    errors::NOT_ENOUGH_REPLICAS
                }
                DriverError::Produce(ProduceError::NotEnoughReplicasAfterAppend) => {
                    errors::NOT_ENOUGH_REPLICAS_AFTER_APPEND
                }
                DriverError::Produce(ProduceError::TooManyWaiters) => errors::REQUEST_TIMED_OUT,
                DriverError::Log(le) => log_error_code(tp, le),
                DriverError::EpochCache(_) | DriverError::HwCheckpoint(_) => {
                    errors::KAFKA_STORAGE_ERROR
                }
            };
            ProduceOutcome::error(code, Some(e.to_string()))
        }
    }
}

/// In a cluster, a client read or offset lookup is served by the partition's leader only
/// (and checks the client's leader epoch); on a single broker always here.
fn check_serving(
    ctx: &OwnerContext,
    tp: &TopicPartition,
    current_leader_epoch: i32,
) -> Result<(), i16> {
    if ctx.cluster.is_none() {
        return Ok(());
    }
    crate::cluster::replicas::check_leader(tp, current_leader_epoch).map(drop)
}

/// Result of reading one partition for a Fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOutcome {
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Bytes,
}

pub async fn fetch(
    shard: Rc<Shard>,
    ctx: OwnerContext,
    tp: TopicPartition,
    from: i64,
    max_bytes: usize,
    current_leader_epoch: i32,
) -> FetchOutcome {
    if let Err(code) = check_serving(&ctx, &tp, current_leader_epoch) {
        return FetchOutcome {
            error_code: code,
            high_watermark: -1,
            log_start_offset: -1,
            records: Bytes::new(),
        };
    }
    let log = match partition_log(&shard, &ctx, &tp).await {
        Ok(log) => log,
        Err(code) => {
            return FetchOutcome {
                error_code: code,
                high_watermark: -1,
                log_start_offset: -1,
                records: Bytes::new(),
            }
        }
    };
    let high_watermark = log.high_watermark().0;
    let log_start_offset = log.log_start_offset().0;
    if from == high_watermark {
        return FetchOutcome {
            error_code: errors::NONE,
            high_watermark,
            log_start_offset,
            records: Bytes::new(),
        };
    }
    match log.read(Offset(from), max_bytes).await {
        Ok(r) => FetchOutcome {
            error_code: errors::NONE,
            high_watermark: r.high_watermark.0,
            log_start_offset: r.log_start_offset.0,
            records: Bytes::from(r.bytes),
        },
        Err(e) => FetchOutcome {
            error_code: log_error_code(&tp, &e),
            high_watermark,
            log_start_offset,
            records: Bytes::new(),
        },
    }
}

/// Resolves once any of `partitions` (all owned here) has data beyond the given offset,
/// or after `wait`.
pub async fn wait_for_any(
    shard: Rc<Shard>,
    ctx: OwnerContext,
    partitions: Vec<(TopicPartition, i64)>,
    wait: std::time::Duration,
) {
    let mut logs = Vec::with_capacity(partitions.len());
    for (tp, from) in partitions {
        if let Ok(log) = partition_log(&shard, &ctx, &tp).await {
            logs.push((log, from));
        }
    }
    let mut any: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> =
        Box::pin(glommio::timer::sleep(wait));
    for (log, from) in logs {
        let one = async move { log.wait_for_data(Offset(from)).await };
        any = Box::pin(futures_lite::future::race(any, one));
    }
    any.await;
}

/// Result of one ListOffsets lookup.
#[derive(Debug, Clone)]
pub struct OffsetOutcome {
    pub error_code: i16,
    pub offset: i64,
    pub timestamp: i64,
    /// The leader epoch reported with the offset (0 on a single broker; the current
    /// leader epoch in a cluster).
    pub leader_epoch: i32,
}

/// Kafka's special timestamps.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

pub async fn list_offset(
    shard: Rc<Shard>,
    ctx: OwnerContext,
    tp: TopicPartition,
    timestamp: i64,
    current_leader_epoch: i32,
) -> OffsetOutcome {
    if let Err(code) = check_serving(&ctx, &tp, current_leader_epoch) {
        return OffsetOutcome {
            error_code: code,
            offset: -1,
            timestamp: -1,
            leader_epoch: -1,
        };
    }
    let log = match partition_log(&shard, &ctx, &tp).await {
        Ok(log) => log,
        Err(code) => {
            return OffsetOutcome {
                error_code: code,
                offset: -1,
                timestamp: -1,
                leader_epoch: -1,
            }
        }
    };
    let epoch = crate::cluster::replicas::here()
        .and_then(|r| r.driver(&tp))
        .map_or(0, |d| d.leader_epoch().0);
    let found = |offset: i64, timestamp: i64| OffsetOutcome {
        error_code: errors::NONE,
        offset,
        timestamp,
        leader_epoch: epoch,
    };
    match timestamp {
        LATEST_TIMESTAMP => found(log.high_watermark().0, -1),
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => found(log.log_start_offset().0, -1),
        LATEST_TIERED_TIMESTAMP => found(-1, -1),
        MAX_TIMESTAMP => match log.max_timestamp() {
            Some((offset, ts)) => found(offset.0, ts),
            None => found(-1, -1),
        },
        ts if ts < 0 => OffsetOutcome {
            error_code: errors::INVALID_REQUEST,
            offset: -1,
            timestamp: -1,
            leader_epoch: -1,
        },
        ts => match log.batch_for_timestamp(ts).await {
            Ok(Some(hit)) => {
                let (offset, ts) = record_at_timestamp(&hit, ts);
                found(offset, ts)
            }
            Ok(None) => found(-1, -1),
            Err(e) => OffsetOutcome {
                error_code: log_error_code(&tp, &e),
                offset: -1,
                timestamp: -1,
                leader_epoch: -1,
            },
        },
    }
}

/// OffsetForLeaderEpoch on one partition: (error, the largest epoch at or below `epoch`,
/// where it ends); (-1, -1) when no such epoch is known.
pub async fn epoch_end(
    shard: Rc<Shard>,
    ctx: OwnerContext,
    tp: TopicPartition,
    current_leader_epoch: i32,
    epoch: i32,
) -> (i16, i32, i64) {
    if ctx.cluster.is_some() {
        return match crate::cluster::replicas::check_leader(&tp, current_leader_epoch) {
            Err(code) => (code, -1, -1),
            Ok(d) => match d.epoch_end(LeaderEpoch(epoch)) {
                Some(e) => (errors::NONE, e.epoch.0, e.end_offset.0),
                None => (errors::NONE, -1, -1),
            },
        };
    }
    let log = match partition_log(&shard, &ctx, &tp).await {
        Ok(log) => log,
        Err(code) => return (code, -1, -1),
    };
    if current_leader_epoch > 0 {
        return (errors::UNKNOWN_LEADER_EPOCH, -1, -1);
    }
    if epoch < 0 {
        return (errors::NONE, -1, -1);
    }
    (errors::NONE, 0, log.log_end_offset().0)
}

/// DeleteRecords on one partition: returns the new low watermark. `-1` means "up to the
/// high watermark", as Kafka's admin client sends for "delete everything".
pub async fn delete_records(
    shard: Rc<Shard>,
    ctx: OwnerContext,
    tp: TopicPartition,
    before: i64,
) -> (i16, i64) {
    if let Err(code) = check_serving(&ctx, &tp, -1) {
        return (code, -1);
    }
    let log = match partition_log(&shard, &ctx, &tp).await {
        Ok(log) => log,
        Err(code) => return (code, -1),
    };
    let hw = log.high_watermark().0;
    let before = if before == -1 { hw } else { before };
    if before < 0 || before > hw {
        return (errors::OFFSET_OUT_OF_RANGE, log.log_start_offset().0);
    }
    match log.delete_records_before(Offset(before)).await {
        Ok(low) => (errors::NONE, low.0),
        Err(e) => (log_error_code(&tp, &e), -1),
    }
}

/// Size on disk of one partition (DescribeLogDirs); None when it is not hosted here.
pub async fn size_bytes(shard: Rc<Shard>, ctx: OwnerContext, tp: TopicPartition) -> Option<u64> {
    partition_log(&shard, &ctx, &tp)
        .await
        .ok()
        .map(|log| log.size_bytes())
}

/// Pushes a topic's (new) log config to an open partition.
pub async fn apply_config(shard: Rc<Shard>, ctx: OwnerContext, tp: TopicPartition) {
    if let Some(log) = shard.partition(&tp) {
        if let Some(t) = ctx.store.snapshot().topic(&tp.topic) {
            log.set_config(log_config_for(&ctx, &tp.topic, &t.configs));
        }
    }
}

/// Opens (creates) a partition that the metadata now lists.
pub async fn open(shard: Rc<Shard>, ctx: OwnerContext, tp: TopicPartition) -> i16 {
    match partition_log(&shard, &ctx, &tp).await {
        Ok(_) => errors::NONE,
        Err(code) => code,
    }
}

/// Closes a partition and deletes its files (the topic was deleted).
pub async fn remove(shard: Rc<Shard>, tp: TopicPartition) -> i16 {
    if shard.partition(&tp).is_none() {
        // Not open here; the files may still exist from before a restart.
        tracing::debug!(partition = %tp, "removing a partition that is not open");
    }
    match shard.remove_partition(&tp).await {
        Ok(()) => errors::NONE,
        Err(e) => {
            tracing::warn!(partition = %tp, error = %e, "removing partition failed");
            errors::KAFKA_STORAGE_ERROR
        }
    }
}

/// The first record in `hit` whose timestamp is >= `ts`. Uncompressed batches are walked
/// record by record (through `kafka-protocol`'s record decoder); a compressed batch is not
/// decompressed here (a small batch can expand without bound), so its base offset and max
/// timestamp answer: a consumer seeking there sees at most one batch of earlier records.
fn record_at_timestamp(hit: &sluice_engine::log::TimestampHit, ts: i64) -> (i64, i64) {
    let fallback = (hit.batch_base_offset.0, hit.batch_max_timestamp);
    let Ok(view) = sluice_engine::batch::BatchView::parse(&hit.batch) else {
        return fallback;
    };
    if view.compression_codec() != 0 {
        return fallback;
    }
    let mut bytes = Bytes::copy_from_slice(&hit.batch);
    match kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes) {
        Ok(set) => set
            .records
            .iter()
            .find(|r| r.timestamp >= ts)
            .map_or(fallback, |r| (r.offset, r.timestamp)),
        Err(_) => fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotence_errors_map_to_the_codes_clients_recover_from() {
        let tp = TopicPartition::new("t", 0);
        let out_of_order = LogError::Sequence {
            tp: tp.clone(),
            source: SequenceError::OutOfOrder {
                producer_id: 1,
                first_seq: 5,
                expected: 3,
            },
        };
        assert_eq!(
            log_error_code(&tp, &out_of_order),
            errors::OUT_OF_ORDER_SEQUENCE_NUMBER
        );
        let stale = LogError::Sequence {
            tp: tp.clone(),
            source: SequenceError::StaleEpoch {
                producer_id: 1,
                epoch: 0,
                current: 1,
            },
        };
        assert_eq!(log_error_code(&tp, &stale), errors::INVALID_PRODUCER_EPOCH);
        assert_eq!(errors::OUT_OF_ORDER_SEQUENCE_NUMBER, 45);
        assert_eq!(errors::INVALID_PRODUCER_EPOCH, 47);
    }
}
