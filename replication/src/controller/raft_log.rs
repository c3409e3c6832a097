//! The controller's Raft log on disk, through the engine's storage (so the simulation's
//! crash model applies to it): entries live in a `PartitionLog` (entry index i at offset
//! i - 1, one Kafka batch per entry holding the protobuf-encoded `Entry`), as KRaft keeps
//! `__cluster_metadata` in an ordinary log; Raft's hard state (term, vote, commit) lives in
//! a small rkyv + crc32c file replaced atomically.
//!
//! Compaction (KRaft's snapshots): the metadata state at an applied index is written to a
//! snapshot file (rkyv + crc32c, replaced atomically) and the log before it is deleted
//! (`delete_records_before`). A snapshot received from the leader replaces the whole log:
//! the file names the new log's base (entry index = base + offset + 1), the old log
//! directory is removed, and a fresh one starts at the snapshot's index.
//!
//! Owned by the shard that runs the controller; this broker's copy of the quorum's log.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
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
const SNAPSHOT_FILE: &str = "metadata-snapshot.ckpt";
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
    #[error("metadata log is full ({RAFT_LOG_ENTRIES_MAX} entries and no snapshot compacts it)")]
    Full,
    #[error("raft entry {index} is below the log's base {base} (already compacted)")]
    BelowBase { index: u64, base: u64 },
    #[error("raft entry of {0} bytes exceeds the limit")]
    EntryTooLarge(usize),
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
struct HardStateFile {
    term: u64,
    vote: u64,
    commit: u64,
}

/// The snapshot file: Raft snapshot metadata, the framed metadata image, and where the
/// log continues.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct SnapshotFile {
    index: u64,
    term: u64,
    voters: Vec<u64>,
    /// The log directory in use: entry index = log_base + offset + 1.
    log_base: u64,
    /// The log directory this one replaced (removed on open if a crash left it).
    previous_log_base: u64,
    image: Vec<u8>,
}

/// The durable Raft log and hard state of one controller voter.
pub struct RaftLog<S: Storage> {
    storage: S,
    dir: PathBuf,
    clock: Rc<dyn Clock>,
    log: PartitionLog<S>,
    base: u64,
    snapshot: Option<Snapshot>,
}

fn log_dir(dir: &Path, base: u64) -> PathBuf {
    if base == 0 {
        dir.join(format!("{METADATA_TOPIC}-0"))
    } else {
        dir.join(format!("{METADATA_TOPIC}-0.from-{base}"))
    }
}

