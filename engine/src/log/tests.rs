//! Log tests on the fault-injecting in-memory storage: behaviour, then crash recovery.

use std::path::PathBuf;
use std::rc::Rc;

use futures_lite::future::block_on;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::batch::{batches, build, BatchView};
use crate::clock::ManualClock;
use crate::config::{Durability, LogConfig};
use crate::ids::{LeaderEpoch, Offset, TopicPartition};
use crate::io::sim::{CrashMode, SimStorage};
use crate::limits::BATCH_BYTES_MAX;
use crate::log::{AppendOptions, LogError, PartitionLog};

const OPTS: AppendOptions = AppendOptions {
    leader_epoch: LeaderEpoch(3),
    batch_bytes_max: BATCH_BYTES_MAX,
};

fn dir() -> PathBuf {
    PathBuf::from("/data/t-0")
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        ..LogConfig::default()
    }
}

fn open(
    storage: &SimStorage,
    config: LogConfig,
    durability: Durability,
    clock: &ManualClock,
) -> PartitionLog<SimStorage> {
    block_on(PartitionLog::open(
        storage.clone(),
        dir(),
        TopicPartition::new("t", 0),
        config,
        durability,
        Rc::new(clock.clone()),
    ))
    .expect("log opens")
}

/// Identity of a batch independent of the offsets the broker stamps: its Kafka CRC.
fn crc_of(batch: &[u8]) -> u32 {
    BatchView::parse(batch).expect("batch").stored_crc()
}

/// Reads everything from `from` and returns (base offset, record count, Kafka CRC).
fn read_all(log: &PartitionLog<SimStorage>, from: Offset) -> Vec<(i64, i32, u32)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let r = block_on(log.read(next, 256 * 1024)).expect("read");
        if r.bytes.is_empty() {
            break;
        }
        for b in batches(&r.bytes) {
            let b = BatchView::parse_checked(b.expect("whole batches").bytes())
                .expect("stored CRC holds");
            out.push((b.base_offset().0, b.record_count(), b.stored_crc()));
            next = b.last_offset().next();
        }
    }
    out
}

#[test]
fn appended_batches_read_back_in_order_with_assigned_offsets() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(1_000);
    let log = open(
        &storage,
        LogConfig::default(),
        Durability::GroupCommit,
        &clock,
    );
    let mut crcs = Vec::new();
    for i in 0..50u8 {
        let b = build::batch(1 + i as usize % 4, 100, i, 1_000);
        crcs.push(crc_of(&b));
        let info = block_on(log.append(&b, OPTS)).expect("append");
        assert_eq!(info.last_offset.0 - info.base_offset.0, (i % 4) as i64);
    }
    let got = read_all(&log, Offset(0));
    assert_eq!(got.len(), 50);
    let mut expect_base = 0;
    for (i, (base, count, crc)) in got.iter().enumerate() {
        assert_eq!(*base, expect_base);
        assert_eq!(*crc, crcs[i]);
        expect_base += *count as i64;
    }
    assert_eq!(log.high_watermark(), Offset(expect_base));
    assert_eq!(log.durable_offset(), Offset(expect_base));
    // Stored batches carry the leader epoch the broker stamped.
    let r = block_on(log.read(Offset(0), 1)).expect("read");
    assert_eq!(
        BatchView::parse(&r.bytes).expect("batch").leader_epoch(),
        LeaderEpoch(3)
    );
}

