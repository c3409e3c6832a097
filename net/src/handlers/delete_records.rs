//! DeleteRecords (v0-v2): moves each partition's log start offset forward.

use std::collections::HashMap;
use std::rc::Rc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use sluice_engine::TopicPartition;

use crate::broker::Broker;
use crate::errors;
use crate::partition_ops;
use crate::routing::fan_out;

pub async fn handle(
    broker: &Rc<Broker>,
    req: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let mut items = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        for (pi, p) in t.partitions.iter().enumerate() {
            items.push((
                TopicPartition::new(t.name.0.to_string(), p.partition_index),
                ((ti, pi), p.offset),
            ));
        }
    }
    let ctx = broker.owner_context();
    let mut outcomes: HashMap<(usize, usize), (i16, i64)> = HashMap::new();
    for (_, r) in fan_out(&broker.shard, items, move |shard, tp, (at, before)| {
        let ctx = ctx.clone();
        async move {
            (
                at,
                partition_ops::delete_records(shard, ctx, tp, before).await,
            )
        }
    })
    .await
    {
        if let Ok((at, o)) = r {
            outcomes.insert(at, o);
        }
    }
    let mut resp = DeleteRecordsResponse::default();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut out = DeleteRecordsTopicResult::default();
        out.name = t.name.clone();
        for (pi, p) in t.partitions.iter().enumerate() {
            let (code, low) = outcomes
                .remove(&(ti, pi))
                .unwrap_or((errors::NOT_LEADER_OR_FOLLOWER, -1));
            let mut part = DeleteRecordsPartitionResult::default();
            part.partition_index = p.partition_index;
            part.error_code = code;
            part.low_watermark = low;
            out.partitions.push(part);
        }
        resp.topics.push(out);
    }
    resp
}
