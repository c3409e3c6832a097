//! Cluster topic metadata (topics, partition counts, topic configs) behind the
//! [`MetadataStore`] trait. Today a file in the data directory ([`FileMetadataStore`]);
//! the replicated controller replaces it later behind the same trait.

pub mod file_store;
pub mod topic_config;
pub mod topic_name;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use file_store::FileMetadataStore;
pub use topic_config::{TopicConfigError, TopicDefaults};
pub use topic_name::{validate_topic_name, TopicNameError};

/// One topic, as the whole cluster sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    /// Kafka topic id (a UUID), fixed at creation.
    pub topic_id: u128,
    pub partitions: i32,
    /// Topic-level config overrides, by Kafka config name.
    pub configs: BTreeMap<String, String>,
    /// Replicas per partition (0: the store decides - one broker, or the cluster default).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replication_factor: i16,
    /// Replica broker ids per partition: asked for at creation (manual assignment), or
    /// where the cluster placed them. Empty on a single broker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignments: Vec<Vec<i32>>,
    /// Leader, epoch and ISR per partition, from the controller; empty on a single broker
    /// (where this broker leads every partition at epoch 0).
    #[serde(skip)]
    pub layout: Vec<PartitionLayout>,
}

fn is_zero(v: &i16) -> bool {
    *v == 0
}

/// One partition's replicas as the controller committed them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionLayout {
    /// -1: no leader (every in-sync replica is down).
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas on fenced (dead or cut off) brokers.
    pub offline: Vec<i32>,
}

/// An immutable snapshot of every topic; readers hold it as long as they like.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// Bumped on every change.
    pub epoch: u64,
    pub topics: BTreeMap<String, TopicMetadata>,
}

impl ClusterMetadata {
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: u128) -> Option<&TopicMetadata> {
        self.topics.values().find(|t| t.topic_id == id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("topic {topic:?} has {current} partitions; cannot go to {requested}")]
    BadPartitionCount {
        topic: String,
        current: i32,
        requested: i32,
    },
    #[error("the controller did not apply the change: {0}")]
    Controller(String),
    #[error("invalid replication: {0}")]
    Replication(String),
    #[error("the store holds {0} topics, its limit")]
    TooManyTopics(usize),
    #[error("metadata file {path}: {what}")]
    Corrupt {
        path: std::path::PathBuf,
        what: String,
    },
    #[error("metadata file {path}: encoding")]
    Encode {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("metadata file {path}: {op}")]
    Io {
        path: std::path::PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A future that runs on the calling shard (glommio I/O futures are `!Send`).
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Where topic metadata lives. Shared by every shard (`Arc<dyn MetadataStore>`): reads
/// are a snapshot, mutations are durable when their future resolves and are applied one
/// at a time, in the order they acquire the store.
pub trait MetadataStore: Send + Sync {
    /// The current view; cheap.
    fn snapshot(&self) -> Arc<ClusterMetadata>;
    /// Adds a topic. Fails if the name is taken.
    fn create_topic(&self, topic: TopicMetadata) -> LocalFuture<'_, Result<(), MetadataError>>;
    /// Removes a topic and returns what it was.
    fn delete_topic(&self, name: String) -> LocalFuture<'_, Result<TopicMetadata, MetadataError>>;
    /// Raises a topic's partition count (never lowers it).
    fn set_partition_count(
        &self,
        name: String,
        partitions: i32,
    ) -> LocalFuture<'_, Result<(), MetadataError>>;
    /// Replaces a topic's config overrides.
    fn set_topic_configs(
        &self,
        name: String,
        configs: BTreeMap<String, String>,
    ) -> LocalFuture<'_, Result<(), MetadataError>>;
}

/// Applies one mutation to a copy of `m`; shared by every store implementation.
pub fn apply(m: &ClusterMetadata, change: Change) -> Result<ClusterMetadata, MetadataError> {
    let mut next = m.clone();
    next.epoch += 1;
    match change {
        Change::Create(t) => {
            if next.topics.contains_key(&t.name) {
                return Err(MetadataError::TopicExists(t.name));
            }
            if next.topics.len() >= crate::limits::TOPICS_MAX {
                return Err(MetadataError::TooManyTopics(next.topics.len()));
            }
            next.topics.insert(t.name.clone(), t);
        }
        Change::Delete(name) => {
            if next.topics.remove(&name).is_none() {
                return Err(MetadataError::UnknownTopic(name));
            }
        }
        Change::Partitions(name, requested) => {
            let t = next
                .topics
                .get_mut(&name)
                .ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
            if requested <= t.partitions {
                return Err(MetadataError::BadPartitionCount {
                    topic: name,
                    current: t.partitions,
                    requested,
                });
            }
            t.partitions = requested;
        }
        Change::Configs(name, configs) => {
            let t = next
                .topics
                .get_mut(&name)
                .ok_or(MetadataError::UnknownTopic(name))?;
            t.configs = configs;
        }
    }
    Ok(next)
}

/// One mutation of the metadata.
#[derive(Clone, Debug)]
pub enum Change {
    Create(TopicMetadata),
    Delete(String),
    Partitions(String, i32),
    Configs(String, BTreeMap<String, String>),
}
