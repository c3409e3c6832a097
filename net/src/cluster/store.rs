//! [`MetadataStore`] in a cluster: reads are the controller's applied view; each change
//! is proposed to the controller quorum (through shard 0's controller task, forwarded to
//! the active controller by Raft) and the call resolves once this broker has applied it -
//! or fails after [`CONTROLLER_APPLY_WAIT_MS`].

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_replication::controller::{assign_replicas, MetadataCommand};

use super::Cluster;
use crate::metadata::{ClusterMetadata, LocalFuture, MetadataError, MetadataStore, TopicMetadata};

pub struct ControllerStore {
    cluster: Arc<Cluster>,
}

impl ControllerStore {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        ControllerStore { cluster }
    }

    fn replication_factor(&self, requested: i16) -> usize {
        if requested > 0 {
            requested as usize
        } else {
            self.cluster.config.default_replication_factor.max(1) as usize
        }
    }
}

/// Where a topic's replica placement starts (spreads leaders of different topics).
fn placement_start(name: &str) -> usize {
    name.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    })
}

impl MetadataStore for ControllerStore {
    fn snapshot(&self) -> Arc<ClusterMetadata> {
        self.cluster.view().metadata.clone()
    }

    fn create_topic(&self, topic: TopicMetadata) -> LocalFuture<'_, Result<(), MetadataError>> {
        Box::pin(async move {
            let view = self.cluster.view();
            if view.state.topics.contains_key(&topic.name) {
                return Err(MetadataError::TopicExists(topic.name));
            }
            let assignments = if topic.assignments.is_empty() {
                assign_replicas(
                    &view.state.brokers,
                    topic.partitions.max(0) as usize,
                    self.replication_factor(topic.replication_factor),
                    placement_start(&topic.name),
                )
                .map_err(|e| MetadataError::Replication(e.to_string()))?
            } else {
                topic.assignments.clone()
            };
            let (name, id) = (topic.name.clone(), topic.topic_id);
            let cmd = MetadataCommand::CreateTopic {
                name: topic.name,
                topic_id: topic.topic_id,
                assignments,
                configs: topic.configs.into_iter().collect(),
            };
            self.cluster
                .propose_and_wait(cmd, move |v| {
                    let t = v.state.topics.get(&name)?;
                    Some(if t.topic_id == id {
                        Ok(())
                    } else {
                        Err(MetadataError::TopicExists(name.clone()))
                    })
                })
                .await
        })
    }

    fn delete_topic(&self, name: String) -> LocalFuture<'_, Result<TopicMetadata, MetadataError>> {
        Box::pin(async move {
            let Some(before) = self.snapshot().topic(&name).cloned() else {
                return Err(MetadataError::UnknownTopic(name));
            };
            let id = before.topic_id;
            self.cluster
                .propose_and_wait(
                    MetadataCommand::DeleteTopic { name: name.clone() },
                    |v| match v.state.topics.get(&name) {
                        Some(t) if t.topic_id == id => None,
                        _ => Some(Ok(())),
                    },
                )
                .await?;
            Ok(before)
        })
    }

    fn set_partition_count(
        &self,
        name: String,
        partitions: i32,
    ) -> LocalFuture<'_, Result<(), MetadataError>> {
        Box::pin(async move {
            let view = self.cluster.view();
            let t = view
                .state
                .topics
                .get(&name)
                .ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
            let current = t.partitions.len() as i32;
            if partitions <= current {
                return Err(MetadataError::BadPartitionCount {
                    topic: name,
                    current,
                    requested: partitions,
                });
            }
            let rf = t.partitions.first().map_or(1, |p| p.replicas.len());
            let assignments = assign_replicas(
                &view.state.brokers,
                (partitions - current) as usize,
                rf,
                placement_start(&name) + current as usize,
            )
            .map_err(|e| MetadataError::Replication(e.to_string()))?;
            let cmd = MetadataCommand::CreatePartitions {
                name: name.clone(),
                assignments,
            };
            self.cluster
                .propose_and_wait(cmd, |v| match v.state.topics.get(&name) {
                    None => Some(Err(MetadataError::UnknownTopic(name.clone()))),
                    Some(t) if t.partitions.len() as i32 >= partitions => Some(Ok(())),
                    Some(_) => None,
                })
                .await
        })
    }

    fn set_topic_configs(
        &self,
        name: String,
        configs: BTreeMap<String, String>,
    ) -> LocalFuture<'_, Result<(), MetadataError>> {
        Box::pin(async move {
            let cmd = MetadataCommand::SetTopicConfigs {
                name: name.clone(),
                configs: configs.clone().into_iter().collect(),
            };
            self.cluster
                .propose_and_wait(cmd, |v| match v.state.topics.get(&name) {
                    None => Some(Err(MetadataError::UnknownTopic(name.clone()))),
                    Some(t) if t.configs == configs => Some(Ok(())),
                    Some(_) => None,
                })
                .await
        })
    }
}
