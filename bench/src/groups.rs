//! `sluice bench groups`: the two consumer-group figures issue 4 asks for, measured over
//! the wire against any Kafka-API broker.
//!
//! - Rebalance: N members (one thread and connection each) form a group over a topic of P
//!   partitions; then, round after round, every member re-joins at once with changed
//!   subscription user data (so each join really asks for a rebalance), the leader
//!   computes a range assignment and every member syncs. A round's figure is the time
//!   from the last JoinGroup sent to the last SyncGroup answered: the broker's join and
//!   sync phases plus loopback round trips, with no client-side waits (no heartbeat
//!   interval, no poll loop) in it. The first formation of the empty group is reported
//!   apart: it includes the broker's group.initial.rebalance.delay.ms by design.
//! - Commits: OffsetCommit requests at a fixed rate (one partition each, from outside the
//!   group protocol, spread over C connections, each pipelined) for a bounded time, with the broker's
//!   CPU time read from /proc/<pid>/stat before and after, next to an idle window of the
//!   same broker for the baseline.

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::error::{BenchError, Result};
use crate::histogram::LatencyHistogram;
use crate::limits::{GROUP_MEMBERS_MAX, GROUP_ROUNDS_MAX, TOPIC_PARTITIONS_MAX};
use crate::wire::Connection;

const JOIN_V: i16 = 7;
const SYNC_V: i16 = 5;
const LEAVE_V: i16 = 4;
const COMMIT_V: i16 = 8;
const CREATE_TOPICS_V: i16 = 5;
const MEMBER_ID_REQUIRED: i16 = 79;
const REBALANCE_IN_PROGRESS: i16 = 27;
const ILLEGAL_GENERATION: i16 = 22;
/// COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR: the
/// coordinator is still starting (Apache Kafka creates and loads its offsets topic first).
const COORDINATOR_STARTING: [i16; 3] = [14, 15, 16];
const FIND_COORDINATOR_V: i16 = 3;
const COORDINATOR_WAIT: Duration = Duration::from_secs(60);
/// Join+sync attempts per member per round before the run fails.
const ROUND_ATTEMPTS_MAX: u32 = 20;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const SESSION_TIMEOUT_MS: i32 = 30_000;
const REBALANCE_TIMEOUT_MS: i32 = 60_000;

