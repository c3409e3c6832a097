//! A consumer-protocol (KIP-848) group survives a broker SIGKILL: the real `sluice serve`,
//! two members driven over the wire with ConsumerGroupHeartbeat until their assignment
//! is reconciled, the broker killed and restarted on the same data. Each member's next
//! heartbeat, with the id and epoch it had, is accepted and keeps its partitions; the
//! group epoch carries on from where it was; a member that left stays gone.

mod net_common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use net_common::*;

const GROUP: &str = "kip848-restart-group";
const TOPIC: &str = "kip848-restart-topic";
const PARTITIONS: i32 = 4;
const HB_V: i16 = 1;
const UNKNOWN_MEMBER_ID: i16 = 25;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// (topic id, partition) pairs a member owns.
type Owned = BTreeSet<(uuid::Uuid, i32)>;

struct Member {
    sock: TcpStream,
    next: i32,
    id: String,
    epoch: i32,
    owned: Owned,
}

impl Member {
    fn new(b: &Broker, id: &str) -> Member {
        Member {
            sock: connect(b),
            next: 1,
            id: id.to_string(),
            epoch: 0,
            owned: Owned::new(),
        }
    }

    fn reconnect(&mut self, b: &Broker) {
        self.sock = connect(b);
    }

    /// One heartbeat at the member's epoch; `report` sends what it owns. The member takes
    /// the epoch and assignment of a successful answer. Returns the error code.
    fn heartbeat(&mut self, report: bool) -> i16 {
        let mut req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_member_id(s(&self.id))
            .with_member_epoch(self.epoch)
            .with_rebalance_timeout_ms(-1);
        if self.epoch == 0 {
            req = req
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![TopicName(s(TOPIC))]));
        }
        if self.epoch == 0 || report {
            let mut by_topic: std::collections::BTreeMap<_, Vec<i32>> = Default::default();
            for (t, p) in &self.owned {
                by_topic.entry(*t).or_default().push(*p);
            }
            req.topic_partitions = Some(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        TopicPartitions::default()
                            .with_topic_id(t)
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        }
        let id = self.next;
        self.next += 1;
        self.sock
            .write_all(&request(ApiKey::ConsumerGroupHeartbeat, HB_V, id, &req))
            .expect("write");
        let frame = read_frame(&mut self.sock).expect("answered");
        let r: ConsumerGroupHeartbeatResponse =
            response(frame, ApiKey::ConsumerGroupHeartbeat, HB_V, id);
        if r.error_code == 0 {
            self.epoch = r.member_epoch;
            if let Some(a) = r.assignment {
                self.owned = a
                    .topic_partitions
                    .iter()
                    .flat_map(|tp| tp.partitions.iter().map(move |p| (tp.topic_id, *p)))
                    .collect();
            }
        }
        r.error_code
    }

    fn leave(&mut self) -> i16 {
        self.epoch = -1;
        self.heartbeat(false)
    }
}

fn create_topic(b: &Broker) {
    let topic = CreatableTopic::default()
        .with_name(TopicName(s(TOPIC)))
        .with_num_partitions(PARTITIONS)
        .with_replication_factor(1);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(10_000);
    let mut sock = connect(b);
    sock.write_all(&request(ApiKey::CreateTopics, 5, 1, &req))
        .expect("write");
    let r: CreateTopicsResponse = response(
        read_frame(&mut sock).expect("answered"),
        ApiKey::CreateTopics,
        5,
        1,
    );
    assert_eq!(r.topics[0].error_code, 0, "create topic");
}

/// Right after a restart early connections may close unanswered: wait (bounded) until a
/// fresh connection gets an ApiVersions answer.
fn wait_answering(b: &Broker) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(mut sock) = TcpStream::connect(("127.0.0.1", b.port)) {
            let _ = sock.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            if sock
                .write_all(&request(
                    ApiKey::ApiVersions,
                    3,
                    1,
                    &ApiVersionsRequest::default(),
                ))
                .is_ok()
                && read_frame(&mut sock).is_some()
            {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("broker not answering after restart");
}

/// Heartbeats both members (reporting what they own) until both own a stable half at
/// one epoch; bounded.
fn reconcile(a: &mut Member, b: &mut Member) {
    for _ in 0..20 {
        assert_eq!(a.heartbeat(true), 0);
        assert_eq!(b.heartbeat(true), 0);
        if a.epoch == b.epoch
            && a.owned.len() + b.owned.len() == PARTITIONS as usize
            && a.owned.is_disjoint(&b.owned)
            && !a.owned.is_empty()
            && !b.owned.is_empty()
        {
            return;
        }
    }
    panic!(
        "no reconciled assignment: a {:?}@{} b {:?}@{}",
        a.owned, a.epoch, b.owned, b.epoch
    );
}

#[test]
fn consumer_group_members_and_epochs_survive_a_broker_sigkill() {
    let mut broker = start_broker_with("", Admin::Off);
    create_topic(&broker);
    let mut a = Member::new(&broker, "member-a-00000000000000");
    let mut b = Member::new(&broker, "member-b-00000000000000");
    assert_eq!(a.heartbeat(false), 0);
    assert_eq!(a.owned.len(), PARTITIONS as usize, "first member takes all");
    assert_eq!(b.heartbeat(false), 0);
    reconcile(&mut a, &mut b);
    let (a_before, b_before, epoch) = (a.owned.clone(), b.owned.clone(), a.epoch);

    broker.restart_after_sigkill();
    wait_answering(&broker);
    a.reconnect(&broker);
    b.reconnect(&broker);
    // The same ids and epochs: accepted, no new epoch, the same partitions (a reports
    // what it owns and gets its assignment back; b sends a plain keep-alive).
    assert_eq!(a.heartbeat(true), 0, "a's heartbeat after the restart");
    assert_eq!(b.heartbeat(false), 0, "b's heartbeat after the restart");
    assert_eq!((a.epoch, b.epoch), (epoch, epoch));
    assert_eq!(a.owned, a_before);
    assert_eq!(b.owned, b_before);

    // The group epoch survived: a new member moves it one past where it was.
    let mut c = Member::new(&broker, "member-c-00000000000000");
    assert_eq!(c.heartbeat(false), 0);
    assert_eq!(
        c.epoch,
        epoch + 1,
        "group epoch continues after the restart"
    );

    // A member that left is gone for good, also after another restart.
    assert_eq!(c.leave(), 0);
    broker.restart_after_sigkill();
    wait_answering(&broker);
    c.reconnect(&broker);
    c.epoch = epoch + 1;
    assert_eq!(
        c.heartbeat(false),
        UNKNOWN_MEMBER_ID,
        "left member restored"
    );
    a.reconnect(&broker);
    assert_eq!(
        a.heartbeat(true),
        0,
        "a still a member after the second restart"
    );
    broker.stop();
}
