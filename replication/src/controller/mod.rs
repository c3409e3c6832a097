//! The cluster controller: the metadata state machine ([`state`]), ordered by a Raft quorum
//! of controller voters ([`node`], raft-rs) whose log lives in the engine's storage
//! ([`raft_log`]).

pub mod moves;
pub mod node;
pub mod raft_log;
pub mod state;

pub use moves::{ElectionError, OngoingReassignment};
pub use node::{
    ControllerConfig, ControllerError, ControllerNode, ElectionJitter, LeaderRebalance,
};
pub use state::{
    assign_replicas, ApplyError, BrokerEndpoint, BrokerInfo, MetadataCommand, MetadataState,
    PartitionChange, PartitionInfo, TopicInfo,
};
