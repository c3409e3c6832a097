//! Kafka RecordBatch v2 validation and stamping.
//!
//! The broker stores client batches verbatim. On append it checks the framing and the
//! CRC-32C (which covers `attributes..end`) and then stamps the fields the CRC does not
//! cover: base offset and partition leader epoch. Records are never decoded here.

use crate::ids::{LeaderEpoch, Offset};
use crate::limits::{BATCH_BYTES_MAX, BATCH_HEADER_BYTES};

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;
/// Bytes before `batchLength`'s coverage begins (base offset + the length field itself).
pub const LOG_OVERHEAD: usize = 12;
/// Bytes at the start of a batch that Kafka's CRC does not cover.
pub const CRC_UNCOVERED_PREFIX: usize = ATTRIBUTES;

const ATTR_TIMESTAMP_TYPE_LOG_APPEND: i16 = 1 << 3;
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;

/// Why a batch was refused. The net layer maps these to Kafka error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: {have} bytes, need {need}")]
    Truncated { have: usize, need: usize },
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    #[error("batch length {0} out of range")]
    BadLength(i64),
    #[error("batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("batch of {bytes} bytes is larger than the limit {limit}")]
    TooLarge { bytes: usize, limit: usize },
    #[error("batch claims {records} records but last offset delta {last_offset_delta}")]
    BadRecordCount {
        records: i32,
        last_offset_delta: i32,
    },
    #[error("empty record set")]
    Empty,
    /// Kafka's rule for compacted topics (it answers INVALID_RECORD).
    #[error("compacted topic cannot accept a record without a key")]
    MissingKey,
    /// The records inside a batch could not be read (bad compression or record framing).
    #[error("records unreadable: {0}")]
    Records(String),
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// A read-only view of one RecordBatch v2 whose framing has been checked.
#[derive(Clone, Copy, Debug)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Checks the framing of the batch at the start of `bytes` (magic, length bounds) without
    /// the CRC. Returns the view over exactly the batch's bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<BatchView<'a>, BatchError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated {
                have: bytes.len(),
                need: BATCH_HEADER_BYTES,
            });
        }
        let magic = bytes[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let length = be_i32(bytes, BATCH_LENGTH) as i64;
        let total = length + LOG_OVERHEAD as i64;
        if total < BATCH_HEADER_BYTES as i64 || total > BATCH_BYTES_MAX as i64 {
            return Err(BatchError::BadLength(length));
        }
        let total = total as usize;
        if bytes.len() < total {
            return Err(BatchError::Truncated {
                have: bytes.len(),
                need: total,
            });
        }
        Ok(BatchView {
            bytes: &bytes[..total],
        })
    }

    /// `parse` plus the CRC-32C check over `attributes..end`.
    pub fn parse_checked(bytes: &'a [u8]) -> Result<BatchView<'a>, BatchError> {
        let view = Self::parse(bytes)?;
        view.verify_crc()?;
        let records = view.record_count();
        let delta = view.last_offset_delta();
        if records < 0 || delta < 0 || (records > 0 && delta < records - 1) {
            return Err(BatchError::BadRecordCount {
                records,
                last_offset_delta: delta,
            });
        }
        Ok(view)
    }

    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let stored = self.stored_crc();
        let computed = crc32c::crc32c(&self.bytes[ATTRIBUTES..]);
        if stored != computed {
            return Err(BatchError::CrcMismatch { stored, computed });
        }
        Ok(())
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    pub fn base_offset(&self) -> Offset {
        Offset(be_i64(self.bytes, BASE_OFFSET))
    }
    pub fn leader_epoch(&self) -> LeaderEpoch {
        LeaderEpoch(be_i32(self.bytes, LEADER_EPOCH))
    }
    pub fn stored_crc(&self) -> u32 {
        be_u32(self.bytes, CRC)
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, ATTRIBUTES)
    }
    pub fn compression_codec(&self) -> u8 {
        (self.attributes() & 0x7) as u8
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, LAST_OFFSET_DELTA)
    }
    pub fn last_offset(&self) -> Offset {
        Offset(self.base_offset().0 + self.last_offset_delta() as i64)
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, BASE_SEQUENCE)
    }
    pub fn record_count(&self) -> i32 {
        be_i32(self.bytes, RECORD_COUNT)
    }
}

