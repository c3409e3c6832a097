//! One bench run from start to summary: set up, start consumers (positioned before any
//! record is sent), start producers, print progress, drain, merge the histograms.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::BenchConfig;
use crate::consumer::{Consumer, ConsumerOutcome};
use crate::error::{BenchError, Result};
use crate::histogram::Timeline;
use crate::producer::{run_producer, ProducerOutcome, ProducerPlan};
use crate::report::{Histograms, Summary, Throughput};
use crate::shared::Shared;
use crate::wire::Connection;

pub fn run(config: &BenchConfig) -> Result<(Summary, Histograms)> {
    config.validate()?;
    let topics: Vec<String> = (0..config.topics).map(|i| config.topic_name(i)).collect();
    let cluster = crate::setup::prepare(config, &topics)?;
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let run_tag = started_unix.as_nanos() as u64 ^ u64::from(std::process::id()) << 32;
    let shared = Shared::new(
        &topics,
        config.partitions,
        config.warmup.as_nanos() as u64,
        run_tag,
        started_unix.as_millis() as i64,
    );

    // Consumers split the partitions round-robin and learn their start offsets now,
    // before any record of this run exists.
    let mut consumers = Vec::new();
    for c in 0..config.consumers {
        let slots: Vec<usize> = (0..shared.slots.len())
            .filter(|s| s % config.consumers as usize == c as usize)
            .collect();
        if slots.is_empty() {
            continue;
        }
        let conn = Connection::connect(
            &cluster.leader_addr,
            &format!("sluice-bench-consumer-{c}"),
            config.request_timeout,
        )?;
        consumers.push(Consumer::prepare(
            conn,
            &shared,
            slots,
            cluster.versions.list_offsets,
            cluster.versions.fetch,
        )?);
    }
    let mut producer_connections = Vec::new();
    for p in 0..config.producers {
        producer_connections.push(Connection::connect(
            &cluster.leader_addr,
            &format!("sluice-bench-producer-{p}"),
            config.request_timeout,
        )?);
    }
    let records_max_per_producer = config.records_max.map(|m| {
        let n = u64::from(config.producers);
        m.div_ceil(n)
    });

    let progress_done = std::sync::atomic::AtomicBool::new(false);
    let (producer_results, consumer_results) = std::thread::scope(|scope| {
        let shared = &shared;
        let progress_done = &progress_done;
        if config.progress {
            let _ = std::thread::Builder::new()
                .name("bench-progress".into())
                .spawn_scoped(scope, move || {
                    crate::report::progress_loop(shared, config, progress_done)
                });
        }
        let consumer_threads: Vec<_> = consumers
            .into_iter()
            .enumerate()
            .map(|(i, consumer)| {
                std::thread::Builder::new()
                    .name(format!("bench-consumer-{i}"))
                    .spawn_scoped(scope, move || {
                        crate::pin_current_thread(&config.cpus, 2 * config.producers as usize + i);
                        consumer.run(config)
                    })
            })
            .collect();
        let producer_threads: Vec<_> = producer_connections
            .into_iter()
            .enumerate()
            .map(|(i, connection)| {
                std::thread::Builder::new()
                    .name(format!("bench-producer-{i}"))
                    .spawn_scoped(scope, move || {
                        crate::pin_current_thread(&config.cpus, 2 * i);
                        run_producer(ProducerPlan {
                            index: i as u32,
                            config,
                            shared,
                            connection,
                            produce_version: cluster.versions.produce,
                            records_max: records_max_per_producer,
                        })
                    })
            })
            .collect();
        let producer_results: Vec<Result<ProducerOutcome>> = producer_threads
            .into_iter()
            .enumerate()
            .map(|(i, t)| match t {
                Ok(t) => t
                    .join()
                    .map_err(|_| BenchError::ThreadPanicked(format!("bench-producer-{i}")))?,
                Err(source) => Err(BenchError::Io {
                    addr: "spawn".into(),
                    source,
                }),
            })
            .collect();
        shared
            .producers_done_ns
            .store(shared.now_ns(), Ordering::Relaxed);
        shared.producers_done.store(true, Ordering::Release);
        let consumer_results: Vec<Result<ConsumerOutcome>> = consumer_threads
            .into_iter()
            .enumerate()
            .map(|(i, t)| match t {
                Ok(t) => t
                    .join()
                    .map_err(|_| BenchError::ThreadPanicked(format!("bench-consumer-{i}")))?,
                Err(source) => Err(BenchError::Io {
                    addr: "spawn".into(),
                    source,
                }),
            })
            .collect();
        progress_done.store(true, Ordering::Relaxed);
        (producer_results, consumer_results)
    });

    let mut histograms = Histograms::default();
    let (mut sent, mut acked, mut consumed) = (
        Timeline::default(),
        Timeline::default(),
        Timeline::default(),
    );
    let mut summary = Summary::new(
        config,
        &cluster.leader_addr,
        started_unix.as_millis() as u64,
    );
    for p in producer_results {
        let p = p?;
        histograms.produce_ack.merge(&p.produce_ack);
        sent.merge(&p.sent);
        acked.merge(&p.acked);
        summary.records_sent += p.records_sent;
        summary.records_acknowledged += p.records_acked;
        summary.records_failed += p.records_failed;
        summary.bytes_sent += p.bytes_sent;
        summary.fell_behind_schedule |= p.fell_behind;
        if summary.first_error.is_none() {
            summary.first_error = p.first_error;
        }
    }
    for c in consumer_results {
        let c = c?;
        histograms.end_to_end.merge(&c.end_to_end);
        histograms.fetch.merge(&c.fetch);
        consumed.merge(&c.consumed);
        summary.records_consumed += c.records_consumed;
        summary.consumers_incomplete |= c.incomplete;
    }
    let from = config.warmup.as_nanos() as u64;
    let to = shared
        .producers_done_ns
        .load(Ordering::Relaxed)
        .min(config.duration.as_nanos() as u64);
    let producer_side = if config.acks.0 == 0 { &sent } else { &acked };
    summary.produce = Throughput::over(producer_side, from, to);
    summary.consume = Throughput::over(&consumed, from, to);
    summary.elapsed_seconds = Duration::from_nanos(shared.now_ns()).as_secs_f64();
    summary.produce_ack = histograms.produce_ack.summary();
    summary.end_to_end = histograms.end_to_end.summary();
    summary.fetch = histograms.fetch.summary();
    Ok((summary, histograms))
}

/// Merged histograms of a run, kept for `.hgrm` output.
impl Histograms {
    pub fn is_empty(&self) -> bool {
        self.produce_ack.count() == 0 && self.end_to_end.count() == 0
    }
}
