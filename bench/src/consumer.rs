//! One consumer: fetches its assigned partitions from the offsets they had before the
//! producers started, and measures fetch latency and end-to-end latency (consume time
//! minus the send time stamped in each record).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::config::BenchConfig;
use crate::error::{BenchError, Result};
use crate::histogram::{LatencyHistogram, Timeline};
use crate::limits::FETCH_BYTES_MAX;
use crate::shared::Shared;
use crate::wire::Connection;
use crate::workload::read_stamp;

const PARTITION_FETCH_BYTES: i32 = 1 << 20;
const FETCH_MAX_WAIT_MS: i32 = 100;
/// UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER.
const RETRIABLE: [i16; 3] = [3, 5, 6];
const RETRY_WINDOW: std::time::Duration = std::time::Duration::from_secs(30);
/// Batch v2 header: base offset through record count.
const BATCH_HEADER_BYTES: usize = 61;

#[derive(Debug, Default)]
pub struct ConsumerOutcome {
    pub end_to_end: LatencyHistogram,
    pub fetch: LatencyHistogram,
    pub consumed: Timeline,
    pub records_consumed: u64,
    /// Consumers stopped at the drain deadline before reaching every acked offset.
    pub incomplete: bool,
}

pub struct Consumer<'a> {
    connection: Connection,
    shared: &'a Shared,
    /// (slot, next offset to fetch)
    positions: Vec<(usize, i64)>,
    fetch_version: i16,
}

impl<'a> Consumer<'a> {
    /// Connects and looks up the end offsets of its partitions; call before producing.
    pub fn prepare(
        mut connection: Connection,
        shared: &'a Shared,
        slots: Vec<usize>,
        list_offsets_version: i16,
        fetch_version: i16,
    ) -> Result<Self> {
        let mut by_topic: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for slot in &slots {
            let s = &shared.slots[*slot];
            by_topic.entry(&s.topic).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(s.partition)
                    .with_timestamp(-1),
            );
        }
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        // A just-created partition answers "not leader" until its leader has loaded it.
        let deadline = std::time::Instant::now() + RETRY_WINDOW;
        let response = loop {
            let response = connection.call(list_offsets_version, &request)?;
            let retriable = response
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| RETRIABLE.contains(&p.error_code));
            if !retriable || std::time::Instant::now() >= deadline {
                break response;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let mut positions = Vec::with_capacity(slots.len());
        for topic in &response.topics {
            for p in &topic.partitions {
                if p.error_code != 0 {
                    return Err(BenchError::Broker {
                        what: format!(
                            "ListOffsets {}-{}",
                            topic.name.0.as_str(),
                            p.partition_index
                        ),
                        code: p.error_code,
                    });
                }
                if let Some(slot) = shared.slot_of(topic.name.0.as_str(), p.partition_index) {
                    positions.push((slot, p.offset));
                }
            }
        }
        if positions.len() != slots.len() {
            return Err(BenchError::Protocol {
                addr: connection.addr().to_string(),
                detail: format!(
                    "ListOffsets answered {} of {} partitions",
                    positions.len(),
                    slots.len()
                ),
            });
        }
        positions.sort_unstable();
        Ok(Self {
            connection,
            shared,
            positions,
            fetch_version,
        })
    }

    fn caught_up(&self) -> bool {
        self.positions
            .iter()
            .all(|(slot, pos)| *pos >= self.shared.acked_end[*slot].load(Ordering::Relaxed))
    }

