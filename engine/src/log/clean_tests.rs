//! Log cleaner tests on the fault-injecting in-memory storage: the cleaned log against a
//! model (latest value per key, offsets unchanged, CRCs valid), reopen after cleaning, and
//! a crash at every point of a pass.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_lite::future::block_on;
use proptest::prelude::*;

use crate::batch::{batches, BatchView};
use crate::clock::ManualClock;
use crate::config::{CleanupPolicy, Durability, LogConfig};
use crate::ids::{LeaderEpoch, Offset, TopicPartition};
use crate::io::sim::{CrashMode, SimStorage};
use crate::io::Storage;
use crate::limits::{BATCH_BYTES_MAX, DECOMPRESSED_BATCH_BYTES_MAX};
use crate::log::{AppendOptions, LogError, PartitionLog};
use crate::records::{self, parse_records, record_section};

const OPTS: AppendOptions = AppendOptions {
    leader_epoch: LeaderEpoch(1),
    batch_bytes_max: BATCH_BYTES_MAX,
};
const SEGMENT_MS: i64 = 1_000;
const START_MS: i64 = 1_000_000;

fn dir() -> PathBuf {
    PathBuf::from("/data/c-0")
}

fn compacted(delete_retention_ms: i64) -> LogConfig {
    LogConfig {
        segment_ms: SEGMENT_MS,
        cleanup_policy: CleanupPolicy::Compact,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms,
        ..LogConfig::default()
    }
}

fn open(storage: &SimStorage, config: LogConfig, clock: &ManualClock) -> PartitionLog<SimStorage> {
    block_on(PartitionLog::open(
        storage.clone(),
        dir(),
        TopicPartition::new("c", 0),
        config,
        Durability::GroupCommit,
        Rc::new(clock.clone()),
    ))
    .expect("log opens")
}

/// One record as the model sees it: key and value (None: tombstone).
type Rec = (Vec<u8>, Option<Vec<u8>>);

/// A workload: batches of keyed records, each with its codec, and a segment roll after
/// the batches marked so.
#[derive(Clone, Debug)]
struct Workload {
    batches: Vec<BatchSpec>,
}

/// Records (key id, value id or tombstone), codec, roll after it.
type BatchSpec = (Vec<(u8, Option<u8>)>, u8, bool);

fn key(k: u8) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}
fn value(v: u8, at: usize) -> Vec<u8> {
    format!("value-{v}-{at}").into_bytes()
}

/// Appends the workload (rolling where marked, by age) and returns the model:
/// offset -> record. Time advances one ms per batch, SEGMENT_MS at a roll.
fn write(log: &PartitionLog<SimStorage>, clock: &ManualClock, w: &Workload) -> BTreeMap<i64, Rec> {
    let mut model = BTreeMap::new();
    for (i, (recs, codec, roll_after)) in w.batches.iter().enumerate() {
        let owned: Vec<Rec> = recs
            .iter()
            .map(|(k, v)| (key(*k), v.map(|v| value(v, i))))
            .collect();
        let refs: Vec<records::build::KeyValue<'_>> = owned
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
            .collect();
        let b = records::build::keyed(&refs, *codec, clock_now(clock));
        let info = block_on(log.append(&b, OPTS)).expect("append");
        for (j, r) in owned.into_iter().enumerate() {
            model.insert(info.base_offset.0 + j as i64, r);
        }
        clock.advance_ms(if *roll_after { SEGMENT_MS } else { 1 });
    }
    model
}

fn clock_now(clock: &ManualClock) -> i64 {
    crate::clock::Clock::now_ms(clock)
}

/// Every record readable from the log start, by offset; checks each batch's CRC.
fn read_records(log: &PartitionLog<SimStorage>) -> BTreeMap<i64, Rec> {
    let mut out = BTreeMap::new();
    let mut next = log.log_start_offset();
    let hw = log.high_watermark();
    while next < hw {
        let r = block_on(log.read(next, 64 * 1024)).expect("read");
        assert!(
            !r.bytes.is_empty(),
            "read below the high watermark returns a batch"
        );
        for b in batches(&r.bytes) {
            let v = BatchView::parse_checked(b.expect("whole batch").bytes())
                .expect("every served batch has a valid CRC");
            let section = record_section(&v, DECOMPRESSED_BATCH_BYTES_MAX).expect("inflates");
            for rec in parse_records(&section, v.record_count()).expect("records parse") {
                let o = v.base_offset().0 + rec.offset_delta as i64;
                assert!(
                    o <= v.last_offset().0,
                    "record inside its batch's offset range"
                );
                let val = if rec.value_is_null {
                    None
                } else {
                    // The value follows the key: re-read it from the raw record.
                    Some(value_of(rec.raw))
                };
                out.insert(o, (rec.key.expect("keyed").to_vec(), val));
            }
            next = v.last_offset().next();
        }
    }
    out
}

