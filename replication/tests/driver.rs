//! `ReplicaDriver` on glommio over a real `PartitionLog` on `SimStorage` (group commit), with
//! the peer's side of the replica protocol played by the test through real frames: what the
//! driver executes locally (how many fdatasyncs, what is durable when it acks), and what it
//! keeps across a restart.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use glommio::LocalExecutorBuilder;
use sluice_engine::batch::{build, stamp, TimestampStamp};
use sluice_engine::clock::ManualClock;
use sluice_engine::io::sim::SimStorage;
use sluice_engine::log::PartitionLog;
use sluice_engine::{Durability, LeaderEpoch, LogConfig, Offset, TopicPartition};
use sluice_replication::driver::{DriverHooks, ReplicaDriver};
use sluice_replication::partition::{
    AckStatus, EpochCache, LeaderAndIsr, ReplicaBody, ReplicaMessage, ReplicaSettings,
};
use sluice_replication::{BrokerId, PartitionEpoch};

const TOPIC: &str = "d";
const ME: BrokerId = BrokerId(1);
const PEER: BrokerId = BrokerId(2);

type Sent = Rc<RefCell<Vec<(BrokerId, ReplicaMessage)>>>;

fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::default()
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

async fn open_log(storage: &SimStorage, clock: &ManualClock) -> Rc<PartitionLog<SimStorage>> {
    Rc::new(
        PartitionLog::open(
            storage.clone(),
            PathBuf::from("/data/d-0"),
            TopicPartition::new(TOPIC, 0),
            LogConfig {
                segment_bytes: 8 << 20,
                ..LogConfig::default()
            },
            Durability::GroupCommit,
            Rc::new(clock.clone()),
        )
        .await
        .unwrap(),
    )
}

async fn start(
    storage: &SimStorage,
    clock: &ManualClock,
    settings: ReplicaSettings,
) -> (ReplicaDriver<SimStorage>, Sent) {
    start_as(ME, storage, clock, settings).await
}

async fn start_as(
    me: BrokerId,
    storage: &SimStorage,
    clock: &ManualClock,
    settings: ReplicaSettings,
) -> (ReplicaDriver<SimStorage>, Sent) {
    let log = open_log(storage, clock).await;
    let sent: Sent = Rc::default();
    let out = sent.clone();
    let hooks = DriverHooks {
        send: Box::new(move |to, frame| {
            out.borrow_mut()
                .push((to, ReplicaMessage::decode(&frame).unwrap()))
        }),
        alter_isr: Box::new(|_, _, _| {}),
    };
    let d = ReplicaDriver::start(
        me,
        log,
        storage.clone(),
        settings,
        hooks,
        Rc::new(clock.clone()),
    )
    .await
    .unwrap();
    (d, sent)
}

fn metadata(leader: BrokerId, epoch: i32) -> LeaderAndIsr {
    LeaderAndIsr {
        leader: Some(leader),
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch: PartitionEpoch(epoch),
        isr: vec![ME, PEER],
        replicas: vec![ME, PEER],
    }
}

/// A leader's batch of `records` records at `base`, stamped with `epoch`.
fn leader_batch(base: i64, records: usize, epoch: i32) -> Vec<u8> {
    let mut b = build::batch(records, 100, (base % 251) as u8, 1_000);
    stamp(
        &mut b,
        Offset(base),
        LeaderEpoch(epoch),
        TimestampStamp::CreateTime,
    );
    b
}

fn append_frame(epoch: i32, base: i64, records: Vec<u8>, hw: i64, end: i64) -> Vec<u8> {
    ReplicaMessage {
        from: PEER.0,
        topic: TOPIC.into(),
        partition: 0,
        body: ReplicaBody::Append {
            leader_epoch: epoch,
            base_offset: base,
            records,
            leader_high_watermark: hw,
            leader_log_end: end,
            sent_ms: 7,
        },
    }
    .encode()
}

/// Waits (bounded) until `done` holds, letting the driver's I/O task run.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..5_000 {
        if done() {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for {what}");
}

