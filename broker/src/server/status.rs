//! The one mapping from [`crate::Error`] to gRPC statuses and Kafka-style
//! error codes, so every client sees a precise code and an actionable message.

use runnel_proto::error_code::METADATA_KEY;
use runnel_proto::v1::{self, ErrorCode};
use tonic::{Code, Status};

use crate::Error;
use crate::auth::acl::ResourceType;

impl Error {
    /// The Kafka-style code for this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Error::Io { .. } | Error::StorageFull { .. } | Error::Storage { .. } => {
                ErrorCode::KafkaStorageError
            }
            Error::CorruptBatch { .. } => ErrorCode::CorruptMessage,
            Error::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            Error::InvalidTimestamp { .. } => ErrorCode::InvalidTimestamp,
            Error::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            Error::Metadata(_) | Error::LeaseExpired { .. } | Error::BrokerIdInUse { .. } => {
                ErrorCode::UnknownServerError
            }
            // Kafka's answer for "could not complete in time"; every Kafka
            // client retries it. (The group coordinator says
            // COORDINATOR_NOT_AVAILABLE instead: `Error::for_group`.)
            Error::MetadataUnavailable(_) => ErrorCode::RequestTimedOut,
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
            Error::RebalanceInProgress { .. } => ErrorCode::RebalanceInProgress,
            Error::MemberIdRequired { .. } => ErrorCode::MemberIdRequired,
            Error::InconsistentGroupProtocol { .. } => ErrorCode::InconsistentGroupProtocol,
            Error::FencedInstanceId { .. } => ErrorCode::FencedInstanceId,
            Error::CoordinatorNotAvailable { .. } => ErrorCode::CoordinatorNotAvailable,
            Error::InvalidSessionTimeout { .. } => ErrorCode::InvalidSessionTimeout,
            Error::AuthorizationFailed { resource_type, .. } => match resource_type {
                ResourceType::Topic => ErrorCode::TopicAuthorizationFailed,
                ResourceType::Group => ErrorCode::GroupAuthorizationFailed,
                ResourceType::Cluster => ErrorCode::ClusterAuthorizationFailed,
            },
            Error::AuthenticationFailed(_) => ErrorCode::SaslAuthenticationFailed,
        }
    }

    /// The gRPC code for this error.
    pub fn grpc_code(&self) -> Code {
        match self {
            Error::Io { .. } | Error::Storage { .. } | Error::Metadata(_) => Code::Internal,
            Error::LeaseExpired { .. } | Error::MetadataUnavailable(_) => Code::Unavailable,
            Error::CorruptBatch { .. }
            | Error::InvalidTimestamp { .. }
            | Error::InvalidTopic { .. }
            | Error::InvalidConfig { .. }
            | Error::InvalidRequest(_)
            | Error::InvalidPartitions { .. } => Code::InvalidArgument,
            // gRPC's own words: "perhaps the entire file system is out of
            // space". Clients retry by the KAFKA_STORAGE_ERROR code.
            Error::MessageTooLarge { .. } | Error::StorageFull { .. } => Code::ResourceExhausted,
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
            // Retry at a higher level: the whole join/sync sequence.
            Error::RebalanceInProgress { .. } => Code::Aborted,
            Error::MemberIdRequired { .. }
            | Error::InconsistentGroupProtocol { .. }
            | Error::FencedInstanceId { .. } => Code::FailedPrecondition,
            Error::CoordinatorNotAvailable { .. } => Code::Unavailable,
            Error::InvalidSessionTimeout { .. } => Code::InvalidArgument,
            Error::AuthorizationFailed { .. } => Code::PermissionDenied,
            Error::AuthenticationFailed(_) => Code::Unauthenticated,
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
        let mut status = Status::new(err.grpc_code(), bounded(err.to_string()));
        if let Ok(value) = err.error_code().as_str_name().parse() {
            status.metadata_mut().insert(METADATA_KEY, value);
        }
        status
    }
}

/// Longest status message sent. It travels as the `grpc-message` header
/// (percent-encoded, so up to three times longer), and clients refuse
/// header lists over 16 KiB by default (hyper's `max_header_list_size`)
/// by closing the whole connection: a message echoing a megabyte-long
/// topic name or config value must not do that.
const MAX_MESSAGE_BYTES: usize = 4096;

/// `message` with its middle elided if it is too long: the start names
/// what was wrong and the end says why, so both are kept.
fn bounded(message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let keep = MAX_MESSAGE_BYTES / 2 - 32;
    let mut head = keep;
    while !message.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = message.len() - keep;
    while !message.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}…[{} bytes elided]…{}",
        &message[..head],
        tail - head,
        &message[tail..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_keep_their_start_and_end() {
        let name = format!("{}é", "x".repeat(1 << 20));
        let status = Status::from(Error::InvalidTopic {
            name,
            reason: "it is too long".into(),
        });
        let message = status.message();
        assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len());
        assert!(message.starts_with("invalid topic name \"xxx"), "{message}");
        assert!(message.ends_with("xé\": it is too long"), "{message}");
        assert!(message.contains("bytes elided"), "{message}");
        assert_eq!(
            Status::from(Error::UnknownTopic("orders".into())).message(),
            Error::UnknownTopic("orders".into()).to_string()
        );
    }

    #[test]
    fn a_full_disk_is_a_storage_error_naming_the_directory() {
        for (errno, condition) in [
            (ENOSPC, "no space left on device"),
            (EDQUOT, "disk quota exceeded"),
        ] {
            let err = Error::io(
                "appending to segment",
                "/data/orders-0/00000000000000000000.log",
                std::io::Error::from_raw_os_error(errno),
            );
            assert!(err.is_storage_full(), "{err:?}");
            let status = Status::from(err);
            assert_eq!(status.code(), Code::ResourceExhausted);
            assert_eq!(
                runnel_proto::error_code::from_status(&status),
                Some(ErrorCode::KafkaStorageError)
            );
            let message = status.message();
            assert!(
                message.starts_with(&format!("{condition} on the filesystem of /data/orders-0 ")),
                "{message}"
            );
            assert!(message.contains("00000000000000000000.log"), "{message}");
        }
        // Other I/O errors stay what they were.
        let other = Error::io(
            "reading segment",
            "/data/x",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert!(matches!(other, Error::Io { .. }));
        assert_eq!(other.error_code(), ErrorCode::KafkaStorageError);
    }

    /// Linux errno values (x86-64 and aarch64 agree).
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;

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
