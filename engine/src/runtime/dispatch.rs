//! Keeping a connection's pipelined requests in order while a partition moves between
//! shards. Each origin shard (where a connection lives) numbers its routed work per
//! partition and only sends work to a shard once every earlier unanswered work for the
//! partition was sent to that same shard, whose inbox is FIFO. Without a move that holds at
//! once; after one, work held or redirected by the old owner reaches the new owner before
//! anything later from the same origin does.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;

use crate::ids::{ShardId, TopicPartition};
use crate::limits::MOVE_WAIT_MS_MAX;
use crate::runtime::shard::Shard;

/// Origin view, per shard: the unanswered work this shard routed, per partition.
#[derive(Default)]
pub(crate) struct DispatchTable {
    by_partition: RefCell<HashMap<TopicPartition, Dispatches>>,
}

/// The unanswered work this (origin) shard sent for one partition, by ticket number: where
/// each one is now (None: it came back redirected and is not sent anywhere yet).
#[derive(Default)]
struct Dispatches {
    next: u64,
    open: BTreeMap<u64, Option<ShardId>>,
    waiters: Vec<oneshot::Sender<()>>,
}

/// One piece of work for a partition, in the order this shard received it. Keeps a
/// connection's pipelined requests in order across a move: work is only sent to a shard
/// once every earlier unanswered work for the partition from this shard was sent to that
/// same shard (whose inbox is FIFO). Without a move that is always so at once; after one,
/// the work sent to the old owner and held or redirected there reaches the new owner before
/// anything later does. Dropped when the work is answered.
pub struct DispatchTicket {
    shard: Rc<Shard>,
    tp: TopicPartition,
    number: u64,
}

impl Drop for DispatchTicket {
    fn drop(&mut self) {
        self.shard.dispatch_table().update_dispatch(&self.tp, |d| {
            d.open.remove(&self.number);
        });
    }
}

impl DispatchTable {
    /// Changes a partition's dispatch record and wakes the tickets waiting on it.
    fn update_dispatch(&self, tp: &TopicPartition, change: impl FnOnce(&mut Dispatches)) {
        let mut all = self.by_partition.borrow_mut();
        let Some(d) = all.get_mut(tp) else {
            return;
        };
        change(d);
        for w in d.waiters.drain(..) {
            let _ = w.send(());
        }
        if d.open.is_empty() {
            all.remove(tp);
        }
    }
}

impl Shard {
    /// A ticket for the next work on `tp` from this shard (call in arrival order).
    pub fn dispatch_ticket(self: &Rc<Self>, tp: &TopicPartition) -> DispatchTicket {
        let mut all = self.dispatch_table().by_partition.borrow_mut();
        let d = all.entry(tp.clone()).or_default();
        let number = d.next;
        d.next += 1;
        d.open.insert(number, None);
        DispatchTicket {
            shard: self.clone(),
            tp: tp.clone(),
            number,
        }
    }

    /// Waits until the ticket's work may be sent to `owner` (every earlier unanswered work
    /// for the partition went there), then records that it is. Bounded by
    /// `MOVE_WAIT_MS_MAX`; past it the work goes anyway (order is then best effort).
    pub async fn dispatch_to(&self, ticket: &DispatchTicket, owner: ShardId) {
        let deadline = std::time::Instant::now() + Duration::from_millis(MOVE_WAIT_MS_MAX);
        loop {
            let rx = {
                let mut all = self.dispatch_table().by_partition.borrow_mut();
                let Some(d) = all.get_mut(&ticket.tp) else {
                    return;
                };
                let ready = d
                    .open
                    .range(..ticket.number)
                    .all(|(_, at)| *at == Some(owner));
                if ready || std::time::Instant::now() >= deadline {
                    d.open.insert(ticket.number, Some(owner));
                    // Later tickets waiting for this one to be sent there may go now.
                    for w in d.waiters.drain(..) {
                        let _ = w.send(());
                    }
                    return;
                }
                let (tx, rx) = oneshot::channel();
                d.waiters.push(tx);
                rx
            };
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            futures_lite::future::or(
                async {
                    let _ = rx.await;
                },
                glommio::timer::sleep(left),
            )
            .await;
        }
    }

    /// The ticket's work came back unexecuted (redirected): it is sent nowhere now.
    pub fn dispatch_returned(&self, ticket: &DispatchTicket) {
        self.dispatch_table().update_dispatch(&ticket.tp, |d| {
            if let Some(at) = d.open.get_mut(&ticket.number) {
                *at = None;
            }
        });
    }
}
