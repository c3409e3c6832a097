//! Log compaction decisions, as pure functions of batches, the offset map and the clock:
//! which records of a batch survive, and the bytes of the batch that carries them. The
//! I/O (reading segments, writing the cleaned copy, the atomic swap) lives in
//! `partition/clean.rs`.
//!
//! Rules (Kafka's LogCleaner, the subset Sluice needs):
//! - A keyed record survives unless the offset map holds a later offset for its key.
//! - A tombstone (null value) also goes once its batch's max timestamp is more than
//!   delete.retention.ms old (Kafka >= 3.1 counts from the first cleaning that saw it,
//!   KIP-534; counting from the batch timestamp needs no rewrite of timestamps) - but only
//!   below the pass's horizon (the end of its offset map, or of what earlier passes
//!   mapped): there every older record of its key is removed in the same pass or was
//!   before, so dropping the tombstone cannot bring an older value back.
//! - Records without a key (written before the topic became compacted) survive.
//! - Control batches (transaction markers) are kept whole.
//! - A batch left with no records is dropped, unless it must stay as an empty batch: the
//!   last batch of a segment (so each segment still ends at its original offset and the
//!   segments stay contiguous), or a batch the idempotent-producer state still remembers
//!   (so producer id / epoch / sequence can be rebuilt from the log, as Kafka keeps each
//!   producer's last batch).
//! - A rewritten batch keeps base offset, last offset delta (consumers advance past the
//!   original last offset), timestamps, producer id/epoch/base sequence and codec: the
//!   survivors are recompressed with the batch's own codec.

use std::collections::HashMap;

use crate::batch::BatchView;
use crate::limits::{CLEANER_OFFSET_MAP_ENTRY_OVERHEAD_BYTES, DECOMPRESSED_BATCH_BYTES_MAX};
use crate::records::{parse_records, rebuild_batch, record_section, RecordError};

/// The latest offset of every key seen in the dirty section of one pass, with a byte
/// budget (Kafka's dedupe buffer). Holds whole keys, so there are no hash collisions.
#[derive(Debug)]
pub struct OffsetMap {
    latest: HashMap<Box<[u8]>, i64>,
    bytes: usize,
    bytes_max: usize,
}

impl OffsetMap {
    pub fn new(bytes_max: usize) -> Self {
        OffsetMap {
            latest: HashMap::new(),
            bytes: 0,
            bytes_max,
        }
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
    /// Budget used, bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn entry_bytes(key: &[u8]) -> usize {
        key.len() + CLEANER_OFFSET_MAP_ENTRY_OVERHEAD_BYTES
    }

    /// Records that `key` was written at `offset` (keeps the larger offset).
    pub fn put(&mut self, key: &[u8], offset: i64) {
        match self.latest.get_mut(key) {
            Some(o) => *o = (*o).max(offset),
            None => {
                self.bytes += Self::entry_bytes(key);
                self.latest.insert(key.into(), offset);
            }
        }
    }

    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    /// Adds the keyed records of `view` in order while the budget allows; an empty map
    /// always takes one record, so a pass progresses and the map never exceeds its budget
    /// by more than one key.
    pub fn add_batch(&mut self, view: &BatchView<'_>) -> Result<MapFill, RecordError> {
        if view.is_control() {
            return Ok(MapFill::All);
        }
        let section = record_section(view, DECOMPRESSED_BATCH_BYTES_MAX)?;
        let records = parse_records(&section, view.record_count())?;
        let base = view.base_offset().0;
        for r in &records {
            let Some(k) = r.key else {
                continue;
            };
            let offset = base + r.offset_delta as i64;
            let new = !self.latest.contains_key(k);
            if new && !self.is_empty() && self.bytes + Self::entry_bytes(k) > self.bytes_max {
                return Ok(MapFill::UpTo(offset));
            }
            self.put(k, offset);
        }
        Ok(MapFill::All)
    }
}

/// How much of a batch went into the offset map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapFill {
    All,
    /// The budget ran out: records from this offset on were not added.
    UpTo(i64),
}

/// What to do with one batch of a segment being cleaned.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchFate {
    /// Every record survives: copy the batch unchanged.
    KeepWhole,
    /// No record survives and nothing requires an empty batch: leave it out.
    Drop,
    /// Some records survive (or none, but the batch must stay): these bytes replace it.
    Rewrite(Vec<u8>),
}

/// Inputs of a batch's fate besides the batch and the map.
#[derive(Clone, Copy, Debug)]
pub struct FilterRules {
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    /// Tombstones at or above this offset stay whatever their age (see the module rules).
    pub tombstone_horizon: i64,
    /// Keep the batch (empty if need be) even when no record survives.
    pub keep_empty: bool,
}

