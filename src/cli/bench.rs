//! `sluice bench`: drive any Kafka-API broker and report latency and throughput.

use std::path::PathBuf;
use std::time::Duration;

use sluice_bench::{Acks, BenchConfig, CompressionCodec, Metric, Pace, SizeDistribution, Summary};

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub action: BenchAction,
}

#[derive(clap::Subcommand)]
pub enum BenchAction {
    /// Run one workload and print/write its results.
    Run(Box<RunArgs>),
    /// Draw percentile-spectrum plots (SVG) comparing the runs in JSON summaries.
    Plot(PlotArgs),
    /// Consumer-group figures: rebalance time of an N-member group and the broker CPU
    /// cost of a fixed OffsetCommit rate.
    Groups(GroupsArgs),
}

#[derive(clap::Args)]
pub struct GroupsArgs {
    /// Broker to bootstrap from (host:port); it must coordinate the groups itself.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    #[arg(long, default_value = "sluice-bench-groups")]
    pub topic: String,
    #[arg(long, default_value_t = 100)]
    pub partitions: i32,
    #[arg(long, default_value_t = 10)]
    pub members: usize,
    /// Rebalance rounds after the group first forms.
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// OffsetCommit requests per second (0: skip the commit figure).
    #[arg(long, default_value_t = 1000)]
    pub commit_rate: u32,
    /// Connections the commits are spread over (Kafka answers one request per connection
    /// at a time, so one connection caps its commit rate).
    #[arg(long, default_value_t = 10)]
    pub commit_connections: u32,
    /// How long commits are driven (and the idle baseline measured), e.g. 20s.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub commit_duration: Duration,
    /// The broker's process id, for its CPU time from /proc/<pid>/stat.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Broker to bootstrap from (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Name for this run in tables, files and plots.
    #[arg(long, default_value = "run")]
    pub label: String,
    #[arg(long, default_value = "sluice-bench")]
    pub topic_prefix: String,
    #[arg(long, default_value_t = 1)]
    pub topics: u32,
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Do not create missing topics.
    #[arg(long)]
    pub no_create_topics: bool,
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    /// Consumers (0: produce only). With consumers the run measures end-to-end latency.
    #[arg(long, default_value_t = 0)]
    pub consumers: u32,
    /// Record value size in bytes: `1024`, or a uniform range `100..2000`.
    #[arg(long, default_value = "1024")]
    pub record_size: SizeDistribution,
    /// Key records with one of N keys (records go to their key's partition).
    #[arg(long)]
    pub keys: Option<u64>,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: CompressionCodec,
    /// 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: Acks,
    /// Batch size in bytes per partition.
    #[arg(long, default_value_t = 65536)]
    pub batch_bytes: usize,
    /// Linger in ms before a non-full batch is sent.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Unanswered produce requests per producer.
    #[arg(long, default_value_t = 5)]
    pub in_flight: usize,
    /// Fixed rate in records/s over all producers (default: flat out).
    #[arg(long, conflicts_with = "rate_mb")]
    pub rate: Option<f64>,
    /// Fixed rate in MB/s (10^6 value bytes) over all producers.
    #[arg(long)]
    pub rate_mb: Option<f64>,
    /// Warm-up excluded from the figures (e.g. 2s).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Length of the run including warm-up (e.g. 30s, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many records (whichever of duration and count comes first).
    #[arg(long)]
    pub records: Option<u64>,
    /// Longest wait for outstanding acks and consumers after generation stops.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Longest wait for any one response (topic creation with many partitions is slow).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Pin the load generator's threads to these cores, e.g. `1` or `2,3`.
    #[arg(long, value_delimiter = ',')]
    pub cpus: Vec<usize>,
    #[arg(long, default_value_t = 0x51ce)]
    pub seed: u64,
    /// Write `<label>.json` and `.hgrm` files here.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::Args)]
pub struct PlotArgs {
    /// SVG file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// produce-ack, end-to-end or fetch.
    #[arg(long, default_value = "end-to-end")]
    pub metric: Metric,
    #[arg(long, default_value = "sluice bench")]
    pub title: String,
    /// JSON summaries written by `sluice bench run --out-dir`.
    #[arg(required = true)]
    pub summaries: Vec<PathBuf>,
}

/// `500ms`, `10s`, `2m`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|e| format!("duration `{s}`: {e}"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("duration `{s}`: {e}"))
}

pub fn run(args: BenchArgs) -> Result<(), String> {
    match args.action {
        BenchAction::Run(a) => run_workload(*a),
        BenchAction::Plot(a) => plot(a),
        BenchAction::Groups(a) => groups(a),
    }
}

fn groups(a: GroupsArgs) -> Result<(), String> {
    if a.commit_duration > sluice_bench::limits::DURATION_MAX {
        return Err(format!(
            "commit duration above {:?}",
            sluice_bench::limits::DURATION_MAX
        ));
    }
    let config = sluice_bench::groups::GroupsConfig {
        bootstrap: a.bootstrap,
        topic: a.topic,
        partitions: a.partitions,
        members: a.members,
        rounds: a.rounds,
        commit_rate: a.commit_rate,
        commit_connections: a.commit_connections,
        commit_duration: a.commit_duration,
        broker_pid: a.broker_pid,
        request_timeout: a.request_timeout,
    };
    let report = sluice_bench::groups::run(&config).map_err(|e| e.to_string())?;
    print!("{}", report.render(&config));
    Ok(())
}

fn run_workload(a: RunArgs) -> Result<(), String> {
    let pace = match (a.rate, a.rate_mb) {
        (Some(r), _) => Pace::RecordsPerSecond(r),
        (None, Some(mb)) => Pace::BytesPerSecond(mb * 1e6),
        (None, None) => Pace::FlatOut,
    };
    let config = BenchConfig {
        label: a.label,
        bootstrap: a.bootstrap,
        topic_prefix: a.topic_prefix,
        topics: a.topics,
        partitions: a.partitions,
        create_topics: !a.no_create_topics,
        producers: a.producers,
        consumers: a.consumers,
        record_size: a.record_size,
        key_cardinality: a.keys,
        compression: a.compression,
        acks: a.acks,
        batch_bytes: a.batch_bytes,
        linger: Duration::from_millis(a.linger_ms),
        in_flight: a.in_flight,
        pace,
        warmup: a.warmup,
        duration: a.duration,
        records_max: a.records,
        drain_timeout: a.drain_timeout,
        request_timeout: a.request_timeout,
        cpus: a.cpus,
        seed: a.seed,
        output_dir: a.out_dir,
        progress: !a.quiet,
    };
    let (summary, histograms) = sluice_bench::run(&config).map_err(|e| e.to_string())?;
    print!("{}", summary.table());
    if let Some(dir) = &config.output_dir {
        let path =
            sluice_bench::write_outputs(dir, &summary, &histograms).map_err(|e| e.to_string())?;
        println!("summary: {}", path.display());
    }
    if summary.records_failed > 0 {
        return Err(format!("{} records failed", summary.records_failed));
    }
    Ok(())
}

fn plot(a: PlotArgs) -> Result<(), String> {
    let summaries = a
        .summaries
        .iter()
        .map(|p| Summary::load(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let drawn = sluice_bench::plot_spectrum(&summaries, a.metric, &a.title, &a.out)
        .map_err(|e| e.to_string())?;
    if drawn == 0 {
        return Err("no summary has samples for that metric".into());
    }
    println!("{}: {drawn} runs", a.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("x").is_err());
    }
}
