//! The group APIs at the wire: decode what the state machine needs, route the group's
//! work to its owner shard (`ShardTable::owner_of_key(group id)`, over the engine's
//! `route_to_owner`), and build the version's response from the answer.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use sluice_engine::runtime::Shard;
use sluice_engine::ShardId;

use super::consumer::handlers as consumer;
use super::coordinator::{self, Coordinator};
use super::offsets::{self, OffsetChange, OFFSETS_TOPIC};
use super::state::{CommittedOffset, GroupState, JoinOutcome, JoinRequest, SyncOutcome};
use crate::broker::Broker;
use crate::errors;
use crate::handlers::str_bytes;
use crate::limits::{
    GROUPS_PER_REQUEST_MAX, GROUP_ID_BYTES_MAX, OFFSETS_TOPIC_PARTITIONS,
    OFFSET_METADATA_BYTES_MAX, REBALANCE_TIMEOUT_MS_MAX, SESSION_TIMEOUT_MS_MAX,
    SESSION_TIMEOUT_MS_MIN,
};
use crate::partition_ops::OwnerContext;
use crate::topics;

type OwnerWork<R> = Box<
    dyn FnOnce(Rc<Shard>, OwnerContext, Rc<Coordinator>) -> Pin<Box<dyn Future<Output = R>>> + Send,
>;

/// Runs `work` on the shard owning `group`, with that shard's loaded coordinator (in a
/// cluster `fail(NOT_COORDINATOR)` when this broker is not the group's coordinator).
async fn on_owner<R: Send + 'static>(
    broker: &Rc<Broker>,
    group: &str,
    fail: fn(i16) -> R,
    work: OwnerWork<R>,
) -> R {
    let owner = broker.shard.table().owner_of_key(group);
    let ctx = broker.owner_context();
    let group = group.to_string();
    let routed = broker
        .shard
        .route_to_owner(owner, move |shard| {
            Box::pin(async move {
                match coordinator::for_group(&shard, &ctx, &group).await {
                    Ok(c) => work(shard, ctx, c).await,
                    Err(code) => fail(code),
                }
            })
        })
        .await;
    routed.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "group coordinator shard unreachable");
        fail(errors::COORDINATOR_NOT_AVAILABLE)
    })
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= GROUP_ID_BYTES_MAX
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Creates `__consumer_offsets` if it does not exist yet (compacted, retention off:
/// the latest commit per group/topic/partition lives until deleted).
pub(crate) async fn ensure_offsets_topic(broker: &Rc<Broker>) -> Result<(), i16> {
    if broker.store.snapshot().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let spec = topics::TopicSpec {
        name: OFFSETS_TOPIC.to_string(),
        partitions: OFFSETS_TOPIC_PARTITIONS,
        replication_factor: -1,
        assignments: Vec::new(),
        configs: BTreeMap::from([
            ("retention.ms".to_string(), "-1".to_string()),
            ("retention.bytes".to_string(), "-1".to_string()),
            ("cleanup.policy".to_string(), "compact".to_string()),
            // Kafka's offsets.topic.segment.bytes: segments close (and become cleanable)
            // long before a 1 GiB default would.
            ("segment.bytes".to_string(), "104857600".to_string()),
        ]),
    };
    let topic = topics::validate_spec(broker, &spec).map_err(|e| {
        tracing::error!(error = %e.message, "invalid offsets topic spec");
        errors::COORDINATOR_NOT_AVAILABLE
    })?;
    match topics::create(broker, topic).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == errors::TOPIC_ALREADY_EXISTS => Ok(()),
        Err(e) => {
            tracing::error!(error = %e.message, "creating {OFFSETS_TOPIC} failed");
            Err(errors::COORDINATOR_NOT_AVAILABLE)
        }
    }
}

// ---------------------------------------------------------------- FindCoordinator