#[test]
fn read_honours_max_bytes_but_returns_at_least_one_batch() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(
        &storage,
        LogConfig::default(),
        Durability::GroupCommit,
        &clock,
    );
    for i in 0..10u8 {
        block_on(log.append(&build::batch(2, 1000, i, 0), OPTS)).expect("append");
    }
    let one = block_on(log.read(Offset(0), 10)).expect("read");
    assert_eq!(
        batches(&one.bytes).count(),
        1,
        "a tiny max still yields one whole batch"
    );
    let three = block_on(log.read(Offset(0), 3 * 2100)).expect("read");
    assert_eq!(batches(&three.bytes).count(), 3);
    // Reading from the middle of a batch returns that whole batch.
    let mid = block_on(log.read(Offset(5), 10)).expect("read");
    assert_eq!(
        BatchView::parse(&mid.bytes).expect("batch").base_offset(),
        Offset(4)
    );
    // At the high watermark: empty; beyond it: out of range.
    assert!(block_on(log.read(Offset(20), 100))
        .expect("read")
        .bytes
        .is_empty());
    assert!(matches!(
        block_on(log.read(Offset(21), 100)),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn corrupt_batch_is_refused_before_touching_the_log() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(
        &storage,
        LogConfig::default(),
        Durability::GroupCommit,
        &clock,
    );
    let mut b = build::batch(3, 50, 1, 0);
    let n = b.len();
    b[n - 2] ^= 0xff;
    assert!(matches!(
        block_on(log.append(&b, OPTS)),
        Err(LogError::Batch { .. })
    ));
    let too_big = AppendOptions {
        batch_bytes_max: 100,
        ..OPTS
    };
    assert!(matches!(
        block_on(log.append(&build::batch(3, 50, 1, 0), too_big)),
        Err(LogError::Batch { .. })
    ));
    assert_eq!(log.log_end_offset(), Offset(0));
}

#[test]
fn segments_roll_by_size_and_survive_reopen_with_their_indexes() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
    for i in 0..40u8 {
        block_on(log.append(&build::batch(10, 10_000, i, i as i64), OPTS)).expect("append");
    }
    assert!(
        log.segment_count() >= 3,
        "100 KiB batches into 1 MiB segments roll"
    );
    let before = read_all(&log, Offset(0));
    block_on(log.close()).expect("close");
    let indexes = storage
        .paths()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "index"))
        .count();
    assert_eq!(
        indexes,
        log.segment_count(),
        "every segment has an index after a clean close"
    );
    drop(log);
    let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
    assert_eq!(read_all(&log, Offset(0)), before);
    assert_eq!(log.log_end_offset(), Offset(400));
    // Appends continue at the right offset after reopen.
    let info = block_on(log.append(&build::batch(1, 10, 99, 0), OPTS)).expect("append");
    assert_eq!(info.base_offset, Offset(400));
}

#[test]
fn missing_and_damaged_indexes_are_rebuilt() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
    for i in 0..30u8 {
        block_on(log.append(&build::batch(10, 10_000, i, 0), OPTS)).expect("append");
    }
    let before = read_all(&log, Offset(0));
    block_on(log.close()).expect("close");
    drop(log);
    let mut index_paths: Vec<_> = storage
        .paths()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "index"))
        .collect();
    index_paths.sort();
    block_on(crate::io::Storage::remove_file(&storage, &index_paths[0])).expect("remove");
    storage.corrupt(&index_paths[1], 20, &[0xde, 0xad]);
    let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
    assert_eq!(read_all(&log, Offset(0)), before);
    assert!(
        storage.paths().contains(&index_paths[0]),
        "rebuilt index is persisted again"
    );
}

#[test]
fn segments_roll_by_age() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let config = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let log = open(&storage, config, Durability::GroupCommit, &clock);
    block_on(log.append(&build::batch(1, 10, 1, 0), OPTS)).expect("append");
    clock.advance_ms(999);
    block_on(log.append(&build::batch(1, 10, 2, 0), OPTS)).expect("append");
    assert_eq!(log.segment_count(), 1);
    clock.advance_ms(1);
    block_on(log.append(&build::batch(1, 10, 3, 0), OPTS)).expect("append");
    assert_eq!(log.segment_count(), 2);
    assert_eq!(read_all(&log, Offset(0)).len(), 3);
}

#[test]
fn retention_deletes_whole_old_segments_and_moves_log_start() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(10_000);
    let config = LogConfig {
        retention_ms: 5_000,
        ..small_segments()
    };
    let log = open(&storage, config, Durability::GroupCommit, &clock);
    // Old data (timestamps ~1000), then new data (timestamps ~100_000).
    for i in 0..25u8 {
        block_on(log.append(&build::batch(10, 10_000, i, 1_000), OPTS)).expect("append");
    }
    for i in 0..25u8 {
        block_on(log.append(&build::batch(10, 10_000, i, 100_000), OPTS)).expect("append");
    }
    clock.set_ms(100_000);
    let segments = log.segment_count();
    let deleted = block_on(log.enforce_retention()).expect("retention");
    assert!(
        deleted >= 1 && deleted < segments,
        "deleted {deleted} of {segments}"
    );
    let start = log.log_start_offset();
    assert!(start > Offset(0) && start <= Offset(250));
    assert!(matches!(
        block_on(log.read(Offset(0), 100)),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, start).last().map(|b| b.0), Some(490));
    // Size retention: keep at least ~2 MiB.
    log.set_config(LogConfig {
        retention_ms: -1,
        retention_bytes: 2 << 20,
        ..small_segments()
    });
    block_on(log.enforce_retention()).expect("retention");
    assert!(log.size_bytes() >= 2 << 20);
}

