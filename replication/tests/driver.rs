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
    AckStatus, LeaderAndIsr, ReplicaBody, ReplicaMessage, ReplicaSettings,
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
        ME,
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
