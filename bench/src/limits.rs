//! Every bound the load generator keeps, in one place.

use std::time::Duration;

/// Largest response frame accepted from a broker.
pub const FRAME_BYTES_MAX: usize = 64 << 20;
/// Largest produce request the generator builds (Kafka's message.max.bytes is 1 MiB per
/// batch; a request may carry many batches).
pub const REQUEST_BYTES_MAX: usize = 8 << 20;
/// Largest batch.size accepted.
pub const BATCH_BYTES_MAX: usize = 4 << 20;
/// Largest record value.
pub const RECORD_BYTES_MAX: usize = 1 << 20;
/// Largest fetch response asked for.
pub const FETCH_BYTES_MAX: usize = 32 << 20;
/// Requests in flight per producer connection.
pub const IN_FLIGHT_MAX: usize = 1024;
pub const PRODUCERS_MAX: u32 = 256;
pub const CONSUMERS_MAX: u32 = 256;
/// Members and rebalance rounds of `sluice bench groups`.
pub const GROUP_MEMBERS_MAX: usize = 1000;
pub const GROUP_ROUNDS_MAX: usize = 10_000;
/// Topic-partitions in one workload.
pub const TOPIC_PARTITIONS_MAX: u32 = 100_000;
/// Longest run, warm-up included.
pub const DURATION_MAX: Duration = Duration::from_secs(3600);
/// Width of the throughput time-series buckets.
pub const BUCKET_MS: u64 = 100;
/// Latencies above this are clamped into the histogram's top bucket.
pub const LATENCY_NS_MAX: u64 = 2 * 3_600_000_000_000;

const _: () = assert!(BATCH_BYTES_MAX < REQUEST_BYTES_MAX);
const _: () = assert!(RECORD_BYTES_MAX <= BATCH_BYTES_MAX);
const _: () = assert!(REQUEST_BYTES_MAX < FRAME_BYTES_MAX);
const _: () = assert!(FETCH_BYTES_MAX < FRAME_BYTES_MAX);
const _: () = assert!(LATENCY_NS_MAX > DURATION_MAX.as_nanos() as u64);
