//! A consumer-protocol group's state as `__consumer_offsets` records, in Kafka's KIP-848
//! formats so Kafka's tools read them: keys (not flexible: version, group id as a short
//! string, then the member id for member records) and values (flexible, version 0:
//! compact strings and arrays, tagged fields).
//!
//! | key version | record | value fields |
//! |---|---|---|
//! | 3 | ConsumerGroupMetadata | group epoch |
//! | 4 | ConsumerGroupPartitionMetadata | epoch, subscribed topics (id, name, partitions; racks written empty) |
//! | 5 | ConsumerGroupMemberMetadata | instance, rack, client id/host, subscription, rebalance timeout, assignor |
//! | 6 | ConsumerGroupTargetAssignmentMetadata | assignment epoch |
//! | 7 | ConsumerGroupTargetAssignmentMember | target partitions of one member |
//! | 8 | ConsumerGroupCurrentMemberAssignment | member epoch, previous epoch, state, assigned, pending revocation |
//!
//! A null value deletes the key. [`group_records`] is a group's whole state as records;
//! the coordinator writes the difference to what it wrote last. [`LoadedConsumerGroup`]
//! collects the last value per key during the start-up replay. Decoders reject truncated
//! input and counts above the group bounds (never a panic, never an unbounded allocation).

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::assignor::{Assignment, TopicId};
use super::state::{ConsumerGroup, MemberState};
use crate::limits::{
    CONSUMER_GROUP_MEMBERS_MAX, CONSUMER_GROUP_PARTITIONS_MAX, CONSUMER_SUBSCRIBED_TOPICS_MAX,
};

pub const KEY_GROUP_METADATA: i16 = 3;
pub const KEY_PARTITION_METADATA: i16 = 4;
pub const KEY_MEMBER_METADATA: i16 = 5;
pub const KEY_TARGET_METADATA: i16 = 6;
pub const KEY_TARGET_MEMBER: i16 = 7;
pub const KEY_CURRENT_ASSIGNMENT: i16 = 8;
/// Every value here is version 0.
const VALUE_VERSION: i16 = 0;

/// Which record a key names (the group id travels beside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsumerKey {
    Metadata,
    PartitionMetadata,
    Member(String),
    TargetMetadata,
    TargetMember(String),
    CurrentAssignment(String),
}

impl ConsumerKey {
    fn version(&self) -> i16 {
        match self {
            ConsumerKey::Metadata => KEY_GROUP_METADATA,
            ConsumerKey::PartitionMetadata => KEY_PARTITION_METADATA,
            ConsumerKey::Member(_) => KEY_MEMBER_METADATA,
            ConsumerKey::TargetMetadata => KEY_TARGET_METADATA,
            ConsumerKey::TargetMember(_) => KEY_TARGET_MEMBER,
            ConsumerKey::CurrentAssignment(_) => KEY_CURRENT_ASSIGNMENT,
        }
    }

    fn member(&self) -> Option<&str> {
        match self {
            ConsumerKey::Member(m)
            | ConsumerKey::TargetMember(m)
            | ConsumerKey::CurrentAssignment(m) => Some(m),
            _ => None,
        }
    }
}

fn put_short_string(b: &mut BytesMut, s: &str) {
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    b.put_i16(len);
    b.put_slice(&s.as_bytes()[..len.max(0) as usize]);
}

fn get_short_string(b: &mut Bytes) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let len = usize::try_from(b.get_i16()).ok()?;
    if b.remaining() < len {
        return None;
    }
    String::from_utf8(b.split_to(len).to_vec()).ok()
}

pub fn encode_key(group: &str, key: &ConsumerKey) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(key.version());
    put_short_string(&mut b, group);
    if let Some(m) = key.member() {
        put_short_string(&mut b, m);
    }
    b.freeze()
}

