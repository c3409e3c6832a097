//! The leader-epoch cache of one partition replica: for every leader epoch whose leader
//! appended to this log, the offset of its first batch. It answers KIP-101/279's
//! OffsetForLeaderEpoch ("where does epoch E end in your log?"), which is how a follower or a
//! returning old leader finds where its log diverged from the leader's.
//!
//! Owned by the partition's owning shard, next to the partition's log; this broker's view.
//! Persisted as `leader-epoch.ckpt` in the partition directory: one rkyv archive
//! (`[len u64][crc32c u32][archive]`, versioned), replaced atomically (temp file, fdatasync,
//! rename, directory sync). It must be durable before the first batch of a new epoch is, so
//! the driver persists it before executing the append that follows it.

use std::io;
use std::path::Path;

use rkyv::rancor;
use rkyv::{Archive, Deserialize, Serialize};
use sluice_engine::io::Storage;
use sluice_engine::log::small_file::{read_small_file, replace_small_file};
use sluice_engine::{LeaderEpoch, Offset};

use crate::limits::EPOCH_CACHE_ENTRIES_MAX;
use crate::partition::checked_file::{self, EnvelopeError};

pub const EPOCH_CACHE_FILE: &str = "leader-epoch.ckpt";
const EPOCH_CACHE_MAGIC: u32 = 0x534c_4543; // "SLEC"
const EPOCH_CACHE_VERSION: u16 = 1;

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct EpochCacheFile {
    magic: u32,
    version: u16,
    /// (epoch, start offset), epochs and start offsets strictly increasing.
    entries: Vec<(i32, i64)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EpochCacheError {
    #[error("epoch cache file truncated")]
    Truncated,
    #[error("epoch cache checksum mismatch")]
    Crc,
    #[error("epoch cache invalid: {0}")]
    Invalid(String),
}

/// Where an epoch ends in a log (OffsetForLeaderEpoch's answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEnd {
    /// The largest epoch in the cache at or below the one asked about.
    pub epoch: LeaderEpoch,
    /// The first offset after that epoch's batches: the next epoch's start, or the log end
    /// offset when it is the latest epoch.
    pub end_offset: Offset,
}

/// Epoch -> start offset, epochs and start offsets strictly increasing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<(LeaderEpoch, Offset)>,
}

