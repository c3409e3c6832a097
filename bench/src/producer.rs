//! One producer: a writer thread that generates, batches and sends produce requests, and
//! a reader thread that matches responses and records ack latency. At most `in_flight`
//! requests are unanswered at once (the bounded hand-off channel between the two).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

use crate::config::BenchConfig;
use crate::error::{BenchError, Result};
use crate::histogram::{LatencyHistogram, Timeline};
use crate::limits::REQUEST_BYTES_MAX;
use crate::shared::Shared;
use crate::wire::{Connection, ResponseReader};
use crate::workload::{RecordGenerator, Schedule};

#[derive(Debug, Default)]
pub struct ProducerOutcome {
    pub produce_ack: LatencyHistogram,
    pub acked: Timeline,
    pub sent: Timeline,
    pub records_sent: u64,
    pub records_acked: u64,
    pub records_failed: u64,
    pub bytes_sent: u64,
    pub first_error: Option<String>,
    /// The fixed-rate schedule was not finished when the hard deadline came.
    pub fell_behind: bool,
}

struct PendingBatch {
    records: Vec<Record>,
    intended_ns: Vec<u64>,
    value_bytes: usize,
    first_ns: u64,
}

struct SentBatch {
    slot: usize,
    intended_ns: Vec<u64>,
    value_bytes: u64,
}

struct InFlight {
    correlation_id: i32,
    batches: Vec<SentBatch>,
}

pub struct ProducerPlan<'a> {
    pub index: u32,
    pub config: &'a BenchConfig,
    pub shared: &'a Shared,
    pub connection: Connection,
    pub produce_version: i16,
    pub records_max: Option<u64>,
}

