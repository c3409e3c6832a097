//! The controller's Raft log on disk, through the engine's storage (so the simulation's
//! crash model applies to it): entries live in a `PartitionLog` (entry index i at offset
//! i - 1, one Kafka batch per entry holding the protobuf-encoded `Entry`), as KRaft keeps
//! `__cluster_metadata` in an ordinary log; Raft's hard state (term, vote, commit) lives in
//! a small rkyv + crc32c file replaced atomically.
//!
//! Owned by the shard that runs the controller; this broker's copy of the quorum's log.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use protobuf::Message as _;
use raft::eraftpb::{Entry, HardState};
use rkyv::{Archive, Deserialize, Serialize};
use sluice_engine::batch::{batches, build, BatchView};
use sluice_engine::clock::Clock;
use sluice_engine::io::Storage;
use sluice_engine::log::small_file::{read_small_file, replace_small_file};
use sluice_engine::log::{AppendOptions, LogError, PartitionLog};
use sluice_engine::{Durability, LeaderEpoch, LogConfig, Offset, TopicPartition};

use crate::limits::{RAFT_ENTRY_BYTES_MAX, RAFT_LOG_ENTRIES_MAX};
use crate::wire::{self, FrameKind};

const HARD_STATE_FILE: &str = "raft-hard-state.ckpt";
pub const METADATA_TOPIC: &str = "__cluster_metadata";

#[derive(Debug, thiserror::Error)]
pub enum RaftLogError {
    #[error("metadata log: {0}")]
    Log(#[from] LogError),
    #[error("metadata log I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata log entry at offset {offset} is damaged: {detail}")]
    Corrupt { offset: i64, detail: String },
    #[error(
        "metadata log is full ({RAFT_LOG_ENTRIES_MAX} entries; compaction is not written yet)"
    )]
    Full,
    #[error("raft entry of {0} bytes exceeds the limit")]
    EntryTooLarge(usize),
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
struct HardStateFile {
    term: u64,
    vote: u64,
    commit: u64,
}

/// The durable Raft log and hard state of one controller voter.
pub struct RaftLog<S: Storage> {
    storage: S,
    dir: PathBuf,
    log: PartitionLog<S>,
}

