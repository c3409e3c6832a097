//! The records inside a Kafka RecordBatch v2, for the few places that must look inside a
//! batch (the log cleaner, and the key check of compacted topics): decompression (gzip,
//! snappy, lz4, zstd), the per-record fields they need, and rebuilding a batch from a
//! subset of its records.
//!
//! The append and fetch paths never come here: they store and serve batches verbatim.
//! Kept records are copied byte for byte, so their offset and timestamp deltas (relative
//! to the batch's unchanged base offset and base timestamp) stay valid.

use std::io::Read;

use crate::batch::BatchView;
use crate::limits::BATCH_HEADER_BYTES;

/// Kafka's compression codec ids (the low three bits of the batch attributes).
pub const CODEC_NONE: u8 = 0;
pub const CODEC_GZIP: u8 = 1;
pub const CODEC_SNAPPY: u8 = 2;
pub const CODEC_LZ4: u8 = 3;
pub const CODEC_ZSTD: u8 = 4;

const ATTRIBUTES: usize = 21;
const BATCH_LENGTH: usize = 8;
const CRC: usize = 17;
const RECORD_COUNT: usize = 57;
/// Smallest encoded record: length, attributes, timestamp delta, offset delta, key length,
/// value length, header count - one byte each.
const RECORD_BYTES_MIN: usize = 7;

/// snappy-java's stream framing ("xerial"), which the Java client writes.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;
/// Block size of the snappy-java framing when the cleaner recompresses.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
const LZ4_LEVEL: u32 = 4;
const ZSTD_LEVEL: i32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("unknown compression codec {0}")]
    UnknownCodec(u8),
    #[error("{codec} batch does not decompress: {detail}")]
    Decompress { codec: &'static str, detail: String },
    #[error("{codec} compression failed: {detail}")]
    Compress { codec: &'static str, detail: String },
    #[error("batch inflates beyond {limit} bytes")]
    TooLarge { limit: usize },
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    #[error("batch holds {found} records but claims {claimed}")]
    CountMismatch { claimed: i32, found: usize },
}

fn codec_name(codec: u8) -> &'static str {
    match codec {
        CODEC_NONE => "uncompressed",
        CODEC_GZIP => "gzip",
        CODEC_SNAPPY => "snappy",
        CODEC_LZ4 => "lz4",
        CODEC_ZSTD => "zstd",
        _ => "unknown",
    }
}

/// One record of a batch, borrowed from the (decompressed) record section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The whole encoded record: its length varint and body.
    pub raw: &'a [u8],
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    /// A tombstone: the value is null.
    pub value_is_null: bool,
}

fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, RecordError> {
    let mut z: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = *buf
            .get(*pos)
            .ok_or(RecordError::Malformed("varint runs past the end"))?;
        *pos += 1;
        z |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    Err(RecordError::Malformed("varint longer than 10 bytes"))
}

fn read_len(buf: &[u8], pos: &mut usize) -> Result<Option<usize>, RecordError> {
    let len = read_varlong(buf, pos)?;
    if len < 0 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| RecordError::Malformed("length overflows"))?;
    if len > buf.len().saturating_sub(*pos) {
        return Err(RecordError::Malformed("field runs past the record"));
    }
    Ok(Some(len))
}

/// Parses `count` records from a decompressed record section; it must hold exactly them.
pub fn parse_records(section: &[u8], count: i32) -> Result<Vec<RecordRef<'_>>, RecordError> {
    if count < 0 || count as usize > section.len() / RECORD_BYTES_MIN {
        return Err(RecordError::CountMismatch {
            claimed: count,
            found: section.len() / RECORD_BYTES_MIN,
        });
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut pos = 0usize;
    while pos < section.len() {
        let start = pos;
        let len = read_len(section, &mut pos)?.ok_or(RecordError::Malformed("negative length"))?;
        let body = &section[pos..pos + len];
        pos += len;
        let mut at = 1usize; // attributes
        if body.is_empty() {
            return Err(RecordError::Malformed("empty record"));
        }
        read_varlong(body, &mut at)?; // timestamp delta
        let offset_delta = i32::try_from(read_varlong(body, &mut at)?)
            .map_err(|_| RecordError::Malformed("offset delta overflows"))?;
        let key = match read_len(body, &mut at)? {
            Some(n) => {
                let k = &body[at..at + n];
                at += n;
                Some(k)
            }
            None => None,
        };
        let value_is_null = read_len(body, &mut at)?.is_none();
        out.push(RecordRef {
            raw: &section[start..pos],
            offset_delta,
            key,
            value_is_null,
        });
        if out.len() > count as usize {
            break;
        }
    }
    if out.len() != count as usize {
        return Err(RecordError::CountMismatch {
            claimed: count,
            found: out.len(),
        });
    }
    Ok(out)
}

