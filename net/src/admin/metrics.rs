//! Prometheus text exposition (format 0.0.4) of a [`BrokerSnapshot`]. Latencies are in
//! seconds, as Prometheus names them; byte counters count record batch bytes as clients
//! sent them (Sluice's own frame headers excluded).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::latency::{LatencySnapshot, BUCKET_BOUNDS_US};
use super::snapshot::BrokerSnapshot;

/// The content type Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Per-topic sums over the topic's partitions, over every shard.
#[derive(Default)]
struct TopicTotals {
    partitions: i32,
    bytes_in: u64,
    bytes_out: u64,
    batches_in: u64,
    size_bytes: u64,
    cleaner_bytes_read: u64,
    cleaner_bytes_written: u64,
    cleaner_last_run_ms: i64,
}

/// Renders the whole snapshot.
pub fn render(s: &BrokerSnapshot) -> String {
    let mut out = Exposition::default();
    out.family("sluice_broker_info", "gauge", "Broker identity; always 1.");
    out.sample(
        "sluice_broker_info",
        &[
            ("node_id", &s.node_id.to_string()),
            ("cluster_id", &s.cluster_id),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1,
    );
    out.family(
        "sluice_uptime_seconds",
        "gauge",
        "Seconds since the admin endpoint started (broker start-up).",
    );
    out.sample("sluice_uptime_seconds", &[], s.uptime_seconds);
    out.family("sluice_shards", "gauge", "Shards (cores) this broker runs.");
    out.sample("sluice_shards", &[], s.shard_count);
    out.family(
        "sluice_shard_up",
        "gauge",
        "1 when the shard answered this scrape, 0 when it did not.",
    );
    for sh in &s.shards {
        out.sample("sluice_shard_up", &[("shard", &sh.shard.to_string())], 1);
    }
    for &i in &s.unreachable_shards {
        out.sample("sluice_shard_up", &[("shard", &i.to_string())], 0);
    }

    out.family(
        "sluice_connections",
        "gauge",
        "Kafka client connections the shard serves now.",
    );
    for sh in &s.shards {
        out.sample(
            "sluice_connections",
            &[("shard", &sh.shard.to_string())],
            sh.connections,
        );
    }
    out.family(
        "sluice_requests_total",
        "counter",
        "Kafka requests handled, per shard and API.",
    );
    for sh in &s.shards {
        for a in &sh.requests {
            out.sample(
                "sluice_requests_total",
                &[("shard", &sh.shard.to_string()), ("api", &a.api)],
                a.requests,
            );
        }
    }
    out.family(
        "sluice_request_latency_seconds",
        "histogram",
        "Time from a decoded request to its encoded response, per shard and API.",
    );
    for sh in &s.shards {
        for a in &sh.requests {
            out.histogram(
                "sluice_request_latency_seconds",
                &[("shard", &sh.shard.to_string()), ("api", &a.api)],
                &a.latency,
            );
        }
    }

    out.family(
        "sluice_partitions",
        "gauge",
        "Partitions open on the shard (the partitions it owns).",
    );
    for sh in &s.shards {
        out.sample(
            "sluice_partitions",
            &[("shard", &sh.shard.to_string())],
            sh.partitions.len(),
        );
    }
    out.family(
        "sluice_shard_log_size_bytes",
        "gauge",
        "Bytes in the segments of the shard's partitions.",
    );
    for sh in &s.shards {
        let size: u64 = sh.partitions.iter().map(|p| p.size_bytes).sum();
        out.sample(
            "sluice_shard_log_size_bytes",
            &[("shard", &sh.shard.to_string())],
            size,
        );
    }
    out.family(
        "sluice_fsync_latency_seconds",
        "histogram",
        "fdatasync latency over the shard's partitions (sum estimated from the histogram mean).",
    );
    for sh in &s.shards {
        out.histogram(
            "sluice_fsync_latency_seconds",
            &[("shard", &sh.shard.to_string())],
            &sh.fsync_latency,
        );
    }

    let topics = topic_totals(s);
    out.family(
        "sluice_topic_partitions",
        "gauge",
        "Partitions of the topic in the cluster metadata.",
    );
    for (name, t) in &topics {
        out.sample("sluice_topic_partitions", &[("topic", name)], t.partitions);
    }
    out.family(
        "sluice_topic_bytes_in_total",
        "counter",
        "Record batch bytes appended to the topic since its partitions were opened.",
    );
    for (name, t) in &topics {
        out.sample(
            "sluice_topic_bytes_in_total",
            &[("topic", name)],
            t.bytes_in,
        );
    }
    out.family(
        "sluice_topic_batches_in_total",
        "counter",
        "Record batches appended to the topic since its partitions were opened.",
    );
    for (name, t) in &topics {
        out.sample(
            "sluice_topic_batches_in_total",
            &[("topic", name)],
            t.batches_in,
        );
    }
    out.family(
        "sluice_topic_bytes_out_total",
        "counter",
        "Record batch bytes read from the topic (fetches) since its partitions were opened.",
    );
    for (name, t) in &topics {
        out.sample(
            "sluice_topic_bytes_out_total",
            &[("topic", name)],
            t.bytes_out,
        );
    }
    out.family(
        "sluice_topic_log_size_bytes",
        "gauge",
        "Bytes in the segments of the topic's open partitions.",
    );
    for (name, t) in &topics {
        out.sample(
            "sluice_topic_log_size_bytes",
            &[("topic", name)],
            t.size_bytes,
        );
    }
    out.family(
        "sluice_topic_cleaner_read_bytes_total",
        "counter",
        "Segment bytes the log cleaner read while compacting the topic's partitions.",
    );
    for (name, t) in topics.iter().filter(|(_, t)| t.cleaner_bytes_read > 0) {
        out.sample(
            "sluice_topic_cleaner_read_bytes_total",
            &[("topic", name)],
            t.cleaner_bytes_read,
        );
    }
    out.family(
        "sluice_topic_cleaner_written_bytes_total",
        "counter",
        "Bytes of cleaned segment copies the log cleaner wrote for the topic.",
    );
    for (name, t) in topics.iter().filter(|(_, t)| t.cleaner_bytes_read > 0) {
        out.sample(
            "sluice_topic_cleaner_written_bytes_total",
            &[("topic", name)],
            t.cleaner_bytes_written,
        );
    }
    out.family(
        "sluice_topic_cleaner_last_run_timestamp_seconds",
        "gauge",
        "When the log cleaner last finished a pass on one of the topic's partitions.",
    );
    for (name, t) in topics.iter().filter(|(_, t)| t.cleaner_last_run_ms > 0) {
        out.sample(
            "sluice_topic_cleaner_last_run_timestamp_seconds",
            &[("topic", name)],
            t.cleaner_last_run_ms as f64 / 1000.0,
        );
    }

    out.family(
        "sluice_under_replicated_partitions",
        "gauge",
        "Partitions with fewer in-sync replicas than replicas. Always 0: this build keeps one replica per partition (replication factor 1).",
    );
    out.sample("sluice_under_replicated_partitions", &[], 0);

    out.family(
        "sluice_consumer_group_lag",
        "gauge",
        "High watermark minus the group's committed offset, per group and partition.",
    );
    for l in &s.group_lag {
        out.sample(
            "sluice_consumer_group_lag",
            &[
                ("group", &l.group),
                ("topic", &l.topic),
                ("partition", &l.partition.to_string()),
            ],
            l.lag,
        );
    }
    out.text
}

/// Topics from the metadata and from the open partitions (a topic being deleted may
/// still have open partitions), with sums over their partitions.
fn topic_totals(s: &BrokerSnapshot) -> BTreeMap<&str, TopicTotals> {
    let mut topics: BTreeMap<&str, TopicTotals> = BTreeMap::new();
    for (name, partitions) in &s.topics {
        topics.entry(name).or_default().partitions = *partitions;
    }
    for p in s.shards.iter().flat_map(|sh| &sh.partitions) {
        let t = topics.entry(&p.topic).or_default();
        t.bytes_in = t.bytes_in.wrapping_add(p.appended_bytes);
        t.bytes_out = t.bytes_out.wrapping_add(p.read_bytes);
        t.batches_in = t.batches_in.wrapping_add(p.appended_batches);
        t.size_bytes = t.size_bytes.wrapping_add(p.size_bytes);
        t.cleaner_bytes_read = t.cleaner_bytes_read.wrapping_add(p.cleaner_bytes_read);
        t.cleaner_bytes_written = t
            .cleaner_bytes_written
            .wrapping_add(p.cleaner_bytes_written);
        t.cleaner_last_run_ms = t.cleaner_last_run_ms.max(p.cleaner_last_run_ms);
    }
    topics
}

/// The text being built. Writing to a `String` cannot fail, so `write!` results are
/// ignored.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.text, " {value}");
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &LatencySnapshot) {
        let bucket = format!("{name}_bucket");
        for (i, bound_us) in BUCKET_BOUNDS_US.iter().enumerate() {
            let le = seconds(*bound_us);
            self.text.push_str(&bucket);
            self.labels(labels, Some(&le));
            let _ = writeln!(self.text, " {}", h.buckets.get(i).copied().unwrap_or(0));
        }
        self.text.push_str(&bucket);
        self.labels(labels, Some("+Inf"));
        let _ = writeln!(self.text, " {}", h.count);
        self.text.push_str(name);
        self.text.push_str("_sum");
        self.labels(labels, None);
        let _ = writeln!(self.text, " {}", seconds(h.sum_us));
        self.text.push_str(name);
        self.text.push_str("_count");
        self.labels(labels, None);
        let _ = writeln!(self.text, " {}", h.count);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.text.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.text.push(',');
            }
            first = false;
            let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
        }
        self.text.push('}');
    }
}