/// The value bytes of a raw record (length, attributes, ts delta, offset delta, key, value).
fn value_of(raw: &[u8]) -> Vec<u8> {
    fn varint(b: &[u8], p: &mut usize) -> i64 {
        let (mut z, mut s) = (0u64, 0);
        loop {
            let x = b[*p];
            *p += 1;
            z |= ((x & 0x7f) as u64) << s;
            s += 7;
            if x & 0x80 == 0 {
                return ((z >> 1) as i64) ^ -((z & 1) as i64);
            }
        }
    }
    let mut p = 0;
    varint(raw, &mut p);
    p += 1;
    varint(raw, &mut p);
    varint(raw, &mut p);
    let k = varint(raw, &mut p);
    p += k.max(0) as usize;
    let v = varint(raw, &mut p) as usize;
    raw[p..p + v].to_vec()
}

/// The latest value of every key (tombstoned keys: None) in offset order.
fn latest(records: &BTreeMap<i64, Rec>) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    records
        .values()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What a complete clean of everything below `end` leaves: the latest record per key
/// below `end` (tombstones too unless `expired`), and everything from `end` on.
fn expected_after_clean(model: &BTreeMap<i64, Rec>, end: i64, expired: bool) -> BTreeMap<i64, Rec> {
    let mut last_of: BTreeMap<&[u8], i64> = BTreeMap::new();
    for (o, (k, _)) in model.range(..end) {
        last_of.insert(k, *o);
    }
    model
        .iter()
        .filter(|(o, (k, v))| {
            **o >= end || (last_of[k.as_slice()] == **o && !(v.is_none() && expired))
        })
        .map(|(o, r)| (*o, r.clone()))
        .collect()
}

fn active_base(log: &PartitionLog<SimStorage>) -> i64 {
    let segs = log.segments_for_test();
    segs.last().expect("active segment").base_offset.0
}

fn workload() -> impl Strategy<Value = Workload> {
    let record = (0u8..12, proptest::option::weighted(0.8, 0u8..=255));
    let batch = (
        proptest::collection::vec(record, 1..6),
        prop_oneof![Just(0u8), Just(1), Just(2), Just(3), Just(4)],
        proptest::bool::weighted(0.25),
    );
    proptest::collection::vec(batch, 1..60).prop_map(|batches| Workload { batches })
}

fn run_to_completion(log: &PartitionLog<SimStorage>) -> crate::log::CleanOutcome {
    block_on(log.clean()).expect("clean")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn cleaned_log_equals_the_model(w in workload(), expire in any::<bool>(), reopen_scan in any::<bool>()) {
        let storage = SimStorage::new();
        let clock = ManualClock::new(START_MS);
        let config = compacted(if expire { 10 } else { i64::MAX / 4 });
        let log = open(&storage, config.clone(), &clock);
        let model = write(&log, &clock, &w);
        prop_assert_eq!(read_records(&log), model.clone());
        clock.advance_ms(1_000);
        let end = active_base(&log);
        let hw = log.high_watermark();
        let outcome = run_to_completion(&log);
        prop_assert_eq!(outcome.ran, end > 0);
        let want = expected_after_clean(&model, end, expire);
        let got = read_records(&log);
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(log.high_watermark(), hw);
        // Small closed segments were merged into one.
        prop_assert!(log.segment_count() <= 2, "{} segments", log.segment_count());
        // The readable view per key is the model's (tombstones read as "no value").
        let live = |m: &BTreeMap<Vec<u8>, Option<Vec<u8>>>| -> BTreeMap<Vec<u8>, Vec<u8>> {
            m.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect()
        };
        prop_assert_eq!(live(&latest(&got)), live(&latest(&model)));
        // A second pass finds nothing new.
        let again = run_to_completion(&log);
        prop_assert_eq!(again.segments_rewritten, 0);
        // Reopen: from the persisted indexes, or from scans of every segment.
        block_on(log.close()).expect("close");
        drop(log);
        if reopen_scan {
            for p in storage.paths() {
                if p.extension().is_some_and(|e| e == "index") {
                    block_on(storage.remove_file(&p)).expect("remove index");
                }
            }
        }
        let log = open(&storage, config, &clock);
        prop_assert_eq!(read_records(&log), want);
        prop_assert_eq!(log.high_watermark(), hw);
    }
}

