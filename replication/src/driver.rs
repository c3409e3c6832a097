//! Runs one [`PartitionReplica`] on a shard: executes its outputs against the partition's
//! `PartitionLog` and the transport, in order, and feeds the completions back. The same
//! contract the simulation's harness follows, on glommio.
//!
//! Owned by the partition's owning shard; every method runs there. Local I/O outputs run in
//! one task per partition, one after the other (a truncation must finish before the resume
//! that follows it). A follower's consecutive `AppendLocal`s that queue up while the previous
//! write and its fdatasync are in flight are joined into one append ([`take_append_group`]),
//! so they share one group commit: one sync per round, not one per leader batch.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;

use futures_channel::oneshot;
use sluice_engine::batch::{batches, stamp, TimestampStamp};
use sluice_engine::clock::Clock;
use sluice_engine::io::Storage;
use sluice_engine::limits::BATCH_BYTES_MAX;
use sluice_engine::log::{AppendInfo, AppendOptions, LogError, PartitionLog};
use sluice_engine::{LeaderEpoch, Offset};

use crate::ids::{BrokerId, PartitionEpoch};
use crate::limits::{FOLLOWER_APPEND_GROUP_BYTES_MAX, HW_CHECKPOINT_INTERVAL_MS};
use crate::partition::hw_checkpoint;
use crate::partition::{
    EpochCache, LeaderAndIsr, Output, PartitionReplica, ProduceError, ReplicaMessage,
};

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Produce(#[from] ProduceError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("epoch cache: {0}")]
    EpochCache(std::io::Error),
    #[error("high watermark checkpoint: {0}")]
    HwCheckpoint(std::io::Error),
}

/// Where the driver sends what leaves the partition.
pub struct DriverHooks {
    /// A framed replica message for a peer broker (queue it on the peer's link).
    pub send: Box<dyn Fn(BrokerId, Vec<u8>)>,
    /// An ISR proposal for the active controller.
    pub alter_isr: Box<dyn Fn(LeaderEpoch, PartitionEpoch, Vec<BrokerId>)>,
}

struct Inner<S: Storage> {
    log: Rc<PartitionLog<S>>,
    storage: S,
    dir: PathBuf,
    clock: Rc<dyn Clock>,
    replica: RefCell<PartitionReplica>,
    hooks: DriverHooks,
    io: RefCell<VecDeque<Output>>,
    io_running: Cell<bool>,
    waiters: RefCell<BTreeMap<u64, oneshot::Sender<Result<(), ProduceError>>>>,
    next_request: Cell<u64>,
    /// Leader appends that completed ahead of an earlier one: fed in offset order.
    completed: RefCell<BTreeMap<i64, (Offset, Vec<u8>)>>,
    /// The high watermark last written to the checkpoint file (-1: none yet), when, and one
    /// writer at a time (the file is replaced through one temporary name).
    hw_checkpointed: Cell<Offset>,
    hw_checkpointed_ms: Cell<i64>,
    hw_checkpoint_lock: glommio::sync::Semaphore,
    /// Epoch-cache persists queued or running, and produces waiting for them: a new
    /// epoch's first batch must not be durable before the cache that names the epoch.
    cache_persists: Cell<usize>,
    cache_persisted: RefCell<Vec<oneshot::Sender<()>>>,
}

/// A partition replica running on its shard.
pub struct ReplicaDriver<S: Storage> {
    inner: Rc<Inner<S>>,
}

impl<S: Storage> Clone for ReplicaDriver<S> {
    fn clone(&self) -> Self {
        ReplicaDriver {
            inner: self.inner.clone(),
        }
    }
}