/// Where `key`'s coordinator is: (error code, message, node, host, port).
type Located = (i16, Option<&'static str>, i32, String, i32);

/// FindCoordinator. A single broker coordinates every group itself. In a cluster a
/// group's coordinator is the leader of its `__consumer_offsets` partition (the topic is
/// created on the first request, as in Kafka); COORDINATOR_NOT_AVAILABLE while that
/// partition has no live leader.
pub async fn find_coordinator(
    broker: &Rc<Broker>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version < 4 {
        vec![req.key.to_string()]
    } else {
        req.coordinator_keys
            .iter()
            .take(GROUPS_PER_REQUEST_MAX)
            .map(|k| k.to_string())
            .collect()
    };
    let groups = req.key_type == 0 && keys.iter().any(|k| valid_id(k));
    let topic = if groups && broker.cluster.is_some() {
        ensure_offsets_topic(broker).await
    } else {
        Ok(())
    };
    let locate = |key: &str| -> Located {
        let unavailable = |code, message| (code, message, -1, String::new(), -1);
        match req.key_type {
            0 if valid_id(key) => {}
            0 => return unavailable(errors::INVALID_REQUEST, Some("invalid group id")),
            1 => {
                return unavailable(
                    errors::COORDINATOR_NOT_AVAILABLE,
                    Some("transactions are not supported"),
                )
            }
            _ => return unavailable(errors::INVALID_REQUEST, Some("unknown key type")),
        }
        let Some(cluster) = &broker.cluster else {
            return (
                errors::NONE,
                None,
                broker.node_id(),
                broker.advertised_host.clone(),
                i32::from(broker.advertised_port),
            );
        };
        if let Err(code) = topic {
            return unavailable(code, Some("the offsets topic is not available"));
        }
        let view = cluster.view();
        let leader = view.state.topics.get(OFFSETS_TOPIC).and_then(|t| {
            let p = offsets::partition_for(key, t.partitions.len() as i32);
            t.partitions.get(usize::try_from(p).ok()?)?.leader
        });
        match leader.and_then(|b| Some((b, view.endpoint(b)?))) {
            Some((b, e)) => (errors::NONE, None, b.0, e.host.clone(), e.port),
            None => unavailable(
                errors::COORDINATOR_NOT_AVAILABLE,
                Some("the group's offsets partition has no leader"),
            ),
        }
    };
    let mut resp = FindCoordinatorResponse::default();
    if version < 4 {
        let (code, message, node, host, port) = locate(&keys[0]);
        resp.error_code = code;
        resp.error_message = message.map(str_bytes);
        resp.node_id = BrokerId(node);
        resp.host = str_bytes(host);
        resp.port = port;
        return resp;
    }
    for key in keys {
        let (code, message, node, host, port) = locate(&key);
        let mut c = CoordinatorEntry::default();
        c.key = str_bytes(key);
        c.error_code = code;
        c.error_message = message.map(str_bytes);
        c.node_id = BrokerId(node);
        c.host = str_bytes(host);
        c.port = port;
        resp.coordinators.push(c);
    }
    resp
}

// ---------------------------------------------------------------- JoinGroup

fn join_response(o: JoinOutcome, version: i16) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = o.error;
    r.generation_id = o.generation;
    r.protocol_type = o.protocol_type.map(str_bytes);
    // Non-nullable before v7.
    r.protocol_name = match o.protocol_name {
        Some(n) => Some(str_bytes(n)),
        None if version < 7 => Some(str_bytes("")),
        None => None,
    };
    r.leader = str_bytes(o.leader);
    r.member_id = str_bytes(o.member_id);
    r.members = o
        .members
        .into_iter()
        .map(|m| {
            let mut out = JoinGroupResponseMember::default();
            out.member_id = str_bytes(m.member_id);
            out.group_instance_id = m.instance_id.map(str_bytes);
            out.metadata = m.metadata;
            out
        })
        .collect();
    r
}

