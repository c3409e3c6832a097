//! One consumer group's classic-protocol state machine (Kafka's GroupMetadata plus the
//! join/sync/heartbeat/leave rules of its GroupCoordinator). Pure and synchronous: time
//! comes in as `now`, new member ids come in from the caller, and answers that must wait
//! for a rebalance go out over the waiter channels handed in. Owned by the shard that
//! owns the group id (`ShardTable::owner_of_key`); that shard's view is the only one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::errors;
use crate::limits::GROUP_MEMBERS_MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A member as the leader sees it in its JoinGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A JoinGroup answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Non-empty for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinOutcome {
    pub fn error(code: i16, member_id: impl Into<String>) -> JoinOutcome {
        JoinOutcome {
            error: code,
            generation: -1,
            member_id: member_id.into(),
            ..JoinOutcome::default()
        }
    }
}

/// A SyncGroup answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(code: i16) -> SyncOutcome {
        SyncOutcome {
            error: code,
            ..SyncOutcome::default()
        }
    }
}

pub type JoinWaiter = flume::Sender<JoinOutcome>;
pub type SyncWaiter = flume::Sender<SyncOutcome>;

/// A JoinGroup request, decoded.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    /// Empty: a new member.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ (KIP-394): a new dynamic member first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// The broker's group.initial.rebalance.delay.ms (zero: an empty group's first join
    /// phase ends as soon as every member has joined).
    pub initial_rebalance_delay: Duration,
}

/// Kafka's InitialDelayedJoin: the first join phase of an empty group waits `delay`, and
/// again (up to `remaining`, what is left of the rebalance timeout) while newcomers keep
/// arriving, so a group that starts with many members forms one generation, not one per
/// member. It also gives every member time to learn its topics' metadata before the
/// leader assigns: a leader that assigned with none re-joins right after its SyncGroup,
/// and kafka-python 3.0.12 loses the answer to a re-join it starts by itself when its
/// poll() times out between that JoinGroup's answer and the SyncGroup's (its
/// `need_rejoin()` is already false again, so nobody collects the result: no assignment,
/// no heartbeats, the session expires). Apache Kafka shows the same stall with
/// group.initial.rebalance.delay.ms=0.
#[derive(Clone, Copy, Debug)]
struct InitialJoin {
    delay: Duration,
    remaining: Duration,
    newcomer: bool,
}

/// One member of a group.
#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    session_deadline: Instant,
    join_waiter: Option<JoinWaiter>,
    sync_waiter: Option<SyncWaiter>,
}

impl Member {
    /// This member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// A group's membership as `__consumer_offsets` keeps it (Kafka's GroupMetadataValue):
/// written when a generation becomes Stable and when the group becomes Empty, read back
/// at start-up so members keep their generation across a broker restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadata {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberMetadata>,
}

/// One member in a [`GroupMetadata`] record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A committed offset as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

/// One group: membership, generation and committed offsets.
#[derive(Debug)]
pub struct Group {
    pub id: String,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id -> member id (static members).
    instances: BTreeMap<String, String>,
    /// KIP-394 member ids handed out, awaiting their second join, with their deadline.
    pending: BTreeMap<String, Instant>,
    /// PreparingRebalance: when the join phase ends; CompletingRebalance: when the leader's
    /// SyncGroup is overdue.
    deadline: Option<Instant>,
    /// Set while an empty group's first join phase is held open (see [`InitialJoin`]).
    initial_join: Option<InitialJoin>,
    /// A transition (Stable, Empty) whose membership record is not yet written.
    unwritten: bool,
    /// Whether `__consumer_offsets` holds a membership record for this group (so its
    /// removal needs a tombstone).
    recorded: bool,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
}

