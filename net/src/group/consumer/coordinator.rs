//! A shard's consumer-protocol groups: those whose id this shard owns
//! (`ShardTable::owner_of_key`). One per shard, a thread-local created on first use (as
//! the classic coordinator), with a timer task that expires silent members. In memory
//! only: after a restart members get UNKNOWN_MEMBER_ID and rejoin; committed offsets are
//! kept by the classic coordinator's `__consumer_offsets` path.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::state::{ConsumerGroup, GroupState};
use crate::errors;
use crate::limits::{CONSUMER_GROUPS_PER_SHARD_MAX, GROUP_TICK_MS};

/// The consumer-protocol groups one shard owns. Lives on that shard only.
#[derive(Default)]
pub struct ConsumerCoordinator {
    groups: RefCell<HashMap<String, ConsumerGroup>>,
}

thread_local! {
    static COORDINATOR: RefCell<Option<Rc<ConsumerCoordinator>>> = const { RefCell::new(None) };
}

/// This shard's consumer-protocol coordinator (its timer starts with it). Must be called
/// on a glommio executor thread.
pub fn on_shard() -> Rc<ConsumerCoordinator> {
    if let Some(c) = COORDINATOR.with(|c| c.borrow().clone()) {
        return c;
    }
    let coordinator = Rc::new(ConsumerCoordinator::default());
    COORDINATOR.with(|c| *c.borrow_mut() = Some(coordinator.clone()));
    let ticking = Rc::downgrade(&coordinator);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(Duration::from_millis(GROUP_TICK_MS)).await;
            let Some(c) = ticking.upgrade() else { return };
            c.tick(Instant::now());
        }
    })
    .detach();
    coordinator
}

/// This shard's coordinator if one was ever created (no timer started otherwise).
pub fn existing() -> Option<Rc<ConsumerCoordinator>> {
    COORDINATOR.with(|c| c.borrow().clone())
}

impl ConsumerCoordinator {
    /// Runs `f` on the group, if it exists.
    pub fn with_group<R>(&self, id: &str, f: impl FnOnce(&mut ConsumerGroup) -> R) -> Option<R> {
        self.groups.borrow_mut().get_mut(id).map(f)
    }

    /// Runs `f` on the group, creating it if needed. At the bound an empty group makes
    /// room (its offsets stay with the classic coordinator). Error: too many live groups.
    pub fn with_group_or_new<R>(
        &self,
        id: &str,
        f: impl FnOnce(&mut ConsumerGroup) -> R,
    ) -> Result<R, i16> {
        let mut groups = self.groups.borrow_mut();
        if !groups.contains_key(id) {
            if groups.len() >= CONSUMER_GROUPS_PER_SHARD_MAX {
                let Some(empty) = groups
                    .iter()
                    .find(|(_, g)| g.is_empty())
                    .map(|(k, _)| k.clone())
                else {
                    return Err(errors::COORDINATOR_NOT_AVAILABLE);
                };
                groups.remove(&empty);
            }
            groups.insert(id.to_string(), ConsumerGroup::new(id));
        }
        groups
            .get_mut(id)
            .map(f)
            .ok_or(errors::COORDINATOR_NOT_AVAILABLE)
    }

    /// (group id, state) of every group here.
    pub fn list(&self) -> Vec<(String, GroupState)> {
        self.groups
            .borrow()
            .values()
            .map(|g| (g.id.clone(), g.state()))
            .collect()
    }

    pub fn remove(&self, id: &str) {
        self.groups.borrow_mut().remove(id);
    }

    fn tick(&self, now: Instant) {
        for g in self.groups.borrow_mut().values_mut() {
            g.tick(now);
        }
    }
}
