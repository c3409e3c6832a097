//! Every bound the engine enforces, in one place, with the relations checked at compile time.

/// Alignment of every O_DIRECT write and read position (logical block size we assume at most).
pub const IO_ALIGNMENT_BYTES: usize = 4096;
/// Size of the in-memory write chunk a partition accumulates appends into before one
/// large sequential write.
pub const WRITE_CHUNK_BYTES: usize = 1024 * 1024;
/// Segment files are preallocated ahead of the write position in steps of this size, not
/// all at once: a 1 GiB segment.bytes on thousands of mostly idle partitions must not
/// reserve terabytes.
pub const SEGMENT_PREALLOCATE_STEP_BYTES: u64 = 16 * 1024 * 1024;
/// Largest record batch the engine accepts, whatever the topic config says.
pub const BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Smallest valid Kafka RecordBatch v2 (header without records).
pub const BATCH_HEADER_BYTES: usize = 61;
/// Largest segment file.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 31;
/// Smallest segment size a config may ask for.
pub const SEGMENT_BYTES_MIN: u64 = 1 << 20;
/// Default bytes between sparse index entries (Kafka's index.interval.bytes).
pub const INDEX_INTERVAL_BYTES: u64 = 4096;
/// Upper bound on index entries per segment; an entry per interval of a max-size segment.
pub const INDEX_ENTRIES_MAX: u64 = SEGMENT_BYTES_MAX / INDEX_INTERVAL_BYTES + 1;
/// Bytes a single read request may ask for at most.
pub const READ_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Depth of each shard's cross-core inbox (flume bounded channel).
pub const SHARD_INBOX_DEPTH: usize = 1024;
/// Depth of each shard's reply inbox (answers to the requests it routed elsewhere).
pub const SHARD_REPLY_INBOX_DEPTH: usize = 4096;
/// First and longest wait before retrying a send into a full inbox, microseconds.
pub const ROUTE_RETRY_US_MIN: u64 = 20;
pub const ROUTE_RETRY_US_MAX: u64 = 1000;
/// Work items from other shards a shard runs concurrently.
pub const SHARD_INFLIGHT_MAX: usize = 4096;
/// Most shards a broker runs.
pub const SHARDS_MAX: usize = 256;
/// Most partitions a single shard owns.
pub const PARTITIONS_PER_SHARD_MAX: usize = 100_000;
/// How long a request for a partition that is moving between shards waits for the move
/// before it is answered with a retriable error.
pub const MOVE_WAIT_MS_MAX: u64 = 10_000;
/// How long a move waits for work already admitted on the old owner to finish.
pub const MOVE_DRAIN_MS_MAX: u64 = 5_000;
/// Partitions that may sit off their configured shard at once (the overrides file's bound).
pub const PLACEMENT_OVERRIDES_MAX: usize = 100_000;
/// Appends waiting for durability on one partition before new appends wait for room.
pub const APPENDS_PENDING_MAX: usize = 65_536;

const _: () = assert!(WRITE_CHUNK_BYTES.is_multiple_of(IO_ALIGNMENT_BYTES));
const _: () = assert!(SEGMENT_BYTES_MIN.is_multiple_of(IO_ALIGNMENT_BYTES as u64));
const _: () = assert!(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_MAX);
const _: () = assert!(BATCH_BYTES_MAX <= SEGMENT_BYTES_MAX as usize);
const _: () = assert!(SEGMENT_PREALLOCATE_STEP_BYTES.is_multiple_of(IO_ALIGNMENT_BYTES as u64));
const _: () = assert!(SHARD_INBOX_DEPTH <= SHARD_INFLIGHT_MAX);
// Requests held by a move outwait the drain, so a move that gives up releases them.
const _: () = assert!(MOVE_DRAIN_MS_MAX < MOVE_WAIT_MS_MAX);
const _: () = assert!(ROUTE_RETRY_US_MIN > 0 && ROUTE_RETRY_US_MIN <= ROUTE_RETRY_US_MAX);
// A segment position must fit the u32 positions in the sparse index.
const _: () = assert!(SEGMENT_BYTES_MAX <= u32::MAX as u64 + 1);

// ---- log cleaner (compaction) ----

/// Bytes of keys (plus per-entry overhead) the cleaner's offset map holds in one pass.
/// Kafka's `log.cleaner.dedupe.buffer.size` idea: when the dirty section holds more keys,
/// the cleaner stops the map at a batch boundary and cleans again from there next pass.
/// The map stops at a record boundary; an empty map always admits one key, so it exceeds
/// this by at most one key.
pub const CLEANER_OFFSET_MAP_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Bytes counted per offset-map entry on top of the key (hash slot, offset, box header).
pub const CLEANER_OFFSET_MAP_ENTRY_OVERHEAD_BYTES: usize = 48;
/// Bytes the cleaner reads from a segment per request.
pub const CLEANER_READ_BYTES: usize = 4 * 1024 * 1024;
/// Bytes of cleaned frames the cleaner accumulates before one aligned write.
pub const CLEANER_WRITE_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Largest decompressed record section the cleaner (or a compacted topic's key check)
/// inflates from one batch; a batch that inflates beyond it is kept whole, uncleaned (or
/// refused at produce on a compacted topic).
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Passes one cleaner round runs on one partition before it yields to the next partition.
pub const CLEANER_PASSES_PER_ROUND_MAX: usize = 8;
/// Batches the cleaner processes between voluntary yields to the shard's other tasks.
pub const CLEANER_BATCHES_PER_YIELD: usize = 64;

const _: () = assert!(CLEANER_WRITE_BUFFER_BYTES.is_multiple_of(IO_ALIGNMENT_BYTES));
const _: () = assert!(CLEANER_READ_BYTES <= READ_BYTES_MAX);
const _: () = assert!(DECOMPRESSED_BATCH_BYTES_MAX >= BATCH_BYTES_MAX);
const _: () = assert!(CLEANER_OFFSET_MAP_BYTES_MAX > CLEANER_OFFSET_MAP_ENTRY_OVERHEAD_BYTES);
