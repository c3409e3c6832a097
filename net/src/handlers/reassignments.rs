//! Leadership and replica moves, through the controller: ElectLeaders (v0-v2, preferred
//! elections only: unclean election is off), AlterPartitionReassignments (v0, KIP-455:
//! new replicas are added, catch up, join the ISR, then the old ones leave) and
//! ListPartitionReassignments (v0). On a single broker there is nothing to move: every
//! election is ELECTION_NOT_NEEDED and a reassignment must name this broker alone.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use sluice_replication::controller::{ElectionError, MetadataCommand};

use super::str_bytes;
use crate::broker::Broker;
use crate::errors;
use crate::limits::PARTITIONS_PER_ADMIN_REQUEST_MAX;

const ELECTION_NOT_NEEDED: i16 = errors::code(ResponseError::ElectionNotNeeded);
const PREFERRED_LEADER_NOT_AVAILABLE: i16 =
    errors::code(ResponseError::PreferredLeaderNotAvailable);
const NO_REASSIGNMENT_IN_PROGRESS: i16 = errors::code(ResponseError::NoReassignmentInProgress);

fn ids(v: &[sluice_replication::BrokerId]) -> Vec<BrokerId> {
    v.iter().map(|b| BrokerId(b.0)).collect()
}

pub async fn elect_leaders(
    broker: &Rc<Broker>,
    req: ElectLeadersRequest,
    _version: i16,
) -> ElectLeadersResponse {
    let mut resp = ElectLeadersResponse::default();
    // Every partition asked about (null: all of them), bounded.
    let wanted: Vec<(String, i32)> = match &req.topic_partitions {
        Some(topics) => topics
            .iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.iter().map(move |p| (name.clone(), *p))
            })
            .take(PARTITIONS_PER_ADMIN_REQUEST_MAX)
            .collect(),
        None => broker
            .store
            .snapshot()
            .topics
            .values()
            .flat_map(|t| (0..t.partitions).map(|p| (t.name.clone(), p)))
            .take(PARTITIONS_PER_ADMIN_REQUEST_MAX)
            .collect(),
    };
    let mut results: BTreeMap<(String, i32), (i16, Option<String>)> = BTreeMap::new();
    let mut to_elect = Vec::new();
    for (topic, p) in wanted {
        let outcome = if req.election_type != 0 {
            (
                errors::INVALID_REQUEST,
                Some("unclean leader election is disabled".to_string()),
            )
        } else {
            match &broker.cluster {
                None => match broker.store.snapshot().topic(&topic) {
                    Some(t) if (0..t.partitions).contains(&p) => (ELECTION_NOT_NEEDED, None),
                    _ => (errors::UNKNOWN_TOPIC_OR_PARTITION, None),
                },
                Some(c) => match c.view().state.preferred_election(&topic, p) {
                    Ok(_) => {
                        to_elect.push((topic.clone(), p));
                        (errors::NONE, None)
                    }
                    Err(ElectionError::NotNeeded) => (ELECTION_NOT_NEEDED, None),
                    Err(ElectionError::PreferredNotAvailable) => {
                        (PREFERRED_LEADER_NOT_AVAILABLE, None)
                    }
                    Err(_) => (errors::UNKNOWN_TOPIC_OR_PARTITION, None),
                },
            }
        };
        results.insert((topic, p), outcome);
    }
    if let (Some(cluster), false) = (&broker.cluster, to_elect.is_empty()) {
        let cmd = MetadataCommand::ElectLeaders {
            partitions: to_elect.clone(),
            preferred: true,
        };
        let done = cluster
            .propose_and_wait(cmd, |v| {
                to_elect
                    .iter()
                    .all(|(t, p)| {
                        v.state
                            .partition(t, *p)
                            .is_none_or(|part| part.leader == part.replicas.first().copied())
                    })
                    .then_some(Ok(()))
            })
            .await;
        if let Err(e) = done {
            for tp in &to_elect {
                results.insert(tp.clone(), (errors::REQUEST_TIMED_OUT, Some(e.to_string())));
            }
        }
    }
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, p), (code, message)) in results {
        let mut r = PartitionResult::default();
        r.partition_id = p;
        r.error_code = code;
        r.error_message = message.map(str_bytes);
        by_topic.entry(topic).or_default().push(r);
    }
    resp.replica_election_results = by_topic
        .into_iter()
        .map(|(topic, partition_result)| {
            let mut t = ReplicaElectionResult::default();
            t.topic = TopicName(str_bytes(topic));
            t.partition_result = partition_result;
            t
        })
        .collect();
    resp
}

