//! Fetch long poll and byte limits, and ListOffsets, against the real `sluice serve`
//! binary. Time bounds are generous: they tell "waited for max_wait" from "answered at
//! once" and from "answered when data came", nothing finer.

mod net_common;

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use net_common::*;

struct FetchAnswer {
    error_code: i16,
    high_watermark: i64,
    records: Bytes,
    elapsed: Duration,
}

fn fetch(
    b: &Broker,
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
    partition_max_bytes: i32,
) -> FetchAnswer {
    let mut s = connect(b);
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let partition = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(partition_max_bytes);
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![partition])]);
    let started = Instant::now();
    s.write_all(&request(ApiKey::Fetch, 12, 21, &req))
        .expect("write");
    let frame = read_frame(&mut s).expect("fetch answered");
    let elapsed = started.elapsed();
    let r: FetchResponse = response(frame, ApiKey::Fetch, 12, 21);
    assert_eq!(r.error_code, 0);
    let p = &r.responses[0].partitions[0];
    FetchAnswer {
        error_code: p.error_code,
        high_watermark: p.high_watermark,
        records: p.records.clone().unwrap_or_default(),
        elapsed,
    }
}

fn list_offset(b: &Broker, topic: &str, timestamp: i64) -> (i16, i64) {
    let mut s = connect(b);
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    s.write_all(&request(ApiKey::ListOffsets, 7, 31, &req))
        .expect("write");
    let r: ListOffsetsResponse = response(
        read_frame(&mut s).expect("answered"),
        ApiKey::ListOffsets,
        7,
        31,
    );
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset)
}

fn batches_in(records: &Bytes) -> usize {
    let mut buf = records.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .expect("whole batches")
        .len()
}

#[test]
fn fetch_waits_for_max_wait_answers_when_data_arrives_and_returns_whole_batches() {
    let b = start_broker();
    assert_eq!(
        produce(&b, "lp", record_batch(1000)),
        0,
        "auto-created on produce"
    );

    // Data already there: answered at once.
    let a = fetch(&b, "lp", 0, 10_000, 1, 1 << 20);
    assert_eq!((a.error_code, a.high_watermark), (0, 1));
    assert_eq!(batches_in(&a.records), 1);
    assert!(
        a.elapsed < Duration::from_secs(3),
        "answered at once, took {:?}",
        a.elapsed
    );

    // Nothing beyond the end: waits max_wait, then answers empty.
    let a = fetch(&b, "lp", 1, 600, 1, 1 << 20);
    assert_eq!(a.error_code, 0);
    assert!(a.records.is_empty());
    assert!(
        a.elapsed >= Duration::from_millis(500),
        "honours max_wait, took {:?}",
        a.elapsed
    );

    // A long poll wakes up when data arrives, long before max_wait.
    let waker = {
        let b2 = BrokerRef { port: b.port };
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            b2.produce_one()
        })
    };
    let a = fetch(&b, "lp", 1, 20_000, 1, 1 << 20);
    assert_eq!(waker.join().expect("producer thread"), 0);
    assert_eq!(batches_in(&a.records), 1, "the new batch");
    assert!(
        a.elapsed < Duration::from_secs(10),
        "woke on data, took {:?}",
        a.elapsed
    );

    // min_bytes above what exists: waits the full max_wait, then returns what there is.
    let a = fetch(&b, "lp", 0, 700, 1 << 20, 1 << 20);
    assert!(
        a.elapsed >= Duration::from_millis(600),
        "waits for min_bytes, took {:?}",
        a.elapsed
    );
    assert_eq!(batches_in(&a.records), 2);

    // partition_max_bytes below one batch: still exactly one whole batch.
    let a = fetch(&b, "lp", 0, 0, 1, 10);
    assert_eq!(
        batches_in(&a.records),
        1,
        "at least one whole batch, and no more"
    );

    // Out of range.
    let a = fetch(&b, "lp", 99, 0, 1, 1 << 20);
    assert_eq!(a.error_code, 1, "OFFSET_OUT_OF_RANGE");

    // ListOffsets: earliest, latest, by timestamp (record_batch stamps 1_700_000_000_000).
    assert_eq!(list_offset(&b, "lp", -2), (0, 0));
    assert_eq!(list_offset(&b, "lp", -1), (0, 2));
    assert_eq!(list_offset(&b, "lp", 1_600_000_000_000), (0, 0));
    assert_eq!(list_offset(&b, "lp", 1_800_000_000_000), (0, -1));
    assert_eq!(
        list_offset(&b, "nope", -1).0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
}

/// A second handle on the running broker for another thread.
struct BrokerRef {
    port: u16,
}

impl BrokerRef {
    fn produce_one(&self) -> i16 {
        produce_to_port(self.port, "lp", record_batch(1000))
    }
}
