//! The cluster controller: the metadata state machine ([`state`]), ordered by a Raft quorum
//! of controller voters ([`node`], raft-rs) whose log lives in the engine's storage
//! ([`raft_log`]; [`store`] is raft-rs's view of it, [`image`] the snapshot format).
//! [`moves`] holds the requested moves: controlled shutdown, preferred-leader elections,
//! reassignments.

pub mod image;
pub mod moves;
pub mod node;
pub mod raft_log;
pub mod state;
pub mod store;

pub mod heartbeat;
pub use heartbeat::BrokerHeartbeat;
pub use moves::{ElectionError, OngoingReassignment};
pub use node::{
    ControllerConfig, ControllerError, ControllerNode, ElectionJitter, LeaderRebalance,
    SnapshotPolicy,
};
pub use state::{
    assign_replicas, ApplyError, BrokerEndpoint, BrokerInfo, MetadataCommand, MetadataState,
    PartitionChange, PartitionInfo, TopicInfo,
};
