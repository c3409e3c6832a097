//! Every bound the network layer enforces, in one place, with their relations checked at
//! compile time. Config values are validated against these at start-up.

/// Default largest request frame (Kafka's socket.request.max.bytes).
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 100 * 1024 * 1024;
/// Ceiling a config may raise socket.request.max.bytes to.
pub const REQUEST_BYTES_MAX_CEILING: usize = 1024 * 1024 * 1024;
/// Smallest request frame: request header v0 is api_key i16 + api_version i16 +
/// correlation_id i32.
pub const REQUEST_HEADER_BYTES_MIN: usize = 8;
/// Default connections a single shard serves at once.
pub const CONNECTIONS_PER_SHARD_DEFAULT: usize = 10_000;
/// Default request bytes a single connection may have read but not yet answered.
pub const IN_FLIGHT_BYTES_PER_CONNECTION_DEFAULT: usize = 128 * 1024 * 1024;
/// Default requests a single connection may have in flight (pipelining depth).
pub const IN_FLIGHT_REQUESTS_PER_CONNECTION_DEFAULT: usize = 256;
/// Read buffer per connection.
pub const CONNECTION_READ_BUFFER_BYTES: usize = 64 * 1024;
/// Most topics one CreateTopics / DeleteTopics request may name (beyond that the frame
/// bound already limits it; this keeps one request from monopolising the store).
pub const TOPICS_PER_REQUEST_MAX: usize = 10_000;
/// Most partitions a topic may have.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 100_000;
/// Longest topic name Kafka allows.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Times one request's partition work follows a partition that moved between shards
/// before the partition is answered with a retriable error.
pub const ROUTE_REDIRECTS_MAX: usize = 4;
/// Longest a Fetch may wait for data (clients ask for 500 ms typically).
pub const FETCH_WAIT_MS_MAX: u64 = 60_000;
/// Largest fetch response the broker builds, whatever the client asks for.
pub const FETCH_RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Default max.message.bytes (Kafka's default, plus record batch overhead).
pub const MESSAGE_BYTES_MAX_DEFAULT: i32 = 1_048_588;
/// Largest metadata store file read back at start-up.
pub const METADATA_FILE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Topics the metadata store holds at most.
pub const TOPICS_MAX: usize = 100_000;

const _: () = assert!(REQUEST_HEADER_BYTES_MIN <= REQUEST_BYTES_MAX_DEFAULT);
const _: () = assert!(REQUEST_BYTES_MAX_DEFAULT <= REQUEST_BYTES_MAX_CEILING);
// A connection must be able to have at least one maximal request in flight.
const _: () = assert!(REQUEST_BYTES_MAX_DEFAULT <= IN_FLIGHT_BYTES_PER_CONNECTION_DEFAULT);
const _: () = assert!(FETCH_RESPONSE_BYTES_MAX <= sluice_engine::limits::READ_BYTES_MAX);
const _: () =
    assert!((MESSAGE_BYTES_MAX_DEFAULT as usize) <= sluice_engine::limits::BATCH_BYTES_MAX);

/// Smallest frame buffer allocated (small requests share the size class).
pub const FRAME_BUFFER_BYTES_MIN: usize = 64 * 1024;
/// Largest frame buffer kept for reuse.
pub const FRAME_BUFFER_POOLED_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Frame buffers a shard keeps for reuse.
pub const FRAME_BUFFERS_POOLED_MAX: usize = 64;

const _: () = assert!(FRAME_BUFFER_BYTES_MIN <= FRAME_BUFFER_POOLED_BYTES_MAX);

// ---- Admin HTTP endpoint (metrics and status) ----

/// Where the admin endpoint listens unless the config says otherwise.
pub const ADMIN_LISTENER_DEFAULT: &str = "127.0.0.1:9644";
/// Largest admin request head (request line and headers) read; larger is refused.
pub const ADMIN_REQUEST_BYTES_MAX: usize = 8 * 1024;
/// Admin connections served at once; more are closed on accept.
pub const ADMIN_CONNECTIONS_MAX: usize = 16;
/// How long the admin endpoint waits on a slow client's read or write.
pub const ADMIN_SOCKET_TIMEOUT_MS: u64 = 5_000;
/// Partitions listed one by one per shard in `/status` (the rest are counted).
pub const ADMIN_STATUS_PARTITIONS_PER_SHARD_MAX: usize = 1_000;
/// Consumer-group lag series exported at most (one per group and partition).
pub const ADMIN_LAG_SERIES_MAX: usize = 10_000;
/// Largest `/status` answer `sluice status` reads.
pub const ADMIN_RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

const _: () = assert!(ADMIN_REQUEST_BYTES_MAX >= 256);
const _: () = assert!(ADMIN_CONNECTIONS_MAX > 0);

// ---- Idempotent producers and consumer groups ----

/// Producer ids reserved per durable write of the producer id file.
pub const PRODUCER_ID_BLOCK: i64 = 1000;
/// Partitions of the internal `__consumer_offsets` topic (Kafka uses 50; fewer keeps a
/// small broker's preallocated segment space down). Fixed once the topic exists: the
/// loader reads whatever partition count the topic has.
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 8;
/// Longest group id, member id or group.instance.id accepted.
pub const GROUP_ID_BYTES_MAX: usize = 255;
/// Members one group may have (joined plus awaiting their KIP-394 second join).
pub const GROUP_MEMBERS_MAX: usize = 1000;
/// Groups one shard coordinates at most.
pub const GROUPS_PER_SHARD_MAX: usize = 100_000;
/// Committed offsets one group may hold.
pub const OFFSETS_PER_GROUP_MAX: usize = 100_000;
/// Kafka's group.min.session.timeout.ms / group.max.session.timeout.ms (min lowered so
/// tests may use short sessions).
pub const SESSION_TIMEOUT_MS_MIN: i32 = 1_000;
pub const SESSION_TIMEOUT_MS_MAX: i32 = 1_800_000;
/// Longest rebalance timeout honoured (longer requests are clamped).
pub const REBALANCE_TIMEOUT_MS_MAX: i32 = 1_800_000;
/// Kafka's group.initial.rebalance.delay.ms default, and the most the config accepts.
pub const GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT: u64 = 3_000;
pub const GROUP_INITIAL_REBALANCE_DELAY_MS_MAX: u64 = REBALANCE_TIMEOUT_MS_MAX as u64;
/// Kafka's offset.metadata.max.bytes.
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;
/// How often a shard's coordinator checks session and rebalance deadlines.
pub const GROUP_TICK_MS: u64 = 100;
/// Bytes read per step while rebuilding committed offsets from `__consumer_offsets`.
pub const OFFSETS_LOAD_READ_BYTES: usize = 1024 * 1024;
/// Records per `__consumer_offsets` batch (one OffsetCommit's partitions, chunked).
pub const OFFSETS_RECORDS_PER_BATCH_MAX: usize = 1000;
/// Records in one coalesced `__consumer_offsets` append (the commits that queued behind
/// the previous append of the partition; one caller's records are never split).
pub const OFFSETS_COALESCED_RECORDS_MAX: usize = 10 * OFFSETS_RECORDS_PER_BATCH_MAX;
/// Keys in one FindCoordinator, groups in one DescribeGroups/DeleteGroups/OffsetFetch.
pub const GROUPS_PER_REQUEST_MAX: usize = 10_000;
/// In a cluster, how long a `__consumer_offsets` append may wait for the in-sync replicas
/// (Kafka's offsets.commit.timeout.ms); past it the commit fails with
/// COORDINATOR_NOT_AVAILABLE and the client retries.
pub const OFFSETS_COMMIT_TIMEOUT_MS: u64 = 5_000;

const _: () =
    assert!(SESSION_TIMEOUT_MS_MIN > 0 && SESSION_TIMEOUT_MS_MIN <= SESSION_TIMEOUT_MS_MAX);
const _: () = assert!((GROUP_TICK_MS as i32) < SESSION_TIMEOUT_MS_MIN);
const _: () =
    assert!(GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT <= GROUP_INITIAL_REBALANCE_DELAY_MS_MAX);
const _: () =
    assert!(OFFSETS_TOPIC_PARTITIONS > 0 && OFFSETS_TOPIC_PARTITIONS <= PARTITIONS_PER_TOPIC_MAX);
const _: () = assert!(OFFSETS_LOAD_READ_BYTES <= FETCH_RESPONSE_BYTES_MAX);
const _: () =
    assert!(OFFSETS_COMMIT_TIMEOUT_MS > 0 && OFFSETS_COMMIT_TIMEOUT_MS <= PRODUCE_TIMEOUT_MS_MAX);
const _: () = assert!(PRODUCER_ID_BLOCK > 0);

// ---- Consumer groups on the consumer protocol (KIP-848) ----

/// Members one consumer-protocol group may have (GROUP_MAX_SIZE_REACHED beyond).
pub const CONSUMER_GROUP_MEMBERS_MAX: usize = 1000;
/// Consumer-protocol groups one shard coordinates at most.
pub const CONSUMER_GROUPS_PER_SHARD_MAX: usize = 100_000;
/// Topic names one member may subscribe to.
pub const CONSUMER_SUBSCRIBED_TOPICS_MAX: usize = 10_000;
/// Longest subscription regex accepted, and the most memory its compiled form may use.
pub const CONSUMER_TOPIC_REGEX_BYTES_MAX: usize = 1024;
pub const CONSUMER_TOPIC_REGEX_COMPILED_BYTES_MAX: usize = 1024 * 1024;
/// Partitions one group's target assignment covers at most (the subscribed topics are
/// taken in name order until this many partitions; the rest stay unassigned, logged).
pub const CONSUMER_GROUP_PARTITIONS_MAX: usize = 100_000;
/// Partitions the uniform assignor moves to even out mixed subscriptions, per run.
pub const CONSUMER_ASSIGNOR_BALANCE_MOVES_MAX: usize = 10_000;
/// Kafka's group.consumer.session.timeout.ms and group.consumer.heartbeat.interval.ms
/// defaults, sent to every member (the `[server]` config may change them).
pub const CONSUMER_SESSION_TIMEOUT_MS_DEFAULT: i32 = 45_000;
pub const CONSUMER_HEARTBEAT_INTERVAL_MS_DEFAULT: i32 = 5_000;
/// Shortest heartbeat interval a config may ask for (the timer checks every GROUP_TICK_MS).
pub const CONSUMER_HEARTBEAT_INTERVAL_MS_MIN: i32 = 500;
/// How often a group re-resolves its subscribed topic names and regexes against the
/// topic list (new topics, new partitions) on a heartbeat.
pub const CONSUMER_METADATA_REFRESH_MS: u64 = 2_000;

const _: () = assert!(CONSUMER_HEARTBEAT_INTERVAL_MS_DEFAULT < CONSUMER_SESSION_TIMEOUT_MS_DEFAULT);
const _: () = assert!(
    CONSUMER_HEARTBEAT_INTERVAL_MS_MIN <= CONSUMER_HEARTBEAT_INTERVAL_MS_DEFAULT
        && (GROUP_TICK_MS as i32) < CONSUMER_HEARTBEAT_INTERVAL_MS_MIN
);
const _: () = assert!(
    SESSION_TIMEOUT_MS_MIN <= CONSUMER_SESSION_TIMEOUT_MS_DEFAULT
        && CONSUMER_SESSION_TIMEOUT_MS_DEFAULT <= SESSION_TIMEOUT_MS_MAX
);
const _: () = assert!(CONSUMER_GROUP_PARTITIONS_MAX <= OFFSETS_PER_GROUP_MAX);
const _: () = assert!(CONSUMER_TOPIC_REGEX_BYTES_MAX <= CONSUMER_TOPIC_REGEX_COMPILED_BYTES_MAX);

// Cluster mode (net/src/cluster).
/// Controller commands queued from the shards (admin changes, ISR proposals) before new
/// ones are refused (the proposer retries or times out).
pub const CONTROLLER_OPS_QUEUED_MAX: usize = 4096;
/// Inter-broker frames queued for the controller task before new ones are dropped (Raft
/// and heartbeats resend).
pub const CONTROLLER_FRAMES_QUEUED_MAX: usize = 4096;
/// How long an admin change waits to be applied by the controller before the request
/// gets REQUEST_TIMED_OUT.
pub const CONTROLLER_APPLY_WAIT_MS: u64 = 15_000;
/// How often a waiting admin change looks at the applied metadata.
pub const CONTROLLER_APPLY_POLL_MS: u64 = 10;
/// How often each shard ticks its partition replicas (keepalives, ISR checks, retries).
pub const REPLICA_TICK_MS: u64 = 50;
/// A leader's idle keepalive to its followers (carries the high watermark).
pub const REPLICA_KEEPALIVE_MS: i64 = 250;
/// Unanswered replica requests are retried after this long.
pub const REPLICA_RETRY_MS: i64 = 500;
/// Longest a replicated produce waits for its acks (the request's timeout_ms, capped).
pub const PRODUCE_TIMEOUT_MS_MAX: u64 = 300_000;
/// Longest a stopping cluster member waits for the controller to move its leaderships.
pub const CONTROLLED_SHUTDOWN_WAIT_MS: u64 = 5_000;
/// Partitions one ElectLeaders / AlterPartitionReassignments request may name (more get
/// POLICY_VIOLATION or are left out).
pub const PARTITIONS_PER_ADMIN_REQUEST_MAX: usize = 100_000;
