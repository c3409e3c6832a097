//! `sluice status`: reads a broker's admin `/status` twice, `--interval-ms` apart, and
//! prints its brokers, shards and the partitions each shard owns with their load (sizes,
//! totals, and rates from the two readings), then consumer-group lag. `--json` prints one
//! raw reading.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use sluice_net::admin::status::{PartitionStatus, ShardStatus, StatusReport};
use sluice_net::limits::{ADMIN_LISTENER_DEFAULT, ADMIN_RESPONSE_BYTES_MAX};

/// How long `sluice status` waits to connect, and on each read or write.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The broker's admin endpoint (`admin_listener` in its `[server]` config).
    #[arg(long, default_value = ADMIN_LISTENER_DEFAULT)]
    pub admin: String,
    /// Print the raw `/status` JSON (one reading, no rates).
    #[arg(long)]
    pub json: bool,
    /// Milliseconds between the two readings rates come from; 0 reads once, no rates.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
}

pub fn run(args: StatusArgs) -> Result<(), String> {
    if args.json {
        print!("{}", http_get(&args.admin, "/status")?);
        return Ok(());
    }
    let first = read_status(&args.admin)?;
    let (before, after, elapsed) = if args.interval_ms == 0 {
        (None, first.0, Duration::ZERO)
    } else {
        std::thread::sleep(Duration::from_millis(args.interval_ms));
        let second = read_status(&args.admin)?;
        let elapsed = second.1.duration_since(first.1);
        (Some(first.0), second.0, elapsed)
    };
    print!("{}", render(before.as_ref(), &after, elapsed));
    Ok(())
}

fn read_status(admin: &str) -> Result<(StatusReport, Instant), String> {
    let body = http_get(admin, "/status")?;
    let at = Instant::now();
    let report = serde_json::from_str(&body)
        .map_err(|e| format!("http://{admin}/status: not a status document: {e}"))?;
    Ok((report, at))
}

/// A blocking HTTP/1.1 GET; the body of a 200 answer.
fn http_get(admin: &str, path: &str) -> Result<String, String> {
    http_request(admin, "GET", path)
}

/// A blocking HTTP/1.1 request without a body; the body of a 200 answer, else an error
/// with the status line and the body (the admin endpoint explains refusals there).
pub fn http_request(admin: &str, method: &str, path: &str) -> Result<String, String> {
    let url = format!("http://{admin}{path}");
    let addr = admin
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: address resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT)
        .map_err(|e| format!("{url}: connecting: {e} (is the broker's admin_listener here?)"))?;
    s.set_read_timeout(Some(SOCKET_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(SOCKET_TIMEOUT)))
        .map_err(|e| format!("{url}: {e}"))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nAccept: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{url}: sending: {e}"))?;
    let mut raw = Vec::new();
    s.take(ADMIN_RESPONSE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("{url}: reading: {e}"))?;
    if raw.len() > ADMIN_RESPONSE_BYTES_MAX {
        return Err(format!(
            "{url}: answer larger than {ADMIN_RESPONSE_BYTES_MAX} bytes"
        ));
    }
    let text = String::from_utf8(raw).map_err(|_| format!("{url}: answer is not UTF-8"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}: answer has no HTTP head"))?;
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split(' ').nth(1) != Some("200") {
        return Err(format!("{url}: {status_line}: {}", body.trim_end()));
    }
    Ok(body.to_string())
}