/// (group, key) of a key of version 3 to 8; `None` for other versions and damaged keys.
pub fn decode_key(mut b: Bytes) -> Option<(String, ConsumerKey)> {
    if b.remaining() < 2 {
        return None;
    }
    let version = b.get_i16();
    let group = get_short_string(&mut b)?;
    let key = match version {
        KEY_GROUP_METADATA => ConsumerKey::Metadata,
        KEY_PARTITION_METADATA => ConsumerKey::PartitionMetadata,
        KEY_MEMBER_METADATA => ConsumerKey::Member(get_short_string(&mut b)?),
        KEY_TARGET_METADATA => ConsumerKey::TargetMetadata,
        KEY_TARGET_MEMBER => ConsumerKey::TargetMember(get_short_string(&mut b)?),
        KEY_CURRENT_ASSIGNMENT => ConsumerKey::CurrentAssignment(get_short_string(&mut b)?),
        _ => return None,
    };
    Some((group, key))
}

// ---------------------------------------------------------------- flexible encoding

fn put_uvarint(b: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn get_uvarint(b: &mut Bytes) -> Option<u32> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        if !b.has_remaining() {
            return None;
        }
        let byte = b.get_u8();
        v |= u32::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn put_compact_string(b: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(b, 0),
        Some(s) => {
            put_uvarint(b, u32::try_from(s.len() + 1).unwrap_or(u32::MAX));
            b.put_slice(s.as_bytes());
        }
    }
}

fn get_compact_string(b: &mut Bytes) -> Option<Option<String>> {
    let n = get_uvarint(b)? as usize;
    if n == 0 {
        return Some(None);
    }
    if b.remaining() < n - 1 {
        return None;
    }
    String::from_utf8(b.split_to(n - 1).to_vec()).ok().map(Some)
}

fn put_len(b: &mut BytesMut, n: usize) {
    put_uvarint(b, u32::try_from(n + 1).unwrap_or(u32::MAX));
}

/// A compact array's length: at most `max`, and (each element being at least one byte)
/// at most what is left, so a lying count allocates nothing.
fn get_len(b: &mut Bytes, max: usize) -> Option<usize> {
    let n = (get_uvarint(b)? as usize).checked_sub(1)?;
    (n <= max && n <= b.remaining()).then_some(n)
}

/// Skips a tagged-field section (fields from newer versions are ignored).
fn skip_tags(b: &mut Bytes) -> Option<()> {
    let count = get_uvarint(b)?;
    for _ in 0..count {
        get_uvarint(b)?;
        let size = get_uvarint(b)? as usize;
        if b.remaining() < size {
            return None;
        }
        b.advance(size);
    }
    Some(())
}

fn get_i32(b: &mut Bytes) -> Option<i32> {
    (b.remaining() >= 4).then(|| b.get_i32())
}

fn start_value() -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i16(VALUE_VERSION);
    b
}

fn finish_value(mut b: BytesMut) -> Bytes {
    put_uvarint(&mut b, 0);
    b.freeze()
}

fn open_value(b: &mut Bytes) -> Option<()> {
    (b.remaining() >= 2 && b.get_i16() == VALUE_VERSION).then_some(())
}

fn put_assignment(b: &mut BytesMut, a: &Assignment) {
    put_len(b, a.len());
    for (topic, partitions) in a {
        b.put_u128(*topic);
        put_len(b, partitions.len());
        for p in partitions {
            b.put_i32(*p);
        }
        put_uvarint(b, 0);
    }
}

fn get_assignment(b: &mut Bytes) -> Option<Assignment> {
    let topics = get_len(b, CONSUMER_GROUP_PARTITIONS_MAX)?;
    let mut out = Assignment::new();
    let mut total = 0usize;
    for _ in 0..topics {
        if b.remaining() < 16 {
            return None;
        }
        let topic: TopicId = b.get_u128();
        let n = get_len(b, CONSUMER_GROUP_PARTITIONS_MAX)?;
        total += n;
        if total > CONSUMER_GROUP_PARTITIONS_MAX {
            return None;
        }
        let ps = out.entry(topic).or_default();
        for _ in 0..n {
            ps.insert(get_i32(b)?);
        }
        skip_tags(b)?;
    }
    Some(out)
}

