//! Committed offsets and group membership, durable in the internal topic
//! `__consumer_offsets`, in Kafka's own record format (offset commit key v1: group, topic,
//! partition; value v3: offset, leader epoch, metadata, commit timestamp; group metadata
//! key v2: group; value v3: protocol type, generation, protocol, leader, state timestamp,
//! members; a null value deletes, so Kafka's tools and a compacting cleaner read the log
//! as they would Kafka's), as RecordBatch v2 built by
//! `kafka-protocol`'s encoder and appended through the engine's PartitionLog on the
//! partition's owner shard. A group's records go to partition
//! `abs(java_hash(group)) % partitions` as in Kafka; at start-up each shard's coordinator
//! replays every partition (in log order) and keeps the groups it owns.
//!
//! Appends resolve when the engine's durability policy is met (group commit: fdatasync'd),
//! so an acknowledged OffsetCommit survives a crash.
//!
//! In a cluster the topic is replicated like any other: a group's coordinator is the
//! leader of its partition, appends go through that partition's leader replica with
//! acks=all (answered once every in-sync replica has them durably, so a commit survives
//! the loss of the coordinator), and a coordinator loads only the partitions it leads, up
//! to their high watermark (see [`super::coordinator`]).

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};
use sluice_engine::log::AppendOptions;
use sluice_engine::runtime::Shard;
use sluice_engine::{LeaderEpoch, Offset, ShardId, TopicPartition};

use super::consumer::records::{self, ConsumerKey, LoadedConsumerGroup};
use super::state::{CommittedOffset, GroupMetadata, MemberMetadata};
use crate::errors;
use crate::limits::{
    GROUP_MEMBERS_MAX, OFFSETS_COMMIT_TIMEOUT_MS, OFFSETS_LOAD_READ_BYTES,
    OFFSETS_RECORDS_PER_BATCH_MAX,
};
use crate::partition_ops::{partition_log, OwnerContext};

/// The internal topic's name, as in Kafka.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Whether clients may not produce to / see `name` in listings.
pub fn is_internal(name: &str) -> bool {
    name == OFFSETS_TOPIC
}

const KEY_VERSION_OFFSET_COMMIT: i16 = 1;
const VALUE_VERSION: i16 = 3;
const KEY_VERSION_GROUP_METADATA: i16 = 2;
/// GroupMetadataValue v3 (static members); v4 is the same fields, flexible.
const GROUP_VALUE_VERSION: i16 = 3;

/// One change: `None` deletes the committed offset.
pub type OffsetChange = ((String, i32), Option<CommittedOffset>);

/// Java's `String.hashCode`, so groups land on the partition Kafka would pick.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_hash(group);
    // Kafka's Utils.abs: i32::MIN maps to 0.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

fn put_string(b: &mut BytesMut, s: &str) {
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    b.put_i16(len);
    b.put_slice(&s.as_bytes()[..len.max(0) as usize]);
}

fn put_nullable_string(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
    b.put_slice(v);
}

fn get_bytes(b: &mut Bytes) -> Option<Bytes> {
    if b.remaining() < 4 {
        return None;
    }
    let len = b.get_i32();
    if len < 0 {
        return Some(Bytes::new());
    }
    let len = usize::try_from(len).ok()?;
    if b.remaining() < len {
        return None;
    }
    Some(b.split_to(len))
}

fn get_i32(b: &mut Bytes) -> Option<i32> {
    (b.remaining() >= 4).then(|| b.get_i32())
}

fn get_string(b: &mut Bytes) -> Option<Option<String>> {
    if b.remaining() < 2 {
        return None;
    }
    let len = b.get_i16();
    if len < 0 {
        return Some(None);
    }
    let len = len as usize;
    if b.remaining() < len {
        return None;
    }
    let s = b.split_to(len);
    String::from_utf8(s.to_vec()).ok().map(Some)
}

pub fn encode_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(KEY_VERSION_OFFSET_COMMIT);
    put_string(&mut b, group);
    put_string(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

pub fn encode_value(o: &CommittedOffset) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(VALUE_VERSION);
    b.put_i64(o.offset);
    b.put_i32(o.leader_epoch);
    put_string(&mut b, o.metadata.as_deref().unwrap_or(""));
    b.put_i64(o.commit_timestamp_ms);
    b.freeze()
}

