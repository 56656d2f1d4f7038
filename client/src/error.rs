//! The crate's one error type.
//!
//! Every variant renders as one line that says what went wrong *and* what to
//! do about it, because these strings end up verbatim on a terminal
//! (`runnel` prints `error: {err}`) and in test failures. The structured
//! fields stay available for code: [`Error::code`] gives the Kafka-style
//! [`ErrorCode`], [`Error::grpc_code`] the gRPC status code, and
//! [`Error::is_retriable`] says whether trying again can help.
//!
//! `Error` is `Clone` because one failed produce request fails every record
//! in it: each record's delivery future gets its own copy.

use std::fmt;
use std::time::Duration;

use runnel_proto::v1::ErrorCode;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to Runnel.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No connection could be opened to a broker.
    #[error(
        "could not connect to {address}: {reason}; is a broker running there? \
         (check the bootstrap address)"
    )]
    Connect {
        /// `host:port` that was tried.
        address: String,
        /// What the transport said (connection refused, timed out, ...).
        reason: String,
    },

    /// The connection broke during a call.
    #[error("{operation} request to {address} failed: {reason}; the broker may have stopped")]
    Transport {
        /// gRPC method, e.g. `Produce`.
        operation: &'static str,
        /// `host:port` of the broker.
        address: String,
        /// What the transport said.
        reason: String,
    },

    /// No answer within the request timeout.
    #[error(
        "{operation} request to {address} timed out after {}; the broker may be \
         overloaded (raise the request timeout to wait longer)",
        humantime_secs(*timeout)
    )]
    Timeout {
        /// gRPC method, e.g. `Produce`.
        operation: &'static str,
        /// `host:port` of the broker.
        address: String,
        /// The timeout that expired.
        timeout: Duration,
    },

    /// The broker rejected a whole call with a gRPC status.
    #[error("{}", ServerLine { code: *code, grpc_code: *grpc_code, message })]
    Server {
        /// gRPC method, e.g. `CreateTopics`.
        operation: &'static str,
        /// The gRPC status code (`InvalidArgument`, `NotFound`, ...).
        grpc_code: tonic::Code,
        /// The Kafka-style code from the `runnel-error-code` metadata, if
        /// the broker sent one.
        code: Option<ErrorCode>,
        /// The broker's message; it names the offending topic/partition.
        message: String,
    },

    /// The broker rejected one partition of a call (the per-partition
    /// `Error` of a Produce/Fetch/ListOffsets result).
    #[error("{topic}-{partition}: {}", ServerLine { code: Some(*code), grpc_code: tonic::Code::Ok, message })]
    Partition {
        /// Topic of the failed partition.
        topic: String,
        /// The failed partition.
        partition: u32,
        /// Why it failed.
        code: ErrorCode,
        /// The broker's message.
        message: String,
    },

    /// A fetched record batch did not decode.
    #[error("corrupt record batch from {topic}-{partition}: {source}")]
    Codec {
        /// Topic the batch came from.
        topic: String,
        /// Partition the batch came from.
        partition: u32,
        /// What the codec rejected.
        #[source]
        source: runnel_proto::Error,
    },

    /// A configuration value is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A record is too large to ever be sent.
    #[error(
        "record of {size} bytes is larger than max_request_size ({max} bytes); \
         send smaller records or raise max_request_size"
    )]
    RecordTooLarge {
        /// Estimated encoded size of the record.
        size: usize,
        /// The producer's `max_request_size`.
        max: usize,
    },

    /// A consumer call named a partition it is not assigned.
    #[error("{topic}-{partition} is not assigned to this consumer; call assign() first")]
    NotAssigned {
        /// Topic asked for.
        topic: String,
        /// Partition asked for.
        partition: u32,
    },

    /// A consumer has no position for a partition and may not pick one.
    #[error(
        "{topic}-{partition} has no valid position{}; seek() to an offset or set \
         auto_offset_reset to earliest or latest",
        match offset { Some(o) => format!(" (offset {o} is out of range)"), None => String::new() }
    )]
    NoOffset {
        /// Topic of the partition.
        topic: String,
        /// The partition.
        partition: u32,
        /// The out-of-range offset the consumer was at, if any.
        offset: Option<i64>,
    },

    /// The producer was closed; no more records are accepted.
    #[error("the producer is closed")]
    Closed,

    /// `enable_idempotence` is on but the broker has no `InitProducerId`
    /// (an older broker).
    #[error(
        "the broker at {address} does not support the idempotent producer (InitProducerId \
         is unimplemented); upgrade the broker or set enable_idempotence=false \
         (runnel produce --idempotence false)"
    )]
    IdempotenceUnsupported {
        /// `host:port` of the broker that answered UNIMPLEMENTED.
        address: String,
    },

    /// A key or value could not be turned into bytes (see
    /// [`serialization`](crate::serialization)).
    #[error("cannot serialize {format}: {message}")]
    Serialize {
        /// The format, e.g. `JSON`.
        format: &'static str,
        /// The serializer's complaint.
        message: String,
    },

    /// Record bytes are not a valid value of the expected format (see
    /// [`serialization`](crate::serialization)).
    #[error("cannot deserialize {format}: {message}")]
    Deserialize {
        /// The format, e.g. `UTF-8 string` or `JSON`.
        format: &'static str,
        /// What was wrong, with the position where the decoder says.
        message: String,
    },
}