// ---------------------------------------------------------------- values

pub fn encode_epoch(epoch: i32) -> Bytes {
    let mut b = start_value();
    b.put_i32(epoch);
    finish_value(b)
}

/// ConsumerGroupMetadataValue (the group epoch) and TargetAssignmentMetadataValue (the
/// assignment epoch) share a layout.
pub fn decode_epoch(mut b: Bytes) -> Option<i32> {
    open_value(&mut b)?;
    let epoch = get_i32(&mut b)?;
    skip_tags(&mut b)?;
    Some(epoch)
}

/// Subscribed topics: name -> (id, partitions).
pub type Subscribed = BTreeMap<String, (TopicId, i32)>;

pub fn encode_partition_metadata(epoch: i32, topics: &Subscribed) -> Bytes {
    let mut b = start_value();
    b.put_i32(epoch);
    put_len(&mut b, topics.len());
    for (name, (id, partitions)) in topics {
        b.put_u128(*id);
        put_compact_string(&mut b, Some(name));
        b.put_i32(*partitions);
        put_len(&mut b, 0); // PartitionRacks: no racks here
        put_uvarint(&mut b, 0);
    }
    finish_value(b)
}

pub fn decode_partition_metadata(mut b: Bytes) -> Option<(i32, Subscribed)> {
    open_value(&mut b)?;
    let epoch = get_i32(&mut b)?;
    let n = get_len(&mut b, CONSUMER_GROUP_PARTITIONS_MAX)?;
    let mut topics = Subscribed::new();
    for _ in 0..n {
        if b.remaining() < 16 {
            return None;
        }
        let id = b.get_u128();
        let name = get_compact_string(&mut b)??;
        let partitions = get_i32(&mut b)?;
        // Racks (written by Kafka) are read past: the assignors here ignore racks.
        let racks = get_len(&mut b, CONSUMER_GROUP_PARTITIONS_MAX)?;
        for _ in 0..racks {
            get_i32(&mut b)?;
            let names = get_len(&mut b, CONSUMER_GROUP_PARTITIONS_MAX)?;
            for _ in 0..names {
                get_compact_string(&mut b)?;
            }
            skip_tags(&mut b)?;
        }
        skip_tags(&mut b)?;
        topics.insert(name, (id, partitions));
    }
    skip_tags(&mut b)?;
    Some((epoch, topics))
}

/// ConsumerGroupMemberMetadataValue: what a member asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub topic_names: Vec<String>,
    pub topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

pub fn encode_member(m: &MemberValue) -> Bytes {
    let mut b = start_value();
    put_compact_string(&mut b, m.instance_id.as_deref());
    put_compact_string(&mut b, m.rack_id.as_deref());
    put_compact_string(&mut b, Some(&m.client_id));
    put_compact_string(&mut b, Some(&m.client_host));
    put_len(&mut b, m.topic_names.len());
    for n in &m.topic_names {
        put_compact_string(&mut b, Some(n));
    }
    put_compact_string(&mut b, m.topic_regex.as_deref());
    b.put_i32(m.rebalance_timeout_ms);
    put_compact_string(&mut b, m.server_assignor.as_deref());
    finish_value(b)
}