impl<S: Storage> RaftLog<S>
where
    S::File: Clone,
{
    pub async fn open(
        storage: S,
        dir: PathBuf,
        clock: Rc<dyn Clock>,
    ) -> Result<Self, RaftLogError> {
        let log = PartitionLog::open(
            storage.clone(),
            dir.join(format!("{METADATA_TOPIC}-0")),
            TopicPartition::new(METADATA_TOPIC, 0),
            LogConfig {
                segment_bytes: 16 << 20,
                retention_ms: -1,
                ..LogConfig::default()
            },
            Durability::GroupCommit,
            clock,
        )
        .await?;
        Ok(RaftLog { storage, dir, log })
    }

    fn hard_state_path(&self) -> PathBuf {
        self.dir.join(HARD_STATE_FILE)
    }

    /// Every entry and the hard state, for recovery.
    pub async fn load(&self) -> Result<(Vec<Entry>, HardState), RaftLogError> {
        let mut entries = Vec::new();
        let mut from = self.log.log_start_offset();
        let end = self.log.log_end_offset();
        while from < end {
            let r = self.log.read(from, 4 << 20).await?;
            if r.bytes.is_empty() {
                break;
            }
            for view in batches(&r.bytes) {
                let view = view.map_err(|e| RaftLogError::Corrupt {
                    offset: from.0,
                    detail: e.to_string(),
                })?;
                entries.push(decode_entry(&view)?);
                from = view.last_offset().next();
            }
        }
        let hs = match read_small_file(&self.storage, &self.hard_state_path())
            .await
            .map_err(|source| RaftLogError::Io {
                path: self.hard_state_path(),
                source,
            })? {
            Some(bytes) => match wire::decode::<HardStateFile>(FrameKind::RaftHardState, &bytes) {
                Ok(f) => {
                    // Never claim commits past what the log holds (the hard state file and
                    // the log are synced separately).
                    HardState {
                        term: f.term,
                        vote: f.vote,
                        commit: f.commit.min(entries.last().map_or(0, |e| e.index)),
                        ..Default::default()
                    }
                }
                Err(e) => {
                    // Losing term and vote could let this voter vote twice in a term: refuse.
                    return Err(RaftLogError::Corrupt {
                        offset: -1,
                        detail: format!("hard state: {e}"),
                    });
                }
            },
            None => HardState::default(),
        };
        Ok((entries, hs))
    }

    /// Appends `entries` durably, first cutting any conflicting suffix (Raft overwrites
    /// uncommitted entries a new leader does not have). Resolves when durable.
    pub async fn append(&self, entries: &[Entry]) -> Result<(), RaftLogError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let at = Offset(first.index as i64 - 1);
        if at < self.log.log_end_offset() {
            self.log.truncate_to(at).await?;
        }
        let last = entries.last().map_or(0, |e| e.index);
        if last as usize > RAFT_LOG_ENTRIES_MAX {
            return Err(RaftLogError::Full);
        }
        let mut records = Vec::new();
        for e in entries {
            let bytes = e
                .write_to_bytes()
                .expect("encoding a protobuf message into a Vec cannot fail");
            if bytes.len() > RAFT_ENTRY_BYTES_MAX {
                return Err(RaftLogError::EntryTooLarge(bytes.len()));
            }
            records.extend_from_slice(&build::batch_with(&[&bytes], 0));
        }
        let info = self
            .log
            .append(
                &records,
                AppendOptions {
                    leader_epoch: LeaderEpoch(first.term.min(i32::MAX as u64) as i32),
                    batch_bytes_max: sluice_engine::limits::BATCH_BYTES_MAX,
                },
            )
            .await?;
        assert_eq!(
            info.base_offset, at,
            "raft entry indexes map onto log offsets one to one"
        );
        Ok(())
    }

    /// Replaces the hard state file; durable when it resolves.
    pub async fn save_hard_state(&self, hs: &HardState) -> Result<(), RaftLogError> {
        let bytes = wire::encode(
            FrameKind::RaftHardState,
            &HardStateFile {
                term: hs.term,
                vote: hs.vote,
                commit: hs.commit,
            },
        );
        replace_small_file(&self.storage, &self.hard_state_path(), &bytes)
            .await
            .map_err(|source| RaftLogError::Io {
                path: self.hard_state_path(),
                source,
            })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn decode_entry(view: &BatchView<'_>) -> Result<Entry, RaftLogError> {
    let corrupt = |detail: String| RaftLogError::Corrupt {
        offset: view.base_offset().0,
        detail,
    };
    // One uncompressed record: length, attributes, timestamp delta, offset delta, key
    // (null), value. Parse just that.
    let body = view
        .bytes()
        .get(sluice_engine::limits::BATCH_HEADER_BYTES..)
        .ok_or_else(|| corrupt("short batch".into()))?;
    let mut at = 0usize;
    let next = |at: &mut usize| read_varint(body, at).ok_or_else(|| corrupt("bad varint".into()));
    let _record_len = next(&mut at)?;
    at += 1; // attributes
    let _timestamp_delta = next(&mut at)?;
    let _offset_delta = next(&mut at)?;
    let key_len = next(&mut at)?;
    if key_len > 0 {
        at += key_len as usize;
    }
    let value_len = next(&mut at)?;
    let value_len =
        usize::try_from(value_len).map_err(|_| corrupt("null or negative value".into()))?;
    let value = body
        .get(at..at.saturating_add(value_len))
        .ok_or_else(|| corrupt("value past the batch".into()))?;
    Entry::parse_from_bytes(value).map_err(|e| corrupt(e.to_string()))
}

/// Kafka's zigzag varint at `*at`; advances it.
fn read_varint(b: &[u8], at: &mut usize) -> Option<i64> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        z |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    None
}