/// Polls a future at most `polls` times; None if it did not finish (then it is dropped,
/// which is where a process would have died).
fn poll_at_most<F: Future>(fut: F, polls: usize) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..polls {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
    }
    None
}

fn crash_workload() -> Workload {
    let mut batches = Vec::new();
    for i in 0..40u8 {
        let recs = vec![
            (i % 7, Some(i)),
            ((i * 3) % 11, if i % 5 == 0 { None } else { Some(i) }),
        ];
        batches.push((recs, i % 5, i % 6 == 5));
    }
    Workload { batches }
}

#[test]
fn a_crash_anywhere_in_a_pass_leaves_old_or_new_segments() {
    let w = crash_workload();
    let mut finished_at = None;
    for polls in 0..400 {
        let storage = SimStorage::new();
        let clock = ManualClock::new(START_MS);
        let config = compacted(i64::MAX / 4);
        let log = open(&storage, config.clone(), &clock);
        let model = write(&log, &clock, &w);
        let hw = log.high_watermark();
        let end = active_base(&log);
        let done = poll_at_most(log.clean(), polls);
        if let Some(r) = &done {
            r.as_ref().expect("clean succeeds");
        }
        drop(log);
        storage.crash(polls as u64, CrashMode::TearTail);
        let log = open(&storage, config, &clock);
        let got = read_records(&log);
        assert_eq!(log.high_watermark(), hw, "polls {polls}");
        // Every record still there is the original at its offset.
        for (o, r) in &got {
            assert_eq!(model.get(o), Some(r), "polls {polls}: offset {o}");
        }
        // Whatever was removed was superseded: the latest value per key is unchanged.
        assert_eq!(latest(&got), latest(&model), "polls {polls}");
        let want = expected_after_clean(&model, end, false);
        if done.is_some() {
            assert_eq!(got, want, "a finished pass survives the crash");
            finished_at.get_or_insert(polls);
        }
        // The next pass completes the job from whatever state the crash left.
        run_to_completion(&log);
        assert_eq!(read_records(&log), want, "polls {polls}");
        assert!(
            storage
                .paths()
                .iter()
                .all(|p| !p.to_string_lossy().ends_with(".cleaned")),
            "no cleaned copy is left behind"
        );
        if finished_at.is_some_and(|f| polls > f + 3) {
            break;
        }
    }
    assert!(
        finished_at.is_some(),
        "the pass finishes within the poll budget"
    );
}

#[test]
fn readers_holding_the_old_segment_keep_a_consistent_view() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(START_MS);
    let log = open(&storage, compacted(i64::MAX / 4), &clock);
    let model = write(&log, &clock, &crash_workload());
    // A read that picked its segment before the swap finishes after it.
    let before = log.segments_for_test()[0].clone();
    run_to_completion(&log);
    let old_bytes = block_on(crate::io::StorageFile::read_at(&before.file, 0, 1 << 20))
        .expect("old file still readable");
    let mut n = 0;
    let mut at = 0;
    while at + crate::frame::FRAME_HEADER_BYTES <= old_bytes.len() {
        let Ok(h) = crate::frame::FrameHeader::decode(&old_bytes[at..]) else {
            break;
        };
        let batch = &old_bytes[at + crate::frame::FRAME_HEADER_BYTES..at + h.frame_bytes()];
        BatchView::parse_checked(batch).expect("old copy intact");
        n += 1;
        at += h.frame_bytes();
    }
    assert!(n > 0);
    assert!(
        read_records(&log).len() < model.len(),
        "the new segments are compacted"
    );
}

#[test]
fn fetch_at_a_compacted_offset_returns_the_next_batch() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(START_MS);
    let log = open(&storage, compacted(i64::MAX / 4), &clock);
    let w = Workload {
        batches: vec![
            (vec![(1, Some(1))], 0, false),
            (vec![(2, Some(1))], 0, false),
            (vec![(1, Some(2))], 0, true),
            (vec![(3, Some(1))], 0, false),
        ],
    };
    write(&log, &clock, &w);
    run_to_completion(&log);
    // Offset 0 (key 1, superseded) is gone: a fetch there starts at offset 1.
    let r = block_on(log.read(Offset(0), 1)).expect("read");
    let v = BatchView::parse(&r.bytes).expect("batch");
    assert_eq!(v.base_offset(), Offset(1));
}