pub fn decode_member(mut b: Bytes) -> Option<MemberValue> {
    open_value(&mut b)?;
    let instance_id = get_compact_string(&mut b)?;
    let rack_id = get_compact_string(&mut b)?;
    let client_id = get_compact_string(&mut b)?.unwrap_or_default();
    let client_host = get_compact_string(&mut b)?.unwrap_or_default();
    let n = get_len(&mut b, CONSUMER_SUBSCRIBED_TOPICS_MAX)?;
    let mut topic_names = Vec::with_capacity(n);
    for _ in 0..n {
        topic_names.push(get_compact_string(&mut b)??);
    }
    let topic_regex = get_compact_string(&mut b)?;
    let rebalance_timeout_ms = get_i32(&mut b)?;
    let server_assignor = get_compact_string(&mut b)?;
    skip_tags(&mut b)?;
    Some(MemberValue {
        instance_id,
        rack_id,
        client_id,
        client_host,
        topic_names,
        topic_regex,
        rebalance_timeout_ms,
        server_assignor,
    })
}

pub fn encode_target_member(a: &Assignment) -> Bytes {
    let mut b = start_value();
    put_assignment(&mut b, a);
    finish_value(b)
}

pub fn decode_target_member(mut b: Bytes) -> Option<Assignment> {
    open_value(&mut b)?;
    let a = get_assignment(&mut b)?;
    skip_tags(&mut b)?;
    Some(a)
}

/// ConsumerGroupCurrentMemberAssignmentValue: where a member is in its reconciliation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentValue {
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub revoking: Assignment,
}

