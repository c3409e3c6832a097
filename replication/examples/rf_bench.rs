//! acks=all produce throughput and latency, replication factor 1 against 3, in one run.
//!
//! Each broker is one glommio executor on its own thread (as a broker process would be one
//! shard) with its own data directory of real DMA segment files (O_DIRECT, fdatasync,
//! group commit); replicas talk through the real transport over loopback TCP. The leader's
//! executor also runs the producer: `IN_FLIGHT` tasks each appending pre-built batches with
//! acks=all through `ReplicaDriver::produce`. Every run is bounded in time and in batches.
//!
//! `cargo run --release -p sluice-replication --example rf_bench [-- seconds]`
//! Environment: `RF_BENCH_DIR` (default `target/rf-bench`, must be a real disk: O_DIRECT),
//! `RF_BENCH_IN_FLIGHT` (16), `RF_BENCH_RECORDS` (16 per batch), `RF_BENCH_VALUE_BYTES`
//! (1024), `RF_BENCH_RFS` (`1,3`).
//!
//! Prints MB/s of record values, batches/s, p50/p99/p99.9/max acks=all latency, and the
//! process CPU-seconds per GB (all brokers and the in-process producer together), plus the
//! leader's and a follower's fdatasync counts (how well appends share a sync).

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::net::TcpListener;
use glommio::LocalExecutorBuilder;
use hdrhistogram::Histogram;
use sluice_engine::batch::build;
use sluice_engine::clock::SystemClock;
use sluice_engine::io::dma::{prime_device_probe, write_probe_file, DmaStorage};
use sluice_engine::log::PartitionLog;
use sluice_engine::{Durability, LeaderEpoch, LogConfig, TopicPartition};
use sluice_replication::driver::{DriverHooks, ReplicaDriver};
use sluice_replication::partition::{LeaderAndIsr, ReplicaSettings};
use sluice_replication::transport::{serve, PeerLink};
use sluice_replication::wire::FrameKind;
use sluice_replication::{BrokerId, PartitionEpoch};

/// Hard cap on batches per run, whatever the duration.
const BATCHES_MAX: usize = 2_000_000;

#[derive(Clone, Debug)]
struct Load {
    seconds: f64,
    in_flight: usize,
    records: usize,
    value_bytes: usize,
}

struct Outcome {
    batches: usize,
    secs: f64,
    hist: Histogram<u64>,
    leader_syncs: u64,
    follower_syncs: u64,
    /// fdatasync latency p99.9 and max (us) of the leader's and a follower's log.
    leader_sync_us: (u64, u64),
    follower_sync_us: (u64, u64),
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of this process, seconds (USER_HZ is 100 on Linux).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the state field.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let load = Load {
        seconds,
        in_flight: env_or("RF_BENCH_IN_FLIGHT", 16usize).clamp(1, 4096),
        records: env_or("RF_BENCH_RECORDS", 16usize).clamp(1, 10_000),
        value_bytes: env_or("RF_BENCH_VALUE_BYTES", 1024usize).clamp(1, 1 << 20),
    };
    let rfs: Vec<usize> = std::env::var("RF_BENCH_RFS")
        .unwrap_or_else(|_| "1,3".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|rf| (1..=5).contains(rf))
        .collect();
    let dir = std::env::var("RF_BENCH_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/rf-bench"),
        PathBuf::from,
    );
    println!(
        "rf_bench: acks=all, {} in flight, batches of {} x {} B, {:.0} s per run, data in {}",
        load.in_flight,
        load.records,
        load.value_bytes,
        load.seconds,
        dir.display()
    );
    for rf in rfs {
        let _ = std::fs::remove_dir_all(&dir);
        let cpu0 = process_cpu_seconds();
        let o = run(rf, &load, &dir);
        let cpu = process_cpu_seconds() - cpu0;
        let _ = std::fs::remove_dir_all(&dir);
        let bytes = (o.batches * load.records * load.value_bytes) as f64;
        let h = &o.hist;
        println!(
            "RF{rf}: {:>7.1} MB/s {:>7.0} batches/s  latency p50 {:>6} us p99 {:>6} us p99.9 {:>6} us max {:>6} us  cpu {:.1} s/GB  fdatasyncs leader {} follower {} ({} batches)  fdatasync p99.9/max us leader {}/{} follower {}/{}",
            bytes / 1e6 / o.secs,
            o.batches as f64 / o.secs,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            cpu / (bytes / 1e9),
            o.leader_syncs,
            o.follower_syncs,
            o.batches,
            o.leader_sync_us.0,
            o.leader_sync_us.1,
            o.follower_sync_us.0,
            o.follower_sync_us.1,
        );
    }
}

