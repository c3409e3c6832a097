//! ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69) at the wire, plus the
//! checks the classic group APIs make on the owner shard when the group id belongs to a
//! consumer-protocol group (offset commits and fetches with member epochs, JoinGroup,
//! DescribeGroups, ListGroups, DeleteGroups, OffsetDelete).

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member as DescribedMember,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as HeartbeatAssignment, TopicPartitions as HeartbeatTopicPartitions,
};
use kafka_protocol::messages::*;
use regex::Regex;

use super::assignor::{Assignment, TopicId};
use super::coordinator;
use super::state::{self, GroupState, HeartbeatOutcome, HeartbeatRequest, Timing, TopicView};
use crate::broker::Broker;
use crate::errors;
use crate::group::coordinator as classic;
use crate::group::offsets;
use crate::handlers::{str_bytes, uuid};
use crate::limits::{CONSUMER_GROUP_PARTITIONS_MAX, GROUPS_PER_REQUEST_MAX, GROUP_ID_BYTES_MAX};
use crate::metadata::ClusterMetadata;

/// The topic list as a group sees it: the metadata snapshot of the owner shard.
struct SnapshotTopics(Arc<ClusterMetadata>);

impl TopicView for SnapshotTopics {
    fn topic(&self, name: &str) -> Option<(TopicId, i32)> {
        self.0.topic(name).map(|t| (t.topic_id, t.partitions))
    }
    fn matching(&self, re: &Regex) -> Vec<String> {
        self.0
            .topics
            .keys()
            .filter(|n| !offsets::is_internal(n) && re.is_match(n))
            .cloned()
            .collect()
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= GROUP_ID_BYTES_MAX
}

/// The member's owned partitions, bounded: `Err` when it names more than a group can own.
fn owned_partitions(
    owned: Option<Vec<consumer_group_heartbeat_request::TopicPartitions>>,
) -> Result<Option<Assignment>, ()> {
    let Some(owned) = owned else {
        return Ok(None);
    };
    let mut out = Assignment::new();
    let mut total = 0usize;
    for t in owned {
        total = total.saturating_add(t.partitions.len());
        if total > CONSUMER_GROUP_PARTITIONS_MAX {
            return Err(());
        }
        out.entry(t.topic_id.as_u128())
            .or_default()
            .extend(t.partitions);
    }
    Ok(Some(out))
}

fn heartbeat_response(o: HeartbeatOutcome) -> ConsumerGroupHeartbeatResponse {
    let mut r = ConsumerGroupHeartbeatResponse::default();
    r.error_code = o.error;
    r.error_message = o.message.map(str_bytes);
    r.member_id = (!o.member_id.is_empty()).then(|| str_bytes(o.member_id));
    r.member_epoch = o.member_epoch;
    r.heartbeat_interval_ms = o.heartbeat_interval_ms;
    r.assignment = o.assignment.map(|a| {
        let mut out = HeartbeatAssignment::default();
        out.topic_partitions = a
            .into_iter()
            .map(|(topic, ps)| {
                let mut tp = HeartbeatTopicPartitions::default();
                tp.topic_id = uuid(topic);
                tp.partitions = ps.into_iter().collect();
                tp
            })
            .collect();
        out
    });
    r
}

// ---------------------------------------------------------------- ConsumerGroupHeartbeat

/// The request header's client id as a member keeps it (bounded, cut at a char boundary).
pub fn client_id(raw: Option<&str>) -> String {
    let raw = raw.unwrap_or("");
    let mut end = raw.len().min(GROUP_ID_BYTES_MAX);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    raw[..end].to_string()
}

pub async fn heartbeat(
    broker: &Rc<Broker>,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: String,
) -> ConsumerGroupHeartbeatResponse {
    let group = req.group_id.0.to_string();
    if !valid_id(&group) {
        return heartbeat_response(HeartbeatOutcome::error(
            errors::INVALID_REQUEST,
            "GroupId can't be empty.",
        ));
    }
    let Ok(owned) = owned_partitions(req.topic_partitions) else {
        return heartbeat_response(HeartbeatOutcome::error(
            errors::INVALID_REQUEST,
            "TopicPartitions names more partitions than a group may own.",
        ));
    };
    let mut member_id = req.member_id.to_string();
    if member_id.len() > GROUP_ID_BYTES_MAX {
        return heartbeat_response(HeartbeatOutcome::error(
            errors::INVALID_REQUEST,
            "MemberId is too long.",
        ));
    }
    if version == 0 && member_id.is_empty() && req.member_epoch == 0 {
        // v0: the coordinator names new members (v1+ clients bring their own UUID).
        member_id = uuid::Uuid::from_u128(rand::random::<u128>()).to_string();
    }
    let hb = HeartbeatRequest {
        member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|ns| ns.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id,
        client_host: String::new(),
    };
    if let Err((code, message)) = state::validate(&hb, version) {
        return heartbeat_response(HeartbeatOutcome::error(code, message));
    }
    let timing = Timing {
        session_timeout: Duration::from_millis(
            broker.config.group_consumer_session_timeout_ms.max(0) as u64,
        ),
        heartbeat_interval_ms: broker.config.group_consumer_heartbeat_interval_ms,
    };
    // The group's records go to the offsets topic from its first heartbeat on.
    if let Err(code) = crate::group::handlers::ensure_offsets_topic(broker).await {
        return heartbeat_response(HeartbeatOutcome::error(
            code,
            "The offsets topic could not be created.",
        ));
    }
    let owner = broker.shard.table().owner_of_key(&group);
    let ctx = broker.owner_context();
    let routed = broker
        .shard
        .route_to_owner(owner, move |shard| {
            Box::pin(async move {
                let classic = match classic::for_group(&shard, &ctx, &group).await {
                    Ok(c) => c,
                    Err(code) if code == errors::NOT_COORDINATOR => {
                        return HeartbeatOutcome::error(code, "This broker is not the coordinator.")
                    }
                    Err(code) => return HeartbeatOutcome::error(code, "Coordinator is loading."),
                };
                if classic
                    .with_group(&group, |g| !g.is_empty())
                    .unwrap_or(false)
                {
                    return HeartbeatOutcome::error(
                        errors::GROUP_ID_NOT_FOUND,
                        format!("Group {group} is not a consumer group."),
                    );
                }
                let topics = SnapshotTopics(ctx.store.snapshot());
                let now = Instant::now();
                let consumer = coordinator::on_shard(&shard, &ctx);
                let answer = if hb.member_epoch == 0 {
                    consumer
                        .with_group_or_new(&group, |g| g.heartbeat(&hb, &topics, timing, now))
                        .map_err(|code| {
                            HeartbeatOutcome::error(code, "Too many groups on this coordinator.")
                        })
                } else {
                    // A group unknown here (deleted, or lost with its records): the
                    // member rejoins on UNKNOWN_MEMBER_ID (not Kafka's GROUP_ID_NOT_FOUND,
                    // which Java clients treat as fatal).
                    consumer
                        .with_group(&group, |g| g.heartbeat(&hb, &topics, timing, now))
                        .ok_or_else(|| {
                            HeartbeatOutcome::error(
                                errors::UNKNOWN_MEMBER_ID,
                                format!("Consumer group {group} not found."),
                            )
                        })
                };
                let answer = answer.unwrap_or_else(|e| e);
                // Answered once the records of what it changed are durable (Kafka's
                // coordinator answers after its append too).
                match coordinator::persist(&shard, &ctx, &consumer, &group).await {
                    Ok(()) => answer,
                    Err(code) => {
                        tracing::warn!(group = %group, code, "consumer group records not written");
                        HeartbeatOutcome::error(
                            errors::COORDINATOR_NOT_AVAILABLE,
                            "The group's records could not be written.",
                        )
                    }
                }
            })
        })
        .await;
    heartbeat_response(routed.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "group coordinator shard unreachable");
        HeartbeatOutcome::error(
            errors::COORDINATOR_NOT_AVAILABLE,
            "Coordinator unreachable.",
        )
    }))
}