impl Group {
    pub fn new(id: impl Into<String>) -> Group {
        Group {
            id: id.into(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            instances: BTreeMap::new(),
            pending: BTreeMap::new(),
            deadline: None,
            initial_join: None,
            unwritten: false,
            recorded: false,
            offsets: BTreeMap::new(),
        }
    }

    /// A group rebuilt from its last membership record: Stable with the recorded
    /// generation, leader and assignments when it had members (each gets a fresh session,
    /// so members that come back just heartbeat on; the others expire and the rest
    /// rebalance as usual), else Empty.
    pub fn restore(id: impl Into<String>, md: GroupMetadata, now: Instant) -> Group {
        let mut g = Group::new(id);
        g.generation = md.generation;
        g.recorded = true;
        if md.members.is_empty() {
            return g;
        }
        g.state = GroupState::Stable;
        g.protocol_type = Some(md.protocol_type);
        g.protocol = md.protocol.clone();
        g.leader = md.leader;
        let protocol = md.protocol.unwrap_or_default();
        for m in md.members.into_iter().take(GROUP_MEMBERS_MAX) {
            let session_timeout = Duration::from_millis(m.session_timeout_ms.max(0) as u64);
            if let Some(instance) = &m.instance_id {
                g.instances.insert(instance.clone(), m.member_id.clone());
            }
            g.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout,
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    session_deadline: now + session_timeout,
                    join_waiter: None,
                    sync_waiter: None,
                },
            );
        }
        if !g.leader.as_ref().is_some_and(|l| g.members.contains_key(l)) {
            g.leader = g.members.keys().next().cloned();
        }
        g
    }

    /// The membership record a transition asked for, if not yet taken; `now_ms` stamps it.
    pub fn take_metadata(&mut self, now_ms: i64) -> Option<GroupMetadata> {
        if !std::mem::take(&mut self.unwritten) {
            return None;
        }
        self.recorded = true;
        let protocol = self.protocol.clone().unwrap_or_default();
        Some(GroupMetadata {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: now_ms,
            members: self
                .members
                .values()
                .map(|m| MemberMetadata {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: i32::try_from(m.rebalance_timeout.as_millis())
                        .unwrap_or(i32::MAX),
                    session_timeout_ms: i32::try_from(m.session_timeout.as_millis())
                        .unwrap_or(i32::MAX),
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// A write of [`Group::take_metadata`]'s record failed: ask for it again.
    pub fn metadata_unwritten(&mut self) {
        self.unwritten = true;
    }

    /// Whether the log holds a membership record for this group.
    pub fn is_recorded(&self) -> bool {
        self.recorded
    }

    pub fn state(&self) -> GroupState {
        self.state
    }
    pub fn generation(&self) -> i32 {
        self.generation
    }
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// Marks the group deleted: every waiter is told the coordinator moved on.
    pub fn mark_dead(&mut self) {
        for m in self.members.values_mut() {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinOutcome::error(errors::COORDINATOR_NOT_AVAILABLE, &m.id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncOutcome::error(errors::COORDINATOR_NOT_AVAILABLE));
            }
        }
        self.members.clear();
        self.instances.clear();
        self.pending.clear();
        self.initial_join = None;
        self.state = GroupState::Dead;
    }

    /// Whether a member with these protocols could join: same protocol type and at least
    /// one protocol every member (and it) supports.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// JoinGroup. The answer goes to `waiter`, at once or when the rebalance completes.
    pub fn join(
        &mut self,
        req: JoinRequest,
        new_member_id: String,
        now: Instant,
        waiter: JoinWaiter,
    ) {
        tracing::debug!(group = %self.id, member = %req.member_id, state = self.state.name(), "join");
        let reply = |code: i16, member_id: &str| {
            tracing::debug!(member = %member_id, code, "join answered");
            let _ = waiter.send(JoinOutcome::error(code, member_id));
        };
        if self.state == GroupState::Dead {
            return reply(errors::COORDINATOR_NOT_AVAILABLE, &req.member_id);
        }
        let members_before = self.members.len();
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return reply(errors::INCONSISTENT_GROUP_PROTOCOL, &req.member_id);
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            return reply(errors::INCONSISTENT_GROUP_PROTOCOL, &req.member_id);
        }
        let member_id = if req.member_id.is_empty() {
            if let Some(instance) = &req.instance_id {
                if let Some(old) = self.instances.get(instance).cloned() {
                    self.replace_static_member(&old, &new_member_id);
                } else if !self.add_member(&req, &new_member_id, now) {
                    return reply(errors::GROUP_MAX_SIZE_REACHED, "");
                }
                new_member_id
            } else if req.require_known_member_id {
                if self.members.len() + self.pending.len() >= GROUP_MEMBERS_MAX {
                    return reply(errors::GROUP_MAX_SIZE_REACHED, "");
                }
                self.pending
                    .insert(new_member_id.clone(), now + req.session_timeout);
                return reply(errors::MEMBER_ID_REQUIRED, &new_member_id);
            } else {
                if !self.add_member(&req, &new_member_id, now) {
                    return reply(errors::GROUP_MAX_SIZE_REACHED, "");
                }
                new_member_id
            }
        } else if self.pending.remove(&req.member_id).is_some() {
            if !self.add_member(&req, &req.member_id, now) {
                return reply(errors::GROUP_MAX_SIZE_REACHED, "");
            }
            req.member_id.clone()
        } else if self.members.contains_key(&req.member_id) {
            if let Some(code) = self.fenced(&req.member_id, req.instance_id.as_deref()) {
                return reply(code, &req.member_id);
            }
            let id = req.member_id.clone();
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let unchanged = self
                .members
                .get(&id)
                .is_some_and(|m| m.same_protocols(&req.protocols));
            let current = match self.state {
                GroupState::CompletingRebalance => unchanged,
                GroupState::Stable => unchanged && !is_leader,
                _ => false,
            };
            if current {
                if let Some(m) = self.members.get_mut(&id) {
                    m.session_deadline = now + m.session_timeout;
                }
                let _ = waiter.send(self.join_outcome(&id));
                return;
            }
            if let Some(m) = self.members.get_mut(&id) {
                m.protocols = req.protocols.clone();
                m.session_timeout = req.session_timeout;
                m.rebalance_timeout = req.rebalance_timeout;
            }
            id
        } else {
            return reply(errors::UNKNOWN_MEMBER_ID, &req.member_id);
        };
        if let Some(m) = self.members.get_mut(&member_id) {
            m.session_deadline = now + m.session_timeout;
            m.join_waiter = Some(waiter);
        }
        if self.state != GroupState::PreparingRebalance {
            let from_empty = self.state == GroupState::Empty;
            self.prepare_rebalance(now);
            if from_empty && !req.initial_rebalance_delay.is_zero() {
                let timeout = self.rebalance_timeout();
                let delay = req.initial_rebalance_delay.min(timeout);
                self.initial_join = Some(InitialJoin {
                    delay,
                    remaining: timeout.saturating_sub(delay),
                    newcomer: false,
                });
                self.deadline = Some(now + delay);
            }
        } else if self.members.len() > members_before {
            if let Some(initial) = &mut self.initial_join {
                initial.newcomer = true;
            }
        }
        self.try_complete_join(now);
    }

    fn add_member(&mut self, req: &JoinRequest, id: &str, now: Instant) -> bool {
        if self.members.len() + self.pending.len() >= GROUP_MEMBERS_MAX {
            return false;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.instance_id {
            self.instances.insert(instance.clone(), id.to_string());
        }
        self.members.insert(
            id.to_string(),
            Member {
                id: id.to_string(),
                instance_id: req.instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocols: req.protocols.clone(),
                assignment: Bytes::new(),
                session_deadline: now + req.session_timeout,
                join_waiter: None,
                sync_waiter: None,
            },
        );
        true
    }

    /// A static member came back with a new member id: the old id is fenced.
    fn replace_static_member(&mut self, old: &str, new: &str) {
        let Some(mut m) = self.members.remove(old) else {
            return;
        };
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinOutcome::error(errors::FENCED_INSTANCE_ID, old));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncOutcome::error(errors::FENCED_INSTANCE_ID));
        }
        m.id = new.to_string();
        if let Some(instance) = &m.instance_id {
            self.instances.insert(instance.clone(), new.to_string());
        }
        if self.leader.as_deref() == Some(old) {
            self.leader = Some(new.to_string());
        }
        self.members.insert(new.to_string(), m);
    }

    /// FENCED_INSTANCE_ID when `instance` maps to another member id.
    fn fenced(&self, member_id: &str, instance: Option<&str>) -> Option<i16> {
        let instance = instance?;
        match self.instances.get(instance) {
            Some(id) if id == member_id => None,
            Some(_) => Some(errors::FENCED_INSTANCE_ID),
            None => Some(errors::UNKNOWN_MEMBER_ID),
        }
    }

    fn join_outcome(&self, member_id: &str) -> JoinOutcome {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            error: errors::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncOutcome::error(errors::REBALANCE_IN_PROGRESS));
                }
            }
        }
        self.state = GroupState::PreparingRebalance;
        self.deadline = Some(now + self.rebalance_timeout());
        self.initial_join = None;
        tracing::debug!(group = %self.id, generation = self.generation, "preparing rebalance");
    }

    fn try_complete_join(&mut self, now: Instant) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_join.is_none()
            && self.pending.is_empty()
            && self.members.values().all(|m| m.join_waiter.is_some())
        {
            self.complete_join(now);
        }
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(o, _)| o == *n))
            })
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in self.members.values() {
            if let Some((pick, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == pick) {
                    v.0 += 1;
                }
            }
        }
        // Most votes; ties go to the first member's preference (stable).
        let best = votes.iter().map(|(n, _)| *n).max()?;
        votes
            .into_iter()
            .find(|(n, _)| *n == best)
            .map(|(_, c)| c.clone())
    }

    fn complete_join(&mut self, now: Instant) {
        self.initial_join = None;
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.drop_member(&id);
        }
        self.pending.clear();
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.unwritten = true;
            self.protocol = None;
            self.protocol_type = None;
            self.leader = None;
            self.deadline = None;
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        self.deadline = Some(now + self.rebalance_timeout());
        tracing::debug!(group = %self.id, generation = self.generation, members = self.members.len(),
            leader = ?self.leader, "join phase complete");
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.join_outcome(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.session_deadline = now + m.session_timeout;
                m.assignment = Bytes::new();
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.send(outcome);
                }
            }
        }
    }

    /// Removes a member without any state transition; its waiters hear UNKNOWN_MEMBER_ID.
    fn drop_member(&mut self, id: &str) {
        let Some(mut m) = self.members.remove(id) else {
            return;
        };
        if let Some(instance) = &m.instance_id {
            if self.instances.get(instance).map(String::as_str) == Some(id) {
                self.instances.remove(instance);
            }
        }
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinOutcome::error(errors::UNKNOWN_MEMBER_ID, id));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncOutcome::error(errors::UNKNOWN_MEMBER_ID));
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    /// A member left or expired: the others rebalance.
    fn remove_member(&mut self, id: &str, now: Instant) {
        self.drop_member(id);
        if self.leader.is_none() {
            self.leader = self.members.keys().next().cloned();
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            GroupState::Empty | GroupState::PreparingRebalance | GroupState::Dead => {}
        }
        self.try_complete_join(now);
    }

    /// SyncGroup. `assignments` counts only from the leader.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Bytes)>,
        now: Instant,
        waiter: SyncWaiter,
    ) {
        tracing::debug!(group = %self.id, member = %member_id, generation, state = self.state.name(), "sync");
        let reply = |code: i16| {
            tracing::debug!(member = %member_id, code, "sync answered");
            let _ = waiter.send(SyncOutcome::error(code));
        };
        if self.state == GroupState::Dead {
            return reply(errors::COORDINATOR_NOT_AVAILABLE);
        }
        if !self.members.contains_key(member_id) {
            return reply(errors::UNKNOWN_MEMBER_ID);
        }
        if let Some(code) = self.fenced(member_id, instance_id) {
            return reply(code);
        }
        if generation != self.generation {
            return reply(errors::ILLEGAL_GENERATION);
        }
        let (protocol_type, protocol_name) = protocol;
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol.as_deref())
        {
            return reply(errors::INCONSISTENT_GROUP_PROTOCOL);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => reply(errors::UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => reply(errors::REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.session_deadline = now + m.session_timeout;
                    let _ = waiter.send(SyncOutcome {
                        error: errors::NONE,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol.clone(),
                        assignment: m.assignment.clone(),
                    });
                }
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.session_deadline = now + m.session_timeout;
                    m.sync_waiter = Some(waiter);
                }
                if self.leader.as_deref() == Some(member_id) {
                    for (id, assignment) in assignments {
                        if let Some(m) = self.members.get_mut(&id) {
                            m.assignment = assignment;
                        }
                    }
                    self.state = GroupState::Stable;
                    self.deadline = None;
                    self.unwritten = true;
                    for m in self.members.values_mut() {
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(SyncOutcome {
                                error: errors::NONE,
                                protocol_type: self.protocol_type.clone(),
                                protocol_name: self.protocol.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                }
            }
        }
    }

    /// Heartbeat: keeps the session alive and tells the member whether to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return errors::COORDINATOR_NOT_AVAILABLE;
        }
        if !self.members.contains_key(member_id) {
            return errors::UNKNOWN_MEMBER_ID;
        }
        if let Some(code) = self.fenced(member_id, instance_id) {
            return code;
        }
        if generation != self.generation {
            return errors::ILLEGAL_GENERATION;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline = now + m.session_timeout;
        }
        match self.state {
            GroupState::PreparingRebalance => errors::REBALANCE_IN_PROGRESS,
            GroupState::Empty | GroupState::Dead => errors::UNKNOWN_MEMBER_ID,
            GroupState::CompletingRebalance | GroupState::Stable => errors::NONE,
        }
    }

    /// LeaveGroup for one member (by member id, or by group.instance.id when the member id
    /// is empty, v3+).
    pub fn leave(&mut self, member_id: &str, instance_id: Option<&str>, now: Instant) -> i16 {
        tracing::debug!(group = %self.id, member = %member_id, "leave");
        if self.state == GroupState::Dead {
            return errors::COORDINATOR_NOT_AVAILABLE;
        }
        let id = match (member_id.is_empty(), instance_id) {
            (true, Some(instance)) => match self.instances.get(instance) {
                Some(id) => id.clone(),
                None => return errors::UNKNOWN_MEMBER_ID,
            },
            _ => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            self.try_complete_join(now);
            return errors::NONE;
        }
        if !self.members.contains_key(&id) {
            return errors::UNKNOWN_MEMBER_ID;
        }
        if let Some(code) = self.fenced(&id, instance_id) {
            return code;
        }
        self.remove_member(&id, now);
        errors::NONE
    }

    /// Whether an OffsetCommit from this member may commit now (refreshing its session).
    pub fn may_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return errors::COORDINATOR_NOT_AVAILABLE;
        }
        if generation < 0 && member_id.is_empty() {
            // A commit from outside the group protocol (assign() users, admin tools).
            return if self.members.is_empty() {
                errors::NONE
            } else {
                errors::UNKNOWN_MEMBER_ID
            };
        }
        if !self.members.contains_key(member_id) {
            return errors::UNKNOWN_MEMBER_ID;
        }
        if let Some(code) = self.fenced(member_id, instance_id) {
            return code;
        }
        if generation != self.generation {
            return errors::ILLEGAL_GENERATION;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline = now + m.session_timeout;
        }
        match self.state {
            GroupState::CompletingRebalance => errors::REBALANCE_IN_PROGRESS,
            _ => errors::NONE,
        }
    }

    /// Expires sessions, KIP-394 pending ids and rebalance deadlines.
    pub fn tick(&mut self, now: Instant) {
        if self.state == GroupState::Dead {
            return;
        }
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now)
            // A member waiting in JoinGroup is alive until the join phase ends.
            .filter(|m| !(self.state == GroupState::PreparingRebalance && m.join_waiter.is_some()))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "session expired");
            self.remove_member(&id, now);
        }
        let overdue = self.deadline.is_some_and(|d| d <= now);
        match self.state {
            GroupState::PreparingRebalance if overdue => match self.initial_join {
                // Newcomers arrived during the delay: wait once more, within the timeout.
                Some(initial) if initial.newcomer && !initial.remaining.is_zero() => {
                    let delay = initial.delay.min(initial.remaining);
                    self.initial_join = Some(InitialJoin {
                        delay: initial.delay,
                        remaining: initial.remaining - delay,
                        newcomer: false,
                    });
                    self.deadline = Some(now + delay);
                }
                _ => self.complete_join(now),
            },
            GroupState::CompletingRebalance if overdue => {
                // The leader never sent its assignment: start over.
                self.prepare_rebalance(now);
                self.try_complete_join(now);
            }
            _ => self.try_complete_join(now),
        }
    }

    /// Topics the members subscribe to, from the consumer protocol's subscription metadata.
    /// `None` when some member's metadata cannot be read (treat as subscribed to anything).
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        let protocol = self.protocol.as_deref()?;
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let mut out = Vec::new();
        for m in self.members.values() {
            out.extend(parse_subscription_topics(&m.metadata(protocol))?);
        }
        Some(out)
    }
}