/// Microseconds as seconds, without float noise (`250` -> `0.00025`).
fn seconds(us: u64) -> String {
    let whole = us / 1_000_000;
    let frac = us % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::latency::new_histogram;
    use crate::admin::requests::ApiSnapshot;
    use crate::admin::snapshot::{PartitionSnapshot, ShardSnapshot};

    fn partition(topic: &str, partition: i32, bytes_in: u64, bytes_out: u64) -> PartitionSnapshot {
        PartitionSnapshot {
            topic: topic.into(),
            partition,
            high_watermark: 10,
            log_end_offset: 10,
            size_bytes: bytes_in + 64,
            segments: 1,
            appended_bytes: bytes_in,
            appended_batches: 2,
            read_bytes: bytes_out,
            ..PartitionSnapshot::default()
        }
    }

    fn sample_snapshot() -> BrokerSnapshot {
        let mut h = new_histogram();
        h.record(120).expect("in range");
        h.record(4_000).expect("in range");
        let latency = LatencySnapshot::from_histogram(&h, Some(4_120));
        BrokerSnapshot {
            node_id: 3,
            cluster_id: "c\"1".into(),
            shard_count: 3,
            shards: vec![
                ShardSnapshot {
                    shard: 0,
                    connections: 2,
                    requests: vec![ApiSnapshot {
                        api_key: 0,
                        api: "Produce".into(),
                        requests: 2,
                        latency: latency.clone(),
                    }],
                    partitions: vec![partition("orders", 0, 100, 40)],
                    fsync_latency: latency,
                },
                ShardSnapshot {
                    shard: 1,
                    partitions: vec![partition("orders", 1, 50, 0), partition("logs", 0, 7, 7)],
                    fsync_latency: LatencySnapshot::from_histogram(&new_histogram(), None),
                    ..ShardSnapshot::default()
                },
            ],
            unreachable_shards: vec![2],
            topics: vec![
                ("orders".into(), 2),
                ("logs".into(), 1),
                ("empty".into(), 4),
            ],
            group_lag: vec![crate::admin::lag::GroupLag {
                group: "billing".into(),
                topic: "orders".into(),
                partition: 1,
                committed_offset: 4,
                high_watermark: 10,
                lag: 6,
            }],
            ..BrokerSnapshot::default()
        }
    }

    /// Parses every sample line `name{labels} value` into (name, labels, value).
    fn parse(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("value");
                let value: f64 = value.parse().expect("numeric value");
                let (name, labels) = match series.split_once('{') {
                    Some((n, rest)) => {
                        let body = rest.strip_suffix('}').expect("closing brace");
                        let mut labels = BTreeMap::new();
                        // Label values in these tests have no commas.
                        for kv in body.split(',') {
                            let (k, v) = kv.split_once('=').expect("k=v");
                            labels.insert(k.to_string(), v.trim_matches('"').to_string());
                        }
                        (n.to_string(), labels)
                    }
                    None => (series.to_string(), BTreeMap::new()),
                };
                (name, labels, value)
            })
            .collect()
    }

    fn value(
        samples: &[(String, BTreeMap<String, String>, f64)],
        name: &str,
        want: &[(&str, &str)],
    ) -> f64 {
        let hits: Vec<f64> = samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
                    && l.len() == want.len()
            })
            .map(|(_, _, v)| *v)
            .collect();
        assert_eq!(hits.len(), 1, "{name} {want:?}: {hits:?}");
        hits[0]
    }

    #[test]
    fn topic_bytes_are_summed_over_partitions_on_every_shard() {
        let samples = parse(&render(&sample_snapshot()));
        assert_eq!(
            value(
                &samples,
                "sluice_topic_bytes_in_total",
                &[("topic", "orders")]
            ),
            150.0
        );
        assert_eq!(
            value(
                &samples,
                "sluice_topic_bytes_out_total",
                &[("topic", "orders")]
            ),
            40.0
        );
        assert_eq!(
            value(
                &samples,
                "sluice_topic_batches_in_total",
                &[("topic", "orders")]
            ),
            4.0
        );
        assert_eq!(
            value(&samples, "sluice_topic_partitions", &[("topic", "orders")]),
            2.0
        );
        assert_eq!(
            value(
                &samples,
                "sluice_topic_bytes_in_total",
                &[("topic", "empty")]
            ),
            0.0
        );
        assert_eq!(
            value(&samples, "sluice_topic_partitions", &[("topic", "empty")]),
            4.0
        );
        assert_eq!(value(&samples, "sluice_partitions", &[("shard", "1")]), 2.0);
        assert_eq!(
            value(
                &samples,
                "sluice_consumer_group_lag",
                &[
                    ("group", "billing"),
                    ("topic", "orders"),
                    ("partition", "1")
                ]
            ),
            6.0
        );
    }

    #[test]
    fn request_latency_is_a_cumulative_histogram_in_seconds() {
        let samples = parse(&render(&sample_snapshot()));
        let labels = |le: &'static str| [("shard", "0"), ("api", "Produce"), ("le", le)];
        let b = |le| {
            value(
                &samples,
                "sluice_request_latency_seconds_bucket",
                &labels(le),
            )
        };
        assert_eq!(b("0.0001"), 0.0);
        assert_eq!(b("0.00025"), 1.0);
        assert_eq!(b("0.005"), 2.0);
        assert_eq!(b("+Inf"), 2.0);
        let sh = [("shard", "0"), ("api", "Produce")];
        assert_eq!(
            value(&samples, "sluice_request_latency_seconds_count", &sh),
            2.0
        );
        assert_eq!(
            value(&samples, "sluice_request_latency_seconds_sum", &sh),
            0.00412
        );
        assert_eq!(value(&samples, "sluice_requests_total", &sh), 2.0);
    }

    #[test]
    fn every_family_has_help_and_type_once_and_samples_follow_it() {
        let text = render(&sample_snapshot());
        let mut seen = std::collections::BTreeSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().expect("name").to_string();
                assert!(seen.insert(name.clone()), "TYPE {name} twice");
                current = name;
            } else if !line.starts_with('#') {
                let series = line.split(['{', ' ']).next().expect("name");
                assert!(
                    series.starts_with(current.as_str()),
                    "{line} outside its family {current}"
                );
            }
        }
        assert!(seen.contains("sluice_under_replicated_partitions"));
    }

    #[test]
    fn cleaner_counters_are_summed_per_compacted_topic() {
        let mut snap = sample_snapshot();
        for (i, p) in snap.shards[0].partitions.iter_mut().enumerate() {
            p.cleaner_bytes_read = 1000;
            p.cleaner_bytes_written = 100;
            p.cleaner_last_run_ms = 1_700_000_000_000 + i as i64 * 500;
        }
        let text = render(&snap);
        let topic = &snap.shards[0].partitions[0].topic;
        let n = snap.shards[0]
            .partitions
            .iter()
            .filter(|p| &p.topic == topic)
            .count();
        assert!(text.contains(&format!(
            "sluice_topic_cleaner_read_bytes_total{{topic=\"{topic}\"}} {}\n",
            1000 * n
        )));
        assert!(text.contains(&format!(
            "sluice_topic_cleaner_written_bytes_total{{topic=\"{topic}\"}} {}\n",
            100 * n
        )));
        assert!(text.contains("sluice_topic_cleaner_last_run_timestamp_seconds{"));
        // Topics the cleaner never touched get no cleaner samples.
        let quiet = render(&sample_snapshot());
        assert!(!quiet.contains("sluice_topic_cleaner_read_bytes_total{"));
    }

    #[test]
    fn unreachable_shards_are_reported_down_and_labels_escaped() {
        let text = render(&sample_snapshot());
        assert!(text.contains("sluice_shard_up{shard=\"2\"} 0\n"));
        assert!(text.contains("cluster_id=\"c\\\"1\""));
        assert!(text.contains("sluice_under_replicated_partitions 0\n"));
    }

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds(50), "0.00005");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(10_000_000), "10");
        assert_eq!(seconds(0), "0");
    }
}
