//! Creating, growing and deleting topics: the metadata change first (durable), then the
//! owner shards open or remove the partitions. Used by the admin APIs and by auto-creation.

use std::collections::BTreeMap;
use std::rc::Rc;

use sluice_engine::TopicPartition;

use crate::broker::Broker;
use crate::errors;
use crate::metadata::{topic_config, validate_topic_name, MetadataError, TopicMetadata};
use crate::partition_ops;
use crate::routing::fan_out;

/// A failed admin operation: the Kafka error code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    pub code: i16,
    pub message: String,
}

impl AdminError {
    pub fn new(code: i16, message: impl Into<String>) -> Self {
        AdminError {
            code,
            message: message.into(),
        }
    }
}

fn from_metadata(e: MetadataError) -> AdminError {
    let code = match &e {
        MetadataError::TopicExists(_) => errors::TOPIC_ALREADY_EXISTS,
        MetadataError::UnknownTopic(_) => errors::UNKNOWN_TOPIC_OR_PARTITION,
        MetadataError::BadPartitionCount { .. } => errors::INVALID_PARTITIONS,
        MetadataError::TooManyTopics(_) => errors::POLICY_VIOLATION,
        MetadataError::Controller(_) => errors::REQUEST_TIMED_OUT,
        MetadataError::Replication(_) => errors::INVALID_REPLICATION_FACTOR,
        _ => {
            tracing::error!(error = %e, "metadata store failed");
            errors::KAFKA_STORAGE_ERROR
        }
    };
    AdminError::new(code, e.to_string())
}

/// What a CreateTopics entry (or auto-creation) asks for, before validation.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    /// -1: the broker default (num.partitions).
    pub partitions: i32,
    /// -1: the broker default (1; in a cluster, `default_replication_factor`).
    pub replication_factor: i16,
    /// Manual replica assignment (broker ids per partition, partitions 0..n); empty: the
    /// controller places them.
    pub assignments: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

/// Checks a spec and fills in defaults; returns the topic as it would be stored.
pub fn validate_spec(broker: &Broker, spec: &TopicSpec) -> Result<TopicMetadata, AdminError> {
    validate_topic_name(&spec.name)
        .map_err(|e| AdminError::new(errors::INVALID_TOPIC_EXCEPTION, e.to_string()))?;
    let partitions = if spec.partitions == -1 {
        broker.config.num_partitions
    } else {
        spec.partitions
    };
    let max = broker.config.partitions_per_topic_max;
    if !(1..=max).contains(&partitions) {
        return Err(AdminError::new(
            errors::INVALID_PARTITIONS,
            format!("partition count {partitions} not in 1..={max}"),
        ));
    }
    let replication_factor = match &broker.cluster {
        None => {
            if spec.replication_factor != -1 && spec.replication_factor != 1 {
                return Err(AdminError::new(
                    errors::INVALID_REPLICATION_FACTOR,
                    format!(
                        "replication factor {} but this cluster has 1 broker",
                        spec.replication_factor
                    ),
                ));
            }
            1
        }
        Some(cluster) => {
            let rf = if spec.replication_factor == -1 {
                cluster.config.default_replication_factor
            } else {
                spec.replication_factor
            };
            let view = cluster.view();
            let live = view.state.brokers.values().filter(|b| !b.fenced).count();
            if spec.assignments.is_empty() && (rf < 1 || rf as usize > live) {
                return Err(AdminError::new(
                    errors::INVALID_REPLICATION_FACTOR,
                    format!("replication factor {rf} larger than the {live} live brokers"),
                ));
            }
            for a in &spec.assignments {
                if a.iter().any(|b| {
                    !view
                        .state
                        .brokers
                        .contains_key(&sluice_replication::BrokerId(*b))
                }) {
                    return Err(AdminError::new(
                        errors::INVALID_REPLICA_ASSIGNMENT,
                        "assignment names an unknown broker",
                    ));
                }
            }
            spec.assignments.first().map_or(rf, |a| a.len() as i16)
        }
    };
    for (name, value) in &spec.configs {
        topic_config::validate(name, value)
            .map_err(|e| AdminError::new(errors::INVALID_CONFIG, e.to_string()))?;
    }
    Ok(TopicMetadata {
        name: spec.name.clone(),
        topic_id: rand::random::<u128>() | 1,
        partitions,
        configs: spec.configs.clone(),
        replication_factor,
        assignments: spec.assignments.clone(),
        layout: Vec::new(),
    })
}

