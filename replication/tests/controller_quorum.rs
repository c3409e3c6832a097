//! A 3-voter controller quorum on one thread over SimStorage: election, replicated metadata,
//! fencing by heartbeat loss, and recovery of a voter from its own log after a crash that
//! drops its unsynced writes.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::rc::Rc;

use futures_lite::future::block_on;
use sluice_engine::clock::ManualClock;
use sluice_engine::io::sim::{CrashMode, SimStorage};
use sluice_replication::controller::{
    assign_replicas, ControllerConfig, ControllerNode, ElectionJitter, LeaderRebalance,
    MetadataCommand, MetadataState, SnapshotPolicy,
};
use sluice_replication::BrokerId;

struct Quorum {
    /// Process incarnation each broker heartbeats with (index = broker id).
    incarnations: [u64; 8],
    clock: ManualClock,
    disks: Vec<SimStorage>,
    nodes: Vec<Option<ControllerNode<SimStorage>>>,
}

fn config(id: i32) -> ControllerConfig {
    ControllerConfig {
        id: BrokerId(id),
        voters: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
        election_ticks: 10,
        heartbeat_ticks: 2,
        session_timeout_ms: 500,
        election_jitter: ElectionJitter::Random,
    }
}

fn open(disk: &SimStorage, id: i32, clock: &ManualClock) -> ControllerNode<SimStorage> {
    block_on(ControllerNode::open(
        disk.clone(),
        PathBuf::from("/controller"),
        config(id),
        Rc::new(clock.clone()),
    ))
    .expect("controller opens")
}

impl Quorum {
    fn new() -> Self {
        let clock = ManualClock::new(0);
        let disks: Vec<SimStorage> = (0..3).map(|_| SimStorage::new()).collect();
        let nodes = (0..3)
            .map(|i| Some(open(&disks[i], i as i32 + 1, &clock)))
            .collect();
        Quorum {
            incarnations: [1; 8],
            clock,
            disks,
            nodes,
        }
    }

    /// Runs `ticks` rounds of 10 ms: tick every live node, deliver every message at once.
    fn run(&mut self, ticks: usize, heartbeats_from: &[i32]) {
        for _ in 0..ticks {
            self.clock.advance_ms(10);
            let now = self.clock.now_ms_value();
            for n in self.nodes.iter_mut().flatten() {
                n.tick(now);
                for b in heartbeats_from {
                    let incarnation = self.incarnations[*b as usize];
                    n.on_heartbeat(BrokerId(*b), incarnation, None, &Default::default(), now);
                }
            }
            self.pump();
        }
    }

    fn pump(&mut self) {
        for _ in 0..20 {
            let mut mail = Vec::new();
            for n in self.nodes.iter_mut().flatten() {
                block_on(n.process_ready()).expect("ready");
                mail.extend(n.take_outbox());
            }
            if mail.is_empty() {
                return;
            }
            for (to, frame) in mail {
                // Broker 4 heartbeats without running a controller: the learner the active
                // controller adds for it has no node here, so its messages are lost.
                if let Some(n) = self
                    .nodes
                    .get_mut((to.0 - 1) as usize)
                    .and_then(Option::as_mut)
                {
                    let _ = n.step(&frame);
                }
            }
        }
    }

    fn active(&mut self) -> &mut ControllerNode<SimStorage> {
        let l = self.leader().expect("an active controller");
        self.nodes[l].as_mut().unwrap()
    }

    /// Every voter's state, checked identical.
    fn agreed_state(&self) -> MetadataState {
        let states: Vec<_> = self
            .nodes
            .iter()
            .flatten()
            .map(|n| n.state().clone())
            .collect();
        assert!(states.iter().all(|s| *s == states[0]), "voters disagree");
        states[0].clone()
    }

    /// What a partition leader sends after a follower caught up (or fell behind).
    fn alter_isr(&mut self, topic: &str, partition: i32, isr: &[i32]) {
        let p = self
            .active()
            .state()
            .partition(topic, partition)
            .unwrap()
            .clone();
        self.active()
            .propose(&MetadataCommand::AlterIsr {
                topic: topic.into(),
                partition,
                leader_epoch: p.leader_epoch.0,
                partition_epoch: p.partition_epoch.0,
                isr: isr.to_vec(),
            })
            .expect("propose AlterIsr");
    }

    fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.is_leader()))
    }
}

trait NowMs {
    fn now_ms_value(&self) -> i64;
}
impl NowMs for ManualClock {
    fn now_ms_value(&self) -> i64 {
        use sluice_engine::clock::Clock;
        self.now_ms()
    }
}