/// A `__consumer_offsets` key, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// Versions 0 and 1: a committed offset of (group, topic, partition).
    Offset(String, String, i32),
    /// Version 2: a group's membership.
    Group(String),
    /// Versions 3 to 8: a consumer-protocol (KIP-848) group's records.
    Consumer(String, ConsumerKey),
}

pub fn encode_group_key(group: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(KEY_VERSION_GROUP_METADATA);
    put_string(&mut b, group);
    b.freeze()
}

/// Any key Kafka writes here; `None` for other versions and damaged keys.
pub fn decode_any_key(mut b: Bytes) -> Option<Key> {
    if b.remaining() < 2 {
        return None;
    }
    if (records::KEY_GROUP_METADATA..=records::KEY_CURRENT_ASSIGNMENT)
        .contains(&i16::from_be_bytes([b[0], b[1]]))
    {
        return records::decode_key(b).map(|(g, k)| Key::Consumer(g, k));
    }
    let version = b.get_i16();
    let group = get_string(&mut b)??;
    match version {
        0 | 1 => {
            let topic = get_string(&mut b)??;
            Some(Key::Offset(group, topic, get_i32(&mut b)?))
        }
        2 => Some(Key::Group(group)),
        _ => None,
    }
}

/// (group, topic, partition) of an offset commit key; `None` for other key kinds (group
/// metadata records, version 2) and damaged keys.
pub fn decode_key(b: Bytes) -> Option<(String, String, i32)> {
    match decode_any_key(b)? {
        Key::Offset(group, topic, partition) => Some((group, topic, partition)),
        Key::Group(_) | Key::Consumer(..) => None,
    }
}

