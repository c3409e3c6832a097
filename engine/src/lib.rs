//! Sluice engine: the shard-per-core runtime and the partition log storage.
//!
//! Layout:
//! - [`runtime`]: glommio executors pinned per core, the shard table, cross-shard routing.
//! - [`log`]: the segmented, direct-I/O partition log and its recovery and retention.
//! - [`io`]: the storage trait the log writes through (glommio DMA files, or a
//!   fault-injecting in-memory store for crash tests).
//! - [`batch`], [`frame`], [`index`]: Kafka RecordBatch v2 checks and Sluice's own rkyv
//!   on-disk structures.
#![allow(clippy::future_not_send)]

pub mod batch;
pub mod clock;
pub mod config;
pub mod frame;
pub mod ids;
pub mod io;
pub mod limits;
pub mod log;
pub mod records;
pub mod runtime;

pub use config::{CleanupPolicy, Durability, EngineConfig, LogConfig};
pub use ids::{LeaderEpoch, Offset, PartitionId, ShardId, TopicPartition};