impl Error {
    /// The Kafka-style error code, when the broker gave one (or the client
    /// detected the equivalent condition itself).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server { code, .. } => *code,
            Error::Partition { code, .. } => Some(*code),
            Error::Codec { .. } => Some(ErrorCode::CorruptMessage),
            Error::RecordTooLarge { .. } => Some(ErrorCode::MessageTooLarge),
            Error::Timeout { .. } => Some(ErrorCode::RequestTimedOut),
            Error::NoOffset {
                offset: Some(_), ..
            } => Some(ErrorCode::OffsetOutOfRange),
            _ => None,
        }
    }

    /// The gRPC status code of a call the broker answered with an error.
    pub fn grpc_code(&self) -> Option<tonic::Code> {
        match self {
            Error::Server { grpc_code, .. } => Some(*grpc_code),
            _ => None,
        }
    }

    /// Whether the same call may succeed if tried again (the broker or its
    /// leadership was unavailable, or it timed out).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Transport { .. } | Error::Timeout { .. } => true,
            _ => self.code().is_some_and(is_retriable_code),
        }
    }

    /// Whether the broker could not be reached or stopped answering (no
    /// connection, a broken connection, or gRPC `UNAVAILABLE`): the
    /// connection is dropped and another broker may be tried. A timeout is
    /// not included: the broker may still be working on the request.
    pub(crate) fn is_unreachable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Transport { .. } => true,
            Error::Server { grpc_code, .. } => *grpc_code == tonic::Code::Unavailable,
            _ => false,
        }
    }

    /// Build the error for a failed gRPC call to `address`.
    pub(crate) fn from_status(
        status: tonic::Status,
        operation: &'static str,
        address: &str,
    ) -> Self {
        let code = runnel_proto::error_code::from_status(&status);
        // A status the transport made up (the broker never answered) has no
        // runnel-error-code and code Unavailable/Unknown with a source error,
        // or Cancelled: hyper's "operation was canceled" when the connection
        // closes under a request (a broker shutting down). Runnel brokers
        // never answer Cancelled themselves.
        let transport = code.is_none()
            && (matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Cancelled
            ) || (status.code() == tonic::Code::Unknown
                && std::error::Error::source(&status).is_some()));
        if transport {
            let mut reason = status.message().to_owned();
            if let Some(source) = std::error::Error::source(&status) {
                let causes = chain(source);
                if !reason.contains(&causes) {
                    reason = if reason.is_empty() {
                        causes
                    } else {
                        format!("{reason}: {causes}")
                    };
                }
            }
            return Error::Transport {
                operation,
                address: address.to_owned(),
                reason,
            };
        }
        Error::Server {
            operation,
            grpc_code: status.code(),
            code,
            message: status.message().to_owned(),
        }
    }

    /// Build the error for a per-partition result, or `None` when it is a
    /// success.
    pub(crate) fn from_partition(
        topic: &str,
        partition: u32,
        error: Option<&runnel_proto::v1::Error>,
    ) -> Option<Self> {
        let error = error?;
        let code = ErrorCode::try_from(error.code).unwrap_or(ErrorCode::UnknownServerError);
        if code == ErrorCode::None {
            return None;
        }
        Some(Error::Partition {
            topic: topic.to_owned(),
            partition,
            code,
            message: error.message.clone(),
        })
    }

    pub(crate) fn connect(address: &str, err: &dyn std::error::Error) -> Self {
        Error::Connect {
            address: address.to_owned(),
            reason: chain(err),
        }
    }
}

/// Kafka's retriable errors that can occur on Runnel's API.
fn is_retriable_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotLeaderOrFollower
            | ErrorCode::LeaderNotAvailable
            | ErrorCode::BrokerNotAvailable
            | ErrorCode::RequestTimedOut
            | ErrorCode::NotEnoughReplicas
            | ErrorCode::NotEnoughReplicasAfterAppend
            | ErrorCode::UnknownLeaderEpoch
            | ErrorCode::KafkaStorageError
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::NotCoordinator
    )
}

