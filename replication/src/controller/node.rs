//! One controller voter: drives raft-rs's `RawNode` (a runtime-free state machine), persists
//! its log through [`RaftLog`], applies committed commands to the [`MetadataState`], and -
//! while it is the Raft leader, i.e. the active controller - tracks broker heartbeats and
//! proposes fencing, unfencing and registrations.
//!
//! Driven by the caller like the partition replicas: `step` (messages in), `tick`
//! (time), `propose`, then `process_ready` (persist, apply) and `take_outbox` (messages
//! out). Owned by the shard that runs the controller; this broker's view of the quorum.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, Message, MessageType, Snapshot,
};
use raft::{Config, RawNode, SnapshotStatus, StateRole};
use sluice_engine::clock::Clock;
use sluice_engine::io::Storage;

use crate::controller::image::{self, ImageError};
use crate::controller::raft_log::{RaftLog, RaftLogError};
use crate::controller::state::{BrokerEndpoint, MetadataCommand, MetadataState, PartitionChange};
use crate::controller::store::ControllerStore;
use crate::ids::BrokerId;
use crate::limits::{
    CONTROLLER_VOTERS_MAX, RAFT_ENTRY_BYTES_MAX, REASSIGNMENT_CANDIDATES_MAX as CANDIDATES_MAX,
    REBALANCE_PARTITIONS_PER_COMMAND_MAX, SNAPSHOT_INTERVAL_ENTRIES, SNAPSHOT_KEEP_ENTRIES,
};
use crate::wire::{self, FrameError, FrameKind};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    /// This voter's broker id (> 0).
    pub id: BrokerId,
    /// The quorum, from the broker config (static: 1, 3 or 5 voters).
    pub voters: Vec<BrokerId>,
    /// Raft ticks without a leader's heartbeat before an election; one tick per call to
    /// `tick`.
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    /// A broker without a heartbeat for this long is fenced.
    pub session_timeout_ms: i64,
    pub election_jitter: ElectionJitter,
}

/// How a voter's election timeout varies (Raft spreads them so votes rarely split).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionJitter {
    /// raft-rs's own: a fresh random timeout in [election_ticks, 2 x election_ticks) after
    /// every reset, drawn from the thread RNG.
    Random,
    /// A fixed timeout per voter, election_ticks + (id mod election_ticks): spread without
    /// a hidden RNG, so a seeded simulation replays exactly.
    FixedPerVoter,
}

/// Kafka's auto.leader.rebalance: every `interval_ms` the active controller proposes a
/// preferred-leader election for the partitions of every broker whose share of partitions
/// led by someone else, while it is live and in sync, exceeds `imbalance_percentage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderRebalance {
    /// leader.imbalance.check.interval.seconds, in milliseconds (Kafka: 300 s).
    pub interval_ms: i64,
    /// leader.imbalance.per.broker.percentage (Kafka: 10).
    pub imbalance_percentage: u32,
}

impl Default for LeaderRebalance {
    fn default() -> Self {
        LeaderRebalance {
            interval_ms: 300_000,
            imbalance_percentage: 10,
        }
    }
}

/// When a voter snapshots its metadata state and compacts its Raft log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Applied entries since the last snapshot that trigger the next one.
    pub interval_entries: u64,
    /// Entries kept behind the snapshot, so a voter lagging by fewer catches up from the
    /// log; one lagging by more receives the snapshot.
    pub keep_entries: u64,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            interval_entries: SNAPSHOT_INTERVAL_ENTRIES,
            keep_entries: SNAPSHOT_KEEP_ENTRIES,
        }
    }
}

