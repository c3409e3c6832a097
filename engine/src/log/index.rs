//! Sparse offset index and time index of one segment, kept in memory while the segment is
//! active and persisted as one rkyv archive (versioned, crc32c-checksummed) when it closes.
//!
//! Owned by the segment, which is owned by its partition's shard.

use rkyv::rancor;
use rkyv::{Archive, Deserialize, Serialize};

use crate::ids::Offset;

pub const INDEX_MAGIC: u32 = 0x534c_4958; // "SLIX"
pub const INDEX_VERSION: u16 = 1;
/// Bytes before the archive in an index file: length u64 LE + crc32c u32 LE.
pub const INDEX_PREAMBLE_BYTES: usize = 12;

/// Offset index entry: the frame that holds offsets from `relative_offset` starts at `position`.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// Time index entry: before the frame at `position` (first offset `relative_offset`), no batch
/// had a max timestamp above `max_timestamp`. Timestamps are non-decreasing along the index.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    pub max_timestamp: i64,
    pub relative_offset: u32,
    pub position: u32,
}

/// What a persisted index file holds.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct IndexFile {
    pub magic: u32,
    pub version: u16,
    pub base_offset: i64,
    /// Valid bytes of the segment when the index was written.
    pub segment_bytes: u64,
    /// Exclusive end offset of the segment when the index was written.
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub max_timestamp_offset: i64,
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    #[error("index file truncated")]
    Truncated,
    #[error("index checksum mismatch")]
    Crc,
    #[error("index archive invalid: {0}")]
    Invalid(String),
    #[error("index for base offset {found} found where {expected} was expected")]
    WrongSegment { expected: i64, found: i64 },
}

/// The in-memory index of one segment.
#[derive(Clone, Debug, Default)]
pub struct SegmentIndex {
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
    bytes_since_entry: u64,
    pub max_timestamp: i64,
    pub max_timestamp_offset: i64,
}

impl SegmentIndex {
    pub fn new() -> Self {
        SegmentIndex {
            max_timestamp: -1,
            max_timestamp_offset: -1,
            ..Default::default()
        }
    }