pub async fn join_group(
    broker: &Rc<Broker>,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let group = req.group_id.0.to_string();
    let member_id = req.member_id.to_string();
    if !valid_id(&group) {
        return join_response(
            JoinOutcome::error(errors::INVALID_GROUP_ID, member_id),
            version,
        );
    }
    if !(SESSION_TIMEOUT_MS_MIN..=SESSION_TIMEOUT_MS_MAX).contains(&req.session_timeout_ms) {
        return join_response(
            JoinOutcome::error(errors::INVALID_SESSION_TIMEOUT, member_id),
            version,
        );
    }
    if member_id.len() > GROUP_ID_BYTES_MAX
        || req.group_instance_id.as_ref().is_some_and(|i| !valid_id(i))
    {
        return join_response(
            JoinOutcome::error(errors::INVALID_REQUEST, member_id),
            version,
        );
    }
    // v0 has no rebalance timeout: the session timeout stands in, as in Kafka.
    let rebalance_ms = if req.rebalance_timeout_ms > 0 {
        req.rebalance_timeout_ms.min(REBALANCE_TIMEOUT_MS_MAX)
    } else {
        req.session_timeout_ms
    };
    let join = JoinRequest {
        member_id,
        instance_id: req.group_instance_id.map(|i| i.to_string()),
        client_id: String::new(),
        client_host: String::new(),
        session_timeout: Duration::from_millis(req.session_timeout_ms as u64),
        rebalance_timeout: Duration::from_millis(rebalance_ms as u64),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        initial_rebalance_delay: Duration::from_millis(
            broker.config.group_initial_rebalance_delay_ms,
        ),
    };
    // The group's membership is recorded in the offsets topic from its first SyncGroup on.
    if let Err(code) = ensure_offsets_topic(broker).await {
        return join_response(JoinOutcome::error(code, join.member_id), version);
    }
    let new_member_id = format!("sluice-{}", uuid::Uuid::from_u128(rand::random::<u128>()));
    let key = group.clone();
    let outcome = on_owner(
        broker,
        &key,
        |code| JoinOutcome::error(code, ""),
        Box::new(move |_shard, _ctx, c| {
            Box::pin(async move {
                if let Some(code) = consumer::classic_join_check(&group) {
                    return JoinOutcome::error(code, join.member_id);
                }
                let (tx, rx) = flume::bounded(1);
                if let Err(code) = c.with_group_or_new(&group, |g| {
                    g.join(join.clone(), new_member_id, Instant::now(), tx)
                }) {
                    return JoinOutcome::error(code, join.member_id);
                }
                rx.recv_async().await.unwrap_or_else(|_| {
                    JoinOutcome::error(errors::UNKNOWN_MEMBER_ID, join.member_id)
                })
            })
        }),
    )
    .await;
    join_response(outcome, version)
}

// ---------------------------------------------------------------- SyncGroup

pub async fn sync_group(
    broker: &Rc<Broker>,
    req: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let group = req.group_id.0.to_string();
    let member_id = req.member_id.to_string();
    let instance_id = req.group_instance_id.map(|i| i.to_string());
    let generation = req.generation_id;
    let protocol_type = req.protocol_type.map(|p| p.to_string());
    let protocol_name = req.protocol_name.map(|p| p.to_string());
    let assignments: Vec<(String, Bytes)> = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let key = group.clone();
    let o = on_owner(
        broker,
        &key,
        SyncOutcome::error,
        Box::new(move |shard, ctx, c| {
            Box::pin(async move {
                let (tx, rx) = flume::bounded(1);
                let found = c.with_group(&group, |g| {
                    g.sync(
                        &member_id,
                        instance_id.as_deref(),
                        generation,
                        (protocol_type.as_deref(), protocol_name.as_deref()),
                        assignments,
                        Instant::now(),
                        tx,
                    )
                });
                if found.is_none() {
                    return SyncOutcome::error(errors::UNKNOWN_MEMBER_ID);
                }
                // The leader's SyncGroup made the generation Stable: answer it once the
                // membership record is durable (the others were answered already).
                if let Err(code) = coordinator::persist(&shard, &ctx, &c, &group).await {
                    return SyncOutcome::error(code);
                }
                let out = rx
                    .recv_async()
                    .await
                    .unwrap_or_else(|_| SyncOutcome::error(errors::UNKNOWN_MEMBER_ID));
                tracing::debug!(group = %group, member = %member_id, code = out.error, "sync done on owner");
                out
            })
        }),
    )
    .await;
    tracing::debug!(group = %key, code = o.error, "sync answer back on the connection's shard");
    let mut r = SyncGroupResponse::default();
    r.error_code = o.error;
    if version >= 5 {
        r.protocol_type = o.protocol_type.map(str_bytes);
        r.protocol_name = o.protocol_name.map(str_bytes);
    }
    r.assignment = o.assignment;
    r
}

// ---------------------------------------------------------------- Heartbeat

