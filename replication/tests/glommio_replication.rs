//! The replica state machines on glommio: three replicas of one partition on one executor,
//! each with its own data directory of real DMA segment files (O_DIRECT, fdatasync), talking
//! through the real transport over loopback TCP. acks=all produce through the leader; every
//! follower ends with the leader's exact batches. Prints throughput and latency (debug
//! build, one core, RF 3, every ack after three fdatasyncs): a figure, not an assertion.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;
use glommio::LocalExecutorBuilder;
use sluice_engine::batch::{batches, build, BatchView};
use sluice_engine::clock::SystemClock;
use sluice_engine::io::dma::{prime_device_probe, write_probe_file, DmaStorage};
use sluice_engine::log::PartitionLog;
use sluice_engine::{Durability, LeaderEpoch, LogConfig, Offset, TopicPartition};
use sluice_replication::driver::{DriverHooks, ReplicaDriver};
use sluice_replication::partition::{LeaderAndIsr, ReplicaSettings};
use sluice_replication::transport::{serve, PeerLink};
use sluice_replication::wire::FrameKind;
use sluice_replication::{BrokerId, PartitionEpoch};

fn test_dir(name: &str) -> PathBuf {
    // Under the target directory: a real disk with O_DIRECT (tmpfs has none).
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    base
}

async fn all_batches(log: &PartitionLog<DmaStorage>, upto: Offset) -> Vec<(i64, i32, u32)> {
    let mut out = Vec::new();
    let mut from = Offset(0);
    while from < upto {
        let r = log.read_upto(from, 1 << 20, upto).await.unwrap();
        if r.bytes.is_empty() {
            break;
        }
        for v in batches(&r.bytes) {
            let v = BatchView::parse_checked(v.unwrap().bytes()).unwrap();
            out.push((v.base_offset().0, v.leader_epoch().0, v.stored_crc()));
            from = v.last_offset().next();
        }
    }
    out
}