#[test]
fn quorum_elects_replicates_fences_and_recovers_from_its_log() {
    let mut q = Quorum::new();
    q.run(40, &[1, 2, 3]);
    let l = q.leader().expect("a leader is elected");
    // Heartbeats registered all three brokers.
    assert_eq!(q.nodes[l].as_ref().unwrap().state().brokers.len(), 3);
    let brokers = q.nodes[l].as_ref().unwrap().state().brokers.clone();
    let assignments = assign_replicas(&brokers, 3, 3, 0).expect("assign");
    q.nodes[l]
        .as_mut()
        .unwrap()
        .propose(&MetadataCommand::CreateTopic {
            name: "orders".into(),
            topic_id: 1,
            assignments,
            configs: vec![],
        })
        .expect("propose");
    q.run(5, &[1, 2, 3]);
    let states: Vec<_> = q
        .nodes
        .iter()
        .map(|n| n.as_ref().unwrap().state().clone())
        .collect();
    assert!(states[0].topics.contains_key("orders"));
    assert!(states.iter().all(|s| *s == states[0]), "voters disagree");

    // Broker 3 stops heartbeating: the active controller fences it; partitions it led move.
    q.run(80, &[1, 2]);
    let l = q.leader().expect("leader");
    let s = q.nodes[l].as_ref().unwrap().state().clone();
    assert!(s.brokers[&BrokerId(3)].fenced);
    for p in &s.topics["orders"].partitions {
        assert_ne!(p.leader, Some(BrokerId(3)));
        assert!(!p.isr.contains(&BrokerId(3)));
    }

    // The leader crashes (unsynced writes dropped); the other two elect a new one and the
    // old leader rebuilds the same metadata from its own log when it comes back.
    let old = l;
    q.nodes[old] = None;
    q.disks[old].crash(7, CrashMode::DropUnsynced);
    q.run(60, &[1, 2]);
    let l = q.leader().expect("a new leader");
    assert_ne!(l, old);
    q.nodes[old] = Some(open(&q.disks[old], old as i32 + 1, &q.clock));
    q.run(40, &[1, 2]);
    let a = q.nodes[old].as_ref().unwrap().state().clone();
    let b = q.nodes[q.leader().unwrap()]
        .as_ref()
        .unwrap()
        .state()
        .clone();
    assert_eq!(a, b, "recovered voter differs from the leader");
    assert!(a.brokers[&BrokerId(3)].fenced);
}

#[test]
fn controlled_shutdown_then_rebalance_then_reassignment_through_the_quorum() {
    let mut q = Quorum::new();
    let all = [1, 2, 3, 4];
    q.run(40, &all);
    let brokers = q.active().state().brokers.clone();
    assert_eq!(brokers.len(), 4, "broker 4 registers as a plain member");
    // Three partitions over brokers 1-3, each led by a different one.
    q.active()
        .propose(&MetadataCommand::CreateTopic {
            name: "orders".into(),
            topic_id: 1,
            assignments: vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]],
            configs: vec![],
        })
        .expect("propose");
    q.run(5, &all);
    assert_eq!(q.agreed_state().partitions_led_by(BrokerId(1)), 1);

    // Broker 1 gets SIGTERM: it asks for a controlled shutdown and keeps heartbeating.
    q.active()
        .on_shutdown_request(BrokerId(1), 1)
        .expect("the active controller takes it");
    q.run(5, &all);
    let s = q.agreed_state();
    assert!(s.controlled_shutdown_complete(BrokerId(1), 1));
    for p in &s.topics["orders"].partitions {
        assert!(p.leader.is_some() && p.leader != Some(BrokerId(1)));
        assert!(!p.isr.contains(&BrokerId(1)));
    }
    // Its heartbeats do not unfence it while it shuts down.
    q.run(30, &all);
    assert!(q.agreed_state().brokers[&BrokerId(1)].fenced);

    // It restarts (a new incarnation), catches up and rejoins every ISR. With automatic
    // rebalancing every 300 ms, leadership of partition 0 returns to it.
    q.incarnations[1] = 2;
    for n in q.nodes.iter_mut().flatten() {
        n.set_leader_rebalance(Some(LeaderRebalance {
            interval_ms: 300,
            imbalance_percentage: 10,
        }));
    }
    q.run(5, &all);
    assert!(!q.agreed_state().brokers[&BrokerId(1)].fenced);
    assert_eq!(q.agreed_state().partitions_led_by(BrokerId(1)), 0);
    for p in 0..3 {
        let isr = q
            .active()
            .state()
            .partition("orders", p)
            .unwrap()
            .isr
            .clone();
        let mut isr: Vec<i32> = isr.iter().map(|b| b.0).collect();
        isr.push(1);
        q.alter_isr("orders", p, &isr);
        q.run(1, &all);
    }
    q.run(40, &all);
    let s = q.agreed_state();
    for p in &s.topics["orders"].partitions {
        assert_eq!(
            p.leader,
            Some(p.replicas[0]),
            "preferred leader restored: {p:?}"
        );
    }

    // Partition 0 moves from {1,2,3} to {4,2,3}: 4 is added, then 1 removed once 4 is in
    // sync; the active controller completes it by itself.
    q.active()
        .propose(&MetadataCommand::AlterPartitionReassignment {
            topic: "orders".into(),
            partition: 0,
            target: Some(vec![4, 2, 3]),
        })
        .expect("propose");
    q.run(20, &all);
    let s = q.agreed_state();
    let ongoing = s.reassignments();
    assert_eq!(ongoing.len(), 1, "waits for broker 4 to catch up");
    assert_eq!(ongoing[0].adding, vec![BrokerId(4)]);
    assert_eq!(ongoing[0].removing, vec![BrokerId(1)]);
    q.alter_isr("orders", 0, &[1, 2, 3, 4]);
    q.run(20, &all);
    let s = q.agreed_state();
    assert!(s.reassignments().is_empty());
    let p = s.partition("orders", 0).unwrap();
    assert_eq!(p.replicas, vec![BrokerId(4), BrokerId(2), BrokerId(3)]);
    assert!(!p.isr.contains(&BrokerId(1)));
    assert!(p.leader.is_some() && p.leader != Some(BrokerId(1)));
}

