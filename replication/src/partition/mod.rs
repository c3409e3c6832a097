//! Partition replication: one [`PartitionReplica`] state machine per partition replica on
//! this broker, the leader-epoch cache, and the replica-to-replica messages.
//!
//! The state machine is pure: the caller feeds it metadata, messages, local I/O completions
//! and the time, and executes the [`Output`]s it returns, in order (an epoch cache persist
//! before the append that follows it, a truncation before the resume). The same code runs in
//! the deterministic simulation and on a shard.
//!
//! Why push: the leader already holds each batch in memory when its append completes, so it
//! streams it to every in-sync follower at once, pipelined within a window, instead of
//! waiting for a fetch round trip per batch (the design card's "leader streams batches to
//! its followers"). A follower that is behind (new, restarted, or out of window) is fed from
//! the leader's disk through the same message, read by the driver on request.

pub mod checked_file;
pub mod epoch_cache;
pub mod hw_checkpoint;
pub mod message;
mod replica;
#[cfg(test)]
mod replica_tests;

pub use epoch_cache::{EpochCache, EpochEnd};
pub use message::{AckStatus, ReplicaBody, ReplicaMessage};
pub use replica::{
    FollowerPhase, LeaderAndIsr, Output, PartitionReplica, ProduceError, ReplicaSettings, RoleKind,
};
