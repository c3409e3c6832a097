//! The admin endpoint against the real `sluice serve` binary: produce and fetch over the
//! Kafka protocol, then scrape `/metrics` (parsed as Prometheus text), read `/status`
//! (parsed as JSON) and run `sluice status` against it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

mod net_common;
use net_common::{free_port, start_broker_with, Admin, Broker};

const TOPIC: &str = "admin-metrics";
const PARTITIONS: i32 = 3;

fn start_broker() -> Broker {
    start_broker_with(&format!("\"num.partitions\" = {PARTITIONS}\n"), Admin::On)
}

fn kafka(b: &Broker) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", b.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

fn call<Req: Encodable, Resp: Decodable>(
    s: &mut TcpStream,
    key: ApiKey,
    version: i16,
    body: &Req,
) -> Resp {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(9)
        .with_client_id(Some(StrBytes::from_static_str("admin-metrics-test")));
    let mut buf = BytesMut::new();
    encode_request_header_into_buffer(&mut buf, &header).expect("header");
    body.encode(&mut buf, version).expect("body");
    let mut framed = (buf.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&buf);
    s.write_all(&framed).expect("write");
    let mut size = [0u8; 4];
    s.read_exact(&mut size).expect("response size");
    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut frame).expect("response body");
    let mut frame = Bytes::from(frame);
    assert_eq!(frame.get_i32(), 9, "correlation id");
    if key.response_header_version(version) >= 1 {
        assert_eq!(frame.get_u8(), 0, "no tagged fields");
    }
    Resp::decode(&mut frame, version).expect("response decodes")
}

fn record_batch(records: usize, value_bytes: usize) -> Bytes {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
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
            value: Some(Bytes::from(vec![b'v'; value_bytes])),
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

/// Produce v9, acks=all, one batch to `partition`; asserts success.
fn produce(s: &mut TcpStream, partition: i32, batch: Bytes) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let r: ProduceResponse = call(s, ApiKey::Produce, 9, &req);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce to partition {partition}");
}

/// Fetch v12 of `partition` from offset 0; the record bytes returned.
fn fetch(s: &mut TcpStream, partition: i32) -> usize {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let r: FetchResponse = call(s, ApiKey::Fetch, 12, &req);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.records.as_ref().map_or(0, Bytes::len)
}

/// Record batches in a v2 record set: each starts with base offset (8 bytes) and the
/// length of the rest (4 bytes).
fn batches_in(mut records: &[u8]) -> usize {
    let mut n = 0;
    while records.len() >= 12 {
        let rest = i32::from_be_bytes(records[8..12].try_into().expect("4 bytes")) as usize;
        records = &records[12 + rest..];
        n += 1;
    }
    assert!(records.is_empty(), "whole batches");
    n
}

/// What one `produce_some` sent.
struct Sent {
    bytes_per_partition: Vec<usize>,
    records_per_partition: Vec<i64>,
    batches: usize,
}

/// Sends `requests` Produce requests round-robin over the partitions.
fn produce_some(s: &mut TcpStream, requests: usize) -> Sent {
    let mut sent = Sent {
        bytes_per_partition: vec![0usize; PARTITIONS as usize],
        records_per_partition: vec![0i64; PARTITIONS as usize],
        batches: 0,
    };
    for i in 0..requests {
        let partition = (i % PARTITIONS as usize) as i32;
        let count = 1 + i % 4;
        let records = record_batch(count, 100 + 37 * i);
        sent.records_per_partition[partition as usize] += count as i64;
        sent.bytes_per_partition[partition as usize] += records.len();
        sent.batches += batches_in(&records);
        produce(s, partition, records);
    }
    sent
}

/// OffsetCommit v8 from outside the group protocol (generation -1, no member).
fn commit_offset(s: &mut TcpStream, group: &str, partition: i32, offset: i64) {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])]);
    let r: OffsetCommitResponse = call(s, ApiKey::OffsetCommit, 8, &req);
    assert_eq!(r.topics[0].partitions[0].error_code, 0, "offset commit");
}

