//! Consumer groups on the consumer protocol (KIP-848, `group.protocol=consumer`): the
//! broker computes assignments and members reconcile towards them through
//! ConsumerGroupHeartbeat. Like classic groups, each group is owned by the shard
//! `ShardTable::owner_of_key(group id)`; committed offsets stay in the classic
//! coordinator's `__consumer_offsets` path, membership is in memory only.
//!
//! - [`assignor`]: the server-side assignors (`uniform`, `range`; pure).
//! - [`state`]: one group's epochs, target assignment and member reconciliation (pure).
//! - [`coordinator`]: a shard's consumer-protocol groups and their session timer.
//! - [`handlers`]: ConsumerGroupHeartbeat, ConsumerGroupDescribe, and the hooks the
//!   classic APIs call for groups of this type.

pub mod assignor;
pub mod coordinator;
pub mod handlers;
pub mod state;