pub fn encode_group_value(g: &GroupMetadata) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(GROUP_VALUE_VERSION);
    put_string(&mut b, &g.protocol_type);
    b.put_i32(g.generation);
    put_nullable_string(&mut b, g.protocol.as_deref());
    put_nullable_string(&mut b, g.leader.as_deref());
    b.put_i64(g.state_timestamp_ms);
    b.put_i32(i32::try_from(g.members.len()).unwrap_or(i32::MAX));
    for m in &g.members {
        put_string(&mut b, &m.member_id);
        put_nullable_string(&mut b, m.instance_id.as_deref());
        put_string(&mut b, &m.client_id);
        put_string(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

/// GroupMetadataValue v0-v3 (Kafka's layouts; v4 is flexible and not read). Member counts
/// above the group bound and truncated values are rejected.
pub fn decode_group_value(mut b: Bytes) -> Option<GroupMetadata> {
    if b.remaining() < 2 {
        return None;
    }
    let version = b.get_i16();
    if !(0..=3).contains(&version) {
        return None;
    }
    let protocol_type = get_string(&mut b)?.unwrap_or_default();
    let generation = get_i32(&mut b)?;
    let protocol = get_string(&mut b)?;
    let leader = get_string(&mut b)?;
    let state_timestamp_ms = if version >= 2 {
        if b.remaining() < 8 {
            return None;
        }
        b.get_i64()
    } else {
        -1
    };
    let count = get_i32(&mut b)?;
    if count > 0 && count as usize > GROUP_MEMBERS_MAX {
        return None;
    }
    let mut members = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count.max(0) {
        let member_id = get_string(&mut b)??;
        let instance_id = if version >= 3 {
            get_string(&mut b)?
        } else {
            None
        };
        let client_id = get_string(&mut b)?.unwrap_or_default();
        let client_host = get_string(&mut b)?.unwrap_or_default();
        let rebalance_timeout_ms = if version >= 1 { get_i32(&mut b)? } else { -1 };
        let session_timeout_ms = get_i32(&mut b)?;
        let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
            session_timeout_ms
        } else {
            rebalance_timeout_ms
        };
        members.push(MemberMetadata {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: get_bytes(&mut b)?,
            assignment: get_bytes(&mut b)?,
        });
    }
    Some(GroupMetadata {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp_ms,
        members,
    })
}

/// Offset commit values v0-v3 (Kafka's layouts).
pub fn decode_value(mut b: Bytes) -> Option<CommittedOffset> {
    if b.remaining() < 2 {
        return None;
    }
    let version = b.get_i16();
    if !(0..=3).contains(&version) || b.remaining() < 8 {
        return None;
    }
    let offset = b.get_i64();
    let leader_epoch = if version >= 3 {
        if b.remaining() < 4 {
            return None;
        }
        b.get_i32()
    } else {
        -1
    };
    let metadata = get_string(&mut b)?;
    if b.remaining() < 8 {
        return None;
    }
    let commit_timestamp_ms = b.get_i64();
    Some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

/// (key, value) records as stored; a `None` value is a tombstone.
pub type KeyValue = (Bytes, Option<Bytes>);

/// The records for `changes` of `group`'s committed offsets.
pub fn offset_records(group: &str, changes: &[OffsetChange]) -> Vec<KeyValue> {
    changes
        .iter()
        .map(|((topic, partition), value)| {
            (
                encode_key(group, topic, *partition),
                value.as_ref().map(encode_value),
            )
        })
        .collect()
}

/// The record for `group`'s membership; `None` deletes it.
pub fn group_record(group: &str, metadata: Option<&GroupMetadata>) -> KeyValue {
    (encode_group_key(group), metadata.map(encode_group_value))
}

/// RecordBatch v2 batches (uncompressed) holding `changes` for `group`.
pub fn encode_batches(
    group: &str,
    changes: &[OffsetChange],
    now_ms: i64,
) -> Result<Vec<Bytes>, String> {
    encode_record_batches(&offset_records(group, changes), now_ms)
}

/// RecordBatch v2 batches (uncompressed) holding `records`, in order.
pub fn encode_record_batches(records: &[KeyValue], now_ms: i64) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::new();
    for chunk in records.chunks(OFFSETS_RECORDS_PER_BATCH_MAX) {
        let records: Vec<Record> = chunk
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder batches records whose offset - sequence is constant; this
                // keeps one batch with base sequence -1 (not idempotent).
                sequence: NO_SEQUENCE.wrapping_add(i as i32),
                timestamp: now_ms,
                key: Some(key.clone()),
                value: value.clone(),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| e.to_string())?;
        out.push(buf.freeze());
    }
    Ok(out)
}

/// Appends `changes` to the group's partition of `__consumer_offsets` (routing to its
/// owner shard); resolves once durable. Error: the Kafka code for the commit.
pub async fn append(
    shard: &Rc<Shard>,
    ctx: &OwnerContext,
    group: &str,
    changes: Vec<OffsetChange>,
) -> Result<(), i16> {
    append_records(shard, ctx, group, offset_records(group, &changes)).await
}

/// Appends `group`'s membership record (a tombstone for `None`) like [`append`].
pub async fn append_group(
    shard: &Rc<Shard>,
    ctx: &OwnerContext,
    group: &str,
    metadata: Option<&GroupMetadata>,
) -> Result<(), i16> {
    append_records(shard, ctx, group, vec![group_record(group, metadata)]).await
}

/// Appends records keyed by `group` to its partition; resolves once durable. Runs on the
/// group's shard. In a cluster the append is made by the partition's leader replica at
/// the leader epoch this shard's coordinator loaded the partition at (NOT_COORDINATOR
/// when it has not loaded it, or leads it no more).
pub async fn append_records(
    shard: &Rc<Shard>,
    ctx: &OwnerContext,
    group: &str,
    records: Vec<KeyValue>,
) -> Result<(), i16> {
    if records.is_empty() {
        return Ok(());
    }
    let Some(partitions) = ctx
        .store
        .snapshot()
        .topic(OFFSETS_TOPIC)
        .map(|t| t.partitions)
    else {
        return Err(errors::COORDINATOR_NOT_AVAILABLE);
    };
    let partition = partition_for(group, partitions);
    let epoch = match ctx.cluster {
        None => None,
        Some(_) => {
            Some(super::coordinator::loaded_epoch(partition).ok_or(errors::NOT_COORDINATOR)?)
        }
    };
    let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
    let owner = shard.owner(&tp);
    if owner == shard.id() {
        // The common case (one shard, or the group's shard owns its offsets partition):
        // no hop, no task.
        return coalesce::append(shard, ctx, (tp, epoch), records).await;
    }
    let ctx = ctx.clone();
    let routed = shard
        .route_to_owner(owner, move |shard| {
            Box::pin(async move { coalesce::append(&shard, &ctx, (tp, epoch), records).await })
        })
        .await;
    routed.unwrap_or(Err(errors::COORDINATOR_NOT_AVAILABLE))
}

