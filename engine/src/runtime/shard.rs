//! One shard: a glommio executor pinned to one core, owning a set of partitions.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use futures_channel::oneshot;
use glommio::TaskQueueHandle;

use crate::clock::{Clock, SystemClock};
use crate::config::{EngineConfig, LogConfig};
use crate::ids::{ShardId, TopicPartition};
use crate::io::dma::DmaStorage;
use crate::limits::{
    PARTITIONS_PER_SHARD_MAX, ROUTE_RETRY_US_MAX, ROUTE_RETRY_US_MIN, SHARD_INFLIGHT_MAX,
};

/// Which of a peer's inboxes a message goes to.
#[derive(Clone, Copy)]
enum Inbox {
    Work,
    Reply,
}
use crate::log::{LogError, PartitionLog};
use crate::runtime::placement::{PlacementOverrides, ShardPlacement};
use crate::runtime::table::ShardTable;
use crate::runtime::EngineError;

/// Work sent to another shard: a closure that runs there and produces a shard-local future.
pub type Job = Box<dyn FnOnce(Rc<Shard>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// How a shard reaches another: a bounded inbox for work and one for replies. Replies
/// have their own inbox so they always drain, even when the work inbox is full and every
/// work permit is held by jobs waiting for those very replies.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) work: flume::Sender<Job>,
    pub(crate) reply: flume::Sender<Job>,
}

/// A shard's view of the broker. Lives on (and only on) its own executor thread.
/// Owns the partitions the shard table assigns to it: only this shard's tasks touch them.
pub struct Shard {
    id: ShardId,
    table: Arc<ShardTable>,
    config: Arc<EngineConfig>,
    peers: Vec<Peer>,
    partitions: RefCell<HashMap<TopicPartition, Rc<PartitionLog>>>,
    /// Serialises opening and removing partitions (rare; avoids two opens of one directory).
    admin_lock: async_lock::Mutex<()>,
    /// Tasks inside `open_partition`, per partition.
    opening: Rc<RefCell<HashMap<TopicPartition, usize>>>,
    clock: Rc<dyn Clock>,
    background: TaskQueueHandle,
    inflight: Rc<glommio::sync::Semaphore>,
    /// This shard's copy of the runtime placement overrides and its partition moves.
    placement: ShardPlacement,
}

impl Shard {
    pub(crate) fn new(
        id: ShardId,
        table: Arc<ShardTable>,
        config: Arc<EngineConfig>,
        peers: Vec<Peer>,
        background: TaskQueueHandle,
        overrides: PlacementOverrides,
    ) -> Shard {
        let placement = ShardPlacement::default();
        *placement.overrides.borrow_mut() = overrides;
        Shard {
            id,
            table,
            config,
            peers,
            partitions: RefCell::new(HashMap::new()),
            admin_lock: async_lock::Mutex::new(()),
            opening: Rc::new(RefCell::new(HashMap::new())),
            clock: Rc::new(SystemClock),
            background,
            inflight: Rc::new(glommio::sync::Semaphore::new(SHARD_INFLIGHT_MAX as u64)),
            placement,
        }
    }

    pub fn id(&self) -> ShardId {
        self.id
    }
    pub fn shard_count(&self) -> usize {
        self.table.shard_count()
    }
    pub fn table(&self) -> &ShardTable {
        &self.table
    }
    /// The owning shard in this shard's view: a runtime move if there is one, else the
    /// configured placement.
    pub fn owner(&self, tp: &TopicPartition) -> ShardId {
        let overrides = self.placement.overrides.borrow();
        if !overrides.moved.is_empty() {
            if let Some(s) = overrides.moved.get(tp) {
                return *s;
            }
        }
        self.table.owner(tp)
    }
    pub(crate) fn placement(&self) -> &ShardPlacement {
        &self.placement
    }
    pub(crate) fn dispatch_table(&self) -> &crate::runtime::dispatch::DispatchTable {
        &self.placement.dispatches
    }
    pub fn engine_config(&self) -> &EngineConfig {
        &self.config
    }
    /// The low-priority task queue for background work (retention, index flushes).
    pub fn background_queue(&self) -> TaskQueueHandle {
        self.background
    }