fn acks(sent: &Sent) -> Vec<(AckStatus, i64)> {
    sent.borrow()
        .iter()
        .filter_map(|(_, m)| match m.body {
            ReplicaBody::AppendAck {
                status,
                durable_end,
                ..
            } => Some((status, durable_end)),
            _ => None,
        })
        .collect()
}

#[test]
fn follower_appends_queued_together_share_one_fdatasync() {
    run(|| async {
        let storage = SimStorage::new();
        let clock = ManualClock::new(1_000);
        let (d, sent) = start(&storage, &clock, ReplicaSettings::default()).await;
        d.on_metadata(&metadata(PEER, 1));
        // An empty log with no epochs resumes at once.
        assert!(sent
            .borrow()
            .iter()
            .any(|(to, m)| *to == PEER && matches!(m.body, ReplicaBody::Resume { from: 0, .. })));
        let syncs = || d.log().stats().syncs.get();
        assert_eq!(syncs(), 0);

        // Twenty pushes arrive in one burst (as they do while a sync is in flight).
        const BURST: i64 = 20;
        const RECORDS: usize = 5;
        for i in 0..BURST {
            let base = i * RECORDS as i64;
            let end = base + RECORDS as i64;
            d.on_frame(&append_frame(
                1,
                base,
                leader_batch(base, RECORDS, 1),
                0,
                end,
            ));
        }
        let end = BURST * RECORDS as i64;
        until("the burst to be durable", || d.durable_end() == Offset(end)).await;
        assert_eq!(syncs(), 1, "one fdatasync for the whole burst");
        assert_eq!(d.log().durable_offset(), Offset(end));
        // Acknowledged only once durable, and once for all of them.
        assert_eq!(acks(&sent), vec![(AckStatus::Ok, end)]);

        // One at a time, each waited for: one sync each (the counter counts what we think).
        for i in 0..5 {
            let base = end + i * RECORDS as i64;
            let next = base + RECORDS as i64;
            d.on_frame(&append_frame(
                1,
                base,
                leader_batch(base, RECORDS, 1),
                0,
                next,
            ));
            until("one append to be durable", || {
                d.durable_end() == Offset(next)
            })
            .await;
        }
        assert_eq!(syncs(), 6);
        let last = acks(&sent).last().copied().unwrap();
        assert_eq!(last, (AckStatus::Ok, end + 5 * RECORDS as i64));
    });
}

/// Delivers every frame the drivers sent to its addressee, until `done` holds (bounded).
async fn pump(
    drivers: &[(BrokerId, ReplicaDriver<SimStorage>, Sent)],
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    for _ in 0..20_000 {
        if done() {
            return;
        }
        let mut moved = false;
        for (_, _, sent) in drivers {
            let frames: Vec<_> = sent.borrow_mut().drain(..).collect();
            for (to, msg) in frames {
                if let Some((_, d, _)) = drivers.iter().find(|(id, _, _)| *id == to) {
                    moved = true;
                    d.on_frame(&msg.encode());
                }
            }
        }
        if moved {
            // Let the drivers' I/O tasks run.
            futures_lite::future::yield_now().await;
        } else {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }
    for (id, d, _) in drivers {
        eprintln!("{id}: {}", d.describe());
    }
    panic!("timed out waiting for {what}");
}

/// (base, last, epoch, crc) of every batch in `[from, upto)`.
async fn batches_of(
    log: &PartitionLog<SimStorage>,
    from: Offset,
    upto: Offset,
) -> Vec<(i64, i64, i32, u32)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < upto {
        let r = log.read_upto(next, 1 << 20, upto).await.unwrap();
        if r.bytes.is_empty() {
            break;
        }
        for b in sluice_engine::batch::batches(&r.bytes) {
            let b = sluice_engine::batch::BatchView::parse_checked(b.unwrap().bytes()).unwrap();
            out.push((
                b.base_offset().0,
                b.last_offset().0,
                b.leader_epoch().0,
                b.stored_crc(),
            ));
            next = b.last_offset().next();
        }
    }
    out
}