#[derive(Debug, Clone)]
pub struct GroupsConfig {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    pub members: usize,
    pub rounds: usize,
    /// OffsetCommit requests per second (0 skips the commit figure).
    pub commit_rate: u32,
    /// Connections the commits are spread over (each pipelines its share).
    pub commit_connections: u32,
    pub commit_duration: Duration,
    /// Broker process whose CPU time is read (`/proc/<pid>/stat`); none: no CPU figure.
    pub broker_pid: Option<u32>,
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct GroupsReport {
    pub first_formation: Duration,
    /// Last JoinGroup sent to last SyncGroup answered, per round.
    pub rounds: Vec<Duration>,
    pub commits_sent: u64,
    pub commits_failed: u64,
    pub commit_window: Duration,
    pub commit_latency_ms_p50: f64,
    pub commit_latency_ms_p99: f64,
    pub commit_latency_ms_max: f64,
    /// Broker CPU seconds over the commit window and over an idle window as long.
    pub broker_cpu_s_commits: Option<f64>,
    pub broker_cpu_s_idle: Option<f64>,
}

pub fn run(config: &GroupsConfig) -> Result<GroupsReport> {
    if config.members == 0 || config.members > GROUP_MEMBERS_MAX {
        return Err(BenchError::Config(format!(
            "members {} not in 1..={GROUP_MEMBERS_MAX}",
            config.members
        )));
    }
    if config.commit_connections == 0 || config.commit_connections as usize > GROUP_MEMBERS_MAX {
        return Err(BenchError::Config(format!(
            "commit connections {} not in 1..={GROUP_MEMBERS_MAX}",
            config.commit_connections
        )));
    }
    if config.rounds > GROUP_ROUNDS_MAX
        || config.partitions < 1
        || config.partitions as u32 > TOPIC_PARTITIONS_MAX
    {
        return Err(BenchError::Config(
            "rounds or partitions out of bounds".into(),
        ));
    }
    create_topic(config)?;
    wait_for_coordinator(
        config,
        &format!("{}-group-{}", config.topic, std::process::id()),
    )?;
    wait_for_coordinator(
        config,
        &format!("{}-commits-{}", config.topic, std::process::id()),
    )?;
    let mut report = rebalances(config)?;
    if config.commit_rate > 0 {
        commits(config, &mut report)?;
    }
    Ok(report)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn create_topic(config: &GroupsConfig) -> Result<()> {
    let mut conn = Connection::connect(
        &config.bootstrap,
        "sluice-bench-groups",
        config.request_timeout,
    )?;
    let mut t = CreatableTopic::default();
    t.name = TopicName(s(&config.topic));
    t.num_partitions = config.partitions;
    t.replication_factor = 1;
    let req = CreateTopicsRequest::default()
        .with_topics(vec![t])
        .with_timeout_ms(30_000);
    let resp: CreateTopicsResponse = conn.call(CREATE_TOPICS_V, &req)?;
    match resp.topics.first().map(|t| t.error_code) {
        Some(0) | Some(TOPIC_ALREADY_EXISTS) => Ok(()),
        code => Err(BenchError::Broker {
            what: format!("CreateTopics {}", config.topic),
            code: code.unwrap_or(-1),
        }),
    }
}

/// Waits (bounded) until the bootstrap broker answers FindCoordinator for `group` with
/// itself; the driver talks to that one broker only.
fn wait_for_coordinator(config: &GroupsConfig, group: &str) -> Result<()> {
    let mut conn = Connection::connect(
        &config.bootstrap,
        "sluice-bench-groups",
        config.request_timeout,
    )?;
    let deadline = Instant::now() + COORDINATOR_WAIT;
    loop {
        let req = FindCoordinatorRequest::default()
            .with_key(s(group))
            .with_key_type(0);
        let resp: FindCoordinatorResponse = conn.call(FIND_COORDINATOR_V, &req)?;
        if resp.error_code == 0 {
            let at = format!("{}:{}", resp.host, resp.port);
            let same = at == config.bootstrap
                || (resp.port.to_string() == config.bootstrap.rsplit(':').next().unwrap_or(""));
            return if same {
                Ok(())
            } else {
                Err(BenchError::Config(format!(
                    "group {group} is coordinated by {at}, not the bootstrap broker"
                )))
            };
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Broker {
                what: format!("FindCoordinator {group}"),
                code: resp.error_code,
            });
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// ConsumerProtocolSubscription v0: the topic, and `round` as user data so every round's
/// JoinGroup carries changed metadata.
fn subscription(topic: &str, round: u32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(4);
    b.put_u32(round);
    b.freeze()
}

/// ConsumerProtocolAssignment v0 of `partitions` of `topic`.
fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(partitions.len() as i32);
    for p in partitions {
        b.put_i32(*p);
    }
    b.put_i32(-1);
    b.freeze()
}

/// The range assignor: members in id order, each a contiguous run of partitions.
fn range_assign(members: &[String], partitions: i32) -> Vec<(String, Vec<i32>)> {
    let mut ids = members.to_vec();
    ids.sort();
    let n = ids.len() as i32;
    let (per, extra) = (partitions / n, partitions % n);
    let mut next = 0;
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| {
            let count = per + i32::from((i as i32) < extra);
            let run: Vec<i32> = (next..next + count).collect();
            next += count;
            (id, run)
        })
        .collect()
}

/// One member's view of a round: when its JoinGroup went out, when its SyncGroup came
/// back, and its assignment.
struct RoundResult {
    join_sent: Instant,
    sync_done: Instant,
    generation: i32,
    partitions: usize,
}

struct Member {
    conn: Connection,
    id: String,
    group: String,
    topic: String,
    partitions: i32,
}

impl Member {
    fn join(&mut self, round: u32) -> Result<JoinGroupResponse> {
        let mut p = JoinGroupRequestProtocol::default();
        p.name = s("range");
        p.metadata = subscription(&self.topic, round);
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_session_timeout_ms(SESSION_TIMEOUT_MS)
            .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
            .with_member_id(s(&self.id))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![p]);
        self.conn.call(JOIN_V, &req)
    }

    /// Join and sync until this member holds an assignment of a completed generation
    /// (a member whose JoinGroup lands after a join phase ended starts another one, and
    /// the others hear REBALANCE_IN_PROGRESS and go again, as real clients do).
    fn round(&mut self, round: u32) -> Result<RoundResult> {
        let join_sent = Instant::now();
        let mut attempts = 0;
        loop {
            match self.attempt(round, join_sent) {
                Err(BenchError::Broker { code, .. })
                    if (code == REBALANCE_IN_PROGRESS || code == ILLEGAL_GENERATION)
                        && attempts < ROUND_ATTEMPTS_MAX =>
                {
                    attempts += 1;
                }
                Err(BenchError::Broker { code, .. })
                    if COORDINATOR_STARTING.contains(&code)
                        && join_sent.elapsed() < COORDINATOR_WAIT =>
                {
                    thread::sleep(Duration::from_millis(250));
                }
                other => return other,
            }
        }
    }

    fn attempt(&mut self, round: u32, join_sent: Instant) -> Result<RoundResult> {
        let mut joined = self.join(round)?;
        if joined.error_code == MEMBER_ID_REQUIRED {
            self.id = joined.member_id.to_string();
            joined = self.join(round)?;
        }
        if joined.error_code != 0 {
            return Err(BenchError::Broker {
                what: "JoinGroup".into(),
                code: joined.error_code,
            });
        }
        self.id = joined.member_id.to_string();
        let assignments = if joined.leader == joined.member_id {
            let ids: Vec<String> = joined
                .members
                .iter()
                .map(|m| m.member_id.to_string())
                .collect();
            range_assign(&ids, self.partitions)
                .into_iter()
                .map(|(id, parts)| {
                    let mut a = SyncGroupRequestAssignment::default();
                    a.member_id = s(&id);
                    a.assignment = assignment(&self.topic, &parts);
                    a
                })
                .collect()
        } else {
            Vec::new()
        };
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_generation_id(joined.generation_id)
            .with_member_id(s(&self.id))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(joined.protocol_name.clone())
            .with_assignments(assignments);
        let synced: SyncGroupResponse = self.conn.call(SYNC_V, &req)?;
        let sync_done = Instant::now();
        if synced.error_code != 0 {
            return Err(BenchError::Broker {
                what: "SyncGroup".into(),
                code: synced.error_code,
            });
        }
        // v0 assignment: version, 1 topic, name, partition count at a known offset.
        let count_at = 2 + 4 + 2 + self.topic.len();
        let partitions = synced
            .assignment
            .get(count_at..count_at + 4)
            .map_or(0, |b| {
                i32::from_be_bytes([b[0], b[1], b[2], b[3]]).max(0) as usize
            });
        Ok(RoundResult {
            join_sent,
            sync_done,
            generation: joined.generation_id,
            partitions,
        })
    }

    fn leave(&mut self) -> Result<()> {
        let mut m = MemberIdentity::default();
        m.member_id = s(&self.id);
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_members(vec![m]);
        let _: LeaveGroupResponse = self.conn.call(LEAVE_V, &req)?;
        Ok(())
    }
}

fn rebalances(config: &GroupsConfig) -> Result<GroupsReport> {
    let group = format!("{}-group-{}", config.topic, std::process::id());
    let n = config.members;
    let barrier = Arc::new(Barrier::new(n));
    let (tx, rx) = mpsc::channel::<(u32, Result<RoundResult>)>();
    let mut threads = Vec::new();
    for i in 0..n {
        let conn = Connection::connect(
            &config.bootstrap,
            &format!("sluice-bench-member-{i}"),
            // A JoinGroup waits for the whole group (and the initial delay).
            config.request_timeout + Duration::from_millis(REBALANCE_TIMEOUT_MS as u64),
        )?;
        let mut member = Member {
            conn,
            id: String::new(),
            group: group.clone(),
            topic: config.topic.clone(),
            partitions: config.partitions,
        };
        let (barrier, tx, rounds) = (barrier.clone(), tx.clone(), config.rounds as u32);
        threads.push(
            thread::Builder::new()
                .name(format!("group-member-{i}"))
                .spawn(move || {
                    for round in 0..=rounds {
                        barrier.wait();
                        let r = member.round(round);
                        let failed = r.is_err();
                        if tx.send((round, r)).is_err() || failed {
                            return;
                        }
                    }
                    // Nobody leaves (a rebalance) while another still syncs the last round.
                    barrier.wait();
                    let _ = member.leave();
                })
                .map_err(|e| BenchError::Config(format!("spawn member thread: {e}")))?,
        );
    }
    drop(tx);
    let mut report = GroupsReport::default();
    for round in 0..=config.rounds as u32 {
        let mut results = Vec::with_capacity(n);
        for _ in 0..n {
            let (r, result) = rx
                .recv()
                .map_err(|_| BenchError::ThreadPanicked("group-member".into()))?;
            debug_assert_eq!(r, round);
            results.push(result?);
        }
        let last_join = results.iter().map(|r| r.join_sent).max();
        let last_sync = results.iter().map(|r| r.sync_done).max();
        let generations: std::collections::BTreeSet<i32> =
            results.iter().map(|r| r.generation).collect();
        let assigned: usize = results.iter().map(|r| r.partitions).sum();
        if generations.len() != 1 || assigned != config.partitions as usize {
            return Err(BenchError::Protocol {
                addr: config.bootstrap.clone(),
                detail: format!(
                    "round {round}: generations {generations:?}, {assigned} of {} partitions assigned",
                    config.partitions
                ),
            });
        }
        let took = match (last_join, last_sync) {
            (Some(j), Some(s)) => s.saturating_duration_since(j),
            _ => Duration::ZERO,
        };
        if round == 0 {
            report.first_formation = took;
        } else {
            report.rounds.push(took);
        }
    }
    for t in threads {
        t.join()
            .map_err(|_| BenchError::ThreadPanicked("group-member".into()))?;
    }
    Ok(report)
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|source| BenchError::Input {
        path: path.clone().into(),
        source,
    })?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| BenchError::Config(format!("{path}: unexpected format")))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|v| v as f64)
            .ok_or_else(|| BenchError::Config(format!("{path}: no field {}", i + 3)))
    };
    // `after` starts at field 3 (state): utime is field 14 -> index 11.
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// One connection's share of the commits: `count` OffsetCommits, the k-th due at
/// `first + k * every`; returns the latency histogram, failed and answered counts.
struct CommitStream {
    conn: Connection,
    group: String,
    topic: String,
    partitions: i32,
    count: u64,
    first: Instant,
    every: Duration,
}

