//! The partition log: segments, indexes, recovery and retention.

pub mod compaction;
pub mod index;
pub mod partition;
pub mod producers;
pub mod retention;
pub mod segment;
pub mod small_file;
pub mod stats;

pub use partition::{
    AppendInfo, AppendOptions, CleanOutcome, LogError, PartitionLog, ReadResult, TimestampHit,
};
pub use stats::LogStats;

#[cfg(test)]
mod clean_tests;
#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod tests;
