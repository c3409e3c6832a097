//! The shard count changes between restarts of the real binary: 2 shards, then 1, then
//! 2 again, on one data directory. Partition directories do not depend on the shard, so
//! every partition must keep all its records at their offsets, take new appends at the
//! right offsets, and land on the shard the placement (config hash, or a runtime move
//! kept in placement.bin) gives the running shard count.

mod net_common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use net_common::*;
use sluice_net::admin::status::StatusReport;

const TOPIC: &str = "resharded";
const PARTITIONS: i32 = 4;
const RECORDS_PER_BATCH: usize = 5;

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn call<Req: kafka_protocol::protocol::Encodable, Resp: kafka_protocol::protocol::Decodable>(
    b: &Broker,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    let mut s = connect(b);
    s.write_all(&request(key, version, 1, req)).expect("write");
    response(read_frame(&mut s).expect("answered"), key, version, 1)
}

fn create_topic(b: &Broker) {
    let topic = CreatableTopic::default()
        .with_name(topic_name())
        .with_num_partitions(PARTITIONS)
        .with_replication_factor(1);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(10_000);
    let r: CreateTopicsResponse = call(b, ApiKey::CreateTopics, 5, &req);
    assert_eq!(r.topics[0].error_code, 0, "create topic");
}

fn batch(values: &[String]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(v.clone().into_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &opts).expect("batch encodes");
    buf.freeze()
}

/// Produce v9, acks=all: the base offset the broker assigned.
fn produce(b: &Broker, partition: i32, values: &[String]) -> i64 {
    let part = PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(batch(values)));
    let topic = TopicProduceData::default()
        .with_name(topic_name())
        .with_partition_data(vec![part]);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![topic]);
    let r: ProduceResponse = call(b, ApiKey::Produce, 9, &req);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce to partition {partition}");
    p.base_offset
}

/// Fetch v11 from offset 0: every (offset, value) of the partition.
fn read_all(b: &Broker, partition: i32) -> Vec<(i64, String)> {
    let part = FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(0)
        .with_partition_max_bytes(8 << 20);
    let topic = FetchTopic::default()
        .with_topic(topic_name())
        .with_partitions(vec![part]);
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(16 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![topic]);
    let r: FetchResponse = call(b, ApiKey::Fetch, 11, &req);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "fetch partition {partition}");
    let mut bytes = p.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode(&mut bytes).expect("served batches decode");
        for r in set.records {
            let v = r.value.expect("every record has a value");
            out.push((r.offset, String::from_utf8(v.to_vec()).expect("utf-8")));
        }
    }
    out
}

fn status(b: &Broker) -> StatusReport {
    let mut s = TcpStream::connect(&b.admin).expect("admin");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut s, &mut raw).expect("read");
    let (_, body) = raw.split_once("\r\n\r\n").expect("http answer");
    serde_json::from_str(body).expect("status JSON")
}

/// partition -> shard, from /status.
fn owners(b: &Broker) -> BTreeMap<i32, usize> {
    let mut out = BTreeMap::new();
    for shard in status(b).shards {
        for p in shard.partition_list {
            if p.topic == TOPIC {
                out.insert(p.partition, shard.shard);
            }
        }
    }
    out
}

fn move_partition(b: &Broker, partition: i32, to: usize) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "admin",
            "--admin",
            &b.admin,
            "move-partition",
            "--topic",
            TOPIC,
        ])
        .args(["--partition", &partition.to_string()])
        .args(["--to-shard", &to.to_string()])
        .output()
        .expect("run sluice admin");
    assert!(
        out.status.success(),
        "move failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Appends one batch to every partition; records what each partition should now hold.
fn append_round(b: &Broker, expected: &mut BTreeMap<i32, Vec<(i64, String)>>, round: &str) {
    for p in 0..PARTITIONS {
        let values: Vec<String> = (0..RECORDS_PER_BATCH)
            .map(|i| format!("{round}-p{p}-{i}"))
            .collect();
        let log = expected.entry(p).or_default();
        let base = produce(b, p, &values);
        assert_eq!(
            base,
            log.len() as i64,
            "partition {p}: appended at the wrong offset in {round}"
        );
        log.extend(
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| (base + i as i64, v)),
        );
    }
}

fn check_all(b: &Broker, expected: &BTreeMap<i32, Vec<(i64, String)>>, when: &str) {
    for (p, want) in expected {
        assert_eq!(&read_all(b, *p), want, "partition {p} {when}");
    }
}

#[test]
fn records_survive_two_to_one_to_two_shards_and_a_moved_partition_keeps_its_shard() {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut expected: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();

    // 2 shards: the FNV placement spreads the 4 partitions 2 + 2.
    let b = start_broker_on(root.path(), "shards = 2\n", "", Admin::On);
    create_topic(&b);
    for round in ["a", "b", "c"] {
        append_round(&b, &mut expected, round);
    }
    let home = owners(&b);
    assert_eq!(home.len(), PARTITIONS as usize);
    assert_eq!(home.values().filter(|s| **s == 0).count(), 2, "{home:?}");
    // Move one of shard 0's partitions to shard 1 (an override to a shard that the
    // 1-shard run will not have).
    let moved = *home
        .iter()
        .find(|(_, s)| **s == 0)
        .expect("shard 0 owns some")
        .0;
    move_partition(&b, moved, 1);
    assert_eq!(owners(&b)[&moved], 1);
    let placement = status(&b).placement;
    assert_eq!(placement.version, 1);
    assert_eq!(
        placement
            .moved
            .iter()
            .map(|m| (m.topic.as_str(), m.partition, m.shard))
            .collect::<Vec<_>>(),
        vec![(TOPIC, moved, 1)]
    );
    append_round(&b, &mut expected, "d");
    check_all(&b, &expected, "with 2 shards");
    b.stop();

    // 1 shard: everything on shard 0; the override is set aside, not fatal.
    let b = start_broker_on(root.path(), "shards = 1\n", "", Admin::On);
    check_all(&b, &expected, "after restarting with 1 shard");
    append_round(&b, &mut expected, "e");
    assert!(
        owners(&b).values().all(|s| *s == 0),
        "one shard owns all: {:?}",
        owners(&b)
    );
    check_all(&b, &expected, "appended with 1 shard");
    b.stop();

    // 2 shards again: the original spread, with the moved partition back on shard 1 (the
    // override is still in placement.bin).
    let b = start_broker_on(root.path(), "shards = 2\n", "", Admin::On);
    check_all(&b, &expected, "after restarting with 2 shards");
    append_round(&b, &mut expected, "f");
    let mut want = home.clone();
    want.insert(moved, 1);
    assert_eq!(owners(&b), want);
    assert_eq!(
        status(&b).placement.version,
        1,
        "the version survives restarts"
    );
    // And home again: the override goes away; the next run uses the hash placement.
    move_partition(&b, moved, 0);
    append_round(&b, &mut expected, "g");
    check_all(&b, &expected, "after moving home");
    b.stop();

    // Killed without a clean close this time: recovery scans, still all there.
    let b = start_broker_on(root.path(), "shards = 2\n", "", Admin::On);
    assert_eq!(owners(&b), home);
    append_round(&b, &mut expected, "h");
    drop(b); // SIGKILL
    let b = start_broker_on(root.path(), "shards = 1\n", "", Admin::On);
    check_all(&b, &expected, "after SIGKILL and 1 shard");
    b.stop();
}