/// Iterates over the batches of a record set (a Produce request's `records`, or bytes read
/// from the log). Stops with an error at the first malformed batch.
pub fn batches(mut bytes: &[u8]) -> impl Iterator<Item = Result<BatchView<'_>, BatchError>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        match BatchView::parse(bytes) {
            Ok(view) => {
                bytes = &bytes[view.len()..];
                Some(Ok(view))
            }
            Err(e) => {
                bytes = &[];
                Some(Err(e))
            }
        }
    })
}

/// Validates every batch of a record set against the CRC and the size limit; returns how
/// many batches and records it holds.
pub fn validate_record_set(
    bytes: &[u8],
    batch_bytes_max: usize,
) -> Result<RecordSetSummary, BatchError> {
    let mut summary = RecordSetSummary::default();
    for view in batches(bytes) {
        let view = view?;
        if view.len() > batch_bytes_max {
            return Err(BatchError::TooLarge {
                bytes: view.len(),
                limit: batch_bytes_max,
            });
        }
        BatchView::parse_checked(view.bytes())?;
        summary.batches += 1;
        summary.records += view.last_offset_delta() as i64 + 1;
    }
    if summary.batches == 0 {
        return Err(BatchError::Empty);
    }
    Ok(summary)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordSetSummary {
    pub batches: usize,
    pub records: i64,
}

/// How the broker treats a batch's timestamp (Kafka's `message.timestamp.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampStamp {
    /// Keep the producer's CreateTime.
    CreateTime,
    /// Overwrite max timestamp with the broker's append time and set the attribute bit;
    /// this changes CRC-covered bytes, so the CRC is recomputed.
    LogAppendTime { now_ms: i64 },
}

