//! The replication protocol between the replicas of one partition (rkyv archives framed by
//! [`crate::wire`]). Push: the leader streams `Append`s, the follower answers each durable
//! step with an `AppendAck`; before streaming starts, a follower finds where its log
//! diverged with `EpochEndQuery`/`EpochEndAnswer` (KIP-101/279's OffsetForLeaderEpoch),
//! truncates, and asks to be streamed to with `Resume`.

use rkyv::{Archive, Deserialize, Serialize};

use crate::wire::{self, FrameError, FrameKind};

/// One message between two replicas of a partition.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReplicaMessage {
    /// Sending broker.
    pub from: i32,
    pub topic: String,
    pub partition: i32,
    pub body: ReplicaBody,
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckStatus {
    Ok,
    /// The sender's epoch is older than the receiver's: it is not the leader any more.
    Fenced,
    /// The sender's epoch is newer than the receiver knows: it will learn it from metadata.
    UnknownEpoch,
    /// The batches do not continue the follower's log at `log_end`: resend from there.
    Mismatch,
    /// The receiver does not follow the sender in this epoch.
    NotFollower,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ReplicaBody {
    /// Leader -> follower: batches starting at `base_offset` (empty: a keepalive that carries
    /// the high watermark and asks for an ack).
    Append {
        leader_epoch: i32,
        base_offset: i64,
        records: Vec<u8>,
        leader_high_watermark: i64,
        /// The leader's log end when it sent this: a follower durable up to it was caught up
        /// at `sent_ms` (replica.lag.time.max.ms is measured from there).
        leader_log_end: i64,
        sent_ms: i64,
    },
    /// Follower -> leader, after a durable write (or at once for a keepalive).
    AppendAck {
        leader_epoch: i32,
        status: AckStatus,
        durable_end: i64,
        log_end: i64,
        echo_leader_log_end: i64,
        echo_sent_ms: i64,
    },
    /// Follower -> leader: where does `query_epoch` (or the largest epoch below it) end?
    EpochEndQuery { leader_epoch: i32, query_epoch: i32 },
    EpochEndAnswer {
        leader_epoch: i32,
        status: AckStatus,
        /// -1 when the leader knows no epoch at or below the one asked about.
        epoch: i32,
        /// Where that epoch ends (the leader's log start when `epoch` is -1).
        end_offset: i64,
    },
    /// Follower -> leader: my log is a prefix of yours up to `from`; stream from there.
    Resume { leader_epoch: i32, from: i64 },
    /// Leader -> follower: your Resume point is not in my log; find the divergence again.
    Diverged { leader_epoch: i32 },
    /// Leader -> follower: your Resume point is below my log start (retention deleted what
    /// you miss): empty your log and start again at `log_start` (Kafka's
    /// truncateFullyAndStartAt after OFFSET_OUT_OF_RANGE).
    OutOfRange { leader_epoch: i32, log_start: i64 },
}

impl ReplicaMessage {
    pub fn encode(&self) -> Vec<u8> {
        wire::encode(FrameKind::Replica, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        wire::decode(FrameKind::Replica, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn messages_round_trip_and_damage_is_detected() {
        let msg = ReplicaMessage {
            from: 2,
            topic: "orders".into(),
            partition: 7,
            body: ReplicaBody::Append {
                leader_epoch: 4,
                base_offset: 100,
                records: vec![1, 2, 3, 4, 5],
                leader_high_watermark: 90,
                leader_log_end: 105,
                sent_ms: 1234,
            },
        };
        let bytes = msg.encode();
        assert_eq!(ReplicaMessage::decode(&bytes), Ok(msg));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(
                ReplicaMessage::decode(&bad).is_err(),
                "flip at byte {i} accepted"
            );
        }
        assert!(ReplicaMessage::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn oversized_length_is_refused_before_allocation() {
        let mut bytes = ReplicaMessage {
            from: 1,
            topic: "t".into(),
            partition: 0,
            body: ReplicaBody::Diverged { leader_epoch: 1 },
        }
        .encode();
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            wire::frame_len(&bytes),
            Err(FrameError::TooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = ReplicaMessage::decode(&bytes);
        }

        #[test]
        fn framed_garbage_payloads_are_refused_or_valid(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = ReplicaMessage::decode(&wire::encode_raw(FrameKind::Replica, &payload));
        }
    }
}
