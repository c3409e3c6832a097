//! Deterministic simulation of a 3-broker cluster on one thread: each broker runs the real
//! partition replication state machine over a real `PartitionLog` on its own `SimStorage`
//! (crashes drop or tear unsynced writes) and a real controller voter (raft-rs through
//! `ControllerNode`, its Raft log on the same disk); the active controller fences brokers
//! whose heartbeats stop. Each broker's replica follows the metadata its own voter applied.
//! One seed drives the workload,
//! message loss, delay (hence reordering), corruption, network partitions, crashes and
//! restarts, controlled shutdowns, preferred-leader elections (asked for and automatic) and
//! Raft snapshots (a small snapshot interval per seed, so compaction and snapshot installs
//! happen amid the faults). Invariants are checked as the run goes and at the end.

#![allow(clippy::unwrap_used, dead_code)]

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;

use futures_lite::future::block_on;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use sluice_engine::batch::{batches, build, BatchView};
use sluice_engine::clock::ManualClock;
use sluice_engine::io::sim::{CrashMode, SimStorage};
use sluice_engine::limits::BATCH_BYTES_MAX;
use sluice_engine::log::{AppendOptions, PartitionLog};
use sluice_engine::{Durability, LeaderEpoch, LogConfig, Offset, TopicPartition};
use sluice_replication::controller::{
    assign_replicas, ControllerConfig, ControllerNode, ElectionJitter, LeaderRebalance,
    MetadataCommand, MetadataState, SnapshotPolicy,
};
use sluice_replication::partition::{
    hw_checkpoint, EpochCache, LeaderAndIsr, Output, PartitionReplica, ProduceError,
    ReplicaMessage, ReplicaSettings, RoleKind,
};
use sluice_replication::BrokerId;

pub const TOPIC: &str = "sim";
const BROKERS: i32 = 3;
const TICK_MS: i64 = 10;
const SESSION_TIMEOUT_MS: i64 = 600;
const HEARTBEAT_MS: i64 = 100;
const BOOTSTRAP_MS: i64 = 100;
/// A broker in controlled shutdown exits after this long even if its leadership has not
/// moved (the controller may be unreachable), as Kafka's broker gives up after its retries.
const SHUTDOWN_WAIT_MS_MAX: i64 = 2_000;
const HW_CHECKPOINT_MS: i64 = 300;

/// Knobs one seed picks.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Virtual run time with faults, then a heal-and-settle phase.
    pub run_ms: i64,
    pub settle_ms: i64,
    pub loss: f64,
    pub corrupt: f64,
    pub delay_ms_max: i64,
    pub produce_every_ms: i64,
    pub crash_every_ms: i64,
    pub partition_every_ms: i64,
    pub min_insync_replicas: usize,
    /// A broker asks for a controlled shutdown about this often (0: never), exits when its
    /// leadership has moved (or after SHUTDOWN_WAIT_MS_MAX) and restarts later.
    pub shutdown_every_ms: i64,
    /// An admin asks for a preferred-leader election about this often (0: never).
    pub elect_every_ms: i64,
    /// auto.leader.rebalance check interval (0: off).
    pub rebalance_interval_ms: i64,
    /// Raft snapshot every this many applied entries (0: the default policy).
    pub snapshot_interval_entries: u64,
    /// The partition is reassigned about this often (0: never): from three replicas to two
    /// (a removal, maybe of the leader) and back to three (an addition that must catch up).
    pub reassign_every_ms: i64,
    /// The leader's catch-up read rate for followers outside the ISR.
    pub catchup_bytes_per_sec: u64,
}

impl SimConfig {
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
        let mut extra = SmallRng::seed_from_u64(seed ^ 0xfeed);
        SimConfig {
            seed,
            run_ms: 8_000,
            settle_ms: 6_000,
            loss: [0.0, 0.01, 0.05, 0.15][rng.gen_range(0..4)],
            corrupt: [0.0, 0.001, 0.01][rng.gen_range(0..3)],
            delay_ms_max: [1, 5, 20, 60][rng.gen_range(0..4)],
            produce_every_ms: rng.gen_range(2..15),
            crash_every_ms: [0, 700, 1500, 3000][rng.gen_range(0..4)],
            partition_every_ms: [0, 800, 2000][rng.gen_range(0..3)],
            min_insync_replicas: rng.gen_range(1..=2),
            // Drawn from a second stream so the knobs above stay what they were per seed.
            shutdown_every_ms: [0, 1500, 3000][extra.gen_range(0..3)],
            elect_every_ms: [0, 700, 2000][extra.gen_range(0..3)],
            rebalance_interval_ms: [0, 500, 2000][extra.gen_range(0..3)],
            snapshot_interval_entries: [0, 8, 30][extra.gen_range(0..3)],
            reassign_every_ms: [0, 600, 1500][extra.gen_range(0..3)],
            // Drawn last so the knobs above stay what each seed always had. 256 KiB/s is a
            // few times the workload's rate: catch-up is paced across many reads.
            catchup_bytes_per_sec: [
                sluice_replication::limits::CATCHUP_BYTES_PER_SEC_DEFAULT,
                256 * 1024,
            ][rng.gen_range(0..2)],
        }
    }
}

/// Broker -> controller voters (the controller's real transport is not written yet; Raft
/// and replica traffic below go through the real frames).
#[derive(Clone, Debug)]
enum CtlMsg {
    Heartbeat {
        broker: i32,
        incarnation: u64,
    },
    AlterIsr(MetadataCommand),
    Shutdown {
        broker: i32,
        incarnation: u64,
    },
    /// An admin's ElectLeaders for the partition.
    ElectPreferred,
    /// An admin's AlterPartitionReassignments for the partition.
    Reassign(Vec<i32>),
}

#[derive(Debug)]
enum Payload {
    Replica(Vec<u8>),
    Raft(Vec<u8>),
    Ctl(CtlMsg),
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: i32,
        to: i32,
        payload: Payload,
    },
    IoDone {
        broker: i32,
        incarnation: u64,
    },
    Tick {
        broker: i32,
    },
    Bootstrap,
    Produce,
    Crash {
        broker: i32,
    },
    /// Every broker loses power at once (a correlated failure: one rack, one room).
    PowerLoss,
    Restart {
        broker: i32,
    },
    Cut {
        broker: i32,
    },
    Heal {
        broker: i32,
    },
    Consume,
    Check,
    /// A broker gets SIGTERM.
    Shutdown {
        broker: i32,
    },
    /// An admin asks for a preferred-leader election.
    ElectPreferred,
    /// An admin reassigns the partition (2 <-> 3 replicas).
    Reassign,
    /// After healing: reassign back to all three brokers until that is done.
    RestoreReplicas,
}