#[test]
fn three_replicas_on_glommio_replicate_acks_all_over_tcp() {
    let base = test_dir("glommio-replication");
    let probe = write_probe_file(&base).unwrap();
    let base2 = base.clone();
    LocalExecutorBuilder::default()
        .spawn(move || async move {
            prime_device_probe(&probe).await.unwrap();
            let ids = [BrokerId(1), BrokerId(2), BrokerId(3)];
            let mut listeners = Vec::new();
            let mut addrs = Vec::new();
            for _ in ids {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                addrs.push(l.local_addr().unwrap());
                listeners.push(l);
            }
            let links: Rc<Vec<PeerLink>> =
                Rc::new(addrs.iter().map(|a| PeerLink::spawn(*a)).collect());
            let isr_proposals = Rc::new(RefCell::new(0usize));
            let mut drivers = Vec::new();
            for (i, me) in ids.iter().enumerate() {
                let dir = base2.join(format!("broker-{}", me.0)).join("t-0");
                let log = PartitionLog::open(
                    DmaStorage,
                    dir,
                    TopicPartition::new("t", 0),
                    LogConfig {
                        segment_bytes: 8 << 20,
                        ..LogConfig::default()
                    },
                    Durability::GroupCommit,
                    Rc::new(SystemClock),
                )
                .await
                .unwrap();
                let links = links.clone();
                let proposals = isr_proposals.clone();
                let hooks = DriverHooks {
                    send: Box::new(move |to, frame| links[(to.0 - 1) as usize].send(frame)),
                    alter_isr: Box::new(move |_, _, _| *proposals.borrow_mut() += 1),
                };
                let settings = ReplicaSettings {
                    replica_lag_time_max_ms: 30_000,
                    min_insync_replicas: 2,
                    keepalive_interval_ms: 100,
                    retry_ms: 500,
                    ..ReplicaSettings::default()
                };
                let d = ReplicaDriver::start(
                    *me,
                    Rc::new(log),
                    DmaStorage,
                    settings,
                    hooks,
                    Rc::new(SystemClock),
                )
                .await
                .unwrap();
                let frames = d.clone();
                glommio::spawn_local(serve(listeners.remove(0), move |kind, frame| {
                    if kind == FrameKind::Replica {
                        frames.on_frame(frame);
                    }
                }))
                .detach();
                let _ = i;
                drivers.push(d);
            }
            // What the controller committed for this partition (the quorum is tested in
            // controller_quorum.rs and the simulation; here the replicas are the subject).
            let state = LeaderAndIsr {
                leader: Some(ids[0]),
                leader_epoch: LeaderEpoch(1),
                partition_epoch: PartitionEpoch(1),
                isr: ids.to_vec(),
                replicas: ids.to_vec(),
            };
            for d in &drivers {
                d.on_metadata(&state);
            }
            let tickers = drivers.clone();
            glommio::spawn_local(async move {
                loop {
                    glommio::timer::sleep(Duration::from_millis(20)).await;
                    for d in &tickers {
                        d.tick();
                    }
                }
            })
            .detach();

            const BATCHES: usize = 600;
            const IN_FLIGHT: usize = 16;
            const RECORDS: usize = 16;
            const VALUE_BYTES: usize = 1024;
            let leader = drivers[0].clone();
            let latencies: Rc<RefCell<Vec<u64>>> = Rc::default();
            let started = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..IN_FLIGHT {
                let leader = leader.clone();
                let latencies = latencies.clone();
                tasks.push(glommio::spawn_local(async move {
                    for i in (w..BATCHES).step_by(IN_FLIGHT) {
                        let b = build::batch(RECORDS, VALUE_BYTES, (i % 251) as u8, 0);
                        let t = Instant::now();
                        let produce = async { Some(leader.produce(&b, true).await) };
                        let timeout = async {
                            glommio::timer::sleep(Duration::from_secs(20)).await;
                            None
                        };
                        match futures_lite::future::or(produce, timeout).await {
                            Some(r) => {
                                r.expect("acks=all produce");
                            }
                            None => panic!("produce {i} not answered in 20 s"),
                        }
                        latencies.borrow_mut().push(t.elapsed().as_micros() as u64);
                    }
                }));
            }
            let watch = drivers.clone();
            glommio::spawn_local(async move {
                glommio::timer::sleep(Duration::from_secs(15)).await;
                for d in &watch {
                    eprintln!("STATE {}", d.describe());
                }
            })
            .detach();
            for t in tasks {
                t.await;
            }
            let secs = started.elapsed().as_secs_f64();
            let end = Offset((BATCHES * RECORDS) as i64);
            assert_eq!(leader.high_watermark(), end);
            // Followers learn the final high watermark from the next keepalive; their logs
            // must already hold everything durably (the leader counted their acks).
            let deadline = Instant::now() + Duration::from_secs(20);
            while drivers.iter().any(|d| d.durable_end() < end) && Instant::now() < deadline {
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            let want = all_batches(drivers[0].log(), end).await;
            assert_eq!(want.len(), BATCHES);
            for d in &drivers[1..] {
                assert_eq!(all_batches(d.log(), end).await, want, "follower log differs");
            }
            assert_eq!(*isr_proposals.borrow(), 0, "nobody fell out of sync");
            let mut l = latencies.borrow().clone();
            l.sort_unstable();
            let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
            let mb = (BATCHES * RECORDS * VALUE_BYTES) as f64 / 1e6;
            println!(
                "glommio RF3 acks=all: {BATCHES} batches x {RECORDS} x {VALUE_BYTES} B, {IN_FLIGHT} in flight: {:.1} MB/s, {:.0} batches/s, latency p50 {} us p99 {} us max {} us",
                mb / secs,
                BATCHES as f64 / secs,
                pct(0.5),
                pct(0.99),
                l[l.len() - 1]
            );
        })
        .unwrap()
        .join()
        .unwrap();
    let _ = std::fs::remove_dir_all(&base);
}
