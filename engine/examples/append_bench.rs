//! Engine append benchmark: appends pre-built Kafka batches of 1 KiB records straight into
//! partition logs on one pinned shard, for each durability policy, batch size and
//! partition count, next to the disk's own O_DIRECT sequential-write bandwidth measured
//! with the same glommio DMA path in the same run. Also times recovery of a 1 GiB partition.
//!
//!   cargo run --release -p sluice-engine --example append_bench -- --dir /path/on/nvme
//!
//! Prints a markdown table. Every case is bounded by bytes and by time.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use cpu_time::ProcessTime;
use hdrhistogram::Histogram;
use sluice_engine::batch::build;
use sluice_engine::clock::SystemClock;
use sluice_engine::config::{Durability, LogConfig};
use sluice_engine::ids::{LeaderEpoch, TopicPartition};
use sluice_engine::io::dma::{prime_device_probe, write_probe_file, DmaStorage};
use sluice_engine::limits::BATCH_BYTES_MAX;
use sluice_engine::log::{AppendOptions, PartitionLog};

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Directory on the disk under test (must support O_DIRECT).
    #[arg(long, default_value = "target/bench-engine")]
    dir: PathBuf,
    /// CPU the shard is pinned to.
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// Bytes appended per case (upper bound).
    #[arg(long, default_value_t = 1 << 30)]
    bytes_per_case: u64,
    /// Seconds per case (upper bound).
    #[arg(long, default_value_t = 6)]
    seconds_per_case: u64,
    /// Appends in flight per partition (a producer's pipeline).
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// Batch sizes in KiB.
    #[arg(long, value_delimiter = ',', default_value = "16,64,256,1024")]
    batch_kib: Vec<usize>,
    /// Partition counts.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    partitions: Vec<usize>,
    /// Policies: per_write, group_commit, interval, none.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "group_commit,per_write,interval,none"
    )]
    policies: Vec<String>,
    /// Size of the partition whose recovery is timed, MiB (0 skips).
    #[arg(long, default_value_t = 1024)]
    recovery_mib: u64,
}

struct CaseResult {
    bytes: u64,
    batches: u64,
    seconds: f64,
    cpu_seconds: f64,
    hist: Histogram<u64>,
}

fn policy(name: &str) -> Durability {
    match name {
        "per_write" => Durability::PerWrite,
        "interval" => Durability::Interval { interval_ms: 5 },
        "none" => Durability::None,
        _ => Durability::GroupCommit,
    }
}

async fn open_log(
    dir: &Path,
    name: &str,
    durability: Durability,
    segment_bytes: u64,
) -> Rc<PartitionLog> {
    let config = LogConfig {
        segment_bytes,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(
        DmaStorage,
        dir.join(name),
        TopicPartition::new(name, 0),
        config,
        durability,
        Rc::new(SystemClock),
    )
    .await
    .expect("open log");
    Rc::new(log)
}

async fn run_case(
    args: &Args,
    durability: Durability,
    batch_kib: usize,
    partitions: usize,
    case_dir: &Path,
) -> CaseResult {
    let _ = std::fs::remove_dir_all(case_dir);
    std::fs::create_dir_all(case_dir).expect("case dir");
    let records = batch_kib.max(1);
    let batch = Rc::new(build::batch(records, 1024 - 8, 0x42, 1_700_000_000_000));
    let mut logs = Vec::new();
    for p in 0..partitions {
        logs.push(open_log(case_dir, &format!("bench-{p}"), durability, 1 << 30).await);
    }
    let budget = Rc::new(Cell::new(args.bytes_per_case));
    let deadline = Instant::now() + Duration::from_secs(args.seconds_per_case);
    let hist = Rc::new(std::cell::RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    ));
    let opts = AppendOptions {
        leader_epoch: LeaderEpoch(0),
        batch_bytes_max: BATCH_BYTES_MAX,
    };
    let cpu0 = ProcessTime::now();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for log in &logs {
        for _ in 0..args.inflight {
            let (log, batch, budget, hist) =
                (log.clone(), batch.clone(), budget.clone(), hist.clone());
            tasks.push(glommio::spawn_local(async move {
                let mut n = 0u64;
                while budget.get() >= batch.len() as u64 && Instant::now() < deadline {
                    budget.set(budget.get() - batch.len() as u64);
                    let start = Instant::now();
                    log.append(&batch, opts).await.expect("append");
                    let _ = hist
                        .borrow_mut()
                        .record(start.elapsed().as_micros().max(1) as u64);
                    n += 1;
                }
                n
            }));
        }
    }
    let mut batches = 0;
    for t in tasks {
        batches += t.await;
    }
    // Everything acknowledged under interval/none must also reach the disk to count.
    for log in &logs {
        log.flush_all().await.expect("flush");
    }
    let seconds = t0.elapsed().as_secs_f64();
    let cpu_seconds = cpu0.elapsed().as_secs_f64();
    for log in &logs {
        log.close().await.expect("close");
    }
    let hist = hist.borrow().clone();
    CaseResult {
        bytes: batches * batch.len() as u64,
        batches,
        seconds,
        cpu_seconds,
        hist,
    }
}

