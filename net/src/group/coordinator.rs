//! A shard's group coordinator: the groups whose id this shard owns
//! (`ShardTable::owner_of_key`), their committed offsets, and the timer task that expires
//! sessions and ends overdue rebalances. One per shard, created on first use (a
//! thread-local, since route_to_owner hands owner-side work only the `Shard`), and loaded
//! from `__consumer_offsets` (committed offsets and each group's last membership record)
//! before it answers anything. Membership records are written when a generation becomes
//! Stable or a group Empty ([`persist`], and the timer task for expiries), and a
//! tombstone when a recorded group is forgotten.
//!
//! On a single broker every group is coordinated here and the whole topic is loaded once.
//! In a cluster, as in Kafka, a group's coordinator is the broker leading its partition
//! of `__consumer_offsets` ([`offsets::partition_for`]): a request for any other group is
//! answered NOT_COORDINATOR ([`for_group`]), and a partition's groups are loaded (to the
//! partition's high watermark) on the first request after this broker became its leader,
//! tagged with the leader epoch they were loaded at. Appends carry that epoch, so they
//! fail once the leadership moved on. The timer drops the groups of partitions this
//! broker no longer leads at their loaded epoch (a later leadership reloads them from the
//! log, which then holds whatever the other coordinators wrote).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sluice_engine::runtime::Shard;

use super::offsets::{self, LoadScope, LoadedGroup, OFFSETS_TOPIC};
use super::state::{CommittedOffset, Group, GroupMetadata, GroupState};
use crate::errors;
use crate::limits::{GROUPS_PER_SHARD_MAX, GROUP_TICK_MS, OFFSETS_PER_GROUP_MAX};
use crate::partition_ops::OwnerContext;

/// The groups one shard owns. Lives on that shard only.
#[derive(Default)]
pub struct Coordinator {
    groups: RefCell<HashMap<String, Group>>,
    /// Single broker: the whole offsets topic is loaded.
    loaded: Cell<bool>,
    /// In a cluster: the offsets partitions whose groups are loaded here, each with the
    /// leader epoch it was loaded at.
    led: RefCell<HashMap<i32, i32>>,
    load_lock: async_lock::Mutex<()>,
    ticking: Cell<bool>,
}

thread_local! {
    static COORDINATOR: RefCell<Option<Rc<Coordinator>>> = const { RefCell::new(None) };
}

fn here() -> Rc<Coordinator> {
    COORDINATOR.with(|c| c.borrow_mut().get_or_insert_with(Default::default).clone())
}

/// In a cluster: the leader epoch this shard's coordinator loaded offsets partition
/// `partition` at, if it holds its groups.
pub fn loaded_epoch(partition: i32) -> Option<i32> {
    COORDINATOR.with(|c| c.borrow().as_ref()?.led.borrow().get(&partition).copied())
}

/// The offsets topic's partition count, if it exists.
fn offsets_partitions(ctx: &OwnerContext) -> Option<i32> {
    ctx.store
        .snapshot()
        .topic(OFFSETS_TOPIC)
        .map(|t| t.partitions)
}

/// In a cluster: the leader epoch of `partition` of the offsets topic when this broker
/// leads it, as the controller's applied metadata says.
fn led_epoch(ctx: &OwnerContext, partition: i32) -> Option<i32> {
    let cluster = ctx.cluster.as_ref()?;
    let view = cluster.view();
    let p = view
        .state
        .topics
        .get(OFFSETS_TOPIC)?
        .partitions
        .get(usize::try_from(partition).ok()?)?;
    (p.leader == Some(cluster.me)).then_some(p.leader_epoch.0)
}