pub async fn heartbeat(
    broker: &Rc<Broker>,
    req: HeartbeatRequest,
    _version: i16,
) -> HeartbeatResponse {
    let group = req.group_id.0.to_string();
    let member_id = req.member_id.to_string();
    let instance_id = req.group_instance_id.map(|i| i.to_string());
    let generation = req.generation_id;
    let key = group.clone();
    tracing::debug!(group = %key, member = %member_id, generation, "heartbeat received");
    let code = on_owner(
        broker,
        &key,
        |code| code,
        Box::new(move |_shard, _ctx, c| {
            Box::pin(async move {
                c.with_group(&group, |g| {
                    g.heartbeat(
                        &member_id,
                        instance_id.as_deref(),
                        generation,
                        Instant::now(),
                    )
                })
                .unwrap_or(errors::UNKNOWN_MEMBER_ID)
            })
        }),
    )
    .await;
    tracing::debug!(group = %key, code, "heartbeat answered");
    let mut r = HeartbeatResponse::default();
    r.error_code = code;
    r
}

// ---------------------------------------------------------------- LeaveGroup

pub async fn leave_group(
    broker: &Rc<Broker>,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group = req.group_id.0.to_string();
    let leaving: Vec<(String, Option<String>)> = if version < 3 {
        vec![(req.member_id.to_string(), None)]
    } else {
        req.members
            .iter()
            .take(crate::limits::GROUP_MEMBERS_MAX)
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    };
    let key = group.clone();
    let asked = leaving.clone();
    let codes: Result<Vec<i16>, i16> = on_owner(
        broker,
        &key,
        Err,
        Box::new(move |shard, ctx, c| {
            Box::pin(async move {
                let now = Instant::now();
                let codes = c
                    .with_group(&group, |g| {
                        leaving
                            .iter()
                            .map(|(m, i)| g.leave(m, i.as_deref(), now))
                            .collect()
                    })
                    .unwrap_or_else(|| vec![errors::UNKNOWN_MEMBER_ID; leaving.len()]);
                // The last member left: the Empty record is durable before the answer, so
                // a broker restart right after a clean close does not bring it back.
                coordinator::persist(&shard, &ctx, &c, &group).await?;
                Ok(codes)
            })
        }),
    )
    .await;
    let mut r = LeaveGroupResponse::default();
    match codes {
        Err(code) => r.error_code = code,
        Ok(codes) if version < 3 => r.error_code = codes.first().copied().unwrap_or(errors::NONE),
        Ok(codes) => {
            for ((member_id, instance_id), code) in asked.into_iter().zip(codes) {
                let mut m = MemberResponse::default();
                m.member_id = str_bytes(member_id);
                m.group_instance_id = instance_id.map(str_bytes);
                m.error_code = code;
                r.members.push(m);
            }
        }
    }
    r
}

// ---------------------------------------------------------------- OffsetCommit

