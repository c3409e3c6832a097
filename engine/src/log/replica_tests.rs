//! Tests of the log operations replication needs: appending a leader's batches verbatim,
//! truncating a diverged tail, and reading below a high watermark.

use std::path::PathBuf;
use std::rc::Rc;

use futures_lite::future::block_on;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::batch::{batches, build, BatchView, TimestampStamp};
use crate::clock::ManualClock;
use crate::config::{Durability, LogConfig};
use crate::ids::{LeaderEpoch, Offset, TopicPartition};
use crate::io::sim::{CrashMode, SimStorage};
use crate::limits::BATCH_BYTES_MAX;
use crate::log::{AppendOptions, LogError, PartitionLog};

fn opts(epoch: i32) -> AppendOptions {
    AppendOptions {
        leader_epoch: LeaderEpoch(epoch),
        batch_bytes_max: BATCH_BYTES_MAX,
    }
}

fn open(storage: &SimStorage, durability: Durability) -> PartitionLog<SimStorage> {
    block_on(PartitionLog::open(
        storage.clone(),
        PathBuf::from("/data/r-0"),
        TopicPartition::new("r", 0),
        LogConfig {
            segment_bytes: 1 << 20,
            ..LogConfig::default()
        },
        durability,
        Rc::new(ManualClock::new(0)),
    ))
    .expect("log opens")
}

/// (base offset, last offset, leader epoch, Kafka CRC) of every batch from `from`.
fn batches_from(log: &PartitionLog<SimStorage>, from: Offset) -> Vec<(i64, i64, i32, u32)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let r = block_on(log.read(next, 256 * 1024)).expect("read");
        if r.bytes.is_empty() {
            return out;
        }
        for b in batches(&r.bytes) {
            let b = BatchView::parse_checked(b.expect("whole").bytes()).expect("CRC holds");
            out.push((
                b.base_offset().0,
                b.last_offset().0,
                b.leader_epoch().0,
                b.stored_crc(),
            ));
            next = b.last_offset().next();
        }
    }
}

#[test]
fn replicated_batches_keep_the_leaders_offsets_and_epochs() {
    let leader = open(&SimStorage::new(), Durability::GroupCommit);
    let follower = open(&SimStorage::new(), Durability::GroupCommit);
    for (i, epoch) in [1, 1, 2, 4].into_iter().enumerate() {
        block_on(leader.append(&build::batch(3 + i, 100, i as u8, 0), opts(epoch)))
            .expect("leader append");
    }
    let all = block_on(leader.read(Offset(0), 1 << 20)).expect("read");
    let info = block_on(follower.append_replicated(&all.bytes)).expect("replica append");
    assert_eq!(info.base_offset, Offset(0));
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.durable_offset(), leader.log_end_offset());
    assert_eq!(
        batches_from(&follower, Offset(0)),
        batches_from(&leader, Offset(0))
    );
}

