//! The high-watermark checkpoint of one partition replica (Kafka's
//! replication-offset-checkpoint, per partition here): the last high watermark this replica
//! knew, so that after a restart consumers see what was committed at once instead of
//! nothing until the followers ack again.
//!
//! Written lazily (every [`crate::limits::HW_CHECKPOINT_INTERVAL_MS`] when it moved, and on
//! a clean close) by the driver, never with a value above what the replica's high watermark
//! was, which is never above what every in-sync replica held durably. On start the replica
//! takes min(checkpoint, recovered log end), never below its log start. Owned by the
//! partition's owning shard, next to its log.
//!
//! `high-watermark.ckpt` in the partition directory: one rkyv archive
//! (`[len u64][crc32c u32][archive]`, versioned), replaced atomically (temp file, fdatasync,
//! rename, directory sync), like the epoch cache.

use std::io;
use std::path::Path;

use rkyv::rancor;
use rkyv::{Archive, Deserialize, Serialize};
use sluice_engine::io::Storage;
use sluice_engine::log::small_file::{read_small_file, replace_small_file};
use sluice_engine::Offset;

use crate::partition::checked_file::{self, EnvelopeError};

pub const HW_CHECKPOINT_FILE: &str = "high-watermark.ckpt";
const HW_CHECKPOINT_MAGIC: u32 = 0x534c_4857; // "SLHW"
const HW_CHECKPOINT_VERSION: u16 = 1;

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct HwCheckpointFile {
    magic: u32,
    version: u16,
    high_watermark: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HwCheckpointError {
    #[error("high watermark checkpoint truncated")]
    Truncated,
    #[error("high watermark checkpoint checksum mismatch")]
    Crc,
    #[error("high watermark checkpoint invalid: {0}")]
    Invalid(String),
}

pub fn encode(high_watermark: Offset) -> Vec<u8> {
    let file = HwCheckpointFile {
        magic: HW_CHECKPOINT_MAGIC,
        version: HW_CHECKPOINT_VERSION,
        high_watermark: high_watermark.0,
    };
    let archive = rkyv::to_bytes::<rancor::Error>(&file)
        .expect("serializing plain data into a Vec cannot fail");
    checked_file::seal(&archive)
}

pub fn decode(bytes: &[u8]) -> Result<Offset, HwCheckpointError> {
    let body = checked_file::open(bytes).map_err(|e| match e {
        EnvelopeError::Truncated => HwCheckpointError::Truncated,
        EnvelopeError::Crc => HwCheckpointError::Crc,
    })?;
    let file = rkyv::from_bytes::<HwCheckpointFile, rancor::Error>(body)
        .map_err(|e| HwCheckpointError::Invalid(e.to_string()))?;
    if file.magic != HW_CHECKPOINT_MAGIC || file.version != HW_CHECKPOINT_VERSION {
        return Err(HwCheckpointError::Invalid("magic or version".into()));
    }
    if file.high_watermark < 0 {
        return Err(HwCheckpointError::Invalid("negative offset".into()));
    }
    Ok(Offset(file.high_watermark))
}

/// The checkpointed high watermark, or `None` when there is none or it is damaged (the
/// replica then starts at its log start, as before checkpoints existed).
pub async fn load<S: Storage>(storage: &S, dir: &Path) -> io::Result<Option<Offset>> {
    let Some(bytes) = read_small_file(storage, &dir.join(HW_CHECKPOINT_FILE)).await? else {
        return Ok(None);
    };
    match decode(&bytes) {
        Ok(hw) => Ok(Some(hw)),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "high watermark checkpoint damaged; ignoring it");
            Ok(None)
        }
    }
}

/// Replaces the file atomically; durable when it resolves.
pub async fn persist<S: Storage>(
    storage: &S,
    dir: &Path,
    high_watermark: Offset,
) -> io::Result<()> {
    replace_small_file(
        storage,
        &dir.join(HW_CHECKPOINT_FILE),
        &encode(high_watermark),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;
    use sluice_engine::io::sim::{CrashMode, SimStorage};
    use std::path::PathBuf;

    #[test]
    fn round_trips_and_damage_is_refused() {
        let bytes = encode(Offset(12_345));
        assert_eq!(decode(&bytes), Ok(Offset(12_345)));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x04;
            assert!(decode(&bad).is_err(), "flip at byte {i} accepted");
        }
        assert_eq!(decode(&bytes[..5]), Err(HwCheckpointError::Truncated));
        assert!(decode(&encode(Offset(-1))).is_err());
    }

    #[test]
    fn persisted_value_survives_a_crash_and_a_damaged_file_reads_as_none() {
        let storage = SimStorage::new();
        let dir = PathBuf::from("/data/p-0");
        block_on(storage.create_dir_all(&dir)).expect("sim storage");
        assert_eq!(block_on(load(&storage, &dir)).expect("sim storage"), None);
        block_on(persist(&storage, &dir, Offset(7))).expect("sim storage");
        block_on(persist(&storage, &dir, Offset(9))).expect("sim storage");
        storage.crash(1, CrashMode::TearTail);
        assert_eq!(
            block_on(load(&storage, &dir)).expect("sim storage"),
            Some(Offset(9))
        );
        storage.corrupt(&dir.join(HW_CHECKPOINT_FILE), 14, &[0xff, 0xff]);
        assert_eq!(block_on(load(&storage, &dir)).expect("sim storage"), None);
    }
}
