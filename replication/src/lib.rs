//! Sluice replication: partition leader/follower replication and the cluster controller.
//!
//! - [`partition`]: the per-partition replication state machine (leader epochs, epoch
//!   cache, push replication, ISR, high watermark, acks=all, divergence truncation).
//! - [`wire`]: the rkyv + crc32c frames every inter-broker message travels in.
//! - [`limits`]: every bound, with their relations checked at compile time.
//!
//! Depends on the engine (logs, storage, clock); never on `net`.
#![allow(clippy::future_not_send)]

pub mod controller;
pub mod driver;
pub mod ids;
pub mod limits;
pub mod partition;
pub mod transport;
pub mod wire;

pub use ids::{BrokerId, PartitionEpoch};