#[test]
fn replicated_batch_that_skips_or_overlaps_is_refused_whole() {
    let leader = open(&SimStorage::new(), Durability::GroupCommit);
    let follower = open(&SimStorage::new(), Durability::GroupCommit);
    for i in 0..3 {
        block_on(leader.append(&build::batch(2, 10, i, 0), opts(1))).expect("append");
    }
    let second = block_on(leader.read(Offset(2), 1)).expect("read");
    let err = block_on(follower.append_replicated(&second.bytes)).expect_err("gap refused");
    assert!(
        matches!(
            err,
            LogError::NotContiguous {
                expected: Offset(0),
                got: Offset(2),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(follower.log_end_offset(), Offset(0));
}

#[test]
fn truncate_cuts_at_the_batch_holding_the_offset_and_appends_continue_there() {
    let storage = SimStorage::new();
    let log = open(&storage, Durability::GroupCommit);
    // 40 batches of 4 records, ~60 KiB each: several 1 MiB segments.
    for i in 0..40u8 {
        block_on(log.append(&build::batch(4, 15_000, i, 0), opts(1))).expect("append");
    }
    assert!(log.segment_count() > 2, "test wants several segments");
    let before = batches_from(&log, Offset(0));
    // Offset 41 is inside the batch [40, 43]: that whole batch goes.
    let end = block_on(log.truncate_to(Offset(41))).expect("truncate");
    assert_eq!(end, Offset(40));
    assert_eq!(log.log_end_offset(), Offset(40));
    assert_eq!(log.durable_offset(), Offset(40));
    assert_eq!(batches_from(&log, Offset(0)), before[..10]);
    let info = block_on(log.append(&build::batch(2, 10, 99, 0), opts(2))).expect("append");
    assert_eq!(info.base_offset, Offset(40));
    block_on(log.flush_all()).expect("flush");
    drop(log);
    storage.crash(7, CrashMode::DropUnsynced);
    let log = open(&storage, Durability::GroupCommit);
    let after = batches_from(&log, Offset(0));
    assert_eq!(after.len(), 11);
    assert_eq!(after[..10], before[..10]);
    assert_eq!((after[10].0, after[10].2), (40, 2));
}

#[test]
fn truncate_below_the_log_start_empties_the_log_and_restarts_it_there() {
    let storage = SimStorage::new();
    let log = open(&storage, Durability::GroupCommit);
    for i in 0..5u8 {
        block_on(log.append(&build::batch(2, 10, i, 0), opts(1))).expect("append");
    }
    block_on(log.delete_records_before(Offset(4))).expect("delete records");
    assert_eq!(
        block_on(log.truncate_to(Offset(3))).expect("truncate"),
        Offset(3)
    );
    assert_eq!(log.log_start_offset(), Offset(3));
    assert_eq!(log.log_end_offset(), Offset(3));
    let info = block_on(log.append(&build::batch(1, 10, 9, 0), opts(2))).expect("append");
    assert_eq!(info.base_offset, Offset(3));
    drop(log);
    storage.crash(1, CrashMode::DropUnsynced);
    let log = open(&storage, Durability::GroupCommit);
    assert_eq!(log.log_start_offset(), Offset(3));
    assert_eq!(log.log_end_offset(), Offset(4));
}

#[test]
fn truncate_at_or_past_the_end_changes_nothing() {
    let log = open(&SimStorage::new(), Durability::GroupCommit);
    block_on(log.append(&build::batch(3, 10, 1, 0), opts(1))).expect("append");
    assert_eq!(
        block_on(log.truncate_to(Offset(3))).expect("truncate"),
        Offset(3)
    );
    assert_eq!(
        block_on(log.truncate_to(Offset(30))).expect("truncate"),
        Offset(3)
    );
    assert_eq!(batches_from(&log, Offset(0)).len(), 1);
}

#[test]
fn random_truncations_and_crashes_leave_a_prefix_of_the_appends() {
    for seed in 0..40u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let storage = SimStorage::new();
        let mut log = open(&storage, Durability::None);
        // The model: every batch the log should hold, as (base, last, epoch, crc).
        let mut model: Vec<(i64, i64, i32, u32)> = Vec::new();
        let mut durable_len = 0usize;
        for step in 0..80 {
            match rng.gen_range(0..10) {
                0 => {
                    let end = log.log_end_offset().0;
                    let to = Offset(rng.gen_range(0..=end));
                    let got = block_on(log.truncate_to(to)).expect("truncate");
                    model.retain(|b| b.1 < got.0);
                    assert!(got <= to, "seed {seed}: cut above the target");
                    assert_eq!(model.last().map_or(0, |b| b.1 + 1), got.0, "seed {seed}");
                    durable_len = durable_len.min(model.len());
                }
                1 => {
                    drop(log);
                    storage.crash(seed * 1000 + step, CrashMode::TearTail);
                    log = open(&storage, Durability::None);
                    let got = batches_from(&log, Offset(0));
                    assert!(got.len() >= durable_len, "seed {seed}: durable batch lost");
                    assert_eq!(got[..], model[..got.len()], "seed {seed}: not a prefix");
                    model.truncate(got.len());
                    durable_len = model.len();
                }
                2 => {
                    block_on(log.flush_all()).expect("flush");
                    durable_len = model.len();
                }
                _ => {
                    let b = build::batch(rng.gen_range(1..6), rng.gen_range(0..40_000), 3, 0);
                    let epoch = step as i32;
                    let info = block_on(log.append(&b, opts(epoch))).expect("append");
                    let crc = BatchView::parse(&b).expect("batch").stored_crc();
                    model.push((info.base_offset.0, info.last_offset.0, epoch, crc));
                }
            }
        }
        block_on(log.flush_all()).expect("flush");
        assert_eq!(batches_from(&log, Offset(0)), model, "seed {seed}");
    }
}

#[test]
fn read_upto_serves_nothing_at_or_above_the_bound() {
    let log = open(&SimStorage::new(), Durability::GroupCommit);
    for i in 0..4u8 {
        block_on(log.append(&build::batch(2, 10, i, 0), opts(1))).expect("append");
    }
    let r = block_on(log.read_upto(Offset(0), 1 << 20, Offset(4))).expect("read");
    let bases: Vec<i64> = batches(&r.bytes)
        .map(|b| b.expect("batch").base_offset().0)
        .collect();
    assert_eq!(bases, vec![0, 2]);
    assert_eq!(r.high_watermark, Offset(4));
    let r = block_on(log.read_upto(Offset(4), 1 << 20, Offset(4))).expect("read at bound");
    assert!(r.bytes.is_empty());
}

#[test]
fn truncate_fully_and_start_at_restarts_an_empty_log_past_its_end_and_survives_a_crash() {
    let storage = SimStorage::new();
    let log = open(&storage, Durability::GroupCommit);
    // Several segments, so every one of them must go.
    for i in 0..40u8 {
        block_on(log.append(&build::batch(4, 15_000, i, 0), opts(1))).expect("append");
    }
    assert!(log.segment_count() > 2, "test wants several segments");
    assert_eq!(log.log_end_offset(), Offset(160));
    // The leader's log starts at 500: ours is wholly below it.
    assert_eq!(
        block_on(log.truncate_fully_and_start_at(Offset(500))).expect("reset"),
        Offset(500)
    );
    assert_eq!(log.log_start_offset(), Offset(500));
    assert_eq!(log.log_end_offset(), Offset(500));
    assert_eq!(log.durable_offset(), Offset(500));
    assert_eq!(log.segment_count(), 1);
    assert!(batches_from(&log, Offset(500)).is_empty());
    assert!(
        block_on(log.read(Offset(0), 1 << 20)).is_err(),
        "old data gone"
    );
    // The leader's batches continue there, offsets as the leader stamped them.
    let mut b = build::batch(3, 10, 7, 0);
    crate::batch::stamp(
        &mut b,
        Offset(500),
        LeaderEpoch(4),
        TimestampStamp::CreateTime,
    );
    block_on(log.append_replicated(&b)).expect("replicated append at the new start");
    assert_eq!(log.log_end_offset(), Offset(503));
    drop(log);
    storage.crash(3, CrashMode::DropUnsynced);
    let log = open(&storage, Durability::GroupCommit);
    assert_eq!(log.log_start_offset(), Offset(500));
    assert_eq!(
        batches_from(&log, Offset(500)),
        vec![(
            500,
            502,
            4,
            BatchView::parse(&b).expect("batch").stored_crc()
        )]
    );
    assert!(
        block_on(log.truncate_fully_and_start_at(Offset(-1))).is_err(),
        "a negative start is refused"
    );
}