/// Reads at most `limit` bytes from `r`; more is an error (a decompression bomb).
fn read_bounded(r: impl Read, limit: usize, codec: u8) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| RecordError::Decompress {
            codec: codec_name(codec),
            detail: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(RecordError::TooLarge { limit });
    }
    Ok(out)
}

fn snappy_raw(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), RecordError> {
    let err = |e: snap::Error| RecordError::Decompress {
        codec: "snappy",
        detail: e.to_string(),
    };
    let n = snap::raw::decompress_len(block).map_err(err)?;
    if out.len() + n > limit {
        return Err(RecordError::TooLarge { limit });
    }
    let at = out.len();
    out.resize(at + n, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[at..])
        .map_err(err)?;
    Ok(())
}

/// Inflates a record section compressed with `codec`, refusing more than `limit` bytes.
pub fn decompress(codec: u8, data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    match codec {
        CODEC_NONE => Ok(data.to_vec()),
        CODEC_GZIP => read_bounded(flate2::read::GzDecoder::new(data), limit, codec),
        CODEC_LZ4 => {
            let decoder = lz4::Decoder::new(data).map_err(|e| RecordError::Decompress {
                codec: "lz4",
                detail: e.to_string(),
            })?;
            read_bounded(decoder, limit, codec)
        }
        CODEC_ZSTD => {
            let decoder =
                zstd::stream::read::Decoder::new(data).map_err(|e| RecordError::Decompress {
                    codec: "zstd",
                    detail: e.to_string(),
                })?;
            read_bounded(decoder, limit, codec)
        }
        CODEC_SNAPPY => {
            let mut out = Vec::new();
            if data.len() < XERIAL_HEADER_BYTES || &data[..XERIAL_MAGIC.len()] != XERIAL_MAGIC {
                // librdkafka writes raw snappy.
                snappy_raw(data, &mut out, limit)?;
                return Ok(out);
            }
            let mut pos = XERIAL_HEADER_BYTES;
            while pos < data.len() {
                let Some(len) = data.get(pos..pos + 4) else {
                    return Err(RecordError::Malformed("snappy block length cut short"));
                };
                let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
                pos += 4;
                let block = data
                    .get(pos..pos.saturating_add(len))
                    .ok_or(RecordError::Malformed("snappy block cut short"))?;
                pos += len;
                snappy_raw(block, &mut out, limit)?;
            }
            Ok(out)
        }
        other => Err(RecordError::UnknownCodec(other)),
    }
}

/// Compresses a record section with `codec` in the framing Kafka's own clients write.
pub fn compress(codec: u8, data: &[u8]) -> Result<Vec<u8>, RecordError> {
    use std::io::Write;
    let failed = |e: std::io::Error| RecordError::Compress {
        codec: codec_name(codec),
        detail: e.to_string(),
    };
    match codec {
        CODEC_NONE => Ok(data.to_vec()),
        CODEC_GZIP => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).map_err(failed)?;
            enc.finish().map_err(failed)
        }
        CODEC_LZ4 => {
            let mut enc = lz4::EncoderBuilder::new()
                .level(LZ4_LEVEL)
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())
                .map_err(failed)?;
            enc.write_all(data).map_err(failed)?;
            let (out, result) = enc.finish();
            result.map_err(failed)?;
            Ok(out)
        }
        CODEC_ZSTD => zstd::stream::encode_all(data, ZSTD_LEVEL).map_err(failed),
        CODEC_SNAPPY => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + data.len() / 2);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes()); // version
            out.extend_from_slice(&1i32.to_be_bytes()); // compatible version
            let mut enc = snap::raw::Encoder::new();
            for block in data.chunks(XERIAL_BLOCK_BYTES) {
                let c = enc.compress_vec(block).map_err(|e| RecordError::Compress {
                    codec: "snappy",
                    detail: e.to_string(),
                })?;
                out.extend_from_slice(&(c.len() as u32).to_be_bytes());
                out.extend_from_slice(&c);
            }
            Ok(out)
        }
        other => Err(RecordError::UnknownCodec(other)),
    }
}

