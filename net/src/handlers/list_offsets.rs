//! ListOffsets (v1-v9): earliest (-2), latest (-1), max timestamp (-3), earliest local
//! (-4), latest tiered (-5, none here) and by timestamp.

use std::collections::HashMap;
use std::rc::Rc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use sluice_engine::TopicPartition;

use crate::broker::Broker;
use crate::errors;
use crate::partition_ops::{self, OffsetOutcome};
use crate::routing::fan_out;

pub async fn handle(
    broker: &Rc<Broker>,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut items = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        for (pi, p) in t.partitions.iter().enumerate() {
            items.push((
                TopicPartition::new(t.name.0.to_string(), p.partition_index),
                ((ti, pi), p.timestamp, p.current_leader_epoch),
            ));
        }
    }
    let ctx = broker.owner_context();
    let mut outcomes: HashMap<(usize, usize), OffsetOutcome> = HashMap::new();
    for (_, r) in fan_out(&broker.shard, items, move |shard, tp, (at, ts, epoch)| {
        let ctx = ctx.clone();
        async move {
            (
                at,
                partition_ops::list_offset(shard, ctx, tp, ts, epoch).await,
            )
        }
    })
    .await
    {
        if let Ok((at, o)) = r {
            outcomes.insert(at, o);
        }
    }
    let mut resp = ListOffsetsResponse::default();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut out = ListOffsetsTopicResponse::default();
        out.name = t.name.clone();
        for (pi, p) in t.partitions.iter().enumerate() {
            let o = outcomes.remove(&(ti, pi)).unwrap_or(OffsetOutcome {
                error_code: errors::NOT_LEADER_OR_FOLLOWER,
                offset: -1,
                timestamp: -1,
                leader_epoch: -1,
            });
            let mut part = ListOffsetsPartitionResponse::default();
            part.partition_index = p.partition_index;
            part.error_code = o.error_code;
            part.offset = o.offset;
            part.timestamp = o.timestamp;
            // leader_epoch exists from v4; the codec refuses a non-default value before.
            if version >= 4 && o.offset >= 0 {
                part.leader_epoch = o.leader_epoch.max(0);
            }
            out.partitions.push(part);
        }
        resp.topics.push(out);
    }
    resp
}
