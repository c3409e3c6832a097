//! Produce (v3-v12): each partition's record set is appended verbatim on its owner
//! shard; acks=1 and acks=all answer once the engine's durability policy is met
//! (single broker: the same), acks=0 gets no response at all.

use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use sluice_engine::TopicPartition;

use super::str_bytes;
use crate::broker::Broker;
use crate::errors;
use crate::metadata::validate_topic_name;
use crate::partition_ops::{self, ProduceOutcome};
use crate::routing::fan_out;
use crate::topics;

/// Where a partition sits in the request (topic index, partition index) and its records.
type PartitionWork = ((usize, usize), Bytes);

/// `None` when the producer asked for no response (acks=0).
pub async fn handle(
    broker: &Rc<Broker>,
    req: ProduceRequest,
    _version: i16,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    // Outcomes by (topic index, partition index) in the request.
    let mut outcomes: HashMap<(usize, usize), ProduceOutcome> = HashMap::new();
    let mut work: Vec<(TopicPartition, PartitionWork)> = Vec::new();
    for (ti, topic) in req.topic_data.iter().enumerate() {
        let name = topic.name.0.to_string();
        let mut topic_error = None;
        if !(-1..=1).contains(&acks) {
            topic_error = Some(errors::INVALID_REQUIRED_ACKS);
        } else if validate_topic_name(&name).is_err() {
            topic_error = Some(errors::INVALID_TOPIC_EXCEPTION);
        } else if crate::group::offsets::is_internal(&name) {
            // Kafka: "Cannot append to internal topic".
            topic_error = Some(errors::INVALID_TOPIC_EXCEPTION);
        } else if broker.store.snapshot().topic(&name).is_none() {
            topic_error = if broker.config.auto_create_topics_enable {
                topics::auto_create(broker, &name)
                    .await
                    .err()
                    .map(|e| e.code)
            } else {
                Some(errors::UNKNOWN_TOPIC_OR_PARTITION)
            };
        }
        for (pi, part) in topic.partition_data.iter().enumerate() {
            if let Some(code) = topic_error {
                outcomes.insert((ti, pi), ProduceOutcome::error(code, None));
                continue;
            }
            match &part.records {
                Some(records) if !records.is_empty() => {
                    work.push((
                        TopicPartition::new(name.clone(), part.index),
                        ((ti, pi), records.clone()),
                    ));
                }
                _ => {
                    outcomes.insert(
                        (ti, pi),
                        ProduceOutcome::error(
                            errors::CORRUPT_MESSAGE,
                            Some("empty record set".into()),
                        ),
                    );
                }
            }
        }
    }
    let ctx = broker.owner_context();
    let timeout_ms = req.timeout_ms;
    let results = fan_out(&broker.shard, work, move |shard, tp, (at, records)| {
        let ctx = ctx.clone();
        async move {
            (
                at,
                partition_ops::produce(shard, ctx, tp, records, acks, timeout_ms).await,
            )
        }
    })
    .await;
    for (_, r) in results {
        match r {
            Ok((at, outcome)) => {
                outcomes.insert(at, outcome);
            }
            Err(e) => {
                tracing::warn!(error = %e, "produce routing failed");
            }
        }
    }
    if acks == 0 {
        return None;
    }
    let mut resp = ProduceResponse::default();
    for (ti, topic) in req.topic_data.iter().enumerate() {
        let mut t = TopicProduceResponse::default();
        t.name = topic.name.clone();
        for (pi, part) in topic.partition_data.iter().enumerate() {
            let o = outcomes
                .remove(&(ti, pi))
                .unwrap_or_else(|| ProduceOutcome::error(errors::NOT_LEADER_OR_FOLLOWER, None));
            let mut p = PartitionProduceResponse::default();
            p.index = part.index;
            p.error_code = o.error_code;
            p.base_offset = o.base_offset;
            p.log_append_time_ms = o.log_append_time_ms;
            p.log_start_offset = o.log_start_offset;
            p.error_message = o.error_message.map(str_bytes);
            t.partition_responses.push(p);
        }
        resp.responses.push(t);
    }
    Some(resp)
}
