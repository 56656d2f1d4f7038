//! The broker's one error type, and its mapping to gRPC statuses.
//!
//! Every failure a client can cause or observe is a structured variant here;
//! `impl From<Error> for tonic::Status` (in `server::status`) is the single
//! place that picks the gRPC code and the Kafka-style `runnel-error-code`.

use std::path::PathBuf;

/// Result alias used across the broker crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside the broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ------------------------------------------------------------ storage
    /// An I/O error, with what we were doing and on which file.
    #[error("{context} ({path}): {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The filesystem holding `path` is full (ENOSPC) or over its quota
    /// (EDQUOT). Writes there fail until space comes back; reads work, and
    /// nothing needs restarting (`docs/storage.md`, "Full disk").
    #[error(
        "{condition} on the filesystem of {dir} while {context} {path}: this broker refuses \
         writes there until space is freed (reads still work, and writes resume by \
         themselves); free disk space or lower retention.bytes / retention.ms",
        dir = path.parent().unwrap_or(path).display(),
        path = path.display(),
        condition = storage_full_condition(source)
    )]
    StorageFull {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A produced batch failed validation (CRC, magic, lengths).
    #[error(
        "corrupt record batch for {topic_partition} at byte {position} of the request: {source}"
    )]
    CorruptBatch {
        topic_partition: String,
        position: usize,
        #[source]
        source: runnel_proto::Error,
    },
    /// A produced record's CreateTime is too far from the broker's clock
    /// (`message.timestamp.before.max.ms` / `after.max.ms`).
    #[error(
        "record {index} of a batch for {topic_partition} has timestamp {timestamp}, {distance} ms \
         {direction} the broker's clock ({now}), beyond {config}={limit}; fix the producer's \
         clock or timestamps, or raise the topic's {config}"
    )]
    InvalidTimestamp {
        topic_partition: String,
        /// Record position in its batch.
        index: i32,
        timestamp: i64,
        now: i64,
        distance: i64,
        direction: &'static str,
        config: &'static str,
        limit: i64,
    },
    /// A produced batch is larger than the topic's `max.message.bytes`.
    #[error(
        "record batch of {size} bytes for {topic_partition} exceeds max.message.bytes={max}; \
         send smaller batches or raise the topic's max.message.bytes"
    )]
    MessageTooLarge {
        topic_partition: String,
        size: usize,
        max: usize,
    },
    /// A fetch or lookup asked for an offset outside `[log_start_offset, log_end_offset]`.
    #[error(
        "offset {offset} is out of range for {topic_partition}: valid offsets are \
         {log_start_offset}..={log_end_offset}"
    )]
    OffsetOutOfRange {
        topic_partition: String,
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// On-disk state we cannot make sense of and cannot repair by ourselves.
    #[error("log storage error in {path}: {reason}")]
    Storage { path: PathBuf, reason: String },

    // ------------------------------------------------------------ metadata
    /// The embedded or external metadata store failed.
    #[error("metadata store: {0}")]
    Metadata(String),
    /// The metadata store did not answer in time or could not be reached
    /// (etcd down, without quorum, or cut off): the operation did not
    /// happen, and may succeed if retried once the store is back.
    #[error("metadata store unavailable: {0}")]
    MetadataUnavailable(String),
    /// A metadata lease (etcd's) expired, was revoked or never existed: the
    /// keys attached to it are deleted by the store.
    #[error(
        "metadata lease {lease:x} has expired or was revoked, and the keys attached to it are deleted; grant a new lease and write them again"
    )]
    LeaseExpired { lease: i64 },
    /// Another live broker holds `brokers/<id>` under its lease: two brokers
    /// must never share an id.
    #[error(
        "broker id {broker_id} is already registered by {host}:{port}; give this broker \
         another broker.id, or stop the other one (its registration ends when its lease does)"
    )]
    BrokerIdInUse {
        broker_id: i32,
        host: String,
        port: u16,
    },

    // ------------------------------------------------------------ requests
    /// The topic name breaks Kafka's naming rules.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopic { name: String, reason: String },
    /// No such topic.
    #[error("unknown topic {0:?}; create it first (runnel topic create {0})")]
    UnknownTopic(String),
    /// The topic exists but has no such partition.
    #[error(
        "topic {topic:?} has {partitions} partition(s) (0..{partitions}); partition {partition} does not exist"
    )]
    UnknownPartition {
        topic: String,
        partition: u32,
        partitions: u32,
    },
    /// Creating a topic that already exists.
    #[error("topic {0:?} already exists")]
    TopicAlreadyExists(String),
    /// A partition count that cannot be applied.
    #[error("invalid partition count for topic {topic:?}: {reason}")]
    InvalidPartitions { topic: String, reason: String },
    /// A replication factor that cannot be satisfied.
    #[error("invalid replication factor for topic {topic:?}: {reason}")]
    InvalidReplicationFactor { topic: String, reason: String },
    /// A config key or value that is not accepted.
    #[error("invalid config {key}={value:?}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    /// A request that is malformed in some other way.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The principal may not do this (ACLs; see `crate::auth`).
    #[error(
        "{principal} is not allowed to {operation} {resource_type} {name:?}; an administrator can grant it with `runnel acl add --allow {principal} --operation {operation} --{resource_type} {name}`"
    )]
    AuthorizationFailed {
        principal: String,
        operation: crate::auth::acl::Operation,
        resource_type: crate::auth::acl::ResourceType,
        name: String,
    },
    /// Credentials were presented and are not valid.
    #[error("authentication failed: {0}")]
    AuthenticationFailed(String),
    /// acks=all with fewer in-sync replicas than `min.insync.replicas`.
    #[error(
        "not enough in-sync replicas for {topic_partition}: {isr} in sync, min.insync.replicas={min}; \
         nothing was written. Wait for replicas to catch up, or produce with acks=1"
    )]
    NotEnoughReplicas {
        topic_partition: String,
        isr: usize,
        min: u32,
    },
    /// acks=all: the records were appended but the ISR shrank below
    /// `min.insync.replicas` before they were replicated.
    #[error(
        "{topic_partition}: records were written to the leader but the in-sync replicas fell to \
         {isr} (min.insync.replicas={min}) before they were replicated; they may or may not \
         survive a leader failure. Retry (an idempotent producer will not duplicate them)"
    )]
    NotEnoughReplicasAfterAppend {
        topic_partition: String,
        isr: usize,
        min: u32,
    },
    /// This broker does not lead the partition (or cannot prove it does).
    #[error(
        "this broker ({broker_id}) is not the leader of {topic_partition}: {reason}; refresh metadata and retry on the leader"
    )]
    NotLeaderOrFollower {
        topic_partition: String,
        broker_id: i32,
        reason: String,
    },
    /// The partition has no live leader right now.
    #[error(
        "{topic_partition} has no leader right now (its in-sync replicas are offline); retry shortly"
    )]
    LeaderNotAvailable { topic_partition: String },
    /// A request names an older leader epoch than the partition's.
    #[error(
        "{topic_partition}: leader epoch {requested} is older than the current epoch {current}"
    )]
    FencedLeaderEpoch {
        topic_partition: String,
        requested: i32,
        current: i32,
    },
    /// A request names a newer leader epoch than this broker knows yet.
    #[error(
        "{topic_partition}: leader epoch {requested} is newer than this broker's {current}; it has not seen the change yet, retry"
    )]
    UnknownLeaderEpoch {
        topic_partition: String,
        requested: i32,
        current: i32,
    },
    /// acks=all replication did not finish within the request's timeout.
    #[error(
        "{topic_partition}: records were written to the leader but not replicated to every in-sync replica within {timeout_ms} ms"
    )]
    RequestTimedOut {
        topic_partition: String,
        timeout_ms: u64,
    },
    /// Idempotent producer: a sequence number that does not follow the last
    /// one written for this producer.
    #[error(
        "{topic_partition}: producer {producer_id} sent sequence {sequence}, expected {expected}; records were lost or reordered between producer and broker"
    )]
    OutOfOrderSequence {
        topic_partition: String,
        producer_id: i64,
        sequence: i32,
        expected: i32,
    },
    /// Idempotent producer: an epoch older than the one the partition has
    /// seen for this producer id (a zombie producer).
    #[error(
        "{topic_partition}: producer {producer_id} epoch {epoch} is older than the current epoch {current}"
    )]
    InvalidProducerEpoch {
        topic_partition: String,
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    /// A partition reassignment names brokers it cannot use.
    #[error("invalid replica assignment for {topic_partition}: {reason}")]
    InvalidReplicaAssignment {
        topic_partition: String,
        reason: String,
    },
    /// Cancelling a reassignment that is not running.
    #[error("no reassignment is in progress for {0}; nothing to cancel")]
    NoReassignmentInProgress(String),
    /// A group id that cannot be stored.
    #[error("invalid group id {group:?}: {reason}")]
    InvalidGroupId { group: String, reason: String },
    /// This broker does not coordinate the group.
    #[error(
        "this broker does not coordinate group {group:?} ({reason}); find its coordinator again"
    )]
    NotCoordinator { group: String, reason: String },
    /// A member id the coordinator does not know (expired, or the group
    /// moved to another coordinator): join again.
    #[error(
        "member {member:?} is not in group {group:?} (its session expired or the group moved); join again"
    )]
    UnknownMemberId { group: String, member: String },
    /// A request from another generation than the member's current one.
    #[error(
        "generation {generation} of member {member:?} in group {group:?} is stale (current {current}); the group rebalanced: a Runnel consumer learns its new assignment from its next heartbeat, a Kafka consumer must rejoin (JoinGroup)"
    )]
    IllegalGeneration {
        group: String,
        member: String,
        generation: i32,
        current: i32,
    },
    /// An operation that needs a group without members.
    #[error("group {group:?} has {members} active member(s); stop its consumers first")]
    NonEmptyGroup { group: String, members: usize },
    /// No such group.
    #[error("group {0:?} does not exist")]
    GroupIdNotFound(String),
    /// Kafka's classic protocol: the group is rebalancing, and the member
    /// must send JoinGroup to be part of the next generation.
    #[error(
        "group {group:?} is rebalancing; rejoin it (JoinGroup) to get the next generation's assignment"
    )]
    RebalanceInProgress { group: String },
    /// KIP-394: a JoinGroup (v4+) without a member id is given one and must
    /// be sent again with it; only then does the member count.
    #[error(
        "group {group:?} requires a known member id (KIP-394): send JoinGroup again with member id {member:?}"
    )]
    MemberIdRequired { group: String, member: String },
    /// Kafka's classic protocol: a member whose protocol type or protocols
    /// the group cannot use, or a group already run by the other protocol.
    #[error("group {group:?} cannot take this member: {reason}")]
    InconsistentGroupProtocol { group: String, reason: String },
    /// Static membership: another consumer joined with this
    /// `group.instance.id` and took the slot over.
    #[error(
        "group.instance.id {instance:?} in group {group:?} now belongs to member {current:?}, not {member:?}: \
         another consumer joined with the same group.instance.id; give every consumer its own"
    )]
    FencedInstanceId {
        group: String,
        instance: String,
        member: String,
        current: String,
    },
    /// The group's in-memory state is gone (deleted, or this broker lost
    /// its claim) while the request was in flight.
    #[error(
        "the coordinator of group {group:?} is not available ({reason}); find its coordinator again and retry"
    )]
    CoordinatorNotAvailable { group: String, reason: String },
    /// A session timeout outside what the coordinator accepts.
    #[error(
        "session timeout {timeout_ms} ms for group {group:?} is outside {min_ms}..={max_ms} ms; set session.timeout.ms within it"
    )]
    InvalidSessionTimeout {
        group: String,
        timeout_ms: u64,
        min_ms: u64,
        max_ms: u64,
    },
    /// The broker is shutting down or not ready yet.
    #[error("broker not available: {0}")]
    NotAvailable(String),
}

impl Error {
    /// A store failure as the group coordinator reports it: like Kafka's,
    /// which answers COORDINATOR_NOT_AVAILABLE while it cannot read or write
    /// the group's state, so clients find the coordinator again and retry.
    pub fn for_group(self, group: &str) -> Error {
        match self {
            Error::MetadataUnavailable(reason) => Error::CoordinatorNotAvailable {
                group: group.to_owned(),
                reason: format!("metadata store unavailable: {reason}"),
            },
            e => e,
        }
    }

    /// Shorthand for [`Error::Io`], or [`Error::StorageFull`] when the
    /// filesystem is out of space or quota: that one condition is common,
    /// temporary and the operator's to fix, so it gets its own message.
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if is_storage_full(&source) {
            return Error::StorageFull {
                context,
                path,
                source,
            };
        }
        Error::Io {
            context,
            path,
            source,
        }
    }

    /// Whether this is a full (or over-quota) filesystem.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, Error::StorageFull { .. })
    }
}

/// ENOSPC or EDQUOT.
pub fn is_storage_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

fn storage_full_condition(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::QuotaExceeded {
        "disk quota exceeded"
    } else {
        "no space left on device"
    }
}
