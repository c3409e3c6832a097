//! DescribeLogDirs (v1-v4): the one data directory and the size of each partition in it.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use sluice_engine::TopicPartition;

use super::str_bytes;
use crate::broker::Broker;
use crate::partition_ops;
use crate::routing::fan_out;

pub async fn handle(
    broker: &Rc<Broker>,
    req: DescribeLogDirsRequest,
    _version: i16,
) -> DescribeLogDirsResponse {
    let snapshot = broker.store.snapshot();
    let mut items = Vec::new();
    match &req.topics {
        None => {
            for t in snapshot.topics.values() {
                items.extend(
                    (0..t.partitions).map(|p| (TopicPartition::new(t.name.clone(), p), ())),
                );
            }
        }
        Some(topics) => {
            for t in topics {
                for &p in &t.partitions {
                    items.push((TopicPartition::new(t.topic.0.to_string(), p), ()));
                }
            }
        }
    }
    let ctx = broker.owner_context();
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for (tp, r) in fan_out(&broker.shard, items, move |shard, tp, ()| {
        partition_ops::size_bytes(shard, ctx.clone(), tp)
    })
    .await
    {
        if let Ok(Some(size)) = r {
            let mut p = DescribeLogDirsPartition::default();
            p.partition_index = tp.partition.0;
            p.partition_size = i64::try_from(size).unwrap_or(i64::MAX);
            by_topic.entry(tp.topic).or_default().push(p);
        }
    }
    let mut dir = DescribeLogDirsResult::default();
    dir.log_dir = str_bytes(broker.shard.engine_config().data_dir.display().to_string());
    dir.total_bytes = -1;
    dir.usable_bytes = -1;
    dir.topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            let mut t = DescribeLogDirsTopic::default();
            t.name = TopicName(str_bytes(name));
            t.partitions = partitions;
            t
        })
        .collect();
    let mut resp = DescribeLogDirsResponse::default();
    resp.results = vec![dir];
    resp
}
