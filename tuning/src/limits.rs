//! Every number the placement and the advice use, in one place.
//!
//! The first group mirrors the engine's own limits (tuning does not depend on the engine);
//! `tests/snippet.rs` checks that they agree with `sluice_engine::limits`.

const MIB: u64 = 1 << 20;

/// sluice_engine::limits::SHARDS_MAX
pub const SHARDS_MAX: usize = 256;
/// sluice_engine::limits::PARTITIONS_PER_SHARD_MAX
pub const PARTITIONS_PER_SHARD_MAX: u64 = 100_000;
/// sluice_engine::limits::WRITE_CHUNK_BYTES: the buffer an active partition appends into.
pub const WRITE_CHUNK_BYTES: u64 = MIB;
/// sluice_engine::limits::IO_ALIGNMENT_BYTES: every O_DIRECT write is aligned to this, so a
/// disk's logical block must not be larger.
pub const IO_ALIGNMENT_BYTES: u32 = 4096;
/// The ring depths EngineConfig::validate accepts.
pub const RING_DEPTH_MIN: usize = 8;
pub const RING_DEPTH_MAX: usize = 32768;

/// A machine (or NUMA node) with at least this many physical cores keeps its first core for
/// IRQs and the OS; smaller ones need every core for shards.
pub const RESERVE_CORE_FROM_PHYSICAL_CORES: usize = 4;
/// Registered I/O memory: this fraction (1/N) of the node's memory, split among its shards...
pub const IO_MEMORY_NODE_SHARE_DIVISOR: u64 = 256;
/// ...rounded down to a power of two and kept within these bounds (the low one is the
/// engine default)...
pub const IO_MEMORY_PROPOSED_MIN_BYTES: u64 = 4 * MIB;
pub const IO_MEMORY_PROPOSED_MAX_BYTES: u64 = 64 * MIB;
/// ...unless RLIMIT_MEMLOCK is lower: then shards share 3/4 of it (the rest is left for
/// the rings and anything else that locks memory), at least this much each.
pub const IO_MEMORY_MEMLOCK_SHARE_NUMERATOR: u64 = 3;
pub const IO_MEMORY_MEMLOCK_SHARE_DENOMINATOR: u64 = 4;
pub const IO_MEMORY_FLOOR_BYTES: u64 = MIB;
/// Partitions per shard: half the node's memory goes to write chunks of active partitions.
pub const PARTITION_MEMORY_SHARE_DIVISOR: u64 = 2;
/// Ring depth: the deepest data disk queue (nr_requests) rounded up to a power of two, so
/// one shard can keep the device full, within these bounds (the low one is the engine
/// default; network operations share the ring).
pub const RING_DEPTH_PROPOSED_MIN: usize = 256;
pub const RING_DEPTH_PROPOSED_MAX: usize = 4096;
/// Swappiness advised: swap only to avoid the OOM killer.
pub const SWAPPINESS_ADVISED: u32 = 1;
/// nomerges advised for SSD/NVMe: the engine already writes large aligned runs.
pub const NOMERGES_ADVISED: u32 = 2;

const _: () = assert!(RING_DEPTH_MIN <= RING_DEPTH_PROPOSED_MIN);
const _: () = assert!(RING_DEPTH_PROPOSED_MAX <= RING_DEPTH_MAX);
const _: () =
    assert!(RING_DEPTH_PROPOSED_MIN.is_power_of_two() && RING_DEPTH_PROPOSED_MAX.is_power_of_two());
const _: () = assert!(IO_MEMORY_FLOOR_BYTES <= IO_MEMORY_PROPOSED_MIN_BYTES);
const _: () = assert!(IO_MEMORY_PROPOSED_MIN_BYTES <= IO_MEMORY_PROPOSED_MAX_BYTES);
const _: () = assert!(IO_MEMORY_MEMLOCK_SHARE_NUMERATOR < IO_MEMORY_MEMLOCK_SHARE_DENOMINATOR);
const _: () = assert!(RESERVE_CORE_FROM_PHYSICAL_CORES >= 2);
