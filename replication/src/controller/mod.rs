//! The cluster controller: the metadata state machine ([`state`]), ordered by a Raft quorum
//! of controller voters ([`node`], raft-rs) whose log lives in the engine's storage
//! ([`raft_log`]).

pub mod node;
pub mod raft_log;
pub mod state;

pub mod heartbeat;
pub use heartbeat::BrokerHeartbeat;
pub use node::{ControllerConfig, ControllerError, ControllerNode, ElectionJitter};
pub use state::{
    assign_replicas, ApplyError, BrokerEndpoint, BrokerInfo, MetadataCommand, MetadataState,
    PartitionChange, PartitionInfo, TopicInfo,
};