#[test]
fn retention_never_deletes_above_a_replicated_high_watermark() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(10_000);
    let config = LogConfig {
        retention_ms: 5_000,
        ..small_segments()
    };
    let log = open(&storage, config, Durability::GroupCommit, &clock);
    for i in 0..50u8 {
        block_on(log.append(&build::batch(10, 10_000, i, 1_000), OPTS)).expect("append");
    }
    clock.set_ms(100_000);
    assert!(log.segment_count() > 2);
    // A replicated leader whose followers hold nothing yet: every old segment is still
    // needed by an in-sync follower.
    log.set_replicated_high_watermark(Offset(0));
    assert_eq!(block_on(log.enforce_retention()).expect("retention"), 0);
    assert_eq!(log.log_start_offset(), Offset(0));
    // Committed up to 250: only segments wholly below it may go.
    log.set_replicated_high_watermark(Offset(250));
    let deleted = block_on(log.enforce_retention()).expect("retention");
    assert!(deleted >= 1, "nothing deleted below the high watermark");
    let start = log.log_start_offset();
    assert!(
        start > Offset(0) && start <= Offset(250),
        "log start {start}"
    );
    // Everything committed later is retention's again.
    log.set_replicated_high_watermark(Offset(500));
    block_on(log.enforce_retention()).expect("retention");
    assert!(log.log_start_offset() > Offset(250));
}

#[test]
fn delete_records_moves_log_start_durably() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
    for i in 0..30u8 {
        block_on(log.append(&build::batch(10, 10_000, i, 0), OPTS)).expect("append");
    }
    assert_eq!(
        block_on(log.delete_records_before(Offset(155))).expect("delete"),
        Offset(155)
    );
    assert!(matches!(
        block_on(log.delete_records_before(Offset(301))),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    drop(log);
    let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
    assert_eq!(log.log_start_offset(), Offset(155));
    assert!(matches!(
        block_on(log.read(Offset(154), 100)),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        read_all(&log, Offset(155))[0].0,
        150,
        "the batch holding 155 starts at 150"
    );
}

#[test]
fn timestamp_lookup_finds_first_batch_reaching_the_target() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
    for i in 0..40i64 {
        // batch i has records at 1000*i .. 1000*i+4
        block_on(log.append(&build::batch(5, 5_000, i as u8, 1_000 * i), OPTS)).expect("append");
    }
    let hit = block_on(log.batch_for_timestamp(17_500))
        .expect("lookup")
        .expect("found");
    assert_eq!(hit.batch_base_offset, Offset(18 * 5));
    let hit = block_on(log.batch_for_timestamp(17_003))
        .expect("lookup")
        .expect("found");
    assert_eq!(hit.batch_base_offset, Offset(17 * 5));
    assert!(block_on(log.batch_for_timestamp(1_000_000))
        .expect("lookup")
        .is_none());
    assert_eq!(log.max_timestamp(), Some((Offset(199), 39_004)));
}

#[test]
fn write_failure_fails_the_append_and_keeps_durable_data_readable() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(
        &storage,
        LogConfig::default(),
        Durability::GroupCommit,
        &clock,
    );
    block_on(log.append(&build::batch(2, 100, 1, 0), OPTS)).expect("append");
    storage.fail_writes_after(0);
    assert!(matches!(
        block_on(log.append(&build::batch(2, 100, 2, 0), OPTS)),
        Err(LogError::Io { .. })
    ));
    assert!(matches!(
        block_on(log.append(&build::batch(2, 100, 3, 0), OPTS)),
        Err(LogError::Failed { .. })
    ));
    assert_eq!(read_all(&log, Offset(0)).len(), 1);
}

#[test]
fn long_poll_waiter_wakes_on_write() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(
        &storage,
        LogConfig::default(),
        Durability::GroupCommit,
        &clock,
    );
    let (woke, _) = block_on(futures_lite::future::zip(
        async {
            log.wait_for_data(Offset(-1)).await;
            log.wait_for_data(Offset(0)).await;
            log.high_watermark()
        },
        async {
            futures_lite::future::yield_now().await;
            log.append(&build::batch(3, 10, 1, 0), OPTS).await
        },
    ));
    assert_eq!(woke, Offset(3));
}

