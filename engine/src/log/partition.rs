//! The partition log: an ordered, durable sequence of Kafka batches in segment files.
//!
//! Owned by exactly one shard (the partition's owner in the shard table); every method runs
//! on that shard. Futures returned by `append`, `flush` and `close` must be driven to
//! completion (the shard runs them as detached tasks), because whoever holds the flush lock
//! writes for everyone.
//!
//! Offsets: `durable <= written <= assigned` always.
//! - `assigned` (log end offset): batches copied into an in-memory write chunk.
//! - `written`: on the device, visible to readers (the high watermark on a single broker).
//! - `durable`: covered by an fdatasync.
//!
//! `append` resolves, per [`Durability`]: `PerWrite` and `GroupCommit` when the batch is
//! durable; `Interval` and `None` when it is written.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use futures_channel::oneshot;

use crate::batch::{batches, stamp, validate_record_set, BatchError, BatchView, TimestampStamp};
use crate::clock::Clock;
use crate::config::{Durability, LogConfig};
use crate::frame::{FrameHeader, FRAME_HEADER_BYTES};
use crate::ids::{LeaderEpoch, Offset, TopicPartition};
use crate::io::dma::DmaStorage;
use crate::io::{align_down, align_up, OpenMode, Storage, StorageFile, WriteBuf};
use crate::limits::{
    APPENDS_PENDING_MAX, READ_BYTES_MAX, SEGMENT_PREALLOCATE_STEP_BYTES, WRITE_CHUNK_BYTES,
};
use crate::log::index::{decode_index, encode_index, SegmentIndex};
use crate::log::producers::{ProducerState, SequenceCheck, SequenceError};
use crate::log::retention::{segments_to_delete, SegmentSummary};
use crate::log::segment::{parse_log_file_name, scan_segment, Segment};
use crate::log::small_file::{read_small_file, replace_small_file, write_small_file};

mod clean;
pub use clean::CleanOutcome;

const LOG_START_CHECKPOINT: &str = "log-start-offset.ckpt";
/// The log cleaner's first dirty offset: everything below it was cleaned against every key
/// written below it.
const CLEANER_CHECKPOINT: &str = "cleaner-offset.ckpt";
/// Suffix of a cleaned segment copy not yet swapped in; recovery deletes leftovers.
const CLEANED_SUFFIX: &str = ".cleaned";
const PRODUCER_SNAPSHOT: &str = "producer-state.snapshot";
const CHECKPOINT_MAGIC: u32 = 0x534c_4353; // "SLCS"

#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    #[error("{tp}: offset {requested} out of range [{log_start}, {high_watermark}]")]
    OffsetOutOfRange {
        tp: TopicPartition,
        requested: Offset,
        log_start: Offset,
        high_watermark: Offset,
    },
    #[error("{tp}: {source}")]
    Batch {
        tp: TopicPartition,
        #[source]
        source: BatchError,
    },
    #[error("{tp}: I/O on {path}: {source}")]
    Io {
        tp: TopicPartition,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("{tp}: corrupt data in {path} at byte {position}: {detail}")]
    Corrupt {
        tp: TopicPartition,
        path: PathBuf,
        position: u64,
        detail: String,
    },
    /// An idempotent producer's batch is out of sequence or from a fenced epoch.
    #[error("{tp}: {source}")]
    Sequence {
        tp: TopicPartition,
        #[source]
        source: SequenceError,
    },
    #[error("{tp}: log failed earlier and refuses writes: {reason}")]
    Failed { tp: TopicPartition, reason: String },
    #[error("{tp}: log is closed")]
    Closed { tp: TopicPartition },
    /// A replicated batch does not start where this log ends (the leader and the replica
    /// disagree on the position; the replica must resynchronise).
    #[error("{tp}: replicated batch starts at {got}, log ends at {expected}")]
    NotContiguous {
        tp: TopicPartition,
        expected: Offset,
        got: Offset,
    },
}

/// Options for one append.
#[derive(Clone, Copy, Debug)]
pub struct AppendOptions {
    pub leader_epoch: LeaderEpoch,
    /// Largest batch accepted (the topic's max.message.bytes).
    pub batch_bytes_max: usize,
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// Broker append time when the topic uses LogAppendTime, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: Offset,
}

/// Whole batches read from the log.
#[derive(Clone, Debug, Default)]
pub struct ReadResult {
    pub bytes: Vec<u8>,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
}

/// The first batch whose max timestamp reaches a target timestamp.
#[derive(Clone, Debug)]
pub struct TimestampHit {
    pub batch_base_offset: Offset,
    pub batch_max_timestamp: i64,
    pub batch: Vec<u8>,
}

/// An in-memory write chunk: aligned image of `[file_pos, file_pos + len)` of one segment.
struct Chunk<F: StorageFile> {
    segment: Rc<Segment<F>>,
    file_pos: u64,
    buf: F::Buf,
    len: usize,
    end_offset: Offset,
}

struct Waiter {
    end: Offset,
    tx: oneshot::Sender<Result<(), LogError>>,
}

struct LogState<F: StorageFile> {
    config: LogConfig,
    segments: BTreeMap<i64, Rc<Segment<F>>>,
    log_start: Offset,
    assigned: Offset,
    written: Offset,
    durable: Offset,
    pending: VecDeque<Chunk<F>>,
    waiters: VecDeque<Waiter>,
    data_waiters: Vec<oneshot::Sender<()>>,
    /// A replicated partition's high watermark (what every in-sync replica holds durably),
    /// set by its replica; readers never see past it. `None` on a single broker, where
    /// the high watermark is the written end.
    replicated_hw: Option<Offset>,
    failed: Option<String>,
    closed: bool,
    max_timestamp: i64,
    max_timestamp_offset: Offset,
    producers: ProducerState,
    /// The cleaner's first dirty offset (persisted in `CLEANER_CHECKPOINT`).
    cleaner_checkpoint: Offset,
    /// When the earliest tombstone the cleaner kept may go (clock ms; i64::MAX: none).
    /// Not persisted: 0 after open, so the first pass looks once.
    tombstones_due_ms: i64,
}

impl<F: StorageFile> LogState<F> {
    fn check_invariants(&self) {
        assert!(
            self.durable <= self.written && self.written <= self.assigned,
            "offset order broken: durable {} written {} assigned {}",
            self.durable,
            self.written,
            self.assigned
        );
    }

    /// End of what consumers may read.
    fn visible_end(&self) -> Offset {
        self.replicated_hw
            .map_or(self.written, |hw| hw.min(self.written))
    }