#[test]
fn a_follower_behind_the_leaders_log_start_restarts_its_log_there_and_catches_up() {
    run(|| async {
        let clock = ManualClock::new(1_000);
        // The leader (broker 2) wrote [0, 100) in epoch 1; retention then deleted [0, 50).
        let leader_disk = SimStorage::new();
        {
            let log = open_log(&leader_disk, &clock).await;
            for i in 0..10u8 {
                let b = build::batch(10, 100, i, 1_000);
                log.append(
                    &b,
                    sluice_engine::log::AppendOptions {
                        leader_epoch: LeaderEpoch(1),
                        batch_bytes_max: 1 << 20,
                    },
                )
                .await
                .unwrap();
            }
            log.delete_records_before(Offset(50)).await.unwrap();
            log.close().await.unwrap();
            let mut cache = EpochCache::new();
            cache.assign(LeaderEpoch(1), Offset(0));
            cache
                .persist(&leader_disk, &PathBuf::from("/data/d-0"))
                .await
                .unwrap();
        }
        // The follower (broker 1) holds only [0, 10) of epoch 1.
        let follower_disk = SimStorage::new();
        {
            let log = open_log(&follower_disk, &clock).await;
            log.append_replicated(&leader_batch(0, 10, 1))
                .await
                .unwrap();
            log.close().await.unwrap();
            let mut cache = EpochCache::new();
            cache.assign(LeaderEpoch(1), Offset(0));
            cache
                .persist(&follower_disk, &PathBuf::from("/data/d-0"))
                .await
                .unwrap();
        }
        let (leader, lsent) =
            start_as(PEER, &leader_disk, &clock, ReplicaSettings::default()).await;
        let (follower, fsent) =
            start_as(ME, &follower_disk, &clock, ReplicaSettings::default()).await;
        assert_eq!(leader.log().log_start_offset(), Offset(50));
        let state = LeaderAndIsr {
            isr: vec![PEER],
            ..metadata(PEER, 2)
        };
        leader.on_metadata(&state);
        follower.on_metadata(&state);
        let drivers = [(PEER, leader.clone(), lsent), (ME, follower.clone(), fsent)];
        pump(&drivers, "the follower to catch up", || {
            follower.durable_end() == Offset(100)
        })
        .await;
        assert_eq!(follower.log().log_start_offset(), Offset(50));
        assert_eq!(
            batches_of(follower.log(), Offset(50), Offset(100)).await,
            batches_of(leader.log(), Offset(50), Offset(100)).await
        );
        // It keeps following: a new acks=all batch reaches it too.
        let b = build::batch(5, 10, 9, 2_000);
        let answer: Rc<RefCell<Option<u64>>> = Rc::default();
        let (l, a) = (leader.clone(), answer.clone());
        glommio::spawn_local(async move {
            let info = l.produce(&b, true).await.unwrap();
            *a.borrow_mut() = Some(info.base_offset.0 as u64);
        })
        .detach();
        pump(&drivers, "the acks=all answer", || {
            answer.borrow().is_some()
        })
        .await;
        assert_eq!(*answer.borrow(), Some(100));
        assert!(follower.durable_end() >= Offset(105));
        assert_eq!(
            follower.epoch_end(LeaderEpoch(2)).map(|e| e.end_offset),
            Some(Offset(105))
        );
    });
}