impl<S: Storage> ReplicaDriver<S>
where
    S::File: Clone,
{
    /// Takes an opened (recovered) log; loads the epoch cache next to it.
    pub async fn start(
        me: BrokerId,
        log: Rc<PartitionLog<S>>,
        storage: S,
        settings: crate::partition::ReplicaSettings,
        hooks: DriverHooks,
        clock: Rc<dyn Clock>,
    ) -> Result<Self, DriverError> {
        let dir = log.dir().to_path_buf();
        let cache = EpochCache::load(&storage, &dir)
            .await
            .map_err(DriverError::EpochCache)?;
        let checkpoint = hw_checkpoint::load(&storage, &dir)
            .await
            .map_err(DriverError::HwCheckpoint)?;
        let tp = log.topic_partition().clone();
        let mut replica = PartitionReplica::new(
            me,
            tp.topic.clone(),
            tp.partition.0,
            settings,
            cache,
            log.log_start_offset(),
            log.log_end_offset(),
        );
        if let Some(hw) = checkpoint {
            replica.restore_high_watermark(hw);
        }
        let now = clock.now_ms();
        let driver = ReplicaDriver {
            inner: Rc::new(Inner {
                log,
                storage,
                dir,
                clock,
                replica: RefCell::new(replica),
                hooks,
                io: RefCell::new(VecDeque::new()),
                io_running: Cell::new(false),
                waiters: RefCell::new(BTreeMap::new()),
                next_request: Cell::new(1),
                completed: RefCell::new(BTreeMap::new()),
                hw_checkpointed: Cell::new(checkpoint.unwrap_or(Offset(-1))),
                hw_checkpointed_ms: Cell::new(now),
                hw_checkpoint_lock: glommio::sync::Semaphore::new(1),
                cache_persists: Cell::new(0),
                cache_persisted: RefCell::new(Vec::new()),
            }),
        };
        driver.dispatch();
        Ok(driver)
    }

    pub fn log(&self) -> &PartitionLog<S> {
        &self.inner.log
    }
    pub fn high_watermark(&self) -> Offset {
        self.inner.replica.borrow().high_watermark()
    }
    pub fn durable_end(&self) -> Offset {
        self.inner.replica.borrow().durable_end()
    }
    /// The replica's whole state, for diagnostics.
    pub fn describe(&self) -> String {
        format!("{:?}", self.inner.replica.borrow())
    }
    pub fn is_active_leader(&self) -> bool {
        self.inner.replica.borrow().is_active_leader()
    }
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.inner.replica.borrow().leader_epoch()
    }
    pub fn role(&self) -> crate::partition::RoleKind {
        self.inner.replica.borrow().role()
    }
    /// The end offset of `epoch` (or of the largest epoch below it) in this replica's log,
    /// for OffsetForLeaderEpoch: `None` when no epoch at or below it is known.
    pub fn epoch_end(&self, epoch: LeaderEpoch) -> Option<crate::partition::EpochEnd> {
        let r = self.inner.replica.borrow();
        r.epoch_cache().end_for(epoch, r.log_end())
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    pub fn on_metadata(&self, state: &LeaderAndIsr) {
        let now = self.now();
        self.inner.replica.borrow_mut().on_metadata(state, now);
        self.inner.completed.borrow_mut().clear();
        self.dispatch();
    }

    /// A replica frame from a peer (validated here; a bad one is dropped like a lost one).
    pub fn on_frame(&self, frame: &[u8]) {
        let Ok(msg) = ReplicaMessage::decode(frame) else {
            return;
        };
        let now = self.now();
        {
            let mut r = self.inner.replica.borrow_mut();
            r.set_log_start(self.inner.log.log_start_offset());
            r.on_message(msg, now);
        }
        self.dispatch();
    }

    /// New replication settings (a topic config change).
    pub fn set_settings(&self, settings: crate::partition::ReplicaSettings) {
        self.inner.replica.borrow_mut().set_settings(settings);
    }

    /// A replica message already decoded (and so validated) by the receiving side.
    pub fn on_message(&self, msg: ReplicaMessage) {
        let now = self.now();
        self.inner.replica.borrow_mut().on_message(msg, now);
        self.dispatch();
    }

    pub fn tick(&self) {
        let now = self.now();
        {
            let mut r = self.inner.replica.borrow_mut();
            r.set_log_start(self.inner.log.log_start_offset());
            r.tick(now);
        }
        self.dispatch();
        self.maybe_checkpoint_high_watermark(now);
    }

    /// Lazily: when the high watermark moved and the last checkpoint is
    /// `HW_CHECKPOINT_INTERVAL_MS` old, write it in the background (skipped while a write
    /// runs; the next tick tries again).
    fn maybe_checkpoint_high_watermark(&self, now: i64) {
        let hw = self.high_watermark();
        if hw == self.inner.hw_checkpointed.get()
            || now - self.inner.hw_checkpointed_ms.get() < HW_CHECKPOINT_INTERVAL_MS
            || self.inner.hw_checkpoint_lock.available() == 0
        {
            return;
        }
        self.inner.hw_checkpointed_ms.set(now);
        let me = self.clone();
        glommio::spawn_local(async move {
            if let Err(e) = me.checkpoint_high_watermark().await {
                tracing::warn!(partition = %me.inner.log.topic_partition(), error = %e, "high watermark checkpoint failed");
            }
        })
        .detach();
    }

    /// Writes the current high watermark to the checkpoint file now, unless it is there
    /// already (call on a clean close; the driver also does it lazily from `tick`). Durable
    /// when it resolves. The value is what the replica's high watermark is, which never
    /// passes what every in-sync replica holds durably.
    pub async fn checkpoint_high_watermark(&self) -> Result<(), DriverError> {
        let Ok(_permit) = self.inner.hw_checkpoint_lock.acquire_permit(1).await else {
            return Ok(());
        };
        let hw = self.high_watermark();
        if hw == self.inner.hw_checkpointed.get() {
            return Ok(());
        }
        hw_checkpoint::persist(&self.inner.storage, &self.inner.dir, hw)
            .await
            .map_err(DriverError::HwCheckpoint)?;
        self.inner.hw_checkpointed.set(hw);
        Ok(())
    }

    /// Appends a produce request's record set as leader. With `acks_all` it resolves when
    /// the high watermark passes it (every ISR member durable), else when the leader's own
    /// append resolved (durable under group commit).
    pub async fn produce(&self, records: &[u8], acks_all: bool) -> Result<AppendInfo, DriverError> {
        // A leader's new epoch is in the cache before its first batch (the cache is what a
        // later divergence check trusts): wait for a queued persist.
        while self.inner.cache_persists.get() > 0 {
            let (tx, rx) = oneshot::channel();
            self.inner.cache_persisted.borrow_mut().push(tx);
            let _ = rx.await;
        }
        let epoch = self.inner.replica.borrow().epoch_for_append(acks_all)?;
        let info = self
            .inner
            .log
            .append(
                records,
                AppendOptions {
                    leader_epoch: epoch,
                    batch_bytes_max: BATCH_BYTES_MAX,
                },
            )
            .await?;
        let end = info.last_offset.next();
        // LogAppendTime rewrites timestamps and the CRC in the log: read those back.
        let copy = if self.inner.log.config().log_append_time {
            None
        } else {
            stamped_copy(records, info.base_offset, end, epoch)
        };
        let stamped = match copy {
            Some(b) => b,
            // Duplicates inside the set (idempotent retries): read what the log holds.
            None => {
                self.inner
                    .log
                    .read_upto(info.base_offset, BATCH_BYTES_MAX, end)
                    .await?
                    .bytes
            }
        };
        let now = self.now();
        {
            let mut completed = self.inner.completed.borrow_mut();
            completed.insert(info.base_offset.0, (end, stamped));
            let mut r = self.inner.replica.borrow_mut();
            while let Some((e, bytes)) = completed.remove(&r.log_end().0) {
                let base = r.log_end();
                r.on_leader_appended(base, e, &bytes, now);
            }
            r.on_local_durable(self.inner.log.durable_offset(), now);
        }
        let rx = if acks_all {
            let request = self.inner.next_request.get();
            self.inner.next_request.set(request + 1);
            let (tx, rx) = oneshot::channel();
            self.inner.waiters.borrow_mut().insert(request, tx);
            self.inner
                .replica
                .borrow_mut()
                .await_high_watermark(request, end);
            Some(rx)
        } else {
            None
        };
        self.dispatch();
        if let Some(rx) = rx {
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(ProduceError::NotLeader.into()),
            }
        }
        Ok(info)
    }

    /// Hands every output to its executor: messages and ISR proposals out at once, produce
    /// answers to their waiters, local I/O to the partition's I/O task (in order).
    fn dispatch(&self) {
        let outputs = self.inner.replica.borrow_mut().take_outputs();
        for out in outputs {
            match out {
                Output::Send { to, msg } => (self.inner.hooks.send)(to, msg.encode()),
                Output::AlterIsr {
                    leader_epoch,
                    partition_epoch,
                    isr,
                } => (self.inner.hooks.alter_isr)(leader_epoch, partition_epoch, isr),
                Output::ProduceDone { request, result } => {
                    if let Some(tx) = self.inner.waiters.borrow_mut().remove(&request) {
                        let _ = tx.send(result);
                    }
                }
                io => {
                    if matches!(io, Output::PersistEpochCache(_)) {
                        self.inner
                            .cache_persists
                            .set(self.inner.cache_persists.get() + 1);
                    }
                    self.inner.io.borrow_mut().push_back(io)
                }
            }
        }
        // Readers of the log (consumers) never see past the replicated high watermark.
        let hw = self.inner.replica.borrow().high_watermark();
        self.inner.log.set_replicated_high_watermark(hw);
        if !self.inner.io_running.get() && !self.inner.io.borrow().is_empty() {
            self.inner.io_running.set(true);
            let me = self.clone();
            glommio::spawn_local(async move { me.run_io().await }).detach();
        }
    }

    async fn run_io(self) {
        loop {
            let op = {
                let mut io = self.inner.io.borrow_mut();
                match take_append_group(&mut io, FOLLOWER_APPEND_GROUP_BYTES_MAX) {
                    Some(group) => Some(group),
                    None => io.pop_front(),
                }
            };
            let Some(op) = op else {
                break;
            };
            self.execute(op).await;
            self.dispatch();
        }
        self.inner.io_running.set(false);
    }

    async fn execute(&self, op: Output) {
        let log = &self.inner.log;
        match op {
            Output::PersistEpochCache(cache) => {
                let result = cache.persist(&self.inner.storage, &self.inner.dir).await;
                let left = self.inner.cache_persists.get().saturating_sub(1);
                self.inner.cache_persists.set(left);
                if left == 0 {
                    for tx in self.inner.cache_persisted.borrow_mut().drain(..) {
                        let _ = tx.send(());
                    }
                }
                if let Err(e) = result {
                    // Without a durable cache the next epoch's divergence check could be
                    // wrong: stop taking writes rather than continue.
                    tracing::error!(partition = %log.topic_partition(), error = %e, "epoch cache persist failed");
                    let now = self.now();
                    self.inner
                        .replica
                        .borrow_mut()
                        .on_local_failure(log.log_end_offset(), now);
                }
            }
            Output::AppendLocal { records } => {
                let result = log.append_replicated(&records).await;
                let now = self.now();
                let mut r = self.inner.replica.borrow_mut();
                match result {
                    Ok(_) => r.on_local_durable(log.durable_offset(), now),
                    Err(e) => {
                        tracing::warn!(partition = %log.topic_partition(), error = %e, "replica append failed; resynchronising");
                        r.on_local_failure(log.log_end_offset(), now);
                    }
                }
            }
            Output::TruncateLocal { to } => {
                let result = log.truncate_to(to).await;
                let now = self.now();
                let mut r = self.inner.replica.borrow_mut();
                match result {
                    Ok(end) => r.on_truncated(end, now),
                    Err(e) => {
                        tracing::error!(partition = %log.topic_partition(), error = %e, "truncation failed");
                        r.on_local_failure(log.log_end_offset(), now);
                    }
                }
            }
            Output::ResetLocal { start } => {
                let result = log.truncate_fully_and_start_at(start).await;
                let now = self.now();
                let mut r = self.inner.replica.borrow_mut();
                match result {
                    Ok(start) => r.on_reset(start, now),
                    Err(e) => {
                        tracing::error!(partition = %log.topic_partition(), error = %e, "reset to the leader's log start failed");
                        r.on_local_failure(log.log_end_offset(), now);
                    }
                }
            }
            Output::ReadForFollower {
                follower,
                from,
                upto,
                max_bytes,
            } => {
                let bytes = log
                    .read_upto(from, max_bytes, upto)
                    .await
                    .map(|r| r.bytes)
                    .unwrap_or_default();
                let now = self.now();
                let mut r = self.inner.replica.borrow_mut();
                // An empty read below the log start means retention got there first.
                r.set_log_start(log.log_start_offset());
                r.on_read_for_follower(follower, from, &bytes, now);
            }
            Output::Send { .. } | Output::AlterIsr { .. } | Output::ProduceDone { .. } => {
                unreachable!("dispatch handles these itself")
            }
        }
    }
}