/// The coordinator of `group` on this (the group's owner) shard, loaded. On a single
/// broker every group is coordinated here. In a cluster: NOT_COORDINATOR unless this
/// broker leads the group's offsets partition; COORDINATOR_LOAD_IN_PROGRESS while that
/// partition's groups cannot be loaded yet.
pub async fn for_group(
    shard: &Rc<Shard>,
    ctx: &OwnerContext,
    group: &str,
) -> Result<Rc<Coordinator>, i16> {
    if ctx.cluster.is_none() {
        return on_shard(shard, ctx).await;
    }
    let partitions = offsets_partitions(ctx).ok_or(errors::NOT_COORDINATOR)?;
    let partition = offsets::partition_for(group, partitions);
    let epoch = led_epoch(ctx, partition).ok_or(errors::NOT_COORDINATOR)?;
    let coordinator = here();
    load_partition(shard, ctx, &coordinator, partition, epoch).await?;
    Ok(coordinator)
}

/// The coordinator with every group this broker coordinates loaded (ListGroups): on a
/// single broker all of them; in a cluster those of every offsets partition led here.
pub async fn for_listing(shard: &Rc<Shard>, ctx: &OwnerContext) -> Result<Rc<Coordinator>, i16> {
    if ctx.cluster.is_none() {
        return on_shard(shard, ctx).await;
    }
    let coordinator = here();
    for partition in 0..offsets_partitions(ctx).unwrap_or(0) {
        if let Some(epoch) = led_epoch(ctx, partition) {
            load_partition(shard, ctx, &coordinator, partition, epoch).await?;
        }
    }
    Ok(coordinator)
}

/// In a cluster: makes this shard hold the groups of `partition` as loaded at `epoch`
/// (dropping what an earlier leadership left, then reading the log).
async fn load_partition(
    shard: &Rc<Shard>,
    ctx: &OwnerContext,
    coordinator: &Rc<Coordinator>,
    partition: i32,
    epoch: i32,
) -> Result<(), i16> {
    if coordinator.led.borrow().get(&partition) == Some(&epoch) {
        return Ok(());
    }
    let _lock = coordinator.load_lock.lock().await;
    if coordinator.led.borrow().get(&partition) == Some(&epoch) {
        return Ok(());
    }
    // Whatever an earlier leadership of the partition left goes first: its epoch must not
    // be written at any more, its groups not answered from.
    coordinator.led.borrow_mut().remove(&partition);
    coordinator.forget_partition(ctx, partition);
    let loaded = offsets::load(shard, ctx, LoadScope::Led { partition, epoch }).await?;
    let groups = coordinator.install(shard, ctx, loaded);
    coordinator.led.borrow_mut().insert(partition, epoch);
    tracing::info!(shard = %shard.id(), partition, epoch, groups,
        "became the coordinator of an offsets partition; its groups are loaded");
    start_timer(shard, ctx, coordinator);
    Ok(())
}

/// This shard's coordinator, loaded (committed offsets replayed) before it is returned.
/// Single broker only. Error: COORDINATOR_LOAD_IN_PROGRESS when the offsets log cannot be
/// read yet.
async fn on_shard(shard: &Rc<Shard>, ctx: &OwnerContext) -> Result<Rc<Coordinator>, i16> {
    let coordinator = here();
    if coordinator.loaded.get() {
        return Ok(coordinator);
    }
    let lock_holder = coordinator.clone();
    let _lock = lock_holder.load_lock.lock().await;
    if coordinator.loaded.get() {
        return Ok(coordinator);
    }
    let loaded = offsets::load(shard, ctx, LoadScope::All).await?;
    let groups = coordinator.install(shard, ctx, loaded);
    tracing::info!(shard = %shard.id(), groups, "group coordinator loaded");
    coordinator.loaded.set(true);
    start_timer(shard, ctx, &coordinator);
    Ok(coordinator)
}