const SMALL_SNAPSHOTS: SnapshotPolicy = SnapshotPolicy {
    interval_entries: 40,
    keep_entries: 10,
};

fn open_small(disk: &SimStorage, id: i32, clock: &ManualClock) -> ControllerNode<SimStorage> {
    let mut n = open(disk, id, clock);
    n.set_snapshot_policy(SMALL_SNAPSHOTS);
    n
}

#[test]
fn a_lagging_voter_catches_up_by_snapshot_and_restarts_restore_snapshot_plus_tail() {
    let mut q = Quorum::new();
    for (i, n) in q.nodes.iter_mut().enumerate() {
        *n = Some(open_small(&q.disks[i], i as i32 + 1, &q.clock));
    }
    q.run(40, &[1, 2, 3]);
    q.active()
        .propose(&MetadataCommand::CreateTopic {
            name: "orders".into(),
            topic_id: 1,
            assignments: vec![vec![1, 2, 3]],
            configs: vec![],
        })
        .expect("propose");
    q.run(5, &[1, 2, 3]);
    // Voter 3 goes down; the other two write far more than the snapshot interval.
    let down = (0..3).find(|i| Some(*i) != q.leader()).expect("a follower");
    q.nodes[down] = None;
    for round in 0..30 {
        for k in 0..10 {
            q.active()
                .propose(&MetadataCommand::SetTopicConfigs {
                    name: "orders".into(),
                    configs: vec![("retention.ms".into(), format!("{}", round * 10 + k))],
                })
                .expect("propose");
        }
        q.run(1, &[1, 2, 3]);
    }
    q.run(5, &[1, 2, 3]);
    let leader = q.active();
    let applied = leader.applied_index();
    assert!(applied > 300, "{applied}");
    assert!(leader.snapshot_index() > 0, "the leader snapshotted");
    assert!(
        leader.first_log_index() > applied - 60,
        "the log was compacted behind the snapshot: first {} applied {applied}",
        leader.first_log_index()
    );
    assert_eq!(
        leader.state().topics["orders"].configs["retention.ms"],
        "299"
    );

    // The voter comes back far behind the leader's log start: it gets the snapshot.
    q.nodes[down] = Some(open_small(&q.disks[down], down as i32 + 1, &q.clock));
    q.run(30, &[1, 2, 3]);
    let back = q.nodes[down].as_ref().unwrap();
    // Its own log ended long before the leader's log start, so only a snapshot explains
    // both of these.
    assert!(back.snapshot_index() > 0, "caught up through a snapshot");
    assert!(back.first_log_index() > 1);
    let before = q.agreed_state();

    // Every voter crashes (unsynced writes dropped) and restarts from snapshot + log tail.
    for i in 0..3 {
        q.nodes[i] = None;
        q.disks[i].crash(11 + i as u64, CrashMode::DropUnsynced);
    }
    for i in 0..3 {
        let n = open_small(&q.disks[i], i as i32 + 1, &q.clock);
        assert!(
            n.snapshot_index() > 0,
            "voter {} restores its snapshot",
            i + 1
        );
        assert!(n.state().topics.contains_key("orders"));
        q.nodes[i] = Some(n);
    }
    q.run(60, &[1, 2, 3]);
    assert!(q.leader().is_some());
    assert_eq!(q.agreed_state(), before);
    // And it keeps working.
    q.active()
        .propose(&MetadataCommand::DeleteTopic {
            name: "orders".into(),
        })
        .expect("propose");
    q.run(5, &[1, 2, 3]);
    assert!(q.agreed_state().topics.is_empty());
}
