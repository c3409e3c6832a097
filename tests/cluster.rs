//! Three real `sluice serve` processes forming a cluster on loopback: topic creation
//! through the controller, Metadata with leaders and ISRs, requests refused by followers
//! (NOT_LEADER_OR_FOLLOWER), leader-epoch checks (UNKNOWN_LEADER_EPOCH,
//! FENCED_LEADER_EPOCH), OffsetForLeaderEpoch, min.insync.replicas (NOT_ENOUGH_REPLICAS),
//! and a leader SIGKILL: a new leader within the session timeout, acknowledged records
//! still there, the restarted broker back in the ISR.
//!
//! Real clients (librdkafka) run the same kind of failover in scripts/cluster (CI).

#![allow(clippy::unwrap_used)]

mod net_common;

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use net_common::*;

const TOPIC: &str = "replicated";
/// min.insync.replicas = 3: acks=all refused while any replica is out of the ISR.
const STRICT: &str = "strict";

struct Cluster {
    brokers: Vec<Option<Broker>>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

fn call<Req: Encodable, Resp: Decodable>(port: u16, key: ApiKey, version: i16, req: &Req) -> Resp {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&request(key, version, 5, req)).unwrap();
    response(read_frame(&mut s).expect("answered"), key, version, 5)
}

fn start_cluster() -> Cluster {
    start_cluster_with_members(0)
}

/// Three voters (brokers 1-3) and `members` plain members (brokers 4..).
fn start_cluster_with_members(members: usize) -> Cluster {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let repl: Vec<u16> = (0..3 + members).map(|_| free_port()).collect();
    let voters = repl[..3]
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut brokers = Vec::new();
    let mut ports = Vec::new();
    for (i, repl_port) in repl.iter().enumerate() {
        let root = dir.path().join(format!("b{}", i + 1));
        std::fs::create_dir_all(&root).unwrap();
        let extra = format!(
            "node_id = {}\n[cluster]\nreplication_listener = \"127.0.0.1:{}\"\nvoters = \"{voters}\"\n\
             default_replication_factor = 3\nmin_insync_replicas = 2\n",
            i + 1,
            repl_port
        );
        let b = start_broker_on(&root, "shards = 1\n", &extra, Admin::Off);
        ports.push(b.port);
        brokers.push(Some(b));
    }
    Cluster {
        brokers,
        ports,
        _dir: dir,
    }
}

fn metadata(port: u16) -> MetadataResponse {
    metadata_of(port, TOPIC)
}

fn metadata_of(port: u16, topic: &str) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]));
    call(port, ApiKey::Metadata, 12, &req)
}

fn create(port: u16, topic: &str, min_insync: &str) {
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(20_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_num_partitions(1)
            .with_replication_factor(3)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("min.insync.replicas"))
                .with_value(Some(StrBytes::from_string(
                    min_insync.to_string(),
                )))])]);
    let r: CreateTopicsResponse = call(port, ApiKey::CreateTopics, 7, &create);
    assert_eq!(r.topics[0].error_code, 0, "{r:?}");
    assert_eq!(r.topics[0].replication_factor, 3);
}

/// Polls `port`'s Metadata until `ok` holds (bounded).
fn wait_metadata(
    port: u16,
    what: &str,
    ok: impl Fn(&MetadataResponse) -> bool,
) -> MetadataResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = metadata(port);
        if ok(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn partition0(m: &MetadataResponse) -> &metadata_response::MetadataResponsePartition {
    &m.topics[0].partitions[0]
}

fn produce_v9(port: u16) -> i16 {
    produce_to_port(port, TOPIC, record_batch(100))
}

/// Fetch v12 of partition 0 from `offset` with a client leader epoch; (error, HW, bytes).
fn fetch(port: u16, offset: i64, leader_epoch: i32) -> (i16, i64, usize) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(leader_epoch)
                .with_partition_max_bytes(1 << 20)])]);
    let r: FetchResponse = call(port, ApiKey::Fetch, 12, &req);
    let p = &r.responses[0].partitions[0];
    (
        p.error_code,
        p.high_watermark,
        p.records.as_ref().map_or(0, Bytes::len),
    )
}

fn port_of(c: &Cluster, id: i32) -> u16 {
    c.ports[(id - 1) as usize]
}