    /// Records a frame appended at `position`; adds sparse entries every `interval_bytes`.
    pub fn on_append(
        &mut self,
        segment_base: Offset,
        base_offset: Offset,
        last_offset: Offset,
        position: u64,
        frame_bytes: u64,
        max_timestamp: i64,
        interval_bytes: u64,
    ) {
        let relative = (base_offset.0 - segment_base.0) as u32;
        if self.offsets.is_empty() || self.bytes_since_entry >= interval_bytes {
            self.offsets.push(OffsetEntry {
                relative_offset: relative,
                position: position as u32,
            });
            // Everything before this frame has max timestamp <= `prefix`.
            let prefix = self.max_timestamp;
            let entry = TimeEntry {
                max_timestamp: prefix,
                relative_offset: relative,
                position: position as u32,
            };
            match self.times.last_mut() {
                // Same prefix max: the later position is the better starting point.
                Some(last) if last.max_timestamp == prefix => *last = entry,
                _ => self.times.push(entry),
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += frame_bytes;
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.max_timestamp_offset = last_offset.0;
        }
    }

    /// Position of the frame to start scanning from for `offset`: the last entry at or below it.
    pub fn lookup_offset(&self, segment_base: Offset, offset: Offset) -> u64 {
        let relative = (offset.0 - segment_base.0).max(0) as u32;
        let i = self
            .offsets
            .partition_point(|e| e.relative_offset <= relative);
        if i == 0 {
            0
        } else {
            self.offsets[i - 1].position as u64
        }
    }

    /// Position to start scanning from for the first batch with max timestamp >= `ts`.
    pub fn lookup_time(&self, ts: i64) -> u64 {
        // Entries record the max timestamp of everything before them; the last entry whose
        // prefix max is still below `ts` is a safe place to start.
        let i = self.times.partition_point(|e| e.max_timestamp < ts);
        if i == 0 {
            0
        } else {
            self.times[i - 1].position as u64
        }
    }

    pub fn to_file(
        &self,
        base_offset: Offset,
        segment_bytes: u64,
        next_offset: Offset,
    ) -> IndexFile {
        IndexFile {
            magic: INDEX_MAGIC,
            version: INDEX_VERSION,
            base_offset: base_offset.0,
            segment_bytes,
            next_offset: next_offset.0,
            max_timestamp: self.max_timestamp,
            max_timestamp_offset: self.max_timestamp_offset,
            offsets: self.offsets.clone(),
            times: self.times.clone(),
        }
    }

    pub fn from_file(file: &IndexFile) -> SegmentIndex {
        SegmentIndex {
            offsets: file.offsets.clone(),
            times: file.times.clone(),
            bytes_since_entry: 0,
            max_timestamp: file.max_timestamp,
            max_timestamp_offset: file.max_timestamp_offset,
        }
    }
}

/// Serializes an index file: `[archive len u64][crc32c u32][archive]`.
pub fn encode_index(file: &IndexFile) -> Vec<u8> {
    let archive = rkyv::to_bytes::<rancor::Error>(file)
        .expect("serializing plain data into a Vec cannot fail");
    let mut out = Vec::with_capacity(INDEX_PREAMBLE_BYTES + archive.len());
    out.extend_from_slice(&(archive.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&archive).to_le_bytes());
    out.extend_from_slice(&archive);
    out
}

/// Validates checksum, archive and identity, reading the archive in place.
pub fn decode_index(bytes: &[u8], expected_base: Offset) -> Result<IndexFile, IndexError> {
    if bytes.len() < INDEX_PREAMBLE_BYTES {
        return Err(IndexError::Truncated);
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[..8]);
    let len = u64::from_le_bytes(len) as usize;
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[8..12]);
    let body = bytes
        .get(INDEX_PREAMBLE_BYTES..INDEX_PREAMBLE_BYTES.saturating_add(len))
        .ok_or(IndexError::Truncated)?;
    if crc32c::crc32c(body) != u32::from_le_bytes(crc) {
        return Err(IndexError::Crc);
    }
    let archived = rkyv::access::<ArchivedIndexFile, rancor::Error>(body)
        .map_err(|e| IndexError::Invalid(e.to_string()))?;
    if archived.magic.to_native() != INDEX_MAGIC || archived.version.to_native() != INDEX_VERSION {
        return Err(IndexError::Invalid("magic or version".into()));
    }
    if archived.base_offset.to_native() != expected_base.0 {
        return Err(IndexError::WrongSegment {
            expected: expected_base.0,
            found: archived.base_offset.to_native(),
        });
    }
    rkyv::deserialize::<IndexFile, rancor::Error>(archived)
        .map_err(|e| IndexError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(
        frames: &[(u32, u64, i64)],
        interval: u64,
    ) -> (SegmentIndex, Vec<(i64, i64, u64, i64)>) {
        // frames: (record count, frame bytes, max ts) -> returns (index, list of (base, last, pos, ts))
        let base = Offset(1000);
        let mut idx = SegmentIndex::new();
        let mut pos = 0u64;
        let mut next = base.0;
        let mut list = Vec::new();
        for &(count, bytes, ts) in frames {
            let last = next + count as i64 - 1;
            idx.on_append(base, Offset(next), Offset(last), pos, bytes, ts, interval);
            list.push((next, last, pos, ts));
            pos += bytes;
            next = last + 1;
        }
        (idx, list)
    }

    proptest! {
        #[test]
        fn offset_lookup_never_overshoots_linear_scan(
            frames in proptest::collection::vec((1u32..50, 60u64..9000, 0i64..1_000_000), 1..200),
            interval in 1u64..20_000,
            probe in 0i64..12_000,
        ) {
            let (idx, list) = build(&frames, interval);
            let target = Offset(1000 + probe % (list.last().unwrap().1 - 1000 + 1));
            // Linear scan: the frame that contains target.
            let containing = list.iter().find(|f| f.1 >= target.0).unwrap();
            let start = idx.lookup_offset(Offset(1000), target);
            // The index must point at or before the containing frame, at a frame boundary.
            prop_assert!(start <= containing.2);
            prop_assert!(list.iter().any(|f| f.2 == start));
            // And never further back than one index interval plus one frame.
            let start_frame = list.iter().position(|f| f.2 == start).unwrap();
            let bytes_between: u64 = containing.2 - list[start_frame].2;
            prop_assert!(bytes_between <= interval + 9000);
        }

        #[test]
        fn time_lookup_never_skips_the_first_match(
            frames in proptest::collection::vec((1u32..50, 60u64..9000, 0i64..1_000_000), 1..200),
            interval in 1u64..20_000,
            ts in 0i64..1_000_000,
        ) {
            let (idx, list) = build(&frames, interval);
            let start = idx.lookup_time(ts);
            if let Some(first) = list.iter().find(|f| f.3 >= ts) {
                prop_assert!(start <= first.2, "start {} beyond first match at {}", start, first.2);
            }
        }
    }

    #[test]
    fn index_file_round_trips_and_rejects_damage() {
        let (idx, _) = build(&[(5, 5000, 10), (5, 5000, 20), (5, 5000, 15)], 4096);
        let file = idx.to_file(Offset(1000), 15_000, Offset(1015));
        let mut bytes = encode_index(&file);
        assert_eq!(decode_index(&bytes, Offset(1000)).unwrap(), file);
        assert!(matches!(
            decode_index(&bytes, Offset(0)),
            Err(IndexError::WrongSegment { .. })
        ));
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert_eq!(decode_index(&bytes, Offset(1000)), Err(IndexError::Crc));
        assert_eq!(
            decode_index(&bytes[..5], Offset(1000)),
            Err(IndexError::Truncated)
        );
    }
}