/// Starts the shard's timer task (once): session and rebalance expiries, the records they
/// call for, and in a cluster dropping the groups of partitions no longer led here.
fn start_timer(shard: &Rc<Shard>, ctx: &OwnerContext, coordinator: &Rc<Coordinator>) {
    if coordinator.ticking.replace(true) {
        return;
    }
    let ticking = Rc::downgrade(coordinator);
    let (shard, ctx) = (shard.clone(), ctx.clone());
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(Duration::from_millis(GROUP_TICK_MS)).await;
            let Some(c) = ticking.upgrade() else { return };
            c.drop_unled(&ctx);
            let forgotten = c.tick(Instant::now());
            // Expiries end rebalances and empty groups: write what they changed.
            let records = c.take_all_metadata();
            drop(c);
            for (id, md) in records {
                write_metadata(&shard, &ctx, &ticking, &id, md).await;
            }
            for id in forgotten {
                if let Err(code) = offsets::append_group(&shard, &ctx, &id, None).await {
                    tracing::warn!(group = %id, code, "group tombstone not written");
                }
            }
        }
    })
    .detach();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Appends one membership record; on failure the group asks for it again (next tick).
async fn write_metadata(
    shard: &Rc<Shard>,
    ctx: &OwnerContext,
    coordinator: &std::rc::Weak<Coordinator>,
    id: &str,
    md: GroupMetadata,
) -> i16 {
    match offsets::append_group(shard, ctx, id, Some(&md)).await {
        Ok(()) => errors::NONE,
        Err(code) => {
            tracing::warn!(group = %id, code, "group metadata not written; retrying");
            if let Some(c) = coordinator.upgrade() {
                c.with_group(id, Group::metadata_unwritten);
            }
            code
        }
    }
}

/// Writes the group's membership record if its last transition asked for one, and
/// resolves once it is durable (SyncGroup and LeaveGroup answer after this, as Kafka's
/// coordinator answers after its log append). Error: the Kafka code of the failed append.
pub async fn persist(
    shard: &Rc<Shard>,
    ctx: &OwnerContext,
    coordinator: &Rc<Coordinator>,
    id: &str,
) -> Result<(), i16> {
    let Some(md) = coordinator
        .with_group(id, |g| g.take_metadata(now_ms()))
        .flatten()
    else {
        return Ok(());
    };
    match write_metadata(shard, ctx, &Rc::downgrade(coordinator), id, md).await {
        errors::NONE => Ok(()),
        code => Err(code),
    }
}

impl Coordinator {
    /// Installs loaded groups (classic ones here, consumer-protocol ones in their own
    /// coordinator); returns how many classic groups it installed.
    fn install(
        &self,
        shard: &Rc<Shard>,
        ctx: &OwnerContext,
        loaded: HashMap<String, LoadedGroup>,
    ) -> usize {
        let now = Instant::now();
        let mut groups = self.groups.borrow_mut();
        let mut consumer_groups = Vec::new();
        let mut installed = 0;
        for (id, mut loaded) in loaded {
            if !loaded.consumer.raw.is_empty() {
                consumer_groups.push((id.clone(), std::mem::take(&mut loaded.consumer)));
            }
            if loaded.offsets.is_empty() && loaded.metadata.is_none() {
                continue;
            }
            let mut g = match loaded.metadata {
                Some(md) => Group::restore(id.clone(), md, now),
                None => Group::new(id.clone()),
            };
            g.offsets = loaded.offsets;
            groups.insert(id, g);
            installed += 1;
        }
        drop(groups);
        super::consumer::coordinator::restore(shard, ctx, consumer_groups);
        installed
    }

    /// Drops (answering their waiters) the groups of offsets partition `partition`, here
    /// and in the consumer-protocol coordinator.
    fn forget_partition(&self, ctx: &OwnerContext, partition: i32) {
        let Some(partitions) = offsets_partitions(ctx) else {
            return;
        };
        let of_partition = |id: &str| offsets::partition_for(id, partitions) == partition;
        self.groups.borrow_mut().retain(|id, g| {
            if of_partition(id) {
                g.mark_dead();
                false
            } else {
                true
            }
        });
        super::consumer::coordinator::forget(of_partition);
    }