pub fn run_producer(plan: ProducerPlan<'_>) -> Result<ProducerOutcome> {
    let ProducerPlan {
        index,
        config,
        shared,
        connection,
        produce_version,
        records_max,
    } = plan;
    let (mut writer, reader) = connection.split()?;
    let acks = config.acks.0;
    // The reader holds one entry while it waits for that response, so the channel holds
    // `in_flight - 1`: at most `in_flight` requests are ever unanswered.
    let (tx, rx) = sync_channel::<InFlight>(config.in_flight - 1);
    std::thread::scope(|scope| {
        let reader_thread = (acks != 0).then(|| {
            let cpus = config.cpus.clone();
            std::thread::Builder::new()
                .name(format!("bench-ack-{index}"))
                .spawn_scoped(scope, move || {
                    crate::pin_current_thread(&cpus, 2 * index as usize + 1);
                    read_acks(reader, rx, shared, produce_version, config)
                })
        });
        let reader_thread = match reader_thread.transpose() {
            Ok(t) => t,
            Err(source) => {
                return Err(BenchError::Io {
                    addr: "spawn".into(),
                    source,
                })
            }
        };

        let mut outcome = ProducerOutcome::default();
        let generate = write_requests(
            &mut writer,
            &tx,
            shared,
            config,
            index,
            produce_version,
            records_max,
            &mut outcome,
        );
        drop(tx);
        if let Err(e) = &generate {
            shared.abort.store(true, Ordering::Relaxed);
            outcome.first_error.get_or_insert_with(|| e.to_string());
        }
        if let Some(t) = reader_thread {
            let acked = t
                .join()
                .map_err(|_| BenchError::ThreadPanicked(format!("bench-ack-{index}")))?;
            match acked {
                Ok(a) => {
                    outcome.produce_ack = a.produce_ack;
                    outcome.acked = a.acked;
                    outcome.records_acked = a.records_acked;
                    outcome.records_failed += a.records_failed;
                    if outcome.first_error.is_none() {
                        outcome.first_error = a.first_error;
                    }
                }
                Err(e) => {
                    shared.abort.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        generate.map(|()| outcome)
    })
}

#[allow(clippy::too_many_arguments)]
fn write_requests(
    writer: &mut crate::wire::RequestWriter,
    tx: &std::sync::mpsc::SyncSender<InFlight>,
    shared: &Shared,
    config: &BenchConfig,
    index: u32,
    produce_version: i16,
    records_max: Option<u64>,
    outcome: &mut ProducerOutcome,
) -> Result<()> {
    let slots = shared.slots.len();
    let mut generator = RecordGenerator::new(
        config.seed ^ (u64::from(index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        config.record_size,
        config.key_cardinality,
        slots,
        config.batch_bytes,
        shared.run_tag,
    );
    let mut schedule = Schedule::new(config.records_per_second_per_producer());
    let duration_ns = config.duration.as_nanos() as u64;
    let hard_end_ns = duration_ns + config.drain_timeout.as_nanos() as u64;
    let linger_ns = config.linger.as_nanos() as u64;
    let mut pending: Vec<Option<PendingBatch>> = (0..slots).map(|_| None).collect();
    let mut pending_slots: Vec<usize> = Vec::new();
    let mut generated = 0u64;
    let options = RecordEncodeOptions {
        version: 2,
        compression: config.compression.to_kafka(),
    };

    loop {
        if shared.aborted() {
            return Ok(());
        }
        let now = shared.now_ns();
        let due = schedule.next_due_ns(now);
        let under_count = match records_max {
            Some(m) => generated < m,
            None => true,
        };
        let more = under_count && due < duration_ns;
        if !more || now >= hard_end_ns {
            outcome.fell_behind = more;
            if !pending_slots.is_empty() {
                send(
                    writer,
                    tx,
                    shared,
                    config,
                    produce_version,
                    &options,
                    &mut pending,
                    &mut pending_slots,
                    outcome,
                )?;
            }
            return Ok(());
        }
        // Batches join `pending_slots` when they open and leave from the front, so the
        // first one is the oldest.
        let oldest = pending_slots
            .first()
            .and_then(|s| pending[*s].as_ref())
            .map(|b| b.first_ns);
        let linger_due = oldest.map(|t| t + linger_ns);
        if due > now {
            // Paced and ahead of schedule: send what has lingered long enough, else sleep.
            if linger_due.is_some_and(|d| d <= now) {
                send(
                    writer,
                    tx,
                    shared,
                    config,
                    produce_version,
                    &options,
                    &mut pending,
                    &mut pending_slots,
                    outcome,
                )?;
                continue;
            }
            let wake = linger_due.map_or(due, |d| d.min(due));
            std::thread::sleep(Duration::from_nanos(
                wake.saturating_sub(now).min(10_000_000),
            ));
            continue;
        }
        let record = generator.next_record(due);
        schedule.advance();
        generated += 1;
        let batch = pending[record.slot].get_or_insert_with(|| {
            pending_slots.push(record.slot);
            PendingBatch {
                records: Vec::new(),
                intended_ns: Vec::new(),
                value_bytes: 0,
                first_ns: now,
            }
        });
        batch.value_bytes += record.value.len();
        batch.intended_ns.push(due);
        let timestamp = shared.epoch_unix_ms + (due / 1_000_000) as i64;
        let offset_delta = batch.records.len();
        batch.records.push(new_record(
            offset_delta,
            timestamp,
            record.key,
            record.value,
        ));
        let full = batch.value_bytes >= config.batch_bytes;
        let lingered = linger_due.is_some_and(|d| d <= now);
        if full || lingered || (!schedule.is_paced() && linger_ns == 0) {
            send(
                writer,
                tx,
                shared,
                config,
                produce_version,
                &options,
                &mut pending,
                &mut pending_slots,
                outcome,
            )?;
        }
    }
}

/// A record of a non-idempotent producer's batch, `offset_delta` into the batch.
pub(crate) fn new_record(
    offset_delta: usize,
    timestamp_ms: i64,
    key: Option<Bytes>,
    value: Bytes,
) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        timestamp_type: TimestampType::Creation,
        offset: offset_delta as i64,
        // The encoder gives each record base_sequence + offset delta and starts a new
        // batch where that breaks; counting from NO_SEQUENCE keeps one batch whose base
        // sequence is NO_SEQUENCE (-1), as a non-idempotent producer sends.
        sequence: NO_SEQUENCE.wrapping_add(offset_delta as i32),
        timestamp: timestamp_ms,
        key,
        value: Some(value),
        headers: Default::default(),
    }
}

/// Drain pending batches (oldest partitions first, up to REQUEST_BYTES_MAX) into one
/// produce request, as Kafka's sender drains every batch bound for a ready broker.
#[allow(clippy::too_many_arguments)]
fn send(
    writer: &mut crate::wire::RequestWriter,
    tx: &std::sync::mpsc::SyncSender<InFlight>,
    shared: &Shared,
    config: &BenchConfig,
    produce_version: i16,
    options: &RecordEncodeOptions,
    pending: &mut [Option<PendingBatch>],
    pending_slots: &mut Vec<usize>,
    outcome: &mut ProducerOutcome,
) -> Result<()> {
    let mut by_topic: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
    let mut sent_batches = Vec::new();
    let mut request_bytes = 0usize;
    let mut records = 0u64;
    let mut taken = 0;
    for slot in pending_slots.iter() {
        if request_bytes >= REQUEST_BYTES_MAX - config.batch_bytes {
            break;
        }
        taken += 1;
        let Some(batch) = pending[*slot].take() else {
            continue;
        };
        let mut buf = BytesMut::with_capacity(batch.value_bytes + 64 * batch.records.len() + 128);
        RecordBatchEncoder::encode(&mut buf, batch.records.iter(), options).map_err(|e| {
            BenchError::Encode {
                what: "record batch",
                source: e.into(),
            }
        })?;
        let encoded: Bytes = buf.freeze();
        request_bytes += encoded.len();
        records += batch.records.len() as u64;
        let target = &shared.slots[*slot];
        by_topic.entry(target.topic.as_str()).or_default().push(
            PartitionProduceData::default()
                .with_index(target.partition)
                .with_records(Some(encoded)),
        );
        sent_batches.push(SentBatch {
            slot: *slot,
            intended_ns: batch.intended_ns,
            value_bytes: batch.value_bytes as u64,
        });
    }
    pending_slots.drain(..taken);
    if sent_batches.is_empty() {
        return Ok(());
    }
    let request = ProduceRequest::default()
        .with_acks(config.acks.0)
        .with_timeout_ms(i32::try_from(config.request_timeout.as_millis()).unwrap_or(i32::MAX))
        .with_topic_data(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partition_data(partitions)
                })
                .collect(),
        );
    let value_bytes: u64 = sent_batches.iter().map(|b| b.value_bytes).sum();
    if config.acks.0 != 0 {
        // Blocks while `in_flight` requests are unanswered: the pipelining bound.
        let in_flight = InFlight {
            correlation_id: writer.next_correlation_id(),
            batches: sent_batches,
        };
        if tx.send(in_flight).is_err() {
            // The reader has stopped (it failed); its error is reported from there.
            shared.abort.store(true, Ordering::Relaxed);
            return Ok(());
        }
        shared.counters.in_flight.fetch_add(1, Ordering::Relaxed);
    }
    writer.send(produce_version, &request)?;
    let now = shared.now_ns();
    outcome.records_sent += records;
    outcome.bytes_sent += value_bytes;
    outcome.sent.add(now, records, value_bytes);
    shared
        .counters
        .records_sent
        .fetch_add(records, Ordering::Relaxed);
    shared
        .counters
        .bytes_sent
        .fetch_add(value_bytes, Ordering::Relaxed);
    Ok(())
}

struct AckOutcome {
    produce_ack: LatencyHistogram,
    acked: Timeline,
    records_acked: u64,
    records_failed: u64,
    first_error: Option<String>,
}

fn read_acks(
    mut reader: ResponseReader,
    rx: Receiver<InFlight>,
    shared: &Shared,
    produce_version: i16,
    config: &BenchConfig,
) -> Result<AckOutcome> {
    let mut out = AckOutcome {
        produce_ack: LatencyHistogram::new(),
        acked: Timeline::default(),
        records_acked: 0,
        records_failed: 0,
        first_error: None,
    };
    let hard_end_ns = (config.duration + config.drain_timeout * 2).as_nanos() as u64;
    // `recv` fails once the writer has finished and every in-flight entry is taken.
    while let Ok(in_flight) = rx.recv() {
        if shared.now_ns() > hard_end_ns {
            let lost: u64 = in_flight
                .batches
                .iter()
                .map(|b| b.intended_ns.len() as u64)
                .sum();
            out.records_failed += lost;
            out.first_error
                .get_or_insert_with(|| "acks still outstanding at the drain deadline".into());
            continue;
        }
        let response = reader.recv::<ProduceRequest>(in_flight.correlation_id, produce_version);
        shared.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                shared.abort.store(true, Ordering::Relaxed);
                return Err(e);
            }
        };
        let now = shared.now_ns();
        let mut answered = vec![None; in_flight.batches.len()];
        for topic in &response.responses {
            for p in &topic.partition_responses {
                let Some(slot) = shared.slot_of(topic.name.0.as_str(), p.index) else {
                    continue;
                };
                if let Some(i) = in_flight.batches.iter().position(|b| b.slot == slot) {
                    answered[i] = Some((p.error_code, p.base_offset));
                    if p.error_code != 0 && out.first_error.is_none() {
                        let detail = p
                            .error_message
                            .as_ref()
                            .map(|m| m.as_str().to_string())
                            .or_else(|| {
                                p.record_errors
                                    .first()
                                    .and_then(|r| r.batch_index_error_message.as_ref())
                                    .map(|m| m.as_str().to_string())
                            });
                        out.first_error = Some(format!(
                            "produce to {}-{}: error code {}{}",
                            topic.name.0.as_str(),
                            p.index,
                            p.error_code,
                            detail.map(|d| format!(" ({d})")).unwrap_or_default()
                        ));
                    }
                }
            }
        }
        for (batch, answer) in in_flight.batches.iter().zip(answered) {
            let count = batch.intended_ns.len() as u64;
            match answer {
                Some((0, base_offset)) => {
                    for &intended in &batch.intended_ns {
                        if intended >= shared.warmup_ns {
                            out.produce_ack.record_ns(now.saturating_sub(intended));
                        }
                    }
                    out.records_acked += count;
                    out.acked.add(now, count, batch.value_bytes);
                    shared
                        .counters
                        .records_acked
                        .fetch_add(count, Ordering::Relaxed);
                    shared.acked_end[batch.slot]
                        .fetch_max(base_offset + count as i64, Ordering::Relaxed);
                }
                other => {
                    out.records_failed += count;
                    shared
                        .counters
                        .records_failed
                        .fetch_add(count, Ordering::Relaxed);
                    let slot = &shared.slots[batch.slot];
                    out.first_error.get_or_insert_with(|| match other {
                        Some((code, _)) => format!(
                            "produce to {}-{}: error code {code}",
                            slot.topic, slot.partition
                        ),
                        None => format!(
                            "produce to {}-{}: no answer for the partition",
                            slot.topic, slot.partition
                        ),
                    });
                }
            }
        }
    }
    Ok(out)
}
