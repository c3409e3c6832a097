//! Request counts and handler latency per API key, kept by each shard for its own
//! connections. Shard-local (a thread-local, because owner-side work sent with
//! `route_to_owner` is handed only the `Shard`); the admin endpoint copies it out.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

use hdrhistogram::Histogram;
use kafka_protocol::messages::ApiKey;

use super::latency::{new_histogram, LatencySnapshot, LATENCY_US_MAX};

/// One API's counters on one shard.
struct ApiStats {
    name: &'static str,
    requests: u64,
    latency_sum_us: u64,
    latency_us: Histogram<u64>,
}

/// Request counters of the shard this thread runs. Lives on that shard only.
#[derive(Default)]
pub struct RequestStats {
    by_api: RefCell<BTreeMap<i16, ApiStats>>,
}

/// One API's counters, copied off its shard.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiSnapshot {
    pub api_key: i16,
    pub api: String,
    pub requests: u64,
    pub latency: LatencySnapshot,
}

thread_local! {
    static REQUESTS: Rc<RequestStats> = Rc::new(RequestStats::default());
}

/// This shard's request counters.
pub fn on_this_shard() -> Rc<RequestStats> {
    REQUESTS.with(Rc::clone)
}

/// Runs `handler` (one request's handling, decoded request to encoded response) and
/// counts it, with its duration, against `key` on this shard.
pub async fn timed<F: Future>(key: ApiKey, handler: F) -> F::Output {
    let started = Instant::now();
    let out = handler.await;
    on_this_shard().record(key, started.elapsed().as_micros() as u64);
    out
}

impl RequestStats {
    pub fn record(&self, key: ApiKey, micros: u64) {
        let mut by_api = self.by_api.borrow_mut();
        let s = by_api.entry(key as i16).or_insert_with(|| ApiStats {
            name: api_name(key),
            requests: 0,
            latency_sum_us: 0,
            latency_us: new_histogram(),
        });
        s.requests = s.requests.wrapping_add(1);
        s.latency_sum_us = s.latency_sum_us.wrapping_add(micros);
        // In range after the clamp, so recording cannot fail.
        let _ = s.latency_us.record(micros.clamp(1, LATENCY_US_MAX));
    }

    /// Every API this shard has served, by key.
    pub fn snapshot(&self) -> Vec<ApiSnapshot> {
        self.by_api
            .borrow()
            .iter()
            .map(|(&api_key, s)| ApiSnapshot {
                api_key,
                api: s.name.to_string(),
                requests: s.requests,
                latency: LatencySnapshot::from_histogram(&s.latency_us, Some(s.latency_sum_us)),
            })
            .collect()
    }
}

/// Kafka's name for the API (`Produce`, `Fetch`, ...), as used in metric labels.
fn api_name(key: ApiKey) -> &'static str {
    use ApiKey::*;
    match key {
        Produce => "Produce",
        Fetch => "Fetch",
        ListOffsets => "ListOffsets",
        Metadata => "Metadata",
        OffsetCommit => "OffsetCommit",
        OffsetFetch => "OffsetFetch",
        FindCoordinator => "FindCoordinator",
        JoinGroup => "JoinGroup",
        Heartbeat => "Heartbeat",
        LeaveGroup => "LeaveGroup",
        SyncGroup => "SyncGroup",
        DescribeGroups => "DescribeGroups",
        ListGroups => "ListGroups",
        ApiVersions => "ApiVersions",
        CreateTopics => "CreateTopics",
        DeleteTopics => "DeleteTopics",
        DeleteRecords => "DeleteRecords",
        InitProducerId => "InitProducerId",
        DescribeConfigs => "DescribeConfigs",
        AlterConfigs => "AlterConfigs",
        DescribeLogDirs => "DescribeLogDirs",
        CreatePartitions => "CreatePartitions",
        DeleteGroups => "DeleteGroups",
        IncrementalAlterConfigs => "IncrementalAlterConfigs",
        OffsetDelete => "OffsetDelete",
        DescribeCluster => "DescribeCluster",
        OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        ElectLeaders => "ElectLeaders",
        AlterPartitionReassignments => "AlterPartitionReassignments",
        ListPartitionReassignments => "ListPartitionReassignments",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_latency_are_kept_per_api() {
        let stats = RequestStats::default();
        stats.record(ApiKey::Produce, 100);
        stats.record(ApiKey::Produce, 300);
        stats.record(ApiKey::Fetch, 5_000);
        let snap = stats.snapshot();
        assert_eq!(snap.len(), 2);
        let produce = snap.iter().find(|a| a.api == "Produce").expect("produce");
        assert_eq!(produce.api_key, ApiKey::Produce as i16);
        assert_eq!(produce.requests, 2);
        assert_eq!(produce.latency.count, 2);
        assert_eq!(produce.latency.sum_us, 400);
        let fetch = snap.iter().find(|a| a.api == "Fetch").expect("fetch");
        assert_eq!(fetch.requests, 1);
        assert_eq!(fetch.latency.sum_us, 5_000);
    }

    #[test]
    fn zero_and_huge_durations_are_clamped_not_dropped() {
        let stats = RequestStats::default();
        stats.record(ApiKey::Metadata, 0);
        stats.record(ApiKey::Metadata, u64::MAX / 2);
        let snap = stats.snapshot();
        assert_eq!(snap[0].requests, 2);
        assert_eq!(snap[0].latency.count, 2);
    }
}
