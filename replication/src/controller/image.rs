//! The metadata state as a snapshot image: a flat rkyv archive in a checksummed frame
//! (`FrameKind::MetadataImage`), the data of a Raft snapshot on disk and on the wire. A
//! separate type from [`MetadataState`] so the in-memory layout can change without changing
//! the on-disk format.
//!
//! Cluster view; built from and restored into one voter's state.

use rkyv::{Archive, Deserialize, Serialize};
use sluice_engine::LeaderEpoch;

use crate::controller::state::{
    BrokerEndpoint, BrokerInfo, MetadataState, PartitionInfo, TopicInfo,
};
use crate::ids::{BrokerId, PartitionEpoch};
use crate::limits::{
    BROKERS_MAX, PARTITIONS_PER_TOPIC_MAX, REPLICAS_MAX, SNAPSHOT_BYTES_MAX, TOPICS_MAX,
};
use crate::wire::{self, FrameError, FrameKind};

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StateImage {
    brokers: Vec<BrokerImage>,
    topics: Vec<TopicImage>,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct BrokerImage {
    id: i32,
    rack: Option<String>,
    endpoint: BrokerEndpoint,
    incarnation: u64,
    fenced: bool,
    shutting_down: bool,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct TopicImage {
    name: String,
    topic_id: u128,
    configs: Vec<(String, String)>,
    partitions: Vec<PartitionImage>,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct PartitionImage {
    replicas: Vec<i32>,
    /// -1: no leader.
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("metadata image of {0} bytes exceeds the snapshot limit")]
    TooLarge(usize),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("metadata image out of bounds: {0}")]
    Bounds(String),
}

fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}
fn brokers(v: &[i32]) -> Result<Vec<BrokerId>, ImageError> {
    if v.len() > REPLICAS_MAX {
        return Err(ImageError::Bounds(format!("{} replicas", v.len())));
    }
    Ok(v.iter().map(|b| BrokerId(*b)).collect())
}

/// The framed image of `state`, or TooLarge past [`SNAPSHOT_BYTES_MAX`].
pub fn encode(state: &MetadataState) -> Result<Vec<u8>, ImageError> {
    let image = StateImage {
        brokers: state
            .brokers
            .iter()
            .map(|(id, b)| BrokerImage {
                id: id.0,
                rack: b.rack.clone(),
                endpoint: b.endpoint.clone(),
                incarnation: b.incarnation,
                fenced: b.fenced,
                shutting_down: b.shutting_down,
            })
            .collect(),
        topics: state
            .topics
            .iter()
            .map(|(name, t)| TopicImage {
                name: name.clone(),
                topic_id: t.topic_id,
                configs: t
                    .configs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| PartitionImage {
                        replicas: ids(&p.replicas),
                        leader: p.leader.map_or(-1, |l| l.0),
                        leader_epoch: p.leader_epoch.0,
                        partition_epoch: p.partition_epoch.0,
                        isr: ids(&p.isr),
                        adding: ids(&p.adding_replicas),
                        removing: ids(&p.removing_replicas),
                    })
                    .collect(),
            })
            .collect(),
    };
    let archive = rkyv::to_bytes::<rkyv::rancor::Error>(&image)
        .expect("serializing plain data into a Vec cannot fail");
    if archive.len() > SNAPSHOT_BYTES_MAX {
        return Err(ImageError::TooLarge(archive.len()));
    }
    Ok(wire::encode_raw(FrameKind::MetadataImage, &archive))
}

/// Validates (length, crc32c, archive) and rebuilds the state.
pub fn decode(bytes: &[u8]) -> Result<MetadataState, ImageError> {
    if bytes.len() > SNAPSHOT_BYTES_MAX + wire::FRAME_HEADER_BYTES {
        return Err(ImageError::TooLarge(bytes.len()));
    }
    let image: StateImage = wire::decode(FrameKind::MetadataImage, bytes)?;
    if image.brokers.len() > BROKERS_MAX || image.topics.len() > TOPICS_MAX {
        return Err(ImageError::Bounds("broker or topic count".into()));
    }
    let mut state = MetadataState::new();
    for b in image.brokers {
        state.brokers.insert(
            BrokerId(b.id),
            BrokerInfo {
                rack: b.rack,
                endpoint: b.endpoint,
                incarnation: b.incarnation,
                fenced: b.fenced,
                shutting_down: b.shutting_down,
            },
        );
    }
    for t in image.topics {
        if t.partitions.len() > PARTITIONS_PER_TOPIC_MAX {
            return Err(ImageError::Bounds(format!("topic {} partitions", t.name)));
        }
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            partitions.push(PartitionInfo {
                replicas: brokers(&p.replicas)?,
                leader: (p.leader >= 0).then_some(BrokerId(p.leader)),
                leader_epoch: LeaderEpoch(p.leader_epoch),
                partition_epoch: PartitionEpoch(p.partition_epoch),
                isr: brokers(&p.isr)?,
                adding_replicas: brokers(&p.adding)?,
                removing_replicas: brokers(&p.removing)?,
            });
        }
        state.topics.insert(
            t.name,
            TopicInfo {
                topic_id: t.topic_id,
                partitions,
                configs: t.configs.into_iter().collect(),
            },
        );
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::state::{assign_replicas, MetadataCommand};

    #[test]
    fn an_image_restores_the_state_exactly_and_damage_is_refused() {
        let mut s = MetadataState::new();
        for b in 1..=4 {
            s.apply(&MetadataCommand::RegisterBroker {
                broker: b,
                incarnation: b as u64 * 10,
                rack: (b % 2 == 0).then(|| "r1".to_string()),
                endpoint: BrokerEndpoint {
                    host: "127.0.0.1".into(),
                    port: 9000 + b,
                    replication: format!("127.0.0.1:{}", 9100 + b),
                },
            })
            .expect("register");
        }
        let a = assign_replicas(&s.brokers, 5, 3, 0).expect("assign");
        s.apply(&MetadataCommand::CreateTopic {
            name: "orders".into(),
            topic_id: 99,
            assignments: a,
            configs: vec![("retention.ms".into(), "1000".into())],
        })
        .expect("create");
        s.apply(&MetadataCommand::AlterPartitionReassignment {
            topic: "orders".into(),
            partition: 0,
            target: Some(vec![4, 3, 2]),
        })
        .expect("reassign");
        s.apply(&MetadataCommand::ShutdownBroker {
            broker: 3,
            incarnation: 30,
        })
        .expect("shutdown");
        let bytes = encode(&s).expect("encode");
        assert_eq!(decode(&bytes), Ok(s));
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            decode(&bad),
            Err(ImageError::Frame(FrameError::Crc))
        ));
    }
}
