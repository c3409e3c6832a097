//! Metadata (v0-v12): on a single broker this broker leads every partition; in a cluster
//! leaders, epochs, replicas and ISRs come from the controller's applied metadata.
//! Unknown topics are auto-created when the request and `auto.create.topics.enable`
//! allow it.

use std::rc::Rc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::{str_bytes, uuid};
use crate::broker::Broker;
use crate::errors;
use crate::metadata::{validate_topic_name, TopicMetadata};
use crate::topics;

fn topic_entry(broker: &Broker, t: &TopicMetadata) -> MetadataResponseTopic {
    let mut out = MetadataResponseTopic::default();
    out.name = Some(TopicName(str_bytes(t.name.clone())));
    out.topic_id = uuid(t.topic_id);
    out.topic_authorized_operations = i32::MIN;
    out.is_internal = crate::group::offsets::is_internal(&t.name);
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    out.partitions = (0..t.partitions)
        .map(|p| {
            let mut part = MetadataResponsePartition::default();
            part.partition_index = p;
            match t.layout.get(p as usize) {
                None => {
                    part.leader_id = BrokerId(broker.node_id());
                    part.leader_epoch = 0;
                    part.replica_nodes = vec![BrokerId(broker.node_id())];
                    part.isr_nodes = vec![BrokerId(broker.node_id())];
                }
                Some(l) => {
                    part.leader_id = BrokerId(l.leader);
                    part.leader_epoch = l.leader_epoch;
                    part.replica_nodes = ids(&l.replicas);
                    part.isr_nodes = ids(&l.isr);
                    part.offline_replicas = ids(&l.offline);
                    if l.leader < 0 {
                        part.error_code = errors::LEADER_NOT_AVAILABLE;
                    }
                }
            }
            part
        })
        .collect();
    out
}

fn error_entry(name: Option<String>, id: u128, code: i16) -> MetadataResponseTopic {
    let mut out = MetadataResponseTopic::default();
    out.name = name.map(|n| TopicName(str_bytes(n)));
    out.topic_id = uuid(id);
    out.error_code = code;
    out.topic_authorized_operations = i32::MIN;
    out
}

pub async fn handle(broker: &Rc<Broker>, req: MetadataRequest, version: i16) -> MetadataResponse {
    let mut resp = MetadataResponse::default();
    resp.brokers = broker
        .live_brokers()
        .into_iter()
        .map(|a| {
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(a.id);
            b.host = str_bytes(a.host);
            b.port = a.port;
            b.rack = a.rack.map(str_bytes);
            b
        })
        .collect();
    resp.cluster_id = Some(str_bytes(broker.config.cluster_id.clone()));
    resp.controller_id = BrokerId(broker.controller_id());
    resp.cluster_authorized_operations = i32::MIN;

    // v0: an empty list means every topic; v1+: null means every topic.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let Some(requested) = requested else {
        let snapshot = broker.store.snapshot();
        resp.topics = snapshot
            .topics
            .values()
            // Internal topics only when asked for by name.
            .filter(|t| !crate::group::offsets::is_internal(&t.name))
            .map(|t| topic_entry(broker, t))
            .collect();
        return resp;
    };
    // Versions before 4 always allow auto-creation; later ones say so per request.
    let allow_create =
        broker.config.auto_create_topics_enable && (version < 4 || req.allow_auto_topic_creation);
    for wanted in requested {
        let snapshot = broker.store.snapshot();
        // By topic id when there is no name; the Java consumer resolving the topic ids of a
        // KIP-848 assignment sends an empty name with the id.
        let by_id =
            wanted.topic_id.as_u128() != 0 && wanted.name.as_ref().is_none_or(|n| n.is_empty());
        let Some(name) = wanted.name.filter(|_| !by_id).map(|n| n.0.to_string()) else {
            let id = wanted.topic_id.as_u128();
            resp.topics.push(match snapshot.topic_by_id(id) {
                Some(t) => topic_entry(broker, t),
                None => error_entry(None, id, errors::UNKNOWN_TOPIC_ID),
            });
            continue;
        };
        if let Some(t) = snapshot.topic(&name) {
            resp.topics.push(topic_entry(broker, t));
            continue;
        }
        if validate_topic_name(&name).is_err() {
            resp.topics
                .push(error_entry(Some(name), 0, errors::INVALID_TOPIC_EXCEPTION));
            continue;
        }
        if !allow_create {
            resp.topics.push(error_entry(
                Some(name),
                0,
                errors::UNKNOWN_TOPIC_OR_PARTITION,
            ));
            continue;
        }
        match topics::auto_create(broker, &name).await {
            Ok(()) => match broker.store.snapshot().topic(&name) {
                Some(t) => resp.topics.push(topic_entry(broker, t)),
                None => resp.topics.push(error_entry(
                    Some(name),
                    0,
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                )),
            },
            Err(e) => resp.topics.push(error_entry(Some(name), 0, e.code)),
        }
    }
    resp
}