pub async fn offset_commit(
    broker: &Rc<Broker>,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let snapshot = broker.store.snapshot();
    let mut codes: BTreeMap<(usize, usize), i16> = BTreeMap::new();
    let mut changes: Vec<((usize, usize), OffsetChange)> = Vec::new();
    let commit_ms = now_ms();
    for (ti, t) in req.topics.iter().enumerate() {
        let name = t.name.0.to_string();
        let partitions = snapshot.topic(&name).map(|m| m.partitions);
        for (pi, p) in t.partitions.iter().enumerate() {
            let code = if !valid_id(&group) {
                Some(errors::INVALID_GROUP_ID)
            } else if !partitions.is_some_and(|n| (0..n).contains(&p.partition_index)) {
                Some(errors::UNKNOWN_TOPIC_OR_PARTITION)
            } else if p
                .committed_metadata
                .as_ref()
                .is_some_and(|m| m.len() > OFFSET_METADATA_BYTES_MAX)
            {
                Some(errors::OFFSET_METADATA_TOO_LARGE)
            } else {
                None
            };
            match code {
                Some(code) => {
                    codes.insert((ti, pi), code);
                }
                None => changes.push((
                    (ti, pi),
                    (
                        (name.clone(), p.partition_index),
                        Some(CommittedOffset {
                            offset: p.committed_offset,
                            leader_epoch: if version >= 6 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                            commit_timestamp_ms: commit_ms,
                        }),
                    ),
                )),
            }
        }
    }
    if !changes.is_empty() {
        let code = match ensure_offsets_topic(broker).await {
            Err(code) => code,
            Ok(()) => {
                let member_id = req.member_id.to_string();
                let instance_id = req.group_instance_id.as_ref().map(|i| i.to_string());
                let generation = req.generation_id_or_member_epoch;
                let key = group.clone();
                let batch: Vec<OffsetChange> = changes.iter().map(|(_, c)| c.clone()).collect();
                on_owner(
                    broker,
                    &key,
                    |code| code,
                    Box::new(move |shard, ctx, c| {
                        Box::pin(async move {
                            let now = Instant::now();
                            let consumer_check =
                                consumer::commit_check(&group, &member_id, generation, version);
                            let allowed = match consumer_check.or_else(|| {
                                c.with_group(&group, |g| {
                                    g.may_commit(
                                        &member_id,
                                        instance_id.as_deref(),
                                        generation,
                                        now,
                                    )
                                })
                            }) {
                                Some(code) => code,
                                // No such group: only a commit from outside the group
                                // protocol (generation -1) may create it.
                                None if generation < 0 && member_id.is_empty() => errors::NONE,
                                None => errors::UNKNOWN_MEMBER_ID,
                            };
                            if allowed != errors::NONE {
                                return allowed;
                            }
                            match offsets::append(&shard, &ctx, &group, batch.clone()).await {
                                Ok(()) => {
                                    c.apply_offsets(&group, batch);
                                    errors::NONE
                                }
                                Err(code) => code,
                            }
                        })
                    }),
                )
                .await
            }
        };
        for (at, _) in changes {
            codes.insert(at, code);
        }
    }
    let mut resp = OffsetCommitResponse::default();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut rt = OffsetCommitResponseTopic::default();
        rt.name = t.name.clone();
        for (pi, p) in t.partitions.iter().enumerate() {
            let mut rp = OffsetCommitResponsePartition::default();
            rp.partition_index = p.partition_index;
            rp.error_code = codes
                .get(&(ti, pi))
                .copied()
                .unwrap_or(errors::UNKNOWN_SERVER_ERROR);
            rt.partitions.push(rp);
        }
        resp.topics.push(rt);
    }
    resp
}

// ---------------------------------------------------------------- OffsetFetch

type Committed = Result<Vec<((String, i32), CommittedOffset)>, i16>;

/// `member`: (member id, member epoch) of a consumer-protocol member (OffsetFetch v9+).
async fn committed(
    broker: &Rc<Broker>,
    group: &str,
    member: Option<(Option<String>, i32)>,
) -> Committed {
    let g = group.to_string();
    on_owner(
        broker,
        group,
        Err,
        Box::new(move |_shard, _ctx, c| {
            Box::pin(async move {
                if let Some((member_id, epoch)) = &member {
                    match consumer::fetch_check(&g, member_id.as_deref(), *epoch) {
                        Some(code) if code != errors::NONE => return Err(code),
                        _ => {}
                    }
                }
                Ok(c.committed(&g).unwrap_or_default())
            })
        }),
    )
    .await
}

/// (topic, [(partition, offset, leader epoch, metadata, code)]) for the asked partitions,
/// or every committed one when `asked` is None.
type FetchedTopic = (String, Vec<(i32, i64, i32, String, i16)>);

fn fetched(
    all: &[((String, i32), CommittedOffset)],
    asked: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<FetchedTopic> {
    let lookup: BTreeMap<(&str, i32), &CommittedOffset> = all
        .iter()
        .map(|((t, p), o)| ((t.as_str(), *p), o))
        .collect();
    let one = |t: &str, p: i32| match lookup.get(&(t, p)) {
        Some(o) => (
            p,
            o.offset,
            o.leader_epoch,
            o.metadata.clone().unwrap_or_default(),
            errors::NONE,
        ),
        None => (p, -1, -1, String::new(), errors::NONE),
    };
    match asked {
        Some(asked) => asked
            .into_iter()
            .map(|(t, ps)| {
                let parts = ps.iter().map(|p| one(&t, *p)).collect();
                (t, parts)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for ((t, p), _) in all {
                by_topic.entry(t.clone()).or_default().push(*p);
            }
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps.iter().map(|p| one(&t, *p)).collect();
                    (t, parts)
                })
                .collect()
        }
    }
}