#[test]
fn concurrent_appends_share_one_sync() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(
        &storage,
        LogConfig::default(),
        Durability::GroupCommit,
        &clock,
    );
    let syncs_before = storage.sync_count();
    let b: Vec<Vec<u8>> = (0..6u8).map(|i| build::batch(1, 10, i, 0)).collect();
    let (r0, (r1, (r2, (r3, (r4, r5))))) = block_on(futures_lite::future::zip(
        log.append(&b[0], OPTS),
        futures_lite::future::zip(
            log.append(&b[1], OPTS),
            futures_lite::future::zip(
                log.append(&b[2], OPTS),
                futures_lite::future::zip(
                    log.append(&b[3], OPTS),
                    futures_lite::future::zip(log.append(&b[4], OPTS), log.append(&b[5], OPTS)),
                ),
            ),
        ),
    ));
    let offsets: Vec<i64> = [r0, r1, r2, r3, r4, r5]
        .into_iter()
        .map(|r| r.expect("append").base_offset.0)
        .collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4, 5]);
    let syncs = storage.sync_count() - syncs_before;
    // The first append syncs alone; the five that arrived while it was in flight share one.
    assert_eq!(syncs, 2, "group commit should batch syncs");
    assert_eq!(log.durable_offset(), Offset(6));
}

#[test]
fn per_write_durability_syncs_every_append() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(&storage, LogConfig::default(), Durability::PerWrite, &clock);
    let before = storage.sync_count();
    let b: Vec<Vec<u8>> = (0..3u8).map(|i| build::batch(1, 10, i, 0)).collect();
    let (r0, (r1, r2)) = block_on(futures_lite::future::zip(
        log.append(&b[0], OPTS),
        futures_lite::future::zip(log.append(&b[1], OPTS), log.append(&b[2], OPTS)),
    ));
    for r in [r0, r1, r2] {
        r.expect("append");
    }
    assert_eq!(storage.sync_count() - before, 3);
}

/// Crash model: appends under `Durability::None` (resolved once written), explicit
/// `flush_all` at random points (durability checkpoints), then a crash that drops or tears
/// unsynced writes. After reopen the log must be a valid prefix of what was appended that
/// contains everything made durable, and appends must continue after it.
fn crash_and_recover(seed: u64, mode: CrashMode) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let config = small_segments();
    let log = open(&storage, config.clone(), Durability::None, &clock);
    let mut appended: Vec<(i64, i32, u32)> = Vec::new();
    let mut durable_end = Offset(0);
    let ops = rng.gen_range(1..120);
    for i in 0..ops {
        let count = rng.gen_range(1..20);
        let big = rng.gen_bool(0.1);
        let value = rng.gen_range(0..(if big { 200_000 } else { 3_000 }));
        let b = build::batch(count, value, (i % 251) as u8, i as i64);
        let info = block_on(log.append(&b, OPTS)).expect("append");
        appended.push((info.base_offset.0, count as i32, crc_of(&b)));
        if rng.gen_bool(0.15) {
            block_on(log.flush_all()).expect("flush");
            durable_end = log.durable_offset();
        }
    }
    drop(log);
    storage.crash(seed, mode);
    let log = open(&storage, config.clone(), Durability::None, &clock);
    let got = read_all(&log, Offset(0));
    assert!(
        got.len() <= appended.len(),
        "seed {seed}: more batches than appended"
    );
    assert_eq!(
        got[..],
        appended[..got.len()],
        "seed {seed}: recovered log is not a prefix of what was appended"
    );
    let end = got.last().map_or(0, |(b, c, _)| b + *c as i64);
    assert!(
        Offset(end) >= durable_end,
        "seed {seed}: lost durable data: recovered to {end}, durable {durable_end}"
    );
    assert_eq!(log.log_end_offset(), Offset(end), "seed {seed}");
    let info =
        block_on(log.append(&build::batch(1, 10, 7, 0), OPTS)).expect("append after recovery");
    assert_eq!(info.base_offset, Offset(end), "seed {seed}");
    block_on(log.flush_all()).expect("flush");
    drop(log);
    let log = open(&storage, config, Durability::None, &clock);
    assert_eq!(
        read_all(&log, Offset(0)).len(),
        got.len() + 1,
        "seed {seed}: second recovery"
    );
}