/// Follower group commit: the `AppendLocal`s at the front of `io` that queued up while the
/// previous local write (and its fdatasync) was in flight, joined into one append of at most
/// `bytes_max` (always at least the first), so they share one write and one sync instead of
/// one each. Only consecutive appends join: an epoch-cache persist or a truncation between
/// them keeps its place, so ordering stays what the state machine asked for. The replica
/// checked that each append starts where the previous one ends, so the joined record set is
/// contiguous. `None` when the front is not an append.
fn take_append_group(io: &mut VecDeque<Output>, bytes_max: usize) -> Option<Output> {
    let Some(Output::AppendLocal { .. }) = io.front() else {
        return None;
    };
    let mut total = 0usize;
    let mut count = 0usize;
    for op in io.iter() {
        match op {
            Output::AppendLocal { records } if count == 0 || total + records.len() <= bytes_max => {
                total += records.len();
                count += 1;
            }
            _ => break,
        }
    }
    if count == 1 {
        return io.pop_front();
    }
    let mut joined = Vec::with_capacity(total);
    for op in io.drain(..count) {
        if let Output::AppendLocal { records } = op {
            joined.extend_from_slice(&records);
        }
    }
    Some(Output::AppendLocal { records: joined })
}

/// The batches of `records` as the log stamped them (base offsets from `base`, `epoch`),
/// when they fill `[base, end)` exactly (no duplicates were skipped).
fn stamped_copy(records: &[u8], base: Offset, end: Offset, epoch: LeaderEpoch) -> Option<Vec<u8>> {
    let mut out = records.to_vec();
    let mut at = 0usize;
    let mut next = base;
    let views: Vec<(usize, i64)> = batches(records)
        .map(|v| v.map(|v| (v.len(), i64::from(v.last_offset_delta()) + 1)))
        .collect::<Result<_, _>>()
        .ok()?;
    for (len, count) in views {
        stamp(
            &mut out[at..at + len],
            next,
            epoch,
            TimestampStamp::CreateTime,
        );
        at += len;
        next = Offset(next.0 + count);
    }
    (next == end).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::EpochCache;

    fn append(bytes: &[u8]) -> Output {
        Output::AppendLocal {
            records: bytes.to_vec(),
        }
    }

    #[test]
    fn consecutive_appends_join_up_to_the_bound_and_nothing_jumps_the_queue() {
        let mut io: VecDeque<Output> = [
            append(&[1, 2, 3]),
            append(&[4, 5]),
            Output::PersistEpochCache(EpochCache::default()),
            append(&[6]),
            Output::TruncateLocal { to: Offset(3) },
        ]
        .into();
        assert_eq!(
            take_append_group(&mut io, 100),
            Some(append(&[1, 2, 3, 4, 5]))
        );
        // The persist keeps its place: the append behind it is not pulled forward.
        assert_eq!(take_append_group(&mut io, 100), None);
        assert!(matches!(io.pop_front(), Some(Output::PersistEpochCache(_))));
        assert_eq!(take_append_group(&mut io, 100), Some(append(&[6])));
        assert_eq!(take_append_group(&mut io, 100), None);
        assert_eq!(io.len(), 1);

        // The bound: joined up to 4 bytes; a first append larger than it still goes alone.
        let mut io: VecDeque<Output> = [
            append(&[1; 5]),
            append(&[2; 2]),
            append(&[3; 2]),
            append(&[4; 1]),
        ]
        .into();
        assert_eq!(take_append_group(&mut io, 4), Some(append(&[1; 5])));
        assert_eq!(take_append_group(&mut io, 4), Some(append(&[2, 2, 3, 3])));
        assert_eq!(take_append_group(&mut io, 4), Some(append(&[4])));
        assert!(io.is_empty());
        assert_eq!(take_append_group(&mut io, 4), None);
    }
}
