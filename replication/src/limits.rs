//! Every bound replication and the controller enforce, in one place, with their relations
//! checked at compile time.

use sluice_engine::limits::BATCH_BYTES_MAX;

/// Largest inter-broker frame (header + rkyv payload). A leader never puts more than
/// [`APPEND_BYTES_MAX`] of batches in one message, so this leaves room for the envelope.
pub const FRAME_BYTES_MAX: usize = APPEND_BYTES_MAX + 64 * 1024;
/// Most batch bytes one Append message carries (live push or catch-up read).
pub const APPEND_BYTES_MAX: usize = BATCH_BYTES_MAX;
/// Batch bytes a leader keeps in flight to one follower before it stops pushing live and
/// lets the follower catch up from disk (the pipelining window).
pub const FOLLOWER_INFLIGHT_BYTES_MAX: usize = 2 * APPEND_BYTES_MAX;
/// Append messages in flight to one follower.
pub const FOLLOWER_INFLIGHT_MESSAGES_MAX: usize = 256;
/// Batch bytes of queued follower appends joined into one local append (one write, one
/// fdatasync); a single larger append still goes alone.
pub const FOLLOWER_APPEND_GROUP_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Default catch-up read rate of one leader partition for followers outside the ISR
/// (`ReplicaSettings::catchup_bytes_per_sec`), bytes per second.
pub const CATCHUP_BYTES_PER_SEC_DEFAULT: u64 = 64 * 1024 * 1024;
/// The catch-up budget saves up at most this much time's worth of its rate while idle.
pub const CATCHUP_BURST_MS: i64 = 1_000;
/// A replica's high watermark is checkpointed at most this often (when it moved), and on a
/// clean close (Kafka's replica.high.watermark.checkpoint.interval.ms).
pub const HW_CHECKPOINT_INTERVAL_MS: i64 = 5_000;
/// Most replicas of one partition (Kafka's practical maximum replication factor).
pub const REPLICAS_MAX: usize = 16;
/// acks=all produce requests waiting for the high watermark on one partition.
pub const HW_WAITERS_MAX: usize = 65_536;
/// Entries in one partition's leader-epoch cache; older ones are dropped from the front
/// (only the newest epochs matter for divergence).
pub const EPOCH_CACHE_ENTRIES_MAX: usize = 4096;
/// Brokers a cluster may register.
pub const BROKERS_MAX: usize = 1024;
/// Topics the metadata state holds.
pub const TOPICS_MAX: usize = 100_000;
/// Partitions of one topic.
pub const PARTITIONS_PER_TOPIC_MAX: usize = 100_000;
/// Bytes of one topic name (Kafka's limit).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Config entries per topic.
pub const TOPIC_CONFIGS_MAX: usize = 256;
/// Bytes of one Raft entry's data (one metadata command).
pub const RAFT_ENTRY_BYTES_MAX: usize = 1024 * 1024;
/// Raft entries the controller keeps in memory and on disk before it compacts with a
/// snapshot of the metadata state.
pub const RAFT_LOG_ENTRIES_MAX: usize = 100_000;
/// Partitions one automatic preferred-leader election names (keeps the command well under
/// RAFT_ENTRY_BYTES_MAX: a topic name is at most 249 bytes).
pub const REBALANCE_PARTITIONS_PER_COMMAND_MAX: usize = 1_000;
/// Partitions queued between two `process_ready`s for a reassignment completion check; the
/// periodic scan catches any beyond it.
pub const REASSIGNMENT_CANDIDATES_MAX: usize = 10_000;
/// Bytes of one metadata snapshot (the encoded metadata state). It travels whole in one Raft
/// message (raft-rs has no chunking), so it must fit a frame with room for the envelope; a
/// state beyond it is not snapshotted (the log grows to RAFT_LOG_ENTRIES_MAX instead).
pub const SNAPSHOT_BYTES_MAX: usize = 48 * 1024 * 1024;
/// Applied entries after which a voter snapshots its state and compacts its Raft log.
pub const SNAPSHOT_INTERVAL_ENTRIES: u64 = 20_000;
/// Entries kept behind a snapshot so a voter that lags a little catches up from the log
/// instead of receiving a whole snapshot.
pub const SNAPSHOT_KEEP_ENTRIES: u64 = 5_000;
/// Voters in the controller quorum (1, 3 or 5 in practice).
pub const CONTROLLER_VOTERS_MAX: usize = 7;

const _: () = assert!(FRAME_BYTES_MAX > APPEND_BYTES_MAX);
const _: () = assert!(FOLLOWER_INFLIGHT_BYTES_MAX >= APPEND_BYTES_MAX);
const _: () = assert!(FRAME_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(FOLLOWER_APPEND_GROUP_BYTES_MAX <= FOLLOWER_INFLIGHT_BYTES_MAX);
const _: () = assert!(CATCHUP_BURST_MS > 0);
const _: () = assert!(HW_CHECKPOINT_INTERVAL_MS > 0);
const _: () = assert!(REPLICAS_MAX <= BROKERS_MAX);
const _: () = assert!(CONTROLLER_VOTERS_MAX <= BROKERS_MAX);
const _: () = assert!(RAFT_ENTRY_BYTES_MAX <= FRAME_BYTES_MAX);
const _: () = assert!(SNAPSHOT_BYTES_MAX + 64 * 1024 <= FRAME_BYTES_MAX);
const _: () =
    assert!(SNAPSHOT_BYTES_MAX + 64 * 1024 <= sluice_engine::log::small_file::SMALL_FILE_BYTES_MAX);
const _: () = assert!(SNAPSHOT_KEEP_ENTRIES < SNAPSHOT_INTERVAL_ENTRIES);
const _: () = assert!(
    (SNAPSHOT_INTERVAL_ENTRIES + SNAPSHOT_KEEP_ENTRIES) as usize * 2 <= RAFT_LOG_ENTRIES_MAX
);
const _: () = assert!(
    REBALANCE_PARTITIONS_PER_COMMAND_MAX * (TOPIC_NAME_BYTES_MAX + 16) < RAFT_ENTRY_BYTES_MAX
);

/// Frames queued for one peer link before new ones are dropped (the replication and Raft
/// protocols resend what is lost; a replica never waits on a slow peer's socket).
pub const LINK_QUEUE_FRAMES_MAX: usize = 4096;
/// Frames a link writer takes from its queue for one write round (pipelined, one flush).
pub const LINK_WRITE_BATCH_FRAMES_MAX: usize = 256;
/// Reconnect backoff of a peer link, milliseconds.
pub const LINK_RECONNECT_MS_MIN: u64 = 10;
pub const LINK_RECONNECT_MS_MAX: u64 = 1_000;
/// Inbound inter-broker connections one shard accepts (peers x their shards); each may hold
/// one frame of up to FRAME_BYTES_MAX while reading it.
pub const INBOUND_CONNECTIONS_MAX: usize = 64;

const _: () = assert!(LINK_WRITE_BATCH_FRAMES_MAX <= LINK_QUEUE_FRAMES_MAX);
const _: () = assert!(LINK_RECONNECT_MS_MIN > 0 && LINK_RECONNECT_MS_MIN <= LINK_RECONNECT_MS_MAX);
