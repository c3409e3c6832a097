//! A broker's heartbeat to the controller voters: it is alive (this process incarnation)
//! and where it listens. Sent to every voter, so whichever becomes the active controller
//! already knows who was alive when it took over.

use rkyv::{Archive, Deserialize, Serialize};

use crate::controller::state::BrokerEndpoint;
use crate::wire::{self, FrameError, FrameKind};

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BrokerHeartbeat {
    pub broker: i32,
    /// Changes with every process start (a restart is a new incarnation).
    pub incarnation: u64,
    pub rack: Option<String>,
    pub endpoint: BrokerEndpoint,
}

impl BrokerHeartbeat {
    pub fn encode(&self) -> Vec<u8> {
        wire::encode(FrameKind::Heartbeat, self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        wire::decode(FrameKind::Heartbeat, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_round_trip_and_damage_is_refused() {
        let hb = BrokerHeartbeat {
            broker: 2,
            incarnation: 99,
            rack: Some("r1".into()),
            endpoint: BrokerEndpoint {
                host: "127.0.0.1".into(),
                port: 9093,
                replication: "127.0.0.1:19093".into(),
            },
        };
        let bytes = hb.encode();
        assert_eq!(BrokerHeartbeat::decode(&bytes), Ok(hb));
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(BrokerHeartbeat::decode(&bad).is_err());
    }
}
