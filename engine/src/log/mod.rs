//! The partition log: segments, indexes, recovery and retention.

pub mod index;
pub mod partition;
pub mod producers;
pub mod retention;
pub mod segment;
pub mod small_file;
pub mod stats;

pub use partition::{AppendInfo, AppendOptions, LogError, PartitionLog, ReadResult, TimestampHit};
pub use stats::LogStats;

#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod tests;