/// Where an append goes: the partition, and in a cluster the leader epoch it must still
/// be led at (`None` on a single broker).
type Target = (TopicPartition, Option<i32>);

/// Writes `records` to `tp` (on its owner shard) as one append: RecordBatch v2 batches of
/// at most `OFFSETS_RECORDS_PER_BATCH_MAX` records each, concatenated into one record set,
/// so the engine copies, writes and (group commit) fdatasyncs them in one round. Resolves
/// when the engine's durability policy covers all of them; in a cluster when the leader
/// replica at `epoch` has them in every in-sync replica (acks=all).
async fn write_records(
    shard: &Rc<Shard>,
    ctx: &OwnerContext,
    (tp, epoch): &Target,
    records: &[KeyValue],
) -> Result<(), i16> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let batches = encode_record_batches(records, now_ms).map_err(|e| {
        tracing::error!(error = %e, "encoding offset commit records failed");
        errors::UNKNOWN_SERVER_ERROR
    })?;
    let record_set: Bytes = match batches.len() {
        1 => batches.into_iter().next().unwrap_or_default(),
        _ => {
            let mut all = BytesMut::with_capacity(batches.iter().map(Bytes::len).sum());
            for b in &batches {
                all.put_slice(b);
            }
            all.freeze()
        }
    };
    if let Some(epoch) = *epoch {
        return write_replicated(tp, epoch, &record_set).await;
    }
    let log = partition_log(shard, ctx, tp).await?;
    let opts = AppendOptions {
        leader_epoch: LeaderEpoch(0),
        batch_bytes_max: sluice_engine::limits::BATCH_BYTES_MAX,
    };
    log.append(&record_set, opts).await.map_err(|e| {
        tracing::error!(partition = %tp, error = %e, "offset commit append failed");
        errors::KAFKA_STORAGE_ERROR
    })?;
    Ok(())
}

/// The cluster's write: through the leader replica at `epoch`, acks=all, bounded by
/// `OFFSETS_COMMIT_TIMEOUT_MS`. Errors are the coordinator's codes, as Kafka maps them: a
/// lost leadership is NOT_COORDINATOR (the client finds the new coordinator), too few
/// replicas or a timeout COORDINATOR_NOT_AVAILABLE (it retries).
async fn write_replicated(tp: &TopicPartition, epoch: i32, record_set: &[u8]) -> Result<(), i16> {
    use sluice_replication::driver::DriverError;
    use sluice_replication::partition::ProduceError;

    let driver = crate::cluster::replicas::check_leader(tp, epoch).map_err(|code| {
        tracing::debug!(partition = %tp, epoch, code, "offsets append: not the leader at the loaded epoch");
        errors::NOT_COORDINATOR
    })?;
    let append = async { Some(driver.produce(record_set, true).await) };
    let expired = async {
        glommio::timer::sleep(std::time::Duration::from_millis(OFFSETS_COMMIT_TIMEOUT_MS)).await;
        None
    };
    match futures_lite::future::race(append, expired).await {
        Some(Ok(_)) => Ok(()),
        None => {
            tracing::warn!(partition = %tp, "offsets append not replicated in time");
            Err(errors::COORDINATOR_NOT_AVAILABLE)
        }
        Some(Err(e)) => {
            tracing::warn!(partition = %tp, error = %e, "offsets append failed");
            Err(match e {
                DriverError::Produce(ProduceError::NotLeader) => errors::NOT_COORDINATOR,
                DriverError::Produce(_) => errors::COORDINATOR_NOT_AVAILABLE,
                DriverError::Log(_) | DriverError::EpochCache(_) | DriverError::HwCheckpoint(_) => {
                    errors::NOT_COORDINATOR
                }
            })
        }
    }
}

