//! The per-partition replication state machine (leader and follower roles).

use std::collections::{BTreeMap, VecDeque};

use sluice_engine::batch::{batches, BatchView};
use sluice_engine::{LeaderEpoch, Offset};

use crate::ids::{BrokerId, PartitionEpoch};
use crate::limits::{
    APPEND_BYTES_MAX, CATCHUP_BURST_MS, CATCHUP_BYTES_PER_SEC_DEFAULT, FOLLOWER_INFLIGHT_BYTES_MAX,
    FOLLOWER_INFLIGHT_MESSAGES_MAX, HW_WAITERS_MAX, REPLICAS_MAX,
};
use crate::partition::epoch_cache::EpochCache;
use crate::partition::message::{AckStatus, ReplicaBody, ReplicaMessage};

/// Per-partition replication settings (Kafka's names in the comments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// replica.lag.time.max.ms: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: i64,
    /// min.insync.replicas: acks=all needs at least this many in-sync replicas.
    pub min_insync_replicas: usize,
    /// A leader sends a keepalive (carrying the high watermark) this often when idle.
    pub keepalive_interval_ms: i64,
    /// Unanswered requests (epoch queries, resumes, in-flight appends, ISR proposals) are
    /// retried after this long.
    pub retry_ms: i64,
    /// Bytes per second this partition's leader reads from its log for followers outside
    /// the ISR (catch-up of a new, restarted or far-behind replica), so catch-up does not
    /// take the disk from live traffic (Kafka's leader.replication.throttled.rate, per
    /// leader partition here). Live pushes and reads for in-sync followers are never
    /// throttled. 0: unthrottled.
    pub catchup_bytes_per_sec: u64,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        ReplicaSettings {
            replica_lag_time_max_ms: 30_000,
            min_insync_replicas: 1,
            keepalive_interval_ms: 500,
            retry_ms: 1_000,
            catchup_bytes_per_sec: CATCHUP_BYTES_PER_SEC_DEFAULT,
        }
    }
}