/// Decides which records of `view` survive against `map` (see the module rules). Lowers
/// `tombstone_due_ms` to the time a tombstone it keeps may go.
pub fn filter_batch(
    view: &BatchView<'_>,
    map: &OffsetMap,
    rules: FilterRules,
    tombstone_due_ms: &mut i64,
) -> Result<BatchFate, RecordError> {
    if view.is_control() {
        return Ok(BatchFate::KeepWhole);
    }
    let section = record_section(view, DECOMPRESSED_BATCH_BYTES_MAX)?;
    let records = parse_records(&section, view.record_count())?;
    let base = view.base_offset().0;
    let due_ms = view
        .max_timestamp()
        .saturating_add(rules.delete_retention_ms)
        .saturating_add(1);
    let tombstones_expire = rules.now_ms >= due_ms;
    let kept: Vec<_> = records
        .iter()
        .filter(|r| {
            let Some(key) = r.key else {
                return true;
            };
            let offset = base + r.offset_delta as i64;
            if map.latest(key).is_some_and(|latest| latest > offset) {
                return false;
            }
            !(r.value_is_null && tombstones_expire && offset < rules.tombstone_horizon)
        })
        .copied()
        .collect();
    // Only tombstones a later pass could drop without new data count as due.
    if kept
        .iter()
        .any(|r| r.value_is_null && base + (r.offset_delta as i64) < rules.tombstone_horizon)
    {
        *tombstone_due_ms = (*tombstone_due_ms).min(due_ms);
    }
    if kept.len() == records.len() {
        return Ok(BatchFate::KeepWhole);
    }
    if kept.is_empty() && !rules.keep_empty {
        return Ok(BatchFate::Drop);
    }
    rebuild_batch(view, &kept).map(BatchFate::Rewrite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{stamp, TimestampStamp};
    use crate::ids::{LeaderEpoch, Offset};
    use crate::records::{build, CODEC_NONE, CODEC_ZSTD};

    fn at(mut b: Vec<u8>, base: i64) -> Vec<u8> {
        stamp(
            &mut b,
            Offset(base),
            LeaderEpoch(0),
            TimestampStamp::CreateTime,
        );
        b
    }

    const RULES: FilterRules = FilterRules {
        now_ms: 1_000,
        delete_retention_ms: 100,
        tombstone_horizon: i64::MAX,
        keep_empty: false,
    };

    #[test]
    fn superseded_records_go_and_latest_stay() {
        let old = at(
            build::keyed(
                &[(Some(b"a"), Some(b"1")), (Some(b"b"), Some(b"1"))],
                CODEC_ZSTD,
                990,
            ),
            0,
        );
        let new = at(
            build::keyed(&[(Some(b"a"), Some(b"2"))], CODEC_NONE, 995),
            2,
        );
        let mut due = i64::MAX;
        let mut map = OffsetMap::new(1 << 20);
        for b in [&old, &new] {
            assert_eq!(
                map.add_batch(&BatchView::parse(b).unwrap()).unwrap(),
                MapFill::All
            );
        }
        assert_eq!(map.latest(b"a"), Some(2));
        let fate = filter_batch(&BatchView::parse(&old).unwrap(), &map, RULES, &mut due).unwrap();
        let BatchFate::Rewrite(bytes) = fate else {
            panic!("expected a rewrite, got {fate:?}");
        };
        let v = BatchView::parse_checked(&bytes).unwrap();
        assert_eq!(
            (v.base_offset().0, v.last_offset().0, v.record_count()),
            (0, 1, 1)
        );
        assert_eq!(v.compression_codec(), CODEC_ZSTD);
        assert_eq!(
            filter_batch(&BatchView::parse(&new).unwrap(), &map, RULES, &mut due).unwrap(),
            BatchFate::KeepWhole
        );
    }

    #[test]
    fn tombstones_stay_until_delete_retention_passes() {
        let t = at(build::keyed(&[(Some(b"a"), None)], CODEC_NONE, 950), 0);
        let map = OffsetMap::new(1 << 20);
        let mut due = i64::MAX;
        let view = BatchView::parse(&t).unwrap();
        assert_eq!(
            filter_batch(&view, &map, RULES, &mut due).unwrap(),
            BatchFate::KeepWhole
        );
        assert_eq!(
            due,
            950 + 100 + 1,
            "the kept tombstone is due after delete.retention.ms"
        );
        let later = FilterRules {
            now_ms: 1_100,
            ..RULES
        };
        assert_eq!(
            filter_batch(&view, &map, later, &mut due).unwrap(),
            BatchFate::Drop
        );
        let keep = FilterRules {
            keep_empty: true,
            ..later
        };
        let BatchFate::Rewrite(b) = filter_batch(&view, &map, keep, &mut due).unwrap() else {
            panic!("an empty batch must stay");
        };
        let v = BatchView::parse_checked(&b).unwrap();
        assert_eq!((v.record_count(), v.last_offset().0), (0, 0));
    }

    #[test]
    fn map_budget_stops_at_a_record_but_always_takes_one() {
        let b1 = at(
            build::keyed(&[(Some(b"key-1"), Some(b"v"))], CODEC_NONE, 0),
            0,
        );
        let b2 = at(
            build::keyed(&[(Some(b"key-2"), Some(b"v"))], CODEC_NONE, 0),
            1,
        );
        let mut map = OffsetMap::new(10);
        assert_eq!(
            map.add_batch(&BatchView::parse(&b1).unwrap()).unwrap(),
            MapFill::All
        );
        assert_eq!(
            map.add_batch(&BatchView::parse(&b2).unwrap()).unwrap(),
            MapFill::UpTo(1)
        );
        // A known key costs nothing more: it still goes in.
        let b3 = at(
            build::keyed(
                &[(Some(b"key-1"), Some(b"w")), (Some(b"key-3"), Some(b"w"))],
                CODEC_NONE,
                0,
            ),
            2,
        );
        assert_eq!(
            map.add_batch(&BatchView::parse(&b3).unwrap()).unwrap(),
            MapFill::UpTo(3)
        );
        assert_eq!(map.latest(b"key-1"), Some(2));
        assert_eq!(map.len(), 1);
    }
}