/// The disk's own O_DIRECT sequential-write bandwidth through the same glommio DMA path:
/// 1 MiB aligned writes, `depth` in flight, one fdatasync at the end.
async fn disk_write_baseline(dir: &Path, bytes: u64, depth: usize, seconds: u64) -> (f64, f64) {
    let path = dir.join("baseline.dat");
    let _ = std::fs::remove_file(&path);
    let file = Rc::new(glommio::io::DmaFile::create(&path).await.expect("create"));
    file.pre_allocate(bytes, false).await.expect("prealloc");
    const CHUNK: usize = 1 << 20;
    let next = Rc::new(Cell::new(0u64));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu0 = ProcessTime::now();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..depth {
        let (file, next) = (file.clone(), next.clone());
        tasks.push(glommio::spawn_local(async move {
            loop {
                let pos = next.get();
                if pos + CHUNK as u64 > bytes || Instant::now() > deadline {
                    break;
                }
                next.set(pos + CHUNK as u64);
                let mut buf = file.alloc_dma_buffer(CHUNK);
                buf.as_bytes_mut().fill(0x5a);
                file.write_at(buf, pos).await.expect("write");
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    file.fdatasync().await.expect("sync");
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu0.elapsed().as_secs_f64();
    let written = next.get().min(bytes);
    let _ = std::fs::remove_file(&path);
    (written as f64 / secs / 1e9, cpu / (written as f64 / 1e9))
}

/// Latency of one 4 KiB O_DIRECT write followed by fdatasync: the floor under every
/// durable acknowledgement on this device. Returns (p50, p99) in microseconds.
async fn sync_latency(dir: &Path, rounds: usize) -> (u64, u64) {
    let path = dir.join("sync-latency.dat");
    let _ = std::fs::remove_file(&path);
    let file = glommio::io::DmaFile::create(&path).await.expect("create");
    file.pre_allocate((rounds as u64 + 1) * 4096, false)
        .await
        .expect("prealloc");
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("histogram");
    for i in 0..rounds {
        let mut buf = file.alloc_dma_buffer(4096);
        buf.as_bytes_mut().fill(1);
        let t = Instant::now();
        file.write_at(buf, i as u64 * 4096).await.expect("write");
        file.fdatasync().await.expect("sync");
        let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
    }
    file.close().await.expect("close");
    let _ = std::fs::remove_file(&path);
    (hist.value_at_quantile(0.5), hist.value_at_quantile(0.99))
}

async fn recovery(args: &Args, dir: &Path) -> Option<RecoveryResult> {
    if args.recovery_mib == 0 {
        return None;
    }
    let rdir = dir.join("recovery");
    let _ = std::fs::remove_dir_all(&rdir);
    std::fs::create_dir_all(&rdir).expect("dir");
    let size = args.recovery_mib << 20;
    let batch = build::batch(256, 1024 - 8, 0x17, 1_700_000_000_000);
    let opts = AppendOptions {
        leader_epoch: LeaderEpoch(0),
        batch_bytes_max: BATCH_BYTES_MAX,
    };
    {
        let log = open_log(&rdir, "recover", Durability::None, 2 << 30).await;
        let mut written = 0u64;
        while written < size {
            log.append(&batch, opts).await.expect("append");
            written += batch.len() as u64;
        }
        log.flush_all().await.expect("flush");
        // Dropped without close: no clean-shutdown index, so open must scan everything.
    }
    glommio::timer::sleep(Duration::from_millis(50)).await;
    let t0 = Instant::now();
    let log = open_log(&rdir, "recover", Durability::None, 2 << 30).await;
    let crash_secs = t0.elapsed().as_secs_f64();
    let bytes = log.size_bytes();
    log.close().await.expect("close");
    drop(log);
    glommio::timer::sleep(Duration::from_millis(50)).await;
    let t1 = Instant::now();
    let log = open_log(&rdir, "recover", Durability::None, 2 << 30).await;
    let clean_secs = t1.elapsed().as_secs_f64();
    // Consume from disk: read the whole partition back in 1 MiB fetches, next to the
    // device's own O_DIRECT sequential read of the same segment file.
    let (read_gbps, read_cpu) = {
        let cpu0 = ProcessTime::now();
        let t = Instant::now();
        let mut next = log.log_start_offset();
        let mut read = 0u64;
        while next < log.high_watermark() {
            let r = log.read(next, 1 << 20).await.expect("read");
            read += r.bytes.len() as u64;
            let mut last = next;
            for b in sluice_engine::batch::batches(&r.bytes) {
                last = b.expect("batch").last_offset();
            }
            next = last.next();
        }
        let secs = t.elapsed().as_secs_f64();
        (
            read as f64 / secs / 1e9,
            cpu0.elapsed().as_secs_f64() / (read as f64 / 1e9),
        )
    };
    let seg_path = rdir.join("recover").join("00000000000000000000.log");
    let (disk_read_gbps, disk_read_cpu) = disk_read_baseline(&seg_path, bytes, 4).await;
    drop(log);
    let _ = std::fs::remove_dir_all(&rdir);
    Some(RecoveryResult {
        crash_secs,
        clean_secs,
        bytes,
        read_gbps,
        read_cpu,
        disk_read_gbps,
        disk_read_cpu,
    })
}

struct RecoveryResult {
    crash_secs: f64,
    clean_secs: f64,
    bytes: u64,
    read_gbps: f64,
    read_cpu: f64,
    disk_read_gbps: f64,
    disk_read_cpu: f64,
}

/// The device's O_DIRECT sequential read bandwidth: 1 MiB reads, `depth` in flight.
async fn disk_read_baseline(path: &Path, bytes: u64, depth: usize) -> (f64, f64) {
    let file = Rc::new(glommio::io::DmaFile::open(path).await.expect("open"));
    const CHUNK: u64 = 1 << 20;
    let next = Rc::new(Cell::new(0u64));
    let cpu0 = ProcessTime::now();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..depth {
        let (file, next) = (file.clone(), next.clone());
        tasks.push(glommio::spawn_local(async move {
            let mut got = 0u64;
            loop {
                let pos = next.get();
                if pos >= bytes {
                    break;
                }
                next.set(pos + CHUNK);
                got += file
                    .read_at_aligned(pos, CHUNK as usize)
                    .await
                    .expect("read")
                    .len() as u64;
            }
            got
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await;
    }
    let secs = t0.elapsed().as_secs_f64();
    (
        total as f64 / secs / 1e9,
        cpu0.elapsed().as_secs_f64() / (total as f64 / 1e9),
    )
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
            let (bw1, cpu1) = disk_write_baseline(&args.dir, args.bytes_per_case, 1, args.seconds_per_case).await;
            let (bw4, cpu4) = disk_write_baseline(&args.dir, args.bytes_per_case, 4, args.seconds_per_case).await;
            println!("## Disk: O_DIRECT sequential write, 1 MiB writes (glommio DMA, same run)\n");
            println!("| depth | GB/s | CPU-s/GB |\n|---|---|---|");
            println!("| 1 | {bw1:.3} | {cpu1:.3} |\n| 4 | {bw4:.3} | {cpu4:.3} |\n");
            let (sync_p50, sync_p99) = sync_latency(&args.dir, 200).await;
            println!("4 KiB write + fdatasync latency: p50 {sync_p50} us, p99 {sync_p99} us\n");
            let disk = bw1.max(bw4);
            println!("## Engine appends (1 KiB records, {} appends in flight per partition, one shard on core {})\n", args.inflight, args.core);
            println!("| policy | batch | partitions | GB/s | % of disk | batches/s | p50 us | p99 us | p99.9 us | CPU-s/GB |");
            println!("|---|---|---|---|---|---|---|---|---|---|");
            for pol in &args.policies {
                for &kib in &args.batch_kib {
                    for &parts in &args.partitions {
                        let case_dir = args.dir.join("case");
                        let r = run_case(&args, policy(pol), kib, parts, &case_dir).await;
                        let gbps = r.bytes as f64 / r.seconds / 1e9;
                        println!(
                            "| {pol} | {kib} KiB | {parts} | {gbps:.3} | {:.0}% | {:.0} | {} | {} | {} | {:.3} |",
                            100.0 * gbps / disk,
                            r.batches as f64 / r.seconds,
                            r.hist.value_at_quantile(0.5),
                            r.hist.value_at_quantile(0.99),
                            r.hist.value_at_quantile(0.999),
                            r.cpu_seconds / (r.bytes as f64 / 1e9),
                        );
                        let _ = std::fs::remove_dir_all(&case_dir);
                    }
                }
            }
            if let Some(r) = recovery(&args, &args.dir).await {
                println!("\n## Recovery of one {:.2} GiB partition\n", r.bytes as f64 / (1u64 << 30) as f64);
                println!(
                    "| after | seconds |\n|---|---|\n| crash (full scan + CRC of every batch) | {:.3} |\n| clean shutdown (index trusted) | {:.3} |",
                    r.crash_secs, r.clean_secs
                );
                println!("\n## Consume from disk (1 MiB reads of the same partition)\n");
                println!("| reader | GB/s | % of disk | CPU-s/GB |\n|---|---|---|---|");
                println!("| disk O_DIRECT, 4 in flight | {:.3} | 100% | {:.3} |", r.disk_read_gbps, r.disk_read_cpu);
                println!(
                    "| PartitionLog::read (CRC of every batch) | {:.3} | {:.0}% | {:.3} |",
                    r.read_gbps,
                    100.0 * r.read_gbps / r.disk_read_gbps,
                    r.read_cpu
                );
            }
        })
        .expect("executor");
    handle.join().expect("join");
}