// ---------------------------------------------------------------- ConsumerGroupDescribe

/// One member as ConsumerGroupDescribe shows it, in `Send` form.
struct MemberView {
    id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    epoch: i32,
    client_id: String,
    client_host: String,
    topic_names: Vec<String>,
    regex: Option<String>,
    assigned: Assignment,
    target: Assignment,
}

struct GroupView {
    state: &'static str,
    group_epoch: i32,
    assignment_epoch: i32,
    assignor: &'static str,
    members: Vec<MemberView>,
}

fn described_assignment(a: Assignment, snapshot: &ClusterMetadata) -> DescribedAssignment {
    let mut out = DescribedAssignment::default();
    out.topic_partitions = a
        .into_iter()
        .map(|(topic, ps)| {
            let mut tp = DescribedTopicPartitions::default();
            tp.topic_id = uuid(topic);
            tp.topic_name = TopicName(str_bytes(
                snapshot
                    .topic_by_id(topic)
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
            ));
            tp.partitions = ps.into_iter().collect();
            tp
        })
        .collect();
    out
}

pub async fn describe(
    broker: &Rc<Broker>,
    req: ConsumerGroupDescribeRequest,
    _version: i16,
) -> ConsumerGroupDescribeResponse {
    let mut resp = ConsumerGroupDescribeResponse::default();
    for gid in req.group_ids.into_iter().take(GROUPS_PER_REQUEST_MAX) {
        let group = gid.0.to_string();
        let mut out = DescribedGroup::default();
        out.group_id = gid;
        out.authorized_operations = i32::MIN;
        if !valid_id(&group) {
            out.error_code = errors::INVALID_GROUP_ID;
            resp.groups.push(out);
            continue;
        }
        let owner = broker.shard.table().owner_of_key(&group);
        let ctx = broker.owner_context();
        let g = group.clone();
        let view: Result<GroupView, (i16, String)> = broker
            .shard
            .route_to_owner(owner, move |shard| {
                Box::pin(async move {
                    // Loads the group (and in a cluster checks this broker coordinates it).
                    let classic = match classic::for_group(&shard, &ctx, &g).await {
                        Ok(c) => c,
                        Err(code) => return Err((code, String::new())),
                    };
                    let found = coordinator::existing().and_then(|c| {
                        c.with_group(&g, |grp| GroupView {
                            state: grp.state().name(),
                            group_epoch: grp.group_epoch(),
                            assignment_epoch: grp.assignment_epoch(),
                            assignor: grp.assignor_name(),
                            members: grp
                                .members()
                                .map(|m| MemberView {
                                    id: m.id.clone(),
                                    instance_id: m.instance_id.clone(),
                                    rack_id: m.rack_id.clone(),
                                    epoch: m.epoch,
                                    client_id: m.client_id.clone(),
                                    client_host: m.client_host.clone(),
                                    topic_names: m.topic_names.iter().cloned().collect(),
                                    regex: m.regex.as_ref().map(|(s, _)| s.clone()),
                                    assigned: m.assigned.clone(),
                                    target: grp.target_of(&m.id),
                                })
                                .collect(),
                        })
                    });
                    if let Some(view) = found {
                        return Ok(view);
                    }
                    let is_classic = classic.with_group(&g, |_| ()).is_some();
                    Err((
                        errors::GROUP_ID_NOT_FOUND,
                        if is_classic {
                            format!("Group {g} is not a consumer group.")
                        } else {
                            format!("Group {g} not found.")
                        },
                    ))
                })
            })
            .await
            .unwrap_or_else(|_| Err((errors::COORDINATOR_NOT_AVAILABLE, String::new())));
        match view {
            Ok(v) => {
                let snapshot = broker.store.snapshot();
                out.group_state = str_bytes(v.state);
                out.group_epoch = v.group_epoch;
                out.assignment_epoch = v.assignment_epoch;
                out.assignor_name = str_bytes(v.assignor);
                out.members = v
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut d = DescribedMember::default();
                        d.member_id = str_bytes(m.id);
                        d.instance_id = m.instance_id.map(str_bytes);
                        d.rack_id = m.rack_id.map(str_bytes);
                        d.member_epoch = m.epoch;
                        d.client_id = str_bytes(m.client_id);
                        d.client_host = str_bytes(m.client_host);
                        d.subscribed_topic_names = m
                            .topic_names
                            .into_iter()
                            .map(|n| TopicName(str_bytes(n)))
                            .collect();
                        d.subscribed_topic_regex = m.regex.map(str_bytes);
                        d.assignment = described_assignment(m.assigned, &snapshot);
                        d.target_assignment = described_assignment(m.target, &snapshot);
                        // v1: 1 = a member on the consumer protocol.
                        d.member_type = 1;
                        d
                    })
                    .collect();
            }
            Err((code, message)) => {
                out.error_code = code;
                out.error_message = (!message.is_empty()).then(|| str_bytes(message));
                out.group_state = str_bytes("Dead");
            }
        }
        resp.groups.push(out);
    }
    resp
}