/// A blocking GET; (status code, body).
fn get(admin: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(admin).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("http head");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .expect("content length");
    assert_eq!(length, body.len(), "Content-Length matches the body");
    (code, body.to_string())
}

fn get_path(admin: &str, path: &str) -> String {
    let (code, body) = get(
        admin,
        &format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(code, 200, "{path}: {body}");
    body
}

type Samples = Vec<(String, BTreeMap<String, String>, f64)>;

/// Parses the text format strictly: every line is a `# HELP`/`# TYPE` comment or
/// `name{k="v",...} value` with a numeric value; every sample's family was declared.
fn parse_metrics(text: &str) -> Samples {
    let mut declared = std::collections::BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().expect("family name");
            let kind = parts.next().expect("family type");
            assert!(
                ["counter", "gauge", "histogram", "summary"].contains(&kind),
                "{line}"
            );
            declared.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = if value == "+Inf" {
            f64::INFINITY
        } else {
            value
                .parse()
                .unwrap_or_else(|_| panic!("value of {line:?}"))
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (k, after) = rest.split_once("=\"").expect("label=\"");
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars.next().expect("closing quote") {
                            (_, '\\') => {
                                let (_, c) = chars.next().expect("escaped char");
                                value.push(if c == 'n' { '\n' } else { c });
                            }
                            (i, '"') => break i,
                            (_, c) => value.push(c),
                        }
                    };
                    labels.insert(k.to_string(), value);
                    rest = after[end + 1..]
                        .strip_prefix(',')
                        .unwrap_or(&after[end + 1..]);
                }
                (name.to_string(), labels)
            }
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(*f)))
            .unwrap_or(&name);
        assert!(declared.contains(family), "{name} has no # TYPE");
        samples.push((name, labels, value));
    }
    samples
}

/// Sum of the samples named `name` whose labels include `want`.
fn sum(samples: &Samples, name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .sum()
}

fn count(samples: &Samples, name: &str) -> usize {
    samples.iter().filter(|(n, _, _)| n == name).count()
}