#[test]
fn a_restarted_leader_starts_from_its_checkpointed_high_watermark() {
    run(|| async {
        let clock = ManualClock::new(1_000);
        let disk = SimStorage::new();
        let peer_disk = SimStorage::new();
        let dir = PathBuf::from("/data/d-0");
        let state = metadata(ME, 1);
        {
            let (leader, lsent) = start_as(ME, &disk, &clock, ReplicaSettings::default()).await;
            let (follower, fsent) =
                start_as(PEER, &peer_disk, &clock, ReplicaSettings::default()).await;
            leader.on_metadata(&state);
            follower.on_metadata(&state);
            let drivers = [(ME, leader.clone(), lsent), (PEER, follower.clone(), fsent)];
            let answered: Rc<RefCell<usize>> = Rc::default();
            for i in 0..10u8 {
                let (l, a) = (leader.clone(), answered.clone());
                glommio::spawn_local(async move {
                    l.produce(&build::batch(3, 50, i, 1_000), true)
                        .await
                        .unwrap();
                    *a.borrow_mut() += 1;
                })
                .detach();
            }
            pump(&drivers, "ten acks=all answers", || {
                *answered.borrow() == 10
            })
            .await;
            assert_eq!(leader.high_watermark(), Offset(30));
            // Lazy: not before the interval has passed.
            leader.tick();
            glommio::timer::sleep(Duration::from_millis(5)).await;
            assert_eq!(
                sluice_replication::partition::hw_checkpoint::load(&disk, &dir)
                    .await
                    .unwrap(),
                None
            );
            clock.advance_ms(sluice_replication::limits::HW_CHECKPOINT_INTERVAL_MS);
            leader.tick();
            until("the lazy checkpoint", || {
                futures_lite::future::block_on(sluice_replication::partition::hw_checkpoint::load(
                    &disk, &dir,
                ))
                .unwrap()
                    == Some(Offset(30))
            })
            .await;
            // Two more batches the follower acks, checkpointed by a clean close.
            for i in 0..2u8 {
                let (l, a) = (leader.clone(), answered.clone());
                glommio::spawn_local(async move {
                    l.produce(&build::batch(3, 50, i, 1_000), true)
                        .await
                        .unwrap();
                    *a.borrow_mut() += 1;
                })
                .detach();
            }
            pump(&drivers, "two more answers", || *answered.borrow() == 12).await;
            leader.checkpoint_high_watermark().await.unwrap();
            leader.log().close().await.unwrap();
        }
        // Power loss, then the leader comes back alone: its follower is down.
        disk.crash(5, sluice_engine::io::sim::CrashMode::DropUnsynced);
        let (leader, _sent) = start_as(ME, &disk, &clock, ReplicaSettings::default()).await;
        assert_eq!(
            leader.high_watermark(),
            Offset(36),
            "from the checkpoint, not the log start"
        );
        leader.on_metadata(&metadata(ME, 2));
        assert_eq!(leader.high_watermark(), Offset(36));
        // Consumers read everything committed before the restart at once.
        assert_eq!(leader.log().high_watermark(), Offset(36));
        assert_eq!(
            batches_of(leader.log(), Offset(0), Offset(36)).await.len(),
            12
        );
        drop(leader);

        // A checkpoint above the recovered log (a log that lost its unsynced tail) is capped.
        sluice_replication::partition::hw_checkpoint::persist(&disk, &dir, Offset(1_000))
            .await
            .unwrap();
        let (leader, _sent) = start_as(ME, &disk, &clock, ReplicaSettings::default()).await;
        assert_eq!(leader.high_watermark(), Offset(36));
    });
}

#[test]
fn a_new_leaders_first_batch_waits_for_the_epoch_cache_that_names_its_epoch() {
    run(|| async {
        let clock = ManualClock::new(1_000);
        let disk = SimStorage::new();
        let dir = PathBuf::from("/data/d-0");
        let (leader, _sent) = start_as(ME, &disk, &clock, ReplicaSettings::default()).await;
        leader.on_metadata(&LeaderAndIsr {
            isr: vec![ME],
            ..metadata(ME, 3)
        });
        // Right away, in this task: the persist is only queued on the driver's I/O task.
        let info = leader
            .produce(&build::batch(2, 10, 1, 1_000), false)
            .await
            .unwrap();
        assert_eq!(info.base_offset, Offset(0));
        let cache = EpochCache::load(&disk, &dir).await.unwrap();
        assert_eq!(
            cache.latest(),
            Some((LeaderEpoch(3), Offset(0))),
            "the epoch was durable in the cache before its first batch"
        );
    });
}