/// One run: `rf` brokers, broker 1 leads and produces.
fn run(rf: usize, load: &Load, dir: &Path) -> Outcome {
    let probe = write_probe_file(dir).unwrap();
    let ids: Vec<BrokerId> = (1..=rf as i32).map(BrokerId).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (addr_tx, addr_rx) = mpsc::channel::<(usize, SocketAddr)>();
    let mut peer_txs = Vec::new();
    let follower_syncs = Arc::new(AtomicU64::new(0));
    let follower_sync_us = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let follower_durable = Arc::new(AtomicI64::new(0));
    let mut handles = Vec::new();
    for (i, me) in ids.iter().copied().enumerate() {
        let (peers_tx, peers_rx) = mpsc::channel::<Vec<SocketAddr>>();
        peer_txs.push(peers_tx);
        let addr_tx = addr_tx.clone();
        let ids = ids.clone();
        let probe = probe.clone();
        let dir = dir.join(format!("broker-{}", me.0)).join("t-0");
        let stop = stop.clone();
        let load = load.clone();
        let follower_syncs = follower_syncs.clone();
        let follower_sync_us = follower_sync_us.clone();
        let follower_durable = follower_durable.clone();
        let h = LocalExecutorBuilder::default()
            .name(&format!("broker-{}", me.0))
            .spawn(move || async move {
                prime_device_probe(&probe).await.unwrap();
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                addr_tx.send((i, listener.local_addr().unwrap())).unwrap();
                let addrs = peers_rx.recv().unwrap();
                let links: Rc<Vec<PeerLink>> =
                    Rc::new(addrs.iter().map(|a| PeerLink::spawn(*a)).collect());
                let log = PartitionLog::open(
                    DmaStorage,
                    dir,
                    TopicPartition::new("t", 0),
                    LogConfig {
                        segment_bytes: 256 << 20,
                        ..LogConfig::default()
                    },
                    Durability::GroupCommit,
                    Rc::new(SystemClock),
                )
                .await
                .unwrap();
                let hooks = DriverHooks {
                    send: Box::new(move |to, frame| links[(to.0 - 1) as usize].send(frame)),
                    alter_isr: Box::new(|_, _, isr| eprintln!("unexpected ISR proposal {isr:?}")),
                };
                let settings = ReplicaSettings {
                    min_insync_replicas: rf.min(2),
                    keepalive_interval_ms: 100,
                    retry_ms: 500,
                    ..ReplicaSettings::default()
                };
                let d = ReplicaDriver::start(
                    me,
                    Rc::new(log),
                    DmaStorage,
                    settings,
                    hooks,
                    Rc::new(SystemClock),
                )
                .await
                .unwrap();
                let frames = d.clone();
                glommio::spawn_local(serve(listener, move |kind, frame| {
                    if kind == FrameKind::Replica {
                        frames.on_frame(frame);
                    }
                }))
                .detach();
                d.on_metadata(&LeaderAndIsr {
                    leader: Some(ids[0]),
                    leader_epoch: LeaderEpoch(1),
                    partition_epoch: PartitionEpoch(1),
                    isr: ids.clone(),
                    replicas: ids.clone(),
                });
                let ticker = d.clone();
                glommio::spawn_local(async move {
                    loop {
                        glommio::timer::sleep(Duration::from_millis(20)).await;
                        ticker.tick();
                    }
                })
                .detach();
                if i > 0 {
                    while !stop.load(Ordering::Acquire) {
                        glommio::timer::sleep(Duration::from_millis(20)).await;
                        if i == 1 {
                            follower_durable.store(d.durable_end().0, Ordering::Release);
                        }
                    }
                    if i == 1 {
                        follower_syncs.store(d.log().stats().syncs.get(), Ordering::Release);
                        let h = d.log().stats().sync_latency_us();
                        follower_sync_us
                            .0
                            .store(h.value_at_quantile(0.999), Ordering::Release);
                        follower_sync_us.1.store(h.max(), Ordering::Release);
                    }
                    return None;
                }
                // Give the followers a moment to resume before the clock starts.
                glommio::timer::sleep(Duration::from_millis(300)).await;
                let outcome = produce(&d, &load).await;
                let end = d.high_watermark();
                // Followers must hold everything acknowledged, durably.
                let deadline = Instant::now() + Duration::from_secs(10);
                while rf > 1
                    && follower_durable.load(Ordering::Acquire) < end.0
                    && Instant::now() < deadline
                {
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
                if rf > 1 && follower_durable.load(Ordering::Acquire) < end.0 {
                    eprintln!("follower durable end below the high watermark {end}");
                }
                stop.store(true, Ordering::Release);
                let h = d.log().stats().sync_latency_us();
                Some(Outcome {
                    leader_syncs: d.log().stats().syncs.get(),
                    leader_sync_us: (h.value_at_quantile(0.999), h.max()),
                    ..outcome
                })
            })
            .unwrap();
        handles.push(h);
    }
    drop(addr_tx);
    let mut addrs = vec![None; rf];
    for _ in 0..rf {
        let (i, a) = addr_rx.recv().unwrap();
        addrs[i] = Some(a);
    }
    let addrs: Vec<SocketAddr> = addrs.into_iter().map(|a| a.unwrap()).collect();
    for tx in &peer_txs {
        tx.send(addrs.clone()).unwrap();
    }
    let mut outcome = None;
    for h in handles {
        if let Some(o) = h.join().unwrap() {
            outcome = Some(o);
        }
    }
    let mut o = outcome.expect("the leader reports");
    o.follower_syncs = follower_syncs.load(Ordering::Acquire);
    o.follower_sync_us = (
        follower_sync_us.0.load(Ordering::Acquire),
        follower_sync_us.1.load(Ordering::Acquire),
    );
    o
}

async fn produce(leader: &ReplicaDriver<DmaStorage>, load: &Load) -> Outcome {
    // Pre-built batches: the producer's own cost stays out of the broker's CPU figure.
    let batches: Rc<Vec<Vec<u8>>> = Rc::new(
        (0..64u8)
            .map(|i| build::batch(load.records, load.value_bytes, i, 0))
            .collect(),
    );
    let hist: Rc<RefCell<Histogram<u64>>> = Rc::new(RefCell::new(
        Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
    ));
    let done = Rc::new(RefCell::new(0usize));
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(load.seconds);
    let mut tasks = Vec::new();
    for w in 0..load.in_flight {
        let leader = leader.clone();
        let hist = hist.clone();
        let done = done.clone();
        let batches = batches.clone();
        tasks.push(glommio::spawn_local(async move {
            let mut i = w;
            while Instant::now() < until && *done.borrow() < BATCHES_MAX {
                let b = &batches[i % batches.len()];
                i += 1;
                let t = Instant::now();
                let produce = async { Some(leader.produce(b, true).await) };
                let timeout = async {
                    glommio::timer::sleep(Duration::from_secs(20)).await;
                    None
                };
                match futures_lite::future::or(produce, timeout).await {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => panic!("acks=all produce failed: {e}"),
                    None => panic!("produce not answered in 20 s: {}", leader.describe()),
                }
                let _ = hist.borrow_mut().record(t.elapsed().as_micros() as u64);
                *done.borrow_mut() += 1;
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let batches = *done.borrow();
    let hist = hist.borrow().clone();
    Outcome {
        batches,
        secs,
        hist,
        leader_syncs: 0,
        follower_syncs: 0,
        leader_sync_us: (0, 0),
        follower_sync_us: (0, 0),
    }
}