/// Opens `partitions` of `topic` on their owners; the first failure is returned.
async fn open_partitions(
    broker: &Rc<Broker>,
    topic: &str,
    partitions: std::ops::Range<i32>,
) -> Result<(), AdminError> {
    let items = partitions
        .map(|p| (TopicPartition::new(topic, p), ()))
        .collect();
    let ctx = broker.owner_context();
    let results = fan_out(&broker.shard, items, move |shard, tp, ()| {
        partition_ops::open(shard, ctx.clone(), tp)
    })
    .await;
    for (tp, r) in results {
        match r {
            Ok(errors::NONE) => {}
            Ok(code) => return Err(AdminError::new(code, format!("opening {tp} failed"))),
            Err(e) => return Err(AdminError::new(errors::KAFKA_STORAGE_ERROR, e.to_string())),
        }
    }
    Ok(())
}

/// Creates a validated topic: durable in the metadata store, then every partition opened.
pub async fn create(
    broker: &Rc<Broker>,
    topic: TopicMetadata,
) -> Result<TopicMetadata, AdminError> {
    broker
        .store
        .create_topic(topic.clone())
        .await
        .map_err(from_metadata)?;
    // In a cluster the controller hands the new partitions to every replica's owner.
    if broker.cluster.is_none() {
        open_partitions(broker, &topic.name, 0..topic.partitions).await?;
    }
    tracing::info!(topic = %topic.name, partitions = topic.partitions, "created topic");
    Ok(topic)
}

/// Auto-creation (Metadata, Produce): the broker defaults, if enabled. A topic that
/// someone else created meanwhile counts as success.
pub async fn auto_create(broker: &Rc<Broker>, name: &str) -> Result<(), AdminError> {
    let spec = TopicSpec {
        name: name.to_string(),
        partitions: -1,
        replication_factor: -1,
        assignments: Vec::new(),
        configs: BTreeMap::new(),
    };
    let topic = validate_spec(broker, &spec)?;
    match create(broker, topic).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == errors::TOPIC_ALREADY_EXISTS => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes a topic: removed from the metadata (durable), then its partitions' files.
pub async fn delete(broker: &Rc<Broker>, name: &str) -> Result<TopicMetadata, AdminError> {
    let topic = broker
        .store
        .delete_topic(name.to_string())
        .await
        .map_err(from_metadata)?;
    if broker.cluster.is_some() {
        // Every replica removes its files when it applies the deletion.
        tracing::info!(topic = %name, "deleted topic");
        return Ok(topic);
    }
    let items = (0..topic.partitions)
        .map(|p| (TopicPartition::new(name, p), ()))
        .collect();
    for (tp, r) in fan_out(&broker.shard, items, |shard, tp, ()| {
        partition_ops::remove(shard, tp)
    })
    .await
    {
        if !matches!(r, Ok(errors::NONE)) {
            tracing::warn!(partition = %tp, "partition files of a deleted topic were not removed");
        }
    }
    tracing::info!(topic = %name, "deleted topic");
    Ok(topic)
}

/// Raises a topic's partition count (CreatePartitions).
pub async fn grow(
    broker: &Rc<Broker>,
    name: &str,
    count: i32,
    validate_only: bool,
) -> Result<(), AdminError> {
    let snapshot = broker.store.snapshot();
    let current = snapshot
        .topic(name)
        .ok_or_else(|| {
            AdminError::new(
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic {name:?} does not exist"),
            )
        })?
        .partitions;
    if count <= current || count > broker.config.partitions_per_topic_max {
        return Err(AdminError::new(
            errors::INVALID_PARTITIONS,
            format!("topic {name:?} has {current} partitions; {count} is not a valid new count"),
        ));
    }
    if validate_only {
        return Ok(());
    }
    broker
        .store
        .set_partition_count(name.to_string(), count)
        .await
        .map_err(from_metadata)?;
    if broker.cluster.is_some() {
        return Ok(());
    }
    open_partitions(broker, name, current..count).await
}

/// Replaces a topic's config overrides and pushes the new log config to its partitions.
pub async fn set_configs(
    broker: &Rc<Broker>,
    name: &str,
    configs: BTreeMap<String, String>,
) -> Result<(), AdminError> {
    broker
        .store
        .set_topic_configs(name.to_string(), configs)
        .await
        .map_err(from_metadata)?;
    let partitions = broker
        .store
        .snapshot()
        .topic(name)
        .map_or(0, |t| t.partitions);
    let items = (0..partitions)
        .map(|p| (TopicPartition::new(name, p), ()))
        .collect();
    let ctx = broker.owner_context();
    fan_out(&broker.shard, items, move |shard, tp, ()| {
        partition_ops::apply_config(shard, ctx.clone(), tp)
    })
    .await;
    Ok(())
}