// ---------------------------------------------------------------- hooks for classic APIs
// Each runs on the shard owning the group, inside the classic handler's routed closure.

/// OffsetCommit to a consumer-protocol group: the member epoch check, or `None` when the
/// group is not one.
pub fn commit_check(group: &str, member_id: &str, member_epoch: i32, version: i16) -> Option<i16> {
    coordinator::existing()?.with_group(group, |g| {
        g.validate_commit(member_id, member_epoch, version)
    })
}

/// OffsetFetch (v9+ carries the member) from a consumer-protocol group's member.
pub fn fetch_check(group: &str, member_id: Option<&str>, member_epoch: i32) -> Option<i16> {
    coordinator::existing()?.with_group(group, |g| g.validate_fetch(member_id, member_epoch))
}

/// A classic JoinGroup for this id: refused while a consumer-protocol group with members
/// holds it; an empty one gives way (Kafka converts an empty group to the classic type).
pub fn classic_join_check(group: &str) -> Option<i16> {
    let c = coordinator::existing()?;
    let busy = c.with_group(group, |g| !g.is_empty())?;
    if busy {
        return Some(errors::INCONSISTENT_GROUP_PROTOCOL);
    }
    c.remove(group);
    None
}

/// Writes the tombstones of a group [`delete_check`] removed; resolves once durable.
pub async fn persist_removed(
    shard: &Rc<sluice_engine::runtime::Shard>,
    ctx: &crate::partition_ops::OwnerContext,
    group: &str,
) -> Result<(), i16> {
    match coordinator::existing() {
        Some(c) => coordinator::persist(shard, ctx, &c, group).await,
        None => Ok(()),
    }
}