#[test]
fn a_three_broker_cluster_replicates_fences_and_fails_over() {
    let mut c = start_cluster();
    // The quorum forms and every broker registers (as each broker sees it).
    for port in c.ports.clone() {
        wait_metadata(port, "3 brokers and a controller", |m| {
            m.brokers.len() == 3 && m.controller_id.0 > 0
        });
    }

    // Created through brokers that are not necessarily the controller (forwarded).
    create(c.ports[1], TOPIC, "2");
    create(c.ports[2], STRICT, "3");

    let m = wait_metadata(c.ports[2], "a leader with a full ISR", |m| {
        m.topics.len() == 1
            && m.topics[0].error_code == 0
            && partition0(m).leader_id.0 > 0
            && partition0(m).isr_nodes.len() == 3
    });
    let p = partition0(&m);
    assert_eq!(p.replica_nodes.len(), 3);
    let leader = p.leader_id.0;
    let epoch = p.leader_epoch;
    let follower = (1..=3).find(|b| *b != leader).unwrap();

    // Followers refuse client requests; the leader takes them (the replica may need a
    // moment to learn it leads after the metadata shows it).
    assert_eq!(
        produce_v9(port_of(&c, follower)),
        6,
        "NOT_LEADER_OR_FOLLOWER"
    );
    assert_eq!(fetch(port_of(&c, follower), 0, -1).0, 6);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let code = produce_v9(port_of(&c, leader));
        if code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leader never took acks=all: {code}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, hw, bytes) = fetch(port_of(&c, leader), 0, epoch);
    assert_eq!((code, hw), (0, 1), "acks=all answered: committed");
    assert!(bytes > 0);
    assert_eq!(
        fetch(port_of(&c, leader), 0, epoch + 1).0,
        75,
        "UNKNOWN_LEADER_EPOCH"
    );

    let olep = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(epoch)
                .with_leader_epoch(epoch)])]);
    let r: OffsetForLeaderEpochResponse =
        call(port_of(&c, leader), ApiKey::OffsetForLeaderEpoch, 4, &olep);
    let e = &r.topics[0].partitions[0];
    assert_eq!((e.error_code, e.leader_epoch, e.end_offset), (0, epoch, 1));

    // SIGKILL the leader: another in-sync replica leads in a newer epoch.
    let killed = Instant::now();
    c.brokers[(leader - 1) as usize].as_mut().unwrap().sigkill();
    let survivor = port_of(&c, follower);
    let m = wait_metadata(survivor, "a new leader", |m| {
        let p = partition0(m);
        p.leader_id.0 > 0 && p.leader_id.0 != leader && p.leader_epoch > epoch
    });
    println!("new leader after {} ms", killed.elapsed().as_millis());
    let p = partition0(&m);
    let (new_leader, new_epoch) = (p.leader_id.0, p.leader_epoch);
    assert!(
        !p.isr_nodes.iter().any(|b| b.0 == leader),
        "dead broker left the ISR"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let code = produce_v9(port_of(&c, new_leader));
        if code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new leader never took acks=all: {code}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The acknowledged record survived; a client still on the old epoch is fenced.
    let (code, hw, bytes) = fetch(port_of(&c, new_leader), 0, new_epoch);
    assert_eq!((code, hw), (0, 2));
    assert!(bytes > 0);
    assert_eq!(
        fetch(port_of(&c, new_leader), 0, epoch).0,
        74,
        "FENCED_LEADER_EPOCH"
    );

    // min.insync.replicas = 3 with a replica down: acks=all is refused (once the dead
    // broker is fenced out of the ISR).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = metadata_of(survivor, STRICT);
        let p = partition0(&m);
        let code = (p.leader_id.0 > 0)
            .then(|| produce_to_port(port_of(&c, p.leader_id.0), STRICT, record_batch(10)));
        if code == Some(19) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acks=all never refused below min.insync.replicas: {code:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Lowering the topic's min.insync.replicas to 2 reaches the running replicas: acks=all
    // is taken again with two in-sync replicas.
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str(STRICT))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("min.insync.replicas"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str("2"))),
            ]),
    ]);
    let r: IncrementalAlterConfigsResponse =
        call(survivor, ApiKey::IncrementalAlterConfigs, 1, &alter);
    assert_eq!(r.responses[0].error_code, 0, "{r:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = metadata_of(survivor, STRICT);
        let p = partition0(&m);
        let code = (p.leader_id.0 > 0)
            .then(|| produce_to_port(port_of(&c, p.leader_id.0), STRICT, record_batch(10)));
        if code == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acks=all still refused after min.insync.replicas=2: {code:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The killed broker returns, catches up and rejoins the ISR.
    c.brokers[(leader - 1) as usize]
        .as_mut()
        .unwrap()
        .start_again();
    wait_metadata(survivor, "the restarted broker back in the ISR", |m| {
        partition0(m).isr_nodes.len() == 3
    });
    let (code, hw, _) = fetch(port_of(&c, new_leader), 0, new_epoch);
    assert_eq!((code, hw), (0, 2));
}

#[test]
fn a_broker_outside_the_voters_joins_as_a_plain_member_and_leads_partitions() {
    let c = start_cluster_with_members(1);
    for port in c.ports.clone() {
        wait_metadata(port, "4 brokers and a controller", |m| {
            m.brokers.len() == 4 && m.controller_id.0 > 0
        });
    }
    // The member gets the metadata log (as a Raft learner): a topic created through a
    // voter shows on it, placed on it by a manual assignment.
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(20_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![
                create_topics_request::CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![BrokerId(4), BrokerId(1), BrokerId(2)]),
            ])]);
    let r: CreateTopicsResponse = call(c.ports[0], ApiKey::CreateTopics, 7, &create);
    assert_eq!(r.topics[0].error_code, 0, "{r:?}");
    let member = c.ports[3];
    let m = wait_metadata(member, "broker 4 leading with a full ISR", |m| {
        m.topics.len() == 1
            && m.topics[0].error_code == 0
            && partition0(m).leader_id.0 == 4
            && partition0(m).isr_nodes.len() == 3
    });
    assert_eq!(
        partition0(&m)
            .replica_nodes
            .iter()
            .map(|b| b.0)
            .collect::<Vec<_>>(),
        vec![4, 1, 2]
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let code = produce_v9(member);
        if code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member never took acks=all: {code}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, hw, _) = fetch(member, 0, -1);
    assert_eq!((code, hw), (0, 1));
}