    /// In a cluster: forgets the partitions this broker no longer leads at the epoch they
    /// were loaded at, with their groups.
    fn drop_unled(&self, ctx: &OwnerContext) {
        if ctx.cluster.is_none() {
            return;
        }
        let lost: Vec<i32> = self
            .led
            .borrow()
            .iter()
            .filter(|(p, e)| led_epoch(ctx, **p) != Some(**e))
            .map(|(p, _)| *p)
            .collect();
        for partition in lost {
            self.led.borrow_mut().remove(&partition);
            self.forget_partition(ctx, partition);
            tracing::info!(
                partition,
                "no longer the coordinator of an offsets partition; its groups are dropped"
            );
        }
    }

    /// Runs `f` on the group, if it exists.
    pub fn with_group<R>(&self, id: &str, f: impl FnOnce(&mut Group) -> R) -> Option<R> {
        self.groups.borrow_mut().get_mut(id).map(f)
    }

    /// Runs `f` on the group, creating it (Empty) if needed. Error: too many groups here.
    pub fn with_group_or_new<R>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Group) -> R,
    ) -> Result<R, i16> {
        let mut groups = self.groups.borrow_mut();
        if !groups.contains_key(id) {
            if groups.len() >= GROUPS_PER_SHARD_MAX {
                return Err(errors::COORDINATOR_NOT_AVAILABLE);
            }
            groups.insert(id.to_string(), Group::new(id));
        }
        match groups.get_mut(id) {
            Some(g) => Ok(f(g)),
            None => Err(errors::COORDINATOR_NOT_AVAILABLE),
        }
    }

    /// (group id, protocol type, state) of every group here.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        self.groups
            .borrow()
            .values()
            .map(|g| {
                (
                    g.id.clone(),
                    g.protocol_type().unwrap_or("").to_string(),
                    g.state(),
                )
            })
            .collect()
    }

    /// Applies durable offset changes to the in-memory view.
    pub fn apply_offsets(&self, id: &str, changes: Vec<offsets::OffsetChange>) {
        let mut groups = self.groups.borrow_mut();
        let g = groups
            .entry(id.to_string())
            .or_insert_with(|| Group::new(id));
        for (key, value) in changes {
            match value {
                Some(v) => {
                    if g.offsets.len() < OFFSETS_PER_GROUP_MAX || g.offsets.contains_key(&key) {
                        g.offsets.insert(key, v);
                    }
                }
                None => {
                    g.offsets.remove(&key);
                }
            }
        }
    }

    pub fn committed(&self, id: &str) -> Option<Vec<((String, i32), CommittedOffset)>> {
        self.groups.borrow().get(id).map(|g| {
            g.offsets
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    /// Removes a group (DeleteGroups); its waiters are answered.
    pub fn remove(&self, id: &str) {
        if let Some(mut g) = self.groups.borrow_mut().remove(id) {
            g.mark_dead();
        }
    }

    /// Membership records that transitions asked for, across the groups here.
    fn take_all_metadata(&self) -> Vec<(String, GroupMetadata)> {
        let now_ms = now_ms();
        self.groups
            .borrow_mut()
            .iter_mut()
            .filter_map(|(id, g)| g.take_metadata(now_ms).map(|md| (id.clone(), md)))
            .collect()
    }

    /// Expires sessions and overdue rebalances; returns the recorded groups it forgot
    /// (they need a tombstone).
    fn tick(&self, now: Instant) -> Vec<String> {
        let mut groups = self.groups.borrow_mut();
        for g in groups.values_mut() {
            g.tick(now);
        }
        // Kafka forgets an Empty group once it has no committed offsets.
        let mut forgotten = Vec::new();
        groups.retain(|id, g| {
            let forget = g.state() == GroupState::Empty && g.is_empty() && g.offsets.is_empty();
            if forget && g.is_recorded() {
                forgotten.push(id.clone());
            }
            !forget
        });
        forgotten
    }
}
