//! InitProducerId (v0-v5), idempotent producers only. A new producer gets a fresh id from
//! the broker's durable allocator ([`crate::producer_ids`]) with epoch 0; a producer that
//! sends its current id and epoch (KIP-360, after an unknown-sequence error) gets the
//! epoch bumped, or a fresh id when the epoch is exhausted. Transactions are not served:
//! a transactional id gets COORDINATOR_NOT_AVAILABLE (FindCoordinator answers the same
//! for transaction keys), so a transactional client fails loudly rather than mis-commits.

use std::rc::Rc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;
use crate::errors;
use crate::producer_ids::{ProducerIdAllocator, ALLOCATOR_KEY};

/// What the allocator shard answers: (error code, producer id, epoch).
type Answer = (i16, i64, i16);

pub async fn handle(
    broker: &Rc<Broker>,
    req: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        resp.error_code = errors::COORDINATOR_NOT_AVAILABLE;
        return resp;
    }
    let (id, epoch) = (req.producer_id.0, req.producer_epoch);
    if (id == -1) != (epoch == -1) {
        resp.error_code = errors::INVALID_REQUEST;
        return resp;
    }
    // In a cluster every broker allocates from its own id space (node id in the high
    // bits), so ids are unique cluster-wide without asking the controller.
    let space = broker
        .cluster
        .as_ref()
        .map_or(0, |_| i64::from(broker.node_id()) << PRODUCER_ID_SPACE_BITS);
    let local = if id >= 0 && (id >> PRODUCER_ID_SPACE_BITS) << PRODUCER_ID_SPACE_BITS == space {
        id - space
    } else {
        -1
    };
    let epoch = if local < 0 { -1 } else { epoch };
    let owner = broker.shard.table().owner_of_key(ALLOCATOR_KEY);
    let routed = broker
        .shard
        .route_to_owner(owner, move |shard| {
            Box::pin(
                async move { answer(&ProducerIdAllocator::on_shard(&shard), local, epoch).await },
            )
        })
        .await;
    let (code, id, epoch) = routed.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "producer id allocator unreachable");
        (errors::COORDINATOR_NOT_AVAILABLE, -1, -1)
    });
    let id = if id >= 0 { id + space } else { id };
    resp.error_code = code;
    resp.producer_id = ProducerId(id);
    resp.producer_epoch = epoch;
    resp
}

/// Bits of a producer id below the broker's node id in a cluster (2^40 ids per broker).
const PRODUCER_ID_SPACE_BITS: u32 = 40;

async fn answer(allocator: &ProducerIdAllocator, id: i64, epoch: i16) -> Answer {
    if let Some(bumped) = bump(allocator, id, epoch) {
        return bumped;
    }
    match allocator.allocate().await {
        Ok(id) => (errors::NONE, id, 0),
        Err(e) => {
            tracing::error!(error = %e, "allocating a producer id failed");
            (errors::KAFKA_STORAGE_ERROR, -1, -1)
        }
    }
}

/// KIP-360 epoch bump for an id this broker handed out; `None`: allocate a fresh id (a new
/// producer, an id we never issued, or an exhausted epoch).
fn bump(allocator: &ProducerIdAllocator, id: i64, epoch: i16) -> Option<Answer> {
    if id < 0 || !(0..i16::MAX - 1).contains(&epoch) {
        return None;
    }
    // Ids from before a restart are below the durable reservation; the allocator loads
    // it on first use, so only trust ids below what it has handed out or reserved.
    if id >= allocator.handed_out_below() {
        return None;
    }
    Some((errors::NONE, id, epoch + 1))
}