struct Scheduled {
    at: i64,
    seq: u64,
    event: Event,
}
impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Debug)]
enum IoOp {
    Persist(EpochCache),
    AppendReplica(Vec<u8>),
    Truncate(Offset),
    Reset(Offset),
    Read {
        follower: BrokerId,
        from: Offset,
        upto: Offset,
        max_bytes: usize,
    },
    LeaderAppend {
        records: Vec<u8>,
        request: u64,
        epoch: LeaderEpoch,
    },
    Sync,
}

struct Broker {
    id: i32,
    storage: SimStorage,
    up: bool,
    incarnation: u64,
    log: Option<PartitionLog<SimStorage>>,
    replica: Option<PartitionReplica>,
    /// This broker's controller voter (same disk, crashes with the broker).
    ctl: Option<ControllerNode<SimStorage>>,
    io: VecDeque<IoOp>,
    io_busy: bool,
    sync_queued: bool,
    /// When this incarnation asked for a controlled shutdown.
    shutting_down_since: Option<i64>,
    /// The metadata this broker applied removed it from the partition's replicas: its
    /// replica instance is stale; it is recreated from the log if the broker is added back
    /// (what a real broker does: stop the replica on removal, start one on addition).
    removed: bool,
    /// When the replica's high watermark was last checkpointed.
    hw_checkpoint_ms: i64,
}

/// Everything a run saw, for the invariants and the report.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub produced: u64,
    pub acked: u64,
    pub produce_errors: u64,
    pub crashes: u64,
    pub power_losses: u64,
    pub controlled_shutdowns: u64,
    /// Controlled shutdowns whose broker saw its leadership moved before exiting.
    pub clean_shutdowns: u64,
    pub preferred_elections_asked: u64,
    pub reassignments_asked: u64,
    /// Replicas started again on a broker added back to the partition.
    pub replicas_re_added: u64,
    /// Raft snapshots voters received from the active controller.
    pub snapshots_installed: u64,
    pub partitions: u64,
    pub elections: u64,
    pub truncations: u64,
    pub messages: u64,
    pub lost: u64,
    pub corrupted: u64,
    pub consumed_batches: u64,
    pub final_high_watermark: i64,
}

pub struct Sim {
    cfg: SimConfig,
    rng: SmallRng,
    now: i64,
    seq: u64,
    clock: ManualClock,
    queue: BinaryHeap<Scheduled>,
    brokers: Vec<Broker>,
    raft_leaders_by_term: BTreeMap<u64, i32>,
    cut: [bool; (BROKERS + 1) as usize],
    faults: bool,
    next_request: u64,
    /// request -> (batch crc) for produces in flight; acked: base offset -> crc.
    inflight: BTreeMap<u64, u32>,
    /// request -> base offset its batch got on the leader.
    placed: BTreeMap<u64, i64>,
    acked: BTreeMap<i64, u32>,
    /// What consumers read: base offset -> crc.
    consumed: BTreeMap<i64, u32>,
    consume_from: Offset,
    leaders_by_epoch: BTreeMap<i32, i32>,
    settings: ReplicaSettings,
    pub stats: Stats,
}