pub async fn offset_fetch(
    broker: &Rc<Broker>,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if version < 8 {
        let group = req.group_id.0.to_string();
        let asked = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect::<Vec<_>>()
        });
        let topics = match committed(broker, &group, None).await {
            Ok(all) => Ok(fetched(&all, asked)),
            // v0 and v1 have no group-level error: every asked partition carries it (as
            // Kafka answers them), so an old client sees NOT_COORDINATOR and not "nothing
            // committed".
            Err(code) if version < 2 => Ok(asked
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps
                        .into_iter()
                        .map(|p| (p, -1, -1, String::new(), code))
                        .collect();
                    (t, parts)
                })
                .collect()),
            Err(code) => Err(code),
        };
        match topics {
            Ok(topics) => {
                for (t, parts) in topics {
                    let mut rt = OffsetFetchResponseTopic::default();
                    rt.name = TopicName(str_bytes(t));
                    for (p, offset, epoch, metadata, code) in parts {
                        let mut rp = OffsetFetchResponsePartition::default();
                        rp.partition_index = p;
                        rp.committed_offset = offset;
                        rp.committed_leader_epoch = epoch;
                        rp.metadata = Some(str_bytes(metadata));
                        rp.error_code = code;
                        rt.partitions.push(rp);
                    }
                    resp.topics.push(rt);
                }
            }
            Err(code) => resp.error_code = code,
        }
        return resp;
    }
    for g in req.groups.into_iter().take(GROUPS_PER_REQUEST_MAX) {
        let group = g.group_id.0.to_string();
        let asked = g.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect::<Vec<_>>()
        });
        let member = (version >= 9).then(|| (g.member_id.map(|m| m.to_string()), g.member_epoch));
        let mut rg = OffsetFetchResponseGroup::default();
        rg.group_id = g.group_id;
        match committed(broker, &group, member).await {
            Ok(all) => {
                for (t, parts) in fetched(&all, asked) {
                    let mut rt = OffsetFetchResponseTopics::default();
                    rt.name = TopicName(str_bytes(t));
                    for (p, offset, epoch, metadata, code) in parts {
                        let mut rp = OffsetFetchResponsePartitions::default();
                        rp.partition_index = p;
                        rp.committed_offset = offset;
                        rp.committed_leader_epoch = epoch;
                        rp.metadata = Some(str_bytes(metadata));
                        rp.error_code = code;
                        rt.partitions.push(rp);
                    }
                    rg.topics.push(rt);
                }
            }
            Err(code) => rg.error_code = code,
        }
        resp.groups.push(rg);
    }
    resp
}

// ---------------------------------------------------------------- DescribeGroups

/// A group as DescribeGroups shows it, in `Send` form.
#[derive(Debug, Default)]
struct Described {
    state: String,
    protocol_type: String,
    protocol: String,
    /// (member id, instance id, metadata, assignment)
    members: Vec<(String, Option<String>, Bytes, Bytes)>,
}

