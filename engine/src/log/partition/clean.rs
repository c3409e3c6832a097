//! The log cleaner's I/O for one partition: one pass builds the offset map over the dirty
//! section, then rewrites every closed segment it covers into a new file and swaps it in.
//! Runs on the partition's owning shard, in the background task queue.
//!
//! Consistency, for readers and across crashes:
//! - The cleaned copy of segment `B` is written to `B.log.cleaned` and fdatasync'd, then,
//!   under the segments lock, the old index is removed (directory synced), the copy renamed
//!   over `B.log` (directory synced: the commit point) and the new index written. A crash
//!   before the rename leaves the old segment (recovery deletes `*.cleaned` and rebuilds a
//!   missing index by scanning); after it, the new one. Both hold the same offsets for
//!   the same records, minus superseded ones.
//! - Readers that picked the old segment keep its open file (the unlinked inode lives on)
//!   and read a consistent old copy; later reads find the new segment in the map.
//! - Consecutive small segments are merged into the first one's file (one group at a time):
//!   the rename over the first is the commit point, then the others' files are deleted; a
//!   crash in between leaves files that recovery finds covered by the merged segment's
//!   offset range and deletes.
//! - Each group still ends at its original offset (its last batch is kept, empty if need
//!   be), so segments stay contiguous and recovery needs no cleaner metadata.
//! - Segments are cleaned oldest first, so a crash between two swaps can hide a tombstone
//!   only together with (or after) the values it deleted.

use std::rc::Rc;

use super::*;
use crate::limits::{
    CLEANER_BATCHES_PER_YIELD, CLEANER_OFFSET_MAP_BYTES_MAX, CLEANER_READ_BYTES,
    CLEANER_WRITE_BUFFER_BYTES,
};
use crate::log::compaction::{filter_batch, BatchFate, FilterRules, MapFill, OffsetMap};

/// What one cleaner pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    /// Whether the pass ran (the policy compacts, and the dirty ratio was reached or a
    /// kept tombstone became due).
    pub ran: bool,
    /// Keys in the offset map.
    pub keys: usize,
    /// The first dirty offset after the pass.
    pub cleaned_up_to: Offset,
    /// Bytes of the segments read while cleaning them.
    pub bytes_read: u64,
    /// Bytes of the cleaned copies written.
    pub bytes_written: u64,
    pub segments_rewritten: usize,
    /// Whether dirty data remains that the map could not hold (another pass is due).
    pub more: bool,
}

/// Frames of a cleaned segment, staged and written in aligned pieces.
struct CleanedWriter<F: StorageFile> {
    file: F,
    pending: Vec<u8>,
    /// File position of `pending[0]` (aligned).
    file_pos: u64,
}

impl<F: StorageFile> CleanedWriter<F> {
    async fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= CLEANER_WRITE_BUFFER_BYTES {
            let n = align_down(self.pending.len() as u64) as usize;
            self.write(n).await?;
        }
        Ok(())
    }

    /// Writes the first `n` (aligned) staged bytes, zero-padding past the staged end.
    async fn write(&mut self, n: usize) -> io::Result<()> {
        let mut buf = self.file.alloc_buffer(n);
        let have = n.min(self.pending.len());
        buf.bytes_mut()[..have].copy_from_slice(&self.pending[..have]);
        buf.bytes_mut()[have..].fill(0);
        self.file.write_at(buf, self.file_pos).await?;
        self.pending.drain(..have);
        self.file_pos += n as u64;
        Ok(())
    }

    /// Writes everything, trims the file to `size` and fdatasyncs it.
    async fn finish(mut self, size: u64) -> io::Result<F> {
        if !self.pending.is_empty() {
            let n = align_up(self.pending.len() as u64) as usize;
            self.write(n).await?;
        }
        self.file.truncate(size).await?;
        self.file.sync().await?;
        Ok(self.file)
    }
}

/// A cleaned copy ready to swap in.
struct CleanedSegment<F: StorageFile> {
    file: F,
    path: PathBuf,
    size: u64,
    /// End offset of its last batch (must equal the original segment's).
    next_offset: Offset,
    index: SegmentIndex,
}