/// How often the active controller rescans every partition for reassignments it can
/// complete (it also checks each partition whose ISR changes, as it applies the change).
const REASSIGNMENT_SCAN_INTERVAL_MS: i64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Log(#[from] RaftLogError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("bad controller config: {0}")]
    Config(String),
    #[error("not the active controller (leader is {leader:?})")]
    NotLeader { leader: Option<BrokerId> },
    #[error("command of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("metadata snapshot: {0}")]
    Snapshot(#[from] ImageError),
}

pub struct ControllerNode<S: Storage> {
    cfg: ControllerConfig,
    raw: RawNode<ControllerStore>,
    log: RaftLog<S>,
    state: MetadataState,
    /// Active-controller state (in memory only, rebuilt on every leadership change).
    last_heartbeat: BTreeMap<i32, i64>,
    was_leader: bool,
    changes: Vec<PartitionChange>,
    outbox: Vec<(BrokerId, Vec<u8>)>,
    applied: u64,
    /// None: auto.leader.rebalance.enable=false.
    rebalance: Option<LeaderRebalance>,
    last_rebalance_ms: i64,
    last_reassignment_scan_ms: i64,
    /// Partitions whose ISR changed under an ongoing reassignment, to check for completion.
    reassignment_candidates: Vec<(String, i32)>,
    /// Completions proposed and not yet applied: partition -> partition epoch proposed at.
    completions_proposed: BTreeMap<(String, i32), i32>,
    snapshot_policy: SnapshotPolicy,
    /// Applied index at which the next snapshot is taken.
    snapshot_due: u64,
    /// Learner additions proposed (broker -> when), active controller only.
    learner_proposed: BTreeMap<i32, i64>,
    /// Snapshots received from a leader since open (for tests and metrics).
    snapshots_installed: u64,
}

fn raft_id(b: BrokerId) -> u64 {
    b.0 as u64
}

/// How long the active controller waits before proposing a learner again.
const LEARNER_RETRY_MS: i64 = 2_000;

impl<S: Storage> ControllerNode<S>
where
    S::File: Clone,
{
    /// Opens (or creates) this voter's log under `dir` and replays it. Every committed
    /// command is applied again on the first `process_ready`, so the metadata state is
    /// rebuilt from the log alone.
    pub async fn open(
        storage: S,
        dir: PathBuf,
        cfg: ControllerConfig,
        clock: Rc<dyn Clock>,
    ) -> Result<Self, ControllerError> {
        // A broker not among the voters is a plain member: a Raft learner the active
        // controller adds when it first hears from it; it applies the log, never votes.
        if cfg.voters.is_empty() || cfg.voters.len() > CONTROLLER_VOTERS_MAX || cfg.id.0 <= 0 {
            return Err(ControllerError::Config(format!("{cfg:?}")));
        }
        storage
            .create_dir_all(&dir)
            .await
            .map_err(|source| RaftLogError::Io {
                path: dir.clone(),
                source,
            })?;
        let log = RaftLog::open(storage, dir, clock).await?;
        let (entries, mut hs) = log.load().await?;
        let voters: Vec<u64> = cfg.voters.iter().map(|b| raft_id(*b)).collect();
        let mut store = ControllerStore::new(ConfState::from((voters, vec![])), log.first_index());
        // The metadata state restarts from the snapshot; the log tail after it is applied
        // again on the first `process_ready`.
        let (state, applied) = match log.snapshot() {
            Some(snap) => {
                let state = image::decode(&snap.data)?;
                let index = snap.get_metadata().index;
                // A snapshot holds only committed entries.
                hs.commit = hs.commit.max(index);
                store.set_snapshot(snap.clone());
                (state, index)
            }
            None => (MetadataState::new(), 0),
        };
        store.append(&entries)?;
        store.set_hard_state(hs);
        let (min_election_tick, max_election_tick) = match cfg.election_jitter {
            ElectionJitter::Random => (0, 0),
            ElectionJitter::FixedPerVoter => {
                let t = cfg.election_ticks + (cfg.id.0 as usize % cfg.election_ticks.max(1));
                (t, t + 1)
            }
        };
        let config = Config {
            id: raft_id(cfg.id),
            election_tick: cfg.election_ticks,
            min_election_tick,
            max_election_tick,
            heartbeat_tick: cfg.heartbeat_ticks,
            max_size_per_msg: RAFT_ENTRY_BYTES_MAX as u64,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            applied,
            ..Default::default()
        };
        config.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&config, store, &logger)?;
        let snapshot_policy = SnapshotPolicy::default();
        Ok(ControllerNode {
            cfg,
            raw,
            log,
            state,
            last_heartbeat: BTreeMap::new(),
            was_leader: false,
            changes: Vec::new(),
            outbox: Vec::new(),
            applied,
            snapshot_policy,
            snapshot_due: applied + snapshot_policy.interval_entries,
            snapshots_installed: 0,
            learner_proposed: BTreeMap::new(),
            rebalance: Some(LeaderRebalance::default()),
            last_rebalance_ms: 0,
            last_reassignment_scan_ms: 0,
            reassignment_candidates: Vec::new(),
            completions_proposed: BTreeMap::new(),
        })
    }

    pub fn state(&self) -> &MetadataState {
        &self.state
    }
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }
    pub fn leader(&self) -> Option<BrokerId> {
        let l = self.raw.raft.leader_id;
        (l != raft::INVALID_ID).then_some(BrokerId(l as i32))
    }
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }
    /// Index of the last command applied to the state.
    pub fn applied_index(&self) -> u64 {
        self.applied
    }
    /// Partition leader/ISR changes applied since the last call (for this broker's
    /// replicas).
    pub fn take_changes(&mut self) -> Vec<PartitionChange> {
        std::mem::take(&mut self.changes)
    }
    /// Sets auto.leader.rebalance (on by default with Kafka's defaults; None turns it off).
    pub fn set_leader_rebalance(&mut self, rebalance: Option<LeaderRebalance>) {
        self.rebalance = rebalance;
    }
    /// Sets when this voter snapshots and compacts (defaults from the limits module).
    pub fn set_snapshot_policy(&mut self, policy: SnapshotPolicy) {
        self.snapshot_policy = policy;
        self.snapshot_due = self.raw.store().snapshot_index() + policy.interval_entries.max(1);
    }
    /// Index of the latest snapshot (0: none yet).
    pub fn snapshot_index(&self) -> u64 {
        self.raw.store().snapshot_index()
    }
    /// Snapshots received from a leader (and installed) since this voter opened.
    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed
    }
    /// Index of the first entry the Raft log still holds.
    pub fn first_log_index(&self) -> u64 {
        self.raw.store().first()
    }
    /// Framed Raft messages to send to other voters.
    pub fn take_outbox(&mut self) -> Vec<(BrokerId, Vec<u8>)> {
        std::mem::take(&mut self.outbox)
    }

    /// A framed Raft message from another voter.
    pub fn step(&mut self, frame: &[u8]) -> Result<(), ControllerError> {
        let payload = wire::decode_raw(FrameKind::Raft, frame)?;
        let msg =
            Message::parse_from_bytes(payload).map_err(|e| FrameError::Invalid(e.to_string()))?;
        let member = self.cfg.voters.iter().any(|v| raft_id(*v) == msg.from)
            || self.raw.raft.prs().conf().learners().contains(&msg.from);
        if !member {
            return Err(
                FrameError::Invalid(format!("message from non-member {}", msg.from)).into(),
            );
        }
        self.raw.step(msg)?;
        Ok(())
    }

    /// Proposes a command; it takes effect when committed and applied.
    pub fn propose(&mut self, cmd: &MetadataCommand) -> Result<(), ControllerError> {
        if !self.is_leader() {
            return Err(ControllerError::NotLeader {
                leader: self.leader(),
            });
        }
        let data = cmd.encode();
        if data.len() > RAFT_ENTRY_BYTES_MAX {
            return Err(ControllerError::TooLarge(data.len()));
        }
        self.raw.propose(Vec::new(), data)?;
        Ok(())
    }

    /// Proposes a command from any voter: a follower forwards it to the Raft leader
    /// (raft-rs's proposal forwarding). Fire and forget: the caller watches the applied
    /// state for its effect (a proposal can be dropped by a leader change).
    pub fn propose_via_leader(&mut self, cmd: &MetadataCommand) -> Result<(), ControllerError> {
        if self.leader().is_none() {
            return Err(ControllerError::NotLeader { leader: None });
        }
        let data = cmd.encode();
        if data.len() > RAFT_ENTRY_BYTES_MAX {
            return Err(ControllerError::TooLarge(data.len()));
        }
        self.raw.propose(Vec::new(), data)?;
        Ok(())
    }

    /// A broker's controlled shutdown request (on SIGTERM), proposed by the active
    /// controller. The broker polls [`MetadataState::controlled_shutdown_complete`] on the
    /// metadata it applies and exits once it is true (it keeps heartbeating meanwhile).
    pub fn on_shutdown_request(
        &mut self,
        broker: BrokerId,
        incarnation: u64,
    ) -> Result<(), ControllerError> {
        let done = self.state.controlled_shutdown_complete(broker, incarnation);
        if done {
            return Ok(());
        }
        self.propose(&MetadataCommand::ShutdownBroker {
            broker: broker.0,
            incarnation,
        })
    }

    /// One Raft tick; as active controller also fences brokers whose session expired,
    /// rebalances leadership to preferred replicas every rebalance interval and completes
    /// reassignments whose new replicas caught up.
    pub fn tick(&mut self, now_ms: i64) {
        self.raw.tick();
        let leader = self.is_leader();
        if leader && !self.was_leader {
            // A new active controller keeps the heartbeats it saw as a voter (brokers send
            // them to every voter, so a dead broker is fenced one session after its last
            // heartbeat, not one session after the election) and gives a full session to
            // brokers it never heard from.
            let known = std::mem::take(&mut self.last_heartbeat);
            self.last_heartbeat = self
                .state
                .brokers
                .keys()
                .map(|b| (b.0, known.get(&b.0).copied().unwrap_or(now_ms)))
                .collect();
            // ... and waits a full interval before moving leaders (brokers may still be
            // returning).
            self.last_rebalance_ms = now_ms;
            self.last_reassignment_scan_ms = i64::MIN;
            self.completions_proposed.clear();
        }
        self.was_leader = leader;
        if !leader {
            return;
        }
        self.rebalance_leaders(now_ms);
        if now_ms.saturating_sub(self.last_reassignment_scan_ms) >= REASSIGNMENT_SCAN_INTERVAL_MS {
            self.last_reassignment_scan_ms = now_ms;
            let ongoing: Vec<(String, i32)> = self
                .state
                .reassignments()
                .into_iter()
                .map(|r| (r.topic, r.partition))
                .collect();
            self.completions_proposed
                .retain(|k, _| ongoing.iter().any(|o| o == k));
            self.reassignment_candidates.extend(ongoing);
        }
        self.propose_completions();
        let expired: Vec<i32> = self
            .state
            .brokers
            .iter()
            .filter(|(b, info)| {
                !info.fenced
                    && self
                        .last_heartbeat
                        .get(&b.0)
                        .is_none_or(|t| now_ms - t > self.cfg.session_timeout_ms)
            })
            .map(|(b, _)| b.0)
            .collect();
        for broker in expired {
            // Proposed once per session timeout until it is applied.
            self.last_heartbeat.insert(broker, now_ms);
            let _ = self.propose(&MetadataCommand::FenceBroker { broker });
        }
    }

    /// A broker's heartbeat (carrying its process incarnation). Only the active controller
    /// acts: it registers new incarnations and unfences returning brokers.
    pub fn on_heartbeat(
        &mut self,
        broker: BrokerId,
        incarnation: u64,
        rack: Option<String>,
        endpoint: &BrokerEndpoint,
        now_ms: i64,
    ) {
        if self.last_heartbeat.len() < crate::limits::BROKERS_MAX
            || self.last_heartbeat.contains_key(&broker.0)
        {
            self.last_heartbeat.insert(broker.0, now_ms);
        }
        if !self.is_leader() {
            return;
        }
        self.maybe_add_learner(broker, now_ms);
        match self.state.brokers.get(&broker) {
            Some(info) if info.incarnation == incarnation && info.endpoint == *endpoint => {
                // A broker in controlled shutdown stays fenced until it restarts.
                if info.fenced && !info.shutting_down {
                    let _ = self.propose(&MetadataCommand::UnfenceBroker { broker: broker.0 });
                }
            }
            _ => {
                let _ = self.propose(&MetadataCommand::RegisterBroker {
                    broker: broker.0,
                    incarnation,
                    rack,
                    endpoint: endpoint.clone(),
                });
            }
        }
    }

    /// A heartbeat from a broker that is neither a voter nor a learner yet: propose adding
    /// it as a Raft learner (one configuration change at a time; retried every
    /// [`LEARNER_RETRY_MS`] until applied).
    fn maybe_add_learner(&mut self, broker: BrokerId, now_ms: i64) {
        let id = raft_id(broker);
        if broker.0 <= 0
            || self.cfg.voters.contains(&broker)
            || self.raw.raft.prs().conf().learners().contains(&id)
            || self.raw.raft.prs().conf().learners().len() >= crate::limits::BROKERS_MAX
        {
            return;
        }
        if self
            .learner_proposed
            .get(&broker.0)
            .is_some_and(|t| now_ms - t < LEARNER_RETRY_MS)
        {
            return;
        }
        self.learner_proposed.insert(broker.0, now_ms);
        let mut cc = ConfChange::default();
        cc.set_change_type(ConfChangeType::AddLearnerNode);
        cc.node_id = id;
        if let Err(e) = self.raw.propose_conf_change(Vec::new(), cc) {
            tracing::debug!(broker = broker.0, error = %e, "adding a learner deferred");
        }
    }

    /// Learners (plain members) in the applied configuration.
    pub fn learners(&self) -> Vec<BrokerId> {
        self.raw
            .raft
            .prs()
            .conf()
            .learners()
            .iter()
            .map(|l| BrokerId(*l as i32))
            .collect()
    }

    fn rebalance_leaders(&mut self, now_ms: i64) {
        let Some(policy) = self.rebalance else {
            return;
        };
        if now_ms - self.last_rebalance_ms < policy.interval_ms {
            return;
        }
        self.last_rebalance_ms = now_ms;
        let mut partitions = self
            .state
            .imbalanced_partitions(policy.imbalance_percentage);
        // One bounded command per interval; the rest follow at the next check.
        partitions.truncate(REBALANCE_PARTITIONS_PER_COMMAND_MAX);
        if !partitions.is_empty() {
            let _ = self.propose(&MetadataCommand::ElectLeaders {
                partitions,
                preferred: true,
            });
        }
    }

    /// Proposes completion of each candidate reassignment that can complete, once per
    /// partition epoch.
    fn propose_completions(&mut self) {
        if !self.is_leader() {
            self.reassignment_candidates.clear();
            return;
        }
        let candidates = std::mem::take(&mut self.reassignment_candidates);
        for (topic, partition) in candidates {
            if !self.state.reassignment_completable(&topic, partition) {
                continue;
            }
            let Some(epoch) = self
                .state
                .partition(&topic, partition)
                .map(|p| p.partition_epoch.0)
            else {
                continue;
            };
            let key = (topic, partition);
            if self.completions_proposed.get(&key) == Some(&epoch) {
                continue;
            }
            let cmd = MetadataCommand::CompleteReassignment {
                topic: key.0.clone(),
                partition,
                partition_epoch: epoch,
            };
            if self.propose(&cmd).is_ok() {
                self.completions_proposed.insert(key, epoch);
            }
        }
    }

    /// Handles everything raft-rs has ready: sends what may go before persistence, applies
    /// committed entries, persists new entries and the hard state (durably), then sends
    /// what had to wait for it. Call after any `step`, `tick` or `propose`.
    pub async fn process_ready(&mut self) -> Result<(), ControllerError> {
        self.propose_completions();
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        let mut snapshots_sent = self.queue_messages(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snap = ready.snapshot().clone();
            self.install_snapshot(snap).await?;
        }
        self.apply(ready.take_committed_entries());
        if !ready.entries().is_empty() {
            self.log.append(ready.entries()).await?;
            self.raw.mut_store().append(ready.entries())?;
        }
        if let Some(hs) = ready.hs() {
            self.log.save_hard_state(hs).await?;
            self.raw.mut_store().set_hard_state(hs.clone());
        }
        snapshots_sent.extend(self.queue_messages(ready.take_persisted_messages()));
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            let mut hs = self.raw.store().hard_state().clone();
            hs.commit = commit;
            self.log.save_hard_state(&hs).await?;
            self.raw.mut_store().set_hard_state(hs);
        }
        snapshots_sent.extend(self.queue_messages(light.take_messages()));
        self.apply(light.take_committed_entries());
        self.raw.advance_apply();
        // The transport does not report delivery. Reporting the snapshot as finished at once
        // moves the follower back to probing: if the snapshot was lost, the probe is refused
        // and raft-rs sends the snapshot again.
        for to in snapshots_sent {
            self.raw.report_snapshot(to, SnapshotStatus::Finish);
        }
        self.maybe_snapshot().await?;
        Ok(())
    }

    /// A snapshot from the leader replaces the log and the metadata state.
    async fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), ControllerError> {
        let state = image::decode(&snap.data)?;
        self.log.install_snapshot(&snap).await?;
        let index = snap.get_metadata().index;
        self.raw.mut_store().install_snapshot(snap);
        self.snapshots_installed += 1;
        self.state = state;
        self.applied = index;
        self.snapshot_due = index + self.snapshot_policy.interval_entries.max(1);
        // Every partition may have changed.
        for (name, t) in &self.state.topics {
            for (p, part) in t.partitions.iter().enumerate() {
                self.changes.push(PartitionChange {
                    topic: name.clone(),
                    partition: p as i32,
                    state: part.leader_and_isr(),
                });
            }
        }
        self.reassignment_candidates.clear();
        Ok(())
    }

    /// Snapshots the state at the applied index and compacts the log behind it, once
    /// `interval_entries` were applied since the last snapshot.
    async fn maybe_snapshot(&mut self) -> Result<(), ControllerError> {
        if self.applied < self.snapshot_due {
            return Ok(());
        }
        let interval = self.snapshot_policy.interval_entries.max(1);
        let data = match image::encode(&self.state) {
            Ok(d) => d,
            Err(err) => {
                // The log keeps growing (to RAFT_LOG_ENTRIES_MAX) rather than the
                // controller stopping; retried after another interval.
                tracing::error!(error = %err, "metadata snapshot skipped");
                self.snapshot_due = self.applied + interval;
                return Ok(());
            }
        };
        let index = self.applied;
        let term = self.raw.raft.raft_log.term(index)?;
        let mut snap = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(ConfState::from((
            self.cfg
                .voters
                .iter()
                .map(|b| raft_id(*b))
                .collect::<Vec<_>>(),
            self.raw
                .raft
                .prs()
                .conf()
                .learners()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
        )));
        let compact_through = index.saturating_sub(self.snapshot_policy.keep_entries);
        self.log.save_snapshot(&snap, compact_through).await?;
        let store = self.raw.mut_store();
        store.set_snapshot(snap);
        store.compact(compact_through);
        self.snapshot_due = index + interval;
        Ok(())
    }

    /// Frames `msgs` into the outbox; returns the voters a snapshot goes to.
    fn queue_messages(&mut self, msgs: Vec<Message>) -> Vec<u64> {
        let mut snapshots = Vec::new();
        for m in msgs {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                snapshots.push(m.to);
            }
            let bytes = m
                .write_to_bytes()
                .expect("encoding a protobuf message into a Vec cannot fail");
            self.outbox.push((
                BrokerId(m.to as i32),
                wire::encode_raw(FrameKind::Raft, &bytes),
            ));
        }
        snapshots
    }

    /// A committed configuration change (adding a learner): raft-rs applies it; the
    /// store keeps the new configuration for snapshots. Voters are static: any other change
    /// is ignored (never proposed by Sluice).
    fn apply_conf_change(&mut self, e: &Entry) {
        let cc = match ConfChange::parse_from_bytes(&e.data) {
            Ok(cc) => cc,
            Err(err) => {
                tracing::error!(index = e.index, error = %err, "undecodable configuration change skipped");
                return;
            }
        };
        if cc.get_change_type() != ConfChangeType::AddLearnerNode
            || self.cfg.voters.iter().any(|v| raft_id(*v) == cc.node_id)
        {
            return;
        }
        match self.raw.apply_conf_change(&cc) {
            Ok(cs) => {
                tracing::info!(
                    learner = cc.node_id,
                    "controller: plain member added as a learner"
                );
                self.raw.mut_store().set_conf_state(cs);
            }
            Err(err) => tracing::debug!(error = %err, "configuration change not applied"),
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        for e in entries {
            self.applied = e.index;
            if e.get_entry_type() == EntryType::EntryConfChange {
                self.apply_conf_change(&e);
                continue;
            }
            if e.get_entry_type() != EntryType::EntryNormal || e.data.is_empty() {
                continue;
            }
            match MetadataCommand::decode(&e.data) {
                // A refused command is refused identically on every voter: a no-op.
                Ok(cmd) => {
                    if let Ok(changes) = self.state.apply(&cmd) {
                        for c in &changes {
                            let ongoing = self
                                .state
                                .partition(&c.topic, c.partition)
                                .is_some_and(|p| !p.adding_replicas.is_empty());
                            if ongoing && self.reassignment_candidates.len() < CANDIDATES_MAX {
                                self.reassignment_candidates
                                    .push((c.topic.clone(), c.partition));
                            }
                        }
                        self.changes.extend(changes);
                    }
                }
                Err(err) => {
                    tracing::error!(index = e.index, error = %err, "undecodable metadata entry skipped")
                }
            }
        }
    }
}
