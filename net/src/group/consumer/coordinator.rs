//! A shard's consumer-protocol groups: those whose id this shard owns
//! (`ShardTable::owner_of_key`). One per shard, a thread-local created on first use (as
//! the classic coordinator) or by the start-up replay ([`restore`]), with a timer task
//! that expires silent members.
//!
//! Durability: every change of a group is written to `__consumer_offsets` as KIP-848
//! records ([`super::records`]). The coordinator keeps, per group, the records it wrote
//! last; [`persist`] writes the difference to the group's records now (new and changed
//! values, tombstones for keys that are gone) and resolves once it is durable, so a
//! heartbeat is answered after its records are. Changes made outside a heartbeat (session
//! expiry, a group removed by DeleteGroups or a classic join, a failed append) mark the
//! group dirty and the timer task writes them.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_engine::runtime::Shard;

use super::records::{self, LoadedConsumerGroup};
use super::state::{ConsumerGroup, GroupState, Timing};
use crate::errors;
use crate::group::offsets::{self, KeyValue};
use crate::limits::{CONSUMER_GROUPS_PER_SHARD_MAX, GROUP_TICK_MS};
use crate::partition_ops::OwnerContext;

/// Stands for "not known to be in the log" in `written` (real values are never empty):
/// the next difference rewrites the key, or tombstones it.
const UNWRITTEN: Bytes = Bytes::new();

/// The consumer-protocol groups one shard owns. Lives on that shard only.
#[derive(Default)]
pub struct ConsumerCoordinator {
    groups: RefCell<HashMap<String, ConsumerGroup>>,
    /// Per group, the records last handed to the log (key -> value).
    written: RefCell<HashMap<String, BTreeMap<Bytes, Bytes>>>,
    /// Groups changed outside a heartbeat, for the timer task to write.
    dirty: RefCell<BTreeSet<String>>,
    /// One writer at a time per group, so its appends reach the log in the order their
    /// differences were taken (a later value never lands before an earlier one).
    write_locks: RefCell<HashMap<String, Rc<async_lock::Mutex<()>>>>,
}

thread_local! {
    static COORDINATOR: RefCell<Option<Rc<ConsumerCoordinator>>> = const { RefCell::new(None) };
}

/// This shard's consumer-protocol coordinator (its timer starts with it). Must be called
/// on a glommio executor thread.
pub fn on_shard(shard: &Rc<Shard>, ctx: &OwnerContext) -> Rc<ConsumerCoordinator> {
    if let Some(c) = COORDINATOR.with(|c| c.borrow().clone()) {
        return c;
    }
    let coordinator = Rc::new(ConsumerCoordinator::default());
    COORDINATOR.with(|c| *c.borrow_mut() = Some(coordinator.clone()));
    let ticking = Rc::downgrade(&coordinator);
    let (shard, ctx) = (shard.clone(), ctx.clone());
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(Duration::from_millis(GROUP_TICK_MS)).await;
            let Some(c) = ticking.upgrade() else { return };
            c.tick(Instant::now());
            let dirty = std::mem::take(&mut *c.dirty.borrow_mut());
            for id in dirty {
                if let Err(code) = persist(&shard, &ctx, &c, &id).await {
                    tracing::warn!(group = %id, code, "consumer group records not written; retrying");
                }
            }
        }
    })
    .detach();
    coordinator
}

/// This shard's coordinator if one was ever created (no timer started otherwise).
pub fn existing() -> Option<Rc<ConsumerCoordinator>> {
    COORDINATOR.with(|c| c.borrow().clone())
}

/// In a cluster, when this broker stops coordinating them: drops the groups whose id
/// `gone` matches, with what they had written or meant to write (the new coordinator
/// loads them from the log).
pub fn forget(gone: impl Fn(&str) -> bool) {
    let Some(c) = existing() else {
        return;
    };
    c.groups.borrow_mut().retain(|id, _| !gone(id));
    c.written.borrow_mut().retain(|id, _| !gone(id));
    c.dirty.borrow_mut().retain(|id| !gone(id));
}