/// DeleteGroups: `Err(NON_EMPTY_GROUP)` while members remain; `Ok(true)` when an empty
/// consumer-protocol group was removed (its tombstones: [`persist_removed`]).
pub fn delete_check(group: &str) -> Result<bool, i16> {
    let Some(c) = coordinator::existing() else {
        return Ok(false);
    };
    match c.with_group(group, |g| g.is_empty()) {
        None => Ok(false),
        Some(false) => Err(errors::NON_EMPTY_GROUP),
        Some(true) => {
            c.remove(group);
            Ok(true)
        }
    }
}

/// Whether `group` is a consumer-protocol group (DescribeGroups shows it as Dead, as Kafka
/// does before DescribeGroups v6).
pub fn is_consumer_group(group: &str) -> bool {
    coordinator::existing().is_some_and(|c| c.with_group(group, |_| ()).is_some())
}

/// OffsetDelete: the topics its members subscribe to (`None` when not such a group).
pub fn subscribed_topics(group: &str) -> Option<Vec<String>> {
    coordinator::existing()?.with_group(group, |g| {
        if g.is_empty() {
            Vec::new()
        } else {
            g.subscribed_topic_names().cloned().collect()
        }
    })
}

/// ListGroups: (id, state) of this shard's consumer-protocol groups.
pub fn listed() -> Vec<(String, GroupState)> {
    coordinator::existing()
        .map(|c| c.list())
        .unwrap_or_default()
}

/// Ids of this shard's consumer-protocol groups (to hide their classic offset holders).
pub fn ids() -> BTreeSet<String> {
    listed().into_iter().map(|(id, _)| id).collect()
}
