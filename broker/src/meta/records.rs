//! The values stored under [`super::keys`]: versioned JSON documents, so a
//! newer broker can read what an older one wrote and `etcdctl get` shows
//! something a person can read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Current schema version written by this broker.
pub const VERSION: u32 = 1;

/// `/runnel/<cluster>/topics/<name>`: what the topic is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub version: u32,
    /// Random id, new for every creation: tells a re-created topic apart.
    pub topic_id: String,
    pub replication_factor: u32,
    /// Topic-level config overrides only (Kafka names); defaults come from
    /// the broker config so changing a broker default reaches old topics.
    pub configs: BTreeMap<String, String>,
    /// Replica broker ids per partition; its length is the partition count.
    /// During a reassignment: the old replicas followed by the new ones.
    pub assignment: Vec<Vec<i32>>,
    /// Partition reassignments in progress, by partition.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reassignments: BTreeMap<u32, Reassignment>,
}

/// A partition moving to new replicas (Kafka's `adding`/`removing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    /// Where the partition is going, preferred leader first.
    pub target: Vec<i32>,
    /// Where it was, for a cancel.
    pub original: Vec<i32>,
}

impl TopicRecord {
    pub fn partitions(&self) -> u32 {
        self.assignment.len() as u32
    }
}

/// `/runnel/<cluster>/topics/<name>/partitions/<p>/state`: who leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub version: u32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
}

/// `/runnel/<cluster>/brokers/<id>`: a live broker and where to reach it.
/// Written under the broker's lease ([`super::registration`]), so it exists
/// exactly as long as the broker keeps the lease alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRecord {
    pub version: u32,
    /// Kafka's `broker.id`; replica assignments refer to it.
    pub broker_id: i32,
    /// Advertised host clients and other brokers connect to.
    pub host: String,
    /// Advertised gRPC port.
    pub port: u16,
    /// Kafka's `broker.rack`, for rack-aware replica placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// Port of /healthz, /readyz and /metrics, if served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u16>,
    /// Advertised Kafka-protocol listener, when it is not `host:port`
    /// (a Kafka-only port); Kafka Metadata returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaEndpoint>,
}

/// Where Kafka clients reach a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaEndpoint {
    pub host: String,
    pub port: u16,
}

/// `/runnel/<cluster>/controller`: the broker acting as controller, held
/// under that broker's lease so it vanishes when the broker does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerRecord {
    pub version: u32,
    pub broker_id: i32,
    /// The epoch this controller won; a larger one deposes it.
    pub epoch: i64,
}

/// `/runnel/<cluster>/controller_epoch`: the last epoch any controller won.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerEpoch {
    pub version: u32,
    pub epoch: i64,
}

/// `/runnel/<cluster>/producer-ids`: brokers take blocks of producer ids by
/// compare-and-swap on this, so no id is handed out twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdBlock {
    pub version: u32,
    /// The first id nobody has taken yet.
    pub next: i64,
}

/// `/runnel/<cluster>/config/brokers/default`: dynamic cluster-wide
/// defaults of topic configs, by broker config name (`log.retention.ms`),
/// as Kafka's dynamic broker configs are named. Changed by compare-and-swap
/// on its mod revision; absent (or empty) means none are set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfigRecord {
    pub version: u32,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// `/runnel/<cluster>/groups/<g>/coordinator`: the broker coordinating the
/// group, under that broker's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCoordinatorRecord {
    pub version: u32,
    pub broker_id: i32,
}

/// `/runnel/<cluster>/groups/<g>/offsets/<topic>/<p>`: a committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffsetRecord {
    pub version: u32,
    /// The next offset to consume.
    pub offset: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// Generation of the commit (-1 from outside the group, or a reset).
    pub generation: i32,
    pub commit_timestamp_ms: i64,
}

/// Serialize a record for the store.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("metadata records always serialize")
}

/// Parse a stored record, naming the key when it is unreadable.
pub fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Metadata(format!("unreadable value at {key}: {e}")))
}
