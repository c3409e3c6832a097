//! The cluster metadata state machine: what every broker agrees on by applying the same
//! Raft log in the same order. Apply is deterministic (no clock, no randomness): placement
//! and elections are computed from the state alone, so every voter and observer ends up
//! with identical metadata.
//!
//! Cluster view; one copy per broker, changed only by applying committed commands.

use std::collections::BTreeMap;

use rkyv::{Archive, Deserialize, Serialize};
use sluice_engine::LeaderEpoch;

use crate::ids::{BrokerId, PartitionEpoch};
use crate::limits::{
    BROKERS_MAX, PARTITIONS_PER_TOPIC_MAX, RAFT_ENTRY_BYTES_MAX, REPLICAS_MAX, TOPICS_MAX,
    TOPIC_CONFIGS_MAX, TOPIC_NAME_BYTES_MAX,
};
use crate::partition::LeaderAndIsr;
use crate::wire::FrameError;

/// Where a broker serves: its Kafka listener (what Metadata answers advertise) and its
/// inter-broker listener (replication and controller traffic).
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub host: String,
    pub port: i32,
    /// `host:port` of the inter-broker listener.
    pub replication: String,
}

/// One entry of the metadata log.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum MetadataCommand {
    /// A broker joined (or rejoined) and is alive.
    RegisterBroker {
        broker: i32,
        incarnation: u64,
        rack: Option<String>,
        endpoint: BrokerEndpoint,
    },
    /// The active controller saw no heartbeat within the session timeout, or the broker is
    /// shutting down cleanly: it leads nothing and leaves every ISR.
    FenceBroker {
        broker: i32,
    },
    /// A fenced broker heartbeats again.
    UnfenceBroker {
        broker: i32,
    },
    /// A topic with its replica assignment, decided by the active controller (apply checks
    /// it rather than recomputing, so placement can change without changing the log).
    CreateTopic {
        name: String,
        /// Kafka's topic id (a UUID), chosen by the proposer.
        topic_id: u128,
        assignments: Vec<Vec<i32>>,
        configs: Vec<(String, String)>,
    },
    DeleteTopic {
        name: String,
    },
    /// More partitions for a topic (CreatePartitions): the new partitions' replicas.
    CreatePartitions {
        name: String,
        assignments: Vec<Vec<i32>>,
    },
    /// Replaces a topic's config overrides (AlterConfigs / IncrementalAlterConfigs).
    SetTopicConfigs {
        name: String,
        configs: Vec<(String, String)>,
    },
    /// A partition leader's ISR change (Kafka's AlterPartition).
    AlterIsr {
        topic: String,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// Controlled shutdown (a broker's SIGTERM): the broker, if `incarnation` is still the
    /// registered one, leads nothing and leaves every ISR (as fencing), and stays fenced
    /// until a new incarnation registers. When this is applied the broker may exit:
    /// [`MetadataState::controlled_shutdown_complete`].
    ShutdownBroker {
        broker: i32,
        incarnation: u64,
    },
    /// Kafka's ElectLeaders: moves leadership to each partition's preferred replica (the
    /// first of its replicas) where that replica is live, in the ISR and not already
    /// leading. An empty list means every partition (Kafka's null topic list; a request
    /// with an empty, non-null list elects nothing and needs no command). `preferred:
    /// false` (an unclean election) is refused: unclean election is off. Partitions that
    /// need no election are skipped; the proposer answers them per partition from
    /// [`MetadataState::preferred_election`].
    ElectLeaders {
        partitions: Vec<(String, i32)>,
        preferred: bool,
    },
    /// One partition of Kafka's AlterPartitionReassignments (KIP-455): `Some(target)`
    /// starts (or replaces) a reassignment to `target`; `None` cancels the ongoing one.
    AlterPartitionReassignment {
        topic: String,
        partition: i32,
        target: Option<Vec<i32>>,
    },
    /// The active controller saw every adding replica of a reassignment in the ISR (at
    /// `partition_epoch`): replicas become the target, removed replicas leave.
    CompleteReassignment {
        topic: String,
        partition: i32,
        partition_epoch: i32,
    },
}