#[test]
fn compacted_topic_refuses_records_without_a_key() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(START_MS);
    let log = open(&storage, compacted(0), &clock);
    for codec in [0u8, 1, 2, 3, 4] {
        let b = records::build::keyed(&[(Some(b"k"), Some(b"v")), (None, Some(b"v"))], codec, 0);
        let err = block_on(log.append(&b, OPTS)).expect_err("keyless record refused");
        assert!(
            matches!(
                err,
                LogError::Batch {
                    source: crate::batch::BatchError::MissingKey,
                    ..
                }
            ),
            "{err}"
        );
    }
    let ok = records::build::keyed(&[(Some(b"k"), Some(b"v"))], 2, 0);
    block_on(log.append(&ok, OPTS)).expect("keyed record accepted");
}

#[test]
fn dirty_ratio_and_compaction_lag_hold_the_cleaner_back() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(START_MS);
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        min_compaction_lag_ms: 60_000,
        ..compacted(i64::MAX / 4)
    };
    let log = open(&storage, config.clone(), &clock);
    write(&log, &clock, &crash_workload());
    assert!(
        !run_to_completion(&log).ran,
        "every segment is younger than the lag"
    );
    clock.advance_ms(120_000);
    let first = run_to_completion(&log);
    assert!(first.ran && first.segments_rewritten > 0);
    // All clean now: dirty ratio 0 until new closed segments arrive.
    assert!(!run_to_completion(&log).ran);
}

#[test]
fn compact_only_topics_skip_time_retention() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(START_MS);
    let config = LogConfig {
        retention_ms: 1,
        ..compacted(i64::MAX / 4)
    };
    let log = open(&storage, config.clone(), &clock);
    write(&log, &clock, &crash_workload());
    clock.advance_ms(1_000_000);
    assert_eq!(block_on(log.enforce_retention()).expect("retention"), 0);
    log.set_config(LogConfig {
        cleanup_policy: CleanupPolicy::CompactDelete,
        ..config
    });
    assert!(block_on(log.enforce_retention()).expect("retention") > 0);
}

#[test]
fn small_offset_map_cleans_in_several_passes() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(START_MS);
    let config = compacted(i64::MAX / 4);
    let log = open(&storage, config, &clock);
    let model = write(&log, &clock, &crash_workload());
    let end = active_base(&log);
    let mut passes = 0;
    loop {
        let o = block_on(log.clean_with_map_bytes(200)).expect("clean");
        passes += 1;
        if !o.more {
            break;
        }
        assert!(passes < 100, "passes make progress");
    }
    assert!(passes > 1, "a 200-byte map cannot hold every key at once");
    assert_eq!(read_records(&log), expected_after_clean(&model, end, false));
}

#[test]
fn tombstones_go_once_delete_retention_passes_without_new_data() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(START_MS);
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        ..compacted(5_000)
    };
    let log = open(&storage, config, &clock);
    let w = Workload {
        batches: vec![
            (vec![(1, Some(1)), (2, Some(1))], 3, false),
            (vec![(1, None)], 0, true),
            (vec![(3, Some(1))], 0, false),
        ],
    };
    let model = write(&log, &clock, &w);
    let end = active_base(&log);
    let first = run_to_completion(&log);
    assert!(first.ran);
    assert_eq!(read_records(&log), expected_after_clean(&model, end, false));
    // Nothing dirty and the tombstone not yet due: no pass.
    assert!(!run_to_completion(&log).ran);
    clock.advance_ms(5_000);
    let second = run_to_completion(&log);
    assert!(second.ran, "a due tombstone makes the log cleanable");
    assert_eq!(read_records(&log), expected_after_clean(&model, end, true));
    assert!(
        !run_to_completion(&log).ran,
        "no tombstone left to wait for"
    );
}