/// Installs the groups a load of `__consumer_offsets` found (members get fresh session
/// timers). Called by the classic coordinator's load (once per shard on a single broker;
/// per offsets partition this broker becomes the leader of in a cluster), before anything
/// about them is answered.
pub fn restore(shard: &Rc<Shard>, ctx: &OwnerContext, loaded: Vec<(String, LoadedConsumerGroup)>) {
    if loaded.is_empty() {
        return;
    }
    let c = on_shard(shard, ctx);
    let now = Instant::now();
    let mut groups = c.groups.borrow_mut();
    let mut written = c.written.borrow_mut();
    for (id, l) in loaded {
        match ConsumerGroup::restore(id.clone(), &l, Timing::default(), now) {
            Some(g) if groups.len() < CONSUMER_GROUPS_PER_SHARD_MAX => {
                tracing::info!(group = %id, epoch = g.group_epoch(), members = g.members().count(),
                    "consumer group restored");
                // Records that disagree with the restored state are rewritten (or
                // tombstoned) by the first difference.
                if records::group_records(&g) != l.raw {
                    c.dirty.borrow_mut().insert(id.clone());
                }
                groups.insert(id.clone(), g);
            }
            _ => {
                // Deleted (or over the bound): leftover member records get tombstones.
                if !l.raw.is_empty() {
                    c.dirty.borrow_mut().insert(id.clone());
                }
            }
        }
        written.insert(id, l.raw);
    }
}

/// Writes the difference between `id`'s records now and those written last; resolves
/// once durable. On failure the group stays dirty (the timer retries). Error: the Kafka
/// code of the failed append.
pub async fn persist(
    shard: &Rc<Shard>,
    ctx: &OwnerContext,
    c: &Rc<ConsumerCoordinator>,
    id: &str,
) -> Result<(), i16> {
    let lock = c
        .write_locks
        .borrow_mut()
        .entry(id.to_string())
        .or_default()
        .clone();
    let result = {
        let _writing = lock.lock().await;
        let changes = c.take_changes(id);
        if changes.is_empty() {
            Ok(())
        } else {
            match offsets::append_records(shard, ctx, id, changes.clone()).await {
                Ok(()) => Ok(()),
                Err(code) => {
                    c.unwritten(id, &changes);
                    Err(code)
                }
            }
        }
    };
    // The lock map holds groups being written or still known here, nothing else.
    if Rc::strong_count(&lock) == 2 && c.with_group(id, |_| ()).is_none() {
        c.write_locks.borrow_mut().remove(id);
    }
    result
}

impl ConsumerCoordinator {
    /// Runs `f` on the group, if it exists.
    pub fn with_group<R>(&self, id: &str, f: impl FnOnce(&mut ConsumerGroup) -> R) -> Option<R> {
        self.groups.borrow_mut().get_mut(id).map(f)
    }

    /// Runs `f` on the group, creating it if needed. At the bound an empty group makes
    /// room (its offsets stay with the classic coordinator; its records get tombstones).
    /// Error: too many live groups.
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
                self.dirty.borrow_mut().insert(empty);
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

    /// Forgets a group; its records get tombstones ([`persist`], or the timer task).
    pub fn remove(&self, id: &str) {
        self.groups.borrow_mut().remove(id);
        self.dirty.borrow_mut().insert(id.to_string());
    }

    /// The records to append for `id` (upserts in key order, then tombstones with the
    /// group epoch's last, as Kafka deletes a group), noted as written.
    fn take_changes(&self, id: &str) -> Vec<KeyValue> {
        let now = self
            .groups
            .borrow()
            .get(id)
            .map(records::group_records)
            .unwrap_or_default();
        let mut written = self.written.borrow_mut();
        let before = written.remove(id).unwrap_or_default();
        let mut out: Vec<KeyValue> = now
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        out.extend(
            before
                .keys()
                .rev()
                .filter(|k| !now.contains_key(*k))
                .map(|k| (k.clone(), None)),
        );
        if !now.is_empty() {
            written.insert(id.to_string(), now);
        }
        out
    }

    /// An append of `changes` failed: what it held is not known to be in the log.
    fn unwritten(&self, id: &str, changes: &[KeyValue]) {
        let mut written = self.written.borrow_mut();
        let w = written.entry(id.to_string()).or_default();
        for (k, _) in changes {
            w.insert(k.clone(), UNWRITTEN);
        }
        self.dirty.borrow_mut().insert(id.to_string());
    }

    fn tick(&self, now: Instant) {
        for (id, g) in self.groups.borrow_mut().iter_mut() {
            if g.tick(now) {
                self.dirty.borrow_mut().insert(id.clone());
            }
        }
    }
}
