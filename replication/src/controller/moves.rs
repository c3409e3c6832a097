//! Metadata commands that move leadership or replicas on request rather than on failure:
//! controlled shutdown, preferred-leader election (Kafka's ElectLeaders and
//! auto.leader.rebalance), and partition reassignment (KIP-455). Like the rest of
//! [`MetadataState::apply`], everything here is deterministic: every voter computes the
//! same outcome from the same state.
//!
//! Cluster view; changed only by applying committed commands.

use std::collections::{BTreeMap, BTreeSet};

use sluice_engine::LeaderEpoch;

use crate::controller::state::{
    ApplyError, MetadataState, PartitionChange, PartitionInfo, TopicInfo,
};
use crate::ids::{BrokerId, PartitionEpoch};
use crate::limits::REPLICAS_MAX;

/// Why a preferred-leader election does nothing for a partition (ElectLeaders answers it
/// per partition: UNKNOWN_TOPIC_OR_PARTITION, ELECTION_NOT_NEEDED,
/// PREFERRED_LEADER_NOT_AVAILABLE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    #[error("unknown topic or partition")]
    UnknownPartition,
    #[error("the preferred replica already leads")]
    NotNeeded,
    #[error("the preferred replica is fenced or not in the ISR")]
    PreferredNotAvailable,
}

/// One ongoing reassignment, as ListPartitionReassignments reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    /// Current replicas: the target first, then the replicas being removed.
    pub replicas: Vec<BrokerId>,
    pub adding: Vec<BrokerId>,
    pub removing: Vec<BrokerId>,
}

impl MetadataState {
    /// True once broker `broker` (this `incarnation`) asked for a controlled shutdown and
    /// the request is applied: it leads no partition and is in no ISR it could leave
    /// (a partition whose only ISR member it is keeps it, leaderless, as fencing does).
    /// The broker may exit then.
    pub fn controlled_shutdown_complete(&self, broker: BrokerId, incarnation: u64) -> bool {
        let registered = self
            .brokers
            .get(&broker)
            .is_some_and(|b| b.incarnation == incarnation && b.shutting_down);
        registered && self.partitions_led_by(broker) == 0
    }

