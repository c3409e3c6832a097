//! The cluster controller: the metadata state machine and the Raft quorum that orders its
//! commands.

pub mod state;

pub use state::{
    assign_replicas, ApplyError, BrokerInfo, MetadataCommand, MetadataState, PartitionChange,
    PartitionInfo, TopicInfo,
};