#[test]
fn metrics_count_what_was_produced_and_fetched() {
    let b = start_broker();
    let mut s = kafka(&b);
    let produce_requests = 12;
    let sent = produce_some(&mut s, produce_requests);
    let sent_total: usize = sent.bytes_per_partition.iter().sum();
    let fetched = fetch(&mut s, 0);
    commit_offset(&mut s, "admin-lag", 0, 1);
    assert_eq!(
        fetched, sent.bytes_per_partition[0],
        "partition 0 reads back what was produced"
    );

    let samples = parse_metrics(&get_path(&b.admin, "/metrics"));
    let topic = [("topic", TOPIC)];
    // The broker stores client batches verbatim: bytes in are exactly the batch bytes.
    assert_eq!(
        sum(&samples, "sluice_topic_bytes_in_total", &topic),
        sent_total as f64
    );
    assert_eq!(
        sum(&samples, "sluice_topic_batches_in_total", &topic),
        sent.batches as f64
    );
    assert_eq!(
        sum(&samples, "sluice_topic_bytes_out_total", &topic),
        fetched as f64
    );
    assert_eq!(
        sum(&samples, "sluice_topic_partitions", &topic),
        PARTITIONS as f64
    );
    // Every partition (ours and the 8 of `__consumer_offsets`, which the commit below
    // created) is open on exactly one of the two shards.
    assert_eq!(
        sum(
            &samples,
            "sluice_topic_partitions",
            &[("topic", "__consumer_offsets")]
        ),
        8.0
    );
    assert_eq!(count(&samples, "sluice_partitions"), 2);
    assert_eq!(
        sum(&samples, "sluice_partitions", &[]),
        sum(&samples, "sluice_topic_partitions", &[])
    );
    let log_size = sum(&samples, "sluice_topic_log_size_bytes", &topic);
    assert!(
        log_size >= sent_total as f64,
        "segments hold at least the batches: {log_size}"
    );
    assert_eq!(
        sum(&samples, "sluice_shard_log_size_bytes", &[]),
        sum(&samples, "sluice_topic_log_size_bytes", &[])
    );

    let produce = [("api", "Produce")];
    assert!(sum(&samples, "sluice_requests_total", &produce) >= produce_requests as f64);
    assert_eq!(
        sum(&samples, "sluice_request_latency_seconds_count", &produce),
        sum(&samples, "sluice_requests_total", &produce)
    );
    assert_eq!(
        sum(
            &samples,
            "sluice_request_latency_seconds_bucket",
            &[("api", "Produce"), ("le", "+Inf")]
        ),
        sum(&samples, "sluice_requests_total", &produce)
    );
    assert!(sum(&samples, "sluice_request_latency_seconds_sum", &produce) > 0.0);
    assert!(sum(&samples, "sluice_requests_total", &[("api", "Fetch")]) >= 1.0);
    // The Kafka connection above is still open.
    assert!(sum(&samples, "sluice_connections", &[]) >= 1.0);
    // acks=all under the default group commit: the appends were fdatasync'd, at most once
    // per sequential produce plus once for the offset commit's append.
    let fsyncs = sum(&samples, "sluice_fsync_latency_seconds_count", &[]);
    assert!(fsyncs >= 1.0, "{fsyncs}");
    assert!(fsyncs <= produce_requests as f64 + 1.0, "{fsyncs}");
    assert_eq!(
        sum(
            &samples,
            "sluice_fsync_latency_seconds_bucket",
            &[("le", "+Inf")]
        ),
        fsyncs
    );
    assert_eq!(
        sum(&samples, "sluice_under_replicated_partitions", &[]),
        0.0
    );
    assert_eq!(sum(&samples, "sluice_shards", &[]), 2.0);
    assert_eq!(sum(&samples, "sluice_shard_up", &[]), 2.0);
    // Committed at 1 on partition 0: the rest of its records are the lag.
    let lag = [("group", "admin-lag"), ("topic", TOPIC), ("partition", "0")];
    assert_eq!(count(&samples, "sluice_consumer_group_lag"), 1);
    assert_eq!(
        sum(&samples, "sluice_consumer_group_lag", &lag),
        (sent.records_per_partition[0] - 1) as f64
    );

    // Counters only grow: more produce, higher counts on the next scrape.
    let more = produce_some(&mut s, 3);
    let again = parse_metrics(&get_path(&b.admin, "/metrics"));
    assert_eq!(
        sum(&again, "sluice_topic_bytes_in_total", &topic),
        (sent_total + more.bytes_per_partition.iter().sum::<usize>()) as f64
    );
    assert!(
        sum(&again, "sluice_requests_total", &produce)
            >= sum(&samples, "sluice_requests_total", &produce) + 3.0
    );
    assert_eq!(
        sum(&again, "sluice_consumer_group_lag", &lag),
        (sent.records_per_partition[0] + more.records_per_partition[0] - 1) as f64
    );
}

