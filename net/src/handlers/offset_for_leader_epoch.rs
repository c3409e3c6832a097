//! OffsetForLeaderEpoch (v2-v4): where a leader epoch ends in the leader's log (KIP-101 /
//! KIP-279), which consumers use to detect a log truncated under them after a leader
//! change. Served by the partition's leader; on a single broker every batch carries epoch
//! 0, so any epoch >= 0 ends at the log end.

use std::collections::HashMap;
use std::rc::Rc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use sluice_engine::TopicPartition;

use crate::broker::Broker;
use crate::errors;
use crate::partition_ops;
use crate::routing::fan_out;

pub async fn handle(
    broker: &Rc<Broker>,
    req: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let mut items = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        for (pi, p) in t.partitions.iter().enumerate() {
            items.push((
                TopicPartition::new(t.topic.0.to_string(), p.partition),
                ((ti, pi), p.current_leader_epoch, p.leader_epoch),
            ));
        }
    }
    let ctx = broker.owner_context();
    let mut outcomes = HashMap::new();
    for (_, r) in fan_out(
        &broker.shard,
        items,
        move |shard, tp, (at, current, epoch)| {
            let ctx = ctx.clone();
            async move {
                (
                    at,
                    partition_ops::epoch_end(shard, ctx, tp, current, epoch).await,
                )
            }
        },
    )
    .await
    {
        if let Ok((at, o)) = r {
            outcomes.insert(at, o);
        }
    }
    let mut resp = OffsetForLeaderEpochResponse::default();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut out = OffsetForLeaderTopicResult::default();
        out.topic = t.topic.clone();
        for (pi, p) in t.partitions.iter().enumerate() {
            let (code, epoch, end) =
                outcomes
                    .remove(&(ti, pi))
                    .unwrap_or((errors::NOT_LEADER_OR_FOLLOWER, -1, -1));
            let mut e = EpochEndOffset::default();
            e.partition = p.partition;
            e.error_code = code;
            e.leader_epoch = epoch;
            e.end_offset = end;
            out.partitions.push(e);
        }
        resp.topics.push(out);
    }
    resp
}
