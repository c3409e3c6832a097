//! Sluice's inter-broker frames: `[magic u32][version u16][kind u16][len u32][crc32c u32]`
//! then an rkyv archive of `len` bytes. The length is checked against
//! [`FRAME_BYTES_MAX`] before anything is allocated, the crc32c over the archive before it
//! is looked at, and the archive is validated (bytecheck) before it is used.

use rkyv::rancor;
use rkyv::{Archive, Deserialize, Serialize};

use crate::limits::FRAME_BYTES_MAX;

pub const FRAME_MAGIC: u32 = 0x534c_5250; // "SLRP"
pub const FRAME_VERSION: u16 = 1;
pub const FRAME_HEADER_BYTES: usize = 16;

/// What a frame carries, so a reader knows which archive type to validate against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum FrameKind {
    /// A [`crate::partition::ReplicaMessage`].
    Replica = 1,
    /// A Raft message between controller voters (rust-protobuf bytes inside).
    Raft = 2,
    /// A [`crate::controller::MetadataCommand`] (a Raft entry's data, or a broker's request
    /// to the active controller).
    ControllerRequest = 3,
    /// The controller's Raft hard state file.
    RaftHardState = 4,
    /// A [`crate::controller::image::StateImage`]: the metadata state at a Raft index (the
    /// data of a Raft snapshot).
    MetadataImage = 5,
    /// The controller's snapshot file (snapshot metadata + image).
    MetadataSnapshot = 6,
    /// A [`crate::controller::BrokerHeartbeat`]: a broker tells the controller voters it is
    /// alive and where it listens.
    Heartbeat = 7,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame shorter than its header ({0} bytes)")]
    Truncated(usize),
    #[error("bad frame magic {0:#x}")]
    Magic(u32),
    #[error("unsupported frame version {0}")]
    Version(u16),
    #[error("frame kind {found}, expected {expected}")]
    Kind { expected: u16, found: u16 },
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("frame checksum mismatch")]
    Crc,
    #[error("frame payload invalid: {0}")]
    Invalid(String),
}

/// Reads the header of a frame at the start of `bytes`: its total length (header included)
/// once the declared length is within bounds. A stream reader calls this on the first
/// [`FRAME_HEADER_BYTES`] to know how much more to read.
pub fn frame_len(bytes: &[u8]) -> Result<usize, FrameError> {
    if bytes.len() < FRAME_HEADER_BYTES {
        return Err(FrameError::Truncated(bytes.len()));
    }
    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != FRAME_MAGIC {
        return Err(FrameError::Magic(magic));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FRAME_VERSION {
        return Err(FrameError::Version(version));
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let total = FRAME_HEADER_BYTES + len;
    if total > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge(total));
    }
    Ok(total)
}

/// Frames raw payload bytes.
pub fn encode_raw(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    assert!(
        FRAME_HEADER_BYTES + payload.len() <= FRAME_BYTES_MAX,
        "callers bound what they frame (APPEND_BYTES_MAX, RAFT_ENTRY_BYTES_MAX)"
    );
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    out.extend_from_slice(&FRAME_VERSION.to_le_bytes());
    out.extend_from_slice(&(kind as u16).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks header, bounds and checksum; returns the payload.
pub fn decode_raw(kind: FrameKind, bytes: &[u8]) -> Result<&[u8], FrameError> {
    let total = frame_len(bytes)?;
    let found = u16::from_le_bytes([bytes[6], bytes[7]]);
    if found != kind as u16 {
        return Err(FrameError::Kind {
            expected: kind as u16,
            found,
        });
    }
    let payload = bytes
        .get(FRAME_HEADER_BYTES..total)
        .ok_or(FrameError::Truncated(bytes.len()))?;
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if crc32c::crc32c(payload) != crc {
        return Err(FrameError::Crc);
    }
    Ok(payload)
}

/// Frames one rkyv-serializable message.
pub fn encode<T>(kind: FrameKind, msg: &T) -> Vec<u8>
where
    T: for<'a> Serialize<
        rkyv::api::high::HighSerializer<
            rkyv::util::AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rancor::Error,
        >,
    >,
{
    let archive = rkyv::to_bytes::<rancor::Error>(msg)
        .expect("serializing plain data into a Vec cannot fail");
    encode_raw(kind, &archive)
}

/// Validates a frame and its archive, then deserializes it.
pub fn decode<T>(kind: FrameKind, bytes: &[u8]) -> Result<T, FrameError>
where
    T: Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
        + Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    let payload = decode_raw(kind, bytes)?;
    // The archive's root sits at its end and rkyv wants aligned access unless built with
    // `unaligned` (the workspace enables it), so the payload is validated where it lies.
    rkyv::from_bytes::<T, rancor::Error>(payload).map_err(|e| FrameError::Invalid(e.to_string()))
}
