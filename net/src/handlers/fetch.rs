//! Fetch (v4-v17): long poll honouring max_wait_ms and min_bytes, answering as soon as
//! min_bytes is reached; per-partition and total byte limits, but always at least one
//! whole batch. Fetch sessions: the broker never creates one (session id 0 in every
//! answer, which the protocol allows), so every request is a full fetch; a request
//! naming a session id gets FETCH_SESSION_ID_NOT_FOUND.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use sluice_engine::TopicPartition;

use super::{str_bytes, uuid};
use crate::broker::Broker;
use crate::errors;
use crate::limits::{FETCH_RESPONSE_BYTES_MAX, FETCH_WAIT_MS_MAX};
use crate::partition_ops::{self, FetchOutcome};
use crate::routing::{fan_out, wait_for_any};

/// One partition the request asks for, resolved to a name.
struct Wanted {
    topic_index: usize,
    tp: TopicPartition,
    fetch_offset: i64,
    max_bytes: usize,
    current_leader_epoch: i32,
    /// Set when the partition is answered without reading (unknown topic id ...).
    error: Option<i16>,
}

pub async fn handle(broker: &Rc<Broker>, req: FetchRequest, version: i16) -> FetchResponse {
    let mut resp = FetchResponse::default();
    if req.session_id != 0 {
        resp.error_code = errors::FETCH_SESSION_ID_NOT_FOUND;
        return resp;
    }
    let started = Instant::now();
    let max_wait = Duration::from_millis((req.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MS_MAX));
    let min_bytes = req.min_bytes.max(0) as usize;
    let total_max = (req.max_bytes.max(0) as usize).min(FETCH_RESPONSE_BYTES_MAX);

    let snapshot = broker.store.snapshot();
    let mut wanted = Vec::new();
    let mut topic_names = Vec::with_capacity(req.topics.len());
    for (topic_index, topic) in req.topics.iter().enumerate() {
        // v13+ names topics by id only.
        let (name, error) = if version >= 13 {
            match snapshot.topic_by_id(topic.topic_id.as_u128()) {
                Some(t) => (t.name.clone(), None),
                None => (String::new(), Some(errors::UNKNOWN_TOPIC_ID)),
            }
        } else {
            let name = topic.topic.0.to_string();
            let error = snapshot
                .topic(&name)
                .is_none()
                .then_some(errors::UNKNOWN_TOPIC_OR_PARTITION);
            (name, error)
        };
        topic_names.push(name.clone());
        for p in &topic.partitions {
            wanted.push(Wanted {
                topic_index,
                tp: TopicPartition::new(name.clone(), p.partition),
                fetch_offset: p.fetch_offset,
                current_leader_epoch: p.current_leader_epoch,
                max_bytes: (p.partition_max_bytes.max(0) as usize).min(total_max.max(1)),
                error,
            });
        }
    }

    let ctx = broker.owner_context();
    let outcomes = loop {
        let items: Vec<_> = wanted
            .iter()
            .enumerate()
            .filter(|(_, w)| w.error.is_none())
            .map(|(i, w)| {
                (
                    w.tp.clone(),
                    (i, w.fetch_offset, w.max_bytes, w.current_leader_epoch),
                )
            })
            .collect();
        let ctx2 = ctx.clone();
        let results = fan_out(
            &broker.shard,
            items,
            move |shard, tp, (i, from, max, epoch)| {
                let ctx = ctx2.clone();
                async move {
                    (
                        i,
                        partition_ops::fetch(shard, ctx, tp, from, max, epoch).await,
                    )
                }
            },
        )
        .await;
        let mut outcomes: Vec<FetchOutcome> = wanted
            .iter()
            .map(|w| FetchOutcome {
                error_code: w.error.unwrap_or(errors::NOT_LEADER_OR_FOLLOWER),
                high_watermark: -1,
                log_start_offset: -1,
                records: Bytes::new(),
            })
            .collect();
        for (_, r) in results {
            if let Ok((i, o)) = r {
                outcomes[i] = o;
            }
        }
        let bytes: usize = outcomes.iter().map(|o| o.records.len()).sum();
        let any_error = outcomes.iter().any(|o| o.error_code != errors::NONE);
        let elapsed = started.elapsed();
        // min_bytes 0 answers at once, as Kafka does.
        if bytes >= min_bytes || any_error || elapsed >= max_wait || wanted.is_empty() {
            break outcomes;
        }
        let waits = wanted
            .iter()
            .map(|w| (w.tp.clone(), w.fetch_offset))
            .collect();
        wait_for_any(broker, ctx.clone(), waits, max_wait - elapsed).await;
    };

    // Enforce the response's total limit in request order; the first non-empty partition
    // is always kept whole so a consumer can make progress past a large batch.
    let mut used = 0usize;
    let mut kept_one = false;
    let mut topics: Vec<FetchableTopicResponse> = req
        .topics
        .iter()
        .zip(&topic_names)
        .map(|(t, name)| {
            let mut out = FetchableTopicResponse::default();
            out.topic = if version >= 13 {
                TopicName::default()
            } else {
                TopicName(str_bytes(name.clone()))
            };
            out.topic_id = if version >= 13 { t.topic_id } else { uuid(0) };
            out
        })
        .collect();
    for (w, mut o) in wanted.iter().zip(outcomes) {
        if !o.records.is_empty() {
            if kept_one && used + o.records.len() > total_max {
                o.records = Bytes::new();
            } else {
                used += o.records.len();
                kept_one = true;
            }
        }
        let mut p = PartitionData::default();
        p.partition_index = w.tp.partition.0;
        p.error_code = o.error_code;
        p.high_watermark = o.high_watermark;
        p.last_stable_offset = o.high_watermark;
        p.log_start_offset = o.log_start_offset;
        p.aborted_transactions = Some(Vec::new());
        p.preferred_read_replica = kafka_protocol::messages::BrokerId(-1);
        p.records = Some(o.records);
        topics[w.topic_index].partitions.push(p);
    }
    resp.responses = topics;
    resp.session_id = 0;
    resp
}
