//! The in-memory side of a voter's Raft log that raft-rs reads through its `Storage` trait:
//! the persisted entries after the compaction point, the hard state, and the latest
//! snapshot *with its data* (raft-rs's `MemStorage` builds snapshots without data, which a
//! voter that lags behind the compaction point could not install).
//!
//! Everything here mirrors what [`super::raft_log::RaftLog`] has made durable; the
//! controller node updates both together. Owned by the controller's shard.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

pub struct ControllerStore {
    hard_state: HardState,
    conf_state: ConfState,
    /// Latest snapshot (metadata index 0 when there is none yet).
    snapshot: Snapshot,
    /// Contiguous entries from `first` on.
    entries: Vec<Entry>,
    first: u64,
}

impl ControllerStore {
    /// A store whose log starts after `first - 1` (the compaction point).
    pub fn new(conf_state: ConfState, first: u64) -> Self {
        ControllerStore {
            hard_state: HardState::default(),
            conf_state,
            snapshot: Snapshot::default(),
            entries: Vec::new(),
            first: first.max(1),
        }
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }
    pub fn first(&self) -> u64 {
        self.first
    }
    pub fn last(&self) -> u64 {
        self.first + self.entries.len() as u64 - 1
    }

    /// Appends persisted entries, replacing any conflicting suffix.
    pub fn append(&mut self, ents: &[Entry]) -> raft::Result<()> {
        let Some(head) = ents.first() else {
            return Ok(());
        };
        if head.index < self.first || head.index > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Other(
                format!(
                    "append at {} outside [{}, {}]",
                    head.index,
                    self.first,
                    self.last() + 1
                )
                .into(),
            )));
        }
        self.entries.truncate((head.index - self.first) as usize);
        self.entries.extend_from_slice(ents);
        Ok(())
    }

    /// Records a snapshot taken locally (entries stay until `compact`).
    pub fn set_snapshot(&mut self, snap: Snapshot) {
        self.snapshot = snap;
    }

    /// Drops entries up to and including `through`.
    pub fn compact(&mut self, through: u64) {
        if through < self.first {
            return;
        }
        let n = ((through + 1 - self.first) as usize).min(self.entries.len());
        self.entries.drain(..n);
        self.first = through + 1;
    }

    /// The configuration after an applied configuration change.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Replaces everything with a snapshot received from the leader.
    pub fn install_snapshot(&mut self, snap: Snapshot) {
        let meta = snap.get_metadata();
        self.entries.clear();
        self.first = meta.index + 1;
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.conf_state = meta.get_conf_state().clone();
        self.snapshot = snap;
    }
}

impl raft::Storage for ControllerStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut out =
            self.entries[(low - self.first) as usize..(high - self.first) as usize].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let index = self.snapshot_index();
        if index == 0 || index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage as _;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn compaction_keeps_terms_answerable_at_the_snapshot_and_refuses_below() {
        let mut s = ControllerStore::new(ConfState::default(), 1);
        s.append(&(1..=10).map(|i| entry(i, 1 + i / 5)).collect::<Vec<_>>())
            .expect("append");
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 8;
        snap.mut_metadata().term = 2;
        s.set_snapshot(snap);
        s.compact(6);
        assert_eq!(s.first_index().unwrap(), 7);
        assert_eq!(s.last_index().unwrap(), 10);
        assert_eq!(s.term(8).unwrap(), 2);
        assert!(matches!(
            s.entries(5, 8, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(
            s.entries(7, 11, None, GetEntriesContext::empty(false))
                .unwrap()
                .len(),
            4
        );
        // A conflicting suffix is replaced.
        s.append(&[entry(9, 3)]).expect("overwrite");
        assert_eq!(s.last_index().unwrap(), 9);
        assert_eq!(s.term(9).unwrap(), 3);
        assert!(s.append(&[entry(12, 3)]).is_err(), "gap");
        assert_eq!(s.snapshot(0, 2).unwrap().get_metadata().index, 8);
        assert!(s.snapshot(9, 2).is_err());
    }
}
