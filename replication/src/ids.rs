//! Identifiers replication adds to the engine's (`Offset`, `LeaderEpoch`).

use std::fmt;

/// A broker's id in the cluster (Kafka's `broker.id` / `node.id`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct BrokerId(pub i32);

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "broker-{}", self.0)
    }
}

/// A partition's version of its leader and ISR as the controller records it (Kafka's
/// partition epoch): bumped on every leader or ISR change, so a leader's ISR proposal based
/// on an old version is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PartitionEpoch(pub i32);
