//! Idempotent-producer state of one partition: per producer id, the current epoch and the
//! last five batches' sequence ranges and offsets (as Kafka keeps them), so a retried batch
//! is answered with its original offsets and a gap or a stale epoch is refused.
//!
//! Owned by the partition's log, i.e. by the shard that owns the partition. Snapshotted
//! (rkyv, crc32c) at segment roll and clean close; rebuilt from the batches after the
//! snapshot on open.

use std::collections::{HashMap, VecDeque};

use rkyv::rancor;
use rkyv::{Archive, Deserialize, Serialize};

use crate::batch::BatchView;
use crate::ids::Offset;

/// Batches remembered per producer (Kafka's max.in.flight for idempotence is 5).
pub const PRODUCER_BATCHES_KEPT: usize = 5;
/// Producers remembered per partition; the least recently written is forgotten first.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;
const SNAPSHOT_MAGIC: u32 = 0x534c_5053; // "SLPS"
const SNAPSHOT_VERSION: u16 = 1;

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchRecord {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    pub batches: Vec<BatchRecord>,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ProducerSnapshot {
    pub magic: u32,
    pub version: u16,
    /// The snapshot reflects every batch below this offset.
    pub next_offset: i64,
    pub producers: Vec<ProducerEntry>,
}

/// What an idempotent batch turns out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent (producer id -1): no checks.
    NotIdempotent,
    /// The next batch in sequence (or the first of a new epoch): append it.
    Append,
    /// A retry of a batch already in the log at these offsets: answer with them.
    Duplicate {
        base_offset: Offset,
        last_offset: Offset,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer {producer_id}: epoch {epoch} is older than the current {current}")]
    StaleEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: sequence {first_seq} where {expected} was expected")]
    OutOfOrder {
        producer_id: i64,
        first_seq: i32,
        expected: i32,
    },
}

#[derive(Debug, Default)]
pub struct ProducerState {
    producers: HashMap<i64, (i16, VecDeque<BatchRecord>)>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerState {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Classifies a batch before it is appended. Does not change state.
    pub fn check(&self, batch: &BatchView<'_>) -> Result<SequenceCheck, SequenceError> {
        let producer_id = batch.producer_id();
        if producer_id < 0 || batch.base_sequence() < 0 {
            return Ok(SequenceCheck::NotIdempotent);
        }
        let epoch = batch.producer_epoch();
        let first_seq = batch.base_sequence();
        let Some((current, batches)) = self.producers.get(&producer_id) else {
            // Unknown producer (new, or forgotten): accept, as Kafka does for a fresh id.
            return Ok(SequenceCheck::Append);
        };
        if epoch < *current {
            return Err(SequenceError::StaleEpoch {
                producer_id,
                epoch,
                current: *current,
            });
        }
        if epoch > *current {
            if first_seq != 0 {
                return Err(SequenceError::OutOfOrder {
                    producer_id,
                    first_seq,
                    expected: 0,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        let last_seq = first_seq.wrapping_add(batch.last_offset_delta());
        if let Some(b) = batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: Offset(b.base_offset),
                last_offset: Offset(b.last_offset),
            });
        }
        let expected = batches.back().map_or(first_seq, |b| next_seq(b.last_seq));
        if first_seq != expected {
            return Err(SequenceError::OutOfOrder {
                producer_id,
                first_seq,
                expected,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Whether the batch of `producer_id` ending at `last_offset` is one this state still
    /// remembers for deduplication. The log cleaner keeps such batches (emptied of
    /// superseded records if need be) so the state can be rebuilt from the log.
    pub fn remembers(&self, producer_id: i64, last_offset: Offset) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|(_, b)| b.iter().any(|r| r.last_offset == last_offset.0))
    }

    /// Records an appended (or recovered) idempotent batch at its offsets.
    pub fn record(&mut self, batch: &BatchView<'_>) {
        let producer_id = batch.producer_id();
        if producer_id < 0 || batch.base_sequence() < 0 {
            return;
        }
        let epoch = batch.producer_epoch();
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| (epoch, VecDeque::new()));
        if epoch != entry.0 {
            *entry = (epoch, VecDeque::new());
        }
        entry.1.push_back(BatchRecord {
            first_seq: batch.base_sequence(),
            last_seq: batch
                .base_sequence()
                .wrapping_add(batch.last_offset_delta()),
            base_offset: batch.base_offset().0,
            last_offset: batch.last_offset().0,
        });
        while entry.1.len() > PRODUCER_BATCHES_KEPT {
            entry.1.pop_front();
        }
        if self.producers.len() > PRODUCERS_PER_PARTITION_MAX {
            // Forget the producer whose last write is oldest.
            let oldest = self
                .producers
                .iter()
                .min_by_key(|(_, (_, b))| b.back().map_or(i64::MIN, |r| r.last_offset))
                .map(|(pid, _)| *pid);
            if let Some(pid) = oldest {
                self.producers.remove(&pid);
            }
        }
    }

    /// Folds in the state of batches that come after everything in `self` (e.g. a recovery
    /// scan of the active segment on top of the snapshot taken when it was rolled).
    pub fn merge_newer(&mut self, newer: ProducerState) {
        for (pid, (epoch, batches)) in newer.producers {
            match self.producers.get_mut(&pid) {
                Some(entry) if entry.0 == epoch => {
                    entry.1.extend(batches);
                    while entry.1.len() > PRODUCER_BATCHES_KEPT {
                        entry.1.pop_front();
                    }
                }
                _ => {
                    self.producers.insert(pid, (epoch, batches));
                }
            }
        }
    }

    pub fn encode_snapshot(&self, next_offset: Offset) -> Vec<u8> {
        let mut producers: Vec<ProducerEntry> = self
            .producers
            .iter()
            .map(|(pid, (epoch, batches))| ProducerEntry {
                producer_id: *pid,
                epoch: *epoch,
                batches: batches.iter().copied().collect(),
            })
            .collect();
        producers.sort_by_key(|p| p.producer_id);
        let snap = ProducerSnapshot {
            magic: SNAPSHOT_MAGIC,
            version: SNAPSHOT_VERSION,
            next_offset: next_offset.0,
            producers,
        };
        let archive = rkyv::to_bytes::<rancor::Error>(&snap)
            .expect("serializing plain data into a Vec cannot fail");
        let mut out = Vec::with_capacity(archive.len() + 4);
        out.extend_from_slice(&crc32c::crc32c(&archive).to_le_bytes());
        out.extend_from_slice(&archive);
        out
    }

    /// Validates and loads a snapshot; returns the offset it covers up to.
    pub fn decode_snapshot(bytes: &[u8]) -> Option<(ProducerState, Offset)> {
        let (crc, body) = bytes.split_at_checked(4)?;
        let mut c = [0u8; 4];
        c.copy_from_slice(crc);
        if crc32c::crc32c(body) != u32::from_le_bytes(c) {
            return None;
        }
        let archived = rkyv::access::<ArchivedProducerSnapshot, rancor::Error>(body).ok()?;
        if archived.magic.to_native() != SNAPSHOT_MAGIC
            || archived.version.to_native() != SNAPSHOT_VERSION
        {
            return None;
        }
        let snap = rkyv::deserialize::<ProducerSnapshot, rancor::Error>(archived).ok()?;
        let mut state = ProducerState::default();
        for p in snap.producers {
            state
                .producers
                .insert(p.producer_id, (p.epoch, p.batches.into_iter().collect()));
        }
        Some((state, Offset(snap.next_offset)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::build;

    /// A batch of `count` records from producer `pid`/`epoch` starting at sequence `seq`,
    /// stamped at `base`.
    fn idem(pid: i64, epoch: i16, seq: i32, count: usize, base: i64) -> Vec<u8> {
        let mut b = build::batch(count, 10, 1, 0);
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        crate::batch::stamp(
            &mut b,
            Offset(base),
            crate::ids::LeaderEpoch(0),
            crate::batch::TimestampStamp::CreateTime,
        );
        b
    }

    fn view(b: &[u8]) -> BatchView<'_> {
        BatchView::parse_checked(b).expect("valid")
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut s = ProducerState::default();
        let b0 = idem(7, 0, 0, 3, 100);
        assert_eq!(s.check(&view(&b0)), Ok(SequenceCheck::Append));
        s.record(&view(&b0));
        let b1 = idem(7, 0, 3, 2, 103);
        assert_eq!(s.check(&view(&b1)), Ok(SequenceCheck::Append));
        s.record(&view(&b1));
        assert_eq!(
            s.check(&view(&idem(7, 0, 0, 3, 999))),
            Ok(SequenceCheck::Duplicate {
                base_offset: Offset(100),
                last_offset: Offset(102)
            })
        );
    }

    #[test]
    fn gaps_and_stale_epochs_are_refused() {
        let mut s = ProducerState::default();
        s.record(&view(&idem(7, 1, 0, 3, 0)));
        assert!(matches!(
            s.check(&view(&idem(7, 1, 5, 1, 0))),
            Err(SequenceError::OutOfOrder { expected: 3, .. })
        ));
        assert!(matches!(
            s.check(&view(&idem(7, 0, 3, 1, 0))),
            Err(SequenceError::StaleEpoch { current: 1, .. })
        ));
        // A new epoch must restart at sequence 0.
        assert!(matches!(
            s.check(&view(&idem(7, 2, 3, 1, 0))),
            Err(SequenceError::OutOfOrder { expected: 0, .. })
        ));
        assert_eq!(
            s.check(&view(&idem(7, 2, 0, 1, 0))),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerState::default();
        for i in 0..7 {
            s.record(&view(&idem(9, 0, i, 1, i as i64)));
        }
        assert!(matches!(
            s.check(&view(&idem(9, 0, 2, 1, 0))),
            Ok(SequenceCheck::Duplicate { .. })
        ));
        assert!(matches!(
            s.check(&view(&idem(9, 0, 1, 1, 0))),
            Err(SequenceError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn snapshot_round_trips_and_rejects_damage() {
        let mut s = ProducerState::default();
        s.record(&view(&idem(1, 0, 0, 2, 0)));
        s.record(&view(&idem(2, 3, 0, 1, 2)));
        let mut bytes = s.encode_snapshot(Offset(3));
        let (back, next) = ProducerState::decode_snapshot(&bytes).expect("valid snapshot");
        assert_eq!(next, Offset(3));
        assert_eq!(
            back.check(&view(&idem(1, 0, 0, 2, 0))),
            s.check(&view(&idem(1, 0, 0, 2, 0)))
        );
        assert_eq!(back.len(), 2);
        let n = bytes.len() - 1;
        bytes[n] ^= 1;
        assert!(ProducerState::decode_snapshot(&bytes).is_none());
    }

    #[test]
    fn non_idempotent_batches_skip_checks() {
        let s = ProducerState::default();
        let b = build::batch(2, 10, 1, 0);
        assert_eq!(s.check(&view(&b)), Ok(SequenceCheck::NotIdempotent));
    }
}