impl MetadataCommand {
    pub fn encode(&self) -> Vec<u8> {
        crate::wire::encode(crate::wire::FrameKind::ControllerRequest, self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        if bytes.len() > RAFT_ENTRY_BYTES_MAX {
            return Err(FrameError::TooLarge(bytes.len()));
        }
        crate::wire::decode(crate::wire::FrameKind::ControllerRequest, bytes)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("unknown broker {0}")]
    UnknownBroker(i32),
    #[error("too many brokers")]
    TooManyBrokers,
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("unknown partition {topic}-{partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    #[error("invalid replica assignment: {0}")]
    InvalidAssignment(String),
    #[error("stale leader epoch or partition epoch")]
    Stale,
    #[error("invalid ISR: {0}")]
    InvalidIsr(String),
    #[error("unclean leader election is disabled")]
    UncleanElectionDisabled,
    #[error("no reassignment in progress for {topic}-{partition}")]
    NoReassignmentInProgress { topic: String, partition: i32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    pub rack: Option<String>,
    pub endpoint: BrokerEndpoint,
    pub incarnation: u64,
    pub fenced: bool,
    /// This incarnation asked for a controlled shutdown (it is fenced and stays so).
    pub shutting_down: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Preferred order: the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    pub leader: Option<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    pub isr: Vec<BrokerId>,
    /// An ongoing reassignment (KIP-455): replicas being added (in `replicas`, not yet
    /// caught up) and replicas to remove once they have. Both empty when none is ongoing.
    pub adding_replicas: Vec<BrokerId>,
    pub removing_replicas: Vec<BrokerId>,
}

impl PartitionInfo {
    pub fn leader_and_isr(&self) -> LeaderAndIsr {
        LeaderAndIsr {
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            isr: self.isr.clone(),
            replicas: self.replicas.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub topic_id: u128,
    pub partitions: Vec<PartitionInfo>,
    pub configs: BTreeMap<String, String>,
}

/// A partition whose leader or ISR changed by applying a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionChange {
    pub topic: String,
    pub partition: i32,
    pub state: LeaderAndIsr,
}

/// The whole cluster metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataState {
    pub brokers: BTreeMap<BrokerId, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
}

impl MetadataState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionInfo> {
        self.topics
            .get(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)
    }

    /// Applies one committed command. An error leaves the state unchanged (the command is a
    /// no-op on every broker alike, since every broker sees the same error).
    pub fn apply(&mut self, cmd: &MetadataCommand) -> Result<Vec<PartitionChange>, ApplyError> {
        match cmd {
            MetadataCommand::RegisterBroker {
                broker,
                incarnation,
                rack,
                endpoint,
            } => {
                let id = BrokerId(*broker);
                if self
                    .brokers
                    .get(&id)
                    .is_some_and(|b| b.incarnation == *incarnation)
                {
                    // A retried registration of the same process.
                    return Ok(Vec::new());
                }
                if !self.brokers.contains_key(&id) && self.brokers.len() >= BROKERS_MAX {
                    return Err(ApplyError::TooManyBrokers);
                }
                // A registration is a new incarnation (a restart): whatever the old one led
                // moves to a new leader epoch first, so a restarted broker that lost its
                // unsynced tail never resumes leading an epoch whose followers hold more.
                let mut changes = if self.live(id) {
                    if let Some(b) = self.brokers.get_mut(&id) {
                        b.fenced = true;
                    }
                    self.fence(id)
                } else {
                    Vec::new()
                };
                self.brokers.insert(
                    id,
                    BrokerInfo {
                        rack: rack.clone(),
                        endpoint: endpoint.clone(),
                        incarnation: *incarnation,
                        fenced: true,
                        shutting_down: false,
                    },
                );
                changes.extend(self.unfence(id));
                Ok(changes)
            }
            MetadataCommand::FenceBroker { broker } => {
                let id = BrokerId(*broker);
                let b = self
                    .brokers
                    .get_mut(&id)
                    .ok_or(ApplyError::UnknownBroker(*broker))?;
                b.fenced = true;
                Ok(self.fence(id))
            }
            MetadataCommand::UnfenceBroker { broker } => {
                let id = BrokerId(*broker);
                if !self.brokers.contains_key(&id) {
                    return Err(ApplyError::UnknownBroker(*broker));
                }
                Ok(self.unfence(id))
            }
            MetadataCommand::CreateTopic {
                name,
                topic_id,
                assignments,
                configs,
            } => self.create_topic(name, *topic_id, assignments, configs),
            MetadataCommand::CreatePartitions { name, assignments } => {
                self.create_partitions(name, assignments)
            }
            MetadataCommand::SetTopicConfigs { name, configs } => {
                if configs.len() > TOPIC_CONFIGS_MAX {
                    return Err(ApplyError::InvalidTopic("too many configs".into()));
                }
                let t = self
                    .topics
                    .get_mut(name)
                    .ok_or_else(|| ApplyError::UnknownTopic(name.clone()))?;
                t.configs = configs.iter().cloned().collect();
                Ok(Vec::new())
            }
            MetadataCommand::DeleteTopic { name } => {
                self.topics
                    .remove(name)
                    .ok_or_else(|| ApplyError::UnknownTopic(name.clone()))?;
                Ok(Vec::new())
            }
            MetadataCommand::AlterIsr {
                topic,
                partition,
                leader_epoch,
                partition_epoch,
                isr,
            } => self.alter_isr(topic, *partition, *leader_epoch, *partition_epoch, isr),
            MetadataCommand::ShutdownBroker {
                broker,
                incarnation,
            } => self.shutdown_broker(BrokerId(*broker), *incarnation),
            MetadataCommand::ElectLeaders {
                partitions,
                preferred,
            } => self.elect_preferred_leaders(partitions, *preferred),
            MetadataCommand::AlterPartitionReassignment {
                topic,
                partition,
                target,
            } => self.alter_reassignment(topic, *partition, target.as_deref()),
            MetadataCommand::CompleteReassignment {
                topic,
                partition,
                partition_epoch,
            } => self.complete_reassignment(topic, *partition, *partition_epoch),
        }
    }

    pub(super) fn live(&self, b: BrokerId) -> bool {
        self.brokers.get(&b).is_some_and(|i| !i.fenced)
    }

    /// The broker leads nothing and leaves every ISR; partitions it led get a new leader from
    /// the rest of the ISR (unclean election is off: a partition whose ISR held only this
    /// broker goes leaderless, keeping the ISR so the broker can lead again when it returns).
    pub(super) fn fence(&mut self, id: BrokerId) -> Vec<PartitionChange> {
        let live: Vec<BrokerId> = self
            .brokers
            .iter()
            .filter(|(_, i)| !i.fenced)
            .map(|(b, _)| *b)
            .collect();
        let mut changes = Vec::new();
        for (name, topic) in self.topics.iter_mut() {
            for (p, part) in topic.partitions.iter_mut().enumerate() {
                if !part.isr.contains(&id) && part.leader != Some(id) {
                    continue;
                }
                if part.isr.len() > 1 {
                    part.isr.retain(|b| *b != id);
                }
                if part.leader == Some(id) {
                    part.leader = part
                        .replicas
                        .iter()
                        .find(|r| **r != id && part.isr.contains(r) && live.contains(r))
                        .copied();
                    part.leader_epoch = LeaderEpoch(part.leader_epoch.0 + 1);
                }
                part.partition_epoch = PartitionEpoch(part.partition_epoch.0 + 1);
                changes.push(PartitionChange {
                    topic: name.clone(),
                    partition: p as i32,
                    state: part.leader_and_isr(),
                });
            }
        }
        changes
    }

    /// The broker is alive: leaderless partitions whose ISR holds it elect it.
    fn unfence(&mut self, id: BrokerId) -> Vec<PartitionChange> {
        if let Some(b) = self.brokers.get_mut(&id) {
            b.fenced = false;
        }
        let mut changes = Vec::new();
        for (name, topic) in self.topics.iter_mut() {
            for (p, part) in topic.partitions.iter_mut().enumerate() {
                if part.leader.is_none() && part.isr.contains(&id) {
                    part.leader = Some(id);
                    part.leader_epoch = LeaderEpoch(part.leader_epoch.0 + 1);
                    part.partition_epoch = PartitionEpoch(part.partition_epoch.0 + 1);
                    changes.push(PartitionChange {
                        topic: name.clone(),
                        partition: p as i32,
                        state: part.leader_and_isr(),
                    });
                }
            }
        }
        changes
    }

    fn create_topic(
        &mut self,
        name: &str,
        topic_id: u128,
        assignments: &[Vec<i32>],
        configs: &[(String, String)],
    ) -> Result<Vec<PartitionChange>, ApplyError> {
        if self.topics.contains_key(name) {
            return Err(ApplyError::TopicExists(name.into()));
        }
        if self.topics.len() >= TOPICS_MAX {
            return Err(ApplyError::InvalidTopic("too many topics".into()));
        }
        validate_topic_name(name)?;
        if topic_id == 0 || self.topics.values().any(|t| t.topic_id == topic_id) {
            return Err(ApplyError::InvalidTopic("topic id zero or taken".into()));
        }
        if assignments.is_empty() || assignments.len() > PARTITIONS_PER_TOPIC_MAX {
            return Err(ApplyError::InvalidAssignment("partition count".into()));
        }
        if configs.len() > TOPIC_CONFIGS_MAX {
            return Err(ApplyError::InvalidTopic("too many configs".into()));
        }
        let partitions = self.new_partitions(assignments, 0)?;
        let changes = partition_changes(name, 0, &partitions);
        self.topics.insert(
            name.into(),
            TopicInfo {
                topic_id,
                partitions,
                configs: configs.iter().cloned().collect(),
            },
        );
        Ok(changes)
    }

    fn create_partitions(
        &mut self,
        name: &str,
        assignments: &[Vec<i32>],
    ) -> Result<Vec<PartitionChange>, ApplyError> {
        let existing = self
            .topics
            .get(name)
            .ok_or_else(|| ApplyError::UnknownTopic(name.into()))?
            .partitions
            .len();
        if assignments.is_empty() || existing + assignments.len() > PARTITIONS_PER_TOPIC_MAX {
            return Err(ApplyError::InvalidAssignment("partition count".into()));
        }
        let added = self.new_partitions(assignments, existing)?;
        let changes = partition_changes(name, existing, &added);
        if let Some(t) = self.topics.get_mut(name) {
            t.partitions.extend(added);
        }
        Ok(changes)
    }

    /// A replica list for partition `p`: 1..=REPLICAS_MAX registered, distinct brokers.
    pub(super) fn checked_replicas(
        &self,
        replicas: &[i32],
        p: usize,
    ) -> Result<Vec<BrokerId>, ApplyError> {
        if replicas.is_empty() || replicas.len() > REPLICAS_MAX {
            return Err(ApplyError::InvalidAssignment(format!(
                "partition {p}: {} replicas",
                replicas.len()
            )));
        }
        let replicas: Vec<BrokerId> = replicas.iter().map(|r| BrokerId(*r)).collect();
        for (i, r) in replicas.iter().enumerate() {
            if !self.brokers.contains_key(r) || replicas[..i].contains(r) {
                return Err(ApplyError::InvalidAssignment(format!(
                    "partition {p}: broker {r} unknown or repeated"
                )));
            }
        }
        Ok(replicas)
    }

    /// Fresh partitions over `assignments` (checked): the live replicas form the ISR and the
    /// first of them leads.
    fn new_partitions(
        &self,
        assignments: &[Vec<i32>],
        first: usize,
    ) -> Result<Vec<PartitionInfo>, ApplyError> {
        let mut partitions = Vec::with_capacity(assignments.len());
        for (i, replicas) in assignments.iter().enumerate() {
            let replicas = self.checked_replicas(replicas, first + i)?;
            let isr: Vec<BrokerId> = replicas
                .iter()
                .filter(|r| self.live(**r))
                .copied()
                .collect();
            let leader = isr.first().copied();
            partitions.push(PartitionInfo {
                leader,
                leader_epoch: LeaderEpoch(0),
                partition_epoch: PartitionEpoch(0),
                isr: if isr.is_empty() {
                    vec![replicas[0]]
                } else {
                    isr
                },
                replicas,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
            });
        }
        Ok(partitions)
    }

    fn alter_isr(
        &mut self,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[i32],
    ) -> Result<Vec<PartitionChange>, ApplyError> {
        let live: Vec<BrokerId> = self
            .brokers
            .iter()
            .filter(|(_, i)| !i.fenced)
            .map(|(b, _)| *b)
            .collect();
        let part = self
            .topics
            .get_mut(topic)
            .ok_or_else(|| ApplyError::UnknownTopic(topic.into()))?
            .partitions
            .get_mut(usize::try_from(partition).unwrap_or(usize::MAX))
            .ok_or_else(|| ApplyError::UnknownPartition {
                topic: topic.into(),
                partition,
            })?;
        if part.leader_epoch.0 != leader_epoch || part.partition_epoch.0 != partition_epoch {
            return Err(ApplyError::Stale);
        }
        let new_isr: Vec<BrokerId> = isr.iter().map(|b| BrokerId(*b)).collect();
        let Some(leader) = part.leader else {
            return Err(ApplyError::InvalidIsr("partition has no leader".into()));
        };
        if !new_isr.contains(&leader) {
            return Err(ApplyError::InvalidIsr("ISR without its leader".into()));
        }
        for (i, b) in new_isr.iter().enumerate() {
            if !part.replicas.contains(b) || new_isr[..i].contains(b) {
                return Err(ApplyError::InvalidIsr(format!(
                    "{b} not a replica or repeated"
                )));
            }
            // KIP-841: a fenced broker may not join the ISR (it could be elected while dead).
            if !part.isr.contains(b) && !live.contains(b) {
                return Err(ApplyError::InvalidIsr(format!("{b} is fenced")));
            }
        }
        part.isr = new_isr;
        part.partition_epoch = PartitionEpoch(part.partition_epoch.0 + 1);
        Ok(vec![PartitionChange {
            topic: topic.into(),
            partition,
            state: part.leader_and_isr(),
        }])
    }
}

fn partition_changes(topic: &str, first: usize, parts: &[PartitionInfo]) -> Vec<PartitionChange> {
    parts
        .iter()
        .enumerate()
        .map(|(i, info)| PartitionChange {
            topic: topic.into(),
            partition: (first + i) as i32,
            state: info.leader_and_isr(),
        })
        .collect()
}

fn validate_topic_name(name: &str) -> Result<(), ApplyError> {
    let ok = !name.is_empty()
        && name.len() <= TOPIC_NAME_BYTES_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApplyError::InvalidTopic(format!("bad name {name:?}")))
    }
}