#[test]
fn crash_dropping_unsynced_writes_recovers_the_durable_prefix() {
    for seed in 0..60 {
        crash_and_recover(seed, CrashMode::DropUnsynced);
    }
}

#[test]
fn torn_tail_is_truncated_on_recovery() {
    for seed in 0..150 {
        crash_and_recover(seed, CrashMode::TearTail);
    }
}

#[test]
fn group_commit_acknowledged_appends_survive_a_crash() {
    for seed in 0..20u64 {
        let storage = SimStorage::new();
        let clock = ManualClock::new(0);
        let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
        let mut acked = 0;
        for i in 0..(10 + seed as usize * 3) {
            let info =
                block_on(log.append(&build::batch(5, 7_000, i as u8, 0), OPTS)).expect("append");
            acked = info.last_offset.0 + 1;
        }
        drop(log);
        storage.crash(seed, CrashMode::TearTail);
        let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
        assert_eq!(log.log_end_offset(), Offset(acked), "seed {seed}");
    }
}

#[test]
fn corruption_inside_a_closed_segment_is_never_served() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
    for i in 0..30u8 {
        block_on(log.append(&build::batch(10, 10_000, i, 0), OPTS)).expect("append");
    }
    drop(log);
    let mut logs: Vec<_> = storage
        .paths()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    // Bit rot in the middle of the first (closed) segment, in a batch payload.
    storage.corrupt(&logs[0], 300_000, &[0xff; 8]);
    let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
    let mut next = Offset(0);
    let mut served = 0;
    let err = loop {
        match block_on(log.read(next, 64 * 1024)) {
            Ok(r) if r.bytes.is_empty() => panic!("read past the corruption without noticing it"),
            Ok(r) => {
                for b in batches(&r.bytes) {
                    let b = b.expect("framing");
                    BatchView::parse_checked(b.bytes()).expect("every served batch passes its CRC");
                    next = b.last_offset().next();
                    served += 1;
                }
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(err, LogError::Corrupt { .. }), "got {err}");
    assert!(served > 0, "batches before the damage are still served");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn offsets_are_dense_and_increasing(counts in proptest::collection::vec(1usize..30, 1..40)) {
        let storage = SimStorage::new();
        let clock = ManualClock::new(0);
        let log = open(&storage, LogConfig::default(), Durability::GroupCommit, &clock);
        let mut next = 0i64;
        for (i, c) in counts.iter().enumerate() {
            let info = block_on(log.append(&build::batch(*c, 8, i as u8, 0), OPTS)).unwrap();
            prop_assert_eq!(info.base_offset.0, next);
            prop_assert_eq!(info.last_offset.0, next + *c as i64 - 1);
            next += *c as i64;
        }
        prop_assert_eq!(log.log_end_offset(), Offset(next));
    }
}

#[test]
fn segment_files_are_reserved_step_by_step_not_whole() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(
        &storage,
        LogConfig::default(),
        Durability::GroupCommit,
        &clock,
    );
    let path = dir().join("00000000000000000000.log");
    let step = crate::limits::SEGMENT_PREALLOCATE_STEP_BYTES;
    assert_eq!(
        storage.file_image(&path).map(|f| f.len() as u64),
        Some(step),
        "1 GiB segment.bytes reserves one step"
    );
    for i in 0..40u8 {
        block_on(log.append(&build::batch(10, 100_000, i, 0), OPTS)).expect("append");
    }
    let size = storage
        .file_image(&path)
        .map(|f| f.len() as u64)
        .unwrap_or(0);
    assert!(
        size >= log.size_bytes() && size <= log.size_bytes() + 2 * step + WRITE_CHUNK,
        "file {size} vs data {}",
        log.size_bytes()
    );
}

const WRITE_CHUNK: u64 = crate::limits::WRITE_CHUNK_BYTES as u64;

