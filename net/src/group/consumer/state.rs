//! One consumer group on the consumer protocol (KIP-848): members, the group epoch, the
//! target assignment and its epoch, and each member's reconciliation towards its target
//! (Kafka's ConsumerGroup + CurrentAssignmentBuilder behaviour). Pure and synchronous:
//! time comes in as `now` and topics through a [`TopicView`]. Owned by the shard that owns
//! the group id (`ShardTable::owner_of_key`); that shard's view is the only one. Membership
//! is written to `__consumer_offsets` by the coordinator ([`super::records`]) and rebuilt
//! from it at start-up ([`ConsumerGroup::restore`]).
//!
//! Revoke before assign: a partition enters a member's assignment only when no member owns
//! it, and a member owns a partition from the heartbeat answer that gives it until the
//! heartbeat in which it no longer reports it (or it leaves or is removed). So no
//! partition is ever owned by two members, whatever order heartbeats arrive in.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use regex::{Regex, RegexBuilder};

use super::assignor::{Assignment, Assignor, MemberSpec, TopicId};
use super::records::LoadedConsumerGroup;
use crate::errors;
use crate::limits::{
    CONSUMER_GROUP_MEMBERS_MAX, CONSUMER_GROUP_PARTITIONS_MAX,
    CONSUMER_HEARTBEAT_INTERVAL_MS_DEFAULT, CONSUMER_METADATA_REFRESH_MS,
    CONSUMER_SESSION_TIMEOUT_MS_DEFAULT, CONSUMER_SUBSCRIBED_TOPICS_MAX,
    CONSUMER_TOPIC_REGEX_BYTES_MAX, CONSUMER_TOPIC_REGEX_COMPILED_BYTES_MAX,
    REBALANCE_TIMEOUT_MS_MAX,
};

/// Member epoch of a member leaving for good.
pub const LEAVE_GROUP_EPOCH: i32 = -1;
/// Member epoch of a static member leaving for now (its partitions wait for it).
pub const LEAVE_GROUP_STATIC_EPOCH: i32 = -2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    /// The group epoch moved past the target assignment's.
    Assigning,
    /// Some member has not reached the target assignment yet.
    Reconciling,
    Stable,
}

impl GroupState {
    /// The name Kafka uses in ListGroups and ConsumerGroupDescribe.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
            GroupState::Stable => "Stable",
        }
    }
}

/// Where a member is on its way to its target assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// At the target epoch with the whole target.
    Stable,
    /// Must give up `revoking` (and report so) before it moves to the new epoch.
    UnrevokedPartitions,
    /// At the target epoch, waiting for other members to release some of its target.
    UnreleasedPartitions,
}

/// The topics a group can see (the cluster metadata snapshot on the owner shard).
pub trait TopicView {
    /// (topic id, partition count) of the topic named `name`.
    fn topic(&self, name: &str) -> Option<(TopicId, i32)>;
    /// Every (non-internal) topic name `re` matches.
    fn matching(&self, re: &Regex) -> Vec<String>;
}

/// Compiles a subscription regex with Kafka's whole-name match (Pattern.matches) and
/// bounded size.
pub fn compile_regex(source: &str) -> Result<Regex, String> {
    if source.len() > CONSUMER_TOPIC_REGEX_BYTES_MAX {
        return Err(format!(
            "regex longer than {CONSUMER_TOPIC_REGEX_BYTES_MAX} bytes"
        ));
    }
    RegexBuilder::new(&format!("^(?:{source})$"))
        .size_limit(CONSUMER_TOPIC_REGEX_COMPILED_BYTES_MAX)
        .dfa_size_limit(CONSUMER_TOPIC_REGEX_COMPILED_BYTES_MAX)
        .build()
        .map_err(|e| e.to_string())
}

/// The broker's session timeout and heartbeat interval for members (`[server]` config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub session_timeout: Duration,
    pub heartbeat_interval_ms: i32,
}

impl Default for Timing {
    /// Kafka's defaults.
    fn default() -> Timing {
        Timing {
            session_timeout: Duration::from_millis(CONSUMER_SESSION_TIMEOUT_MS_DEFAULT as u64),
            heartbeat_interval_ms: CONSUMER_HEARTBEAT_INTERVAL_MS_DEFAULT,
        }
    }
}