/// Coalesces the appends to one `__consumer_offsets` partition. While an append is in
/// flight, the records of every commit (and membership change) that arrives for the
/// partition wait here; when it resolves they go as the next single append - one record
/// set, one write, one fdatasync under group commit - instead of one append each. Every
/// caller is answered with the outcome of the append that held its records, so a commit
/// is still acknowledged only once its own record is durable under the policy. Records of
/// one caller stay together and in order; callers are served in arrival order.
///
/// State lives on the partition's owner shard (thread-local, one entry per partition
/// with an append in flight), and only that shard touches it.
mod coalesce {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    use futures_channel::oneshot;
    use sluice_engine::runtime::Shard;

    use super::{write_records, KeyValue, Target};
    use crate::errors;
    use crate::limits::OFFSETS_COALESCED_RECORDS_MAX;
    use crate::partition_ops::OwnerContext;

    type Reply = oneshot::Sender<Result<(), i16>>;

    /// Callers waiting for the in-flight append of one partition to finish.
    #[derive(Default)]
    struct Waiting {
        callers: Vec<(Vec<KeyValue>, Reply)>,
    }

    thread_local! {
        /// Partitions with an append in flight on this shard, and who waits behind it.
        static IN_FLIGHT: RefCell<HashMap<Target, Waiting>> = RefCell::new(HashMap::new());
    }

    /// Appends `records` to `tp` (this shard owns it; in a cluster at the leader epoch
    /// `tp` comes with: appends for different epochs never share a write); resolves once
    /// they are durable.
    pub(super) async fn append(
        shard: &Rc<Shard>,
        ctx: &OwnerContext,
        tp: Target,
        records: Vec<KeyValue>,
    ) -> Result<(), i16> {
        let queued = IN_FLIGHT.with(|f| {
            let mut f = f.borrow_mut();
            match f.get_mut(&tp) {
                Some(waiting) => {
                    let (tx, rx) = oneshot::channel();
                    waiting.callers.push((records, tx));
                    Ok(rx)
                }
                None => {
                    f.insert(tp.clone(), Waiting::default());
                    Err(records)
                }
            }
        });
        let records = match queued {
            // The sender is dropped unanswered only if the shard's tasks are torn down.
            Ok(rx) => return rx.await.unwrap_or(Err(errors::COORDINATOR_NOT_AVAILABLE)),
            Err(records) => records,
        };
        // Nothing in flight: write at once. Whoever queued meanwhile is handed to a
        // drainer when this append is done (or dropped), so this caller is answered
        // without waiting for their append.
        let _hand_off = HandOff {
            shard: shard.clone(),
            ctx: ctx.clone(),
            tp: tp.clone(),
        };
        write_records(shard, ctx, &tp, &records).await
    }

    /// Ends the first caller's append: the partition's queue goes to a drainer task, or,
    /// when empty, the partition has no append in flight any more.
    struct HandOff {
        shard: Rc<Shard>,
        ctx: OwnerContext,
        tp: Target,
    }

    impl Drop for HandOff {
        fn drop(&mut self) {
            let waiting = IN_FLIGHT.with(|f| {
                let mut f = f.borrow_mut();
                let waiting = f.get(&self.tp).is_some_and(|w| !w.callers.is_empty());
                if !waiting {
                    f.remove(&self.tp);
                }
                waiting
            });
            if waiting {
                let (shard, ctx, tp) = (self.shard.clone(), self.ctx.clone(), self.tp.clone());
                glommio::spawn_local(async move { drain(&shard, &ctx, tp).await }).detach();
            }
        }
    }

