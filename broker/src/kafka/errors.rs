//! Runnel's errors as Kafka error codes, so Kafka clients retry, refresh
//! metadata and fail over exactly as they do against Apache Kafka.
//!
//! Runnel's own codes ([`ErrorCode`], in every per-partition result of the
//! shared operations) carry Kafka's names but not Kafka's numbers; this is
//! the one table between the two.

use kafka_protocol::ResponseError as Kafka;
use runnel_proto::v1::{self, ErrorCode};

use crate::Error;

/// Kafka's code for one of Runnel's.
pub fn kafka_code(code: ErrorCode) -> i16 {
    let kafka = match code {
        ErrorCode::None => return 0,
        ErrorCode::UnknownServerError => Kafka::UnknownServerError,
        ErrorCode::UnknownTopicOrPartition => Kafka::UnknownTopicOrPartition,
        ErrorCode::OffsetOutOfRange => Kafka::OffsetOutOfRange,
        ErrorCode::CorruptMessage => Kafka::CorruptMessage,
        ErrorCode::MessageTooLarge => Kafka::MessageTooLarge,
        ErrorCode::NotLeaderOrFollower => Kafka::NotLeaderOrFollower,
        ErrorCode::RequestTimedOut => Kafka::RequestTimedOut,
        ErrorCode::NotEnoughReplicas => Kafka::NotEnoughReplicas,
        ErrorCode::NotEnoughReplicasAfterAppend => Kafka::NotEnoughReplicasAfterAppend,
        ErrorCode::InvalidTopic => Kafka::InvalidTopicException,
        ErrorCode::TopicAlreadyExists => Kafka::TopicAlreadyExists,
        ErrorCode::InvalidPartitions => Kafka::InvalidPartitions,
        ErrorCode::InvalidReplicationFactor => Kafka::InvalidReplicationFactor,
        ErrorCode::InvalidConfig => Kafka::InvalidConfig,
        ErrorCode::InvalidRequest => Kafka::InvalidRequest,
        ErrorCode::KafkaStorageError => Kafka::KafkaStorageError,
        ErrorCode::FencedLeaderEpoch => Kafka::FencedLeaderEpoch,
        ErrorCode::UnknownLeaderEpoch => Kafka::UnknownLeaderEpoch,
        ErrorCode::DuplicateSequenceNumber => Kafka::DuplicateSequenceNumber,
        ErrorCode::OutOfOrderSequenceNumber => Kafka::OutOfOrderSequenceNumber,
        ErrorCode::InvalidProducerEpoch => Kafka::InvalidProducerEpoch,
        ErrorCode::UnknownProducerId => Kafka::UnknownProducerId,
        ErrorCode::LeaderNotAvailable => Kafka::LeaderNotAvailable,
        // A broker that is starting or stopping: Kafka clients retry
        // BROKER_NOT_AVAILABLE only for some requests; NOT_LEADER makes
        // every client refresh metadata and retry, which is what we want.
        ErrorCode::BrokerNotAvailable => Kafka::NotLeaderOrFollower,
        ErrorCode::CoordinatorNotAvailable => Kafka::CoordinatorNotAvailable,
        ErrorCode::NotCoordinator => Kafka::NotCoordinator,
        ErrorCode::IllegalGeneration => Kafka::IllegalGeneration,
        ErrorCode::UnknownMemberId => Kafka::UnknownMemberId,
        ErrorCode::RebalanceInProgress => Kafka::RebalanceInProgress,
        ErrorCode::NonEmptyGroup => Kafka::NonEmptyGroup,
        ErrorCode::GroupIdNotFound => Kafka::GroupIdNotFound,
        ErrorCode::InvalidTimestamp => Kafka::InvalidTimestamp,
        ErrorCode::UnsupportedCompressionType => Kafka::UnsupportedCompressionType,
        ErrorCode::PolicyViolation => Kafka::PolicyViolation,
        ErrorCode::InvalidReplicaAssignment => Kafka::InvalidReplicaAssignment,
        ErrorCode::NoReassignmentInProgress => Kafka::NoReassignmentInProgress,
        ErrorCode::InvalidGroupId => Kafka::InvalidGroupId,
        ErrorCode::TopicAuthorizationFailed => Kafka::TopicAuthorizationFailed,
        ErrorCode::GroupAuthorizationFailed => Kafka::GroupAuthorizationFailed,
        ErrorCode::ClusterAuthorizationFailed => Kafka::ClusterAuthorizationFailed,
        ErrorCode::SaslAuthenticationFailed => Kafka::SaslAuthenticationFailed,
        ErrorCode::MemberIdRequired => Kafka::MemberIdRequired,
        ErrorCode::InconsistentGroupProtocol => Kafka::InconsistentGroupProtocol,
        ErrorCode::FencedInstanceId => Kafka::FencedInstanceId,
        ErrorCode::InvalidSessionTimeout => Kafka::InvalidSessionTimeout,
    };
    kafka.code()
}

/// Kafka's code for a per-partition result (`None` = success).
pub fn code_of(error: Option<&v1::Error>) -> i16 {
    error.map_or(0, |e| {
        kafka_code(ErrorCode::try_from(e.code).unwrap_or(ErrorCode::UnknownServerError))
    })
}

/// Kafka's code for a broker error.
pub fn code(error: &Error) -> i16 {
    kafka_code(error.error_code())
}

/// Kafka's UNSUPPORTED_VERSION.
pub const UNSUPPORTED_VERSION: i16 = Kafka::UnsupportedVersion.code();
/// Kafka's UNKNOWN_TOPIC_ID.
pub const UNKNOWN_TOPIC_ID: i16 = Kafka::UnknownTopicId.code();
/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = Kafka::UnknownTopicOrPartition.code();
/// Kafka's INVALID_REQUEST.
pub const INVALID_REQUEST: i16 = Kafka::InvalidRequest.code();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_clients_act_on_have_kafkas_numbers() {
        assert_eq!(kafka_code(ErrorCode::None), 0);
        assert_eq!(kafka_code(ErrorCode::NotLeaderOrFollower), 6);
        assert_eq!(kafka_code(ErrorCode::UnknownTopicOrPartition), 3);
        assert_eq!(kafka_code(ErrorCode::OffsetOutOfRange), 1);
        assert_eq!(kafka_code(ErrorCode::NotEnoughReplicas), 19);
        assert_eq!(kafka_code(ErrorCode::FencedLeaderEpoch), 74);
        assert_eq!(kafka_code(ErrorCode::TopicAuthorizationFailed), 29);
        assert_eq!(kafka_code(ErrorCode::NotCoordinator), 16);
        assert_eq!(kafka_code(ErrorCode::OutOfOrderSequenceNumber), 45);
        assert_eq!(UNSUPPORTED_VERSION, 35);
        assert_eq!(code(&Error::UnknownTopic("t".into())), 3);
    }
}