#[test]
fn status_json_and_sluice_status_show_shards_and_partitions() {
    let b = start_broker();
    let mut s = kafka(&b);
    let sent = produce_some(&mut s, 6).bytes_per_partition;
    drop(s);

    let body = get_path(&b.admin, "/status");
    let status: serde_json::Value = serde_json::from_str(&body).expect("status is JSON");
    let brokers = status["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1);
    assert_eq!(brokers[0]["port"], b.port);
    assert_eq!(brokers[0]["shards"], 2);
    let shards = status["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 2);
    let mut seen = BTreeMap::new();
    for shard in shards {
        let list = shard["partition_list"].as_array().expect("partition list");
        assert_eq!(shard["partitions"].as_u64(), Some(list.len() as u64));
        let mut shard_in = 0;
        for p in list {
            assert_eq!(p["topic"], TOPIC);
            let index = p["partition"].as_i64().expect("partition") as usize;
            let bytes_in = p["bytes_in"].as_u64().expect("bytes_in");
            assert_eq!(bytes_in, sent[index] as u64, "partition {index}");
            assert_eq!(p["high_watermark"].as_i64(), p["log_end_offset"].as_i64());
            assert!(p["high_watermark"].as_i64().expect("hwm") > 0);
            shard_in += bytes_in;
            assert!(
                seen.insert(index, shard["shard"].clone()).is_none(),
                "one owner"
            );
        }
        assert_eq!(shard["bytes_in"].as_u64(), Some(shard_in));
    }
    assert_eq!(seen.len(), PARTITIONS as usize);
    assert_eq!(status["under_replicated_partitions"], 0);

    // The CLI: a table with both shards and every partition, and --json passes it through.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["status", "--admin", &b.admin, "--interval-ms", "100"])
        .output()
        .expect("run sluice status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).expect("utf-8");
    assert!(table.contains(&format!("127.0.0.1:{}", b.port)), "{table}");
    let partition_rows: Vec<&str> = table.lines().filter(|l| l.contains(TOPIC)).collect();
    assert_eq!(partition_rows.len(), PARTITIONS as usize, "{table}");
    for (index, shard) in &seen {
        let row = partition_rows
            .iter()
            .find(|r| r.split_whitespace().nth(2) == Some(&index.to_string()))
            .unwrap_or_else(|| panic!("row for partition {index} in {table}"));
        assert_eq!(
            row.split_whitespace().next(),
            Some(shard.to_string().as_str())
        );
    }
    let json = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["status", "--json", "--admin", &b.admin])
        .output()
        .expect("run sluice status --json");
    assert!(json.status.success());
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(parsed["shards"].as_array().map(Vec::len), Some(2));

    // Nothing listening: a clear failure, not a hang.
    let closed = format!("127.0.0.1:{}", free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["status", "--admin", &closed])
        .output()
        .expect("run sluice status");
    assert!(!out.status.success());
}

#[test]
fn admin_endpoint_refuses_other_paths_methods_and_oversized_heads() {
    let b = start_broker();
    let (code, _) = get(&b.admin, "GET /nope HTTP/1.1\r\n\r\n");
    assert_eq!(code, 404);
    let (code, _) = get(
        &b.admin,
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(code, 405);
    let (code, _) = get(&b.admin, "nonsense\r\n\r\n");
    assert_eq!(code, 400);
    let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let mut s = TcpStream::connect(&b.admin).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The broker may close before reading everything; only the answer matters.
    let _ = s.write_all(big.as_bytes());
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(
        String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(80)])
    );
    // Still serving afterwards.
    assert!(get_path(&b.admin, "/metrics").contains("sluice_shards 2"));
}

#[test]
fn admin_connections_are_bounded_and_slots_come_back() {
    use sluice_net::limits::ADMIN_CONNECTIONS_MAX;
    let b = start_broker();
    // Idle connections that never send a request hold every slot.
    let mut idle: Vec<TcpStream> = (0..ADMIN_CONNECTIONS_MAX)
        .map(|_| TcpStream::connect(&b.admin).expect("connect"))
        .collect();
    // Accepting is asynchronous, and start_broker's readiness probe may still hold a slot
    // for a moment, in which case one of the idle connections was refused: replace any
    // that the broker closed until all of them hold a slot.
    let settle = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let mut replaced = false;
        for conn in idle.iter_mut() {
            conn.set_nonblocking(true).expect("nonblocking");
            let mut byte = [0u8; 1];
            if matches!(conn.peek(&mut byte), Ok(0)) {
                *conn = TcpStream::connect(&b.admin).expect("connect");
                replaced = true;
            }
        }
        if !replaced {
            break;
        }
        assert!(
            Instant::now() < settle,
            "idle connections keep being closed"
        );
    }
    let mut extra = TcpStream::connect(&b.admin).expect("connect");
    extra
        .set_read_timeout(Some(Duration::from_secs(4)))
        .expect("timeout");
    extra
        .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
        .expect("write");
    let mut raw = Vec::new();
    let started = Instant::now();
    let read = extra.read_to_end(&mut raw);
    assert!(
        matches!(read, Ok(0))
            || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "over the bound: closed unanswered, got {read:?} {:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(started.elapsed() < Duration::from_secs(3), "closed at once");
    // Closing the idle ones frees their slots.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TcpStream::connect(&b.admin).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        if body.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "slots never came back");
        std::thread::sleep(Duration::from_millis(100));
    }
}