    /// Appends the queued callers' records in rounds (each round one append of at most
    /// `OFFSETS_COALESCED_RECORDS_MAX` records, but at least one caller's), answering each
    /// round's callers, until nobody waits; then the partition has no append in flight.
    async fn drain(shard: &Rc<Shard>, ctx: &OwnerContext, tp: Target) {
        loop {
            let round: Vec<(Vec<KeyValue>, Reply)> = IN_FLIGHT.with(|f| {
                let mut f = f.borrow_mut();
                let Some(waiting) = f.get_mut(&tp) else {
                    return Vec::new();
                };
                let mut records = 0;
                let mut take = 0;
                for (r, _) in &waiting.callers {
                    if take > 0 && records + r.len() > OFFSETS_COALESCED_RECORDS_MAX {
                        break;
                    }
                    records += r.len();
                    take += 1;
                }
                let round: Vec<_> = waiting.callers.drain(..take).collect();
                if round.is_empty() {
                    f.remove(&tp);
                }
                round
            });
            if round.is_empty() {
                return;
            }
            let records: Vec<KeyValue> =
                round.iter().flat_map(|(r, _)| r.iter().cloned()).collect();
            let result = write_records(shard, ctx, &tp, &records).await;
            for (_, reply) in round {
                // A caller that went away (connection closed) needs no answer.
                let _ = reply.send(result);
            }
        }
    }
}

/// What the log holds for one group: its committed offsets and last membership record,
/// or the records of a consumer-protocol group.
#[derive(Debug, Default)]
pub struct LoadedGroup {
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    pub metadata: Option<GroupMetadata>,
    pub consumer: LoadedConsumerGroup,
}

/// Which partitions of `__consumer_offsets` a load reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadScope {
    /// Every partition, to its end (a single broker).
    All,
    /// One partition this broker leads at `epoch` (a cluster), to its high watermark.
    Led { partition: i32, epoch: i32 },
}

/// Committed offsets and membership of the groups `here` owns, rebuilt from the
/// partitions of `__consumer_offsets` in `scope` (the last record per key wins, a
/// tombstone deletes). Errors: COORDINATOR_LOAD_IN_PROGRESS while a partition cannot be
/// read yet (its new leader replica has not caught up its high watermark),
/// NOT_COORDINATOR when this broker leads it at `epoch` no more.
pub async fn load(
    shard: &Rc<Shard>,
    ctx: &OwnerContext,
    scope: LoadScope,
) -> Result<HashMap<String, LoadedGroup>, i16> {
    let mut out: HashMap<String, LoadedGroup> = HashMap::new();
    let Some(partitions) = ctx
        .store
        .snapshot()
        .topic(OFFSETS_TOPIC)
        .map(|t| t.partitions)
    else {
        return Ok(out);
    };
    let here = shard.id();
    let (read, epoch) = match scope {
        LoadScope::All => (0..partitions, None),
        LoadScope::Led { partition, epoch } => (partition..partition + 1, Some(epoch)),
    };
    for p in read {
        let tp = TopicPartition::new(OFFSETS_TOPIC, p);
        let owner = shard.owner(&tp);
        let ctx = ctx.clone();
        let changes = shard
            .route_to_owner(owner, move |shard| {
                Box::pin(async move { read_partition(&shard, &ctx, &tp, here, epoch).await })
            })
            .await
            .map_err(|_| errors::COORDINATOR_LOAD_IN_PROGRESS)??;
        for change in changes {
            match change {
                LoadedChange::Offset(group, key, value) => {
                    let offsets = &mut out.entry(group).or_default().offsets;
                    match value {
                        Some(v) => {
                            offsets.insert(key, v);
                        }
                        None => {
                            offsets.remove(&key);
                        }
                    }
                }
                LoadedChange::Group(group, metadata) => {
                    out.entry(group).or_default().metadata = metadata;
                }
                LoadedChange::Consumer(group, key_bytes, key, value) => {
                    let consumer = &mut out.entry(group.clone()).or_default().consumer;
                    if !consumer.apply(key_bytes, key, value) {
                        tracing::warn!(group = %group, "skipping an unreadable consumer group record");
                    }
                }
            }
        }
    }
    out.retain(|_, g| !g.offsets.is_empty() || g.metadata.is_some() || !g.consumer.raw.is_empty());
    Ok(out)
}