    /// The one routing function: runs `work` on the `owner` shard and returns its answer.
    /// Local work runs as a detached task here; remote work goes into the owner's bounded
    /// work inbox (a full inbox makes this wait: backpressure, never a drop) and the answer
    /// comes back through this shard's reply inbox. Either way the work runs to completion
    /// even if the caller goes away.
    ///
    /// No task's waker is ever woken or dropped on another shard's thread: the answer's
    /// oneshot is completed here, by the reply pump, and a full inbox is retried on a local
    /// timer rather than by parking in flume. glommio 0.9 can free a task twice when its last
    /// foreign waker is dropped on another thread just as the task completes - seen as a
    /// double free under cross-shard Fetch load before this design.
    pub async fn route_to_owner<R, W>(
        self: &Rc<Self>,
        owner: ShardId,
        work: W,
    ) -> Result<R, EngineError>
    where
        R: Send + 'static,
        W: FnOnce(Rc<Shard>) -> Pin<Box<dyn Future<Output = R>>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        if owner == self.id {
            let shard = self.clone();
            glommio::spawn_local(async move {
                let _ = tx.send(work(shard).await);
            })
            .detach();
            return rx.await.map_err(|_| EngineError::ShardGone(owner));
        }
        let origin = self.id;
        let job: Job = Box::new(move |shard: Rc<Shard>| {
            Box::pin(async move {
                let answer = work(shard.clone()).await;
                let reply: Job = Box::new(move |_origin: Rc<Shard>| {
                    Box::pin(async move {
                        let _ = tx.send(answer);
                    })
                });
                if let Err(e) = shard.send_to(origin, reply, Inbox::Reply).await {
                    tracing::warn!(error = %e, "answer could not be returned");
                }
            })
        });
        self.send_to(owner, job, Inbox::Work).await?;
        rx.await.map_err(|_| EngineError::ShardGone(owner))
    }

    /// Puts `job` into a peer's inbox, waiting (on a local timer) while it is full.
    async fn send_to(&self, to: ShardId, job: Job, inbox: Inbox) -> Result<(), EngineError> {
        let peer = self.peers.get(to.0).ok_or(EngineError::NoSuchShard(to))?;
        let sender = match inbox {
            Inbox::Work => &peer.work,
            Inbox::Reply => &peer.reply,
        };
        let mut job = job;
        let mut backoff = ROUTE_RETRY_US_MIN;
        loop {
            match sender.try_send(job) {
                Ok(()) => return Ok(()),
                Err(flume::TrySendError::Full(back)) => {
                    job = back;
                    glommio::timer::sleep(std::time::Duration::from_micros(backoff)).await;
                    backoff = (backoff * 2).min(ROUTE_RETRY_US_MAX);
                }
                Err(flume::TrySendError::Disconnected(_)) => {
                    return Err(EngineError::ShardGone(to))
                }
            }
        }
    }

    /// Runs jobs from other shards, at most `SHARD_INFLIGHT_MAX` at once.
    pub(crate) async fn pump(self: Rc<Self>, inbox: flume::Receiver<Job>) {
        while let Ok(job) = inbox.recv_async().await {
            let permit = match self.inflight.acquire_static_permit(1).await {
                Ok(p) => p,
                Err(_) => return,
            };
            let shard = self.clone();
            glommio::spawn_local(async move {
                job(shard).await;
                drop(permit);
            })
            .detach();
        }
    }

    /// Completes answers to this shard's routed requests, as they come back.
    pub(crate) async fn reply_pump(self: Rc<Self>, inbox: flume::Receiver<Job>) {
        while let Ok(reply) = inbox.recv_async().await {
            reply(self.clone()).await;
        }
    }

    fn check_owner(&self, tp: &TopicPartition) -> Result<(), EngineError> {
        let owner = self.owner(tp);
        if owner != self.id {
            return Err(EngineError::NotOwner {
                tp: tp.clone(),
                owner,
                here: self.id,
            });
        }
        Ok(())
    }

    /// Opens (creating or recovering) a partition this shard owns; returns the open log if
    /// it already is.
    pub async fn open_partition(
        &self,
        tp: TopicPartition,
        config: LogConfig,
    ) -> Result<Rc<PartitionLog>, EngineError> {
        self.check_owner(&tp)?;
        let _queued = OpeningGuard::enter(&self.opening, &tp);
        let _admin = self.admin_lock.lock().await;
        // A partition on its way out must not be reopened here behind the mover's back.
        if self.is_departing(&tp) {
            return Err(EngineError::MoveInProgress(tp));
        }
        if let Some(log) = self.partitions.borrow().get(&tp) {
            return Ok(log.clone());
        }
        if self.partitions.borrow().len() >= PARTITIONS_PER_SHARD_MAX {
            return Err(EngineError::TooManyPartitions(self.id));
        }
        let dir = self.partition_dir(&tp);
        let log = PartitionLog::open(
            DmaStorage,
            dir,
            tp.clone(),
            config,
            self.config.durability,
            self.clock.clone(),
        )
        .await?;
        let log = Rc::new(log);
        self.partitions.borrow_mut().insert(tp, log.clone());
        Ok(log)
    }

    pub fn partition_dir(&self, tp: &TopicPartition) -> PathBuf {
        self.config.data_dir.join(tp.dir_name())
    }

    pub fn partition(&self, tp: &TopicPartition) -> Option<Rc<PartitionLog>> {
        self.partitions.borrow().get(tp).cloned()
    }

    /// The open log for request work, or None while other work is queued to open it: a
    /// request must then queue behind them in `open_partition` rather than overtake them
    /// (a connection's pipelined appends stay in order).
    pub fn partition_for_work(&self, tp: &TopicPartition) -> Option<Rc<PartitionLog>> {
        if self.opening.borrow().contains_key(tp) {
            return None;
        }
        self.partition(tp)
    }

    pub fn partitions(&self) -> Vec<Rc<PartitionLog>> {
        self.partitions.borrow().values().cloned().collect()
    }

    /// Closes a partition this shard owns and deletes its files.
    pub async fn remove_partition(&self, tp: &TopicPartition) -> Result<(), EngineError> {
        self.check_owner(tp)?;
        let _admin = self.admin_lock.lock().await;
        let log = self.partitions.borrow_mut().remove(tp);
        match log {
            Some(log) => log.remove().await.map_err(EngineError::from),
            None => {
                // Not open here (e.g. never used since start): remove its directory if present.
                let dir = self.partition_dir(tp);
                let storage = DmaStorage;
                match crate::io::Storage::remove_dir_all(&storage, &dir).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(EngineError::Io {
                        path: dir,
                        source: e,
                    }),
                }
            }
        }
    }

    /// Takes a departing partition out of this shard and closes it cleanly (durable, with
    /// the clean-shutdown marker, so the new owner's open skips the recovery scan).
    pub(crate) async fn close_for_move(&self, tp: &TopicPartition) -> Result<(), EngineError> {
        let _admin = self.admin_lock.lock().await;
        let Some(log) = self.partitions.borrow_mut().remove(tp) else {
            return Ok(());
        };
        if let Err(e) = log.close().await {
            // Still ours: keep it (in whatever state close left it) so errors surface here.
            self.partitions.borrow_mut().insert(tp.clone(), log);
            return Err(e.into());
        }
        Ok(())
    }

    /// Flushes and closes every partition (clean shutdown: the next start skips the scan).
    pub async fn close_all(&self) -> Result<(), LogError> {
        let logs = self.partitions();
        let mut first_err = None;
        for log in logs {
            if let Err(e) = log.close().await {
                tracing::error!(partition = %log.topic_partition(), error = %e, "close failed");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The log cleaner, in the low-priority queue: every compaction_check_interval_ms, up
    /// to `CLEANER_PASSES_PER_ROUND_MAX` passes on each owned partition whose topic compacts
    /// (more than one when the dirty section outgrew one pass's offset map).
    fn start_cleaner(self: &Rc<Self>) -> Result<(), EngineError> {
        let shard = self.clone();
        let every =
            std::time::Duration::from_millis(self.config.compaction_check_interval_ms.max(10));
        glommio::spawn_local_into(
            async move {
                loop {
                    glommio::timer::sleep(every).await;
                    for log in shard.partitions() {
                        if !log.config().cleanup_policy.compacts() {
                            continue;
                        }
                        for _ in 0..crate::limits::CLEANER_PASSES_PER_ROUND_MAX {
                            match log.clean().await {
                                Ok(o) => {
                                    if o.ran {
                                        tracing::debug!(partition = %log.topic_partition(), keys = o.keys, read = o.bytes_read, written = o.bytes_written, segments = o.segments_rewritten, "cleaner pass");
                                    }
                                    if !o.more {
                                        break;
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(partition = %log.topic_partition(), error = %e, "log cleaner pass failed");
                                    break;
                                }
                            }
                        }
                    }
                }
            },
            self.background,
        )
        .map_err(|e| EngineError::Executor(e.to_string()))?
        .detach();
        Ok(())
    }

    /// Background upkeep in the low-priority queue: retention on every owned partition, and
    /// the periodic fdatasync when durability is `interval`.
    pub(crate) fn start_background(self: &Rc<Self>) -> Result<(), EngineError> {
        let shard = self.clone();
        let every =
            std::time::Duration::from_millis(self.config.retention_check_interval_ms.max(10));
        glommio::spawn_local_into(
            async move {
                loop {
                    glommio::timer::sleep(every).await;
                    for log in shard.partitions() {
                        if let Err(e) = log.enforce_retention().await {
                            tracing::warn!(partition = %log.topic_partition(), error = %e, "retention failed");
                        }
                    }
                }
            },
            self.background,
        )
        .map_err(|e| EngineError::Executor(e.to_string()))?
        .detach();
        self.start_cleaner()?;
        if let crate::config::Durability::Interval { interval_ms } = self.config.durability {
            let shard = self.clone();
            glommio::spawn_local(async move {
                loop {
                    glommio::timer::sleep(std::time::Duration::from_millis(interval_ms)).await;
                    for log in shard.partitions() {
                        if let Err(e) = log.flush_all().await {
                            tracing::warn!(partition = %log.topic_partition(), error = %e, "interval sync failed");
                        }
                    }
                }
            })
            .detach();
        }
        Ok(())
    }
}

/// Counts a task queued in (or running) `open_partition` for one partition.
struct OpeningGuard {
    opening: Rc<RefCell<HashMap<TopicPartition, usize>>>,
    tp: TopicPartition,
}

impl OpeningGuard {
    fn enter(opening: &Rc<RefCell<HashMap<TopicPartition, usize>>>, tp: &TopicPartition) -> Self {
        *opening.borrow_mut().entry(tp.clone()).or_insert(0) += 1;
        OpeningGuard {
            opening: opening.clone(),
            tp: tp.clone(),
        }
    }
}

impl Drop for OpeningGuard {
    fn drop(&mut self) {
        let mut opening = self.opening.borrow_mut();
        if let Some(n) = opening.get_mut(&self.tp) {
            *n -= 1;
            if *n == 0 {
                opening.remove(&self.tp);
            }
        }
    }
}