    fn active(&self) -> &Rc<Segment<F>> {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn release_waiters(&mut self, upto: Offset) {
        while self.waiters.front().is_some_and(|w| w.end <= upto) {
            if let Some(w) = self.waiters.pop_front() {
                let _ = w.tx.send(Ok(()));
            }
        }
    }

    fn wake_readers(&mut self) {
        for tx in self.data_waiters.drain(..) {
            let _ = tx.send(());
        }
    }
}

/// A partition's log; see the module docs for the offset contract.
pub struct PartitionLog<S: Storage = DmaStorage> {
    tp: TopicPartition,
    dir: PathBuf,
    storage: S,
    clock: Rc<dyn Clock>,
    durability: Durability,
    st: RefCell<LogState<S::File>>,
    append_lock: async_lock::Mutex<()>,
    /// Held while closed segments are deleted or replaced (retention, DeleteRecords, the
    /// cleaner's swap, close, remove), so the cleaner's fsyncs never stall appends. Taken
    /// before `append_lock` when both are needed.
    segments_lock: async_lock::Mutex<()>,
    flush_lock: async_lock::Mutex<()>,
    stats: crate::log::stats::LogStats,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SyncMode {
    /// Follow the durability policy.
    Policy,
    /// Write and fdatasync whatever the policy (roll, close, interval tick).
    Force,
}

impl<S: Storage> PartitionLog<S>
where
    S::File: Clone,
{
    /// Opens the partition's directory, creating it if needed, and recovers: closed segments
    /// load their index (rebuilt by a scan when missing or invalid); the last segment is
    /// scanned and its torn or corrupt tail truncated, unless a clean-shutdown index proves
    /// it intact.
    pub async fn open(
        storage: S,
        dir: PathBuf,
        tp: TopicPartition,
        config: LogConfig,
        durability: Durability,
        clock: Rc<dyn Clock>,
    ) -> Result<Self, LogError> {
        let io_err = |path: &Path, e: io::Error| LogError::Io {
            tp: tp.clone(),
            path: path.to_path_buf(),
            source: Arc::new(e),
        };
        storage
            .create_dir_all(&dir)
            .await
            .map_err(|e| io_err(&dir, e))?;
        let names = storage.list_dir(&dir).await.map_err(|e| io_err(&dir, e))?;
        let mut bases: Vec<Offset> = names
            .iter()
            .filter_map(|n| parse_log_file_name(n))
            .collect();
        bases.sort();
        // Leftovers of an interrupted small-file replace or cleaner pass: the originals are
        // intact (a cleaned copy replaces its segment by one atomic rename).
        for name in names
            .iter()
            .filter(|n| n.ends_with(".tmp") || n.ends_with(CLEANED_SUFFIX))
        {
            let p = dir.join(name);
            storage.remove_file(&p).await.map_err(|e| io_err(&p, e))?;
        }
        let checkpoint = read_checkpoint(&storage, &dir, LOG_START_CHECKPOINT)
            .await
            .map_err(|e| io_err(&dir.join(LOG_START_CHECKPOINT), e))?;
        let cleaner_checkpoint = read_checkpoint(&storage, &dir, CLEANER_CHECKPOINT)
            .await
            .map_err(|e| io_err(&dir.join(CLEANER_CHECKPOINT), e))?;

        let now = clock.now_ms();
        let mut segments = BTreeMap::new();
        let mut last_scan: Option<(Offset, ProducerState)> = None;
        let last_index = bases.len().checked_sub(1);
        for (i, base) in bases.iter().enumerate() {
            let is_last = Some(i) == last_index;
            let (seg, scanned) =
                recover_segment(&storage, &dir, &tp, *base, &config, is_last, now).await?;
            if is_last {
                last_scan = scanned.map(|p| (*base, p));
            }
            segments.insert(base.0, Rc::new(seg));
        }
        if segments.is_empty() {
            let base = checkpoint.unwrap_or(Offset::ZERO);
            let seg = create_segment(&storage, &dir, &tp, base, &config, now).await?;
            segments.insert(base.0, Rc::new(seg));
        }
        // A closed segment wholly inside the previous one's offset range is what a crash
        // leaves of a cleaner merge after its commit point: the merged copy holds its
        // surviving records. Finish the merge by deleting it.
        let mut covered = Vec::new();
        let mut prev_end: Option<Offset> = None;
        let last_base = segments.keys().next_back().copied();
        for (base, seg) in &segments {
            let next = seg.st.borrow().next_offset;
            if let Some(end) = prev_end {
                if seg.base_offset < end && next <= end && Some(*base) != last_base {
                    covered.push(*base);
                    continue;
                }
            }
            prev_end = Some(next);
        }
        let finish_merge = !covered.is_empty();
        for base in covered {
            if let Some(seg) = segments.remove(&base) {
                tracing::info!(partition = %tp, segment = %seg.base_offset, "removing a segment merged by the cleaner before a crash");
                for path in [&seg.index_path, &seg.log_path] {
                    match storage.remove_file(path).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err(path, e)),
                    }
                }
            }
        }
        if finish_merge {
            storage.sync_dir(&dir).await.map_err(|e| io_err(&dir, e))?;
        }
        // Offsets must be contiguous across segments: each segment starts where the previous
        // ended. A gap means a lost or foreign file; refuse rather than serve a hole.
        let mut prev_end: Option<Offset> = None;
        for seg in segments.values() {
            let st = seg.st.borrow();
            if let Some(end) = prev_end {
                if end != seg.base_offset {
                    return Err(LogError::Corrupt {
                        tp: tp.clone(),
                        path: seg.log_path.clone(),
                        position: 0,
                        detail: format!(
                            "segment starts at {} but the previous one ends at {}",
                            seg.base_offset, end
                        ),
                    });
                }
            }
            prev_end = Some(st.next_offset);
        }
        let first_base = segments
            .values()
            .next()
            .map(|s| s.base_offset)
            .unwrap_or_default();
        let end = prev_end.unwrap_or(first_base);
        let log_start = checkpoint
            .map_or(first_base, |c| c.max(first_base))
            .min(end);
        let (mut max_ts, mut max_ts_off) = (-1i64, Offset(-1));
        for seg in segments.values() {
            let st = seg.st.borrow();
            if st.index.max_timestamp > max_ts {
                max_ts = st.index.max_timestamp;
                max_ts_off = Offset(st.index.max_timestamp_offset);
            }
        }
        let state = LogState {
            config,
            segments,
            log_start,
            assigned: end,
            written: end,
            durable: end,
            pending: VecDeque::new(),
            waiters: VecDeque::new(),
            data_waiters: Vec::new(),
            replicated_hw: None,
            failed: None,
            closed: false,
            max_timestamp: max_ts,
            max_timestamp_offset: max_ts_off,
            producers: ProducerState::default(),
            cleaner_checkpoint: cleaner_checkpoint.unwrap_or(log_start).min(end),
            tombstones_due_ms: 0,
        };
        state.check_invariants();
        let log = PartitionLog {
            tp,
            dir,
            storage,
            clock,
            durability,
            st: RefCell::new(state),
            append_lock: async_lock::Mutex::new(()),
            segments_lock: async_lock::Mutex::new(()),
            flush_lock: async_lock::Mutex::new(()),
            stats: Default::default(),
        };
        log.rebuild_producer_state(last_scan).await?;
        Ok(log)
    }

    /// Loads the producer-state snapshot (taken at the last roll or clean close) and replays
    /// the idempotent batches after it, so retries after a restart are still deduplicated.
    async fn rebuild_producer_state(
        &self,
        last_scan: Option<(Offset, ProducerState)>,
    ) -> Result<(), LogError> {
        let path = self.dir.join(PRODUCER_SNAPSHOT);
        let snapshot = read_small_file(&self.storage, &path)
            .await
            .map_err(|e| self.io_error(&path, e))?;
        let (start, end) = {
            let st = self.st.borrow();
            (st.log_start, st.written)
        };
        let (mut state, mut from) =
            match snapshot.as_deref().and_then(ProducerState::decode_snapshot) {
                Some((state, next)) if next <= end => (state, next.max(start)),
                _ => (ProducerState::default(), start),
            };
        // Recovery already scanned the last segment: if the snapshot (or the log start)
        // reaches its base, its state completes the picture without reading it again.
        if let Some((base, scanned)) = last_scan {
            if from >= base {
                state.merge_newer(scanned);
                from = end;
            }
        }
        while from < end {
            let r = self.read(from, 4 << 20).await?;
            if r.bytes.is_empty() {
                break;
            }
            for view in batches(&r.bytes) {
                let view = view.map_err(|source| LogError::Batch {
                    tp: self.tp.clone(),
                    source,
                })?;
                if view.last_offset() >= from {
                    state.record(&view);
                }
                from = view.last_offset().next();
            }
        }
        self.st.borrow_mut().producers = state;
        Ok(())
    }