/// A ConsumerGroupHeartbeat, decoded. `None` fields are "unchanged since last time".
#[derive(Clone, Debug)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now, when it says.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

/// A ConsumerGroupHeartbeat answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when the member joined, reported what it owns, or its assignment changed.
    pub assignment: Option<Assignment>,
}

impl HeartbeatOutcome {
    pub fn error(code: i16, message: impl Into<String>) -> HeartbeatOutcome {
        HeartbeatOutcome {
            error: code,
            message: Some(message.into()),
            ..HeartbeatOutcome::default()
        }
    }
}

type Refusal = (i16, String);

/// Kafka's request checks for a heartbeat, before any group state is read.
pub fn validate(req: &HeartbeatRequest, version: i16) -> Result<(), Refusal> {
    let bad = |m: &str| Err((errors::INVALID_REQUEST, m.to_string()));
    if req.instance_id.as_deref() == Some("") {
        return bad("InstanceId can't be empty.");
    }
    if req.rack_id.as_deref() == Some("") {
        return bad("RackId can't be empty.");
    }
    if version >= 1 && req.member_id.is_empty() {
        return bad("MemberId can't be empty.");
    }
    match req.member_epoch {
        0 => {
            if req.rebalance_timeout_ms == -1 {
                return bad("RebalanceTimeoutMs must be provided in first request.");
            }
            if req.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return bad("TopicPartitions must be empty when (re-)joining.");
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return bad(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        }
        e if e > 0 || e == LEAVE_GROUP_EPOCH => {
            if req.member_id.is_empty() {
                return bad("MemberId can't be empty.");
            }
        }
        LEAVE_GROUP_STATIC_EPOCH => {
            if req.member_id.is_empty() {
                return bad("MemberId can't be empty.");
            }
            if req.instance_id.is_none() {
                return bad("InstanceId can't be null.");
            }
        }
        _ => return bad("MemberEpoch is invalid."),
    }
    if req
        .subscribed_topic_names
        .as_ref()
        .is_some_and(|n| n.len() > CONSUMER_SUBSCRIBED_TOPICS_MAX)
    {
        return bad("Too many subscribed topic names.");
    }
    if let Some(name) = &req.server_assignor {
        if Assignor::from_name(name).is_none() {
            return Err((
                errors::UNSUPPORTED_ASSIGNOR,
                format!(
                    "ServerAssignor {name} is not supported. Supported assignors: uniform, range."
                ),
            ));
        }
    }
    if let Some(re) = req
        .subscribed_topic_regex
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        compile_regex(re).map_err(|e| (errors::INVALID_REGULAR_EXPRESSION, e))?;
    }
    Ok(())
}

/// One member of the group.
#[derive(Clone, Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// What the member owns and may consume.
    pub assigned: Assignment,
    /// What it still owns but must give up.
    pub revoking: Assignment,
    pub topic_names: BTreeSet<String>,
    /// (source, compiled) of the subscription regex.
    pub regex: Option<(String, Regex)>,
    pub server_assignor: Option<Assignor>,
    pub rebalance_timeout: Duration,
    session_deadline: Instant,
    revoke_deadline: Option<Instant>,
}

impl Member {
    fn new(id: &str, now: Instant, timing: Timing) -> Member {
        Member {
            id: id.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            epoch: 0,
            previous_epoch: -1,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            topic_names: BTreeSet::new(),
            regex: None,
            server_assignor: None,
            rebalance_timeout: Duration::from_millis(REBALANCE_TIMEOUT_MS_MAX as u64),
            session_deadline: now + timing.session_timeout,
            revoke_deadline: None,
        }
    }

    fn subscribes_to(&self, name: &str) -> bool {
        self.topic_names.contains(name)
            || self.regex.as_ref().is_some_and(|(_, r)| r.is_match(name))
    }
}

fn partitions(a: &Assignment) -> impl Iterator<Item = (TopicId, i32)> + '_ {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
}

