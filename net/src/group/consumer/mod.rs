//! Consumer groups on the consumer protocol (KIP-848, `group.protocol=consumer`): the
//! broker computes assignments and members reconcile towards them through
//! ConsumerGroupHeartbeat. Like classic groups, each group is owned by the shard
//! `ShardTable::owner_of_key(group id)`; committed offsets stay in the classic
//! coordinator's `__consumer_offsets` path, and the group's epochs, members and
//! assignments are written there too as Kafka's KIP-848 records ([`records`]), replayed
//! by the classic coordinator's start-up load.
//!
//! - [`assignor`]: the server-side assignors (`uniform`, `range`; pure).
//! - [`state`]: one group's epochs, target assignment and member reconciliation (pure).
//! - [`records`]: the KIP-848 `__consumer_offsets` record codecs (keys 3 to 8).
//! - [`coordinator`]: a shard's consumer-protocol groups, their session timer, and the
//!   writing of their records.
//! - [`handlers`]: ConsumerGroupHeartbeat, ConsumerGroupDescribe, and the hooks the
//!   classic APIs call for groups of this type.

pub mod assignor;
pub mod coordinator;
pub mod handlers;
pub mod records;
pub mod state;