impl EpochCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn entries(&self) -> &[(LeaderEpoch, Offset)] {
        &self.entries
    }

    pub fn latest(&self) -> Option<(LeaderEpoch, Offset)> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start`. Returns whether the cache changed. An epoch at
    /// or below the latest is ignored (it is already known); entries starting at or after
    /// `start` are replaced (an epoch that never appended anything leaves no trace, as in
    /// Kafka's `truncateAndAppend`).
    pub fn assign(&mut self, epoch: LeaderEpoch, start: Offset) -> bool {
        if let Some((latest, _)) = self.latest() {
            if epoch <= latest {
                return false;
            }
        }
        self.entries.retain(|(_, s)| *s < start);
        self.entries.push((epoch, start));
        if self.entries.len() > EPOCH_CACHE_ENTRIES_MAX {
            self.entries.remove(0);
        }
        self.check();
        true
    }

    /// KIP-279: the largest epoch at or below `epoch` and where it ends, given this log's
    /// end offset. `None` when every known epoch is newer than `epoch` (or none is known).
    pub fn end_for(&self, epoch: LeaderEpoch, log_end: Offset) -> Option<EpochEnd> {
        let i = self.entries.iter().rposition(|(e, _)| *e <= epoch)?;
        let end_offset = self.entries.get(i + 1).map_or(log_end, |(_, s)| *s);
        Some(EpochEnd {
            epoch: self.entries[i].0,
            end_offset: end_offset.min(log_end),
        })
    }

    /// Whether `epoch` itself has an entry.
    pub fn contains(&self, epoch: LeaderEpoch) -> bool {
        self.entries.iter().any(|(e, _)| *e == epoch)
    }

    /// Start offset of the first entry.
    pub fn first_start(&self) -> Option<Offset> {
        self.entries.first().map(|(_, s)| *s)
    }

    /// The log was cut at `end`: forget epochs that start at or after it. Returns whether
    /// the cache changed.
    pub fn truncate_from_end(&mut self, end: Offset) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(_, s)| *s < end);
        before != self.entries.len()
    }

    fn check(&self) {
        for pair in self.entries.windows(2) {
            assert!(
                pair[0].0 < pair[1].0 && pair[0].1 < pair[1].1,
                "epoch cache out of order: {:?}",
                self.entries
            );
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let file = EpochCacheFile {
            magic: EPOCH_CACHE_MAGIC,
            version: EPOCH_CACHE_VERSION,
            entries: self.entries.iter().map(|(e, s)| (e.0, s.0)).collect(),
        };
        let archive = rkyv::to_bytes::<rancor::Error>(&file)
            .expect("serializing plain data into a Vec cannot fail");
        checked_file::seal(&archive)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, EpochCacheError> {
        let body = checked_file::open(bytes).map_err(|e| match e {
            EnvelopeError::Truncated => EpochCacheError::Truncated,
            EnvelopeError::Crc => EpochCacheError::Crc,
        })?;
        let file = rkyv::from_bytes::<EpochCacheFile, rancor::Error>(body)
            .map_err(|e| EpochCacheError::Invalid(e.to_string()))?;
        if file.magic != EPOCH_CACHE_MAGIC || file.version != EPOCH_CACHE_VERSION {
            return Err(EpochCacheError::Invalid("magic or version".into()));
        }
        if file.entries.len() > EPOCH_CACHE_ENTRIES_MAX {
            return Err(EpochCacheError::Invalid("too many entries".into()));
        }
        let entries: Vec<(LeaderEpoch, Offset)> = file
            .entries
            .iter()
            .map(|(e, s)| (LeaderEpoch(*e), Offset(*s)))
            .collect();
        if entries
            .windows(2)
            .any(|p| p[0].0 >= p[1].0 || p[0].1 >= p[1].1)
        {
            return Err(EpochCacheError::Invalid("entries out of order".into()));
        }
        Ok(EpochCache { entries })
    }

    /// Loads the cache from the partition directory; a missing or damaged file gives an
    /// empty cache (the caller then cannot prove where its log diverged and truncates to its
    /// high watermark, as Kafka does without a cache).
    pub async fn load<S: Storage>(storage: &S, dir: &Path) -> io::Result<Self> {
        let Some(bytes) = read_small_file(storage, &dir.join(EPOCH_CACHE_FILE)).await? else {
            return Ok(Self::new());
        };
        match Self::decode(&bytes) {
            Ok(cache) => Ok(cache),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "leader epoch cache damaged; starting empty");
                Ok(Self::new())
            }
        }
    }

    /// Replaces the file atomically; durable when it resolves.
    pub async fn persist<S: Storage>(&self, storage: &S, dir: &Path) -> io::Result<()> {
        replace_small_file(storage, &dir.join(EPOCH_CACHE_FILE), &self.encode()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::new();
        for (e, s) in entries {
            c.assign(LeaderEpoch(*e), Offset(*s));
        }
        c
    }

    #[test]
    fn end_of_an_epoch_is_the_next_epochs_start_or_the_log_end() {
        let c = cache(&[(1, 0), (3, 10), (5, 25)]);
        let end = |e| c.end_for(LeaderEpoch(e), Offset(40));
        assert_eq!(end(0), None);
        assert_eq!(
            end(1),
            Some(EpochEnd {
                epoch: LeaderEpoch(1),
                end_offset: Offset(10)
            })
        );
        // Epoch 2 never led here: the largest below it (1) answers (KIP-279).
        assert_eq!(end(2).map(|e| (e.epoch.0, e.end_offset.0)), Some((1, 10)));
        assert_eq!(end(4).map(|e| (e.epoch.0, e.end_offset.0)), Some((3, 25)));
        assert_eq!(end(9).map(|e| (e.epoch.0, e.end_offset.0)), Some((5, 40)));
    }

    #[test]
    fn an_epoch_that_appended_nothing_is_replaced_by_the_next() {
        let c = cache(&[(1, 0), (2, 5), (3, 5)]);
        assert_eq!(
            c.entries(),
            &[(LeaderEpoch(1), Offset(0)), (LeaderEpoch(3), Offset(5))]
        );
        let mut c = c;
        assert!(
            !c.assign(LeaderEpoch(2), Offset(9)),
            "older epochs are ignored"
        );
    }

    #[test]
    fn truncation_forgets_epochs_starting_at_or_after_the_cut() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 25)]);
        assert!(c.truncate_from_end(Offset(10)));
        assert_eq!(c.latest(), Some((LeaderEpoch(1), Offset(0))));
        assert!(!c.truncate_from_end(Offset(10)));
    }

    #[test]
    fn damaged_files_are_refused() {
        let c = cache(&[(1, 0), (2, 7)]);
        let mut bytes = c.encode();
        assert_eq!(EpochCache::decode(&bytes), Ok(c.clone()));
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        assert_eq!(EpochCache::decode(&bytes), Err(EpochCacheError::Crc));
        assert_eq!(
            EpochCache::decode(&bytes[..5]),
            Err(EpochCacheError::Truncated)
        );
    }

    #[test]
    fn cache_survives_persist_and_load_on_sim_storage() {
        let storage = sluice_engine::io::sim::SimStorage::new();
        let dir = Path::new("/data/t-0");
        let c = cache(&[(1, 0), (4, 100)]);
        futures_lite::future::block_on(async {
            storage.create_dir_all(dir).await.expect("dir");
            c.persist(&storage, dir).await.expect("persist");
            storage.crash(3, sluice_engine::io::sim::CrashMode::DropUnsynced);
            assert_eq!(EpochCache::load(&storage, dir).await.expect("load"), c);
        });
    }

    proptest! {
        #[test]
        fn codec_round_trips_and_end_for_matches_a_linear_scan(
            starts in proptest::collection::vec((1i32..4, 1i64..50), 0..40),
            query in 0i32..200,
        ) {
            let mut c = EpochCache::new();
            let (mut e, mut s) = (0i32, 0i64);
            for (de, ds) in starts {
                e += de;
                s += ds;
                c.assign(LeaderEpoch(e), Offset(s));
            }
            prop_assert_eq!(EpochCache::decode(&c.encode()), Ok(c.clone()));
            let log_end = Offset(s + 10);
            let linear = c.entries().iter().enumerate().rfind(|(_, (ep, _))| ep.0 <= query)
                .map(|(i, (ep, _))| (ep.0, c.entries().get(i + 1).map_or(log_end, |x| x.1).0));
            prop_assert_eq!(c.end_for(LeaderEpoch(query), log_end).map(|x| (x.epoch.0, x.end_offset.0)), linear);
        }
    }
}