    pub fn run(mut self, config: &BenchConfig) -> Result<ConsumerOutcome> {
        let shared = self.shared;
        let mut out = ConsumerOutcome::default();
        let drain_ns = config.drain_timeout.as_nanos() as u64;
        let hard_end_ns = (config.duration + config.drain_timeout * 2).as_nanos() as u64;
        loop {
            if shared.aborted() {
                return Ok(out);
            }
            let now = shared.now_ns();
            if shared.producers_done.load(Ordering::Acquire) {
                if self.caught_up() {
                    return Ok(out);
                }
                if now > shared.producers_done_ns.load(Ordering::Relaxed) + drain_ns {
                    out.incomplete = true;
                    return Ok(out);
                }
            }
            if now > hard_end_ns {
                out.incomplete = true;
                return Ok(out);
            }
            self.fetch_once(&mut out)?;
        }
    }

    fn fetch_once(&mut self, out: &mut ConsumerOutcome) -> Result<()> {
        let shared = self.shared;
        let mut by_topic: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for (slot, position) in &self.positions {
            let s = &shared.slots[*slot];
            by_topic.entry(&s.topic).or_default().push(
                FetchPartition::default()
                    .with_partition(s.partition)
                    .with_fetch_offset(*position)
                    .with_partition_max_bytes(PARTITION_FETCH_BYTES),
            );
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(FETCH_MAX_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_BYTES_MAX as i32)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        FetchTopic::default()
                            .with_topic(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let started = shared.now_ns();
        let response = self.connection.call(self.fetch_version, &request)?;
        let now = shared.now_ns();
        if started >= shared.warmup_ns {
            out.fetch.record_ns(now - started);
        }
        if response.error_code != 0 {
            return Err(BenchError::Broker {
                what: "Fetch".into(),
                code: response.error_code,
            });
        }
        for topic in &response.responses {
            for p in &topic.partitions {
                let Some(slot) = shared.slot_of(topic.topic.0.as_str(), p.partition_index) else {
                    continue;
                };
                if p.error_code != 0 {
                    return Err(BenchError::Broker {
                        what: format!("Fetch {}-{}", topic.topic.0.as_str(), p.partition_index),
                        code: p.error_code,
                    });
                }
                let Some(records) = &p.records else { continue };
                let Ok(i) = self.positions.binary_search_by_key(&slot, |(s, _)| *s) else {
                    continue;
                };
                let position = &mut self.positions[i].1;
                let (count, bytes) =
                    consume_batches(records, position, shared, now, out, self.connection.addr())?;
                out.records_consumed += count;
                out.consumed.add(now, count, bytes);
                shared
                    .counters
                    .records_consumed
                    .fetch_add(count, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

fn topic_name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_string()))
}

/// Walk the complete batches in a fetched record set (a trailing partial batch is left
/// for the next fetch), advance `position`, and record end-to-end latency for this run's
/// records. Returns (records, value bytes) consumed.
fn consume_batches(
    records: &Bytes,
    position: &mut i64,
    shared: &Shared,
    now: u64,
    out: &mut ConsumerOutcome,
    addr: &str,
) -> Result<(u64, u64)> {
    let mut at = 0usize;
    let (mut count, mut bytes) = (0u64, 0u64);
    while records.len() - at >= BATCH_HEADER_BYTES {
        let header = &records[at..];
        let batch_len = i32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        let Some(total) = usize::try_from(batch_len).ok().map(|l| l + 12) else {
            return Err(BenchError::Protocol {
                addr: addr.into(),
                detail: format!("batch length {batch_len}"),
            });
        };
        if records.len() - at < total {
            break;
        }
        let mut batch = records.slice(at..at + total);
        at += total;
        let base_offset = i64::from_be_bytes(header[0..8].try_into().unwrap_or_default());
        let last_delta = i32::from_be_bytes([header[23], header[24], header[25], header[26]]);
        let next = base_offset + i64::from(last_delta) + 1;
        if next <= *position {
            continue;
        }
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| BenchError::Decode {
            what: "record batch",
            addr: addr.into(),
            source: e.into(),
        })?;
        for record in set
            .records
            .iter()
            .filter(|r| r.offset >= *position && !r.control)
        {
            count += 1;
            let Some(value) = &record.value else { continue };
            bytes += value.len() as u64;
            if let Some((intended, tag)) = read_stamp(value) {
                if tag == shared.run_tag && intended >= shared.warmup_ns {
                    out.end_to_end.record_ns(now.saturating_sub(intended));
                }
            }
        }
        *position = next;
    }
    Ok((count, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
    };

    use crate::workload::stamp_value;

    const TAG: u64 = 77;

    fn batch(base_offset: i64, intended_ns: &[u64], tag: u64, compression: Compression) -> Bytes {
        let records: Vec<Record> = intended_ns
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let mut value = BytesMut::new();
                stamp_value(&mut value, *ns, tag);
                value.extend_from_slice(b"payload");
                Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                    producer_id: NO_PRODUCER_ID,
                    producer_epoch: NO_PRODUCER_EPOCH,
                    timestamp_type: TimestampType::Creation,
                    offset: base_offset + i as i64,
                    sequence: NO_SEQUENCE.wrapping_add(i as i32),
                    timestamp: 0,
                    key: None,
                    value: Some(value.freeze()),
                    headers: Default::default(),
                }
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode");
        buf.freeze()
    }

    fn shared() -> Shared {
        Shared::new(&["t".to_string()], 1, 1_000, TAG, 0)
    }

    #[test]
    fn complete_batches_advance_the_position_and_record_end_to_end_latency() {
        let shared = shared();
        let mut set = BytesMut::new();
        set.extend_from_slice(&batch(10, &[2_000, 3_000, 4_000], TAG, Compression::None));
        set.extend_from_slice(&batch(13, &[5_000, 6_000], TAG, Compression::Lz4));
        let mut out = ConsumerOutcome::default();
        let mut position = 10;
        let (count, bytes) = consume_batches(
            &set.freeze(),
            &mut position,
            &shared,
            10_000,
            &mut out,
            "test",
        )
        .expect("well-formed batches");
        assert_eq!((count, position), (5, 15));
        assert_eq!(bytes, 5 * (16 + 7));
        assert_eq!(out.end_to_end.count(), 5);
        // now 10_000 ns minus the oldest stamp 2_000 ns, within the histogram's precision.
        assert!((out.end_to_end.summary().max_ms - 0.008).abs() < 0.000_01);
    }

    #[test]
    fn a_trailing_partial_batch_is_left_for_the_next_fetch() {
        let shared = shared();
        let whole = batch(0, &[2_000, 2_000], TAG, Compression::None);
        let mut set = BytesMut::new();
        set.extend_from_slice(&whole);
        set.extend_from_slice(&batch(2, &[2_000], TAG, Compression::None)[..40]);
        let mut out = ConsumerOutcome::default();
        let mut position = 0;
        let (count, _) = consume_batches(
            &set.freeze(),
            &mut position,
            &shared,
            3_000,
            &mut out,
            "test",
        )
        .expect("ok");
        assert_eq!((count, position), (2, 2));
    }

    #[test]
    fn records_before_the_position_warm_up_and_other_runs_are_not_measured() {
        let shared = shared();
        let mut out = ConsumerOutcome::default();
        // A compressed batch can start before the fetch offset: offsets 0..3, position 2.
        let set = batch(0, &[5_000, 5_000, 500, 5_000], TAG, Compression::Gzip);
        let mut position = 2;
        let (count, _) =
            consume_batches(&set, &mut position, &shared, 9_000, &mut out, "test").expect("ok");
        // Offsets 2 and 3 are consumed; offset 2 was sent during warm-up (500 < 1_000).
        assert_eq!((count, position), (2, 4));
        assert_eq!(out.end_to_end.count(), 1);
        let other_run = batch(4, &[5_000], TAG + 1, Compression::None);
        let (count, _) =
            consume_batches(&other_run, &mut position, &shared, 9_000, &mut out, "test")
                .expect("ok");
        assert_eq!((count, position, out.end_to_end.count()), (1, 5, 1));
    }
}
