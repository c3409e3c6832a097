//! A shard's group coordinator: the groups whose id this shard owns
//! (`ShardTable::owner_of_key`), their committed offsets, and the timer task that expires
//! sessions and ends overdue rebalances. One per shard, created on first use (a
//! thread-local, since route_to_owner hands owner-side work only the `Shard`), and loaded
//! from `__consumer_offsets` (committed offsets and each group's last membership record)
//! before it answers anything. Membership records are written when a generation becomes
//! Stable or a group Empty ([`persist`], and the timer task for expiries), and a
//! tombstone when a recorded group is forgotten.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sluice_engine::runtime::Shard;

use super::offsets;
use super::state::{CommittedOffset, Group, GroupMetadata, GroupState};
use crate::errors;
use crate::limits::{GROUPS_PER_SHARD_MAX, GROUP_TICK_MS, OFFSETS_PER_GROUP_MAX};
use crate::partition_ops::OwnerContext;

/// The groups one shard owns. Lives on that shard only.
#[derive(Default)]
pub struct Coordinator {
    groups: RefCell<HashMap<String, Group>>,
    loaded: Cell<bool>,
    load_lock: async_lock::Mutex<()>,
}

thread_local! {
    static COORDINATOR: RefCell<Option<Rc<Coordinator>>> = const { RefCell::new(None) };
}

/// This shard's coordinator, loaded (committed offsets replayed) before it is returned.
/// Error: COORDINATOR_LOAD_IN_PROGRESS when the offsets log cannot be read yet.
pub async fn on_shard(shard: &Rc<Shard>, ctx: &OwnerContext) -> Result<Rc<Coordinator>, i16> {
    let coordinator =
        COORDINATOR.with(|c| c.borrow_mut().get_or_insert_with(Default::default).clone());
    if coordinator.loaded.get() {
        return Ok(coordinator);
    }
    let lock_holder = coordinator.clone();
    let _lock = lock_holder.load_lock.lock().await;
    if coordinator.loaded.get() {
        return Ok(coordinator);
    }
    let loaded = offsets::load(shard, ctx).await?;
    {
        let now = Instant::now();
        let mut groups = coordinator.groups.borrow_mut();
        let mut consumer_groups = Vec::new();
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
        }
        tracing::info!(shard = %shard.id(), groups = groups.len(), "group coordinator loaded");
        drop(groups);
        super::consumer::coordinator::restore(shard, ctx, consumer_groups);
    }
    coordinator.loaded.set(true);
    let ticking = Rc::downgrade(&coordinator);
    let (shard, ctx) = (shard.clone(), ctx.clone());
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(Duration::from_millis(GROUP_TICK_MS)).await;
            let Some(c) = ticking.upgrade() else { return };
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
    Ok(coordinator)
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
