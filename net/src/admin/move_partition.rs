//! `POST /partitions/move?topic=T&partition=P&to_shard=S` (used by `sluice admin
//! move-partition`): moves one partition to another shard of this broker while clients
//! keep producing and fetching. The engine runs the move protocol
//! (`Shard::move_partition`, which also opens the log on the new shard with the topic's log
//! config from here); this checks the request against the topic metadata.

use std::rc::Rc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sluice_engine::runtime::EngineError;
use sluice_engine::{ShardId, TopicPartition};

use crate::broker::Broker;
use crate::group::offsets::OFFSETS_TOPIC;
use crate::metadata::topic_config;

/// The answer, as JSON.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MoveReport {
    pub topic: String,
    pub partition: i32,
    pub from_shard: usize,
    pub to_shard: usize,
    /// False when the partition already was on `to_shard`.
    pub moved: bool,
    /// The broker's placement version after the move.
    pub placement_version: u64,
    /// Hold, drain, close, persist, open on the new shard and broadcast, as the admin
    /// endpoint saw it.
    pub move_us: u64,
    /// Of which opening the log on the new shard (clean close: no recovery scan).
    pub open_us: u64,
}

/// The request's parameters, from the query string.
#[derive(Debug, PartialEq, Eq)]
pub struct MoveRequest {
    pub tp: TopicPartition,
    pub to: ShardId,
}

/// Parses `topic=..&partition=..&to_shard=..` (topic names are `[a-zA-Z0-9._-]`, so no
/// percent-decoding is needed; anything else is refused by the metadata check).
pub fn parse_query(query: &str) -> Result<MoveRequest, String> {
    let (mut topic, mut partition, mut to) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not key=value"))?;
        match k {
            "topic" => topic = Some(v.to_string()),
            "partition" => {
                partition = Some(
                    v.parse::<i32>()
                        .map_err(|e| format!("partition {v:?}: {e}"))?,
                )
            }
            "to_shard" => {
                to = Some(
                    v.parse::<usize>()
                        .map_err(|e| format!("to_shard {v:?}: {e}"))?,
                )
            }
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    match (topic, partition, to) {
        (Some(t), Some(p), Some(s)) => Ok(MoveRequest {
            tp: TopicPartition::new(t, p),
            to: ShardId(s),
        }),
        _ => Err("topic, partition and to_shard are required".into()),
    }
}

/// Runs a move; the HTTP status and the body (JSON on success, a sentence otherwise).
pub async fn handle(broker: &Rc<Broker>, query: &str) -> (u16, String) {
    let req = match parse_query(query) {
        Ok(r) => r,
        Err(e) => return (400, format!("{e}\n")),
    };
    if req.tp.topic == OFFSETS_TOPIC {
        // The group coordinators reach the offsets log directly, not through the admitting
        // router, so it stays where the configured placement puts it.
        return (
            400,
            format!("{OFFSETS_TOPIC} partitions are not movable between shards\n"),
        );
    }
    let known = broker
        .store
        .snapshot()
        .topic(&req.tp.topic)
        .is_some_and(|t| req.tp.partition.0 >= 0 && req.tp.partition.0 < t.partitions);
    if !known {
        return (404, format!("no partition {}\n", req.tp));
    }
    if req.to.0 >= broker.shard.shard_count() {
        return (
            400,
            format!(
                "to_shard {} does not exist (this broker runs {} shards)\n",
                req.to.0,
                broker.shard.shard_count()
            ),
        );
    }
    let started = Instant::now();
    let config = broker.store.snapshot().topic(&req.tp.topic).map_or_else(
        || broker.defaults.log.clone(),
        |t| topic_config::log_config(&broker.defaults, &t.configs),
    );
    let outcome = match broker
        .shard
        .move_partition(req.tp.clone(), req.to, config)
        .await
    {
        Ok(o) => o,
        Err(e) => {
            let code = match e {
                EngineError::MoveInProgress(_) => 409,
                EngineError::MoveTimedOut(_) => 503,
                EngineError::NoSuchShard(_) => 400,
                _ => 500,
            };
            tracing::warn!(partition = %req.tp, to = %req.to, error = %e, "partition move failed");
            return (code, format!("moving {} failed: {e}\n", req.tp));
        }
    };
    let move_us = started.elapsed().as_micros() as u64;
    let report = MoveReport {
        topic: req.tp.topic.clone(),
        partition: req.tp.partition.0,
        from_shard: outcome.from.0,
        to_shard: outcome.to.0,
        moved: outcome.moved,
        placement_version: outcome.version,
        move_us,
        open_us: outcome.open_us,
    };
    match serde_json::to_string(&report) {
        Ok(json) => (200, json + "\n"),
        Err(e) => (500, format!("encoding the report: {e}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_needs_all_three_well_formed_parameters() {
        assert_eq!(
            parse_query("topic=orders&partition=3&to_shard=1"),
            Ok(MoveRequest {
                tp: TopicPartition::new("orders", 3),
                to: ShardId(1)
            })
        );
        assert!(parse_query("topic=orders&partition=3").is_err());
        assert!(parse_query("topic=orders&partition=x&to_shard=1").is_err());
        assert!(parse_query("topic=orders&partition=1&to_shard=-1").is_err());
        assert!(parse_query("topic=o&partition=1&to_shard=1&force=1").is_err());
        assert!(parse_query("topic").is_err());
    }
}