/// Replica placement for a new topic over the unfenced brokers: round-robin from a
/// per-topic start so leaders spread, each partition's followers shifted by a per-partition
/// step (Kafka's scheme). With racks set, the broker list alternates racks first, so
/// consecutive replicas land on different racks.
pub fn assign_replicas(
    brokers: &BTreeMap<BrokerId, BrokerInfo>,
    partitions: usize,
    replication_factor: usize,
    start: usize,
) -> Result<Vec<Vec<i32>>, ApplyError> {
    let live: Vec<(BrokerId, Option<String>)> = brokers
        .iter()
        .filter(|(_, i)| !i.fenced)
        .map(|(b, i)| (*b, i.rack.clone()))
        .collect();
    if replication_factor == 0
        || replication_factor > live.len()
        || replication_factor > REPLICAS_MAX
    {
        return Err(ApplyError::InvalidAssignment(format!(
            "replication factor {replication_factor} with {} live brokers",
            live.len()
        )));
    }
    if partitions == 0 || partitions > PARTITIONS_PER_TOPIC_MAX {
        return Err(ApplyError::InvalidAssignment("partition count".into()));
    }
    let ordered = rack_alternated(&live);
    let n = ordered.len();
    let mut out = Vec::with_capacity(partitions);
    for p in 0..partitions {
        let first = (start + p) % n;
        let shift = 1 + (p / n) % (n - 1).max(1);
        let mut replicas = vec![ordered[first].0];
        let mut i = first;
        while replicas.len() < replication_factor {
            i = (i + shift) % n;
            if !replicas.contains(&ordered[i].0) {
                replicas.push(ordered[i].0);
            } else {
                // The step cycles back on itself: take the next unused broker instead.
                i = (i + 1) % n;
                if !replicas.contains(&ordered[i].0) {
                    replicas.push(ordered[i].0);
                }
            }
        }
        out.push(replicas.iter().map(|b| b.0).collect());
    }
    Ok(out)
}