fn log_dir() -> PathBuf {
    PathBuf::from("/data/sim-0")
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Self {
        let clock = ManualClock::new(1_000_000);
        let settings = ReplicaSettings {
            replica_lag_time_max_ms: 400,
            min_insync_replicas: cfg.min_insync_replicas,
            keepalive_interval_ms: 50,
            retry_ms: 150,
            catchup_bytes_per_sec: cfg.catchup_bytes_per_sec,
        };
        let mut sim = Sim {
            rng: SmallRng::seed_from_u64(cfg.seed),
            cfg,
            now: 1_000_000,
            seq: 0,
            clock,
            queue: BinaryHeap::new(),
            brokers: Vec::new(),
            raft_leaders_by_term: BTreeMap::new(),
            cut: [false; (BROKERS + 1) as usize],
            faults: true,
            next_request: 1,
            inflight: BTreeMap::new(),
            placed: BTreeMap::new(),
            acked: BTreeMap::new(),
            consumed: BTreeMap::new(),
            consume_from: Offset(0),
            leaders_by_epoch: BTreeMap::new(),
            settings,
            stats: Stats::default(),
        };
        for id in 1..=BROKERS {
            sim.brokers.push(Broker {
                id,
                storage: SimStorage::new(),
                up: false,
                incarnation: 0,
                log: None,
                replica: None,
                ctl: None,
                io: VecDeque::new(),
                io_busy: false,
                sync_queued: false,
                shutting_down_since: None,
                removed: false,
                hw_checkpoint_ms: 0,
            });
        }
        // The cluster forms: brokers start and heartbeat (which registers them); then the
        // topic is created (RF 3) through the active controller.
        for id in 1..=BROKERS {
            sim.start_broker(id);
        }
        sim.schedule(BOOTSTRAP_MS, Event::Bootstrap);
        for id in 1..=BROKERS {
            sim.schedule(TICK_MS, Event::Tick { broker: id });
        }
        sim.schedule(1, Event::Produce);
        sim.schedule(50, Event::Consume);
        sim.schedule(100, Event::Check);
        if sim.cfg.crash_every_ms > 0 {
            let at = sim.rng.gen_range(0..sim.cfg.crash_every_ms);
            let b = sim.rng.gen_range(1..=BROKERS);
            sim.schedule(at, Event::Crash { broker: b });
        }
        if sim.cfg.shutdown_every_ms > 0 {
            let at = sim.rng.gen_range(0..sim.cfg.shutdown_every_ms);
            let b = sim.rng.gen_range(1..=BROKERS);
            sim.schedule(at, Event::Shutdown { broker: b });
        }
        if sim.cfg.reassign_every_ms > 0 {
            let at = sim.rng.gen_range(0..sim.cfg.reassign_every_ms);
            sim.schedule(at, Event::Reassign);
        }
        if sim.cfg.elect_every_ms > 0 {
            let at = sim.rng.gen_range(0..sim.cfg.elect_every_ms);
            sim.schedule(at, Event::ElectPreferred);
        }
        if sim.cfg.partition_every_ms > 0 {
            let at = sim.rng.gen_range(0..sim.cfg.partition_every_ms);
            let b = sim.rng.gen_range(1..=BROKERS);
            sim.schedule(at, Event::Cut { broker: b });
        }
        sim
    }

    fn schedule(&mut self, after_ms: i64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + after_ms,
            seq: self.seq,
            event,
        });
    }

    fn broker(&mut self, id: i32) -> &mut Broker {
        &mut self.brokers[(id - 1) as usize]
    }

    fn fail(&self, what: String) -> ! {
        let brokers: Vec<String> = self
            .brokers
            .iter()
            .map(|b| {
                let replica = b.replica.as_ref().map(|r| {
                    format!(
                        "{:?} epoch {} log end {} hw {}",
                        r.role(),
                        r.leader_epoch().0,
                        r.log_end(),
                        r.high_watermark()
                    )
                });
                let ctl = b.ctl.as_ref().map(|n| {
                    format!(
                        "voter leader={} applied {} partition {:?}",
                        n.is_leader(),
                        n.applied_index(),
                        n.state().partition(TOPIC, 0)
                    )
                });
                format!(
                    "broker {} up={} removed={} replica {replica:?} {ctl:?}",
                    b.id, b.up, b.removed
                )
            })
            .collect();
        panic!(
            "seed {} failed at t={} ms: {what}\nconfig {:?}\nstats {:?}\n{}",
            self.cfg.seed,
            self.now - 1_000_000,
            self.cfg,
            self.stats,
            brokers.join("\n")
        );
    }

    // ---- running -------------------------------------------------------------------------

    pub fn run(mut self) -> Stats {
        let fault_end = self.now + self.cfg.run_ms;
        let end = fault_end + self.cfg.settle_ms;
        while let Some(s) = self.queue.pop() {
            if s.at > end {
                break;
            }
            if self.faults && s.at >= fault_end {
                self.heal_everything();
            }
            self.now = s.at;
            self.clock.set_ms(self.now);
            self.handle(s.event);
        }
        self.final_checks();
        self.stats
    }

    fn heal_everything(&mut self) {
        self.faults = false;
        if self.cfg.reassign_every_ms > 0 {
            self.schedule(0, Event::RestoreReplicas);
        }
        self.cut = [false; (BROKERS + 1) as usize];
        for id in 1..=BROKERS {
            if !self.broker(id).up {
                self.restart_broker(id);
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { from, to, payload } => self.deliver(from, to, payload),
            Event::IoDone {
                broker,
                incarnation,
            } => {
                let b = self.broker(broker);
                if b.up && b.incarnation == incarnation {
                    self.finish_io(broker);
                }
            }
            Event::Tick { broker } => {
                self.schedule(TICK_MS, Event::Tick { broker });
                if !self.broker(broker).up {
                    return;
                }
                if (self.now / TICK_MS) % (HEARTBEAT_MS / TICK_MS) == 0 {
                    let incarnation = self.broker(broker).incarnation;
                    let shutting_down = self.broker(broker).shutting_down_since.is_some();
                    for to in 1..=BROKERS {
                        let msg = CtlMsg::Heartbeat {
                            broker,
                            incarnation,
                        };
                        self.send(broker, to, Payload::Ctl(msg));
                        if shutting_down {
                            // Resent until it takes effect (requests get lost too).
                            let msg = CtlMsg::Shutdown {
                                broker,
                                incarnation,
                            };
                            self.send(broker, to, Payload::Ctl(msg));
                        }
                    }
                }
                if self.shutdown_progress(broker) {
                    return;
                }
                let now = self.now;
                if let Some(n) = self.broker(broker).ctl.as_mut() {
                    n.tick(now);
                }
                self.ctl_after(broker);
                let now = self.now;
                if let Some(r) = self.broker(broker).replica.as_mut() {
                    r.tick(now);
                }
                // The driver checkpoints lazily (every few seconds); here more often, so
                // crashes find recent checkpoints. Written whole and synced (atomic replace)
                // at once: no random draw, so seeds replay as before.
                let b = self.broker(broker);
                if now - b.hw_checkpoint_ms >= HW_CHECKPOINT_MS {
                    b.hw_checkpoint_ms = now;
                    if let Some(r) = b.replica.as_ref() {
                        block_on(hw_checkpoint::persist(
                            &b.storage,
                            &log_dir(),
                            r.high_watermark(),
                        ))
                        .expect("checkpoint written");
                    }
                }
                self.drain_outputs(broker);
            }
            Event::Bootstrap => self.bootstrap(),
            Event::Produce => {
                if self.now - 1_000_000 < self.cfg.run_ms + self.cfg.settle_ms / 2 {
                    let every = self.cfg.produce_every_ms;
                    self.schedule(every, Event::Produce);
                }
                self.produce();
            }
            Event::Consume => {
                self.schedule(40, Event::Consume);
                self.consume();
            }
            Event::Check => {
                self.schedule(250, Event::Check);
                self.check_isr_logs_agree();
            }
            Event::Crash { broker } => {
                if !self.faults {
                    return;
                }
                let every = self.cfg.crash_every_ms;
                let next = self.rng.gen_range(every / 2..every * 3 / 2);
                let victim = self.rng.gen_range(1..=BROKERS);
                self.schedule(next, Event::Crash { broker: victim });
                if self.rng.gen_bool(0.1) {
                    self.schedule(0, Event::PowerLoss);
                } else if self.broker(broker).up && self.brokers.iter().filter(|b| b.up).count() > 1
                {
                    self.crash_broker(broker);
                    let down = self.rng.gen_range(50..(every / 2).max(100));
                    self.schedule(down, Event::Restart { broker });
                }
            }
            Event::PowerLoss => {
                self.stats.power_losses += 1;
                for id in 1..=BROKERS {
                    if self.broker(id).up {
                        self.crash_broker(id);
                        let down = self.rng.gen_range(50..500);
                        self.schedule(down, Event::Restart { broker: id });
                    }
                }
            }
            Event::Restart { broker } => {
                if !self.broker(broker).up {
                    self.restart_broker(broker);
                }
            }
            Event::Cut { broker } => {
                if !self.faults {
                    return;
                }
                let every = self.cfg.partition_every_ms;
                let next = self.rng.gen_range(every / 2..every * 3 / 2);
                let victim = self.rng.gen_range(1..=BROKERS);
                self.schedule(next, Event::Cut { broker: victim });
                if !self.cut.iter().any(|c| *c) {
                    self.cut[broker as usize] = true;
                    self.stats.partitions += 1;
                    let heal = self.rng.gen_range(100..(every / 2).max(200));
                    self.schedule(heal, Event::Heal { broker });
                }
            }
            Event::Heal { broker } => self.cut[broker as usize] = false,
            Event::Shutdown { broker } => {
                if !self.faults {
                    return;
                }
                let every = self.cfg.shutdown_every_ms;
                let next = self.rng.gen_range(every / 2..every * 3 / 2);
                let victim = self.rng.gen_range(1..=BROKERS);
                self.schedule(next, Event::Shutdown { broker: victim });
                let all_up = self.brokers.iter().all(|b| b.up);
                if all_up && self.brokers.iter().all(|b| b.shutting_down_since.is_none()) {
                    self.stats.controlled_shutdowns += 1;
                    let now = self.now;
                    self.broker(broker).shutting_down_since = Some(now);
                }
            }
            Event::Reassign => {
                if !self.faults {
                    return;
                }
                let every = self.cfg.reassign_every_ms;
                let next = self.rng.gen_range(every / 2..every * 3 / 2);
                self.schedule(next, Event::Reassign);
                let Some(p) = self.controller_view().and_then(|s| s.partition(TOPIC, 0)) else {
                    return;
                };
                if !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty() {
                    return;
                }
                let shrink = p.replicas.len() == BROKERS as usize;
                let mut target: Vec<i32> = (1..=BROKERS).collect();
                // Shuffle (Fisher-Yates on the sim's RNG).
                for i in (1..target.len()).rev() {
                    let j = self.rng.gen_range(0..=i);
                    target.swap(i, j);
                }
                if shrink {
                    target.truncate(2);
                }
                self.stats.reassignments_asked += 1;
                let via = self.rng.gen_range(1..=BROKERS);
                for to in 1..=BROKERS {
                    self.send(via, to, Payload::Ctl(CtlMsg::Reassign(target.clone())));
                }
            }
            Event::RestoreReplicas => {
                let Some(p) = self.controller_view().and_then(|s| s.partition(TOPIC, 0)) else {
                    self.schedule(200, Event::RestoreReplicas);
                    return;
                };
                let whole = p.replicas.len() == BROKERS as usize
                    && p.adding_replicas.is_empty()
                    && p.removing_replicas.is_empty();
                if whole {
                    // A reassignment sent before healing may still arrive (messages are
                    // delayed up to delay_ms_max): keep watching for a while.
                    if self.now - 1_000_000 < self.cfg.run_ms + 1_000 {
                        self.schedule(200, Event::RestoreReplicas);
                    }
                    return;
                }
                // Keep the current order, add whoever is missing (replaces an ongoing one).
                let mut target: Vec<i32> = p
                    .replicas
                    .iter()
                    .filter(|r| !p.removing_replicas.contains(r))
                    .map(|b| b.0)
                    .collect();
                for b in 1..=BROKERS {
                    if !target.contains(&b) {
                        target.push(b);
                    }
                }
                self.schedule(200, Event::RestoreReplicas);
                for to in 1..=BROKERS {
                    self.send(1, to, Payload::Ctl(CtlMsg::Reassign(target.clone())));
                }
            }
            Event::ElectPreferred => {
                if !self.faults {
                    return;
                }
                let every = self.cfg.elect_every_ms;
                let next = self.rng.gen_range(every / 2..every * 3 / 2);
                self.schedule(next, Event::ElectPreferred);
                self.stats.preferred_elections_asked += 1;
                // The admin client sends it to some broker, which forwards it to the
                // controller: model it as a message to every voter (only the active one acts).
                let via = self.rng.gen_range(1..=BROKERS);
                for to in 1..=BROKERS {
                    self.send(via, to, Payload::Ctl(CtlMsg::ElectPreferred));
                }
            }
        }
    }

    fn send(&mut self, from: i32, to: i32, payload: Payload) {
        self.stats.messages += 1;
        if self.faults {
            if self.cut[from as usize] || self.cut[to as usize] {
                self.stats.lost += 1;
                return;
            }
            if self.rng.gen_bool(self.cfg.loss) {
                self.stats.lost += 1;
                return;
            }
        }
        let payload = match payload {
            Payload::Replica(mut bytes) if self.faults && self.rng.gen_bool(self.cfg.corrupt) => {
                let i = self.rng.gen_range(0..bytes.len());
                bytes[i] ^= 1 << self.rng.gen_range(0..8);
                self.stats.corrupted += 1;
                Payload::Replica(bytes)
            }
            p => p,
        };
        let delay = self.rng.gen_range(0..=self.cfg.delay_ms_max);
        self.schedule(delay, Event::Deliver { from, to, payload });
    }

    fn deliver(&mut self, from: i32, to: i32, payload: Payload) {
        if self.faults && (self.cut[from as usize] || self.cut[to as usize]) {
            self.stats.lost += 1;
            return;
        }
        match payload {
            Payload::Ctl(msg) => self.broker_receive_ctl(to, msg),
            Payload::Raft(frame) => {
                if let Some(n) = self.broker(to).ctl.as_mut() {
                    // A damaged frame is refused by its checksum: dropped like a lost one.
                    let _ = n.step(&frame);
                }
                self.ctl_after(to);
            }
            Payload::Replica(bytes) => {
                if !self.broker(to).up {
                    return;
                }
                // Validate before use: a damaged frame is dropped like a lost one.
                let Ok(msg) = ReplicaMessage::decode(&bytes) else {
                    return;
                };
                let now = self.now;
                if let Some(r) = self.broker(to).replica.as_mut() {
                    r.on_message(msg, now);
                }
                self.drain_outputs(to);
            }
        }
    }

    // ---- controller ----------------------------------------------------------------------

    /// Lets broker `id`'s voter persist and apply what is ready, sends its Raft messages,
    /// and hands the partition's metadata to the local replica once this incarnation's
    /// registration is applied (before it, the replayed log describes the previous process).
    fn ctl_after(&mut self, id: i32) {
        let idx = (id - 1) as usize;
        let incarnation = self.brokers[idx].incarnation;
        let Some(node) = self.brokers[idx].ctl.as_mut() else {
            return;
        };
        block_on(node.process_ready()).expect("controller persists its log");
        let outbox = node.take_outbox();
        let _ = node.take_changes();
        let leader_term = node.is_leader().then(|| node.term());
        let registered = node
            .state()
            .brokers
            .get(&BrokerId(id))
            .is_some_and(|b| b.incarnation == incarnation);
        let part = node.state().partition(TOPIC, 0).map(|p| p.leader_and_isr());
        for (to, frame) in outbox {
            self.send(id, to.0, Payload::Raft(frame));
        }
        if let Some(term) = leader_term {
            match self.raft_leaders_by_term.get(&term) {
                Some(other) if *other != id => self.fail(format!(
                    "two controller leaders in term {term}: broker {other} and broker {id}"
                )),
                _ => {
                    self.raft_leaders_by_term.insert(term, id);
                }
            }
        }
        if let (true, Some(state)) = (registered, part) {
            if !state.replicas.contains(&BrokerId(id)) {
                self.brokers[idx].removed = true;
            } else if self.brokers[idx].removed && !self.recreate_replica(id) {
                // Its I/O is still draining: the next round recreates it.
                return;
            }
            self.feed_metadata(id, state);
        }
    }

    /// Until the topic exists, the active controller creates it once all three brokers are
    /// registered and unfenced.
    fn bootstrap(&mut self) {
        if self
            .controller_view()
            .is_some_and(|s| s.topics.contains_key(TOPIC))
        {
            return;
        }
        self.schedule(BOOTSTRAP_MS, Event::Bootstrap);
        for idx in 0..self.brokers.len() {
            let Some(node) = self.brokers[idx].ctl.as_mut() else {
                continue;
            };
            if !node.is_leader() {
                continue;
            }
            let live = node.state().brokers.values().filter(|b| !b.fenced).count();
            if live < BROKERS as usize {
                continue;
            }
            let assignments =
                assign_replicas(&node.state().brokers, 1, 3, 0).expect("three live brokers");
            let _ = node.propose(&MetadataCommand::CreateTopic {
                name: TOPIC.into(),
                topic_id: 1,
                assignments,
                configs: vec![],
            });
            self.ctl_after(idx as i32 + 1);
        }
    }

    /// The metadata of the up voter that has applied the most (the active controller's,
    /// when it is up to date).
    fn controller_view(&self) -> Option<&MetadataState> {
        self.brokers
            .iter()
            .filter_map(|b| b.ctl.as_ref())
            .max_by_key(|n| (n.is_leader(), n.applied_index()))
            .map(|n| n.state())
    }

    /// The partition leader a client finds: the up broker whose replica leads the highest
    /// epoch (clients follow NOT_LEADER_OR_FOLLOWER until they reach it).
    fn current_leader(&self) -> Option<i32> {
        self.brokers
            .iter()
            .filter(|b| b.up)
            .filter_map(|b| {
                let r = b.replica.as_ref()?;
                r.is_active_leader().then(|| (r.leader_epoch(), b.id))
            })
            .max()
            .map(|(_, id)| id)
    }

    // ---- brokers -------------------------------------------------------------------------

    fn start_broker(&mut self, id: i32) {
        let clock = Rc::new(self.clock.clone());
        let settings = self.settings;
        let b = self.broker(id);
        b.incarnation += 1;
        b.up = true;
        b.io.clear();
        b.io_busy = false;
        b.sync_queued = false;
        let log = block_on(PartitionLog::open(
            b.storage.clone(),
            log_dir(),
            TopicPartition::new(TOPIC, 0),
            LogConfig {
                segment_bytes: 1 << 20,
                ..LogConfig::default()
            },
            Durability::None,
            clock,
        ))
        .expect("log recovers after a crash");
        let cache = block_on(EpochCache::load(&b.storage, &log_dir())).expect("epoch cache loads");
        let mut replica = PartitionReplica::new(
            BrokerId(id),
            TOPIC,
            0,
            settings,
            cache,
            log.log_start_offset(),
            log.log_end_offset(),
        );
        // As the driver does: start from the checkpointed high watermark.
        if let Some(hw) =
            block_on(hw_checkpoint::load(&b.storage, &log_dir())).expect("checkpoint loads")
        {
            replica.restore_high_watermark(hw);
        }
        let ctl = block_on(ControllerNode::open(
            b.storage.clone(),
            PathBuf::from("/controller"),
            ControllerConfig {
                id: BrokerId(id),
                voters: (1..=BROKERS).map(BrokerId).collect(),
                election_ticks: 15,
                heartbeat_ticks: 3,
                session_timeout_ms: SESSION_TIMEOUT_MS,
                // raft-rs draws election timeouts from the thread RNG otherwise: the seed
                // would not replay.
                election_jitter: ElectionJitter::FixedPerVoter,
            },
            Rc::new(self.clock.clone()),
        ))
        .expect("controller log recovers after a crash");
        let mut ctl = ctl;
        ctl.set_leader_rebalance(
            (self.cfg.rebalance_interval_ms > 0).then_some(LeaderRebalance {
                interval_ms: self.cfg.rebalance_interval_ms,
                imbalance_percentage: 10,
            }),
        );
        if self.cfg.snapshot_interval_entries > 0 {
            ctl.set_snapshot_policy(SnapshotPolicy {
                interval_entries: self.cfg.snapshot_interval_entries,
                keep_entries: self.cfg.snapshot_interval_entries / 4,
            });
        }
        let b = self.broker(id);
        b.log = Some(log);
        b.replica = Some(replica);
        b.ctl = Some(ctl);
        b.shutting_down_since = None;
        b.removed = false;
        self.drain_outputs(id);
        self.ctl_after(id);
    }

    fn crash_broker(&mut self, id: i32) {
        self.stats.crashes += 1;
        if let Some(n) = self.broker(id).ctl.as_ref() {
            self.stats.snapshots_installed += n.snapshots_installed();
        }
        let seed = self.rng.gen();
        let mode = if self.rng.gen_bool(0.5) {
            CrashMode::TearTail
        } else {
            CrashMode::DropUnsynced
        };
        let b = self.broker(id);
        b.up = false;
        b.shutting_down_since = None;
        b.log = None;
        b.replica = None;
        b.ctl = None;
        b.io.clear();
        b.io_busy = false;
        b.storage.crash(seed, mode);
    }

    /// A broker in controlled shutdown exits once its own voter has applied the shutdown
    /// (it leads nothing), or when it gives up waiting; it restarts later. Returns whether
    /// it exited.
    fn shutdown_progress(&mut self, id: i32) -> bool {
        let now = self.now;
        let b = self.broker(id);
        let Some(since) = b.shutting_down_since else {
            return false;
        };
        let incarnation = b.incarnation;
        let done = b.ctl.as_ref().is_some_and(|n| {
            n.state()
                .controlled_shutdown_complete(BrokerId(id), incarnation)
        });
        if !done && now - since < SHUTDOWN_WAIT_MS_MAX {
            return false;
        }
        if done {
            self.stats.clean_shutdowns += 1;
            // What it applied says it leads nothing: the partition's leadership (if any) is
            // elsewhere, in a later epoch than any it led.
            let view = self.brokers[(id - 1) as usize]
                .ctl
                .as_ref()
                .unwrap()
                .state();
            if let Some(p) = view.partition(TOPIC, 0) {
                if p.leader == Some(BrokerId(id)) {
                    self.fail(format!("broker {id} exits after shutdown while leading"));
                }
            }
        }
        // Exiting loses what it had not synced, like any stop without a flush.
        self.crash_broker(id);
        self.stats.crashes -= 1;
        let down = self.rng.gen_range(100..600);
        self.schedule(down, Event::Restart { broker: id });
        true
    }

    /// Starts a fresh replica over the broker's log once its I/O has drained (a stale
    /// replica's completions must not reach the new one). Returns whether it did.
    fn recreate_replica(&mut self, id: i32) -> bool {
        let settings = self.settings;
        let b = self.broker(id);
        if !b.up || b.io_busy || !b.io.is_empty() {
            return false;
        }
        let log = b.log.as_ref().expect("an up broker has its log");
        // Everything written becomes durable first: the new replica counts its whole log
        // as durable, as after a restart.
        block_on(log.flush_all()).expect("flush");
        let cache = block_on(EpochCache::load(&b.storage, &log_dir())).expect("epoch cache loads");
        let replica = PartitionReplica::new(
            BrokerId(id),
            TOPIC,
            0,
            settings,
            cache,
            log.log_start_offset(),
            log.log_end_offset(),
        );
        b.replica = Some(replica);
        b.removed = false;
        b.sync_queued = false;
        self.stats.replicas_re_added += 1;
        true
    }

    fn restart_broker(&mut self, id: i32) {
        self.start_broker(id);
    }

    fn broker_receive_ctl(&mut self, to: i32, msg: CtlMsg) {
        let now = self.now;
        let Some(node) = self.broker(to).ctl.as_mut() else {
            return;
        };
        match msg {
            CtlMsg::Heartbeat {
                broker,
                incarnation,
            } => node.on_heartbeat(
                BrokerId(broker),
                incarnation,
                None,
                &Default::default(),
                now,
            ),
            CtlMsg::AlterIsr(cmd) => {
                if node.is_leader() {
                    let _ = node.propose(&cmd);
                }
            }
            CtlMsg::Shutdown {
                broker,
                incarnation,
            } => {
                let _ = node.on_shutdown_request(BrokerId(broker), incarnation);
            }
            CtlMsg::Reassign(target) => {
                if node.is_leader() {
                    let _ = node.propose(&MetadataCommand::AlterPartitionReassignment {
                        topic: TOPIC.into(),
                        partition: 0,
                        target: Some(target),
                    });
                }
            }
            CtlMsg::ElectPreferred => {
                if node.is_leader() {
                    let _ = node.propose(&MetadataCommand::ElectLeaders {
                        partitions: vec![(TOPIC.into(), 0)],
                        preferred: true,
                    });
                }
            }
        }
        self.ctl_after(to);
    }

    fn feed_metadata(&mut self, to: i32, state: LeaderAndIsr) {
        let now = self.now;
        let Some(r) = self.broker(to).replica.as_mut() else {
            return;
        };
        let before = (r.role(), r.leader_epoch());
        r.on_metadata(&state, now);
        let after = (r.role(), r.leader_epoch());
        if after.0 == RoleKind::Leader && before != after {
            self.stats.elections += 1;
            let epoch = after.1 .0;
            match self.leaders_by_epoch.get(&epoch) {
                Some(other) if *other != to => self.fail(format!(
                    "two leaders in epoch {epoch}: broker {other} and broker {to}"
                )),
                _ => {
                    self.leaders_by_epoch.insert(epoch, to);
                }
            }
        }
        self.drain_outputs(to);
    }

    fn drain_outputs(&mut self, id: i32) {
        let outputs = match self.broker(id).replica.as_mut() {
            Some(r) => r.take_outputs(),
            None => return,
        };
        for out in outputs {
            match out {
                Output::Send { to, msg } => {
                    self.send(id, to.0, Payload::Replica(msg.encode()));
                }
                Output::PersistEpochCache(c) => self.broker(id).io.push_back(IoOp::Persist(c)),
                Output::AppendLocal { records } => {
                    self.broker(id).io.push_back(IoOp::AppendReplica(records))
                }
                Output::TruncateLocal { to } => {
                    self.stats.truncations += 1;
                    self.broker(id).io.push_back(IoOp::Truncate(to))
                }
                Output::ResetLocal { start } => {
                    self.stats.truncations += 1;
                    self.broker(id).io.push_back(IoOp::Reset(start))
                }
                Output::ReadForFollower {
                    follower,
                    from,
                    upto,
                    max_bytes,
                } => self.broker(id).io.push_back(IoOp::Read {
                    follower,
                    from,
                    upto,
                    max_bytes,
                }),
                Output::AlterIsr {
                    leader_epoch,
                    partition_epoch,
                    isr,
                } => {
                    let cmd = MetadataCommand::AlterIsr {
                        topic: TOPIC.into(),
                        partition: 0,
                        leader_epoch: leader_epoch.0,
                        partition_epoch: partition_epoch.0,
                        isr: isr.iter().map(|b| b.0).collect(),
                    };
                    for to in 1..=BROKERS {
                        self.send(id, to, Payload::Ctl(CtlMsg::AlterIsr(cmd.clone())));
                    }
                }
                Output::ProduceDone { request, result } => self.produce_done(request, result),
            }
        }
        self.start_io(id);
    }

    fn start_io(&mut self, id: i32) {
        let delay = self.rng.gen_range(0..4);
        let b = self.broker(id);
        if b.io_busy || b.io.is_empty() || !b.up {
            return;
        }
        b.io_busy = true;
        let incarnation = b.incarnation;
        self.schedule(
            delay,
            Event::IoDone {
                broker: id,
                incarnation,
            },
        );
    }

    /// Executes the broker's next local I/O operation (it "completes" now).
    fn finish_io(&mut self, id: i32) {
        let now = self.now;
        let idx = (id - 1) as usize;
        self.brokers[idx].io_busy = false;
        let Some(op) = self.brokers[idx].io.pop_front() else {
            return;
        };
        let mut need_sync = false;
        let mut done: Option<(u64, Result<(), ProduceError>)> = None;
        let mut placed: Option<(u64, i64)> = None;
        let mut failure: Option<String> = None;
        {
            let b = &mut self.brokers[idx];
            let log = b.log.as_ref().expect("an up broker has its log");
            let replica = b.replica.as_mut().expect("an up broker has its replica");
            match op {
                IoOp::Persist(cache) => {
                    block_on(cache.persist(&b.storage, &log_dir())).expect("persist epoch cache");
                }
                IoOp::AppendReplica(records) => match block_on(log.append_replicated(&records)) {
                    Ok(_) => need_sync = true,
                    Err(_) => replica.on_local_failure(log.log_end_offset(), now),
                },
                IoOp::Truncate(to) => {
                    let hw = replica.high_watermark();
                    let end = block_on(log.truncate_to(to)).expect("truncate");
                    if end < hw {
                        failure = Some(format!(
                            "broker {id} truncated to {end} below its high watermark {hw} (committed data cut)"
                        ));
                    }
                    replica.on_truncated(end, now);
                }
                IoOp::Reset(start) => {
                    let got = block_on(log.truncate_fully_and_start_at(start)).expect("reset");
                    replica.on_reset(got, now);
                }
                IoOp::Read {
                    follower,
                    from,
                    upto,
                    max_bytes,
                } => {
                    let bytes = block_on(log.read_upto(from, max_bytes, upto))
                        .map(|r| r.bytes)
                        .unwrap_or_default();
                    replica.on_read_for_follower(follower, from, &bytes, now);
                }
                IoOp::LeaderAppend {
                    records,
                    request,
                    epoch,
                } => {
                    if !replica.is_active_leader() || replica.leader_epoch() != epoch {
                        done = Some((request, Err(ProduceError::NotLeader)));
                    } else {
                        let info = block_on(log.append(
                            &records,
                            AppendOptions {
                                leader_epoch: epoch,
                                batch_bytes_max: BATCH_BYTES_MAX,
                            },
                        ))
                        .expect("leader append");
                        let end = info.last_offset.next();
                        // The stamped batch (offset and epoch set) is what followers get.
                        let stamped = block_on(log.read_upto(info.base_offset, 1 << 20, end))
                            .expect("read back the stamped batch")
                            .bytes;
                        placed = Some((request, info.base_offset.0));
                        replica.on_leader_appended(info.base_offset, end, &stamped, now);
                        replica.await_high_watermark(request, end);
                        need_sync = true;
                    }
                }
                IoOp::Sync => {
                    b.sync_queued = false;
                    block_on(log.flush_all()).expect("flush");
                    replica.on_local_durable(log.durable_offset(), now);
                }
            }
        }
        if let Some(msg) = failure {
            self.fail(msg);
        }
        if let Some((request, base)) = placed {
            self.placed.insert(request, base);
        }
        if let Some((request, result)) = done {
            self.produce_done(request, result);
        }
        if need_sync && !self.broker(id).sync_queued {
            self.broker(id).sync_queued = true;
            self.broker(id).io.push_back(IoOp::Sync);
        }
        self.drain_outputs(id);
    }

    // ---- clients -------------------------------------------------------------------------

    fn produce(&mut self) {
        let Some(leader) = self.current_leader().map(BrokerId) else {
            return;
        };
        let request = self.next_request;
        self.next_request += 1;
        self.stats.produced += 1;
        let value = request.to_be_bytes();
        let records = build::batch_with(&[&value, &value[..4]], self.now);
        let crc = BatchView::parse(&records).unwrap().stored_crc();
        self.inflight.insert(request, crc);
        let unreachable = self.faults && self.cut[leader.0 as usize];
        let b = &mut self.brokers[(leader.0 - 1) as usize];
        if !b.up || unreachable {
            self.inflight.remove(&request);
            self.stats.produce_errors += 1;
            return;
        }
        let Some(r) = b.replica.as_ref() else {
            return;
        };
        match r.epoch_for_append(true) {
            Ok(epoch) => {
                b.io.push_back(IoOp::LeaderAppend {
                    records,
                    request,
                    epoch,
                });
            }
            Err(_) => {
                self.inflight.remove(&request);
                self.stats.produce_errors += 1;
            }
        }
        self.start_io(leader.0);
    }

    fn produce_done(&mut self, request: u64, result: Result<(), ProduceError>) {
        let crc = self.inflight.remove(&request);
        let placed = self.placed.remove(&request);
        match (result, crc, placed) {
            (Ok(()), Some(crc), Some(base)) => {
                self.stats.acked += 1;
                if let Some(old) = self.acked.insert(base, crc) {
                    self.fail(format!(
                        "offset {base} acknowledged twice (crc {old:#x} then {crc:#x})"
                    ));
                }
            }
            _ => self.stats.produce_errors += 1,
        }
    }

    /// A consumer reads from the current leader below its high watermark; everything it
    /// reads must stay in the log at that offset forever.
    fn consume(&mut self) {
        let Some(leader) = self.current_leader().map(BrokerId) else {
            return;
        };
        let b = &self.brokers[(leader.0 - 1) as usize];
        let (Some(log), Some(r)) = (b.log.as_ref(), b.replica.as_ref()) else {
            return;
        };
        if !r.is_active_leader() {
            return;
        }
        let hw = r.high_watermark();
        let from = self.consume_from.max(log.log_start_offset());
        if from >= hw {
            return;
        }
        let Ok(res) = block_on(log.read_upto(from, 64 * 1024, hw)) else {
            return;
        };
        let mut seen = Vec::new();
        for view in batches(&res.bytes) {
            let v = BatchView::parse_checked(view.unwrap().bytes()).unwrap();
            if v.last_offset() >= hw {
                self.fail(format!(
                    "consumer read batch ending at {} above the high watermark {hw}",
                    v.last_offset()
                ));
            }
            seen.push((v.base_offset().0, v.stored_crc(), v.last_offset().next()));
        }
        for (base, crc, next) in seen {
            self.stats.consumed_batches += 1;
            if let Some(old) = self.consumed.insert(base, crc) {
                if old != crc {
                    self.fail(format!("consumer saw offset {base} change content"));
                }
            }
            self.consume_from = next;
        }
    }

    // ---- invariants ----------------------------------------------------------------------

    fn read_all(log: &PartitionLog<SimStorage>, upto: Offset) -> Vec<(i64, u32)> {
        let mut out = Vec::new();
        let mut from = log.log_start_offset();
        while from < upto {
            let Ok(r) = block_on(log.read_upto(from, 1 << 20, upto)) else {
                break;
            };
            if r.bytes.is_empty() {
                break;
            }
            for v in batches(&r.bytes) {
                let v = v.unwrap();
                out.push((v.base_offset().0, v.stored_crc()));
                from = v.last_offset().next();
            }
        }
        out
    }

    /// Every up broker in the active leader's ISR holds the leader's batches below the high
    /// watermark, identically; everything acknowledged and everything consumed below it is
    /// in the leader's log at its offset.
    fn check_isr_logs_agree(&mut self) {
        let Some(leader) = self.current_leader().map(BrokerId) else {
            return;
        };
        let lb = &self.brokers[(leader.0 - 1) as usize];
        let (Some(log), Some(r)) = (lb.log.as_ref(), lb.replica.as_ref()) else {
            return;
        };
        if !r.is_active_leader() {
            return;
        }
        let hw = r.high_watermark();
        let isr = r.isr().to_vec();
        let leader_batches = Self::read_all(log, hw);
        let by_offset: BTreeMap<i64, u32> = leader_batches.iter().copied().collect();
        for (off, crc) in self.acked.range(..hw.0) {
            if by_offset.get(off) != Some(crc) {
                self.fail(format!(
                    "acknowledged batch at offset {off} missing from leader {leader}'s log below hw {hw}"
                ));
            }
        }
        for (off, crc) in self.consumed.range(..hw.0) {
            if by_offset.get(off) != Some(crc) {
                self.fail(format!(
                    "consumed batch at offset {off} changed on leader {leader}"
                ));
            }
        }
        for m in isr {
            if m == leader {
                continue;
            }
            let mb = &self.brokers[(m.0 - 1) as usize];
            let Some(mlog) = mb.log.as_ref() else {
                continue;
            };
            // A member's durable prefix below the hw must equal the leader's.
            let theirs = Self::read_all(mlog, hw);
            if theirs.len() < leader_batches.len() {
                // An ISR member is only required to hold it durably once the leader's hw
                // counted it; it may not have reopened yet after a restart.
                if mlog.log_end_offset() < hw
                    && mb.replica.as_ref().is_some_and(|x| x.isr().contains(&m))
                {
                    continue;
                }
            }
            for (a, b) in leader_batches.iter().zip(theirs.iter()) {
                if a != b {
                    self.fail(format!(
                        "ISR member {m} disagrees with leader {leader} below hw {hw}: {a:?} vs {b:?}"
                    ));
                }
            }
        }
    }

    fn final_checks(&mut self) {
        for b in &self.brokers {
            if let Some(n) = b.ctl.as_ref() {
                self.stats.snapshots_installed += n.snapshots_installed();
            }
        }
        let Some(p) = self
            .controller_view()
            .and_then(|s| s.partition(TOPIC, 0))
            .cloned()
        else {
            self.fail("topic vanished".into());
        };
        let Some(leader) = p.leader else {
            self.fail("no leader after healing".into());
        };
        let lb = &self.brokers[(leader.0 - 1) as usize];
        let r = lb.replica.as_ref().unwrap();
        let log = lb.log.as_ref().unwrap();
        if !r.is_active_leader() {
            self.fail(format!(
                "broker {leader} is not an active leader after healing"
            ));
        }
        let hw = r.high_watermark();
        self.stats.final_high_watermark = hw.0;
        let leader_batches = Self::read_all(log, hw);
        let by_offset: BTreeMap<i64, u32> = leader_batches.iter().copied().collect();
        for (off, crc) in &self.acked {
            if by_offset.get(off) != Some(crc) {
                self.fail(format!(
                    "acknowledged batch at offset {off} lost (leader {leader}, hw {hw})"
                ));
            }
        }
        for (off, crc) in &self.consumed {
            if by_offset.get(off) != Some(crc) {
                self.fail(format!("consumed batch at offset {off} lost or changed"));
            }
        }
        if !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty() {
            self.fail(format!("reassignment still ongoing after settling: {p:?}"));
        }
        if p.isr.len() != BROKERS as usize {
            self.fail(format!("ISR {:?} not whole after healing", p.isr));
        }
        if hw != log.log_end_offset() {
            self.fail(format!(
                "hw {hw} behind leader log end {} after settling",
                log.log_end_offset()
            ));
        }
        for b in &self.brokers {
            let theirs = Self::read_all(b.log.as_ref().unwrap(), hw);
            if theirs != leader_batches {
                self.fail(format!(
                    "broker {} log differs from leader {leader} below hw {hw} after settling",
                    b.id
                ));
            }
        }
    }
}