enum LoadedChange {
    Offset(String, (String, i32), Option<CommittedOffset>),
    Group(String, Option<GroupMetadata>),
    Consumer(String, Bytes, ConsumerKey, Option<Bytes>),
}

/// On the partition's owner: every offset record, in log order, of groups `for_shard`
/// owns. In a cluster (`epoch`) only as the partition's leader at that epoch, and only once
/// its high watermark covers all its log: a new leader's log holds every commit the old
/// one acknowledged, but they count as committed only when its followers have them.
async fn read_partition(
    shard: &Rc<Shard>,
    ctx: &OwnerContext,
    tp: &TopicPartition,
    for_shard: ShardId,
    epoch: Option<i32>,
) -> Result<Vec<LoadedChange>, i16> {
    let end = match epoch {
        None => None,
        Some(epoch) => {
            let driver = crate::cluster::replicas::check_leader(tp, epoch).map_err(|code| {
                if code == errors::FENCED_LEADER_EPOCH {
                    // The controller has moved on from `epoch`.
                    errors::NOT_COORDINATOR
                } else {
                    // The replica has not taken up the leadership the view shows yet.
                    errors::COORDINATOR_LOAD_IN_PROGRESS
                }
            })?;
            let (hw, written) = (driver.high_watermark(), driver.log().written_end());
            if hw < written {
                tracing::debug!(partition = %tp, hw = hw.0, end = written.0,
                    "offsets load waits for the high watermark");
                return Err(errors::COORDINATOR_LOAD_IN_PROGRESS);
            }
            Some(hw.0)
        }
    };
    let log = partition_log(shard, ctx, tp).await?;
    let end = end.unwrap_or_else(|| log.high_watermark().0);
    let mut from = log.log_start_offset().0;
    let mut out = Vec::new();
    while from < end {
        let read = log
            .read_upto(Offset(from), OFFSETS_LOAD_READ_BYTES, Offset(end))
            .await
            .map_err(|e| {
                tracing::error!(partition = %tp, error = %e, "reading committed offsets failed");
                errors::COORDINATOR_LOAD_IN_PROGRESS
            })?;
        let mut bytes = Bytes::from(read.bytes);
        let before = from;
        while bytes.len() >= 61 {
            let base = i64::from_be_bytes(bytes[0..8].try_into().unwrap_or([0; 8]));
            let length = i32::from_be_bytes(bytes[8..12].try_into().unwrap_or([0; 4]));
            let last_delta = i32::from_be_bytes(bytes[23..27].try_into().unwrap_or([0; 4]));
            let Ok(total) = usize::try_from(length).map(|l| l + 12) else {
                break;
            };
            if total > bytes.len() {
                break;
            }
            let mut batch = bytes.split_to(total);
            from = base + i64::from(last_delta) + 1;
            let Ok(set) = RecordBatchDecoder::decode(&mut batch) else {
                tracing::warn!(partition = %tp, offset = base, "skipping an undecodable offsets batch");
                continue;
            };
            for r in set.records {
                if r.control {
                    continue;
                }
                let Some(key_bytes) = r.key else {
                    continue;
                };
                let Some(key) = decode_any_key(key_bytes.clone()) else {
                    continue;
                };
                let group = match &key {
                    Key::Offset(group, _, _) | Key::Group(group) | Key::Consumer(group, _) => group,
                };
                if shard.table().owner_of_key(group) != for_shard {
                    continue;
                }
                match key {
                    Key::Offset(group, topic, partition) => {
                        let value = match r.value {
                            Some(v) => match decode_value(v) {
                                Some(v) => Some(v),
                                None => continue,
                            },
                            None => None,
                        };
                        out.push(LoadedChange::Offset(group, (topic, partition), value));
                    }
                    Key::Group(group) => {
                        let value = match r.value {
                            Some(v) => match decode_group_value(v) {
                                Some(v) => Some(v),
                                None => {
                                    tracing::warn!(partition = %tp, group = %group, "skipping an unreadable group metadata record");
                                    continue;
                                }
                            },
                            None => None,
                        };
                        out.push(LoadedChange::Group(group, value));
                    }
                    Key::Consumer(group, key) => {
                        out.push(LoadedChange::Consumer(group, key_bytes, key, r.value));
                    }
                }
            }
        }
        if from <= before {
            // No whole batch came back: the log is damaged past here.
            tracing::error!(partition = %tp, offset = from, "offsets log does not advance");
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let k = encode_key("g", "orders", 7);
        assert_eq!(decode_key(k), Some(("g".into(), "orders".into(), 7)));
        let v = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: Some("m".into()),
            commit_timestamp_ms: 1000,
        };
        assert_eq!(decode_value(encode_value(&v)), Some(v));
        assert_eq!(decode_value(Bytes::from_static(&[0, 9])), None);
    }

    #[test]
    fn group_metadata_round_trips_and_keys_are_told_apart() {
        let g = GroupMetadata {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp_ms: 1234,
            members: vec![MemberMetadata {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 30_000,
                session_timeout_ms: 10_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let v = encode_group_value(&g);
        assert_eq!(decode_group_value(v.clone()), Some(g.clone()));
        for cut in 0..v.len() {
            assert_eq!(
                decode_group_value(v.slice(..cut)),
                None,
                "truncated at {cut}"
            );
        }
        assert_eq!(
            decode_any_key(encode_group_key("grp")),
            Some(Key::Group("grp".into()))
        );
        assert_eq!(decode_key(encode_group_key("grp")), None);
        assert_eq!(
            decode_any_key(encode_key("grp", "t", 3)),
            Some(Key::Offset("grp".into(), "t".into(), 3))
        );
        // Kafka's key v2 layout: version 2, then the group as a short string.
        assert_eq!(&encode_group_key("ab")[..], &[0, 2, 0, 2, b'a', b'b']);
    }

    #[test]
    fn group_metadata_v0_from_old_kafka_is_read() {
        // v0: protocol type, generation, protocol, leader, members without instance id
        // or rebalance timeout.
        let mut b = BytesMut::new();
        b.put_i16(0);
        put_string(&mut b, "consumer");
        b.put_i32(3);
        put_string(&mut b, "range");
        put_string(&mut b, "m");
        b.put_i32(1);
        put_string(&mut b, "m");
        put_string(&mut b, "cid");
        put_string(&mut b, "host");
        b.put_i32(6000);
        put_bytes(&mut b, b"s");
        put_bytes(&mut b, b"a");
        let g = decode_group_value(b.freeze()).expect("v0");
        assert_eq!(g.generation, 3);
        assert_eq!(g.members[0].rebalance_timeout_ms, 6000);
        assert_eq!(g.members[0].instance_id, None);
    }

    #[test]
    fn partition_matches_kafkas_choice() {
        // Kafka: Utils.abs("my-group".hashCode()) % 50 == 12 ("my-group".hashCode() = 1563004162... )
        let h = java_hash("my-group");
        let expected = (h.unsigned_abs() % 50) as i32;
        assert_eq!(partition_for("my-group", 50), expected);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("ab"), 97 * 31 + 98);
    }

    #[test]
    fn batches_decode_back_to_the_changes() {
        let changes: Vec<OffsetChange> = vec![
            (
                ("t".into(), 0),
                Some(CommittedOffset {
                    offset: 5,
                    leader_epoch: -1,
                    metadata: None,
                    commit_timestamp_ms: 1,
                }),
            ),
            (("t".into(), 1), None),
        ];
        let batches = encode_batches("g", &changes, 1).expect("encode");
        assert_eq!(batches.len(), 1);
        let mut b = batches[0].clone();
        let set = RecordBatchDecoder::decode(&mut b).expect("decode");
        assert_eq!(set.records.len(), 2);
        assert_eq!(
            set.records[0].key.clone().and_then(decode_key),
            Some(("g".into(), "t".into(), 0))
        );
        assert_eq!(
            set.records[0]
                .value
                .clone()
                .and_then(decode_value)
                .map(|v| v.offset),
            Some(5)
        );
        assert!(set.records[1].value.is_none());
    }
}