pub async fn describe_groups(
    broker: &Rc<Broker>,
    req: DescribeGroupsRequest,
    _version: i16,
) -> DescribeGroupsResponse {
    let mut resp = DescribeGroupsResponse::default();
    for gid in req.groups.into_iter().take(GROUPS_PER_REQUEST_MAX) {
        let group = gid.0.to_string();
        let g = group.clone();
        let d: Result<Described, i16> = on_owner(
            broker,
            &group,
            Err,
            Box::new(move |_shard, _ctx, c| {
                Box::pin(async move {
                    if consumer::is_consumer_group(&g) {
                        // Kafka answers DescribeGroups v0-v5 for a consumer-protocol group
                        // with Dead and no error (v6 says GROUP_ID_NOT_FOUND).
                        return Ok(Described {
                            state: GroupState::Dead.name().to_string(),
                            ..Described::default()
                        });
                    }
                    Ok(c.with_group(&g, |g| {
                        let protocol = g.protocol().unwrap_or("").to_string();
                        Described {
                            state: g.state().name().to_string(),
                            protocol_type: g.protocol_type().unwrap_or("").to_string(),
                            protocol: protocol.clone(),
                            members: g
                                .members()
                                .map(|m| {
                                    (
                                        m.id.clone(),
                                        m.instance_id.clone(),
                                        m.metadata(&protocol),
                                        m.assignment.clone(),
                                    )
                                })
                                .collect(),
                        }
                    })
                    .unwrap_or_else(|| Described {
                        state: GroupState::Dead.name().to_string(),
                        ..Described::default()
                    }))
                })
            }),
        )
        .await;
        let mut out = DescribedGroup::default();
        out.group_id = gid;
        out.authorized_operations = i32::MIN;
        match d {
            Ok(d) => {
                out.group_state = str_bytes(d.state);
                out.protocol_type = str_bytes(d.protocol_type);
                out.protocol_data = str_bytes(d.protocol);
                out.members = d
                    .members
                    .into_iter()
                    .map(|(id, instance, metadata, assignment)| {
                        let mut m = DescribedGroupMember::default();
                        m.member_id = str_bytes(id);
                        m.group_instance_id = instance.map(str_bytes);
                        m.client_id = str_bytes("");
                        m.client_host = str_bytes("");
                        m.member_metadata = metadata;
                        m.member_assignment = assignment;
                        m
                    })
                    .collect();
            }
            Err(code) => out.error_code = code,
        }
        resp.groups.push(out);
    }
    resp
}

// ---------------------------------------------------------------- ListGroups

pub async fn list_groups(
    broker: &Rc<Broker>,
    req: ListGroupsRequest,
    _version: i16,
) -> ListGroupsResponse {
    let states: BTreeSet<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: BTreeSet<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let mut resp = ListGroupsResponse::default();
    let ctx = broker.owner_context();
    for s in 0..broker.shard.shard_count() {
        let ctx = ctx.clone();
        // (id, protocol type, state, group type)
        type Listed = Vec<(String, String, &'static str, &'static str)>;
        let listed: Result<Listed, i16> = broker
            .shard
            .route_to_owner(ShardId(s), move |shard| {
                Box::pin(async move {
                    let classic = coordinator::for_listing(&shard, &ctx).await?.list();
                    let modern = consumer::listed();
                    let modern_ids: BTreeSet<&str> =
                        modern.iter().map(|(id, _)| id.as_str()).collect();
                    let mut out: Listed = classic
                        .into_iter()
                        // An Empty classic entry under a consumer group only holds its offsets.
                        .filter(|(id, _, st)| {
                            !(*st == GroupState::Empty && modern_ids.contains(id.as_str()))
                        })
                        .map(|(id, pt, st)| (id, pt, st.name(), "classic"))
                        .collect();
                    out.extend(
                        modern
                            .into_iter()
                            .map(|(id, st)| (id, "consumer".to_string(), st.name(), "consumer")),
                    );
                    Ok(out)
                })
            })
            .await
            .unwrap_or(Err(errors::COORDINATOR_NOT_AVAILABLE));
        match listed {
            Ok(groups) => {
                for (id, protocol_type, state, group_type) in groups {
                    if !states.is_empty() && !states.contains(&state.to_lowercase()) {
                        continue;
                    }
                    if !types.is_empty() && !types.contains(group_type) {
                        continue;
                    }
                    let mut g = ListedGroup::default();
                    g.group_id = GroupId(str_bytes(id));
                    g.protocol_type = str_bytes(protocol_type);
                    g.group_state = str_bytes(state);
                    g.group_type = str_bytes(group_type);
                    resp.groups.push(g);
                }
            }
            Err(code) => resp.error_code = code,
        }
    }
    resp
}

// ---------------------------------------------------------------- DeleteGroups

/// Tombstones the group's committed offsets (`which`: all when None) once the group is
/// empty (`must_be_empty`) or the partitions are not subscribed; returns per-key codes.
async fn delete_offsets(
    shard: Rc<Shard>,
    ctx: OwnerContext,
    c: Rc<Coordinator>,
    group: String,
    keys: Vec<(String, i32)>,
) -> i16 {
    let changes: Vec<OffsetChange> = keys.into_iter().map(|k| (k, None)).collect();
    match offsets::append(&shard, &ctx, &group, changes.clone()).await {
        Ok(()) => {
            c.apply_offsets(&group, changes);
            errors::NONE
        }
        Err(code) => code,
    }
}