pub async fn alter_reassignments(
    broker: &Rc<Broker>,
    req: AlterPartitionReassignmentsRequest,
    _version: i16,
) -> AlterPartitionReassignmentsResponse {
    let mut resp = AlterPartitionReassignmentsResponse::default();
    let mut seen = 0usize;
    for t in &req.topics {
        let name = t.name.0.to_string();
        let mut out = ReassignableTopicResponse::default();
        out.name = t.name.clone();
        for p in &t.partitions {
            seen += 1;
            let target: Option<Vec<i32>> =
                p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            let (code, message) = if seen > PARTITIONS_PER_ADMIN_REQUEST_MAX {
                (
                    errors::POLICY_VIOLATION,
                    Some("too many partitions".to_string()),
                )
            } else {
                alter_one(broker, &name, p.partition_index, target).await
            };
            let mut r = ReassignablePartitionResponse::default();
            r.partition_index = p.partition_index;
            r.error_code = code;
            r.error_message = message.map(str_bytes);
            out.partitions.push(r);
        }
        resp.responses.push(out);
    }
    resp
}

async fn alter_one(
    broker: &Rc<Broker>,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
) -> (i16, Option<String>) {
    let Some(cluster) = &broker.cluster else {
        let known = broker
            .store
            .snapshot()
            .topic(topic)
            .is_some_and(|t| (0..t.partitions).contains(&partition));
        return match (known, target) {
            (false, _) => (errors::UNKNOWN_TOPIC_OR_PARTITION, None),
            (true, None) => (NO_REASSIGNMENT_IN_PROGRESS, None),
            (true, Some(t)) if t == [broker.node_id()] => (errors::NONE, None),
            (true, Some(_)) => (
                errors::INVALID_REPLICA_ASSIGNMENT,
                Some(format!("broker {} is the only broker", broker.node_id())),
            ),
        };
    };
    let view = cluster.view();
    let Some(part) = view.state.partition(topic, partition) else {
        return (errors::UNKNOWN_TOPIC_OR_PARTITION, None);
    };
    let ongoing = !part.adding_replicas.is_empty() || !part.removing_replicas.is_empty();
    match &target {
        None if !ongoing => return (NO_REASSIGNMENT_IN_PROGRESS, None),
        Some(t) => {
            let mut distinct = t.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if t.is_empty()
                || distinct.len() != t.len()
                || t.len() > sluice_replication::limits::REPLICAS_MAX
                || t.iter().any(|b| {
                    !view
                        .state
                        .brokers
                        .contains_key(&sluice_replication::BrokerId(*b))
                })
            {
                return (
                    errors::INVALID_REPLICA_ASSIGNMENT,
                    Some("target replicas must be distinct registered brokers".into()),
                );
            }
        }
        None => {}
    }
    let epoch = part.partition_epoch;
    let cmd = MetadataCommand::AlterPartitionReassignment {
        topic: topic.to_string(),
        partition,
        target: target.clone(),
    };
    // Accepted once the controller applied it: the partition moved on from this epoch.
    let done = cluster
        .propose_and_wait(cmd, |v| {
            v.state
                .partition(topic, partition)
                .is_none_or(|p| p.partition_epoch != epoch)
                .then_some(Ok(()))
        })
        .await;
    match done {
        Ok(()) => (errors::NONE, None),
        Err(e) => (errors::REQUEST_TIMED_OUT, Some(e.to_string())),
    }
}

pub fn list_reassignments(
    broker: &Rc<Broker>,
    req: ListPartitionReassignmentsRequest,
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    let mut resp = ListPartitionReassignmentsResponse::default();
    let Some(cluster) = &broker.cluster else {
        return resp;
    };
    let wanted: Option<Vec<(String, i32)>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partition_indexes.iter().map(move |p| (name.clone(), *p))
            })
            .collect()
    });
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for r in cluster.view().state.reassignments() {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.iter().any(|(t, p)| *t == r.topic && *p == r.partition))
        {
            continue;
        }
        let mut o = OngoingPartitionReassignment::default();
        o.partition_index = r.partition;
        o.replicas = ids(&r.replicas);
        o.adding_replicas = ids(&r.adding);
        o.removing_replicas = ids(&r.removing);
        by_topic.entry(r.topic).or_default().push(o);
    }
    resp.topics = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            let mut t = OngoingTopicReassignment::default();
            t.name = TopicName(str_bytes(name));
            t.partitions = partitions;
            t
        })
        .collect();
    resp
}
