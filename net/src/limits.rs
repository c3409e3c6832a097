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
