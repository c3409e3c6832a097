//! Cross-shard fan-out: split a request's partitions by owner shard, send each owner one
//! closure over the engine's `route_to_owner` (bounded flume inbox), run the owner's
//! partitions concurrently there, and gather the per-partition answers.

use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

use sluice_engine::runtime::{Admission, DispatchTicket, Shard};
use sluice_engine::{ShardId, TopicPartition};

use crate::limits::ROUTE_REDIRECTS_MAX;

/// Why a partition's work never ran: the owner shard could not be reached.
#[derive(Debug, Clone, thiserror::Error)]
#[error("routing to {owner} failed: {reason}")]
pub struct RouteFailed {
    pub owner: ShardId,
    pub reason: String,
}

/// What the shard a partition's work was sent to did with it.
enum Routed<I, O> {
    Done(O),
    /// Not owned there (any more): try `owner`, the answering shard's view.
    Redirect(I, ShardId),
}

/// Runs `work(shard, tp, input)` on the owner of each `tp`; partitions on one owner run
/// concurrently on it. Answers come back in no particular order, each with its partition.
///
/// Partitions can move between shards while the broker runs: the owner admits each
/// partition first (waiting while it moves), and a shard that no longer owns one hands
/// its input back with the owner it knows, so the work is sent there - at most
/// `ROUTE_REDIRECTS_MAX` times, then the partition gets a `RouteFailed` (which handlers
/// answer with a retriable error such as NOT_LEADER_OR_FOLLOWER).
pub async fn fan_out<I, O, W, F>(
    shard: &Rc<Shard>,
    items: Vec<(TopicPartition, I)>,
    work: W,
) -> Vec<(TopicPartition, Result<O, RouteFailed>)>
where
    I: Send + 'static,
    O: Send + 'static,
    W: Fn(Rc<Shard>, TopicPartition, I) -> F + Send + Clone + 'static,
    F: Future<Output = O> + 'static,
{
    // Tickets are taken before the first await, so in the order requests arrived.
    let mut tickets: Vec<Option<DispatchTicket>> = items
        .iter()
        .map(|(tp, _)| Some(shard.dispatch_ticket(tp)))
        .collect();
    let mut out = Vec::new();
    let mut pending: Vec<(usize, TopicPartition, I, ShardId)> = items
        .into_iter()
        .enumerate()
        .map(|(i, (tp, input))| {
            let owner = shard.owner(&tp);
            (i, tp, input, owner)
        })
        .collect();
    // The work, told which item it runs for so answers find their ticket.
    let numbered = move |s: Rc<Shard>, tp: TopicPartition, (i, input): (usize, I)| {
        let fut = work(s, tp, input);
        async move { (i, fut.await) }
    };
    for round in 0..=ROUTE_REDIRECTS_MAX {
        if pending.is_empty() {
            break;
        }
        if round == ROUTE_REDIRECTS_MAX {
            for (i, tp, _, owner) in pending.drain(..) {
                tracing::warn!(partition = %tp, %owner, "partition kept moving; giving up on this request");
                let failed = RouteFailed {
                    owner,
                    reason: format!("still moving after {ROUTE_REDIRECTS_MAX} redirects"),
                };
                tickets[i] = None;
                out.push((tp, Err(failed)));
            }
            break;
        }
        let mut sends = Vec::with_capacity(pending.len());
        for (i, tp, input, owner) in pending.drain(..) {
            if let Some(t) = &tickets[i] {
                shard.dispatch_to(t, owner).await;
            }
            sends.push((tp, (i, input), owner));
        }
        for (tp, answer) in fan_out_once(shard, sends, numbered.clone()).await {
            match answer {
                Ok(Routed::Done((i, o))) => {
                    tickets[i] = None;
                    out.push((tp, Ok(o)));
                }
                Ok(Routed::Redirect((i, input), owner)) => {
                    if let Some(t) = &tickets[i] {
                        shard.dispatch_returned(t);
                    }
                    pending.push((i, tp, input, owner));
                }
                Err(failed) => out.push((tp, Err(failed))),
            }
        }
        // Re-send in arrival order.
        pending.sort_by_key(|(i, ..)| *i);
    }
    out
}

