//! CreateTopics (v2-v7), with validate_only. One broker: replication factor 1, every
//! replica assignment must name this broker.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::{str_bytes, uuid};
use crate::broker::Broker;
use crate::errors;
use crate::limits::TOPICS_PER_REQUEST_MAX;
use crate::metadata::topic_config::{self, TOPIC_CONFIG_NAMES};
use crate::topics::{self, AdminError, TopicSpec};

fn spec_of(
    broker: &Broker,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<TopicSpec, AdminError> {
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        if let Some(v) = &c.value {
            configs.insert(c.name.to_string(), v.to_string());
        }
    }
    let mut partitions = t.num_partitions;
    let mut assignments = Vec::new();
    if !t.assignments.is_empty() && broker.cluster.is_some() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(AdminError::new(
                errors::INVALID_REQUEST,
                "both num_partitions/replication_factor and replica assignments given",
            ));
        }
        let mut by_partition = std::collections::BTreeMap::new();
        for a in &t.assignments {
            let ids: Vec<i32> = a.broker_ids.iter().map(|b| b.0).collect();
            let distinct: HashSet<i32> = ids.iter().copied().collect();
            if ids.is_empty()
                || distinct.len() != ids.len()
                || by_partition.insert(a.partition_index, ids).is_some()
            {
                return Err(AdminError::new(
                    errors::INVALID_REPLICA_ASSIGNMENT,
                    "each partition needs distinct replicas, once",
                ));
            }
        }
        partitions = by_partition.len() as i32;
        if by_partition.keys().copied().ne(0..partitions)
            || by_partition
                .values()
                .any(|r| r.len() != by_partition[&0].len())
        {
            return Err(AdminError::new(
                errors::INVALID_REPLICA_ASSIGNMENT,
                "partitions must be numbered 0..n with one replication factor",
            ));
        }
        assignments = by_partition.into_values().collect();
    } else if !t.assignments.is_empty() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(AdminError::new(
                errors::INVALID_REQUEST,
                "both num_partitions/replication_factor and replica assignments given",
            ));
        }
        let me = broker.node_id();
        let mut seen = HashSet::new();
        for a in &t.assignments {
            if a.broker_ids.iter().any(|b| b.0 != me)
                || a.broker_ids.len() != 1
                || !seen.insert(a.partition_index)
            {
                return Err(AdminError::new(
                    errors::INVALID_REPLICA_ASSIGNMENT,
                    format!("broker {me} is the only broker"),
                ));
            }
        }
        partitions = t.assignments.len() as i32;
        if (0..partitions).any(|p| !seen.contains(&p)) {
            return Err(AdminError::new(
                errors::INVALID_REPLICA_ASSIGNMENT,
                "partitions must be numbered 0..n",
            ));
        }
    }
    Ok(TopicSpec {
        name: t.name.0.to_string(),
        partitions,
        replication_factor: t.replication_factor,
        assignments,
        configs,
    })
}

pub async fn handle(
    broker: &Rc<Broker>,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    let mut names = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !names.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    for (i, t) in req.topics.iter().enumerate() {
        let mut out = CreatableTopicResult::default();
        out.name = t.name.clone();
        out.num_partitions = -1;
        out.replication_factor = -1;
        let result = if i >= TOPICS_PER_REQUEST_MAX {
            Err(AdminError::new(
                errors::POLICY_VIOLATION,
                "too many topics in one request",
            ))
        } else if duplicates.contains(t.name.0.as_str()) {
            Err(AdminError::new(
                errors::INVALID_REQUEST,
                "topic named twice in one request",
            ))
        } else {
            match spec_of(broker, t).and_then(|s| topics::validate_spec(broker, &s)) {
                Err(e) => Err(e),
                Ok(topic) if broker.store.snapshot().topic(&topic.name).is_some() => {
                    Err(AdminError::new(
                        errors::TOPIC_ALREADY_EXISTS,
                        format!("topic {:?} already exists", topic.name),
                    ))
                }
                Ok(topic) if req.validate_only => Ok(topic),
                Ok(topic) => topics::create(broker, topic).await,
            }
        };
        match result {
            Ok(topic) => {
                out.topic_id = uuid(if req.validate_only { 0 } else { topic.topic_id });
                out.num_partitions = topic.partitions;
                out.replication_factor = topic.replication_factor.max(1);
                if version >= 5 {
                    out.configs = Some(
                        TOPIC_CONFIG_NAMES
                            .iter()
                            .filter_map(|name| {
                                let (value, is_default) = topic_config::effective(
                                    &broker.defaults,
                                    &topic.configs,
                                    name,
                                )?;
                                let mut c = CreatableTopicConfigs::default();
                                c.name = str_bytes(*name);
                                c.value = Some(str_bytes(value));
                                c.config_source = if is_default { 5 } else { 1 };
                                Some(c)
                            })
                            .collect(),
                    );
                }
            }
            Err(e) => {
                out.error_code = e.code;
                out.error_message = Some(str_bytes(e.message));
            }
        }
        resp.topics.push(out);
    }
    resp
}
