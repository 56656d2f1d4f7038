//! The one mapping from [`crate::Error`] to gRPC statuses and Kafka-style
//! error codes, so every client sees a precise code and an actionable message.

use runnel_proto::error_code::METADATA_KEY;
use runnel_proto::v1::{self, ErrorCode};
use tonic::{Code, Status};

use crate::Error;

impl Error {
    /// The Kafka-style code for this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Error::Io { .. } | Error::Storage { .. } => ErrorCode::KafkaStorageError,
            Error::CorruptBatch { source, .. } => match source {
                runnel_proto::Error::UnsupportedCompression(_) => {
                    ErrorCode::UnsupportedCompressionType
                }
                _ => ErrorCode::CorruptMessage,
            },
            Error::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            Error::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            Error::Metadata(_) | Error::LeaseExpired { .. } | Error::BrokerIdInUse { .. } => {
                ErrorCode::UnknownServerError
            }
            Error::InvalidTopic { .. } => ErrorCode::InvalidTopic,
            Error::UnknownTopic(_) | Error::UnknownPartition { .. } => {
                ErrorCode::UnknownTopicOrPartition
            }
            Error::TopicAlreadyExists(_) => ErrorCode::TopicAlreadyExists,
            Error::InvalidPartitions { .. } => ErrorCode::InvalidPartitions,
            Error::InvalidReplicationFactor { .. } => ErrorCode::InvalidReplicationFactor,
            Error::InvalidConfig { .. } => ErrorCode::InvalidConfig,
            Error::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Error::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
            Error::NotAvailable(_) => ErrorCode::BrokerNotAvailable,
            Error::NotEnoughReplicasAfterAppend { .. } => ErrorCode::NotEnoughReplicasAfterAppend,
            Error::NotLeaderOrFollower { .. } => ErrorCode::NotLeaderOrFollower,
            Error::LeaderNotAvailable { .. } => ErrorCode::LeaderNotAvailable,
            Error::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
            Error::UnknownLeaderEpoch { .. } => ErrorCode::UnknownLeaderEpoch,
            Error::RequestTimedOut { .. } => ErrorCode::RequestTimedOut,
            Error::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
            Error::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
            Error::InvalidReplicaAssignment { .. } => ErrorCode::InvalidReplicaAssignment,
            Error::NoReassignmentInProgress(_) => ErrorCode::NoReassignmentInProgress,
            Error::InvalidGroupId { .. } => ErrorCode::InvalidGroupId,
            Error::NotCoordinator { .. } => ErrorCode::NotCoordinator,
            Error::UnknownMemberId { .. } => ErrorCode::UnknownMemberId,
            Error::IllegalGeneration { .. } => ErrorCode::IllegalGeneration,
            Error::NonEmptyGroup { .. } => ErrorCode::NonEmptyGroup,
            Error::GroupIdNotFound(_) => ErrorCode::GroupIdNotFound,
        }
    }

    /// The gRPC code for this error.
    pub fn grpc_code(&self) -> Code {
        match self {
            Error::Io { .. } | Error::Storage { .. } | Error::Metadata(_) => Code::Internal,
            Error::LeaseExpired { .. } => Code::Unavailable,
            Error::CorruptBatch { .. }
            | Error::InvalidTopic { .. }
            | Error::InvalidConfig { .. }
            | Error::InvalidRequest(_)
            | Error::InvalidPartitions { .. } => Code::InvalidArgument,
            Error::MessageTooLarge { .. } => Code::ResourceExhausted,
            Error::OffsetOutOfRange { .. } => Code::OutOfRange,
            Error::UnknownTopic(_) | Error::UnknownPartition { .. } => Code::NotFound,
            Error::TopicAlreadyExists(_) | Error::BrokerIdInUse { .. } => Code::AlreadyExists,
            Error::InvalidReplicationFactor { .. } => Code::FailedPrecondition,
            Error::NotEnoughReplicas { .. }
            | Error::NotEnoughReplicasAfterAppend { .. }
            | Error::NotAvailable(_)
            | Error::NotLeaderOrFollower { .. }
            | Error::LeaderNotAvailable { .. }
            | Error::UnknownLeaderEpoch { .. } => Code::Unavailable,
            Error::FencedLeaderEpoch { .. } | Error::InvalidProducerEpoch { .. } => {
                Code::FailedPrecondition
            }
            Error::RequestTimedOut { .. } => Code::DeadlineExceeded,
            Error::OutOfOrderSequence { .. } => Code::FailedPrecondition,
            Error::InvalidReplicaAssignment { .. } => Code::InvalidArgument,
            Error::NoReassignmentInProgress(_) => Code::FailedPrecondition,
            Error::InvalidGroupId { .. } => Code::InvalidArgument,
            Error::NotCoordinator { .. } => Code::Unavailable,
            Error::UnknownMemberId { .. }
            | Error::IllegalGeneration { .. }
            | Error::NonEmptyGroup { .. } => Code::FailedPrecondition,
            Error::GroupIdNotFound(_) => Code::NotFound,
        }
    }

    /// The per-partition form, for results inside a successful response.
    pub fn to_proto(&self) -> v1::Error {
        v1::Error {
            code: self.error_code() as i32,
            message: self.to_string(),
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let mut status = Status::new(err.grpc_code(), err.to_string());
        if let Ok(value) = err.error_code().as_str_name().parse() {
            status.metadata_mut().insert(METADATA_KEY, value);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_code_and_message() {
        let status = Status::from(Error::UnknownTopic("orders".into()));
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().contains("orders"));
        assert_eq!(
            runnel_proto::error_code::from_status(&status),
            Some(ErrorCode::UnknownTopicOrPartition)
        );
    }
}