    async fn persist_producer_state(&self) -> Result<(), LogError> {
        let path = self.dir.join(PRODUCER_SNAPSHOT);
        let bytes = {
            let st = self.st.borrow();
            st.producers.encode_snapshot(st.assigned)
        };
        replace_small_file(&self.storage, &path, &bytes)
            .await
            .map_err(|e| self.io_error(&path, e))
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn log_start_offset(&self) -> Offset {
        self.st.borrow().log_start
    }
    /// End of what consumers may read: written data, capped by the replicated high
    /// watermark when the partition is replicated.
    pub fn high_watermark(&self) -> Offset {
        self.st.borrow().visible_end()
    }
    /// A replicated partition's replica sets its high watermark here (never above the
    /// written end for readers); waiting readers wake when it moves up.
    pub fn set_replicated_high_watermark(&self, hw: Offset) {
        let mut st = self.st.borrow_mut();
        let before = st.visible_end();
        st.replicated_hw = Some(hw);
        if st.visible_end() > before {
            st.wake_readers();
        }
    }
    /// End of what this log has written (the log end offset consumers cannot see yet on a
    /// replicated partition).
    pub fn written_end(&self) -> Offset {
        self.st.borrow().written
    }
    pub fn log_end_offset(&self) -> Offset {
        self.st.borrow().assigned
    }
    pub fn durable_offset(&self) -> Offset {
        self.st.borrow().durable
    }
    pub fn config(&self) -> LogConfig {
        self.st.borrow().config.clone()
    }
    pub fn set_config(&self, config: LogConfig) {
        self.st.borrow_mut().config = config;
    }
    /// Counters and fdatasync latencies for metrics.
    pub fn stats(&self) -> &crate::log::stats::LogStats {
        &self.stats
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }
    /// Bytes of frames in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.st.borrow().segments.values().map(|s| s.size()).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.st.borrow().segments.len()
    }
    /// Largest batch timestamp and the last offset of its batch.
    pub fn max_timestamp(&self) -> Option<(Offset, i64)> {
        let st = self.st.borrow();
        (st.max_timestamp >= 0).then_some((st.max_timestamp_offset, st.max_timestamp))
    }

    fn io_error(&self, path: &Path, e: io::Error) -> LogError {
        LogError::Io {
            tp: self.tp.clone(),
            path: path.to_path_buf(),
            source: Arc::new(e),
        }
    }

    fn check_writable(&self) -> Result<(), LogError> {
        let st = self.st.borrow();
        if st.closed {
            return Err(LogError::Closed {
                tp: self.tp.clone(),
            });
        }
        if let Some(reason) = &st.failed {
            return Err(LogError::Failed {
                tp: self.tp.clone(),
                reason: reason.clone(),
            });
        }
        Ok(())
    }