fn contains(a: &Assignment, tp: (TopicId, i32)) -> bool {
    a.get(&tp.0).is_some_and(|ps| ps.contains(&tp.1))
}

fn insert(a: &mut Assignment, tp: (TopicId, i32)) {
    a.entry(tp.0).or_default().insert(tp.1);
}

fn is_subset(small: &Assignment, big: &Assignment) -> bool {
    partitions(small).all(|tp| contains(big, tp))
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    partitions(a).any(|tp| contains(b, tp))
}

/// One reconciliation step's result for a member.
struct NextAssignment {
    state: MemberState,
    epoch: i32,
    assigned: Assignment,
    revoking: Assignment,
}

/// One consumer-protocol group.
#[derive(Debug)]
pub struct ConsumerGroup {
    pub id: String,
    group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    static_members: BTreeMap<String, String>,
    /// Target assignment per member, as of `assignment_epoch`.
    target: BTreeMap<String, Assignment>,
    /// The member owning each partition (assigned or still revoking).
    owners: BTreeMap<(TopicId, i32), String>,
    /// Subscription metadata: every subscribed topic that exists, name -> (id, partitions).
    subscribed: BTreeMap<String, (TopicId, i32)>,
    refresh_at: Option<Instant>,
    assignor: Assignor,
}

