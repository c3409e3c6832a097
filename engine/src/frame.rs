//! Sluice's per-batch frame header: an rkyv archive, versioned and crc32c-checksummed,
//! written in front of every stored Kafka batch and read in place after validation.
//!
//! On disk a frame is `[archived FrameHeader][crc32c(archive) u32 LE][batch bytes]`.
//! The header's `prefix_crc` covers the first bytes of the batch that Kafka's own CRC leaves
//! out (base offset, length, leader epoch, magic, CRC field), so header CRC + prefix CRC +
//! Kafka's CRC together cover every stored byte without hashing the payload twice.

use rkyv::rancor;
use rkyv::{Archive, Deserialize, Serialize};

use crate::batch::{BatchView, CRC_UNCOVERED_PREFIX};

/// "SLFB": Sluice frame, batch.
pub const FRAME_MAGIC: u32 = 0x534c_4642;
pub const FRAME_VERSION: u16 = 1;

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct FrameHeader {
    pub magic: u32,
    pub version: u16,
    pub flags: u16,
    pub base_offset: i64,
    pub last_offset_delta: i32,
    pub batch_bytes: u32,
    pub max_timestamp: i64,
    pub prefix_crc: u32,
}

/// Bytes of the archived header (fixed: primitives only, unaligned archive format).
pub const FRAME_ARCHIVE_BYTES: usize = std::mem::size_of::<ArchivedFrameHeader>();
/// Bytes in front of every batch on disk.
pub const FRAME_HEADER_BYTES: usize = FRAME_ARCHIVE_BYTES + 4;

const _: () = assert!(FRAME_ARCHIVE_BYTES == 36);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame header truncated")]
    Truncated,
    #[error("frame header checksum mismatch")]
    HeaderCrc,
    #[error("frame header failed validation: {0}")]
    Invalid(String),
    #[error("frame magic {0:#x} / version {1} not supported")]
    Version(u32, u16),
    #[error("batch prefix checksum mismatch")]
    PrefixCrc,
    #[error("frame says base offset {frame}, batch says {batch}")]
    OffsetMismatch { frame: i64, batch: i64 },
}