    /// Appends a Kafka record set (one or more RecordBatch v2). Validates every batch (magic,
    /// length, CRC-32C, size limit) before touching the log, stamps base offset and leader
    /// epoch (and LogAppendTime if configured), and resolves per the durability policy: when
    /// durable (`PerWrite`, `GroupCommit`) or written (`Interval`, `None`).
    pub async fn append(
        &self,
        records: &[u8],
        opts: AppendOptions,
    ) -> Result<AppendInfo, LogError> {
        validate_record_set(records, opts.batch_bytes_max).map_err(|source| LogError::Batch {
            tp: self.tp.clone(),
            source,
        })?;
        if self.st.borrow().config.cleanup_policy.compacts() {
            self.check_keys(records)?;
        }
        self.check_writable()?;
        let guard = self.append_lock.lock().await;
        self.check_writable()?;
        let now = self.clock.now_ms();
        let log_append = self.st.borrow().config.log_append_time;
        let timestamp = if log_append {
            TimestampStamp::LogAppendTime { now_ms: now }
        } else {
            TimestampStamp::CreateTime
        };
        let mut first: Option<Offset> = None;
        let mut last = Offset(-1);
        for view in batches(records) {
            let view = view.map_err(|source| LogError::Batch {
                tp: self.tp.clone(),
                source,
            })?;
            let check =
                self.st
                    .borrow()
                    .producers
                    .check(&view)
                    .map_err(|source| LogError::Sequence {
                        tp: self.tp.clone(),
                        source,
                    })?;
            if let SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } = check
            {
                // A retry of a batch already in the log: answer with its original offsets once
                // they are as durable as a fresh append would be.
                first.get_or_insert(base_offset);
                last = last.max(last_offset);
                continue;
            }
            let frame_bytes = (FRAME_HEADER_BYTES + view.len()) as u64;
            self.maybe_roll(frame_bytes, now).await?;
            let (base, batch_last) =
                self.copy_into_chunk(&view, Some((opts.leader_epoch, timestamp)));
            first.get_or_insert(base);
            last = batch_last;
        }
        let base = first.expect("validated record sets hold at least one batch");
        self.finish_append(guard, last).await?;
        Ok(AppendInfo {
            base_offset: base,
            last_offset: last,
            log_append_time_ms: if log_append { now } else { -1 },
            log_start_offset: self.log_start_offset(),
        })
    }

    /// Appends batches copied from the partition leader as they are: base offsets and leader
    /// epochs stay the leader's. The first batch must start at this log's end offset and each
    /// next one right after the previous (else `NotContiguous`, and nothing is appended).
    /// Every batch's CRC is checked before the log is touched. Producer state is recorded,
    /// not checked: the leader deduplicated already. Resolves per the durability policy,
    /// like [`append`](Self::append): durable for `PerWrite`/`GroupCommit`, else written.
    pub async fn append_replicated(&self, records: &[u8]) -> Result<AppendInfo, LogError> {
        validate_record_set(records, crate::limits::BATCH_BYTES_MAX).map_err(|source| {
            LogError::Batch {
                tp: self.tp.clone(),
                source,
            }
        })?;
        self.check_writable()?;
        let guard = self.append_lock.lock().await;
        self.check_writable()?;
        let mut expected = self.st.borrow().assigned;
        for view in batches(records) {
            let view = view.map_err(|source| LogError::Batch {
                tp: self.tp.clone(),
                source,
            })?;
            if view.base_offset() != expected {
                return Err(LogError::NotContiguous {
                    tp: self.tp.clone(),
                    expected,
                    got: view.base_offset(),
                });
            }
            expected = view.last_offset().next();
        }
        let now = self.clock.now_ms();
        let mut first: Option<Offset> = None;
        let mut last = Offset(-1);
        for view in batches(records) {
            let view = view.map_err(|source| LogError::Batch {
                tp: self.tp.clone(),
                source,
            })?;
            let frame_bytes = (FRAME_HEADER_BYTES + view.len()) as u64;
            self.maybe_roll(frame_bytes, now).await?;
            let (base, batch_last) = self.copy_into_chunk(&view, None);
            first.get_or_insert(base);
            last = batch_last;
        }
        let base = first.expect("validated record sets hold at least one batch");
        self.finish_append(guard, last).await?;
        Ok(AppendInfo {
            base_offset: base,
            last_offset: last,
            log_append_time_ms: -1,
            log_start_offset: self.log_start_offset(),
        })
    }

    /// Queues a waiter for offsets up to `last`, starts a flush round if none is running, and
    /// resolves when the policy's level (durable or written) covers `last`.
    async fn finish_append(
        &self,
        guard: async_lock::MutexGuard<'_, ()>,
        last: Offset,
    ) -> Result<(), LogError> {
        let rx = {
            let mut st = self.st.borrow_mut();
            st.check_invariants();
            let (tx, rx) = oneshot::channel();
            let end = last.next();
            let reached = match self.durability {
                Durability::PerWrite | Durability::GroupCommit => st.durable,
                Durability::Interval { .. } | Durability::None => st.written,
            };
            if end <= reached {
                // Only duplicates, already as durable as the policy asks.
                let _ = tx.send(Ok(()));
            } else {
                // Waiters resolve in queue order: keep the queue's ends non-decreasing.
                let end = st.waiters.back().map_or(end, |w| w.end.max(end));
                st.waiters.push_back(Waiter { end, tx });
            }
            assert!(
                st.waiters.len() <= APPENDS_PENDING_MAX * 4,
                "waiter queue unbounded"
            );
            rx
        };
        if self.durability == Durability::PerWrite {
            // One write and one fdatasync per append: keep the append lock across the flush.
            let _flush = self.flush_lock.lock().await;
            self.flush_locked(SyncMode::Policy).await;
            drop(guard);
        } else {
            drop(guard);
            if let Some(_flush) = self.flush_lock.try_lock() {
                self.flush_locked(SyncMode::Policy).await;
            }
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LogError::Closed {
                tp: self.tp.clone(),
            }),
        }
    }

    /// A compacted topic accepts only keyed records (Kafka refuses the produce with
    /// INVALID_RECORD). Looks inside compressed batches; control batches are exempt.
    fn check_keys(&self, records: &[u8]) -> Result<(), LogError> {
        let refuse = |source| LogError::Batch {
            tp: self.tp.clone(),
            source,
        };
        for view in batches(records) {
            let view = view.map_err(refuse)?;
            if view.is_control() {
                continue;
            }
            match crate::records::all_records_keyed(
                &view,
                crate::limits::DECOMPRESSED_BATCH_BYTES_MAX,
            ) {
                Ok(true) => {}
                Ok(false) => return Err(refuse(BatchError::MissingKey)),
                Err(e) => return Err(refuse(BatchError::Records(e.to_string()))),
            }
        }
        Ok(())
    }

    /// Copies one validated batch into the active segment's write chunk and stamps it with
    /// the next offset and `stamp_with`; `None` keeps the batch as it is (a replica's copy of
    /// the leader's batch, whose base offset must then be the log end offset).
    fn copy_into_chunk(
        &self,
        view: &BatchView<'_>,
        stamp_with: Option<(LeaderEpoch, TimestampStamp)>,
    ) -> (Offset, Offset) {
        let mut guard = self.st.borrow_mut();
        let st = &mut *guard;
        let seg = st.active().clone();
        let frame_bytes = FRAME_HEADER_BYTES + view.len();
        let base = st.assigned;
        let last = Offset(base.0 + view.last_offset_delta() as i64);
        let mut sst = seg.st.borrow_mut();
        let position = sst.size;
        let fits = st.pending.back().is_some_and(|c| {
            Rc::ptr_eq(&c.segment, &seg)
                && (position - c.file_pos) as usize + frame_bytes <= c.buf.bytes().len()
        });
        if !fits {
            let aligned = align_down(position);
            let carry = (position - aligned) as usize;
            let capacity =
                (WRITE_CHUNK_BYTES as u64).max(align_up((carry + frame_bytes) as u64)) as usize;
            let mut buf = seg.file.alloc_buffer(capacity);
            let prev = st.pending.back().filter(|c| Rc::ptr_eq(&c.segment, &seg));
            match prev {
                Some(prev) => {
                    let from = (aligned - prev.file_pos) as usize;
                    buf.bytes_mut()[..carry].copy_from_slice(&prev.buf.bytes()[from..from + carry]);
                }
                None => {
                    assert_eq!(
                        sst.tail_block.len(),
                        carry,
                        "tail block out of step with segment size"
                    );
                    buf.bytes_mut()[..carry].copy_from_slice(&sst.tail_block);
                }
            }
            st.pending.push_back(Chunk {
                segment: seg.clone(),
                file_pos: aligned,
                buf,
                len: carry,
                end_offset: st.assigned,
            });
        }
        let chunk = st.pending.back_mut().expect("a chunk was just ensured");
        let at = (position - chunk.file_pos) as usize;
        let dst = &mut chunk.buf.bytes_mut()[at..at + frame_bytes];
        let (head, body) = dst.split_at_mut(FRAME_HEADER_BYTES);
        body.copy_from_slice(view.bytes());
        match stamp_with {
            Some((epoch, timestamp)) => stamp(body, base, epoch, timestamp),
            None => assert_eq!(
                view.base_offset(),
                base,
                "replicated batch is not contiguous with the log end (checked before the copy)"
            ),
        }
        let stamped = BatchView::parse(body).expect("a validated batch stays valid after stamping");
        let max_ts = stamped.max_timestamp();
        FrameHeader::for_batch(&stamped).encode_into(head);
        st.producers.record(&stamped);
        crate::log::stats::LogStats::add(
            &self.stats.appended_bytes,
            frame_bytes as u64 - FRAME_HEADER_BYTES as u64,
        );
        crate::log::stats::LogStats::add(&self.stats.appended_batches, 1);
        chunk.len = at + frame_bytes;
        chunk.end_offset = last.next();
        let interval = st.config.index_interval_bytes;
        sst.index.on_append(
            seg.base_offset,
            base,
            last,
            position,
            frame_bytes as u64,
            max_ts,
            interval,
        );
        sst.size += frame_bytes as u64;
        sst.next_offset = last.next();
        st.assigned = last.next();
        if max_ts > st.max_timestamp {
            st.max_timestamp = max_ts;
            st.max_timestamp_offset = last;
        }
        (base, last)
    }

    async fn maybe_roll(&self, frame_bytes: u64, now: i64) -> Result<(), LogError> {
        let roll = {
            let st = self.st.borrow();
            let sst = st.active().st.borrow();
            let segment_bytes = st.config.segment_bytes_clamped();
            sst.size > 0
                && (sst.size + frame_bytes > segment_bytes
                    || (st.config.segment_ms > 0 && now - sst.created_ms >= st.config.segment_ms))
        };
        if roll {
            self.roll(now).await?;
        }
        Ok(())
    }

    /// Seals the active segment (all of it written, synced, its index persisted and the file
    /// trimmed) and starts a new one at the log end offset.
    async fn roll(&self, now: i64) -> Result<(), LogError> {
        self.flush_all().await?;
        let (old, base, config) = {
            let st = self.st.borrow();
            (st.active().clone(), st.assigned, st.config.clone())
        };
        self.persist_index(&old).await?;
        self.persist_producer_state().await?;
        let size = old.size();
        old.file
            .truncate(size)
            .await
            .map_err(|e| self.io_error(&old.log_path, e))?;
        old.st.borrow_mut().sealed = true;
        let seg = create_segment(&self.storage, &self.dir, &self.tp, base, &config, now).await?;
        self.st.borrow_mut().segments.insert(base.0, Rc::new(seg));
        Ok(())
    }

    async fn persist_index(&self, seg: &Segment<S::File>) -> Result<(), LogError> {
        let bytes = {
            let sst = seg.st.borrow();
            encode_index(
                &sst.index
                    .to_file(seg.base_offset, sst.size, sst.next_offset),
            )
        };
        write_small_file(&self.storage, &seg.index_path, &bytes)
            .await
            .map_err(|e| self.io_error(&seg.index_path, e))
    }

    /// Writes and fdatasyncs everything appended so far, whatever the policy. Resolves when
    /// all of it is durable.
    pub async fn flush_all(&self) -> Result<(), LogError> {
        let _flush = self.flush_lock.lock().await;
        self.flush_locked(SyncMode::Force).await;
        match &self.st.borrow().failed {
            Some(reason) => Err(LogError::Failed {
                tp: self.tp.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The flusher: while chunks are pending, write them in order, then fdatasync once for
    /// all of them when the policy (or `mode`) asks. Called with the flush lock held; returns
    /// only when nothing is pending, so an append that could not take the lock is covered.
    async fn flush_locked(&self, mode: SyncMode) {
        loop {
            let chunks: Vec<Chunk<S::File>> = {
                let mut st = self.st.borrow_mut();
                if st.failed.is_some() {
                    return;
                }
                if st.pending.is_empty() && (mode == SyncMode::Policy || st.durable == st.written) {
                    return;
                }
                let chunks: Vec<_> = st.pending.drain(..).collect();
                // The next chunk of each segment rewrites the partial last block: keep a copy.
                for c in &chunks {
                    let tail = align_down(c.len as u64) as usize;
                    let mut sst = c.segment.st.borrow_mut();
                    sst.tail_block.clear();
                    sst.tail_block
                        .extend_from_slice(&c.buf.bytes()[tail..c.len]);
                }
                chunks
            };
            let mut touched: Vec<Rc<Segment<S::File>>> = Vec::new();
            let Some(last_end_offset) = chunks.last().map(|c| c.end_offset) else {
                // Nothing pending but a forced sync of what is already written.
                touched.push(self.st.borrow().active().clone());
                self.sync_round(&touched).await;
                continue;
            };
            // Chunks of one segment are disjoint once each hands its partial last block to the
            // next chunk (which carries a copy), so a round's writes go to the device at once.
            let mut writes = Vec::with_capacity(chunks.len());
            let mut ends: Vec<(Rc<Segment<S::File>>, u64)> = Vec::new();
            let count = chunks.len();
            let mut chunks: Vec<Option<Chunk<S::File>>> = chunks.into_iter().map(Some).collect();
            for i in 0..count {
                let Some(mut chunk) = chunks[i].take() else {
                    continue;
                };
                let followed = chunks[i + 1..]
                    .iter()
                    .flatten()
                    .any(|c| Rc::ptr_eq(&c.segment, &chunk.segment));
                let write_len = if followed {
                    align_down(chunk.len as u64) as usize
                } else {
                    align_up(chunk.len as u64) as usize
                };
                let end_pos = chunk.file_pos + chunk.len as u64;
                match ends.iter_mut().find(|(s, _)| Rc::ptr_eq(s, &chunk.segment)) {
                    Some(e) => e.1 = e.1.max(end_pos),
                    None => ends.push((chunk.segment.clone(), end_pos)),
                }
                if let Err(e) = reserve(&chunk.segment, chunk.file_pos + write_len as u64).await {
                    self.fail(&chunk.segment.log_path, e);
                    return;
                }
                if write_len == 0 {
                    continue;
                }
                if write_len > chunk.len {
                    // Zero the padding after the last frame: recovery reads it as "no frame".
                    chunk.buf.bytes_mut()[chunk.len..write_len].fill(0);
                }
                chunk.buf.shrink_to(write_len);
                let seg = chunk.segment.clone();
                writes
                    .push(async move { (seg.file.write_at(chunk.buf, chunk.file_pos).await, seg) });
            }
            for (result, seg) in futures_util::future::join_all(writes).await {
                if let Err(e) = result {
                    self.fail(&seg.log_path, e);
                    return;
                }
            }
            {
                let mut st = self.st.borrow_mut();
                for (seg, end_pos) in &ends {
                    seg.st.borrow_mut().written = *end_pos;
                    touched.push(seg.clone());
                }
                st.written = last_end_offset;
                st.check_invariants();
                st.wake_readers();
                if mode == SyncMode::Policy
                    && matches!(
                        self.durability,
                        Durability::Interval { .. } | Durability::None
                    )
                {
                    st.release_waiters(last_end_offset);
                }
            }
            let sync = mode == SyncMode::Force
                || matches!(
                    self.durability,
                    Durability::PerWrite | Durability::GroupCommit
                );
            if sync && !self.sync_round(&touched).await {
                return;
            }
        }
    }

    /// fdatasyncs the segments written in this round; everything written before is then
    /// durable. Returns false if the log failed.
    async fn sync_round(&self, touched: &[Rc<Segment<S::File>>]) -> bool {
        let target = self.st.borrow().written;
        for seg in touched {
            let started = self.clock.monotonic_us();
            if let Err(e) = seg.file.sync().await {
                self.fail(&seg.log_path, e);
                return false;
            }
            self.stats
                .record_sync(self.clock.monotonic_us().saturating_sub(started));
        }
        let mut st = self.st.borrow_mut();
        st.durable = st.durable.max(target);
        st.check_invariants();
        st.release_waiters(target);
        true
    }

    /// An I/O error leaves the log's on-disk tail unknown: refuse further writes and fail
    /// every waiting append. Data already durable stays readable.
    fn fail(&self, path: &Path, e: io::Error) {
        tracing::error!(partition = %self.tp, path = %path.display(), error = %e, "log write failed; partition refuses writes");
        let err = self.io_error(path, e);
        let mut st = self.st.borrow_mut();
        st.failed = Some(err.to_string());
        for w in st.waiters.drain(..) {
            let _ = w.tx.send(Err(err.clone()));
        }
        st.pending.clear();
    }

    /// Reads whole batches starting with the one that contains `from`, up to `max_bytes`
    /// but always at least one batch when any exists below the high watermark. Sees data as
    /// soon as it is written.
    pub async fn read(&self, from: Offset, max_bytes: usize) -> Result<ReadResult, LogError> {
        let hw = self.high_watermark();
        self.read_upto(from, max_bytes, hw).await
    }

    /// [`read`](Self::read) that serves no batch starting at or above `upto`: a replicated
    /// partition passes its high watermark so consumers never see uncommitted records (the
    /// log's own written end may be ahead of it). `high_watermark` in the result is the
    /// lower of the two.
    pub async fn read_upto(
        &self,
        from: Offset,
        max_bytes: usize,
        upto: Offset,
    ) -> Result<ReadResult, LogError> {
        let max_bytes = max_bytes.min(READ_BYTES_MAX);
        let (seg, hw, log_start) = {
            let st = self.st.borrow();
            if from < st.log_start || from > st.written {
                return Err(LogError::OffsetOutOfRange {
                    tp: self.tp.clone(),
                    requested: from,
                    log_start: st.log_start,
                    high_watermark: st.written,
                });
            }
            let seg = st
                .segments
                .range(..=from.0)
                .next_back()
                .map(|(_, s)| s.clone());
            (seg, st.written.min(upto), st.log_start)
        };
        let mut result = ReadResult {
            bytes: Vec::new(),
            high_watermark: hw,
            log_start_offset: log_start,
        };
        let Some(mut seg) = seg else {
            return Ok(result);
        };
        let mut from = from;
        while from < hw {
            let (start, limit) = {
                let sst = seg.st.borrow();
                (sst.index.lookup_offset(seg.base_offset, from), sst.written)
            };
            let before = result.bytes.len();
            let next = self
                .read_segment(&seg, start, limit, from, hw, max_bytes, &mut result.bytes)
                .await?;
            if result.bytes.len() > before || next.is_none() {
                break;
            }
            // Nothing at or after `from` in this segment: continue in the one that now holds
            // its end offset (the cleaner may have merged what followed into a new copy of
            // this one), else in the next one.
            let next_seg = {
                let st = self.st.borrow();
                let end = sst_next(&seg);
                st.segments
                    .range(..=end.0)
                    .next_back()
                    .filter(|(_, s)| !Rc::ptr_eq(s, &seg) && sst_next(s) > end)
                    .or_else(|| st.segments.range(seg.base_offset.0 + 1..).next())
                    .map(|(_, s)| s.clone())
            };
            match next_seg {
                Some(s) => {
                    from = from.max(s.base_offset);
                    seg = s;
                }
                None => break,
            }
        }
        crate::log::stats::LogStats::add(&self.stats.read_bytes, result.bytes.len() as u64);
        Ok(result)
    }

    /// Scans frames of `seg` from `pos` (a frame boundary) below `limit`; appends batches that
    /// end at or after `from` and start below `hw` to `out`, within `max_bytes` (at least one).
    /// Returns `Some(())` if it reached the segment's written end without filling `out`.
    #[allow(clippy::too_many_arguments)]
    async fn read_segment(
        &self,
        seg: &Segment<S::File>,
        mut pos: u64,
        limit: u64,
        from: Offset,
        hw: Offset,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<Option<()>, LogError> {
        let window_bytes = (max_bytes + 64 * 1024).min(READ_BYTES_MAX) as u64;
        while pos < limit {
            let want = window_bytes.min(limit - pos) as usize;
            let window = seg
                .file
                .read_at(pos, want)
                .await
                .map_err(|e| self.io_error(&seg.log_path, e))?;
            if out.capacity() == 0 {
                // One allocation for the answer instead of a doubling series.
                out.reserve(max_bytes.min(window.len()));
            }
            let mut at = 0usize;
            loop {
                let rest = &window[at..];
                if rest.len() < FRAME_HEADER_BYTES {
                    break;
                }
                let header = FrameHeader::decode(rest)
                    .map_err(|e| self.corrupt(seg, pos + at as u64, e.to_string()))?;
                if header.base_offset >= hw.0 {
                    return Ok(None);
                }
                let frame = header.frame_bytes();
                let batch_len = header.batch_bytes as usize;
                if header.last_offset() >= from.0
                    && !out.is_empty()
                    && out.len() + batch_len > max_bytes
                {
                    return Ok(None);
                }
                if rest.len() < frame {
                    if at == 0 {
                        // One frame larger than the window: read exactly it.
                        let whole = seg
                            .file
                            .read_at(pos, frame)
                            .await
                            .map_err(|e| self.io_error(&seg.log_path, e))?;
                        if whole.len() < frame {
                            return Err(self.corrupt(
                                seg,
                                pos,
                                "frame runs past the written end".into(),
                            ));
                        }
                        let batch = &whole[FRAME_HEADER_BYTES..frame];
                        check_served(&header, batch).map_err(|e| self.corrupt(seg, pos, e))?;
                        if header.last_offset() >= from.0 {
                            out.extend_from_slice(batch);
                        }
                        at = frame;
                    }
                    break;
                }
                let batch = &rest[FRAME_HEADER_BYTES..frame];
                check_served(&header, batch).map_err(|e| self.corrupt(seg, pos + at as u64, e))?;
                if header.last_offset() >= from.0 {
                    out.extend_from_slice(batch);
                    if out.len() >= max_bytes {
                        return Ok(None);
                    }
                }
                at += frame;
            }
            if at == 0 {
                return Err(self.corrupt(seg, pos, "no whole frame in the written range".into()));
            }
            pos += at as u64;
        }
        Ok(Some(()))
    }

    fn corrupt(&self, seg: &Segment<S::File>, position: u64, detail: String) -> LogError {
        LogError::Corrupt {
            tp: self.tp.clone(),
            path: seg.log_path.clone(),
            position,
            detail,
        }
    }

    /// The first written batch whose max timestamp is >= `ts_ms`, with its bytes (the caller
    /// picks the record inside, decompressing if it must).
    pub async fn batch_for_timestamp(&self, ts_ms: i64) -> Result<Option<TimestampHit>, LogError> {
        let (segs, hw, log_start) = {
            let st = self.st.borrow();
            (
                st.segments.values().cloned().collect::<Vec<_>>(),
                st.visible_end(),
                st.log_start,
            )
        };
        for seg in segs {
            let (start, limit, seg_max) = {
                let sst = seg.st.borrow();
                (
                    sst.index.lookup_time(ts_ms),
                    sst.written,
                    sst.index.max_timestamp,
                )
            };
            if seg_max < ts_ms || sst_next(&seg) <= log_start {
                continue;
            }
            let mut pos = start;
            while pos < limit {
                let head = seg
                    .file
                    .read_at(pos, FRAME_HEADER_BYTES)
                    .await
                    .map_err(|e| self.io_error(&seg.log_path, e))?;
                let header = FrameHeader::decode(&head)
                    .map_err(|e| self.corrupt(&seg, pos, e.to_string()))?;
                if header.base_offset >= hw.0 {
                    return Ok(None);
                }
                if header.max_timestamp >= ts_ms && header.last_offset() >= log_start.0 {
                    let whole = seg
                        .file
                        .read_at(pos + FRAME_HEADER_BYTES as u64, header.batch_bytes as usize)
                        .await
                        .map_err(|e| self.io_error(&seg.log_path, e))?;
                    header
                        .check_batch(&whole)
                        .map_err(|e| self.corrupt(&seg, pos, e.to_string()))?;
                    return Ok(Some(TimestampHit {
                        batch_base_offset: Offset(header.base_offset),
                        batch_max_timestamp: header.max_timestamp,
                        batch: whole.to_vec(),
                    }));
                }
                pos += header.frame_bytes() as u64;
            }
        }
        Ok(None)
    }

    /// Resolves once the high watermark is above `beyond` (immediately if it already is).
    /// Callers bound the wait with their own timeout.
    pub async fn wait_for_data(&self, beyond: Offset) {
        loop {
            let rx = {
                let mut st = self.st.borrow_mut();
                if st.visible_end() > beyond || st.closed {
                    return;
                }
                st.data_waiters.retain(|tx| !tx.is_canceled());
                let (tx, rx) = oneshot::channel();
                st.data_waiters.push(tx);
                rx
            };
            let _ = rx.await;
        }
    }

    /// Removes every batch at or above `offset` (a replica whose log diverged from its
    /// leader's, KIP-101). Cuts at a batch boundary: when `offset` falls inside a batch, that
    /// whole batch goes too. Returns the new log end offset (`<= offset`). When it resolves
    /// the cut is durable: later segments are deleted newest first (so a crash part-way never
    /// leaves a gap), the cut segment is truncated and fdatasynced, the directory synced.
    /// An `offset` at or below the log start empties the log and restarts it at `offset`.
    pub async fn truncate_to(&self, offset: Offset) -> Result<Offset, LogError> {
        let _guard = self.append_lock.lock().await;
        self.check_writable()?;
        self.flush_all().await?;
        let (assigned, log_start) = {
            let st = self.st.borrow();
            (st.assigned, st.log_start)
        };
        if offset >= assigned {
            return Ok(assigned);
        }
        if offset <= log_start {
            return self.restart_empty_at(offset).await;
        }
        let now = self.clock.now_ms();
        let config = self.config();
        // Newest first, so a crash part-way leaves a contiguous (shorter) log.
        let doomed: Vec<_> = {
            let mut st = self.st.borrow_mut();
            let bases: Vec<i64> = st.segments.range(offset.0..).map(|(b, _)| *b).collect();
            bases
                .iter()
                .rev()
                .filter_map(|b| st.segments.remove(b))
                .collect()
        };
        self.delete_segment_files(doomed).await?;
        let seg = {
            let st = self.st.borrow();
            st.segments
                .values()
                .next_back()
                .cloned()
                .expect("offset > log start keeps the segment holding it")
        };
        let cut = self.batch_position_at_or_after(&seg, offset).await?;
        seg.file
            .truncate(cut)
            .await
            .map_err(|e| self.io_error(&seg.log_path, e))?;
        seg.file
            .sync()
            .await
            .map_err(|e| self.io_error(&seg.log_path, e))?;
        match self.storage.remove_file(&seg.index_path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io_error(&seg.index_path, e)),
        }
        // Rebuild the segment's state (index, tail block, reservation) from what is now on
        // disk, exactly as recovery after a crash would.
        let (recovered, scanned) = recover_segment(
            &self.storage,
            &self.dir,
            &self.tp,
            seg.base_offset,
            &config,
            true,
            now,
        )
        .await?;
        let end = recovered.st.borrow().next_offset;
        {
            let mut st = self.st.borrow_mut();
            st.segments.insert(seg.base_offset.0, Rc::new(recovered));
            st.assigned = end;
            st.written = end;
            st.durable = end;
            let (mut max_ts, mut max_ts_off) = (-1i64, Offset(-1));
            for s in st.segments.values() {
                let sst = s.st.borrow();
                if sst.index.max_timestamp > max_ts {
                    max_ts = sst.index.max_timestamp;
                    max_ts_off = Offset(sst.index.max_timestamp_offset);
                }
            }
            st.max_timestamp = max_ts;
            st.max_timestamp_offset = max_ts_off;
            st.check_invariants();
        }
        // The producer snapshot may describe batches that are gone: drop it and rebuild
        // from the log (a rare path: only a diverged replica truncates).
        self.remove_producer_snapshot().await?;
        self.rebuild_producer_state(scanned.map(|p| (seg.base_offset, p)))
            .await?;
        Ok(end)
    }

    /// Kafka's `truncateFullyAndStartAt`: deletes every batch and restarts the log, empty, at
    /// `offset`, below or above its current range. For a follower whose whole log lies below
    /// its leader's log start (retention there moved past it): it starts again where the
    /// leader's log starts. Durable when it resolves (a crash part-way reopens either the
    /// old log, a shorter prefix of it, or the empty log at `offset`). Returns `offset`.
    pub async fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<Offset, LogError> {
        if offset.0 < 0 {
            let st = self.st.borrow();
            return Err(LogError::OffsetOutOfRange {
                tp: self.tp.clone(),
                requested: offset,
                log_start: st.log_start,
                high_watermark: st.visible_end(),
            });
        }
        // Segment files change only under the segments lock (the cleaner swaps under it).
        let _segments = self.segments_lock.lock().await;
        let _guard = self.append_lock.lock().await;
        self.check_writable()?;
        self.flush_all().await?;
        self.restart_empty_at(offset).await
    }

    /// Deletes every segment (newest first) and starts an empty log at `offset`. Called with
    /// the append lock held and nothing pending.
    async fn restart_empty_at(&self, offset: Offset) -> Result<Offset, LogError> {
        let now = self.clock.now_ms();
        let config = self.config();
        let doomed: Vec<_> = {
            let mut st = self.st.borrow_mut();
            std::mem::take(&mut st.segments)
                .into_values()
                .rev()
                .collect()
        };
        self.delete_segment_files(doomed).await?;
        let path = self.dir.join(LOG_START_CHECKPOINT);
        replace_small_file(&self.storage, &path, &encode_checkpoint(offset))
            .await
            .map_err(|e| self.io_error(&path, e))?;
        let seg = create_segment(&self.storage, &self.dir, &self.tp, offset, &config, now).await?;
        {
            let mut st = self.st.borrow_mut();
            st.segments.insert(offset.0, Rc::new(seg));
            st.log_start = offset;
            st.assigned = offset;
            st.written = offset;
            st.durable = offset;
            st.max_timestamp = -1;
            st.max_timestamp_offset = Offset(-1);
            st.producers = ProducerState::default();
            st.cleaner_checkpoint = offset;
            st.check_invariants();
        }
        self.remove_producer_snapshot().await?;
        Ok(offset)
    }

    async fn remove_producer_snapshot(&self) -> Result<(), LogError> {
        let path = self.dir.join(PRODUCER_SNAPSHOT);
        match self.storage.remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_error(&path, e)),
        }
    }

    /// File position of the first frame whose batch ends at or after `offset` (the batch
    /// holding `offset`, or the next one), or the segment's size when there is none.
    async fn batch_position_at_or_after(
        &self,
        seg: &Segment<S::File>,
        offset: Offset,
    ) -> Result<u64, LogError> {
        let (mut pos, limit) = {
            let sst = seg.st.borrow();
            (
                sst.index.lookup_offset(seg.base_offset, offset),
                sst.written,
            )
        };
        while pos < limit {
            let head = seg
                .file
                .read_at(pos, FRAME_HEADER_BYTES)
                .await
                .map_err(|e| self.io_error(&seg.log_path, e))?;
            let header =
                FrameHeader::decode(&head).map_err(|e| self.corrupt(seg, pos, e.to_string()))?;
            if header.last_offset() >= offset.0 {
                return Ok(pos);
            }
            pos += header.frame_bytes() as u64;
        }
        Ok(limit)
    }

    /// Kafka's DeleteRecords: moves the log start offset up to `offset` (at most the high
    /// watermark), persists it, and deletes segments wholly below it.
    pub async fn delete_records_before(&self, offset: Offset) -> Result<Offset, LogError> {
        // Segment files change only under the segments lock (the cleaner swaps under it).
        let _segments = self.segments_lock.lock().await;
        let _guard = self.append_lock.lock().await;
        let (hw, start) = {
            let st = self.st.borrow();
            (st.visible_end(), st.log_start)
        };
        if offset > hw || offset.0 < 0 {
            return Err(LogError::OffsetOutOfRange {
                tp: self.tp.clone(),
                requested: offset,
                log_start: start,
                high_watermark: hw,
            });
        }
        if offset <= start {
            return Ok(start);
        }
        let path = self.dir.join(LOG_START_CHECKPOINT);
        replace_small_file(&self.storage, &path, &encode_checkpoint(offset))
            .await
            .map_err(|e| self.io_error(&path, e))?;
        self.st.borrow_mut().log_start = offset;
        let doomed: Vec<Rc<Segment<S::File>>> = {
            let mut st = self.st.borrow_mut();
            let active_base = st.active().base_offset.0;
            let bases: Vec<i64> = st
                .segments
                .iter()
                .filter(|(b, s)| **b != active_base && s.st.borrow().next_offset <= offset)
                .map(|(b, _)| *b)
                .collect();
            bases.iter().filter_map(|b| st.segments.remove(b)).collect()
        };
        self.delete_segment_files(doomed).await?;
        Ok(offset)
    }

    /// Applies retention.ms and retention.bytes: deletes whole closed segments, oldest first.
    /// Returns how many segments it deleted.
    pub async fn enforce_retention(&self) -> Result<usize, LogError> {
        // Segment files change only under the segments lock (the cleaner swaps under it).
        let _segments = self.segments_lock.lock().await;
        let _guard = self.append_lock.lock().await;
        if self.st.borrow().closed {
            // Closed for a move or shutdown: its files may belong to another shard now.
            return Ok(0);
        }
        let now = self.clock.now_ms();
        let doomed = {
            let mut st = self.st.borrow_mut();
            let count = st.segments.len();
            let summaries: Vec<SegmentSummary> = st
                .segments
                .values()
                .enumerate()
                .map(|(i, s)| {
                    let sst = s.st.borrow();
                    SegmentSummary {
                        bytes: sst.size,
                        max_timestamp: sst.index.max_timestamp,
                        active: i + 1 == count,
                    }
                })
                .collect();
            // cleanup.policy=compact alone never deletes by age or size (Kafka's rule).
            let n = if st.config.cleanup_policy.deletes() {
                segments_to_delete(
                    &summaries,
                    now,
                    st.config.retention_ms,
                    st.config.retention_bytes,
                )
            } else {
                0
            };
            // Only segments wholly below the high watermark go (Kafka's rule): on a
            // replicated leader an in-sync follower may still need what lies above it. A
            // segment ends where the next one starts.
            let hw = st.visible_end().0;
            let n = st
                .segments
                .keys()
                .skip(1)
                .take(n)
                .take_while(|next_base| **next_base <= hw)
                .count();
            let bases: Vec<i64> = st.segments.keys().take(n).copied().collect();
            let doomed: Vec<_> = bases.iter().filter_map(|b| st.segments.remove(b)).collect();
            if let Some(first) = st.segments.values().next() {
                let base = first.base_offset;
                if base > st.log_start {
                    st.log_start = base;
                }
            }
            doomed
        };
        let n = doomed.len();
        if n > 0 {
            tracing::info!(partition = %self.tp, segments = n, "retention deleted segments");
        }
        self.delete_segment_files(doomed).await?;
        Ok(n)
    }

    async fn delete_segment_files(
        &self,
        doomed: Vec<Rc<Segment<S::File>>>,
    ) -> Result<(), LogError> {
        for seg in doomed {
            for path in [&seg.log_path, &seg.index_path] {
                match self.storage.remove_file(path).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.io_error(path, e)),
                }
            }
        }
        self.storage
            .sync_dir(&self.dir)
            .await
            .map_err(|e| self.io_error(&self.dir, e))
    }

    /// Flushes and syncs everything, persists the active segment's index as a clean-shutdown
    /// marker (so the next open need not scan), and refuses further appends.
    pub async fn close(&self) -> Result<(), LogError> {
        // Segment files change only under the segments lock (the cleaner swaps under it).
        let _segments = self.segments_lock.lock().await;
        let _guard = self.append_lock.lock().await;
        if self.st.borrow().closed {
            return Ok(());
        }
        self.flush_all().await?;
        let active = self.st.borrow().active().clone();
        self.persist_index(&active).await?;
        self.persist_producer_state().await?;
        let mut st = self.st.borrow_mut();
        st.closed = true;
        st.wake_readers();
        Ok(())
    }

    /// Closes the log and deletes its directory.
    pub async fn remove(&self) -> Result<(), LogError> {
        {
            let mut st = self.st.borrow_mut();
            st.closed = true;
            st.pending.clear();
            let err = LogError::Closed {
                tp: self.tp.clone(),
            };
            for w in st.waiters.drain(..) {
                let _ = w.tx.send(Err(err.clone()));
            }
            st.wake_readers();
        }
        let _segments = self.segments_lock.lock().await;
        let _guard = self.append_lock.lock().await;
        self.storage
            .remove_dir_all(&self.dir)
            .await
            .map_err(|e| self.io_error(&self.dir, e))
    }
}