impl ConsumerGroup {
    pub fn new(id: impl Into<String>) -> ConsumerGroup {
        ConsumerGroup {
            id: id.into(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            target: BTreeMap::new(),
            owners: BTreeMap::new(),
            subscribed: BTreeMap::new(),
            refresh_at: None,
            assignor: Assignor::DEFAULT,
        }
    }

    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }
    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }
    pub fn assignor_name(&self) -> &'static str {
        self.assignor.name()
    }
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }
    pub fn target_of(&self, member_id: &str) -> Assignment {
        self.target.get(member_id).cloned().unwrap_or_default()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    /// Target assignment per member, as of the assignment epoch.
    pub fn targets(&self) -> &BTreeMap<String, Assignment> {
        &self.target
    }
    /// Subscription metadata: subscribed topics that exist, name -> (id, partitions).
    pub fn subscribed(&self) -> &BTreeMap<String, (TopicId, i32)> {
        &self.subscribed
    }

    /// The group as its records left it (start-up replay): members get a fresh session
    /// (and revocation) timer from `now`. Damaged input is made consistent rather than
    /// trusted: members without both their records are dropped, unknown assignors
    /// forgotten, a regex that no longer compiles dropped, and a partition two members
    /// claim stays with the first. `None` when the group was deleted (no epoch record).
    pub fn restore(
        id: impl Into<String>,
        loaded: &LoadedConsumerGroup,
        timing: Timing,
        now: Instant,
    ) -> Option<ConsumerGroup> {
        let epoch = loaded.epoch?;
        let mut g = ConsumerGroup::new(id);
        g.group_epoch = epoch;
        g.assignment_epoch = loaded.assignment_epoch.min(epoch);
        g.subscribed = loaded.subscribed.clone();
        for (mid, v) in &loaded.members {
            let Some(c) = loaded.current.get(mid) else {
                continue;
            };
            let mut m = Member::new(mid, now, timing);
            m.instance_id = v.instance_id.clone();
            m.rack_id = v.rack_id.clone();
            m.client_id = v.client_id.clone();
            m.client_host = v.client_host.clone();
            m.topic_names = v.topic_names.iter().cloned().collect();
            m.regex = v
                .topic_regex
                .as_ref()
                .and_then(|s| compile_regex(s).ok().map(|re| (s.clone(), re)));
            m.server_assignor = v.server_assignor.as_deref().and_then(Assignor::from_name);
            if v.rebalance_timeout_ms >= 0 {
                m.rebalance_timeout = Duration::from_millis(
                    v.rebalance_timeout_ms.min(REBALANCE_TIMEOUT_MS_MAX) as u64,
                );
            }
            m.epoch = c.epoch;
            m.previous_epoch = c.previous_epoch;
            m.state = c.state;
            // Ownership: a partition already owned by a member restored before is not
            // taken again.
            for (field, from) in [
                (&mut m.assigned, &c.assigned),
                (&mut m.revoking, &c.revoking),
            ] {
                for tp in partitions(from) {
                    if let std::collections::btree_map::Entry::Vacant(e) = g.owners.entry(tp) {
                        e.insert(mid.clone());
                        insert(field, tp);
                    }
                }
            }
            if m.state == MemberState::UnrevokedPartitions {
                m.revoke_deadline = Some(now + m.rebalance_timeout);
            }
            if let Some(instance) = &m.instance_id {
                g.static_members
                    .entry(instance.clone())
                    .or_insert_with(|| mid.clone());
            }
            g.members.insert(mid.clone(), m);
        }
        g.target = loaded
            .targets
            .iter()
            .filter(|(mid, _)| g.members.contains_key(*mid))
            .map(|(mid, a)| (mid.clone(), a.clone()))
            .collect();
        g.assignor = g.preferred_assignor();
        Some(g)
    }
    /// Names of the topics some member subscribes to that exist.
    pub fn subscribed_topic_names(&self) -> impl Iterator<Item = &String> {
        self.subscribed.keys()
    }

    pub fn state(&self) -> GroupState {
        if self.members.is_empty() {
            GroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            GroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            GroupState::Reconciling
        } else {
            GroupState::Stable
        }
    }

    /// A heartbeat (join, keep-alive, acknowledgement, leave). The request has passed
    /// [`validate`]; `req.member_id` is set (the caller makes one for v0 joins).
    pub fn heartbeat(
        &mut self,
        req: &HeartbeatRequest,
        topics: &dyn TopicView,
        timing: Timing,
        now: Instant,
    ) -> HeartbeatOutcome {
        if req.member_epoch == LEAVE_GROUP_EPOCH || req.member_epoch == LEAVE_GROUP_STATIC_EPOCH {
            return self.leave(req, timing);
        }
        match self.heartbeat_member(req, topics, timing, now) {
            Ok(out) => out,
            Err((code, message)) => HeartbeatOutcome {
                member_id: req.member_id.clone(),
                member_epoch: req.member_epoch,
                ..HeartbeatOutcome::error(code, message)
            },
        }
    }

    fn heartbeat_member(
        &mut self,
        req: &HeartbeatRequest,
        topics: &dyn TopicView,
        timing: Timing,
        now: Instant,
    ) -> Result<HeartbeatOutcome, Refusal> {
        let joining = req.member_epoch == 0;
        let id = req.member_id.clone();
        let mut changed = self.admit(req, timing, now)?;
        if joining {
            // A static member that left for now (by whichever instance id) comes back
            // under its member id: at the epoch it had, not at the leave marker.
            if let Some(m) = self.members.get_mut(&id) {
                if m.epoch == LEAVE_GROUP_STATIC_EPOCH {
                    m.epoch = m.previous_epoch.max(0);
                }
            }
        }
        let before = self
            .members
            .get(&id)
            .map(|m| m.assigned.clone())
            .unwrap_or_default();

        // 1. The member's subscription and settings; a new subscription bumps the epoch.
        let Some(m) = self.members.get_mut(&id) else {
            return Err((
                errors::UNKNOWN_MEMBER_ID,
                format!("Member {id} is not in the group."),
            ));
        };
        if let Some(names) = &req.subscribed_topic_names {
            let names: BTreeSet<String> = names.iter().cloned().collect();
            if names != m.topic_names {
                m.topic_names = names;
                changed = true;
            }
        }
        if let Some(source) = &req.subscribed_topic_regex {
            let current = m.regex.as_ref().map(|(s, _)| s.as_str()).unwrap_or("");
            if source != current {
                m.regex = if source.is_empty() {
                    None
                } else {
                    let re = compile_regex(source)
                        .map_err(|e| (errors::INVALID_REGULAR_EXPRESSION, e))?;
                    Some((source.clone(), re))
                };
                changed = true;
            }
        }
        if let Some(name) = &req.server_assignor {
            m.server_assignor = Assignor::from_name(name);
        }
        if req.rebalance_timeout_ms >= 0 {
            m.rebalance_timeout = Duration::from_millis(
                req.rebalance_timeout_ms.min(REBALANCE_TIMEOUT_MS_MAX) as u64,
            );
        }
        if req.instance_id.is_some() {
            m.instance_id = req.instance_id.clone();
        }
        if req.rack_id.is_some() {
            m.rack_id = req.rack_id.clone();
        }
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.session_deadline = now + timing.session_timeout;

        // 2. Subscription metadata: which subscribed topics exist, with how many partitions.
        if changed || self.refresh_at.is_none_or(|at| at <= now) {
            let subscribed = self.resolve_subscriptions(topics);
            if subscribed != self.subscribed {
                self.subscribed = subscribed;
                changed = true;
            }
            self.refresh_at = Some(now + Duration::from_millis(CONSUMER_METADATA_REFRESH_MS));
        }
        if changed {
            self.group_epoch = self.group_epoch.saturating_add(1);
        }

        // 3. A new target assignment when the group epoch moved on.
        if self.group_epoch > self.assignment_epoch {
            self.compute_target();
        }

        // 4. Move the member towards its target.
        self.reconcile(&id, req.owned.as_ref(), now);

        let m = self
            .members
            .get(&id)
            .ok_or((errors::UNKNOWN_MEMBER_ID, String::new()))?;
        let send_assignment = joining || req.owned.is_some() || m.assigned != before;
        Ok(HeartbeatOutcome {
            error: errors::NONE,
            message: None,
            member_id: id,
            member_epoch: m.epoch,
            heartbeat_interval_ms: timing.heartbeat_interval_ms,
            assignment: send_assignment.then(|| m.assigned.clone()),
        })
    }

    /// Finds or creates the member the heartbeat is from and checks its epoch. Returns
    /// whether membership changed (a new member).
    fn admit(
        &mut self,
        req: &HeartbeatRequest,
        timing: Timing,
        now: Instant,
    ) -> Result<bool, Refusal> {
        let id = &req.member_id;
        let joining = req.member_epoch == 0;
        let Some(instance) = &req.instance_id else {
            return match self.members.get(id) {
                // A member rejoining (epoch 0) with its id keeps what the group gave it.
                Some(m) if !joining => check_epoch(m, req).map(|()| false),
                Some(_) => Ok(false),
                None if joining => self.add_member(id, timing, now).map(|()| true),
                None => Err((
                    errors::UNKNOWN_MEMBER_ID,
                    format!("Member {id} is not in the group."),
                )),
            };
        };
        let holder = self.static_members.get(instance).cloned();
        if !joining {
            let Some(holder) = holder else {
                return Err((
                    errors::UNKNOWN_MEMBER_ID,
                    format!("Instance id {instance} is unknown."),
                ));
            };
            if &holder != id {
                return Err((
                    errors::FENCED_INSTANCE_ID,
                    format!("Static member {id} with instance id {instance} was fenced by member {holder}."),
                ));
            }
            let m = self
                .members
                .get(id)
                .ok_or((errors::UNKNOWN_MEMBER_ID, String::new()))?;
            return check_epoch(m, req).map(|()| false);
        }
        match holder {
            None => {
                if !self.members.contains_key(id) {
                    self.add_member(id, timing, now)?;
                }
                self.static_members.insert(instance.clone(), id.clone());
                Ok(true)
            }
            Some(holder) if &holder == id => Ok(false),
            Some(holder) => {
                let Some(old) = self.members.get(&holder) else {
                    return Err((errors::UNKNOWN_SERVER_ERROR, String::new()));
                };
                if old.epoch != LEAVE_GROUP_STATIC_EPOCH {
                    return Err((
                        errors::UNRELEASED_INSTANCE_ID,
                        format!("Static member {id} with instance id {instance} cannot join the group because the instance id is owned by {holder} member."),
                    ));
                }
                // The static member is back under a new id: it takes over the old
                // member's assignment (released here, owned again when reconciled).
                let old_target = self.target.remove(&holder).unwrap_or_default();
                let assigned = old.assigned.clone();
                self.drop_member(&holder);
                self.add_member(id, timing, now)?;
                if let Some(m) = self.members.get_mut(id) {
                    m.assigned = assigned;
                }
                self.target.insert(id.clone(), old_target);
                self.set_ownership(id);
                self.static_members.insert(instance.clone(), id.clone());
                Ok(false)
            }
        }
    }

    fn add_member(&mut self, id: &str, timing: Timing, now: Instant) -> Result<(), Refusal> {
        if self.members.len() >= CONSUMER_GROUP_MEMBERS_MAX {
            return Err((
                errors::GROUP_MAX_SIZE_REACHED,
                format!("The consumer group has reached its maximum capacity of {CONSUMER_GROUP_MEMBERS_MAX} members."),
            ));
        }
        tracing::info!(group = %self.id, member = %id, "member joins the consumer group");
        self.members
            .insert(id.to_string(), Member::new(id, now, timing));
        Ok(())
    }

    /// Every subscribed topic that exists, within the group's partition budget.
    fn resolve_subscriptions(&self, topics: &dyn TopicView) -> BTreeMap<String, (TopicId, i32)> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        // Members of one application share their regex: match each distinct one once.
        let mut regexes: BTreeMap<&str, &Regex> = BTreeMap::new();
        for m in self.members.values() {
            names.extend(m.topic_names.iter().cloned());
            if let Some((source, re)) = &m.regex {
                regexes.insert(source, re);
            }
        }
        for re in regexes.values() {
            names.extend(topics.matching(re));
        }
        let mut out = BTreeMap::new();
        let mut budget = CONSUMER_GROUP_PARTITIONS_MAX;
        for name in names {
            let Some((id, n)) = topics.topic(&name) else {
                continue;
            };
            let n_usize = usize::try_from(n).unwrap_or(0);
            if n_usize > budget {
                tracing::warn!(group = %self.id, topic = %name,
                    "subscription exceeds {CONSUMER_GROUP_PARTITIONS_MAX} partitions; topic left unassigned");
                continue;
            }
            budget -= n_usize;
            out.insert(name, (id, n));
        }
        out
    }

    /// The assignor most members ask for, else the default (Kafka's choice rule).
    fn preferred_assignor(&self) -> Assignor {
        let mut votes: BTreeMap<&'static str, usize> = BTreeMap::new();
        for a in self.members.values().filter_map(|m| m.server_assignor) {
            *votes.entry(a.name()).or_default() += 1;
        }
        votes
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
            .and_then(|(name, _)| Assignor::from_name(name))
            .unwrap_or(Assignor::DEFAULT)
    }

    fn compute_target(&mut self) {
        let topics: BTreeMap<TopicId, i32> = self.subscribed.values().copied().collect();
        let specs: BTreeMap<String, MemberSpec> = self
            .members
            .values()
            .map(|m| {
                let subscribed = self
                    .subscribed
                    .iter()
                    .filter(|(name, _)| m.subscribes_to(name))
                    .map(|(_, (id, _))| *id)
                    .collect();
                let spec = MemberSpec {
                    topics: subscribed,
                    current: self.target_of(&m.id),
                };
                (m.id.clone(), spec)
            })
            .collect();
        self.assignor = self.preferred_assignor();
        self.target = self.assignor.assign(&specs, &topics);
        self.assignment_epoch = self.group_epoch;
        tracing::info!(group = %self.id, epoch = self.group_epoch, assignor = self.assignor.name(),
            members = self.members.len(), "new target assignment");
    }

    /// Kafka's CurrentAssignmentBuilder: one step of the member towards its target.
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now: Instant) {
        let Some(m) = self.members.get(id) else {
            return;
        };
        let target_epoch = self.assignment_epoch;
        let step = match m.state {
            MemberState::Stable if m.epoch == target_epoch => None,
            MemberState::UnrevokedPartitions
                if owned.is_none_or(|o| intersects(o, &m.revoking)) =>
            {
                None
            }
            _ => Some(self.next_assignment(m, target_epoch)),
        };
        let Some(next) = step else {
            return;
        };
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if next.epoch != m.epoch {
            m.previous_epoch = m.epoch;
            m.epoch = next.epoch;
        }
        m.revoke_deadline = match next.state {
            MemberState::UnrevokedPartitions => m
                .revoke_deadline
                .filter(|_| m.state == MemberState::UnrevokedPartitions)
                .or(Some(now + m.rebalance_timeout)),
            _ => None,
        };
        m.state = next.state;
        m.assigned = next.assigned;
        m.revoking = next.revoking;
        self.set_ownership(id);
    }

    fn next_assignment(&self, m: &Member, target_epoch: i32) -> NextAssignment {
        let target = self.target.get(&m.id).cloned().unwrap_or_default();
        let mut retained = Assignment::new();
        let mut revoking = Assignment::new();
        for tp in partitions(&m.assigned) {
            if contains(&target, tp) {
                insert(&mut retained, tp);
            } else {
                insert(&mut revoking, tp);
            }
        }
        let mut newly = Assignment::new();
        let mut unreleased = false;
        for tp in partitions(&target).filter(|tp| !contains(&m.assigned, *tp)) {
            match self.owners.get(&tp) {
                Some(owner) if owner != &m.id => unreleased = true,
                _ => insert(&mut newly, tp),
            }
        }
        if !revoking.is_empty() {
            return NextAssignment {
                state: MemberState::UnrevokedPartitions,
                epoch: m.epoch,
                assigned: retained,
                revoking,
            };
        }
        for tp in partitions(&newly) {
            insert(&mut retained, tp);
        }
        NextAssignment {
            state: if unreleased {
                MemberState::UnreleasedPartitions
            } else {
                MemberState::Stable
            },
            epoch: target_epoch,
            assigned: retained,
            revoking: Assignment::new(),
        }
    }

    /// Records the member as owner of its assigned and revoking partitions (and of nothing
    /// else). A partition another member owns is never taken: that would break the one
    /// rule this state machine exists for.
    fn set_ownership(&mut self, id: &str) {
        self.owners.retain(|_, owner| owner != id);
        let Some(m) = self.members.get(id) else {
            return;
        };
        for tp in partitions(&m.assigned).chain(partitions(&m.revoking)) {
            let previous = self.owners.insert(tp, id.to_string());
            assert!(
                previous.is_none(),
                "group {}: partition {tp:?} given to {id} while {previous:?} owns it",
                self.id
            );
        }
    }

    /// Removes a member and releases what it owned (no epoch change).
    fn drop_member(&mut self, id: &str) {
        let Some(m) = self.members.remove(id) else {
            return;
        };
        if let Some(instance) = &m.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(id) {
                self.static_members.remove(instance);
            }
        }
        self.owners.retain(|_, owner| owner != id);
        self.target.remove(id);
    }

    /// A member left or was removed: the others get a new target assignment.
    fn remove_member(&mut self, id: &str) {
        self.drop_member(id);
        self.group_epoch = self.group_epoch.saturating_add(1);
        // The subscription metadata may shrink: recompute it on the next heartbeat.
        self.refresh_at = None;
    }

    fn leave(&mut self, req: &HeartbeatRequest, timing: Timing) -> HeartbeatOutcome {
        let refuse = |code: i16, message: String| HeartbeatOutcome {
            member_id: req.member_id.clone(),
            member_epoch: req.member_epoch,
            ..HeartbeatOutcome::error(code, message)
        };
        let id = req.member_id.clone();
        if let Some(instance) = &req.instance_id {
            match self.static_members.get(instance) {
                None => return refuse(errors::UNKNOWN_MEMBER_ID, format!("Instance id {instance} is unknown.")),
                Some(holder) if holder != &id => {
                    return refuse(
                        errors::FENCED_INSTANCE_ID,
                        format!("Static member {id} with instance id {instance} was fenced by member {holder}."),
                    )
                }
                Some(_) => {}
            }
        } else if !self.members.contains_key(&id) {
            return refuse(
                errors::UNKNOWN_MEMBER_ID,
                format!("Member {id} is not in the group."),
            );
        }
        if req.member_epoch == LEAVE_GROUP_STATIC_EPOCH {
            // A static member away for a while: its partitions wait for it until its
            // session expires.
            if let Some(m) = self.members.get_mut(&id) {
                m.previous_epoch = m.epoch;
                m.epoch = LEAVE_GROUP_STATIC_EPOCH;
            }
            tracing::info!(group = %self.id, member = %id, "static member leaves for now");
        } else {
            tracing::info!(group = %self.id, member = %id, "member leaves the consumer group");
            self.remove_member(&id);
        }
        HeartbeatOutcome {
            member_id: id,
            member_epoch: req.member_epoch,
            heartbeat_interval_ms: timing.heartbeat_interval_ms,
            ..HeartbeatOutcome::default()
        }
    }

    /// Removes members whose session expired or who held on to revoked partitions past
    /// their rebalance timeout.
    pub fn tick(&mut self, now: Instant) -> bool {
        let expired: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if m.session_deadline <= now {
                    Some((m.id.clone(), "session expired"))
                } else if m.revoke_deadline.is_some_and(|d| d <= now) {
                    Some((m.id.clone(), "did not revoke within its rebalance timeout"))
                } else {
                    None
                }
            })
            .collect();
        let removed = !expired.is_empty();
        for (id, why) in expired {
            tracing::info!(group = %self.id, member = %id, why, "member removed from the consumer group");
            self.remove_member(&id);
        }
        removed
    }

    /// OffsetCommit from `member_id` at `member_epoch` (Kafka's validateOffsetCommit).
    pub fn validate_commit(&self, member_id: &str, member_epoch: i32, version: i16) -> i16 {
        if member_epoch < 0 && self.members.is_empty() {
            // The admin client or a consumer outside group management.
            return errors::NONE;
        }
        let Some(m) = self.members.get(member_id) else {
            return errors::UNKNOWN_MEMBER_ID;
        };
        if version < 9 {
            return errors::UNSUPPORTED_VERSION;
        }
        if member_epoch != m.epoch {
            return errors::STALE_MEMBER_EPOCH;
        }
        errors::NONE
    }

    /// OffsetFetch from `member_id` at `member_epoch` (Kafka's validateOffsetFetch).
    pub fn validate_fetch(&self, member_id: Option<&str>, member_epoch: i32) -> i16 {
        let Some(member_id) = member_id.filter(|_| member_epoch >= 0) else {
            return errors::NONE;
        };
        match self.members.get(member_id) {
            None => errors::UNKNOWN_MEMBER_ID,
            Some(m) if m.epoch != member_epoch => errors::STALE_MEMBER_EPOCH,
            Some(_) => errors::NONE,
        }
    }

    /// Checks the invariants every step must keep (tests; O(partitions)).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut owner_of: BTreeMap<(TopicId, i32), &str> = BTreeMap::new();
        for m in self.members.values() {
            for tp in partitions(&m.assigned).chain(partitions(&m.revoking)) {
                if let Some(other) = owner_of.insert(tp, &m.id) {
                    return Err(format!("{tp:?} owned by {other} and {}", m.id));
                }
            }
            if m.epoch > self.assignment_epoch {
                return Err(format!("{} epoch {} past the target's", m.id, m.epoch));
            }
        }
        let recorded: BTreeMap<(TopicId, i32), &str> =
            self.owners.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if recorded != owner_of {
            return Err("owner index out of step with the members".into());
        }
        if self.assignment_epoch > self.group_epoch {
            return Err("target assignment ahead of the group epoch".into());
        }
        Ok(())
    }
}

/// Kafka's member epoch check: a greater epoch, or a smaller one that is not the
/// previous epoch with a subset of the current partitions (a lost answer), is fenced.
fn check_epoch(m: &Member, req: &HeartbeatRequest) -> Result<(), Refusal> {
    let fenced = |why: &str| {
        Err((
            errors::FENCED_MEMBER_EPOCH,
            format!(
                "The consumer group member has a {why} member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                req.member_epoch, m.epoch
            ),
        ))
    };
    if req.member_epoch > m.epoch {
        return fenced("greater");
    }
    if req.member_epoch < m.epoch
        && (req.member_epoch != m.previous_epoch
            || !req
                .owned
                .as_ref()
                .is_some_and(|o| is_subset(o, &m.assigned)))
    {
        return fenced("smaller");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