/// Stamps the fields the broker owns into a batch that already passed validation.
pub fn stamp(batch: &mut [u8], base_offset: Offset, epoch: LeaderEpoch, timestamp: TimestampStamp) {
    assert!(
        batch.len() >= BATCH_HEADER_BYTES,
        "stamp on a batch that was not validated"
    );
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.0.to_be_bytes());
    batch[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&epoch.0.to_be_bytes());
    if let TimestampStamp::LogAppendTime { now_ms } = timestamp {
        let attributes = be_i16(batch, ATTRIBUTES) | ATTR_TIMESTAMP_TYPE_LOG_APPEND;
        batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
        let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
        batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Test and benchmark support: builds a valid batch of `record_count` records of
/// `value_bytes` each (uncompressed, no keys or headers).
pub mod build {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let byte = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }

    /// One record as Kafka encodes it inside a v2 batch.
    fn record(
        out: &mut Vec<u8>,
        offset_delta: i32,
        timestamp_delta: i64,
        key: Option<&[u8]>,
        value: &[u8],
    ) {
        let mut body = Vec::with_capacity(value.len() + 16);
        body.push(0); // attributes
        put_varint(&mut body, timestamp_delta);
        put_varint(&mut body, offset_delta as i64);
        match key {
            Some(k) => {
                put_varint(&mut body, k.len() as i64);
                body.extend_from_slice(k);
            }
            None => put_varint(&mut body, -1),
        }
        put_varint(&mut body, value.len() as i64);
        body.extend_from_slice(value);
        put_varint(&mut body, 0); // headers
        put_varint(out, body.len() as i64);
        out.extend_from_slice(&body);
    }

    /// A batch with `values.len()` records, first timestamp `base_timestamp_ms`, record i at
    /// `base_timestamp_ms + i`.
    pub fn batch_with(values: &[&[u8]], base_timestamp_ms: i64) -> Vec<u8> {
        let count = values.len() as i32;
        assert!(count > 0, "a batch holds at least one record");
        let mut out = vec![0u8; BATCH_HEADER_BYTES];
        for (i, v) in values.iter().enumerate() {
            record(&mut out, i as i32, i as i64, None, v);
        }
        let len = out.len();
        out[BATCH_LENGTH..BATCH_LENGTH + 4]
            .copy_from_slice(&((len - LOG_OVERHEAD) as i32).to_be_bytes());
        out[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&(-1i32).to_be_bytes());
        out[MAGIC] = 2;
        out[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&(count - 1).to_be_bytes());
        out[BASE_TIMESTAMP..BASE_TIMESTAMP + 8].copy_from_slice(&base_timestamp_ms.to_be_bytes());
        let max_ts = base_timestamp_ms + count as i64 - 1;
        out[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max_ts.to_be_bytes());
        out[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&(-1i64).to_be_bytes());
        out[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&(-1i16).to_be_bytes());
        out[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&(-1i32).to_be_bytes());
        out[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&out[ATTRIBUTES..]);
        out[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Like [`batch`], from an idempotent producer: id, epoch and first sequence set.
    pub fn idempotent(
        record_count: usize,
        value_bytes: usize,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Vec<u8> {
        let mut out = batch(record_count, value_bytes, 0x33, 0);
        out[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
        out[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&producer_epoch.to_be_bytes());
        out[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
        let crc = crc32c::crc32c(&out[ATTRIBUTES..]);
        out[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// `record_count` records of `value_bytes` each, values filled with `fill`.
    pub fn batch(
        record_count: usize,
        value_bytes: usize,
        fill: u8,
        base_timestamp_ms: i64,
    ) -> Vec<u8> {
        let value = vec![fill; value_bytes];
        let values: Vec<&[u8]> = (0..record_count).map(|_| value.as_slice()).collect();
        batch_with(&values, base_timestamp_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn built_batch_validates_and_stamps() {
        let mut b = build::batch(3, 10, 7, 1000);
        let summary = validate_record_set(&b, BATCH_BYTES_MAX).expect("valid batch");
        assert_eq!(
            summary,
            RecordSetSummary {
                batches: 1,
                records: 3
            }
        );
        stamp(
            &mut b,
            Offset(42),
            LeaderEpoch(5),
            TimestampStamp::CreateTime,
        );
        let v = BatchView::parse_checked(&b).expect("stamping keeps the CRC valid");
        assert_eq!(v.base_offset(), Offset(42));
        assert_eq!(v.last_offset(), Offset(44));
        assert_eq!(v.leader_epoch(), LeaderEpoch(5));
        assert_eq!(v.max_timestamp(), 1002);
    }

    #[test]
    fn log_append_time_rewrites_timestamp_and_crc() {
        let mut b = build::batch(2, 4, 1, 1000);
        stamp(
            &mut b,
            Offset(0),
            LeaderEpoch(0),
            TimestampStamp::LogAppendTime { now_ms: 99_999 },
        );
        let v = BatchView::parse_checked(&b).expect("crc recomputed");
        assert_eq!(v.max_timestamp(), 99_999);
        assert_ne!(v.attributes() & ATTR_TIMESTAMP_TYPE_LOG_APPEND, 0);
    }

    #[test]
    fn flipped_payload_bit_is_a_crc_mismatch() {
        let mut b = build::batch(1, 32, 3, 0);
        let last = b.len() - 5;
        b[last] ^= 0x10;
        assert!(matches!(
            validate_record_set(&b, BATCH_BYTES_MAX),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn wrong_magic_and_short_input_are_refused() {
        let mut b = build::batch(1, 8, 0, 0);
        b[MAGIC] = 1;
        assert_eq!(
            BatchView::parse(&b).unwrap_err(),
            BatchError::UnsupportedMagic(1)
        );
        assert!(matches!(
            BatchView::parse(&b[..20]),
            Err(BatchError::Truncated { .. })
        ));
        assert_eq!(
            validate_record_set(&[], BATCH_BYTES_MAX).unwrap_err(),
            BatchError::Empty
        );
    }

    #[test]
    fn oversized_batch_is_refused() {
        let b = build::batch(4, 100, 0, 0);
        assert!(matches!(
            validate_record_set(&b, 100),
            Err(BatchError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_validation(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = validate_record_set(&data, BATCH_BYTES_MAX);
        }

        #[test]
        fn concatenated_batches_are_all_seen(sizes in proptest::collection::vec((1usize..20, 0usize..64), 1..8)) {
            let mut set = Vec::new();
            let mut expect_records = 0i64;
            for (count, value) in &sizes {
                set.extend(build::batch(*count, *value, 9, 5));
                expect_records += *count as i64;
            }
            let s = validate_record_set(&set, BATCH_BYTES_MAX).unwrap();
            prop_assert_eq!(s.batches, sizes.len());
            prop_assert_eq!(s.records, expect_records);
        }

        #[test]
        fn any_single_bit_flip_after_prefix_is_detected(count in 1usize..5, value in 1usize..40, bit in 0usize..10_000) {
            let mut b = build::batch(count, value, 0xAB, 77);
            let covered = b.len() - ATTRIBUTES;
            let at = ATTRIBUTES + (bit / 8) % covered;
            b[at] ^= 1 << (bit % 8);
            prop_assert!(validate_record_set(&b, BATCH_BYTES_MAX).is_err());
        }
    }
}
