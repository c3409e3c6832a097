//! Kafka error codes: the only place engine and metadata errors become protocol codes.

use kafka_protocol::ResponseError;

pub const NONE: i16 = 0;

pub const fn code(e: ResponseError) -> i16 {
    e.code()
}

pub const UNKNOWN_SERVER_ERROR: i16 = code(ResponseError::UnknownServerError);
pub const OFFSET_OUT_OF_RANGE: i16 = code(ResponseError::OffsetOutOfRange);
pub const CORRUPT_MESSAGE: i16 = code(ResponseError::CorruptMessage);
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = code(ResponseError::UnknownTopicOrPartition);
pub const NOT_LEADER_OR_FOLLOWER: i16 = code(ResponseError::NotLeaderOrFollower);
pub const REQUEST_TIMED_OUT: i16 = code(ResponseError::RequestTimedOut);
pub const MESSAGE_TOO_LARGE: i16 = code(ResponseError::MessageTooLarge);
pub const INVALID_TOPIC_EXCEPTION: i16 = code(ResponseError::InvalidTopicException);
pub const RECORD_LIST_TOO_LARGE: i16 = code(ResponseError::RecordListTooLarge);
pub const INVALID_REQUIRED_ACKS: i16 = code(ResponseError::InvalidRequiredAcks);
pub const UNSUPPORTED_VERSION: i16 = code(ResponseError::UnsupportedVersion);
pub const TOPIC_ALREADY_EXISTS: i16 = code(ResponseError::TopicAlreadyExists);
pub const INVALID_PARTITIONS: i16 = code(ResponseError::InvalidPartitions);
pub const INVALID_REPLICATION_FACTOR: i16 = code(ResponseError::InvalidReplicationFactor);
pub const INVALID_REPLICA_ASSIGNMENT: i16 = code(ResponseError::InvalidReplicaAssignment);
pub const INVALID_CONFIG: i16 = code(ResponseError::InvalidConfig);
pub const INVALID_REQUEST: i16 = code(ResponseError::InvalidRequest);
pub const POLICY_VIOLATION: i16 = code(ResponseError::PolicyViolation);
pub const KAFKA_STORAGE_ERROR: i16 = code(ResponseError::KafkaStorageError);
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = code(ResponseError::FetchSessionIdNotFound);
pub const UNKNOWN_TOPIC_ID: i16 = code(ResponseError::UnknownTopicId);
pub const INVALID_RECORD: i16 = code(ResponseError::InvalidRecord);
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 =
    code(ResponseError::TransactionalIdAuthorizationFailed);
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = code(ResponseError::ClusterAuthorizationFailed);
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = code(ResponseError::UnsupportedForMessageFormat);

// Replication.
pub const LEADER_NOT_AVAILABLE: i16 = code(ResponseError::LeaderNotAvailable);
pub const NOT_ENOUGH_REPLICAS: i16 = code(ResponseError::NotEnoughReplicas);
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = code(ResponseError::NotEnoughReplicasAfterAppend);
pub const FENCED_LEADER_EPOCH: i16 = code(ResponseError::FencedLeaderEpoch);
pub const UNKNOWN_LEADER_EPOCH: i16 = code(ResponseError::UnknownLeaderEpoch);
pub const NOT_COORDINATOR: i16 = code(ResponseError::NotCoordinator);

// Idempotent producers and consumer groups.
pub const COORDINATOR_NOT_AVAILABLE: i16 = code(ResponseError::CoordinatorNotAvailable);
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = code(ResponseError::CoordinatorLoadInProgress);
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = code(ResponseError::OutOfOrderSequenceNumber);
pub const INVALID_PRODUCER_EPOCH: i16 = code(ResponseError::InvalidProducerEpoch);
pub const UNKNOWN_PRODUCER_ID: i16 = code(ResponseError::UnknownProducerId);
pub const OFFSET_METADATA_TOO_LARGE: i16 = code(ResponseError::OffsetMetadataTooLarge);
pub const ILLEGAL_GENERATION: i16 = code(ResponseError::IllegalGeneration);
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = code(ResponseError::InconsistentGroupProtocol);
pub const INVALID_GROUP_ID: i16 = code(ResponseError::InvalidGroupId);
pub const UNKNOWN_MEMBER_ID: i16 = code(ResponseError::UnknownMemberId);
pub const INVALID_SESSION_TIMEOUT: i16 = code(ResponseError::InvalidSessionTimeout);
pub const REBALANCE_IN_PROGRESS: i16 = code(ResponseError::RebalanceInProgress);
pub const NON_EMPTY_GROUP: i16 = code(ResponseError::NonEmptyGroup);
pub const GROUP_ID_NOT_FOUND: i16 = code(ResponseError::GroupIdNotFound);
pub const MEMBER_ID_REQUIRED: i16 = code(ResponseError::MemberIdRequired);
pub const GROUP_MAX_SIZE_REACHED: i16 = code(ResponseError::GroupMaxSizeReached);
pub const FENCED_INSTANCE_ID: i16 = code(ResponseError::FencedInstanceId);
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = code(ResponseError::GroupSubscribedToTopic);

// Consumer groups on the consumer protocol (KIP-848).
pub const FENCED_MEMBER_EPOCH: i16 = code(ResponseError::FencedMemberEpoch);
pub const UNRELEASED_INSTANCE_ID: i16 = code(ResponseError::UnreleasedInstanceId);
pub const UNSUPPORTED_ASSIGNOR: i16 = code(ResponseError::UnsupportedAssignor);
pub const STALE_MEMBER_EPOCH: i16 = code(ResponseError::StaleMemberEpoch);
pub const INVALID_REGULAR_EXPRESSION: i16 = code(ResponseError::InvalidRegularExpression);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_kafka_protocol_table() {
        assert_eq!(CORRUPT_MESSAGE, 2);
        assert_eq!(UNKNOWN_TOPIC_OR_PARTITION, 3);
        assert_eq!(MESSAGE_TOO_LARGE, 10);
        assert_eq!(INVALID_TOPIC_EXCEPTION, 17);
        assert_eq!(UNSUPPORTED_VERSION, 35);
        assert_eq!(TOPIC_ALREADY_EXISTS, 36);
        assert_eq!(LEADER_NOT_AVAILABLE, 5);
        assert_eq!(NOT_LEADER_OR_FOLLOWER, 6);
        assert_eq!(NOT_ENOUGH_REPLICAS, 19);
        assert_eq!(NOT_ENOUGH_REPLICAS_AFTER_APPEND, 20);
        assert_eq!(FENCED_LEADER_EPOCH, 74);
        assert_eq!(UNKNOWN_LEADER_EPOCH, 75);
    }
}