/// One round: each partition's work to the shard given with it.
async fn fan_out_once<I, O, W, F>(
    shard: &Rc<Shard>,
    items: Vec<(TopicPartition, I, ShardId)>,
    work: W,
) -> Vec<(TopicPartition, Result<Routed<I, O>, RouteFailed>)>
where
    I: Send + 'static,
    O: Send + 'static,
    W: Fn(Rc<Shard>, TopicPartition, I) -> F + Send + Clone + 'static,
    F: Future<Output = O> + 'static,
{
    let mut by_owner: BTreeMap<ShardId, Vec<(TopicPartition, I)>> = BTreeMap::new();
    for (tp, input, owner) in items {
        by_owner.entry(owner).or_default().push((tp, input));
    }
    let mut tasks = Vec::with_capacity(by_owner.len());
    for (owner, batch) in by_owner {
        let work = work.clone();
        let names: Vec<TopicPartition> = batch.iter().map(|(tp, _)| tp.clone()).collect();
        let shard = shard.clone();
        tasks.push((
            names,
            owner,
            // Detached: if this request is dropped (its connection closed), the routed work
            // still runs to completion instead of being cancelled while the owner shard holds
            // its waker; cancelling such a task crashed glommio 0.9's cross-shard wake-up
            // with a double free.
            glommio::spawn_local(async move {
                shard
                    .route_to_owner(owner, move |owner_shard| {
                        Box::pin(async move { run_concurrently(owner_shard, batch, work).await })
                    })
                    .await
                    .map_err(|e| e.to_string())
            })
            .detach(),
        ));
    }
    let mut out = Vec::new();
    for (names, owner, task) in tasks {
        let answer = task
            .await
            .unwrap_or_else(|| Err("routed task ended without an answer".to_string()));
        match answer {
            Ok(results) => out.extend(results.into_iter().map(|(tp, o)| (tp, Ok(o)))),
            Err(e) => {
                let failed = RouteFailed {
                    owner,
                    reason: e.to_string(),
                };
                out.extend(names.into_iter().map(|tp| (tp, Err(failed.clone()))));
            }
        }
    }
    out
}

/// On the owner: one local task per partition so appends share a group commit. Each
/// partition is admitted first; the lease is held while its work runs, so a move of the
/// partition waits for it.
async fn run_concurrently<I, O, W, F>(
    shard: Rc<Shard>,
    batch: Vec<(TopicPartition, I)>,
    work: W,
) -> Vec<(TopicPartition, Routed<I, O>)>
where
    I: 'static,
    O: 'static,
    W: Fn(Rc<Shard>, TopicPartition, I) -> F + Clone + 'static,
    F: Future<Output = O> + 'static,
{
    let one = |shard: Rc<Shard>, tp: TopicPartition, input: I, work: W| async move {
        match shard.admit(&tp).await {
            Admission::Owned(lease) => {
                let o = work(shard, tp, input).await;
                drop(lease);
                Routed::Done(o)
            }
            Admission::Elsewhere(owner) => Routed::Redirect(input, owner),
            // Still moving after the bound: let the caller try again where it is now.
            Admission::Moving => {
                let owner = shard.owner(&tp);
                Routed::Redirect(input, owner)
            }
        }
    };
    let mut batch = batch;
    if batch.len() == 1 {
        if let Some((tp, input)) = batch.pop() {
            let o = one(shard, tp.clone(), input, work).await;
            return vec![(tp, o)];
        }
    }
    let tasks: Vec<_> = batch
        .into_iter()
        .map(|(tp, input)| {
            let fut = one(shard.clone(), tp.clone(), input, work.clone());
            (tp, glommio::spawn_local(fut).detach())
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for (tp, task) in tasks {
        // A detached task only ends without an answer if it panicked.
        if let Some(o) = task.await {
            out.push((tp, o));
        }
    }
    out
}

/// Long-poll helper: resolves once any of `partitions` has data at or beyond its offset
/// (each owner waits on its own partitions), or after `wait`.
pub async fn wait_for_any(
    broker: &crate::broker::Broker,
    ctx: crate::partition_ops::OwnerContext,
    partitions: Vec<(TopicPartition, i64)>,
    wait: std::time::Duration,
) {
    let mut by_owner: BTreeMap<ShardId, Vec<(TopicPartition, i64)>> = BTreeMap::new();
    for (tp, from) in partitions {
        by_owner
            .entry(broker.shard.owner(&tp))
            .or_default()
            .push((tp, from));
    }
    let mut any: std::pin::Pin<Box<dyn Future<Output = ()>>> =
        Box::pin(glommio::timer::sleep(wait));
    for (owner, batch) in by_owner {
        let ctx = ctx.clone();
        let shard = broker.shard.clone();
        let one = async move {
            let routed = shard
                .route_to_owner(owner, move |owner_shard| {
                    Box::pin(crate::partition_ops::wait_for_any(
                        owner_shard,
                        ctx,
                        batch,
                        wait,
                    ))
                })
                .await;
            if routed.is_err() {
                // The owner is unreachable: let the timer decide rather than spin.
                futures_lite::future::pending::<()>().await;
            }
        };
        any = Box::pin(futures_lite::future::race(any, one));
    }
    any.await;
}
