//! A shard's group coordinator: the groups whose id this shard owns
//! (`ShardTable::owner_of_key`), their committed offsets, and the timer task that expires
//! sessions and ends overdue rebalances. One per shard, created on first use (a
//! thread-local, since route_to_owner hands owner-side work only the `Shard`), and loaded
//! from `__consumer_offsets` before it answers anything.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sluice_engine::runtime::Shard;

use super::offsets;
use super::state::{CommittedOffset, Group, GroupState};
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
        let mut groups = coordinator.groups.borrow_mut();
        for (id, committed) in loaded {
            let mut g = Group::new(id.clone());
            g.offsets = committed;
            groups.insert(id, g);
        }
        tracing::info!(shard = %shard.id(), groups = groups.len(), "group coordinator loaded");
    }
    coordinator.loaded.set(true);
    let ticking = Rc::downgrade(&coordinator);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(Duration::from_millis(GROUP_TICK_MS)).await;
            let Some(c) = ticking.upgrade() else { return };
            c.tick(Instant::now());
        }
    })
    .detach();
    Ok(coordinator)
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

    fn tick(&self, now: Instant) {
        let mut groups = self.groups.borrow_mut();
        for g in groups.values_mut() {
            g.tick(now);
        }
        // Kafka forgets an Empty group once it has no committed offsets.
        groups.retain(|_, g| {
            !(g.state() == GroupState::Empty && g.is_empty() && g.offsets.is_empty())
        });
    }
}