/// The topic list of a ConsumerProtocolSubscription (any version: the topics array comes
/// first, after the i16 version, as non-flexible strings).
pub fn parse_subscription_topics(b: &[u8]) -> Option<Vec<String>> {
    let mut at = 2usize;
    let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
        let s = b.get(*at..at.checked_add(n)?)?;
        *at += n;
        Some(s)
    };
    let count = i32::from_be_bytes(take(&mut at, 4)?.try_into().ok()?);
    if !(0..=100_000).contains(&count) {
        return None;
    }
    let mut topics = Vec::new();
    for _ in 0..count {
        let len = i16::from_be_bytes(take(&mut at, 2)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        topics.push(String::from_utf8(take(&mut at, len)?.to_vec()).ok()?);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(member_id: &str, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("meta-{member_id}-{p}"))))
                .collect(),
            require_known_member_id: true,
            initial_rebalance_delay: Duration::ZERO,
        }
    }

    fn join(
        g: &mut Group,
        r: JoinRequest,
        new_id: &str,
        now: Instant,
    ) -> flume::Receiver<JoinOutcome> {
        let (tx, rx) = flume::bounded(1);
        g.join(r, new_id.to_string(), now, tx);
        rx
    }

    fn sync(
        g: &mut Group,
        id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> flume::Receiver<SyncOutcome> {
        let (tx, rx) = flume::bounded(1);
        g.sync(id, None, generation, (None, None), assignments, now, tx);
        rx
    }

    /// Two-step join (KIP-394) of a new member; returns its id and the pending answer.
    fn join_new(
        g: &mut Group,
        id: &str,
        protocols: &[&str],
        now: Instant,
    ) -> flume::Receiver<JoinOutcome> {
        let first = join(g, req("", protocols), id, now)
            .try_recv()
            .expect("answered");
        assert_eq!(first.error, errors::MEMBER_ID_REQUIRED);
        assert_eq!(first.member_id, id);
        join(g, req(id, protocols), "unused", now)
    }

    #[test]
    fn new_member_needs_a_member_id_first_then_becomes_leader() {
        let now = Instant::now();
        let mut g = Group::new("g");
        let rx = join_new(&mut g, "m1", &["range"], now);
        let out = rx.try_recv().expect("single member completes at once");
        assert_eq!(out.error, errors::NONE);
        assert_eq!(out.generation, 1);
        assert_eq!(out.leader, "m1");
        assert_eq!(out.protocol_name.as_deref(), Some("range"));
        assert_eq!(out.members.len(), 1, "the leader gets the member list");
        assert_eq!(g.state(), GroupState::CompletingRebalance);
        let s = sync(
            &mut g,
            "m1",
            1,
            vec![("m1".into(), Bytes::from_static(b"A"))],
            now,
        );
        assert_eq!(
            s.try_recv().expect("sync").assignment,
            Bytes::from_static(b"A")
        );
        assert_eq!(g.state(), GroupState::Stable);
    }

    #[test]
    fn second_member_triggers_rebalance_and_both_get_distinct_assignments() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "m1", &["range"], now)
            .try_recv()
            .expect("joined");
        sync(
            &mut g,
            "m1",
            1,
            vec![("m1".into(), Bytes::from_static(b"all"))],
            now,
        )
        .try_recv()
        .expect("synced");
        let rx2 = join_new(&mut g, "m2", &["range"], now);
        assert!(rx2.try_recv().is_err(), "m2 waits for m1 to rejoin");
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        assert_eq!(
            g.heartbeat("m1", None, 1, now),
            errors::REBALANCE_IN_PROGRESS
        );
        let rx1 = join(&mut g, req("m1", &["range"]), "unused", now);
        let (o1, o2) = (rx1.try_recv().expect("m1"), rx2.try_recv().expect("m2"));
        assert_eq!((o1.generation, o2.generation), (2, 2));
        assert_eq!(o1.leader, "m1");
        assert_eq!(o1.members.len(), 2);
        assert!(o2.members.is_empty(), "followers get no member list");
        let follower = sync(&mut g, "m2", 2, vec![], now);
        assert!(
            follower.try_recv().is_err(),
            "follower waits for the leader's assignment"
        );
        let leader = sync(
            &mut g,
            "m1",
            2,
            vec![
                ("m1".into(), Bytes::from_static(b"p0")),
                ("m2".into(), Bytes::from_static(b"p1")),
            ],
            now,
        );
        assert_eq!(
            leader.try_recv().expect("leader").assignment,
            Bytes::from_static(b"p0")
        );
        assert_eq!(
            follower.try_recv().expect("follower").assignment,
            Bytes::from_static(b"p1")
        );
        assert_eq!(g.heartbeat("m2", None, 2, now), errors::NONE);
        assert_eq!(g.heartbeat("m2", None, 1, now), errors::ILLEGAL_GENERATION);
    }

    #[test]
    fn empty_group_holds_its_first_join_phase_while_newcomers_arrive() {
        let now = Instant::now();
        let delay = Duration::from_secs(3);
        let mut g = Group::new("g");
        let delayed = |id: &str| JoinRequest {
            initial_rebalance_delay: delay,
            ..req(id, &["range"])
        };
        let first = join(&mut g, delayed(""), "m1", now).try_recv().expect("id");
        assert_eq!(first.error, errors::MEMBER_ID_REQUIRED);
        let rx1 = join(&mut g, delayed("m1"), "x", now);
        assert!(rx1.try_recv().is_err(), "held for the initial delay");
        g.tick(now + Duration::from_secs(2));
        join(&mut g, delayed(""), "m2", now + Duration::from_secs(2))
            .try_recv()
            .expect("id");
        let rx2 = join(&mut g, delayed("m2"), "x", now + Duration::from_secs(2));
        // The first delay ends with a newcomer in it: one more delay.
        g.tick(now + Duration::from_secs(3));
        assert!(rx1.try_recv().is_err() && rx2.try_recv().is_err());
        g.tick(now + Duration::from_millis(5_900));
        assert!(rx1.try_recv().is_err());
        g.tick(now + Duration::from_secs(6));
        let (o1, o2) = (rx1.try_recv().expect("m1"), rx2.try_recv().expect("m2"));
        assert_eq!(
            (o1.generation, o2.generation),
            (1, 1),
            "one generation for both"
        );
        sync(&mut g, &o1.leader, 1, vec![], now + Duration::from_secs(6));
        // A later rebalance of the non-empty group is not delayed.
        let later = now + Duration::from_secs(7);
        let rx1 = join(&mut g, delayed("m1"), "x", later);
        let rx2 = join(&mut g, delayed("m2"), "x", later);
        assert_eq!(rx1.try_recv().expect("m1").generation, 2);
        assert_eq!(rx2.try_recv().expect("m2").generation, 2);
    }

    #[test]
    fn a_restored_group_keeps_generation_members_and_static_ids() {
        let now = Instant::now();
        let mut g = Group::new("g");
        let mut r = req("", &["range"]);
        r.instance_id = Some("i1".into());
        join(&mut g, r.clone(), "s1", now)
            .try_recv()
            .expect("static");
        let rx2 = join_new(&mut g, "m2", &["range"], now);
        let o1 = join(
            &mut g,
            JoinRequest {
                member_id: "s1".into(),
                ..r.clone()
            },
            "x",
            now,
        )
        .try_recv()
        .expect("s1 rejoined");
        rx2.try_recv().expect("m2");
        assert_eq!(g.take_metadata(1), None, "nothing to write mid-rebalance");
        let gen = o1.generation;
        let leader = o1.leader.clone();
        let follower = if leader == "s1" { "m2" } else { "s1" };
        sync(&mut g, follower, gen, vec![], now);
        sync(
            &mut g,
            &leader,
            gen,
            vec![
                ("s1".into(), Bytes::from_static(b"A")),
                ("m2".into(), Bytes::from_static(b"B")),
            ],
            now,
        );
        let md = g.take_metadata(7).expect("Stable asks for a record");
        assert_eq!(g.take_metadata(8), None, "taken once");
        assert_eq!((md.generation, md.members.len()), (gen, 2));

        let later = now + Duration::from_secs(60);
        let mut back = Group::restore("g", md, later);
        assert_eq!(back.state(), GroupState::Stable);
        assert_eq!(back.generation(), gen);
        assert_eq!(back.leader(), Some(leader.as_str()));
        assert_eq!(back.heartbeat("m2", None, gen, later), errors::NONE);
        assert_eq!(back.may_commit("m2", None, gen, later), errors::NONE);
        // The static member comes back with a new member id: the old one is fenced, the
        // group rebalances into the next generation.
        let rx = join(
            &mut back,
            JoinRequest {
                member_id: String::new(),
                ..r
            },
            "s1-new",
            later,
        );
        assert_eq!(
            back.heartbeat("s1", Some("i1"), gen, later),
            errors::UNKNOWN_MEMBER_ID
        );
        drop(rx);
        // Sessions restart at load: silent members expire one session timeout later.
        back.tick(later + Duration::from_secs(11));
        assert!(back.members().all(|m| m.id != "m2"), "m2 never came back");
    }

    #[test]
    fn leave_rebalances_the_survivor() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "m1", &["range"], now)
            .try_recv()
            .expect("m1");
        sync(&mut g, "m1", 1, vec![], now).try_recv().expect("sync");
        let rx2 = join_new(&mut g, "m2", &["range"], now);
        join(&mut g, req("m1", &["range"]), "x", now)
            .try_recv()
            .expect("m1 rejoined");
        rx2.try_recv().expect("m2 joined");
        sync(&mut g, "m1", 2, vec![], now).try_recv().expect("sync");
        assert_eq!(g.leave("m1", None, now), errors::NONE);
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        let rx = join(&mut g, req("m2", &["range"]), "x", now);
        let out = rx.try_recv().expect("survivor completes the join alone");
        assert_eq!(out.generation, 3);
        assert_eq!(out.leader, "m2", "leadership moves to the survivor");
        assert_eq!(g.leave("m2", None, now), errors::NONE);
        assert_eq!(g.state(), GroupState::Empty);
        assert_eq!(g.leave("m2", None, now), errors::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn expired_session_removes_member_and_slow_rejoiner_is_dropped_at_the_deadline() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "m1", &["range"], now)
            .try_recv()
            .expect("m1");
        sync(&mut g, "m1", 1, vec![], now).try_recv().expect("sync");
        let rx2 = join_new(&mut g, "m2", &["range"], now);
        // m1 never rejoins: the join phase ends at the rebalance timeout (30 s) with m2 alone.
        g.tick(now + Duration::from_secs(5));
        assert!(rx2.try_recv().is_err());
        g.tick(now + Duration::from_secs(31));
        let out = rx2.try_recv().expect("completed at the deadline");
        assert_eq!(out.leader, "m2");
        assert_eq!(g.members().count(), 1);
        // m2 stops heartbeating: its 10 s session expires.
        let later = now + Duration::from_secs(31);
        sync(&mut g, "m2", out.generation, vec![], later)
            .try_recv()
            .expect("sync");
        g.tick(later + Duration::from_secs(11));
        assert_eq!(g.state(), GroupState::Empty);
    }

    #[test]
    fn protocols_must_overlap_and_the_common_one_is_chosen() {
        let now = Instant::now();
        let mut g = Group::new("g");
        join_new(&mut g, "m1", &["cooperative-sticky", "range"], now)
            .try_recv()
            .expect("m1");
        let bad = join(&mut g, req("", &["roundrobin"]), "m9", now)
            .try_recv()
            .expect("answered");
        assert_eq!(bad.error, errors::INCONSISTENT_GROUP_PROTOCOL);
        let rx2 = join_new(&mut g, "m2", &["range"], now);
        let rx1 = join(
            &mut g,
            req("m1", &["cooperative-sticky", "range"]),
            "x",
            now,
        );
        let out = rx1.try_recv().expect("m1");
        assert_eq!(out.protocol_name.as_deref(), Some("range"));
        assert_eq!(
            rx2.try_recv().expect("m2").protocol_name.as_deref(),
            Some("range")
        );
        assert_eq!(
            out.members
                .iter()
                .find(|m| m.member_id == "m2")
                .map(|m| m.metadata.clone()),
            Some(Bytes::from("meta-m2-range"))
        );
    }

    #[test]
    fn static_member_rejoining_fences_its_old_id() {
        let now = Instant::now();
        let mut g = Group::new("g");
        let mut r = req("", &["range"]);
        r.instance_id = Some("i1".into());
        let out = join(&mut g, r.clone(), "old", now)
            .try_recv()
            .expect("static join needs no second step");
        assert_eq!((out.error, out.member_id.as_str()), (errors::NONE, "old"));
        sync(&mut g, "old", 1, vec![], now)
            .try_recv()
            .expect("sync");
        join(&mut g, r, "new", now).try_recv().expect("rejoined");
        assert_eq!(
            g.heartbeat("old", Some("i1"), 2, now),
            errors::UNKNOWN_MEMBER_ID
        );
        assert_eq!(g.heartbeat("new", Some("i1"), 2, now), errors::NONE);
        assert_eq!(g.leave("", Some("i1"), now), errors::NONE);
        assert!(g.is_empty());
    }

    #[test]
    fn commits_need_the_current_generation_unless_the_group_is_empty() {
        let now = Instant::now();
        let mut g = Group::new("g");
        assert_eq!(g.may_commit("", None, -1, now), errors::NONE);
        join_new(&mut g, "m1", &["range"], now)
            .try_recv()
            .expect("m1");
        assert_eq!(
            g.may_commit("m1", None, 1, now),
            errors::REBALANCE_IN_PROGRESS
        );
        sync(&mut g, "m1", 1, vec![], now).try_recv().expect("sync");
        assert_eq!(g.may_commit("m1", None, 1, now), errors::NONE);
        assert_eq!(g.may_commit("m1", None, 0, now), errors::ILLEGAL_GENERATION);
        assert_eq!(g.may_commit("zz", None, 1, now), errors::UNKNOWN_MEMBER_ID);
        assert_eq!(g.may_commit("", None, -1, now), errors::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn subscription_topics_are_read_from_consumer_metadata() {
        // version 1, ["a", "bc"], null user data, owned partitions []
        let mut b = vec![0u8, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c'];
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        assert_eq!(
            parse_subscription_topics(&b),
            Some(vec!["a".to_string(), "bc".to_string()])
        );
        assert_eq!(parse_subscription_topics(&b[..7]), None);
    }
}