/// The batch's record section, decompressed (at most `limit` bytes); borrowed when the
/// batch is not compressed.
pub fn record_section<'a>(
    view: &BatchView<'a>,
    limit: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, RecordError> {
    let data = &view.bytes()[BATCH_HEADER_BYTES..];
    match view.compression_codec() {
        CODEC_NONE => Ok(std::borrow::Cow::Borrowed(data)),
        codec => decompress(codec, data, limit).map(std::borrow::Cow::Owned),
    }
}

/// Whether every record of the batch has a key (what a compacted topic requires).
pub fn all_records_keyed(view: &BatchView<'_>, limit: usize) -> Result<bool, RecordError> {
    let section = record_section(view, limit)?;
    let records = parse_records(&section, view.record_count())?;
    Ok(records.iter().all(|r| r.key.is_some()))
}

/// A copy of `view` holding only `kept` (records of its own record section, in order):
/// same base offset, last offset delta, timestamps, producer id/epoch/base sequence and
/// attributes; the record count, length and CRC-32C are recomputed. The kept records are
/// recompressed with the batch's codec; a batch left with no records is written
/// uncompressed (an empty record section).
pub fn rebuild_batch(view: &BatchView<'_>, kept: &[RecordRef<'_>]) -> Result<Vec<u8>, RecordError> {
    let src = view.bytes();
    let mut codec = view.compression_codec();
    let plain: Vec<u8> = kept.iter().flat_map(|r| r.raw.iter().copied()).collect();
    if kept.is_empty() {
        codec = CODEC_NONE;
    }
    let section = if codec == CODEC_NONE {
        plain
    } else {
        compress(codec, &plain)?
    };
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + section.len());
    out.extend_from_slice(&src[..BATCH_HEADER_BYTES]);
    out.extend_from_slice(&section);
    let attributes = (view.attributes() & !0x7) | codec as i16;
    out[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    out[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let length = (out.len() - crate::batch::LOG_OVERHEAD) as i32;
    out[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES..]);
    out[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Test and benchmark support: batches with keys, tombstones and compression.
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

    /// One record; `value: None` is a tombstone.
    pub fn record(out: &mut Vec<u8>, offset_delta: i32, key: Option<&[u8]>, value: Option<&[u8]>) {
        let mut body = vec![0u8]; // attributes
        put_varint(&mut body, offset_delta as i64); // timestamp delta (ms after base)
        put_varint(&mut body, offset_delta as i64);
        match key {
            Some(k) => {
                put_varint(&mut body, k.len() as i64);
                body.extend_from_slice(k);
            }
            None => put_varint(&mut body, -1),
        }
        match value {
            Some(v) => {
                put_varint(&mut body, v.len() as i64);
                body.extend_from_slice(v);
            }
            None => put_varint(&mut body, -1),
        }
        put_varint(&mut body, 0); // headers
        put_varint(out, body.len() as i64);
        out.extend_from_slice(&body);
    }

    /// A record's key and value (`None` value: tombstone).
    pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

    /// A batch of keyed records (`None` value: tombstone), compressed with `codec`, base
    /// timestamp `base_timestamp_ms`, not idempotent.
    pub fn keyed(records: &[KeyValue<'_>], codec: u8, base_timestamp_ms: i64) -> Vec<u8> {
        let count = records.len() as i32;
        assert!(count > 0, "a batch holds at least one record");
        let mut plain = Vec::new();
        for (i, (k, v)) in records.iter().enumerate() {
            record(&mut plain, i as i32, *k, *v);
        }
        let section = compress(codec, &plain).expect("in-memory compression succeeds");
        let mut out = vec![0u8; BATCH_HEADER_BYTES];
        out.extend_from_slice(&section);
        let len = (out.len() - crate::batch::LOG_OVERHEAD) as i32;
        out[8..12].copy_from_slice(&len.to_be_bytes());
        out[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        out[16] = 2;
        out[21..23].copy_from_slice(&(codec as i16).to_be_bytes());
        out[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        out[27..35].copy_from_slice(&base_timestamp_ms.to_be_bytes());
        out[35..43].copy_from_slice(&(base_timestamp_ms + count as i64 - 1).to_be_bytes());
        out[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        out[51..53].copy_from_slice(&(-1i16).to_be_bytes());
        out[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        out[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&out[ATTRIBUTES..]);
        out[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMIT: usize = 1 << 20;

    #[test]
    fn every_codec_round_trips_keys_and_tombstones() {
        for codec in [CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
            let b = build::keyed(
                &[
                    (Some(b"a"), Some(b"1")),
                    (Some(b"b"), None),
                    (None, Some(b"x")),
                ],
                codec,
                500,
            );
            let view = BatchView::parse_checked(&b).expect("valid batch");
            assert_eq!(view.compression_codec(), codec);
            let section = record_section(&view, LIMIT).expect("inflates");
            let recs = parse_records(&section, view.record_count()).expect("parses");
            assert_eq!(recs.len(), 3);
            assert_eq!(recs[0].key, Some(&b"a"[..]));
            assert!(!recs[0].value_is_null);
            assert!(recs[1].value_is_null);
            assert_eq!(recs[2].key, None);
            assert_eq!(recs[2].offset_delta, 2);
            assert!(!all_records_keyed(&view, LIMIT).expect("inflates"));
        }
    }

    #[test]
    fn rebuilt_batch_keeps_offsets_and_gets_a_fresh_crc() {
        for codec in [CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
            let b = build::keyed(
                &[
                    (Some(b"a"), Some(b"1")),
                    (Some(b"b"), Some(b"2")),
                    (Some(b"c"), Some(b"3")),
                ],
                codec,
                7,
            );
            let view = BatchView::parse_checked(&b).expect("valid");
            let section = record_section(&view, LIMIT).expect("inflates");
            let recs = parse_records(&section, 3).expect("parses");
            let out = rebuild_batch(&view, &[recs[1]]).expect("rebuilds");
            let v2 = BatchView::parse_checked(&out).expect("CRC valid after rebuild");
            assert_eq!(v2.record_count(), 1);
            assert_eq!(v2.last_offset_delta(), 2, "last offset delta kept");
            assert_eq!(v2.base_timestamp(), 7);
            assert_eq!(v2.compression_codec(), codec);
            let s2 = record_section(&v2, LIMIT).expect("inflates");
            let r2 = parse_records(&s2, 1).expect("parses");
            assert_eq!(r2[0].key, Some(&b"b"[..]));
            assert_eq!(r2[0].offset_delta, 1);
            let empty = rebuild_batch(&view, &[]).expect("rebuilds");
            let v3 = BatchView::parse_checked(&empty).expect("empty batch valid");
            assert_eq!(v3.record_count(), 0);
            assert_eq!(v3.compression_codec(), CODEC_NONE);
            assert_eq!(v3.last_offset(), view.last_offset());
        }
    }

    #[test]
    fn decompression_bomb_is_refused() {
        let big = vec![0u8; 4 << 20];
        for codec in [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
            let c = compress(codec, &big).expect("compresses");
            assert_eq!(
                decompress(codec, &c, 1 << 20),
                Err(RecordError::TooLarge { limit: 1 << 20 })
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_record_parser(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            count in -2i32..50,
            codec in 0u8..6,
        ) {
            let _ = parse_records(&data, count);
            let _ = decompress(codec, &data, LIMIT);
        }
    }
}
