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
    assign_replicas, ControllerConfig, ControllerNode, ElectionJitter, MetadataCommand,
};
use sluice_replication::BrokerId;

struct Quorum {
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
                    n.on_heartbeat(BrokerId(*b), 1, None, &Default::default(), now);
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
                if let Some(n) = self.nodes[(to.0 - 1) as usize].as_mut() {
                    let _ = n.step(&frame);
                }
            }
        }
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