impl FrameHeader {
    /// The header for a batch already stamped with its final base offset and epoch.
    pub fn for_batch(batch: &BatchView<'_>) -> FrameHeader {
        FrameHeader {
            magic: FRAME_MAGIC,
            version: FRAME_VERSION,
            flags: 0,
            base_offset: batch.base_offset().0,
            last_offset_delta: batch.last_offset_delta(),
            batch_bytes: batch.len() as u32,
            max_timestamp: batch.max_timestamp(),
            prefix_crc: crc32c::crc32c(&batch.bytes()[..CRC_UNCOVERED_PREFIX]),
        }
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn frame_bytes(&self) -> usize {
        FRAME_HEADER_BYTES + self.batch_bytes as usize
    }

    /// Writes the archived header and its checksum into `out[..FRAME_HEADER_BYTES]`.
    pub fn encode_into(&self, out: &mut [u8]) {
        // Serialized straight into the frame: no allocation per batch on the append path.
        let written = rkyv::api::high::to_bytes_in::<_, rancor::Error>(
            self,
            rkyv::ser::writer::Buffer::from(&mut out[..FRAME_ARCHIVE_BYTES]),
        )
        .expect("a struct of primitives fits its fixed-size archive")
        .len();
        assert_eq!(written, FRAME_ARCHIVE_BYTES, "frame archive size is fixed");
        let crc = crc32c::crc32c(&out[..FRAME_ARCHIVE_BYTES]);
        out[FRAME_ARCHIVE_BYTES..FRAME_HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
    }

    /// Validates the checksum and the archive in place, then the version.
    pub fn decode(bytes: &[u8]) -> Result<FrameHeader, FrameError> {
        if bytes.len() < FRAME_HEADER_BYTES {
            return Err(FrameError::Truncated);
        }
        let archive = &bytes[..FRAME_ARCHIVE_BYTES];
        let mut stored = [0u8; 4];
        stored.copy_from_slice(&bytes[FRAME_ARCHIVE_BYTES..FRAME_HEADER_BYTES]);
        if crc32c::crc32c(archive) != u32::from_le_bytes(stored) {
            return Err(FrameError::HeaderCrc);
        }
        let view = rkyv::access::<ArchivedFrameHeader, rancor::Error>(archive)
            .map_err(|e| FrameError::Invalid(e.to_string()))?;
        let header = FrameHeader {
            magic: view.magic.to_native(),
            version: view.version.to_native(),
            flags: view.flags.to_native(),
            base_offset: view.base_offset.to_native(),
            last_offset_delta: view.last_offset_delta.to_native(),
            batch_bytes: view.batch_bytes.to_native(),
            max_timestamp: view.max_timestamp.to_native(),
            prefix_crc: view.prefix_crc.to_native(),
        };
        if header.magic != FRAME_MAGIC || header.version != FRAME_VERSION {
            return Err(FrameError::Version(header.magic, header.version));
        }
        if header.last_offset_delta < 0
            || (header.batch_bytes as usize) < crate::limits::BATCH_HEADER_BYTES
        {
            return Err(FrameError::Invalid("impossible batch geometry".into()));
        }
        Ok(header)
    }

    /// Checks that `batch` is the batch this header describes (prefix CRC and offsets).
    /// Kafka's CRC over the rest is checked separately, when needed.
    pub fn check_batch(&self, batch: &[u8]) -> Result<(), FrameError> {
        if batch.len() != self.batch_bytes as usize || batch.len() < CRC_UNCOVERED_PREFIX {
            return Err(FrameError::Truncated);
        }
        if crc32c::crc32c(&batch[..CRC_UNCOVERED_PREFIX]) != self.prefix_crc {
            return Err(FrameError::PrefixCrc);
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&batch[..8]);
        let batch_base = i64::from_be_bytes(b);
        if batch_base != self.base_offset {
            return Err(FrameError::OffsetMismatch {
                frame: self.base_offset,
                batch: batch_base,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build, stamp, TimestampStamp};
    use crate::ids::{LeaderEpoch, Offset};
    use proptest::prelude::*;

    fn framed(base: i64) -> (FrameHeader, Vec<u8>) {
        let mut b = build::batch(3, 20, 1, 1_000);
        stamp(
            &mut b,
            Offset(base),
            LeaderEpoch(2),
            TimestampStamp::CreateTime,
        );
        let view = BatchView::parse_checked(&b).unwrap();
        (FrameHeader::for_batch(&view), b)
    }

    #[test]
    fn header_round_trips_and_checks_its_batch() {
        let (h, b) = framed(77);
        let mut buf = [0u8; FRAME_HEADER_BYTES];
        h.encode_into(&mut buf);
        let back = FrameHeader::decode(&buf).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.last_offset(), 79);
        back.check_batch(&b).unwrap();
    }

    #[test]
    fn zeroed_disk_is_not_a_frame() {
        assert_eq!(FrameHeader::decode(&[0u8; 64]), Err(FrameError::HeaderCrc));
    }

    #[test]
    fn restamped_offset_is_detected_by_prefix_crc() {
        let (h, mut b) = framed(10);
        b[7] ^= 1;
        assert!(h.check_batch(&b).is_err());
    }

    proptest! {
        #[test]
        fn any_header_bit_flip_is_detected(bit in 0usize..(FRAME_HEADER_BYTES * 8)) {
            let (h, _) = framed(5);
            let mut buf = [0u8; FRAME_HEADER_BYTES];
            h.encode_into(&mut buf);
            buf[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(FrameHeader::decode(&buf).is_err());
        }

        #[test]
        fn random_bytes_never_panic_decode(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = FrameHeader::decode(&data);
        }
    }
}