/// Brokers ordered so racks alternate (rack a, rack b, rack c, rack a, ...); brokers without
/// a rack keep id order.
fn rack_alternated(live: &[(BrokerId, Option<String>)]) -> Vec<(BrokerId, Option<String>)> {
    if live.iter().all(|(_, r)| r.is_none()) {
        return live.to_vec();
    }
    let mut by_rack: BTreeMap<Option<String>, Vec<(BrokerId, Option<String>)>> = BTreeMap::new();
    for b in live {
        by_rack.entry(b.1.clone()).or_default().push(b.clone());
    }
    let mut queues: Vec<_> = by_rack.into_values().map(|v| v.into_iter()).collect();
    let mut out = Vec::with_capacity(live.len());
    while out.len() < live.len() {
        for q in queues.iter_mut() {
            if let Some(b) = q.next() {
                out.push(b);
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` registered, live brokers (ids 1..=n); shared with the other controller tests.
    pub(crate) fn cluster(n: i32) -> MetadataState {
        let mut s = MetadataState::new();
        for b in 1..=n {
            s.apply(&MetadataCommand::RegisterBroker {
                broker: b,
                incarnation: 1,
                rack: None,
                endpoint: BrokerEndpoint::default(),
            })
            .expect("register");
        }
        s
    }

    fn create(s: &mut MetadataState, name: &str, partitions: usize, rf: usize) {
        let assignments = assign_replicas(&s.brokers, partitions, rf, 0).expect("assign");
        s.apply(&MetadataCommand::CreateTopic {
            topic_id: 7,
            name: name.into(),
            assignments,
            configs: vec![],
        })
        .expect("create");
    }

    #[test]
    fn fencing_the_leader_elects_the_next_isr_member_with_a_new_epoch() {
        let mut s = cluster(3);
        create(&mut s, "t", 1, 3);
        let before = s.partition("t", 0).expect("p").clone();
        let old = before.leader.expect("leader");
        let changes = s
            .apply(&MetadataCommand::FenceBroker { broker: old.0 })
            .expect("fence");
        let after = s.partition("t", 0).expect("p");
        assert_eq!(changes.len(), 1);
        assert_ne!(after.leader, Some(old));
        assert!(after.leader.is_some());
        assert_eq!(after.leader_epoch.0, before.leader_epoch.0 + 1);
        assert!(!after.isr.contains(&old));
    }

    #[test]
    fn no_unclean_election_the_last_isr_member_keeps_the_partition() {
        let mut s = cluster(2);
        create(&mut s, "t", 1, 2);
        let p = s.partition("t", 0).expect("p").clone();
        let leader = p.leader.expect("leader");
        let follower = p
            .replicas
            .iter()
            .find(|r| **r != leader)
            .copied()
            .expect("f");
        // The follower fell out of the ISR, then the leader dies.
        s.apply(&MetadataCommand::AlterIsr {
            topic: "t".into(),
            partition: 0,
            leader_epoch: p.leader_epoch.0,
            partition_epoch: p.partition_epoch.0,
            isr: vec![leader.0],
        })
        .expect("shrink");
        s.apply(&MetadataCommand::FenceBroker { broker: leader.0 })
            .expect("fence");
        let p = s.partition("t", 0).expect("p");
        assert_eq!(p.leader, None, "the out-of-sync follower must not lead");
        assert_eq!(p.isr, vec![leader]);
        s.apply(&MetadataCommand::UnfenceBroker { broker: leader.0 })
            .expect("unfence");
        assert_eq!(s.partition("t", 0).expect("p").leader, Some(leader));
        let _ = follower;
    }

    #[test]
    fn re_registration_of_a_live_broker_moves_its_leadership_to_a_new_epoch() {
        // A leader that restarts faster than its session times out may have lost its
        // unsynced tail while followers kept it: it must not lead the same epoch again.
        let mut s = cluster(3);
        create(&mut s, "t", 1, 3);
        let before = s.partition("t", 0).expect("p").clone();
        let leader = before.leader.expect("leader");
        s.apply(&MetadataCommand::RegisterBroker {
            broker: leader.0,
            incarnation: 1,
            rack: None,
            endpoint: BrokerEndpoint::default(),
        })
        .expect("retry");
        assert_eq!(
            s.partition("t", 0).expect("p"),
            &before,
            "a retry changes nothing"
        );
        s.apply(&MetadataCommand::RegisterBroker {
            broker: leader.0,
            incarnation: 2,
            rack: None,
            endpoint: BrokerEndpoint::default(),
        })
        .expect("restart");
        let after = s.partition("t", 0).expect("p");
        assert!(after.leader_epoch > before.leader_epoch);
        assert_ne!(after.leader, Some(leader));
        assert!(
            !after.isr.contains(&leader),
            "it rejoins the ISR only after catching up"
        );
    }

    #[test]
    fn stale_or_invalid_isr_changes_are_refused() {
        let mut s = cluster(3);
        create(&mut s, "t", 1, 3);
        let p = s.partition("t", 0).expect("p").clone();
        let leader = p.leader.expect("leader").0;
        let alter = |le: i32, pe: i32, isr: Vec<i32>| MetadataCommand::AlterIsr {
            topic: "t".into(),
            partition: 0,
            leader_epoch: le,
            partition_epoch: pe,
            isr,
        };
        assert_eq!(
            s.apply(&alter(
                p.leader_epoch.0 - 1,
                p.partition_epoch.0,
                vec![leader]
            )),
            Err(ApplyError::Stale)
        );
        let other = p.replicas.iter().find(|r| r.0 != leader).expect("f").0;
        assert!(matches!(
            s.apply(&alter(p.leader_epoch.0, p.partition_epoch.0, vec![other])),
            Err(ApplyError::InvalidIsr(_))
        ));
        s.apply(&alter(p.leader_epoch.0, p.partition_epoch.0, vec![leader]))
            .expect("shrink");
        s.apply(&MetadataCommand::FenceBroker { broker: other })
            .expect("fence");
        let p = s.partition("t", 0).expect("p").clone();
        assert!(matches!(
            s.apply(&alter(
                p.leader_epoch.0,
                p.partition_epoch.0,
                vec![leader, other]
            )),
            Err(ApplyError::InvalidIsr(_))
        ));
    }

    #[test]
    fn placement_spreads_leaders_and_never_repeats_a_broker() {
        let s = cluster(5);
        let a = assign_replicas(&s.brokers, 20, 3, 0).expect("assign");
        let mut leaders = BTreeMap::new();
        for r in &a {
            assert_eq!(r.len(), 3);
            let mut d = r.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3, "{r:?}");
            *leaders.entry(r[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders.len(), 5);
        assert!(leaders.values().all(|n| *n == 4));
    }

    #[test]
    fn placement_is_rack_aware() {
        let mut s = MetadataState::new();
        for (b, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")] {
            s.apply(&MetadataCommand::RegisterBroker {
                broker: b,
                incarnation: 1,
                rack: Some(rack.into()),
                endpoint: BrokerEndpoint::default(),
            })
            .expect("register");
        }
        let a = assign_replicas(&s.brokers, 12, 3, 0).expect("assign");
        for r in a {
            let mut racks: Vec<_> = r
                .iter()
                .map(|b| s.brokers[&BrokerId(*b)].rack.clone())
                .collect();
            racks.sort();
            racks.dedup();
            assert_eq!(racks.len(), 3, "replicas {r:?} share a rack");
        }
    }

    #[test]
    fn commands_round_trip_through_frames() {
        let cmd = MetadataCommand::CreateTopic {
            topic_id: 7,
            name: "orders".into(),
            assignments: vec![vec![1, 2, 3], vec![2, 3, 1]],
            configs: vec![("min.insync.replicas".into(), "2".into())],
        };
        assert_eq!(MetadataCommand::decode(&cmd.encode()), Ok(cmd));
    }
}