impl<S: Storage> PartitionLog<S>
where
    S::File: Clone,
{
    /// The segments, oldest first (tests look at files the cleaner replaced).
    #[cfg(test)]
    pub(crate) fn segments_for_test(&self) -> Vec<Rc<Segment<S::File>>> {
        self.st.borrow().segments.values().cloned().collect()
    }

    /// The cleaner's first dirty offset.
    pub fn cleaner_checkpoint(&self) -> Offset {
        let st = self.st.borrow();
        st.cleaner_checkpoint.max(st.log_start)
    }

    /// One cleaner pass (see the module docs), if the topic compacts and either the dirty
    /// ratio of the cleanable closed segments reaches min.cleanable.dirty.ratio or a kept
    /// tombstone has outlived delete.retention.ms (then the pass only drops tombstones, as
    /// Kafka does since KIP-534). The active segment and segments holding records younger
    /// than min.compaction.lag.ms are not cleanable. Resolves when the pass's swaps and
    /// checkpoint are durable.
    pub async fn clean(&self) -> Result<CleanOutcome, LogError> {
        self.clean_with_map_bytes(CLEANER_OFFSET_MAP_BYTES_MAX)
            .await
    }

    /// [`Self::clean`] with an offset map of `map_bytes_max` (tests force several passes).
    pub async fn clean_with_map_bytes(
        &self,
        map_bytes_max: usize,
    ) -> Result<CleanOutcome, LogError> {
        let now = self.clock.now_ms();
        let (config, segments, first_dirty, tombstones_due) = {
            let st = self.st.borrow();
            if st.closed || st.failed.is_some() {
                return Ok(CleanOutcome::default());
            }
            let segs: Vec<Rc<Segment<S::File>>> = st.segments.values().cloned().collect();
            (
                st.config.clone(),
                segs,
                st.cleaner_checkpoint.max(st.log_start),
                now >= st.tombstones_due_ms,
            )
        };
        let mut outcome = CleanOutcome {
            cleaned_up_to: first_dirty,
            ..Default::default()
        };
        if !config.cleanup_policy.compacts() {
            return Ok(outcome);
        }
        // Closed segments, oldest first, up to the first one too young to compact.
        let closed = &segments[..segments.len().saturating_sub(1)];
        let lag = config.min_compaction_lag_ms;
        let cleanable: Vec<_> = closed
            .iter()
            .take_while(|s| lag <= 0 || s.st.borrow().index.max_timestamp <= now - lag)
            .cloned()
            .collect();
        let Some(uncleanable) = cleanable.last().map(|s| sst_next(s)) else {
            return Ok(outcome);
        };
        let (mut dirty, mut total) = (0u64, 0u64);
        for s in &cleanable {
            let size = s.size();
            total += size;
            if sst_next(s) > first_dirty {
                dirty += size;
            }
        }
        let ratio_met =
            dirty > 0 && (dirty as f64) >= config.min_cleanable_dirty_ratio * total as f64;
        if !ratio_met && !tombstones_due {
            return Ok(outcome);
        }

        // The offset map over [first_dirty, map_end).
        let mut map = OffsetMap::new(map_bytes_max);
        let mut map_end = first_dirty;
        let mut seen = 0usize;
        'build: while ratio_met && map_end < uncleanable {
            let r = self.read(map_end, CLEANER_READ_BYTES).await?;
            if r.bytes.is_empty() {
                break;
            }
            for view in batches(&r.bytes) {
                let view = view.map_err(|source| LogError::Batch {
                    tp: self.tp.clone(),
                    source,
                })?;
                if view.base_offset() >= uncleanable {
                    break 'build;
                }
                if view.last_offset() < map_end {
                    continue;
                }
                match map.add_batch(&view) {
                    Ok(MapFill::All) => {}
                    Ok(MapFill::UpTo(offset)) => {
                        // The map covers this batch's records below `offset`.
                        map_end = map_end.max(Offset(offset));
                        outcome.more = true;
                        break 'build;
                    }
                    Err(e) => {
                        // Kept whole by the cleaning step too: it never shadows older
                        // records, so nothing is lost, only left uncompacted.
                        tracing::warn!(partition = %self.tp, offset = %view.base_offset(), error = %e, "cleaner cannot read a batch's keys; leaving it as is");
                    }
                }
                map_end = view.last_offset().next();
                seen += 1;
                if seen.is_multiple_of(CLEANER_BATCHES_PER_YIELD) {
                    futures_lite::future::yield_now().await;
                }
            }
        }
        // Segments this pass cleans: those the map covers, or all (tombstones only).
        let clean_end = if map_end > first_dirty {
            map_end
        } else if tombstones_due {
            uncleanable
        } else {
            return Ok(outcome);
        };
        outcome.ran = true;
        outcome.keys = map.len();

        let rules = FilterRules {
            now_ms: now,
            delete_retention_ms: config.delete_retention_ms,
            // map_end >= first_dirty: below it every key's older records go this pass or
            // went in an earlier one.
            tombstone_horizon: map_end.0,
            keep_empty: false,
        };
        let mut due = i64::MAX;
        let to_clean: Vec<_> = cleanable
            .iter()
            .filter(|s| s.base_offset < clean_end)
            .cloned()
            .collect();
        for group in merge_groups(&to_clean, config.segment_bytes_clamped()) {
            let Some(cleaned) = self
                .clean_group(group, &map, rules, &config, &mut outcome, &mut due)
                .await?
            else {
                continue;
            };
            if self.swap_in(group, cleaned).await? {
                outcome.segments_rewritten += group.len();
            } else {
                // Retention, DeleteRecords or close got there first: stop this pass.
                return Ok(outcome);
            }
        }
        {
            let mut st = self.st.borrow_mut();
            let due = if clean_end >= uncleanable {
                due
            } else {
                st.tombstones_due_ms.min(due)
            };
            // A pass for due tombstones alone reads every closed segment: at most one per
            // half delete.retention.ms, however their timestamps spread (a tombstone so
            // stays at most 1.5 delete.retention.ms).
            st.tombstones_due_ms = due.max(now.saturating_add(config.delete_retention_ms / 2));
        }
        if map_end > first_dirty {
            let path = self.dir.join(CLEANER_CHECKPOINT);
            replace_small_file(&self.storage, &path, &encode_checkpoint(map_end))
                .await
                .map_err(|e| self.io_error(&path, e))?;
            self.st.borrow_mut().cleaner_checkpoint = map_end;
            outcome.cleaned_up_to = map_end;
        }
        self.stats.record_clean(&outcome, now);
        Ok(outcome)
    }

    /// Writes the cleaned copy of a group of consecutive segments as one segment based at
    /// the first one's base offset. Returns None when the group is one segment in which
    /// nothing changes (no write at all: the unchanged prefix is only copied once a first
    /// change shows up).
    async fn clean_group(
        &self,
        group: &[Rc<Segment<S::File>>],
        map: &OffsetMap,
        rules: FilterRules,
        config: &LogConfig,
        outcome: &mut CleanOutcome,
        tombstone_due_ms: &mut i64,
    ) -> Result<Option<CleanedSegment<S::File>>, LogError> {
        let first = group.first().expect("a group holds at least one segment");
        let tmp = PathBuf::from(format!("{}{CLEANED_SUFFIX}", first.log_path.display()));
        let tmp_err = |e| self.io_error(&tmp, e);
        let mut writer: Option<CleanedWriter<S::File>> = None;
        if group.len() > 1 {
            writer = Some(self.cleaned_writer(&tmp).await?);
        }
        let mut index = SegmentIndex::new();
        let mut out_size = 0u64;
        let mut out_next = first.base_offset;
        let mut seen = 0usize;
        for (g, seg) in group.iter().enumerate() {
            let last_segment = g + 1 == group.len();
            let limit = seg.st.borrow().written;
            let io = |e| self.io_error(&seg.log_path, e);
            let mut pos = 0u64;
            while pos < limit {
                let want = (CLEANER_READ_BYTES as u64).min(limit - pos) as usize;
                let window = seg.file.read_at(pos, want).await.map_err(io)?;
                let mut at = 0usize;
                while at < window.len() {
                    let rest = &window[at..];
                    let header = FrameHeader::decode(rest)
                        .map_err(|e| self.corrupt(seg, pos + at as u64, e.to_string()))?;
                    let frame = header.frame_bytes();
                    let owned;
                    let bytes: &[u8] = if rest.len() >= frame {
                        &rest[FRAME_HEADER_BYTES..frame]
                    } else if at == 0 {
                        // One frame larger than the window: read exactly it.
                        owned = seg.file.read_at(pos, frame).await.map_err(io)?;
                        if owned.len() < frame {
                            return Err(self.corrupt(seg, pos, "frame runs past the end".into()));
                        }
                        &owned[FRAME_HEADER_BYTES..frame]
                    } else {
                        break;
                    };
                    let frame_pos = pos + at as u64;
                    check_served(&header, bytes).map_err(|e| self.corrupt(seg, frame_pos, e))?;
                    let view = BatchView::parse(bytes)
                        .map_err(|e| self.corrupt(seg, frame_pos, e.to_string()))?;
                    // The group's last batch stays (maybe empty): the group ends where it did.
                    let last_of_group = last_segment && frame_pos + frame as u64 >= limit;
                    let remembered = view.producer_id() >= 0
                        && self
                            .st
                            .borrow()
                            .producers
                            .remembers(view.producer_id(), view.last_offset());
                    let rules = FilterRules {
                        keep_empty: last_of_group || remembered,
                        ..rules
                    };
                    let fate = filter_batch(&view, map, rules, tombstone_due_ms).unwrap_or_else(|e| {
                        tracing::warn!(partition = %self.tp, offset = %view.base_offset(), error = %e, "cleaner cannot read a batch; keeping it whole");
                        BatchFate::KeepWhole
                    });
                    if fate != BatchFate::KeepWhole && writer.is_none() {
                        // First change in a lone segment: copy the unchanged frames before it.
                        let mut w = self.cleaned_writer(&tmp).await?;
                        let mut copied = 0u64;
                        while copied < out_size {
                            let n = (CLEANER_READ_BYTES as u64).min(out_size - copied) as usize;
                            let prefix = seg.file.read_at(copied, n).await.map_err(io)?;
                            w.push(&prefix).await.map_err(tmp_err)?;
                            copied += prefix.len() as u64;
                        }
                        writer = Some(w);
                    }
                    let kept: Option<&[u8]> = match &fate {
                        BatchFate::KeepWhole => Some(bytes),
                        BatchFate::Drop => None,
                        BatchFate::Rewrite(b) => Some(b),
                    };
                    if let Some(kept) = kept {
                        let kept_view = BatchView::parse(kept)
                            .expect("a kept or rebuilt batch is a valid batch");
                        let head = FrameHeader::for_batch(&kept_view);
                        if let Some(w) = writer.as_mut() {
                            let mut h = [0u8; FRAME_HEADER_BYTES];
                            head.encode_into(&mut h);
                            w.push(&h).await.map_err(tmp_err)?;
                            w.push(kept).await.map_err(tmp_err)?;
                        }
                        let frame_bytes = head.frame_bytes() as u64;
                        index.on_append(
                            first.base_offset,
                            kept_view.base_offset(),
                            kept_view.last_offset(),
                            out_size,
                            frame_bytes,
                            kept_view.max_timestamp(),
                            config.index_interval_bytes,
                        );
                        out_size += frame_bytes;
                        out_next = kept_view.last_offset().next();
                    }
                    at += frame;
                    seen += 1;
                    if seen.is_multiple_of(CLEANER_BATCHES_PER_YIELD) {
                        futures_lite::future::yield_now().await;
                    }
                }
                if at == 0 {
                    return Err(self.corrupt(seg, pos, "no whole frame in the segment".into()));
                }
                pos += at as u64;
            }
            outcome.bytes_read += limit;
        }
        let Some(writer) = writer else {
            return Ok(None);
        };
        let file = writer.finish(out_size).await.map_err(tmp_err)?;
        outcome.bytes_written += out_size;
        Ok(Some(CleanedSegment {
            file,
            path: tmp,
            size: out_size,
            next_offset: out_next,
            index,
        }))
    }

    async fn cleaned_writer(&self, tmp: &Path) -> Result<CleanedWriter<S::File>, LogError> {
        let file = self
            .storage
            .open(tmp, OpenMode::CreateOrOpen)
            .await
            .map_err(|e| self.io_error(tmp, e))?;
        file.truncate(0).await.map_err(|e| self.io_error(tmp, e))?;
        Ok(CleanedWriter {
            file,
            pending: Vec::new(),
            file_pos: 0,
        })
    }

    /// Replaces the segments of `group` by their cleaned copy, one segment at the first's
    /// base offset (see the module docs for the crash argument). Returns false, discarding
    /// the copy, if any of them is no longer in the log.
    async fn swap_in(
        &self,
        group: &[Rc<Segment<S::File>>],
        cleaned: CleanedSegment<S::File>,
    ) -> Result<bool, LogError> {
        // Not the append lock: appends go on while the swap fsyncs.
        let _segments = self.segments_lock.lock().await;
        let first = group.first().expect("a group holds at least one segment");
        let current = {
            let st = self.st.borrow();
            !st.closed
                && group.iter().all(|old| {
                    st.segments
                        .get(&old.base_offset.0)
                        .is_some_and(|s| Rc::ptr_eq(s, old))
                })
        };
        let dir_sync = |e| self.io_error(&self.dir, e);
        let remove = |path: PathBuf| async move {
            match self.storage.remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(self.io_error(&path, e)),
            }
        };
        if !current {
            drop(cleaned.file);
            remove(cleaned.path.clone()).await?;
            return Ok(false);
        }
        let (next_offset, created_ms) = {
            let last = group.last().expect("a group holds at least one segment");
            let created = first.st.borrow().created_ms;
            let next = last.st.borrow().next_offset;
            (next, created)
        };
        assert_eq!(
            cleaned.next_offset, next_offset,
            "a cleaned group keeps its last batch, so it ends where the original did"
        );
        // 1. No stale index may describe the new file: drop the old ones first, durably.
        for old in group {
            remove(old.index_path.clone()).await?;
        }
        self.storage.sync_dir(&self.dir).await.map_err(dir_sync)?;
        // 2. The commit point: the first segment's file now holds the whole group.
        self.storage
            .rename(&cleaned.path, &first.log_path)
            .await
            .map_err(|e| self.io_error(&first.log_path, e))?;
        self.storage.sync_dir(&self.dir).await.map_err(dir_sync)?;
        // 3. The merged segments' files; a crash before this is durable leaves files that
        // recovery recognises as covered by the first and deletes.
        for old in &group[1..] {
            remove(old.log_path.clone()).await?;
        }
        if group.len() > 1 {
            self.storage.sync_dir(&self.dir).await.map_err(dir_sync)?;
        }
        // 4. In the map before the index is written: the files on disk are the new ones.
        let seg = Segment::new(&self.dir, first.base_offset, cleaned.file, created_ms);
        {
            let mut sst = seg.st.borrow_mut();
            sst.index = cleaned.index;
            sst.size = cleaned.size;
            sst.written = cleaned.size;
            sst.next_offset = next_offset;
            sst.sealed = true;
            sst.preallocated = cleaned.size;
        }
        let seg = Rc::new(seg);
        {
            let mut st = self.st.borrow_mut();
            for old in &group[1..] {
                st.segments.remove(&old.base_offset.0);
            }
            st.segments.insert(first.base_offset.0, seg.clone());
        }
        // 5. The new index (a crash before it is durable means a rebuild by scan).
        self.persist_index(&seg).await?;
        Ok(true)
    }
}

/// Consecutive segments cleaned into one (Kafka's grouping): as many as fit one segment of
/// `segment_bytes` by their current sizes, with offsets relative to the first still fitting
/// the index's u32. Small cleaned segments so merge on a later pass instead of piling up
/// (each one is an open file).
fn merge_groups<F: StorageFile>(
    segments: &[Rc<Segment<F>>],
    segment_bytes: u64,
) -> Vec<&[Rc<Segment<F>>]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let base = segments[start].base_offset.0;
        let mut bytes = segments[start].size();
        let mut end = start + 1;
        while end < segments.len() {
            let next = &segments[end];
            let span = sst_next(next).0 - base;
            if bytes + next.size() > segment_bytes || span > u32::MAX as i64 {
                break;
            }
            bytes += next.size();
            end += 1;
        }
        groups.push(&segments[start..end]);
        start = end;
    }
    groups
}