impl CommitStream {
    fn run(self) -> Result<(LatencyHistogram, u64, u64)> {
        let (mut writer, mut reader) = self.conn.split()?;
        let (tx, rx) = mpsc::channel::<(i32, Instant)>();
        let (group, topic, partitions) = (self.group, self.topic, self.partitions);
        let (count, first, every) = (self.count, self.first, self.every);
        let sender = thread::Builder::new()
            .name("commit-writer".into())
            .spawn(move || -> Result<()> {
                for i in 0..count {
                    // Scheduled send time: latencies count from it (no coordinated omission).
                    let due = first + every.mul_f64(i as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    let mut p = OffsetCommitRequestPartition::default();
                    p.partition_index = (i % partitions as u64) as i32;
                    p.committed_offset = i as i64;
                    p.committed_leader_epoch = -1;
                    p.committed_metadata = Some(s(""));
                    let mut t = OffsetCommitRequestTopic::default();
                    t.name = TopicName(s(&topic));
                    t.partitions = vec![p];
                    let req = OffsetCommitRequest::default()
                        .with_group_id(GroupId(s(&group)))
                        .with_generation_id_or_member_epoch(-1)
                        .with_member_id(s(""))
                        .with_topics(vec![t]);
                    let id = writer.send(COMMIT_V, &req)?;
                    if tx.send((id, due)).is_err() {
                        break;
                    }
                }
                Ok(())
            })
            .map_err(|e| BenchError::Config(format!("spawn commit writer: {e}")))?;
        let mut latency = LatencyHistogram::new();
        let (mut failed, mut received) = (0u64, 0u64);
        for (id, due) in rx.iter() {
            let resp: OffsetCommitResponse = reader.recv::<OffsetCommitRequest>(id, COMMIT_V)?;
            latency.record_ns(Instant::now().saturating_duration_since(due).as_nanos() as u64);
            received += 1;
            if resp
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .any(|p| p.error_code != 0)
            {
                failed += 1;
            }
        }
        sender
            .join()
            .map_err(|_| BenchError::ThreadPanicked("commit-writer".into()))??;
        Ok((latency, failed, received))
    }
}

fn commits(config: &GroupsConfig, report: &mut GroupsReport) -> Result<()> {
    let group = format!("{}-commits-{}", config.topic, std::process::id());
    if let Some(pid) = config.broker_pid {
        let before = cpu_seconds(pid)?;
        thread::sleep(config.commit_duration);
        report.broker_cpu_s_idle = Some(cpu_seconds(pid)? - before);
    }
    let connections = config.commit_connections.max(1) as u64;
    let total = (config.commit_rate as f64 * config.commit_duration.as_secs_f64()) as u64;
    // Connection c sends commits c, c + n, c + 2n ... of one schedule at the total rate.
    let interval = Duration::from_secs_f64(1.0 / config.commit_rate as f64);
    let mut streams = Vec::new();
    for c in 0..connections {
        streams.push(CommitStream {
            conn: Connection::connect(
                &config.bootstrap,
                &format!("sluice-bench-commits-{c}"),
                config.request_timeout,
            )?,
            group: group.clone(),
            topic: config.topic.clone(),
            partitions: config.partitions,
            count: total / connections + u64::from(c < total % connections),
            first: Instant::now(),
            every: interval * connections as u32,
        });
    }
    let cpu_before = config.broker_pid.map(cpu_seconds).transpose()?;
    let start = Instant::now();
    let handles: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(c, mut stream)| {
            stream.first = start + interval * c as u32;
            thread::Builder::new()
                .name(format!("commit-stream-{c}"))
                .spawn(move || stream.run())
                .map_err(|e| BenchError::Config(format!("spawn commit stream: {e}")))
        })
        .collect::<Result<_>>()?;
    let mut latency = LatencyHistogram::new();
    let (mut failed, mut received) = (0u64, 0u64);
    for h in handles {
        let (l, f, r) = h
            .join()
            .map_err(|_| BenchError::ThreadPanicked("commit-stream".into()))??;
        latency.merge(&l);
        failed += f;
        received += r;
    }
    report.commit_window = start.elapsed();
    if let (Some(pid), Some(before)) = (config.broker_pid, cpu_before) {
        report.broker_cpu_s_commits = Some(cpu_seconds(pid)? - before);
    }
    report.commits_sent = received;
    report.commits_failed = failed;
    let summary = latency.summary();
    report.commit_latency_ms_p50 = summary.p50_ms;
    report.commit_latency_ms_p99 = summary.p99_ms;
    report.commit_latency_ms_max = summary.max_ms;
    Ok(())
}