/// What to do about an error code, appended after the broker's message.
fn hint(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::UnknownTopicOrPartition => "create it first or check the name and partition",
        ErrorCode::TopicAlreadyExists => "pick another name or delete the existing topic first",
        ErrorCode::MessageTooLarge => "send smaller records or raise the topic's max.message.bytes",
        ErrorCode::NotEnoughReplicas | ErrorCode::NotEnoughReplicasAfterAppend => {
            "fewer in-sync replicas than min.insync.replicas; retry later or use acks=1"
        }
        ErrorCode::NotLeaderOrFollower | ErrorCode::LeaderNotAvailable => {
            "partition leadership is moving; retry"
        }
        ErrorCode::RequestTimedOut => "the broker timed out; retry or raise the timeout",
        ErrorCode::CorruptMessage => "the record batch failed validation (client bug?)",
        ErrorCode::OffsetOutOfRange => "seek to an offset between the log start and end",
        ErrorCode::KafkaStorageError => "the broker has a disk problem; check its logs",
        _ => return None,
    })
}

/// Renders `message; hint`, falling back to the code's name when the broker
/// sent no message, and leaving the hint out when the message has advice.
struct ServerLine<'a> {
    code: Option<ErrorCode>,
    grpc_code: tonic::Code,
    message: &'a str,
}

impl fmt::Display for ServerLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.message.is_empty(), self.code) {
            (false, _) => f.write_str(self.message)?,
            (true, Some(code)) => f.write_str(code.as_str_name())?,
            (true, None) => write!(f, "broker answered {:?}", self.grpc_code)?,
        }
        // A message with a `;` already carries the broker's own advice.
        if let Some(hint) = self
            .code
            .and_then(hint)
            .filter(|_| !self.message.contains(';'))
        {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

/// `err: cause: cause` on one line, skipping causes that repeat the text
/// before them (tonic and hyper nest the same message several times).
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

fn humantime_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_is_one_actionable_line() {
        let mut status = tonic::Status::not_found("unknown topic \"x\"");
        status.metadata_mut().insert(
            runnel_proto::error_code::METADATA_KEY,
            "UNKNOWN_TOPIC_OR_PARTITION".parse().unwrap(),
        );
        let err = Error::from_status(status, "Produce", "127.0.0.1:9092");
        assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition));
        assert_eq!(err.grpc_code(), Some(tonic::Code::NotFound));
        assert_eq!(
            err.to_string(),
            "unknown topic \"x\"; create it first or check the name and partition"
        );
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn broker_advice_is_not_doubled() {
        let e = runnel_proto::v1::Error {
            code: ErrorCode::UnknownTopicOrPartition as i32,
            message: "unknown topic \"x\"; create it first (runnel topic create x)".into(),
        };
        let err = Error::from_partition("x", 0, Some(&e)).unwrap();
        assert_eq!(
            err.to_string(),
            "x-0: unknown topic \"x\"; create it first (runnel topic create x)"
        );
    }

    #[test]
    fn unavailable_without_code_is_transport() {
        let err = Error::from_status(
            tonic::Status::unavailable("connection reset"),
            "Fetch",
            "h:1",
        );
        assert!(matches!(err, Error::Transport { .. }), "{err:?}");
        assert!(err.is_retriable());
        assert!(
            err.to_string()
                .starts_with("Fetch request to h:1 failed: connection reset")
        );
    }

    #[test]
    fn cancelled_by_the_transport_is_unreachable() {
        let err = Error::from_status(
            tonic::Status::cancelled("operation was canceled"),
            "CreateTopics",
            "h:1",
        );
        assert!(matches!(err, Error::Transport { .. }), "{err:?}");
        assert!(err.is_unreachable() && err.is_retriable());
    }

    #[test]
    fn partition_error_names_the_partition() {
        let e = runnel_proto::v1::Error {
            code: ErrorCode::NotEnoughReplicas as i32,
            message: "ISR is 1, min.insync.replicas is 2".into(),
        };
        let err = Error::from_partition("t", 3, Some(&e)).unwrap();
        assert!(err.is_retriable());
        assert!(
            err.to_string()
                .starts_with("t-3: ISR is 1, min.insync.replicas is 2; ")
        );
        let ok = runnel_proto::v1::Error {
            code: 0,
            message: String::new(),
        };
        assert!(Error::from_partition("t", 3, Some(&ok)).is_none());
        assert!(Error::from_partition("t", 3, None).is_none());
    }

    #[test]
    fn empty_message_falls_back_to_code_name() {
        let e = runnel_proto::v1::Error {
            code: ErrorCode::InvalidTopic as i32,
            message: String::new(),
        };
        let err = Error::from_partition("t", 0, Some(&e)).unwrap();
        assert_eq!(err.to_string(), "t-0: INVALID_TOPIC");
    }
}
