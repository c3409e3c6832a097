//! Consumer groups, classic protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup, offsets,
//! admin). Each group is owned by one shard, `ShardTable::owner_of_key(group id)`; every
//! request for it is routed there, so no group state is shared across shards. In a
//! cluster a group is coordinated only by the broker leading its `__consumer_offsets`
//! partition (others answer NOT_COORDINATOR), and its records are replicated with the
//! partition ([`coordinator`], [`offsets`]).
//!
//! - [`state`]: one group's state machine (pure; unit-tested).
//! - [`coordinator`]: a shard's groups, loading, the session/rebalance timer task.
//! - [`offsets`]: committed offsets in the internal `__consumer_offsets` topic.
//! - [`handlers`]: the wire APIs.
//! - [`consumer`]: groups on the consumer protocol (KIP-848), in their own module.

pub mod consumer;
pub mod coordinator;
pub mod handlers;
pub mod offsets;
pub mod state;