/// Kafka's MemberState bytes.
fn state_byte(s: MemberState) -> i8 {
    match s {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

fn state_of(b: i8) -> Option<MemberState> {
    match b {
        0 => Some(MemberState::Stable),
        1 => Some(MemberState::UnrevokedPartitions),
        2 => Some(MemberState::UnreleasedPartitions),
        _ => None,
    }
}

pub fn encode_current(c: &CurrentValue) -> Bytes {
    let mut b = start_value();
    b.put_i32(c.epoch);
    b.put_i32(c.previous_epoch);
    b.put_i8(state_byte(c.state));
    put_assignment(&mut b, &c.assigned);
    put_assignment(&mut b, &c.revoking);
    finish_value(b)
}

pub fn decode_current(mut b: Bytes) -> Option<CurrentValue> {
    open_value(&mut b)?;
    let epoch = get_i32(&mut b)?;
    let previous_epoch = get_i32(&mut b)?;
    if !b.has_remaining() {
        return None;
    }
    let state = state_of(b.get_i8())?;
    let assigned = get_assignment(&mut b)?;
    let revoking = get_assignment(&mut b)?;
    skip_tags(&mut b)?;
    Some(CurrentValue {
        epoch,
        previous_epoch,
        state,
        assigned,
        revoking,
    })
}

// ---------------------------------------------------------------- whole groups

/// Key bytes -> value bytes of every record describing `g` now.
pub fn group_records(g: &ConsumerGroup) -> BTreeMap<Bytes, Bytes> {
    let id = g.id.as_str();
    let mut out = BTreeMap::new();
    out.insert(
        encode_key(id, &ConsumerKey::Metadata),
        encode_epoch(g.group_epoch()),
    );
    out.insert(
        encode_key(id, &ConsumerKey::PartitionMetadata),
        encode_partition_metadata(g.group_epoch(), g.subscribed()),
    );
    out.insert(
        encode_key(id, &ConsumerKey::TargetMetadata),
        encode_epoch(g.assignment_epoch()),
    );
    for (member, target) in g.targets() {
        out.insert(
            encode_key(id, &ConsumerKey::TargetMember(member.clone())),
            encode_target_member(target),
        );
    }
    for m in g.members() {
        let value = MemberValue {
            instance_id: m.instance_id.clone(),
            rack_id: m.rack_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            topic_names: m.topic_names.iter().cloned().collect(),
            topic_regex: m.regex.as_ref().map(|(s, _)| s.clone()),
            rebalance_timeout_ms: i32::try_from(m.rebalance_timeout.as_millis())
                .unwrap_or(i32::MAX),
            server_assignor: m.server_assignor.map(|a| a.name().to_string()),
        };
        out.insert(
            encode_key(id, &ConsumerKey::Member(m.id.clone())),
            encode_member(&value),
        );
        let current = CurrentValue {
            epoch: m.epoch,
            previous_epoch: m.previous_epoch,
            state: m.state,
            assigned: m.assigned.clone(),
            revoking: m.revoking.clone(),
        };
        out.insert(
            encode_key(id, &ConsumerKey::CurrentAssignment(m.id.clone())),
            encode_current(&current),
        );
    }
    out
}

/// The last value of each of a group's records, as replayed from the log.
#[derive(Clone, Debug, Default)]
pub struct LoadedConsumerGroup {
    pub epoch: Option<i32>,
    pub subscribed: Subscribed,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, MemberValue>,
    pub targets: BTreeMap<String, Assignment>,
    pub current: BTreeMap<String, CurrentValue>,
    /// Every live key and its value bytes, as stored (what the coordinator last wrote).
    pub raw: BTreeMap<Bytes, Bytes>,
}

impl LoadedConsumerGroup {
    /// Applies one record in log order; `false` when the value is unreadable (skipped).
    pub fn apply(&mut self, key_bytes: Bytes, key: ConsumerKey, value: Option<Bytes>) -> bool {
        let Some(value) = value else {
            self.raw.remove(&key_bytes);
            match key {
                ConsumerKey::Metadata => self.epoch = None,
                ConsumerKey::PartitionMetadata => self.subscribed.clear(),
                ConsumerKey::TargetMetadata => self.assignment_epoch = 0,
                ConsumerKey::Member(m) => {
                    self.members.remove(&m);
                }
                ConsumerKey::TargetMember(m) => {
                    self.targets.remove(&m);
                }
                ConsumerKey::CurrentAssignment(m) => {
                    self.current.remove(&m);
                }
            }
            return true;
        };
        let ok = match key {
            ConsumerKey::Metadata => decode_epoch(value.clone()).map(|e| self.epoch = Some(e)),
            ConsumerKey::PartitionMetadata => {
                decode_partition_metadata(value.clone()).map(|(_, t)| self.subscribed = t)
            }
            ConsumerKey::TargetMetadata => {
                decode_epoch(value.clone()).map(|e| self.assignment_epoch = e)
            }
            ConsumerKey::Member(m) => decode_member(value.clone()).and_then(|v| {
                (self.members.contains_key(&m) || self.members.len() < CONSUMER_GROUP_MEMBERS_MAX)
                    .then(|| {
                        self.members.insert(m, v);
                    })
            }),
            ConsumerKey::TargetMember(m) => decode_target_member(value.clone()).and_then(|a| {
                (self.targets.contains_key(&m) || self.targets.len() < CONSUMER_GROUP_MEMBERS_MAX)
                    .then(|| {
                        self.targets.insert(m, a);
                    })
            }),
            ConsumerKey::CurrentAssignment(m) => decode_current(value.clone()).and_then(|c| {
                (self.current.contains_key(&m) || self.current.len() < CONSUMER_GROUP_MEMBERS_MAX)
                    .then(|| {
                        self.current.insert(m, c);
                    })
            }),
        };
        if ok.is_some() {
            self.raw.insert(key_bytes, value);
        }
        ok.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn assignment(list: &[(TopicId, &[i32])]) -> Assignment {
        list.iter()
            .map(|(t, ps)| (*t, ps.iter().copied().collect::<BTreeSet<i32>>()))
            .collect()
    }

    /// Every proper prefix of `v` must decode to `None` (never panic).
    fn truncations_fail<T: std::fmt::Debug>(v: &Bytes, decode: impl Fn(Bytes) -> Option<T>) {
        for cut in 0..v.len() {
            assert!(decode(v.slice(..cut)).is_none(), "truncated at {cut}");
        }
    }

    #[test]
    fn keys_round_trip_in_kafkas_layout() {
        for key in [
            ConsumerKey::Metadata,
            ConsumerKey::PartitionMetadata,
            ConsumerKey::Member("m-1".into()),
            ConsumerKey::TargetMetadata,
            ConsumerKey::TargetMember("m-1".into()),
            ConsumerKey::CurrentAssignment("m-1".into()),
        ] {
            let b = encode_key("grp", &key);
            assert_eq!(decode_key(b.clone()), Some(("grp".into(), key.clone())));
            truncations_fail(&b, decode_key);
        }
        // Version 5: group then member, each a short string.
        assert_eq!(
            &encode_key("g", &ConsumerKey::Member("m".into()))[..],
            &[0, 5, 0, 1, b'g', 0, 1, b'm']
        );
        assert_eq!(decode_key(Bytes::from_static(&[0, 2, 0, 1, b'g'])), None);
    }

    #[test]
    fn values_round_trip_and_truncations_are_errors() {
        let e = encode_epoch(42);
        // Version 0, epoch, no tagged fields.
        assert_eq!(&e[..], &[0, 0, 0, 0, 0, 42, 0]);
        assert_eq!(decode_epoch(e.clone()), Some(42));
        truncations_fail(&e, decode_epoch);

        let topics: Subscribed = [
            ("orders".to_string(), (7u128 << 64 | 3, 12)),
            ("a".into(), (9, 1)),
        ]
        .into_iter()
        .collect();
        let p = encode_partition_metadata(5, &topics);
        assert_eq!(decode_partition_metadata(p.clone()), Some((5, topics)));
        truncations_fail(&p, decode_partition_metadata);

        let m = MemberValue {
            instance_id: Some("i".into()),
            rack_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            topic_names: vec!["orders".into(), "audit".into()],
            topic_regex: Some("au.*".into()),
            rebalance_timeout_ms: 30_000,
            server_assignor: Some("uniform".into()),
        };
        let v = encode_member(&m);
        assert_eq!(decode_member(v.clone()), Some(m));
        truncations_fail(&v, decode_member);

        let a = assignment(&[(7, &[0, 2, 3]), (u128::MAX, &[1])]);
        let t = encode_target_member(&a);
        assert_eq!(decode_target_member(t.clone()), Some(a.clone()));
        truncations_fail(&t, decode_target_member);

        let c = CurrentValue {
            epoch: 9,
            previous_epoch: 8,
            state: MemberState::UnrevokedPartitions,
            assigned: a,
            revoking: assignment(&[(7, &[1])]),
        };
        let v = encode_current(&c);
        assert_eq!(decode_current(v.clone()), Some(c));
        truncations_fail(&v, decode_current);
    }

    #[test]
    fn lying_counts_and_unknown_versions_are_refused() {
        // A topic-name count of 2^28 with nothing behind it allocates nothing.
        let mut b = BytesMut::new();
        b.put_i16(0);
        for _ in 0..4 {
            put_compact_string(&mut b, None);
        }
        put_uvarint(&mut b, 1 << 28);
        assert_eq!(decode_member(b.freeze()), None);
        // An overlong varint.
        let v = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(decode_epoch(v), None);
        // Value version 1 is not a layout known here.
        assert_eq!(
            decode_epoch(Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0])),
            None
        );
        // Unknown member state byte.
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i32(1);
        b.put_i32(0);
        b.put_i8(7);
        put_len(&mut b, 0);
        put_len(&mut b, 0);
        put_uvarint(&mut b, 0);
        assert_eq!(decode_current(b.freeze()), None);
    }

    #[test]
    fn tagged_fields_from_newer_kafka_are_read_past() {
        // ConsumerGroupMetadataValue with MetadataHash (tag 0, 8 bytes) as Kafka 4.1 writes.
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i32(3);
        put_uvarint(&mut b, 1);
        put_uvarint(&mut b, 0);
        put_uvarint(&mut b, 8);
        b.put_i64(0x1234);
        assert_eq!(decode_epoch(b.freeze()), Some(3));
    }
}