/// Every served batch is checked end to end: frame prefix CRC and Kafka's CRC over the rest.
/// Nothing corrupt leaves the broker, even bit rot in a closed segment.
fn check_served(header: &FrameHeader, batch: &[u8]) -> Result<(), String> {
    header.check_batch(batch).map_err(|e| e.to_string())?;
    BatchView::parse(batch)
        .and_then(|v| v.verify_crc())
        .map_err(|e| e.to_string())
}

/// Keeps the segment's fallocated region ahead of a write ending at `end`, one step at a
/// time, so writes land in reserved extents without reserving whole segments up front.
async fn reserve<F: StorageFile>(seg: &Segment<F>, end: u64) -> io::Result<()> {
    let have = seg.st.borrow().preallocated;
    if end <= have {
        return Ok(());
    }
    let want = align_up(end) + SEGMENT_PREALLOCATE_STEP_BYTES;
    seg.file.preallocate(want).await?;
    let mut sst = seg.st.borrow_mut();
    sst.preallocated = sst.preallocated.max(want);
    Ok(())
}

fn sst_next<F: StorageFile>(seg: &Segment<F>) -> Offset {
    seg.st.borrow().next_offset
}

fn encode_checkpoint(offset: Offset) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&CHECKPOINT_MAGIC.to_le_bytes());
    out.extend_from_slice(&offset.0.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

async fn read_checkpoint<S: Storage>(
    storage: &S,
    dir: &Path,
    name: &str,
) -> io::Result<Option<Offset>> {
    let Some(bytes) = read_small_file(storage, &dir.join(name)).await? else {
        return Ok(None);
    };
    if bytes.len() != 16
        || crc32c::crc32c(&bytes[..12]).to_le_bytes() != bytes[12..16]
        || bytes[..4] != CHECKPOINT_MAGIC.to_le_bytes()
    {
        tracing::warn!(dir = %dir.display(), checkpoint = name, "checkpoint is damaged; falling back to the first segment's base");
        return Ok(None);
    }
    let mut o = [0u8; 8];
    o.copy_from_slice(&bytes[4..12]);
    Ok(Some(Offset(i64::from_le_bytes(o))))
}

async fn create_segment<S: Storage>(
    storage: &S,
    dir: &Path,
    tp: &TopicPartition,
    base: Offset,
    config: &LogConfig,
    now: i64,
) -> Result<Segment<S::File>, LogError> {
    let path = dir.join(crate::log::segment::log_file_name(base));
    let io_err = |e: io::Error| LogError::Io {
        tp: tp.clone(),
        path: path.clone(),
        source: Arc::new(e),
    };
    let file = storage
        .open(&path, OpenMode::CreateOrOpen)
        .await
        .map_err(io_err)?;
    file.truncate(0).await.map_err(io_err)?;
    let reserve = SEGMENT_PREALLOCATE_STEP_BYTES.min(config.segment_bytes_clamped());
    file.preallocate(reserve).await.map_err(io_err)?;
    storage.sync_dir(dir).await.map_err(io_err)?;
    let seg = Segment::new(dir, base, file, now);
    seg.st.borrow_mut().preallocated = reserve;
    Ok(seg)
}

async fn recover_segment<S: Storage>(
    storage: &S,
    dir: &Path,
    tp: &TopicPartition,
    base: Offset,
    config: &LogConfig,
    is_last: bool,
    now: i64,
) -> Result<(Segment<S::File>, Option<ProducerState>), LogError>
where
    S::File: Clone,
{
    let path = dir.join(crate::log::segment::log_file_name(base));
    let io_err = |p: &Path, e: io::Error| LogError::Io {
        tp: tp.clone(),
        path: p.to_path_buf(),
        source: Arc::new(e),
    };
    let file = storage
        .open(&path, OpenMode::Existing)
        .await
        .map_err(|e| io_err(&path, e))?;
    let seg = Segment::new(dir, base, file.clone(), now);
    let file_size = file.size().await.map_err(|e| io_err(&path, e))?;
    // A persisted index is trusted when it checks out and, for the last segment, nothing
    // valid follows the end it records (otherwise it is stale: more was appended after it).
    let mut loaded = None;
    if let Some(bytes) = read_small_file(storage, &seg.index_path)
        .await
        .map_err(|e| io_err(&seg.index_path, e))?
    {
        match decode_index(&bytes, base) {
            Ok(f) if f.segment_bytes <= file_size => {
                let stale = is_last
                    && frame_follows(&file, f.segment_bytes, file_size)
                        .await
                        .map_err(|e| io_err(&path, e))?;
                if !stale {
                    loaded = Some(f);
                }
            }
            Ok(_) => {
                tracing::warn!(partition = %tp, segment = %base, "index longer than its segment; rebuilding")
            }
            Err(e) => {
                tracing::warn!(partition = %tp, segment = %base, error = %e, "index unusable; rebuilding")
            }
        }
    }
    let mut scanned_producers = None;
    let (index, valid_bytes, next_offset) = match loaded {
        Some(f) => (
            SegmentIndex::from_file(&f),
            f.segment_bytes,
            Offset(f.next_offset),
        ),
        None => {
            let scan = scan_segment(&file, base, config.index_interval_bytes)
                .await
                .map_err(|e| io_err(&path, e))?;
            if let Some(why) = &scan.stopped_on {
                tracing::warn!(partition = %tp, segment = %base, valid_bytes = scan.valid_bytes, reason = %why, "truncating torn or corrupt tail");
                if !is_last {
                    return Err(LogError::Corrupt {
                        tp: tp.clone(),
                        path: path.clone(),
                        position: scan.valid_bytes,
                        detail: format!("closed segment is damaged: {why}"),
                    });
                }
            }
            if scan.stopped_on.is_some() || (is_last && scan.valid_bytes < file_size) {
                // Drop everything past the valid prefix so stale frames can never reappear.
                file.truncate(scan.valid_bytes)
                    .await
                    .map_err(|e| io_err(&path, e))?;
            }
            if !is_last {
                let bytes =
                    encode_index(&scan.index.to_file(base, scan.valid_bytes, scan.next_offset));
                write_small_file(storage, &seg.index_path, &bytes)
                    .await
                    .map_err(|e| io_err(&seg.index_path, e))?;
            }
            scanned_producers = Some(scan.producers);
            (scan.index, scan.valid_bytes, scan.next_offset)
        }
    };
    {
        let mut sst = seg.st.borrow_mut();
        sst.index = index;
        sst.size = valid_bytes;
        sst.written = valid_bytes;
        sst.next_offset = next_offset;
        sst.sealed = !is_last;
    }
    if is_last {
        // The clean-shutdown index is only valid until the next append; remove it so a crash
        // later forces a scan.
        match storage.remove_file(&seg.index_path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&seg.index_path, e)),
        }
        let aligned = align_down(valid_bytes);
        if valid_bytes > aligned {
            let tail = file
                .read_at(aligned, (valid_bytes - aligned) as usize)
                .await
                .map_err(|e| io_err(&path, e))?;
            seg.st.borrow_mut().tail_block = tail.to_vec();
        }
        let reserve = align_up(valid_bytes) + SEGMENT_PREALLOCATE_STEP_BYTES;
        file.preallocate(reserve)
            .await
            .map_err(|e| io_err(&path, e))?;
        seg.st.borrow_mut().preallocated = reserve;
        storage.sync_dir(dir).await.map_err(|e| io_err(dir, e))?;
    }
    Ok((seg, scanned_producers.filter(|_| is_last)))
}

/// Whether a valid frame header starts at `pos`.
async fn frame_follows<F: StorageFile>(file: &F, pos: u64, file_size: u64) -> io::Result<bool> {
    if pos + FRAME_HEADER_BYTES as u64 > file_size {
        return Ok(false);
    }
    let head = file.read_at(pos, FRAME_HEADER_BYTES).await?;
    Ok(FrameHeader::decode(&head).is_ok())
}