#[test]
fn idempotent_retries_are_deduplicated_even_after_a_crash() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
    let mut seq = 0;
    let mut firsts = Vec::new();
    for _ in 0..30 {
        // 100 KB batches: the log rolls segments (and snapshots producer state) on the way.
        let info =
            block_on(log.append(&build::idempotent(4, 25_000, 42, 0, seq), OPTS)).expect("append");
        firsts.push((seq, info.base_offset));
        seq += 4;
    }
    let end = log.log_end_offset();
    // A retry of the last batch gets its original offsets and appends nothing.
    let retry =
        block_on(log.append(&build::idempotent(4, 25_000, 42, 0, seq - 4), OPTS)).expect("retry");
    assert_eq!(retry.base_offset, firsts[29].1);
    assert_eq!(log.log_end_offset(), end);
    // A gap and a stale epoch are refused.
    assert!(matches!(
        block_on(log.append(&build::idempotent(1, 10, 42, 0, seq + 3), OPTS)),
        Err(LogError::Sequence { .. })
    ));
    drop(log);
    storage.crash(7, CrashMode::DropUnsynced);
    let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
    assert_eq!(log.log_end_offset(), end, "acknowledged appends survive");
    let retry = block_on(log.append(&build::idempotent(4, 25_000, 42, 0, seq - 8), OPTS))
        .expect("retry after crash");
    assert_eq!(
        retry.base_offset, firsts[28].1,
        "dedup state rebuilt from snapshot + replay"
    );
    let next = block_on(log.append(&build::idempotent(2, 10, 42, 0, seq), OPTS))
        .expect("next in sequence");
    assert_eq!(next.base_offset, end);
    // A newer epoch fences the old one.
    block_on(log.append(&build::idempotent(1, 10, 42, 1, 0), OPTS)).expect("new epoch");
    assert!(matches!(
        block_on(log.append(&build::idempotent(1, 10, 42, 0, seq + 2), OPTS)),
        Err(LogError::Sequence { .. })
    ));
    // Clean close and reopen keeps the state too.
    block_on(log.close()).expect("close");
    drop(log);
    let log = open(&storage, small_segments(), Durability::GroupCommit, &clock);
    let dup = block_on(log.append(&build::idempotent(1, 10, 42, 1, 0), OPTS)).expect("dup");
    assert_eq!(
        dup.base_offset,
        log.log_end_offset()
            .0
            .checked_sub(1)
            .map(Offset)
            .expect("non-empty")
    );
}

#[test]
fn stats_count_appends_reads_and_syncs() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(
        &storage,
        LogConfig::default(),
        Durability::GroupCommit,
        &clock,
    );
    let b = build::batch(3, 100, 1, 0);
    block_on(log.append(&b, OPTS)).expect("append");
    block_on(log.append(&b, OPTS)).expect("append");
    let r = block_on(log.read(Offset(0), 1 << 20)).expect("read");
    let stats = log.stats();
    assert_eq!(stats.appended_batches.get(), 2);
    assert_eq!(stats.appended_bytes.get(), 2 * b.len() as u64);
    assert_eq!(stats.read_bytes.get(), r.bytes.len() as u64);
    assert_eq!(stats.syncs.get(), 2);
    assert_eq!(stats.sync_latency_us().len(), 2);
}

#[test]
fn one_large_read_returns_the_same_batches_as_many_small_ones() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(0);
    let log = open(
        &storage,
        LogConfig::default(),
        Durability::GroupCommit,
        &clock,
    );
    for i in 0..60u8 {
        block_on(log.append(&build::batch(7, 9_000 + i as usize * 97, i, 0), OPTS))
            .expect("append");
    }
    let small = read_all(&log, Offset(0));
    // A 3 MiB read: the same batches, in order, as many as fit.
    let big = block_on(log.read(Offset(0), 3 << 20)).expect("read");
    let crcs: Vec<u32> = batches(&big.bytes)
        .map(|b| b.expect("batch").stored_crc())
        .collect();
    assert!(
        crcs.len() > 30 && big.bytes.len() <= 3 << 20,
        "{} batches, {} bytes",
        crcs.len(),
        big.bytes.len()
    );
    assert_eq!(
        crcs[..],
        small.iter().map(|(_, _, c)| *c).collect::<Vec<_>>()[..crcs.len()]
    );
    // And from the middle, bounded.
    let mid = block_on(log.read(Offset(200), 1 << 20)).expect("read");
    assert!(mid.bytes.len() <= 1 << 20 && !mid.bytes.is_empty());
    assert_eq!(
        BatchView::parse(&mid.bytes).expect("batch").base_offset(),
        Offset(196)
    );
}