async fn open_log<S: Storage>(
    storage: &S,
    dir: PathBuf,
    clock: Rc<dyn Clock>,
) -> Result<PartitionLog<S>, RaftLogError>
where
    S::File: Clone,
{
    Ok(PartitionLog::open(
        storage.clone(),
        dir,
        TopicPartition::new(METADATA_TOPIC, 0),
        LogConfig {
            segment_bytes: 16 << 20,
            retention_ms: -1,
            ..LogConfig::default()
        },
        Durability::GroupCommit,
        clock,
    )
    .await?)
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
        let path = dir.join(SNAPSHOT_FILE);
        let file = read_small_file(&storage, &path)
            .await
            .map_err(|source| RaftLogError::Io {
                path: path.clone(),
                source,
            })?;
        let (base, snapshot) =
            match file {
                None => (0, None),
                Some(bytes) => {
                    // A damaged snapshot cannot be rebuilt from the (compacted) log: refuse.
                    let f: SnapshotFile = wire::decode(FrameKind::MetadataSnapshot, &bytes)
                        .map_err(|e| RaftLogError::Corrupt {
                            offset: -1,
                            detail: format!("snapshot file: {e}"),
                        })?;
                    if f.previous_log_base != f.log_base {
                        // The install that wrote this file may have crashed before removing it.
                        let old = log_dir(&dir, f.previous_log_base);
                        storage
                            .remove_dir_all(&old)
                            .await
                            .map_err(|source| RaftLogError::Io { path: old, source })?;
                    }
                    let mut snap = Snapshot {
                        data: f.image.into(),
                        ..Default::default()
                    };
                    let meta = snap.mut_metadata();
                    meta.index = f.index;
                    meta.term = f.term;
                    meta.set_conf_state(ConfState::from((f.voters, vec![])));
                    (f.log_base, Some(snap))
                }
            };
        let log = open_log(&storage, log_dir(&dir, base), clock.clone()).await?;
        Ok(RaftLog {
            storage,
            dir,
            clock,
            log,
            base,
            snapshot,
        })
    }

    /// The latest durable snapshot (with its data), if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Index of the first entry the log holds (or would hold next, when empty).
    pub fn first_index(&self) -> u64 {
        self.base + self.log.log_start_offset().0 as u64 + 1
    }

    /// Writes `snap` (taken locally at an applied index) durably, then deletes the log
    /// entries up to and including `compact_through`. A crash between the two leaves a
    /// longer log than needed, never a gap.
    pub async fn save_snapshot(
        &mut self,
        snap: &Snapshot,
        compact_through: u64,
    ) -> Result<(), RaftLogError> {
        self.write_snapshot_file(snap, self.base, self.base).await?;
        self.snapshot = Some(snap.clone());
        if compact_through >= self.first_index() {
            let end = self.base + self.log.log_end_offset().0 as u64;
            let through = compact_through.min(end);
            self.log
                .delete_records_before(Offset((through - self.base) as i64))
                .await?;
        }
        Ok(())
    }

    /// Replaces the log with a snapshot received from the leader: the snapshot file (naming
    /// a new, empty log starting after the snapshot's index) becomes durable first, then the
    /// old log directory goes. Resolves when durable.
    pub async fn install_snapshot(&mut self, snap: &Snapshot) -> Result<(), RaftLogError> {
        let index = snap.get_metadata().index;
        let old_base = self.base;
        if index == old_base {
            // The log already starts here: just drop what it holds.
            self.write_snapshot_file(snap, old_base, old_base).await?;
            self.log.truncate_to(Offset(0)).await?;
        } else {
            let fresh = log_dir(&self.dir, index);
            // Left over from an install at this index that crashed before its file.
            self.storage
                .remove_dir_all(&fresh)
                .await
                .map_err(|source| RaftLogError::Io {
                    path: fresh.clone(),
                    source,
                })?;
            self.write_snapshot_file(snap, index, old_base).await?;
            self.log.remove().await?;
            self.log = open_log(&self.storage, fresh, self.clock.clone()).await?;
            self.base = index;
        }
        self.snapshot = Some(snap.clone());
        Ok(())
    }

    async fn write_snapshot_file(
        &self,
        snap: &Snapshot,
        log_base: u64,
        previous_log_base: u64,
    ) -> Result<(), RaftLogError> {
        let meta = snap.get_metadata();
        let file = SnapshotFile {
            index: meta.index,
            term: meta.term,
            voters: meta.get_conf_state().voters.clone(),
            log_base,
            previous_log_base,
            image: snap.data.to_vec(),
        };
        let bytes = wire::encode(FrameKind::MetadataSnapshot, &file);
        let path = self.dir.join(SNAPSHOT_FILE);
        replace_small_file(&self.storage, &path, &bytes)
            .await
            .map_err(|source| RaftLogError::Io { path, source })
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
                let entry = decode_entry(&view)?;
                if entry.index != self.base + view.base_offset().0 as u64 + 1 {
                    return Err(RaftLogError::Corrupt {
                        offset: view.base_offset().0,
                        detail: format!(
                            "entry index {} in log based at {}",
                            entry.index, self.base
                        ),
                    });
                }
                entries.push(entry);
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
                        commit: f.commit.min(
                            entries
                                .last()
                                .map_or(0, |e| e.index)
                                .max(self.snapshot.as_ref().map_or(0, |s| s.get_metadata().index)),
                        ),
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
        if first.index <= self.base {
            return Err(RaftLogError::BelowBase {
                index: first.index,
                base: self.base,
            });
        }
        let at = Offset((first.index - self.base - 1) as i64);
        if at < self.log.log_end_offset() {
            self.log.truncate_to(at).await?;
        }
        let last = entries.last().map_or(0, |e| e.index);
        if (last + 1).saturating_sub(self.first_index()) as usize > RAFT_LOG_ENTRIES_MAX {
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;
    use sluice_engine::clock::ManualClock;
    use sluice_engine::io::sim::{CrashMode, SimStorage};

    fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
        (from..=to)
            .map(|index| Entry {
                index,
                term,
                data: format!("entry {index}").into_bytes().into(),
                ..Default::default()
            })
            .collect()
    }

    fn snapshot(index: u64, term: u64) -> Snapshot {
        let mut s = Snapshot {
            data: b"metadata image".to_vec().into(),
            ..Default::default()
        };
        s.mut_metadata().index = index;
        s.mut_metadata().term = term;
        s.mut_metadata()
            .set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
        s
    }

    fn open(disk: &SimStorage) -> Result<RaftLog<SimStorage>, RaftLogError> {
        block_on(RaftLog::open(
            disk.clone(),
            PathBuf::from("/controller"),
            Rc::new(ManualClock::new(0)),
        ))
    }

    #[test]
    fn a_local_snapshot_compacts_the_log_and_reopens_with_the_tail() {
        let disk = SimStorage::new();
        let mut log = open(&disk).expect("open");
        block_on(log.append(&entries(1, 100, 1))).expect("append");
        block_on(log.save_snapshot(&snapshot(80, 1), 70)).expect("snapshot");
        assert_eq!(log.first_index(), 71);
        drop(log);
        disk.crash(1, CrashMode::DropUnsynced);
        let log = open(&disk).expect("reopen");
        assert_eq!(log.snapshot().map(|s| s.get_metadata().index), Some(80));
        assert_eq!(log.first_index(), 71);
        let (tail, _) = block_on(log.load()).expect("load");
        assert_eq!(tail.first().map(|e| e.index), Some(71));
        assert_eq!(tail.last().map(|e| e.index), Some(100));
        // Entries below the base cannot be rewritten.
        let mut log = log;
        block_on(log.install_snapshot(&snapshot(120, 2))).expect("install");
        assert!(matches!(
            block_on(log.append(&entries(100, 100, 2))),
            Err(RaftLogError::BelowBase { .. })
        ));
        block_on(log.append(&entries(121, 125, 2))).expect("append after the snapshot");
    }

    #[test]
    fn a_crash_anywhere_in_a_snapshot_install_leaves_the_old_log_or_the_new_snapshot() {
        let mut outcomes = (0, 0);
        for failing_write in 0..16 {
            let disk = SimStorage::new();
            let mut log = open(&disk).expect("open");
            block_on(log.append(&entries(1, 20, 1))).expect("append");
            disk.fail_writes_after(failing_write);
            let _ = block_on(log.install_snapshot(&snapshot(50, 2)));
            drop(log);
            disk.fail_writes_after(u64::MAX);
            disk.crash(failing_write, CrashMode::TearTail);
            let log = open(&disk)
                .unwrap_or_else(|e| panic!("reopen after failing write {failing_write}: {e}"));
            let (es, hs) = block_on(log.load()).expect("load");
            assert_eq!(hs.commit, 0);
            match log.snapshot() {
                Some(s) => {
                    assert_eq!(s.get_metadata().index, 50);
                    assert!(es.is_empty(), "the old log is gone");
                    assert_eq!(log.first_index(), 51);
                    block_on(log.append(&entries(51, 52, 2))).expect("append");
                    outcomes.1 += 1;
                }
                None => {
                    assert_eq!(es, entries(1, 20, 1), "the old log is intact");
                    outcomes.0 += 1;
                }
            }
            // Only the live log directory remains.
            let dirs: std::collections::BTreeSet<PathBuf> = disk
                .paths()
                .into_iter()
                .filter_map(|p| {
                    p.ancestors()
                        .find(|a| {
                            a.file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| n.starts_with(METADATA_TOPIC))
                        })
                        .map(Path::to_path_buf)
                })
                .collect();
            assert!(dirs.len() <= 1, "{dirs:?}");
        }
        assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
    }
}