pub async fn delete_groups(
    broker: &Rc<Broker>,
    req: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let mut resp = DeleteGroupsResponse::default();
    for gid in req.groups_names.into_iter().take(GROUPS_PER_REQUEST_MAX) {
        let group = gid.0.to_string();
        let g = group.clone();
        let code = on_owner(
            broker,
            &group,
            |code| code,
            Box::new(move |shard, ctx, c| {
                Box::pin(async move {
                    let consumer_removed = match consumer::delete_check(&g) {
                        Err(code) => return code,
                        Ok(removed) => removed,
                    };
                    if consumer_removed {
                        if let Err(code) = consumer::persist_removed(&shard, &ctx, &g).await {
                            return code;
                        }
                    }
                    let keys = match c.with_group(&g, |grp| {
                        if grp.is_empty() {
                            Ok(grp.offsets.keys().cloned().collect::<Vec<_>>())
                        } else {
                            Err(errors::NON_EMPTY_GROUP)
                        }
                    }) {
                        None if consumer_removed => return errors::NONE,
                        None => return errors::GROUP_ID_NOT_FOUND,
                        Some(Err(code)) => return code,
                        Some(Ok(keys)) => keys,
                    };
                    let code =
                        delete_offsets(shard.clone(), ctx.clone(), c.clone(), g.clone(), keys)
                            .await;
                    if code != errors::NONE {
                        return code;
                    }
                    if let Err(code) = offsets::append_group(&shard, &ctx, &g, None).await {
                        return code;
                    }
                    c.remove(&g);
                    errors::NONE
                })
            }),
        )
        .await;
        let mut r = DeletableGroupResult::default();
        r.group_id = gid;
        r.error_code = code;
        resp.results.push(r);
    }
    resp
}

// ---------------------------------------------------------------- OffsetDelete

pub async fn offset_delete(
    broker: &Rc<Broker>,
    req: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let group = req.group_id.0.to_string();
    let asked: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let g = group.clone();
    let keys = asked.clone();
    // (group error, per-partition codes in `asked` order)
    let (group_code, codes): (i16, Vec<i16>) = on_owner(
        broker,
        &group,
        |code| (code, Vec::new()),
        Box::new(move |shard, ctx, c| {
            Box::pin(async move {
                let consumer_subscribed = consumer::subscribed_topics(&g);
                let subscribed = match c.with_group(&g, |grp| {
                    if grp.members().next().is_none() {
                        Some(Vec::new())
                    } else {
                        grp.subscribed_topics()
                    }
                }) {
                    None => return (errors::GROUP_ID_NOT_FOUND, Vec::new()),
                    Some(s) => consumer_subscribed.map(Some).unwrap_or(s),
                };
                let blocked =
                    |t: &str| subscribed.as_ref().is_none_or(|s| s.iter().any(|x| x == t));
                let deletable: Vec<(String, i32)> =
                    keys.iter().filter(|(t, _)| !blocked(t)).cloned().collect();
                let code = delete_offsets(shard, ctx, c, g, deletable).await;
                let codes = keys
                    .iter()
                    .map(|(t, _)| {
                        if blocked(t) {
                            errors::GROUP_SUBSCRIBED_TO_TOPIC
                        } else {
                            code
                        }
                    })
                    .collect();
                (errors::NONE, codes)
            })
        }),
    )
    .await;
    let mut resp = OffsetDeleteResponse::default();
    resp.error_code = group_code;
    if group_code != errors::NONE {
        return resp;
    }
    let mut codes = codes.into_iter();
    for t in req.topics {
        let mut rt = OffsetDeleteResponseTopic::default();
        rt.name = t.name.clone();
        for p in t.partitions {
            let mut rp = OffsetDeleteResponsePartition::default();
            rp.partition_index = p.partition_index;
            rp.error_code = codes.next().unwrap_or(errors::UNKNOWN_SERVER_ERROR);
            rt.partitions.push(rp);
        }
        resp.topics.push(rt);
    }
    resp
}