impl GroupsReport {
    /// The figures as printed lines.
    pub fn render(&self, config: &GroupsConfig) -> String {
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        let mut out = String::new();
        let mut sorted = self.rounds.clone();
        sorted.sort();
        out.push_str(&format!(
            "rebalance, {} members over {} partitions: first formation of the empty group {:.1} ms \
             (includes the broker's initial rebalance delay)\n",
            config.members,
            config.partitions,
            ms(&self.first_formation)
        ));
        if let (Some(min), Some(max)) = (sorted.first(), sorted.last()) {
            let median = sorted[sorted.len() / 2];
            out.push_str(&format!(
                "rebalance, last JoinGroup sent -> last SyncGroup answered, {} rounds: \
                 median {:.1} ms, min {:.1} ms, max {:.1} ms\n",
                sorted.len(),
                ms(&median),
                ms(min),
                ms(max)
            ));
        }
        if self.commits_sent > 0 {
            let window = self.commit_window.as_secs_f64();
            out.push_str(&format!(
                "offset commits: {} in {:.1} s ({:.0}/s), {} failed; latency from schedule p50 {:.2} ms, \
                 p99 {:.2} ms, max {:.2} ms\n",
                self.commits_sent,
                window,
                self.commits_sent as f64 / window,
                self.commits_failed,
                self.commit_latency_ms_p50,
                self.commit_latency_ms_p99,
                self.commit_latency_ms_max
            ));
            if let (Some(busy), Some(idle)) = (self.broker_cpu_s_commits, self.broker_cpu_s_idle) {
                out.push_str(&format!(
                    "broker CPU during commits {:.2} s = {:.1}% of one core; idle baseline {:.1}%; \
                     commits alone {:.1}% of one core\n",
                    busy,
                    100.0 * busy / window,
                    100.0 * idle / config.commit_duration.as_secs_f64(),
                    100.0 * (busy / window - idle / config.commit_duration.as_secs_f64())
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignment_covers_every_partition_once() {
        let ids: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        let a = range_assign(&ids, 100);
        let mut all: Vec<i32> = a.iter().flat_map(|(_, p)| p.clone()).collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(a.iter().all(|(_, p)| p.len() == 10));
        let uneven = range_assign(&ids[..3], 10);
        assert_eq!(
            uneven.iter().map(|(_, p)| p.len()).collect::<Vec<_>>(),
            vec![4, 3, 3]
        );
    }

    #[test]
    fn assignment_partition_count_is_where_the_reader_looks() {
        let b = assignment("t1", &[4, 5, 6]);
        let at = 2 + 4 + 2 + 2;
        assert_eq!(i32::from_be_bytes(b[at..at + 4].try_into().expect("4")), 3);
    }
}
