//! Log cleaner benchmark on a real disk: fills one compacted partition with keyed 1 KiB
//! records (a few versions per key, 1% tombstones) through the real DMA storage, then
//! times cleaning passes until nothing is dirty. Prints MB/s of log cleaned and CPU-s per
//! GB, per codec.
//!
//!   cargo run --release -p sluice-engine --example clean_bench -- --dir /path/on/nvme
//!
//! Bounded by --mib per case; the case directory is deleted after each case.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use clap::Parser;
use cpu_time::ProcessTime;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sluice_engine::clock::SystemClock;
use sluice_engine::config::{CleanupPolicy, Durability, LogConfig};
use sluice_engine::ids::{LeaderEpoch, TopicPartition};
use sluice_engine::io::dma::{prime_device_probe, write_probe_file, DmaStorage};
use sluice_engine::limits::BATCH_BYTES_MAX;
use sluice_engine::log::{AppendOptions, CleanOutcome, PartitionLog};
use sluice_engine::records;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Directory on the disk under test (must support O_DIRECT).
    #[arg(long, default_value = "target/bench-clean")]
    dir: PathBuf,
    /// CPU the shard is pinned to.
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// Log written per case, MiB.
    #[arg(long, default_value_t = 512)]
    mib: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Records per batch.
    #[arg(long, default_value_t = 16)]
    records_per_batch: usize,
    /// Segment size, MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Codecs: none, gzip, snappy, lz4, zstd.
    #[arg(long, value_delimiter = ',', default_value = "none,lz4,zstd")]
    codecs: Vec<String>,
}

fn codec(name: &str) -> u8 {
    match name {
        "gzip" => records::CODEC_GZIP,
        "snappy" => records::CODEC_SNAPPY,
        "lz4" => records::CODEC_LZ4,
        "zstd" => records::CODEC_ZSTD,
        _ => records::CODEC_NONE,
    }
}

struct CaseResult {
    written_bytes: u64,
    before_bytes: u64,
    after_bytes: u64,
    passes: usize,
    total: CleanOutcome,
    seconds: f64,
    cpu_seconds: f64,
}

async fn run_case(args: &Args, codec_name: &str, dir: &Path) -> CaseResult {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("case dir");
    let config = LogConfig {
        segment_bytes: args.segment_mib << 20,
        cleanup_policy: CleanupPolicy::Compact,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(
        DmaStorage,
        dir.join("p-0"),
        TopicPartition::new("p", 0),
        config,
        Durability::None,
        Rc::new(SystemClock),
    )
    .await
    .expect("open log");
    let opts = AppendOptions {
        leader_epoch: LeaderEpoch(0),
        batch_bytes_max: BATCH_BYTES_MAX,
    };
    let mut rng = SmallRng::seed_from_u64(7);
    let target = args.mib << 20;
    let mut written = 0u64;
    let c = codec(codec_name);
    // Values: half random bytes, half text, so compressed batches compress like real data.
    while written < target {
        let owned: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..args.records_per_batch)
            .map(|_| {
                let k = rng.gen_range(0..args.keys);
                let key = format!("key-{k:012}").into_bytes();
                if rng.gen_ratio(1, 100) {
                    return (key, None);
                }
                let mut v = vec![0u8; 1000];
                rng.fill(&mut v[..500]);
                for (i, b) in v[500..].iter_mut().enumerate() {
                    *b = b"the quick brown fox "[i % 20];
                }
                (key, Some(v))
            })
            .collect();
        let refs: Vec<records::build::KeyValue<'_>> = owned
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
            .collect();
        let batch = records::build::keyed(&refs, c, 1_700_000_000_000);
        log.append(&batch, opts).await.expect("append");
        written += batch.len() as u64;
    }
    log.flush_all().await.expect("flush");
    let before = log.size_bytes();
    let cpu0 = ProcessTime::now();
    let t0 = Instant::now();
    let mut total = CleanOutcome::default();
    let mut passes = 0;
    loop {
        let o = log.clean().await.expect("clean");
        passes += 1;
        total.bytes_read += o.bytes_read;
        total.bytes_written += o.bytes_written;
        total.segments_rewritten += o.segments_rewritten;
        total.keys = total.keys.max(o.keys);
        if !o.more || passes >= 100 {
            break;
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let cpu_seconds = cpu0.elapsed().as_secs_f64();
    let after = log.size_bytes();
    log.close().await.expect("close");
    drop(log);
    let _ = std::fs::remove_dir_all(dir);
    CaseResult {
        written_bytes: written,
        before_bytes: before,
        after_bytes: after,
        passes,
        total,
        seconds,
        cpu_seconds,
    }
}

fn main() {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir).expect("bench dir");
    let probe = write_probe_file(&args.dir).expect("probe file");
    let a = args.clone();
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(args.core))
        .io_memory(64 << 20)
        .spawn(move || async move {
            prime_device_probe(&probe).await.expect("device probe");
            let args = a;
            println!(
                "## Log cleaner: {} MiB of keyed 1 KiB records, {} keys, {} records/batch, {} MiB segments, core {}\n",
                args.mib, args.keys, args.records_per_batch, args.segment_mib, args.core
            );
            println!("| codec | log before MiB | after MiB | passes | keys | segments rewritten | read MiB | written MiB | s | MB/s cleaned | CPU-s/GB |");
            println!("|---|---|---|---|---|---|---|---|---|---|---|");
            for name in &args.codecs {
                let r = run_case(&args, name, &args.dir.join(format!("case-{name}"))).await;
                let mib = |b: u64| b as f64 / (1 << 20) as f64;
                let gb = r.before_bytes as f64 / 1e9;
                println!(
                    "| {name} | {:.0} | {:.1} | {} | {} | {} | {:.0} | {:.1} | {:.2} | {:.0} | {:.2} |",
                    mib(r.before_bytes),
                    mib(r.after_bytes),
                    r.passes,
                    r.total.keys,
                    r.total.segments_rewritten,
                    mib(r.total.bytes_read),
                    mib(r.total.bytes_written),
                    r.seconds,
                    r.before_bytes as f64 / 1e6 / r.seconds,
                    r.cpu_seconds / gb,
                );
                let _ = r.written_bytes;
            }
            println!("\nMB/s cleaned: log bytes before the passes (map build + rewrite) per wall second; CPU-s/GB: process CPU per GB of that log.");
        })
        .expect("executor");
    handle.join().expect("bench thread");
    let _ = std::fs::remove_file(args.dir.join(".sluice-device-probe"));
}
