//! The API versions this broker advertises and accepts, as Apache Kafka 4.x advertises them.

use kafka_protocol::messages::ApiKey;

/// Inclusive version range for one API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versions {
    pub min: i16,
    pub max: i16,
}

/// Versions advertised in ApiVersions, in api-key order.
pub const ADVERTISED: &[(ApiKey, Versions)] = &[
    // Produce is advertised from v0 although only v3+ is served: librdkafka decides whether
    // the broker supports compression from the advertised minimum (KAFKA-18659).
    (ApiKey::Produce, Versions { min: 0, max: 12 }),
    (ApiKey::Fetch, Versions { min: 4, max: 17 }),
    (ApiKey::ListOffsets, Versions { min: 1, max: 9 }),
    (ApiKey::Metadata, Versions { min: 0, max: 12 }),
    (ApiKey::OffsetCommit, Versions { min: 2, max: 9 }),
    (ApiKey::OffsetFetch, Versions { min: 1, max: 9 }),
    (ApiKey::FindCoordinator, Versions { min: 0, max: 6 }),
    (ApiKey::JoinGroup, Versions { min: 0, max: 9 }),
    (ApiKey::Heartbeat, Versions { min: 0, max: 4 }),
    (ApiKey::LeaveGroup, Versions { min: 0, max: 5 }),
    (ApiKey::SyncGroup, Versions { min: 0, max: 5 }),
    (ApiKey::DescribeGroups, Versions { min: 0, max: 5 }),
    (ApiKey::ListGroups, Versions { min: 0, max: 5 }),
    (ApiKey::ApiVersions, Versions { min: 0, max: 4 }),
    (ApiKey::CreateTopics, Versions { min: 2, max: 7 }),
    (ApiKey::DeleteTopics, Versions { min: 1, max: 6 }),
    (ApiKey::DeleteRecords, Versions { min: 0, max: 2 }),
    (ApiKey::InitProducerId, Versions { min: 0, max: 5 }),
    (ApiKey::DescribeConfigs, Versions { min: 1, max: 4 }),
    (ApiKey::AlterConfigs, Versions { min: 0, max: 2 }),
    (ApiKey::DescribeLogDirs, Versions { min: 1, max: 4 }),
    (ApiKey::CreatePartitions, Versions { min: 0, max: 3 }),
    (ApiKey::DeleteGroups, Versions { min: 0, max: 2 }),
    (ApiKey::IncrementalAlterConfigs, Versions { min: 0, max: 1 }),
    (ApiKey::OffsetDelete, Versions { min: 0, max: 0 }),
    (ApiKey::DescribeCluster, Versions { min: 0, max: 1 }),
    (ApiKey::OffsetForLeaderEpoch, Versions { min: 2, max: 4 }),
    (ApiKey::ElectLeaders, Versions { min: 0, max: 2 }),
    (
        ApiKey::AlterPartitionReassignments,
        Versions { min: 0, max: 0 },
    ),
    (
        ApiKey::ListPartitionReassignments,
        Versions { min: 0, max: 0 },
    ),
    // KIP-848 consumer protocol (group.protocol=consumer); v1 members bring their own id.
    (ApiKey::ConsumerGroupHeartbeat, Versions { min: 0, max: 1 }),
    (ApiKey::ConsumerGroupDescribe, Versions { min: 0, max: 1 }),
];

/// Versions actually served; differs from [`ADVERTISED`] only for Produce v0-v2.
pub fn served(key: ApiKey) -> Option<Versions> {
    match key {
        ApiKey::Produce => Some(Versions { min: 3, max: 12 }),
        _ => ADVERTISED.iter().find(|(k, _)| *k == key).map(|(_, v)| *v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_range_is_inside_what_the_codec_can_decode() {
        for (key, _) in ADVERTISED {
            let ours = served(*key).expect("advertised implies served");
            let codec = key.valid_versions();
            assert!(
                ours.min >= codec.min && ours.max <= codec.max,
                "{key:?} {ours:?} vs {codec:?}"
            );
            assert!(ours.min <= ours.max);
        }
    }

    #[test]
    fn kafka_4_client_minimums_are_met() {
        // Kafka 4.x clients need at least Produce v3, Fetch v4, ListOffsets v1.
        for (key, needed) in [
            (ApiKey::Produce, 3),
            (ApiKey::Fetch, 4),
            (ApiKey::ListOffsets, 1),
        ] {
            let v = served(key).expect("served");
            assert!(v.min <= needed && needed <= v.max);
        }
        assert_eq!(
            ADVERTISED[0].1.min, 0,
            "Produce advertised from v0 for librdkafka"
        );
    }
}