/// A partition's leader and ISR as the controller committed them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderAndIsr {
    pub leader: Option<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    pub isr: Vec<BrokerId>,
    pub replicas: Vec<BrokerId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    #[error("not the leader (or fenced)")]
    NotLeader,
    #[error("fewer in-sync replicas than min.insync.replicas")]
    NotEnoughReplicas,
    #[error("appended, but the ISR shrank below min.insync.replicas before it was committed")]
    NotEnoughReplicasAfterAppend,
    #[error("too many acks=all requests waiting")]
    TooManyWaiters,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Send {
        to: BrokerId,
        msg: ReplicaMessage,
    },
    /// Persist this epoch cache (durably) before executing the next output.
    PersistEpochCache(EpochCache),
    /// Follower: `PartitionLog::append_replicated(records)`, then report
    /// [`PartitionReplica::on_local_durable`] (or `on_local_failure`).
    AppendLocal {
        records: Vec<u8>,
    },
    /// Follower: `PartitionLog::truncate_to(to)`, then report `on_truncated(new_end)`.
    TruncateLocal {
        to: Offset,
    },
    /// Follower whose whole log lies below the leader's log start:
    /// `PartitionLog::truncate_fully_and_start_at(start)`, then report `on_reset(start)`.
    ResetLocal {
        start: Offset,
    },
    /// Leader: `PartitionLog::read_upto(from, max_bytes, upto)` for a follower that is
    /// behind, then report `on_read_for_follower`.
    ReadForFollower {
        follower: BrokerId,
        from: Offset,
        upto: Offset,
        max_bytes: usize,
    },
    /// Leader: ask the controller to commit this ISR.
    AlterIsr {
        leader_epoch: LeaderEpoch,
        partition_epoch: PartitionEpoch,
        isr: Vec<BrokerId>,
    },
    /// An acks=all produce request is answered.
    ProduceDone {
        request: u64,
        result: Result<(), ProduceError>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleKind {
    Offline,
    Leader,
    Follower,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowerPhase {
    /// Waiting for the leader's answer about where `epoch` ends.
    Querying { epoch: LeaderEpoch, sent_ms: i64 },
    /// A truncation is being executed.
    Truncating,
    /// Resumed: the leader streams to us.
    Streaming { resumed_ms: i64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FeedMode {
    /// The follower has not told us where its log ends in this epoch.
    AwaitResume,
    Push,
}

/// The leader's view of one follower.
#[derive(Debug)]
struct Progress {
    mode: FeedMode,
    /// Next offset to send.
    sent_end: Offset,
    /// What the follower reported durable / written.
    acked_durable: Offset,
    acked_log_end: Offset,
    last_caught_up_ms: i64,
    /// (end offset, bytes, sent at) of Appends not yet covered by a durable ack.
    inflight: VecDeque<(Offset, usize, i64)>,
    inflight_bytes: usize,
    read_outstanding: bool,
    last_send_ms: i64,
}

#[derive(Debug)]
struct LeaderState {
    followers: BTreeMap<BrokerId, Progress>,
    /// An ISR proposal the controller has not committed yet, and when it was sent.
    pending_isr: Option<(Vec<BrokerId>, i64)>,
    /// acks=all requests: (offset the HW must pass, request id), ends non-decreasing.
    waiters: VecDeque<(Offset, u64)>,
    /// A follower told us a newer epoch exists: stop acknowledging.
    fenced: bool,
    epoch_start: Offset,
    /// Catch-up read budget (token bucket, bytes; negative: a read overran it) and when it
    /// was last refilled.
    catchup_tokens: i64,
    catchup_refilled_ms: i64,
}

#[derive(Debug)]
struct FollowerState {
    leader: BrokerId,
    phase: FollowerPhase,
    last_heard_ms: i64,
    /// (end offset, echo leader log end, echo sent ms) of appends waiting to be durable.
    unacked: VecDeque<(Offset, i64, i64)>,
}

#[derive(Debug)]
enum Role {
    Offline,
    Leader(LeaderState),
    Follower(FollowerState),
}

/// One replica of one partition on this broker: leader or follower per the controller's
/// latest leader epoch. Owned by the partition's owning shard; this broker's view.
///
/// Offsets: `high_watermark <= durable_end <= log_end` on a leader; a follower's high
/// watermark is the leader's, capped at its own log end.
#[derive(Debug)]
pub struct PartitionReplica {
    me: BrokerId,
    topic: String,
    partition: i32,
    settings: ReplicaSettings,
    cache: EpochCache,
    log_start: Offset,
    /// End of what the local log holds or is appending (follower), or what the leader's
    /// appends completed.
    log_end: Offset,
    durable_end: Offset,
    high_watermark: Offset,
    leader_epoch: LeaderEpoch,
    partition_epoch: PartitionEpoch,
    isr: Vec<BrokerId>,
    replicas: Vec<BrokerId>,
    role: Role,
    out: Vec<Output>,
}

impl PartitionReplica {
    /// A replica over a recovered log `[log_start, log_end)` (all durable after recovery)
    /// and its loaded epoch cache. Starts offline until the first metadata.
    pub fn new(
        me: BrokerId,
        topic: impl Into<String>,
        partition: i32,
        settings: ReplicaSettings,
        mut cache: EpochCache,
        log_start: Offset,
        log_end: Offset,
    ) -> Self {
        let mut out = Vec::new();
        // A crash can leave the cache ahead of the recovered log (it is persisted before
        // the batches of a new epoch): forget epochs that start past the log's end.
        if cache.truncate_from_end(log_end.next()) {
            out.push(Output::PersistEpochCache(cache.clone()));
        }
        PartitionReplica {
            me,
            topic: topic.into(),
            partition,
            settings,
            cache,
            log_start,
            log_end,
            durable_end: log_end,
            high_watermark: log_start,
            leader_epoch: LeaderEpoch(-1),
            partition_epoch: PartitionEpoch(-1),
            isr: Vec::new(),
            replicas: Vec::new(),
            role: Role::Offline,
            out,
        }
    }

    /// Before the first metadata: start the high watermark at a checkpointed one (see
    /// `hw_checkpoint`), capped at the recovered log (a crash may have cut below it) and
    /// never below the log start. Without it a restarted leader's consumers would see
    /// nothing until every in-sync follower acked again.
    pub fn restore_high_watermark(&mut self, checkpoint: Offset) {
        if !matches!(self.role, Role::Offline) || self.leader_epoch != LeaderEpoch(-1) {
            return;
        }
        let hw = checkpoint.min(self.durable_end).max(self.log_start);
        self.high_watermark = self.high_watermark.max(hw);
        self.check();
    }

    /// New settings (a topic config change: min.insync.replicas, ...); they apply from the
    /// next request and tick on.
    pub fn set_settings(&mut self, settings: ReplicaSettings) {
        self.settings = settings;
    }

    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }
    pub fn log_end(&self) -> Offset {
        self.log_end
    }
    pub fn durable_end(&self) -> Offset {
        self.durable_end
    }
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }
    pub fn isr(&self) -> &[BrokerId] {
        &self.isr
    }
    pub fn epoch_cache(&self) -> &EpochCache {
        &self.cache
    }
    pub fn role(&self) -> RoleKind {
        match self.role {
            Role::Offline => RoleKind::Offline,
            Role::Leader(_) => RoleKind::Leader,
            Role::Follower(_) => RoleKind::Follower,
        }
    }
    pub fn follower_phase(&self) -> Option<FollowerPhase> {
        match &self.role {
            Role::Follower(f) => Some(f.phase),
            _ => None,
        }
    }
    /// Leader, not fenced: may take appends.
    pub fn is_active_leader(&self) -> bool {
        matches!(&self.role, Role::Leader(l) if !l.fenced)
    }

    fn send(&mut self, to: BrokerId, body: ReplicaBody) {
        self.out.push(Output::Send {
            to,
            msg: ReplicaMessage {
                from: self.me.0,
                topic: self.topic.clone(),
                partition: self.partition,
                body,
            },
        });
    }

    fn check(&self) {
        assert!(
            self.durable_end <= self.log_end,
            "{}-{}: durable {} past log end {}",
            self.topic,
            self.partition,
            self.durable_end,
            self.log_end
        );
        if let Role::Leader(_) = self.role {
            assert!(
                self.high_watermark <= self.durable_end,
                "{}-{}: leader high watermark {} past its durable end {}",
                self.topic,
                self.partition,
                self.high_watermark,
                self.durable_end
            );
        }
    }

    // ---- metadata ------------------------------------------------------------------------

    /// The controller's latest leader and ISR for this partition.
    pub fn on_metadata(&mut self, state: &LeaderAndIsr, now_ms: i64) {
        assert!(
            state.replicas.len() <= REPLICAS_MAX,
            "controller bounds the replica set"
        );
        if state.leader_epoch < self.leader_epoch
            || (state.leader_epoch == self.leader_epoch
                && state.partition_epoch <= self.partition_epoch)
        {
            return;
        }
        let new_epoch = state.leader_epoch > self.leader_epoch;
        self.partition_epoch = state.partition_epoch;
        let old_isr = std::mem::replace(&mut self.isr, state.isr.clone());
        self.replicas = state.replicas.clone();
        if !new_epoch {
            if let Role::Leader(l) = &mut self.role {
                l.pending_isr = None;
                for r in &state.replicas {
                    if *r != self.me {
                        l.followers
                            .entry(*r)
                            .or_insert_with(|| Progress::new(now_ms));
                    }
                }
                l.followers.retain(|b, _| state.replicas.contains(b));
                // A follower the controller took out of the ISR (it lagged, or its broker
                // was fenced) must resume before it may be proposed again: its last acks
                // could make a dead broker look caught up, and a proposed expansion counts
                // in the maximal ISR - the high watermark would wait for it until
                // replica.lag.time.max.ms ran out.
                for b in old_isr.iter().filter(|b| !state.isr.contains(b)) {
                    if let Some(p) = l.followers.get_mut(b) {
                        *p = Progress::new(now_ms);
                    }
                }
                self.advance_high_watermark();
            }
            return;
        }
        self.leader_epoch = state.leader_epoch;
        self.fail_waiters(ProduceError::NotLeader);
        match state.leader {
            Some(l) if l == self.me => self.become_leader(now_ms),
            Some(l) if state.replicas.contains(&self.me) => self.become_follower(l, now_ms),
            _ => self.role = Role::Offline,
        }
    }

    fn become_leader(&mut self, now_ms: i64) {
        if self.cache.assign(self.leader_epoch, self.log_end) {
            self.out.push(Output::PersistEpochCache(self.cache.clone()));
        }
        let followers = self
            .replicas
            .iter()
            .filter(|r| **r != self.me)
            .map(|r| (*r, Progress::new(now_ms)))
            .collect();
        self.role = Role::Leader(LeaderState {
            followers,
            pending_isr: None,
            waiters: VecDeque::new(),
            fenced: false,
            epoch_start: self.log_end,
            catchup_tokens: catchup_burst(self.settings.catchup_bytes_per_sec),
            catchup_refilled_ms: now_ms,
        });
        // The leader's own durable end may already cover records the old ISR all held.
        self.advance_high_watermark();
    }

    fn become_follower(&mut self, leader: BrokerId, now_ms: i64) {
        self.role = Role::Follower(FollowerState {
            leader,
            phase: FollowerPhase::Truncating,
            last_heard_ms: now_ms,
            unacked: VecDeque::new(),
        });
        match self.cache.latest() {
            Some((epoch, _)) => self.query_epoch_end(epoch, now_ms),
            // No epoch information: only what is known committed can be kept (Kafka's
            // fallback); an empty log has nothing to cut.
            None if self.log_end > self.log_start => {
                let to = self.high_watermark;
                self.out.push(Output::TruncateLocal { to });
            }
            None => self.resume(now_ms),
        }
    }

    fn fail_waiters(&mut self, error: ProduceError) {
        if let Role::Leader(l) = &mut self.role {
            for (_, request) in l.waiters.drain(..) {
                self.out.push(Output::ProduceDone {
                    request,
                    result: Err(error),
                });
            }
        }
    }

    // ---- leader: produce path ------------------------------------------------------------

    /// Whether an append may go ahead now, and with which epoch to stamp it.
    pub fn epoch_for_append(&self, acks_all: bool) -> Result<LeaderEpoch, ProduceError> {
        if !self.is_active_leader() {
            return Err(ProduceError::NotLeader);
        }
        if acks_all && self.isr.len() < self.settings.min_insync_replicas {
            return Err(ProduceError::NotEnoughReplicas);
        }
        Ok(self.leader_epoch)
    }

    /// The leader's local append of `[base, end)` completed (the batches are readable);
    /// streams them to followers that are caught up.
    pub fn on_leader_appended(&mut self, base: Offset, end: Offset, records: &[u8], now_ms: i64) {
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        assert_eq!(
            base, self.log_end,
            "leader appends complete in offset order"
        );
        assert!(end > base, "an append holds at least one record");
        self.log_end = end;
        let hw = self.high_watermark;
        let mut sends = Vec::new();
        let mut behind = Vec::new();
        for (id, p) in l.followers.iter_mut() {
            if p.mode != FeedMode::Push {
                continue;
            }
            if p.sent_end == base && !p.read_outstanding && p.has_room(records.len()) {
                p.sent(end, records.len(), now_ms);
                sends.push(*id);
            } else if p.sent_end < end {
                behind.push(*id);
            }
        }
        for to in sends {
            self.send(
                to,
                ReplicaBody::Append {
                    leader_epoch: self.leader_epoch.0,
                    base_offset: base.0,
                    records: records.to_vec(),
                    leader_high_watermark: hw.0,
                    leader_log_end: end.0,
                    sent_ms: now_ms,
                },
            );
        }
        for f in behind {
            self.feed_from_disk(f, now_ms);
        }
    }

    /// Registers an acks=all request that is answered when the high watermark reaches `end`.
    pub fn await_high_watermark(&mut self, request: u64, end: Offset) {
        let min_isr = self.settings.min_insync_replicas;
        let hw = self.high_watermark;
        let isr_len = self.isr.len();
        let Role::Leader(l) = &mut self.role else {
            self.out.push(Output::ProduceDone {
                request,
                result: Err(ProduceError::NotLeader),
            });
            return;
        };
        if end <= hw {
            let result = if isr_len >= min_isr {
                Ok(())
            } else {
                Err(ProduceError::NotEnoughReplicasAfterAppend)
            };
            self.out.push(Output::ProduceDone { request, result });
            return;
        }
        if l.waiters.len() >= HW_WAITERS_MAX {
            self.out.push(Output::ProduceDone {
                request,
                result: Err(ProduceError::TooManyWaiters),
            });
            return;
        }
        let end = l.waiters.back().map_or(end, |(e, _)| (*e).max(end));
        l.waiters.push_back((end, request));
    }

    /// The local log is durable up to `end` (leader or follower).
    pub fn on_local_durable(&mut self, end: Offset, now_ms: i64) {
        let end = end.min(self.log_end);
        if end <= self.durable_end {
            return;
        }
        self.durable_end = end;
        match &mut self.role {
            Role::Leader(_) => self.advance_high_watermark(),
            Role::Follower(f) => {
                let leader = f.leader;
                let mut echo = None;
                while f.unacked.front().is_some_and(|(e, _, _)| *e <= end) {
                    echo = f.unacked.pop_front().map(|(_, l, s)| (l, s));
                }
                if let Some((echo_log_end, echo_sent)) = echo {
                    self.ack(leader, AckStatus::Ok, echo_log_end, echo_sent);
                }
                let _ = now_ms;
            }
            Role::Offline => {}
        }
        self.check();
    }

    fn ack(&mut self, leader: BrokerId, status: AckStatus, echo_log_end: i64, echo_sent_ms: i64) {
        self.send(
            leader,
            ReplicaBody::AppendAck {
                leader_epoch: self.leader_epoch.0,
                status,
                durable_end: self.durable_end.0,
                log_end: self.log_end.0,
                echo_leader_log_end: echo_log_end,
                echo_sent_ms,
            },
        );
    }

    /// Maximal ISR (KIP-497): the committed ISR plus a proposed expansion, so the high
    /// watermark never counts on fewer replicas than the controller might elect from.
    fn maximal_isr(&self) -> Vec<BrokerId> {
        let mut isr = self.isr.clone();
        if let Role::Leader(LeaderState {
            pending_isr: Some((p, _)),
            ..
        }) = &self.role
        {
            for b in p {
                if !isr.contains(b) {
                    isr.push(*b);
                }
            }
        }
        isr
    }

    fn advance_high_watermark(&mut self) {
        let isr = self.maximal_isr();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.fenced {
            return;
        }
        let mut hw = self.durable_end;
        for b in isr.iter().filter(|b| **b != self.me) {
            let acked = l
                .followers
                .get(b)
                .map_or(Offset(i64::MIN), |p| p.acked_durable);
            hw = hw.min(acked);
        }
        if hw > self.high_watermark {
            self.high_watermark = hw;
        }
        let ok = self.isr.len() >= self.settings.min_insync_replicas;
        while l
            .waiters
            .front()
            .is_some_and(|(e, _)| *e <= self.high_watermark)
        {
            if let Some((_, request)) = l.waiters.pop_front() {
                self.out.push(Output::ProduceDone {
                    request,
                    result: if ok {
                        Ok(())
                    } else {
                        Err(ProduceError::NotEnoughReplicasAfterAppend)
                    },
                });
            }
        }
    }

    /// Asks the driver for catch-up data for follower `f` if it is behind and has room, and,
    /// for a follower outside the ISR, when the catch-up budget allows.
    fn feed_from_disk(&mut self, f: BrokerId, now_ms: i64) {
        let log_end = self.log_end;
        let rate = self.settings.catchup_bytes_per_sec;
        let throttled = rate > 0 && !self.isr.contains(&f);
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let Some(p) = l.followers.get_mut(&f) else {
            return;
        };
        if p.mode != FeedMode::Push || p.read_outstanding || p.sent_end >= log_end {
            return;
        }
        let room = FOLLOWER_INFLIGHT_BYTES_MAX.saturating_sub(p.inflight_bytes);
        if room == 0 || p.inflight.len() >= FOLLOWER_INFLIGHT_MESSAGES_MAX {
            return;
        }
        let mut max_bytes = room.min(APPEND_BYTES_MAX);
        if throttled {
            l.refill_catchup(rate, now_ms);
            if l.catchup_tokens <= 0 {
                // Over budget: a later tick or ack asks again.
                return;
            }
            // A read returns at least one whole batch, so it may overrun this; the overrun
            // is charged and waited off before the next read.
            max_bytes = max_bytes.min(usize::try_from(l.catchup_tokens).unwrap_or(usize::MAX));
        }
        let Some(p) = l.followers.get_mut(&f) else {
            return;
        };
        p.read_outstanding = true;
        let from = p.sent_end;
        self.out.push(Output::ReadForFollower {
            follower: f,
            from,
            upto: log_end,
            max_bytes,
        });
    }

    /// Catch-up data the driver read for follower `f` (whole batches from `from`).
    pub fn on_read_for_follower(&mut self, f: BrokerId, from: Offset, records: &[u8], now_ms: i64) {
        let hw = self.high_watermark;
        let log_end = self.log_end;
        let epoch = self.leader_epoch;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let Some(p) = l.followers.get_mut(&f) else {
            return;
        };
        p.read_outstanding = false;
        if p.mode != FeedMode::Push || p.sent_end != from {
            // Stale: the follower resumed elsewhere meanwhile.
            self.feed_from_disk(f, now_ms);
            return;
        }
        let mut first = None;
        let mut end = from;
        let mut start_at = 0usize;
        let mut used = 0usize;
        for view in batches(records) {
            let Ok(view) = view else { break };
            if view.last_offset() < from {
                start_at += view.len();
                used += view.len();
                continue;
            }
            if first.is_none() {
                first = Some(view.base_offset());
            }
            end = view.last_offset().next();
            used += view.len();
        }
        let Some(base) = first else {
            if from < self.log_start {
                // Retention moved the log start past what this follower needs meanwhile.
                p.mode = FeedMode::AwaitResume;
                p.rewind(from);
                self.send(
                    f,
                    ReplicaBody::OutOfRange {
                        leader_epoch: epoch.0,
                        log_start: self.log_start.0,
                    },
                );
            }
            return;
        };
        if base != from {
            tracing::warn!(partition = %self.partition, follower = %f, %from, %base, "catch-up read does not start at the follower's end");
            return;
        }
        let payload = records[start_at..used].to_vec();
        p.sent(end, payload.len(), now_ms);
        if self.settings.catchup_bytes_per_sec > 0 && !self.isr.contains(&f) {
            l.catchup_tokens = l.catchup_tokens.saturating_sub(records.len() as i64);
        }
        self.send(
            f,
            ReplicaBody::Append {
                leader_epoch: epoch.0,
                base_offset: base.0,
                records: payload,
                leader_high_watermark: hw.0,
                leader_log_end: log_end.0,
                sent_ms: now_ms,
            },
        );
        self.feed_from_disk(f, now_ms);
    }

    // ---- messages ------------------------------------------------------------------------

    pub fn on_message(&mut self, msg: ReplicaMessage, now_ms: i64) {
        if msg.topic != self.topic || msg.partition != self.partition {
            return;
        }
        let from = BrokerId(msg.from);
        match msg.body {
            ReplicaBody::Append {
                leader_epoch,
                base_offset,
                records,
                leader_high_watermark,
                leader_log_end,
                sent_ms,
            } => self.on_append(
                from,
                LeaderEpoch(leader_epoch),
                Offset(base_offset),
                &records,
                Offset(leader_high_watermark),
                (leader_log_end, sent_ms),
                now_ms,
            ),
            ReplicaBody::AppendAck {
                leader_epoch,
                status,
                durable_end,
                log_end,
                echo_leader_log_end,
                echo_sent_ms,
            } => self.on_ack(
                from,
                LeaderEpoch(leader_epoch),
                status,
                (Offset(durable_end), Offset(log_end)),
                (Offset(echo_leader_log_end), echo_sent_ms),
                now_ms,
            ),
            ReplicaBody::EpochEndQuery {
                leader_epoch,
                query_epoch,
            } => self.on_epoch_query(from, LeaderEpoch(leader_epoch), LeaderEpoch(query_epoch)),
            ReplicaBody::EpochEndAnswer {
                leader_epoch,
                status,
                epoch,
                end_offset,
            } => self.on_epoch_answer(
                from,
                LeaderEpoch(leader_epoch),
                status,
                (epoch >= 0).then_some(LeaderEpoch(epoch)),
                Offset(end_offset),
                now_ms,
            ),
            ReplicaBody::Resume {
                leader_epoch,
                from: at,
            } => self.on_resume(from, LeaderEpoch(leader_epoch), Offset(at), now_ms),
            ReplicaBody::OutOfRange {
                leader_epoch,
                log_start,
            } => self.on_out_of_range(from, LeaderEpoch(leader_epoch), Offset(log_start)),
            ReplicaBody::Diverged { leader_epoch } => {
                if let Role::Follower(f) = &self.role {
                    if f.leader == from && LeaderEpoch(leader_epoch) == self.leader_epoch {
                        let leader = f.leader;
                        self.become_follower(leader, now_ms);
                    }
                }
            }
        }
    }

    /// The status to answer a request stamped with `epoch` from `from`, when it is not for
    /// our current relationship.
    fn epoch_status(&self, epoch: LeaderEpoch) -> AckStatus {
        if epoch < self.leader_epoch {
            AckStatus::Fenced
        } else if epoch > self.leader_epoch {
            AckStatus::UnknownEpoch
        } else {
            AckStatus::NotFollower
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append(
        &mut self,
        from: BrokerId,
        epoch: LeaderEpoch,
        base: Offset,
        records: &[u8],
        leader_hw: Offset,
        echo: (i64, i64),
        now_ms: i64,
    ) {
        let following = matches!(&self.role, Role::Follower(f) if f.leader == from);
        if !following || epoch != self.leader_epoch {
            let status = self.epoch_status(epoch);
            self.ack(from, status, echo.0, echo.1);
            return;
        }
        let Role::Follower(f) = &mut self.role else {
            return;
        };
        if !matches!(f.phase, FollowerPhase::Streaming { .. }) {
            return;
        }
        f.last_heard_ms = now_ms;
        if records.is_empty() {
            self.high_watermark = self.high_watermark.max(leader_hw.min(self.durable_end));
            self.ack(from, AckStatus::Ok, echo.0, echo.1);
            return;
        }
        // Validate every batch (framing and CRC) before using any of them, and skip what
        // the log already holds (a resend after a lost ack).
        let mut skip = 0usize;
        let mut first = None;
        let mut last = None;
        let mut new_epochs = Vec::new();
        for view in batches(records) {
            let view = match view.and_then(|v| BatchView::parse_checked(v.bytes())) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(partition = %self.partition, error = %e, "corrupt replicated batch; asking for a resend");
                    self.ack(from, AckStatus::Mismatch, echo.0, echo.1);
                    return;
                }
            };
            if view.last_offset() < self.log_end && first.is_none() {
                skip += view.len();
                continue;
            }
            first.get_or_insert(view.base_offset());
            last = Some(view.last_offset());
            let be = view.leader_epoch();
            let latest = new_epochs
                .last()
                .map(|(e, _)| *e)
                .or(self.cache.latest().map(|(e, _)| e));
            if latest.is_none_or(|l| be > l) {
                new_epochs.push((be, view.base_offset()));
            }
        }
        let _ = base;
        let (Some(first), Some(last)) = (first, last) else {
            // All duplicates: acknowledge where we are.
            self.ack(from, AckStatus::Ok, echo.0, echo.1);
            return;
        };
        if first != self.log_end {
            self.ack(from, AckStatus::Mismatch, echo.0, echo.1);
            return;
        }
        let end = last.next();
        if !new_epochs.is_empty() {
            for (e, s) in new_epochs {
                self.cache.assign(e, s);
            }
            self.out.push(Output::PersistEpochCache(self.cache.clone()));
        }
        self.out.push(Output::AppendLocal {
            records: records[skip..].to_vec(),
        });
        self.log_end = end;
        if let Role::Follower(f) = &mut self.role {
            f.unacked.push_back((end, echo.0, echo.1));
        }
        self.high_watermark = self.high_watermark.max(leader_hw.min(self.durable_end));
    }

    fn on_ack(
        &mut self,
        from: BrokerId,
        epoch: LeaderEpoch,
        status: AckStatus,
        (durable_end, log_end): (Offset, Offset),
        (echo_log_end, echo_sent_ms): (Offset, i64),
        now_ms: i64,
    ) {
        let my_epoch = self.leader_epoch;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        match status {
            AckStatus::Fenced if epoch > my_epoch => {
                // Someone follows a newer leader: ours is over, whatever metadata says yet.
                l.fenced = true;
                self.fail_waiters(ProduceError::NotLeader);
                return;
            }
            AckStatus::Ok | AckStatus::Mismatch if epoch == my_epoch => {}
            _ => return,
        }
        let Some(p) = l.followers.get_mut(&from) else {
            return;
        };
        if p.mode != FeedMode::Push {
            return;
        }
        if status == AckStatus::Mismatch {
            p.rewind(log_end);
            self.feed_from_disk(from, now_ms);
            return;
        }
        p.acked_log_end = p.acked_log_end.max(log_end);
        p.acked_durable = p.acked_durable.max(durable_end);
        while p
            .inflight
            .front()
            .is_some_and(|(e, _, _)| *e <= p.acked_durable)
        {
            if let Some((_, bytes, _)) = p.inflight.pop_front() {
                p.inflight_bytes -= bytes;
            }
        }
        if durable_end >= echo_log_end {
            p.last_caught_up_ms = p.last_caught_up_ms.max(echo_sent_ms);
        }
        self.advance_high_watermark();
        self.feed_from_disk(from, now_ms);
        self.maybe_change_isr(now_ms);
    }

    fn on_epoch_query(&mut self, from: BrokerId, epoch: LeaderEpoch, query: LeaderEpoch) {
        if !self.is_active_leader() || epoch != self.leader_epoch {
            let status = if self.is_active_leader() {
                self.epoch_status(epoch)
            } else if epoch >= self.leader_epoch {
                AckStatus::UnknownEpoch
            } else {
                AckStatus::Fenced
            };
            self.send(
                from,
                ReplicaBody::EpochEndAnswer {
                    leader_epoch: self.leader_epoch.0,
                    status,
                    epoch: -1,
                    end_offset: -1,
                },
            );
            return;
        }
        let (e, end) = match self.cache.end_for(query, self.log_end) {
            Some(x) => (x.epoch.0, x.end_offset),
            None => (-1, self.log_start),
        };
        self.send(
            from,
            ReplicaBody::EpochEndAnswer {
                leader_epoch: self.leader_epoch.0,
                status: AckStatus::Ok,
                epoch: e,
                end_offset: end.0,
            },
        );
    }

    fn on_resume(&mut self, from: BrokerId, epoch: LeaderEpoch, at: Offset, now_ms: i64) {
        if epoch != self.leader_epoch || !self.is_active_leader() {
            return;
        }
        let (log_start, log_end) = (self.log_start, self.log_end);
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let Some(p) = l.followers.get_mut(&from) else {
            return;
        };
        if at < log_start {
            self.send(
                from,
                ReplicaBody::OutOfRange {
                    leader_epoch: epoch.0,
                    log_start: log_start.0,
                },
            );
            return;
        }
        if at > log_end {
            self.send(
                from,
                ReplicaBody::Diverged {
                    leader_epoch: epoch.0,
                },
            );
            return;
        }
        p.mode = FeedMode::Push;
        p.rewind(at);
        self.feed_from_disk(from, now_ms);
    }

    // ---- follower: divergence ------------------------------------------------------------

    fn query_epoch_end(&mut self, epoch: LeaderEpoch, now_ms: i64) {
        let Role::Follower(f) = &mut self.role else {
            return;
        };
        f.phase = FollowerPhase::Querying {
            epoch,
            sent_ms: now_ms,
        };
        let leader = f.leader;
        self.send(
            leader,
            ReplicaBody::EpochEndQuery {
                leader_epoch: self.leader_epoch.0,
                query_epoch: epoch.0,
            },
        );
    }

    fn on_epoch_answer(
        &mut self,
        from: BrokerId,
        epoch: LeaderEpoch,
        status: AckStatus,
        answer_epoch: Option<LeaderEpoch>,
        end: Offset,
        now_ms: i64,
    ) {
        let Role::Follower(f) = &self.role else {
            return;
        };
        let FollowerPhase::Querying { epoch: asked, .. } = f.phase else {
            return;
        };
        if f.leader != from || epoch != self.leader_epoch || status != AckStatus::Ok {
            return;
        }
        let target = match answer_epoch {
            // The leader knows no epoch this old: nothing of ours is provably shared beyond
            // where the leader's log starts.
            None => end.min(self.log_end),
            Some(e) if e == asked => end.min(self.log_end),
            Some(e) if self.cache.contains(e) => {
                let own = self
                    .cache
                    .end_for(e, self.log_end)
                    .map_or(self.log_end, |x| x.end_offset);
                end.min(own)
            }
            Some(e) => {
                // We never saw epoch `e`: ask again about our largest epoch below it.
                let below = self
                    .cache
                    .entries()
                    .iter()
                    .rev()
                    .find(|(x, _)| *x < e)
                    .map(|(x, _)| *x);
                match below {
                    Some(b) => {
                        self.query_epoch_end(b, now_ms);
                        return;
                    }
                    None => end.min(self.cache.first_start().unwrap_or(self.log_end)),
                }
            }
        };
        if let Role::Follower(f) = &mut self.role {
            f.phase = FollowerPhase::Truncating;
        }
        self.out.push(Output::TruncateLocal { to: target });
    }

    /// The local log was truncated; `new_end` is durable.
    pub fn on_truncated(&mut self, new_end: Offset, now_ms: i64) {
        if new_end < self.log_start {
            self.log_start = new_end;
        }
        self.log_end = new_end;
        self.durable_end = new_end;
        self.high_watermark = self.high_watermark.min(new_end);
        if self.cache.truncate_from_end(new_end) {
            self.out.push(Output::PersistEpochCache(self.cache.clone()));
        }
        if let Role::Follower(f) = &mut self.role {
            f.unacked.clear();
            if f.phase == FollowerPhase::Truncating {
                self.resume(now_ms);
            }
        }
        self.check();
    }

    fn on_out_of_range(&mut self, from: BrokerId, epoch: LeaderEpoch, leader_start: Offset) {
        let Role::Follower(f) = &mut self.role else {
            return;
        };
        if f.leader != from
            || epoch != self.leader_epoch
            || !matches!(f.phase, FollowerPhase::Streaming { .. })
            || self.log_end >= leader_start
        {
            // Stale, or our log reaches the leader's: a resume (after silence) sorts it out.
            return;
        }
        f.phase = FollowerPhase::Truncating;
        // Nothing we hold survives, so no epoch does either; the cache is emptied (durably)
        // before the log, so a crash in between leaves old batches without epochs, which a
        // restart cuts to the high watermark and resumes from, reaching here again.
        self.cache = EpochCache::new();
        self.out.push(Output::PersistEpochCache(self.cache.clone()));
        self.out.push(Output::ResetLocal {
            start: leader_start,
        });
    }

    /// The local log was emptied and restarts at `start` (after `Output::ResetLocal`).
    pub fn on_reset(&mut self, start: Offset, now_ms: i64) {
        self.log_start = start;
        self.log_end = start;
        self.durable_end = start;
        // Everything below the leader's log start was committed there.
        self.high_watermark = start;
        if let Role::Follower(f) = &mut self.role {
            f.unacked.clear();
            if f.phase == FollowerPhase::Truncating {
                self.resume(now_ms);
            }
        }
        self.check();
    }

    /// The local log's start moved up (retention or DeleteRecords on this broker): a leader
    /// answers followers that need what was deleted with `OutOfRange`.
    pub fn set_log_start(&mut self, start: Offset) {
        if start > self.log_start && start <= self.log_end {
            self.log_start = start;
        }
    }

    pub fn log_start(&self) -> Offset {
        self.log_start
    }

    fn resume(&mut self, now_ms: i64) {
        let Role::Follower(f) = &mut self.role else {
            return;
        };
        f.phase = FollowerPhase::Streaming { resumed_ms: now_ms };
        f.last_heard_ms = now_ms;
        let leader = f.leader;
        self.send(
            leader,
            ReplicaBody::Resume {
                leader_epoch: self.leader_epoch.0,
                from: self.log_end.0,
            },
        );
    }

    /// A local append or truncation failed: what the log holds is unknown to us, so start
    /// over from what the driver reports after reopening it.
    pub fn on_local_failure(&mut self, log_end: Offset, now_ms: i64) {
        self.log_end = log_end;
        self.durable_end = self.durable_end.min(log_end);
        self.high_watermark = self.high_watermark.min(log_end);
        if let Role::Follower(f) = &self.role {
            let leader = f.leader;
            self.become_follower(leader, now_ms);
        }
    }

    // ---- time ----------------------------------------------------------------------------

    pub fn tick(&mut self, now_ms: i64) {
        let settings = self.settings;
        match &mut self.role {
            Role::Offline => {}
            Role::Follower(f) => match f.phase {
                FollowerPhase::Querying { epoch, sent_ms }
                    if now_ms - sent_ms >= settings.retry_ms =>
                {
                    self.query_epoch_end(epoch, now_ms)
                }
                FollowerPhase::Streaming { .. }
                    if now_ms - f.last_heard_ms >= settings.retry_ms * 2 =>
                {
                    // Silence: our Resume or the leader's pushes were lost.
                    self.resume(now_ms)
                }
                _ => {}
            },
            Role::Leader(l) => {
                if l.fenced {
                    return;
                }
                let mut keepalive = Vec::new();
                let mut retry = Vec::new();
                for (id, p) in l.followers.iter_mut() {
                    if p.mode != FeedMode::Push {
                        continue;
                    }
                    if p.inflight
                        .front()
                        .is_some_and(|(_, _, t)| now_ms - t >= settings.retry_ms)
                    {
                        p.rewind(p.acked_log_end.max(p.acked_durable));
                        retry.push(*id);
                    } else if now_ms - p.last_send_ms >= settings.keepalive_interval_ms {
                        p.last_send_ms = now_ms;
                        keepalive.push((*id, p.sent_end));
                    } else if !p.read_outstanding && p.sent_end < self.log_end {
                        retry.push(*id);
                    }
                }
                if let Some((_, since)) = l.pending_isr {
                    if now_ms - since >= settings.retry_ms {
                        l.pending_isr = None;
                    }
                }
                for (to, at) in keepalive {
                    self.send(
                        to,
                        ReplicaBody::Append {
                            leader_epoch: self.leader_epoch.0,
                            base_offset: at.0,
                            records: Vec::new(),
                            leader_high_watermark: self.high_watermark.0,
                            leader_log_end: self.log_end.0,
                            sent_ms: now_ms,
                        },
                    );
                }
                for f in retry {
                    self.feed_from_disk(f, now_ms);
                }
                self.maybe_change_isr(now_ms);
            }
        }
    }

    /// Shrinks the ISR by followers that lagged too long, or grows it by followers that
    /// caught up (durable past the high watermark and this epoch's start), one proposal at
    /// a time.
    fn maybe_change_isr(&mut self, now_ms: i64) {
        let lag_max = self.settings.replica_lag_time_max_ms;
        let (me, hw) = (self.me, self.high_watermark);
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.pending_isr.is_some() || l.fenced {
            return;
        }
        let mut proposal = self.isr.clone();
        proposal.retain(|b| {
            *b == me
                || l.followers
                    .get(b)
                    .is_some_and(|p| now_ms - p.last_caught_up_ms <= lag_max)
        });
        for (id, p) in &l.followers {
            if !proposal.contains(id)
                && p.mode == FeedMode::Push
                && p.acked_durable >= hw.max(l.epoch_start)
                && now_ms - p.last_caught_up_ms <= lag_max
            {
                proposal.push(*id);
            }
        }
        proposal.sort();
        let mut current = self.isr.clone();
        current.sort();
        if proposal == current {
            return;
        }
        l.pending_isr = Some((proposal.clone(), now_ms));
        self.out.push(Output::AlterIsr {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            isr: proposal,
        });
        // A shrink does not take effect before the controller commits it; an expansion counts
        // at once (maximal ISR).
        self.advance_high_watermark();
    }
}

/// The catch-up bucket's capacity: `CATCHUP_BURST_MS` worth of the rate (at least one
/// byte, so a read can always start once the debt is paid).
fn catchup_burst(rate: u64) -> i64 {
    let burst = u128::from(rate) * CATCHUP_BURST_MS as u128 / 1000;
    i64::try_from(burst).unwrap_or(i64::MAX).max(1)
}

impl LeaderState {
    fn refill_catchup(&mut self, rate: u64, now_ms: i64) {
        let elapsed = now_ms.saturating_sub(self.catchup_refilled_ms).max(0);
        self.catchup_refilled_ms = self.catchup_refilled_ms.max(now_ms);
        let earned = u128::from(rate) * elapsed as u128 / 1000;
        let earned = i64::try_from(earned).unwrap_or(i64::MAX);
        self.catchup_tokens = self
            .catchup_tokens
            .saturating_add(earned)
            .min(catchup_burst(rate));
    }
}

impl Progress {
    fn new(now_ms: i64) -> Self {
        Progress {
            mode: FeedMode::AwaitResume,
            sent_end: Offset(0),
            acked_durable: Offset(i64::MIN),
            acked_log_end: Offset(0),
            last_caught_up_ms: now_ms,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            read_outstanding: false,
            last_send_ms: now_ms,
        }
    }

    fn has_room(&self, bytes: usize) -> bool {
        self.inflight.len() < FOLLOWER_INFLIGHT_MESSAGES_MAX
            && self.inflight_bytes + bytes <= FOLLOWER_INFLIGHT_BYTES_MAX
    }

    fn sent(&mut self, end: Offset, bytes: usize, now_ms: i64) {
        self.sent_end = end;
        self.inflight.push_back((end, bytes, now_ms));
        self.inflight_bytes += bytes;
        self.last_send_ms = now_ms;
    }

    /// Forget what is in flight and send again from `at`.
    fn rewind(&mut self, at: Offset) {
        self.sent_end = at;
        self.acked_log_end = at;
        self.inflight.clear();
        self.inflight_bytes = 0;
    }
}