    /// Partitions `broker` leads.
    pub fn partitions_led_by(&self, broker: BrokerId) -> usize {
        self.topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| p.leader == Some(broker))
            .count()
    }

    /// Whether a preferred-leader election would move `topic`-`partition`'s leadership, and
    /// to whom.
    pub fn preferred_election(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<BrokerId, ElectionError> {
        let part = self
            .partition(topic, partition)
            .ok_or(ElectionError::UnknownPartition)?;
        let preferred = *part
            .replicas
            .first()
            .expect("a partition always has a replica (checked on create)");
        if part.leader == Some(preferred) {
            return Err(ElectionError::NotNeeded);
        }
        if !part.isr.contains(&preferred) || !self.live(preferred) {
            return Err(ElectionError::PreferredNotAvailable);
        }
        Ok(preferred)
    }

    /// Every partition whose reassignment is ongoing (ListPartitionReassignments).
    pub fn reassignments(&self) -> Vec<OngoingReassignment> {
        let mut out = Vec::new();
        for (name, t) in &self.topics {
            for (p, part) in t.partitions.iter().enumerate() {
                if reassigning(part) {
                    out.push(OngoingReassignment {
                        topic: name.clone(),
                        partition: p as i32,
                        replicas: part.replicas.clone(),
                        adding: part.adding_replicas.clone(),
                        removing: part.removing_replicas.clone(),
                    });
                }
            }
        }
        out
    }

    /// Whether `topic`-`partition`'s ongoing reassignment can complete now: every adding
    /// replica is in the ISR, some ISR member stays, and a leader that is removed has a live
    /// in-sync successor in the target.
    pub fn reassignment_completable(&self, topic: &str, partition: i32) -> bool {
        let live = self.live_brokers();
        self.partition(topic, partition)
            .is_some_and(|p| completion(p, &live).is_some())
    }

    /// Partitions (with their partition epoch) whose preferred replica is live and in sync
    /// but does not lead, skipping partitions under reassignment, limited to brokers whose
    /// share of such partitions exceeds `imbalance_percentage` of the partitions they
    /// prefer (Kafka's leader.imbalance.per.broker.percentage).
    pub fn imbalanced_partitions(&self, imbalance_percentage: u32) -> Vec<(String, i32)> {
        let mut preferred_count: BTreeMap<BrokerId, usize> = BTreeMap::new();
        let mut movable: BTreeMap<BrokerId, Vec<(String, i32)>> = BTreeMap::new();
        for (name, t) in &self.topics {
            for (p, part) in t.partitions.iter().enumerate() {
                let Some(preferred) = part.replicas.first() else {
                    continue;
                };
                *preferred_count.entry(*preferred).or_default() += 1;
                if !reassigning(part) && self.preferred_election(name, p as i32).is_ok() {
                    movable
                        .entry(*preferred)
                        .or_default()
                        .push((name.clone(), p as i32));
                }
            }
        }
        let mut out = Vec::new();
        for (broker, parts) in movable {
            let total = preferred_count.get(&broker).copied().unwrap_or(0).max(1);
            if parts.len() * 100 > total * imbalance_percentage as usize {
                out.extend(parts);
            }
        }
        out
    }

    pub(super) fn live_brokers(&self) -> BTreeSet<BrokerId> {
        self.brokers
            .iter()
            .filter(|(_, i)| !i.fenced)
            .map(|(b, _)| *b)
            .collect()
    }

    pub(super) fn shutdown_broker(
        &mut self,
        id: BrokerId,
        incarnation: u64,
    ) -> Result<Vec<PartitionChange>, ApplyError> {
        let b = self
            .brokers
            .get_mut(&id)
            .ok_or(ApplyError::UnknownBroker(id.0))?;
        if b.incarnation != incarnation {
            // A request from an earlier process of this broker.
            return Err(ApplyError::Stale);
        }
        if b.shutting_down {
            // A retried request (the broker resends until it sees the outcome).
            return Ok(Vec::new());
        }
        b.fenced = true;
        b.shutting_down = true;
        Ok(self.fence(id))
    }

    pub(super) fn elect_preferred_leaders(
        &mut self,
        partitions: &[(String, i32)],
        preferred: bool,
    ) -> Result<Vec<PartitionChange>, ApplyError> {
        if !preferred {
            return Err(ApplyError::UncleanElectionDisabled);
        }
        let all: Vec<(String, i32)>;
        let partitions = if partitions.is_empty() {
            all = self
                .topics
                .iter()
                .flat_map(|(n, t)| (0..t.partitions.len()).map(move |p| (n.clone(), p as i32)))
                .collect();
            &all[..]
        } else {
            partitions
        };
        let mut changes = Vec::new();
        for (topic, p) in partitions {
            // Partitions that need no election (or cannot have one) are skipped; the proposer
            // answers them per partition from `preferred_election`.
            let Ok(preferred) = self.preferred_election(topic, *p) else {
                continue;
            };
            let part = self
                .partition_mut(topic, *p)
                .expect("preferred_election found the partition");
            part.leader = Some(preferred);
            part.leader_epoch = LeaderEpoch(part.leader_epoch.0 + 1);
            part.partition_epoch = PartitionEpoch(part.partition_epoch.0 + 1);
            changes.push(PartitionChange {
                topic: topic.clone(),
                partition: *p,
                state: part.leader_and_isr(),
            });
        }
        Ok(changes)
    }

    pub(super) fn alter_reassignment(
        &mut self,
        topic: &str,
        partition: i32,
        target: Option<&[i32]>,
    ) -> Result<Vec<PartitionChange>, ApplyError> {
        let live = self.live_brokers();
        let target: Option<Vec<BrokerId>> = match target {
            None => None,
            Some(t) => {
                let p = usize::try_from(partition).unwrap_or(usize::MAX);
                Some(self.checked_replicas(t, p)?)
            }
        };
        let part = self.partition_mut(topic, partition)?;
        let origin: Vec<BrokerId> = part
            .replicas
            .iter()
            .filter(|r| !part.adding_replicas.contains(r))
            .copied()
            .collect();
        let mut next = part.clone();
        match target {
            None => {
                if !reassigning(part) {
                    return Err(ApplyError::NoReassignmentInProgress {
                        topic: topic.into(),
                        partition,
                    });
                }
                restrict_to(&mut next, origin, &live)?;
                next.adding_replicas.clear();
                next.removing_replicas.clear();
            }
            Some(target) => {
                let mut replicas = target.clone();
                replicas.extend(origin.iter().filter(|r| !target.contains(r)));
                if replicas.len() > REPLICAS_MAX {
                    return Err(ApplyError::InvalidAssignment(
                        "current and target replicas together exceed the limit".into(),
                    ));
                }
                // An adding replica of a replaced reassignment that the new target drops
                // leaves at once (it never was a settled replica).
                restrict_to(&mut next, replicas, &live)?;
                next.adding_replicas = target
                    .iter()
                    .filter(|r| !origin.contains(r))
                    .copied()
                    .collect();
                next.removing_replicas = origin
                    .iter()
                    .filter(|r| !target.contains(r))
                    .copied()
                    .collect();
                if let Some(done) = completion(&next, &live) {
                    next = done;
                }
            }
        }
        if next == *part {
            // Reassigning to the current replicas with nothing ongoing: nothing to do.
            return Ok(Vec::new());
        }
        next.partition_epoch = PartitionEpoch(part.partition_epoch.0 + 1);
        *part = next;
        Ok(vec![PartitionChange {
            topic: topic.into(),
            partition,
            state: part.leader_and_isr(),
        }])
    }

    pub(super) fn complete_reassignment(
        &mut self,
        topic: &str,
        partition: i32,
        partition_epoch: i32,
    ) -> Result<Vec<PartitionChange>, ApplyError> {
        let live = self.live_brokers();
        let part = self.partition_mut(topic, partition)?;
        if part.partition_epoch.0 != partition_epoch {
            return Err(ApplyError::Stale);
        }
        let Some(mut done) = completion(part, &live) else {
            return Err(ApplyError::NoReassignmentInProgress {
                topic: topic.into(),
                partition,
            });
        };
        done.partition_epoch = PartitionEpoch(part.partition_epoch.0 + 1);
        *part = done;
        Ok(vec![PartitionChange {
            topic: topic.into(),
            partition,
            state: part.leader_and_isr(),
        }])
    }

    fn partition_mut(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<&mut PartitionInfo, ApplyError> {
        self.topics
            .get_mut(topic)
            .ok_or_else(|| ApplyError::UnknownTopic(topic.into()))
            .and_then(|t: &mut TopicInfo| {
                t.partitions
                    .get_mut(usize::try_from(partition).unwrap_or(usize::MAX))
                    .ok_or_else(|| ApplyError::UnknownPartition {
                        topic: topic.into(),
                        partition,
                    })
            })
    }
}

fn reassigning(p: &PartitionInfo) -> bool {
    !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty()
}

/// `part` with its reassignment completed (replicas := target, ISR := ISR ∩ target, a new
/// leader from the target if the leader was removed), or None if it cannot complete yet.
/// The partition epoch is left to the caller.
fn completion(part: &PartitionInfo, live: &BTreeSet<BrokerId>) -> Option<PartitionInfo> {
    if !reassigning(part) || !part.adding_replicas.iter().all(|r| part.isr.contains(r)) {
        return None;
    }
    let target: Vec<BrokerId> = part
        .replicas
        .iter()
        .filter(|r| !part.removing_replicas.contains(r))
        .copied()
        .collect();
    let mut done = part.clone();
    done.adding_replicas.clear();
    done.removing_replicas.clear();
    let had_leader = part.leader.is_some();
    restrict_to(&mut done, target, live).ok()?;
    // Never complete into a leaderless partition when it had a leader: wait until a target
    // replica can take over.
    if had_leader && done.leader.is_none() {
        return None;
    }
    Some(done)
}

/// Replicas become `replicas`; the ISR keeps only them (refused if none would remain); a
/// leader outside them hands over to the first live in-sync replica in `replicas` order
/// (a new leader epoch, or leaderless if there is none: unclean election is off).
fn restrict_to(
    part: &mut PartitionInfo,
    replicas: Vec<BrokerId>,
    live: &BTreeSet<BrokerId>,
) -> Result<(), ApplyError> {
    let isr: Vec<BrokerId> = part
        .isr
        .iter()
        .filter(|b| replicas.contains(b))
        .copied()
        .collect();
    if isr.is_empty() {
        return Err(ApplyError::InvalidAssignment(
            "no in-sync replica would remain".into(),
        ));
    }
    if part.leader.is_some_and(|l| !replicas.contains(&l)) {
        part.leader = replicas
            .iter()
            .find(|r| isr.contains(r) && live.contains(r))
            .copied();
        part.leader_epoch = LeaderEpoch(part.leader_epoch.0 + 1);
    }
    part.isr = isr;
    part.replicas = replicas;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::state::tests::cluster;
    use crate::controller::state::{assign_replicas, BrokerEndpoint, MetadataCommand};

    fn create(s: &mut MetadataState, name: &str, assignments: Vec<Vec<i32>>) {
        s.apply(&MetadataCommand::CreateTopic {
            topic_id: 1 + s.topics.len() as u128,
            name: name.into(),
            assignments,
            configs: vec![],
        })
        .expect("create");
    }

    fn p(s: &MetadataState, t: &str, n: i32) -> PartitionInfo {
        s.partition(t, n).expect("partition").clone()
    }

    fn alter_isr(s: &mut MetadataState, t: &str, n: i32, isr: &[i32]) {
        let part = p(s, t, n);
        s.apply(&MetadataCommand::AlterIsr {
            topic: t.into(),
            partition: n,
            leader_epoch: part.leader_epoch.0,
            partition_epoch: part.partition_epoch.0,
            isr: isr.to_vec(),
        })
        .expect("alter isr");
    }

    fn b(ids: &[i32]) -> Vec<BrokerId> {
        ids.iter().map(|i| BrokerId(*i)).collect()
    }

    #[test]
    fn controlled_shutdown_moves_leadership_and_completes_at_once() {
        let mut s = cluster(3);
        let a = assign_replicas(&s.brokers, 6, 3, 0).expect("assign");
        create(&mut s, "t", a);
        let led = s.partitions_led_by(BrokerId(1));
        assert!(led > 0);
        assert!(!s.controlled_shutdown_complete(BrokerId(1), 1));
        // A request from an older process is refused.
        assert_eq!(
            s.apply(&MetadataCommand::ShutdownBroker {
                broker: 1,
                incarnation: 0
            }),
            Err(ApplyError::Stale)
        );
        let changes = s
            .apply(&MetadataCommand::ShutdownBroker {
                broker: 1,
                incarnation: 1,
            })
            .expect("shutdown");
        assert_eq!(changes.len(), 6, "broker 1 was in every ISR");
        let retry = MetadataCommand::ShutdownBroker {
            broker: 1,
            incarnation: 1,
        };
        assert_eq!(s.apply(&retry), Ok(vec![]), "a retry changes nothing");
        assert!(s.controlled_shutdown_complete(BrokerId(1), 1));
        for part in &s.topics["t"].partitions {
            assert!(part.leader.is_some() && part.leader != Some(BrokerId(1)));
            assert!(!part.isr.contains(&BrokerId(1)));
        }
        // Its heartbeat may unfence a fenced broker, never one that is shutting down; a
        // new incarnation registers normally.
        assert!(s.brokers[&BrokerId(1)].fenced && s.brokers[&BrokerId(1)].shutting_down);
        s.apply(&MetadataCommand::RegisterBroker {
            broker: 1,
            incarnation: 2,
            rack: None,
            endpoint: BrokerEndpoint::default(),
        })
        .expect("restart");
        assert!(!s.brokers[&BrokerId(1)].fenced && !s.brokers[&BrokerId(1)].shutting_down);
    }

    #[test]
    fn controlled_shutdown_of_the_last_in_sync_replica_leaves_the_partition_leaderless() {
        let mut s = cluster(2);
        create(&mut s, "t", vec![vec![1, 2]]);
        alter_isr(&mut s, "t", 0, &[1]);
        s.apply(&MetadataCommand::ShutdownBroker {
            broker: 1,
            incarnation: 1,
        })
        .expect("shutdown");
        let part = p(&s, "t", 0);
        assert_eq!(part.leader, None, "unclean election stays off");
        assert_eq!(part.isr, b(&[1]));
        assert!(s.controlled_shutdown_complete(BrokerId(1), 1));
    }

    #[test]
    fn preferred_election_moves_leadership_back_only_when_the_preferred_replica_is_in_sync() {
        let mut s = cluster(3);
        create(&mut s, "t", vec![vec![1, 2, 3], vec![2, 3, 1]]);
        s.apply(&MetadataCommand::FenceBroker { broker: 1 })
            .expect("fence");
        assert_eq!(p(&s, "t", 0).leader, Some(BrokerId(2)));
        assert_eq!(
            s.preferred_election("t", 0),
            Err(ElectionError::PreferredNotAvailable)
        );
        assert_eq!(s.preferred_election("t", 1), Err(ElectionError::NotNeeded));
        assert_eq!(
            s.preferred_election("t", 9),
            Err(ElectionError::UnknownPartition)
        );
        // Back, but not yet in the ISR: nothing moves.
        s.apply(&MetadataCommand::UnfenceBroker { broker: 1 })
            .expect("unfence");
        let all = MetadataCommand::ElectLeaders {
            partitions: vec![],
            preferred: true,
        };
        assert_eq!(s.apply(&all), Ok(vec![]));
        assert!(s.imbalanced_partitions(10).is_empty());
        alter_isr(&mut s, "t", 0, &[2, 3, 1]);
        assert_eq!(s.imbalanced_partitions(10), vec![("t".to_string(), 0)]);
        assert_eq!(
            s.apply(&MetadataCommand::ElectLeaders {
                partitions: vec![("t".into(), 0)],
                preferred: false,
            }),
            Err(ApplyError::UncleanElectionDisabled)
        );
        let before = p(&s, "t", 0);
        let changes = s.apply(&all).expect("elect");
        assert_eq!(changes.len(), 1);
        let after = p(&s, "t", 0);
        assert_eq!(after.leader, Some(BrokerId(1)));
        assert_eq!(after.leader_epoch.0, before.leader_epoch.0 + 1);
        assert_eq!(after.isr, before.isr);
        assert!(s.imbalanced_partitions(10).is_empty());
    }

    #[test]
    fn imbalance_below_the_threshold_is_left_alone() {
        let mut s = cluster(2);
        let a: Vec<Vec<i32>> = (0..20).map(|_| vec![1, 2]).collect();
        create(&mut s, "t", a);
        // Broker 2 leads one of broker 1's twenty preferred partitions: 5% < 10%.
        s.apply(&MetadataCommand::AlterPartitionReassignment {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![2, 1]),
        })
        .expect("reorder");
        s.apply(&MetadataCommand::ElectLeaders {
            partitions: vec![("t".into(), 0)],
            preferred: true,
        })
        .expect("elect");
        s.apply(&MetadataCommand::AlterPartitionReassignment {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![1, 2]),
        })
        .expect("reorder back");
        assert_eq!(p(&s, "t", 0).leader, Some(BrokerId(2)));
        assert!(s.imbalanced_partitions(10).is_empty());
        assert_eq!(s.imbalanced_partitions(4).len(), 1);
    }

    #[test]
    fn reassignment_adds_then_completes_when_the_new_replica_is_in_sync() {
        let mut s = cluster(4);
        create(&mut s, "t", vec![vec![1, 2, 3]]);
        let before = p(&s, "t", 0);
        s.apply(&MetadataCommand::AlterPartitionReassignment {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![2, 3, 4]),
        })
        .expect("start");
        let during = p(&s, "t", 0);
        assert_eq!(during.replicas, b(&[2, 3, 4, 1]));
        assert_eq!(during.adding_replicas, b(&[4]));
        assert_eq!(during.removing_replicas, b(&[1]));
        assert_eq!(
            during.leader,
            Some(BrokerId(1)),
            "leadership stays until completion"
        );
        assert!(during.partition_epoch > before.partition_epoch);
        let ongoing = s.reassignments();
        assert_eq!(ongoing.len(), 1);
        assert_eq!(ongoing[0].adding, b(&[4]));
        assert!(!s.reassignment_completable("t", 0));
        // A stale completion is refused.
        assert!(s
            .apply(&MetadataCommand::CompleteReassignment {
                topic: "t".into(),
                partition: 0,
                partition_epoch: during.partition_epoch.0,
            })
            .is_err());
        // The new replica caught up: the leader added it to the ISR.
        alter_isr(&mut s, "t", 0, &[1, 2, 3, 4]);
        assert!(s.reassignment_completable("t", 0));
        let pe = p(&s, "t", 0).partition_epoch.0;
        s.apply(&MetadataCommand::CompleteReassignment {
            topic: "t".into(),
            partition: 0,
            partition_epoch: pe,
        })
        .expect("complete");
        let done = p(&s, "t", 0);
        assert_eq!(done.replicas, b(&[2, 3, 4]));
        assert_eq!(done.isr, b(&[2, 3, 4]));
        assert_eq!(
            done.leader,
            Some(BrokerId(2)),
            "the removed leader handed over"
        );
        assert_eq!(done.leader_epoch.0, before.leader_epoch.0 + 1);
        assert_eq!(done.partition_epoch.0, pe + 1);
        assert!(s.reassignments().is_empty());
    }

    #[test]
    fn reassignment_cancel_reverts_and_a_pure_removal_completes_at_once() {
        let mut s = cluster(4);
        create(&mut s, "t", vec![vec![1, 2, 3]]);
        let start = MetadataCommand::AlterPartitionReassignment {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![4, 2, 3]),
        };
        s.apply(&start).expect("start");
        alter_isr(&mut s, "t", 0, &[1, 2, 4]);
        let cancel = MetadataCommand::AlterPartitionReassignment {
            topic: "t".into(),
            partition: 0,
            target: None,
        };
        // Completable now, but cancelled first: broker 4 leaves replicas and ISR. As in
        // Kafka the original replicas keep their order during the reassignment (target
        // first), so the preferred leader after a cancel may differ.
        s.apply(&cancel).expect("cancel");
        let part = p(&s, "t", 0);
        assert_eq!(part.replicas, b(&[2, 3, 1]));
        assert_eq!(part.isr, b(&[1, 2]));
        assert!(part.adding_replicas.is_empty() && part.removing_replicas.is_empty());
        assert_eq!(
            s.apply(&cancel),
            Err(ApplyError::NoReassignmentInProgress {
                topic: "t".into(),
                partition: 0
            })
        );
        // Removing a replica needs nobody to catch up: it completes in the same command.
        s.apply(&MetadataCommand::AlterPartitionReassignment {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![1, 2]),
        })
        .expect("shrink");
        let part = p(&s, "t", 0);
        assert_eq!(part.replicas, b(&[1, 2]));
        assert_eq!(part.isr, b(&[1, 2]));
        assert!(s.reassignments().is_empty());
        // Bad targets.
        for target in [vec![], vec![1, 1], vec![1, 9]] {
            assert!(matches!(
                s.apply(&MetadataCommand::AlterPartitionReassignment {
                    topic: "t".into(),
                    partition: 0,
                    target: Some(target),
                }),
                Err(ApplyError::InvalidAssignment(_))
            ));
        }
    }

    #[test]
    fn a_replaced_reassignment_drops_the_adding_replica_the_new_target_omits() {
        let mut s = cluster(5);
        create(&mut s, "t", vec![vec![1, 2, 3]]);
        s.apply(&MetadataCommand::AlterPartitionReassignment {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![1, 2, 4]),
        })
        .expect("first");
        alter_isr(&mut s, "t", 0, &[1, 2, 3]);
        s.apply(&MetadataCommand::AlterPartitionReassignment {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![1, 2, 5]),
        })
        .expect("second");
        let part = p(&s, "t", 0);
        assert_eq!(part.replicas, b(&[1, 2, 5, 3]));
        assert_eq!(part.adding_replicas, b(&[5]));
        assert_eq!(part.removing_replicas, b(&[3]));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::controller::image;
    use crate::controller::state::{BrokerEndpoint, MetadataCommand};

    const BROKERS: i32 = 5;

    /// Distinct brokers in random order.
    fn replicas() -> impl Strategy<Value = Vec<i32>> {
        (
            Just((1..=BROKERS).collect::<Vec<i32>>()).prop_shuffle(),
            1..=4usize,
        )
            .prop_map(|(v, n)| v[..n].to_vec())
    }

    /// A step of the test: a command as such, or one whose epochs are taken from the state
    /// when it is applied (as a partition leader or the active controller would send it).
    #[derive(Clone, Debug)]
    enum Step {
        Command(MetadataCommand),
        AlterIsrNow { partition: i32, isr: Vec<i32> },
        CompleteNow { partition: i32 },
    }

    fn step() -> impl Strategy<Value = Step> {
        let broker = 1..=BROKERS;
        let partition = 0..3i32;
        prop_oneof![
            (broker.clone(), 1..3u64).prop_map(|(broker, incarnation)| {
                Step::Command(MetadataCommand::RegisterBroker {
                    broker,
                    incarnation,
                    rack: None,
                    endpoint: BrokerEndpoint::default(),
                })
            }),
            broker
                .clone()
                .prop_map(|broker| Step::Command(MetadataCommand::FenceBroker { broker })),
            broker
                .clone()
                .prop_map(|broker| Step::Command(MetadataCommand::UnfenceBroker { broker })),
            (broker, 1..3u64).prop_map(|(broker, incarnation)| {
                Step::Command(MetadataCommand::ShutdownBroker {
                    broker,
                    incarnation,
                })
            }),
            proptest::collection::vec(replicas(), 1..=3).prop_map(|assignments| {
                Step::Command(MetadataCommand::CreateTopic {
                    name: "t".into(),
                    topic_id: 1,
                    assignments,
                    configs: vec![],
                })
            }),
            (partition.clone(), 0..4i32, 0..40i32, replicas()).prop_map(
                |(partition, leader_epoch, partition_epoch, isr)| {
                    Step::Command(MetadataCommand::AlterIsr {
                        topic: "t".into(),
                        partition,
                        leader_epoch,
                        partition_epoch,
                        isr,
                    })
                }
            ),
            (partition.clone(), replicas())
                .prop_map(|(partition, isr)| Step::AlterIsrNow { partition, isr }),
            (partition.clone(), replicas())
                .prop_map(|(partition, isr)| Step::AlterIsrNow { partition, isr }),
            (partition.clone(), proptest::option::of(replicas())).prop_map(
                |(partition, target)| {
                    Step::Command(MetadataCommand::AlterPartitionReassignment {
                        topic: "t".into(),
                        partition,
                        target,
                    })
                }
            ),
            partition.prop_map(|partition| Step::CompleteNow { partition }),
            Just(Step::Command(MetadataCommand::ElectLeaders {
                partitions: vec![],
                preferred: true,
            })),
        ]
    }

    fn resolve(s: &MetadataState, step: &Step) -> Option<MetadataCommand> {
        Some(match step {
            Step::Command(c) => c.clone(),
            Step::AlterIsrNow { partition, isr } => {
                let p = s.partition("t", *partition)?;
                // The leader always keeps itself.
                let mut isr = isr.clone();
                if let Some(l) = p.leader {
                    if !isr.contains(&l.0) {
                        isr.push(l.0);
                    }
                }
                MetadataCommand::AlterIsr {
                    topic: "t".into(),
                    partition: *partition,
                    leader_epoch: p.leader_epoch.0,
                    partition_epoch: p.partition_epoch.0,
                    isr,
                }
            }
            Step::CompleteNow { partition } => MetadataCommand::CompleteReassignment {
                topic: "t".into(),
                partition: *partition,
                partition_epoch: s.partition("t", *partition)?.partition_epoch.0,
            },
        })
    }

    fn distinct(v: &[BrokerId]) -> bool {
        v.iter().enumerate().all(|(i, b)| !v[..i].contains(b))
    }

    fn check(s: &MetadataState) -> Result<(), TestCaseError> {
        for (name, t) in &s.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                let at = format!("{name}-{i}: {p:?}");
                prop_assert!(distinct(&p.replicas) && !p.replicas.is_empty(), "{}", at);
                prop_assert!(p.replicas.len() <= REPLICAS_MAX, "{}", at);
                prop_assert!(!p.isr.is_empty() && distinct(&p.isr), "{}", at);
                prop_assert!(p.isr.iter().all(|b| p.replicas.contains(b)), "{}", at);
                if let Some(l) = p.leader {
                    prop_assert!(p.isr.contains(&l), "leader outside the ISR: {}", at);
                    prop_assert!(!s.brokers[&l].fenced, "fenced leader: {}", at);
                }
                prop_assert!(
                    p.adding_replicas.iter().all(|b| p.replicas.contains(b))
                        && p.removing_replicas.iter().all(|b| p.replicas.contains(b))
                        && p.adding_replicas
                            .iter()
                            .all(|b| !p.removing_replicas.contains(b)),
                    "{}",
                    at
                );
                prop_assert!(
                    p.replicas.len() > p.removing_replicas.len(),
                    "nothing would remain: {}",
                    at
                );
            }
        }
        Ok(())
    }

    proptest! {
        /// Whatever sequence of commands is applied (most refused), the state keeps its
        /// invariants (leader in the ISR and live, ISR within replicas, a reassignment's
        /// adding and removing within replicas and disjoint), epochs never go back, and a
        /// snapshot image restores it exactly.
        #[test]
        fn any_command_sequence_keeps_partition_invariants(
            steps in proptest::collection::vec(step(), 1..80)
        ) {
            let mut s = MetadataState::new();
            for b in 1..=BROKERS {
                s.apply(&MetadataCommand::RegisterBroker {
                    broker: b,
                    incarnation: 1,
                    rack: None,
                    endpoint: BrokerEndpoint::default(),
                })
                .expect("register");
            }
            for step in &steps {
                let Some(cmd) = resolve(&s, step) else {
                    continue;
                };
                let before = s.clone();
                let result = s.apply(&cmd);
                if result.is_err() {
                    prop_assert_eq!(&s, &before, "a refused command changed the state");
                }
                check(&s)?;
                if let (Some(a), Some(b)) = (before.topics.get("t"), s.topics.get("t")) {
                    for (pa, pb) in a.partitions.iter().zip(&b.partitions) {
                        prop_assert!(pb.leader_epoch >= pa.leader_epoch);
                        prop_assert!(pb.partition_epoch >= pa.partition_epoch);
                        if pb.leader != pa.leader {
                            prop_assert!(pb.leader_epoch > pa.leader_epoch);
                        }
                    }
                }
            }
            let bytes = image::encode(&s).expect("encode");
            prop_assert_eq!(&image::decode(&bytes).expect("decode"), &s);
        }
    }
}