#[test]
fn appends_and_rolls_go_on_while_a_pass_runs() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(START_MS);
    let config = compacted(i64::MAX / 4);
    let log = open(&storage, config.clone(), &clock);
    let mut model = write(&log, &clock, &crash_workload());
    let more = crash_workload();
    let appends = async {
        let mut added = BTreeMap::new();
        for (i, (recs, codec, roll_after)) in more.batches.iter().enumerate() {
            let owned: Vec<Rec> = recs
                .iter()
                .map(|(k, v)| (key(*k), v.map(|v| value(v, 100 + i))))
                .collect();
            let refs: Vec<records::build::KeyValue<'_>> = owned
                .iter()
                .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
                .collect();
            let b = records::build::keyed(&refs, *codec, clock_now(&clock));
            let info = log.append(&b, OPTS).await.expect("append during a pass");
            for (j, r) in owned.into_iter().enumerate() {
                added.insert(info.base_offset.0 + j as i64, r);
            }
            clock.advance_ms(if *roll_after { SEGMENT_MS } else { 1 });
            futures_lite::future::yield_now().await;
        }
        added
    };
    let (outcome, added) = block_on(futures_lite::future::zip(log.clean(), appends));
    let outcome = outcome.expect("clean");
    assert!(outcome.ran && outcome.segments_rewritten > 0);
    model.extend(added);
    let got = read_records(&log);
    for (o, r) in &got {
        assert_eq!(
            model.get(o),
            Some(r),
            "offset {o} holds its original record"
        );
    }
    assert_eq!(latest(&got), latest(&model));
    // Everything closed now gets cleaned by the next pass; a reopen reads the same.
    run_to_completion(&log);
    let end = active_base(&log);
    let want = expected_after_clean(&model, end, false);
    assert_eq!(read_records(&log), want);
    block_on(log.close()).expect("close");
    drop(log);
    assert_eq!(read_records(&open(&storage, config, &clock)), want);
}

#[test]
fn merged_segments_stay_within_segment_bytes() {
    let storage = SimStorage::new();
    let clock = ManualClock::new(START_MS);
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..compacted(i64::MAX / 4)
    };
    let log = open(&storage, config.clone(), &clock);
    // 24 segments of ~200 KiB, every key distinct: nothing to drop, only to merge.
    let mut model = BTreeMap::new();
    for seg in 0..24u32 {
        for b in 0..10u32 {
            let key = format!("key-{seg}-{b}").into_bytes();
            let value = vec![(seg + b) as u8; 20_000];
            let batch = records::build::keyed(&[(Some(&key), Some(&value))], 0, clock_now(&clock));
            let info = block_on(log.append(&batch, OPTS)).expect("append");
            model.insert(info.base_offset.0, (key, Some(value)));
        }
        clock.advance_ms(SEGMENT_MS);
    }
    let before = log.segment_count();
    run_to_completion(&log);
    let after = log.segment_count();
    assert!(after < before, "{before} -> {after} segments");
    for seg in log.segments_for_test() {
        assert!(
            seg.size() <= 1 << 20,
            "merged segment of {} bytes",
            seg.size()
        );
    }
    assert_eq!(read_records(&log), model);
    block_on(log.close()).expect("close");
    drop(log);
    assert_eq!(read_records(&open(&storage, config, &clock)), model);
}

fn live(records: &BTreeMap<i64, Rec>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    latest(records)
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Several passes with a small offset map, expired tombstones, and reopens in between
    /// (which make the cleaner look for due tombstones): a deleted key never comes back and
    /// every key's visible value is the model's after every pass.
    #[test]
    fn deleted_keys_never_come_back_across_passes(
        w in workload(),
        map_bytes in 60usize..600,
        reopen_every in 1usize..4,
    ) {
        let storage = SimStorage::new();
        let clock = ManualClock::new(START_MS);
        let config = LogConfig { min_cleanable_dirty_ratio: 0.3, ..compacted(10) };
        let mut log = open(&storage, config.clone(), &clock);
        let model = write(&log, &clock, &w);
        let end = active_base(&log);
        clock.advance_ms(1_000);
        let want_live = live(&model);
        for pass in 1..200usize {
            let o = block_on(log.clean_with_map_bytes(map_bytes)).expect("clean");
            let got = read_records(&log);
            prop_assert_eq!(live(&got), want_live.clone(), "pass {}", pass);
            for (off, r) in &got {
                prop_assert_eq!(model.get(off), Some(r));
            }
            if pass % reopen_every == 0 {
                block_on(log.close()).expect("close");
                log = open(&storage, config.clone(), &clock);
            }
            if !o.ran && log.cleaner_checkpoint().0 >= end {
                break;
            }
        }
        // Once everything below the active segment was mapped, expired tombstones are gone.
        let o = block_on(log.clean_with_map_bytes(1 << 20)).expect("clean");
        let _ = o;
        prop_assert_eq!(read_records(&log), expected_after_clean(&model, end, true));
    }
}