/// The tables. `before`: an earlier reading to take rates from (over `elapsed`).
pub fn render(before: Option<&StatusReport>, after: &StatusReport, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rates = before.filter(|_| secs > 0.0);
    let rate = |now: u64, then: Option<u64>| match (rates, then) {
        (Some(_), Some(then)) => format!("{}/s", bytes(now.saturating_sub(then) as f64 / secs)),
        _ => "-".to_string(),
    };
    let count_rate = |now: u64, then: Option<u64>| match (rates, then) {
        (Some(_), Some(then)) => format!("{:.1}", now.saturating_sub(then) as f64 / secs),
        _ => "-".to_string(),
    };
    let mut out = String::new();

    let mut brokers = vec![row(&[
        "BROKER", "CLUSTER", "ADDRESS", "VERSION", "UPTIME", "SHARDS",
    ])];
    for b in &after.brokers {
        brokers.push(vec![
            b.node_id.to_string(),
            b.cluster_id.clone(),
            format!("{}:{}", b.host, b.port),
            b.version.clone(),
            format!("{}s", b.uptime_seconds),
            b.shards.to_string(),
        ]);
    }
    out.push_str(&table(&brokers));
    let partitions: usize = after.shards.iter().map(|s| s.partitions).sum();
    out.push_str(&format!(
        "topics {}  partitions {}  under-replicated {}{}\n\n",
        after.topics.len(),
        partitions,
        after.under_replicated_partitions,
        match rates {
            Some(_) => format!("  (rates over {:.1}s)", secs),
            None => String::new(),
        }
    ));
    if !after.unreachable_shards.is_empty() {
        out.push_str(&format!(
            "shards not answering: {:?}\n\n",
            after.unreachable_shards
        ));
    }

    let old_shards: HashMap<usize, &ShardStatus> = rates
        .map(|b| b.shards.iter().map(|s| (s.shard, s)).collect())
        .unwrap_or_default();
    let mut shards = vec![row(&[
        "SHARD",
        "CONNS",
        "PARTITIONS",
        "SIZE",
        "IN",
        "OUT",
        "IN/s",
        "OUT/s",
        "REQUESTS",
        "REQ/s",
        "FSYNCS",
        "FSYNC p99",
    ])];
    for s in &after.shards {
        let old = old_shards.get(&s.shard);
        shards.push(vec![
            s.shard.to_string(),
            s.connections.to_string(),
            s.partitions.to_string(),
            bytes(s.log_size_bytes as f64),
            bytes(s.bytes_in as f64),
            bytes(s.bytes_out as f64),
            rate(s.bytes_in, old.map(|o| o.bytes_in)),
            rate(s.bytes_out, old.map(|o| o.bytes_out)),
            s.requests.to_string(),
            count_rate(s.requests, old.map(|o| o.requests)),
            s.fsyncs.to_string(),
            if s.fsyncs == 0 {
                "-".to_string()
            } else {
                format!("{}us", s.fsync_p99_us)
            },
        ]);
    }
    out.push_str(&table(&shards));
    out.push('\n');

    let old_partitions: HashMap<(&str, i32), &PartitionStatus> = rates
        .map(|b| {
            b.shards
                .iter()
                .flat_map(|s| &s.partition_list)
                .map(|p| ((p.topic.as_str(), p.partition), p))
                .collect()
        })
        .unwrap_or_default();
    let mut parts = vec![row(&[
        "SHARD",
        "TOPIC",
        "PARTITION",
        "OFFSETS",
        "SEGMENTS",
        "SIZE",
        "IN",
        "OUT",
        "IN/s",
        "OUT/s",
    ])];
    for s in &after.shards {
        for p in &s.partition_list {
            let old = old_partitions.get(&(p.topic.as_str(), p.partition));
            parts.push(vec![
                s.shard.to_string(),
                p.topic.clone(),
                p.partition.to_string(),
                format!("{}..{}", p.log_start_offset, p.high_watermark),
                p.segments.to_string(),
                bytes(p.size_bytes as f64),
                bytes(p.bytes_in as f64),
                bytes(p.bytes_out as f64),
                rate(p.bytes_in, old.map(|o| o.bytes_in)),
                rate(p.bytes_out, old.map(|o| o.bytes_out)),
            ]);
        }
        if s.partitions_omitted > 0 {
            parts.push(vec![
                s.shard.to_string(),
                format!("(+{} more)", s.partitions_omitted),
            ]);
        }
    }
    out.push_str(&table(&parts));

    if !after.placement.moved.is_empty() {
        let mut moved = vec![row(&["MOVED", "PARTITION", "TO SHARD"])];
        for m in &after.placement.moved {
            moved.push(vec![
                m.topic.clone(),
                m.partition.to_string(),
                m.shard.to_string(),
            ]);
        }
        out.push_str(&format!(
            "\nplacement version {} (partitions moved at run time):\n",
            after.placement.version
        ));
        out.push_str(&table(&moved));
    }

    if !after.consumer_group_lag.is_empty() {
        let mut lag = vec![row(&[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "COMMITTED",
            "HIGH WATERMARK",
            "LAG",
        ])];
        for l in &after.consumer_group_lag {
            lag.push(vec![
                l.group.clone(),
                l.topic.clone(),
                l.partition.to_string(),
                l.committed_offset.to_string(),
                l.high_watermark.to_string(),
                l.lag.to_string(),
            ]);
        }
        out.push('\n');
        out.push_str(&table(&lag));
    }
    out
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Left-aligned columns, two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<width$}", width = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Bytes in binary units, one decimal.
fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_net::admin::status::BrokerStatus;

    fn report(bytes_in: u64, requests: u64) -> StatusReport {
        StatusReport {
            brokers: vec![BrokerStatus {
                node_id: 0,
                cluster_id: "c".into(),
                host: "127.0.0.1".into(),
                port: 9092,
                version: "0.1.0".into(),
                shards: 1,
                ..BrokerStatus::default()
            }],
            shards: vec![ShardStatus {
                shard: 0,
                partitions: 1,
                bytes_in,
                requests,
                partition_list: vec![PartitionStatus {
                    topic: "orders".into(),
                    partition: 0,
                    high_watermark: 7,
                    bytes_in,
                    ..PartitionStatus::default()
                }],
                ..ShardStatus::default()
            }],
            ..StatusReport::default()
        }
    }

    #[test]
    fn rates_come_from_the_difference_of_two_readings() {
        let text = render(
            Some(&report(1024, 10)),
            &report(3 * 1024, 30),
            Duration::from_secs(2),
        );
        // Shard row: 2 KiB more over 2 s, 20 requests over 2 s.
        let shard_row = text
            .lines()
            .find(|l| l.starts_with("0 ") && l.contains("3.0 KiB"))
            .expect("shard row");
        assert!(shard_row.contains("1.0 KiB/s"), "{shard_row}");
        assert!(shard_row.contains("10.0"), "{shard_row}");
        let partition_row = text
            .lines()
            .find(|l| l.contains("orders"))
            .expect("partition row");
        assert!(partition_row.contains("0..7"), "{partition_row}");
        assert!(partition_row.contains("1.0 KiB/s"), "{partition_row}");
    }

    #[test]
    fn one_reading_shows_totals_without_rates() {
        let text = render(None, &report(2048, 5), Duration::ZERO);
        assert!(text.contains("2.0 KiB"));
        assert!(!text.contains("B/s"), "{text}");
        assert!(text.contains("127.0.0.1:9092"));
    }

    #[test]
    fn byte_units() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
    }
}
