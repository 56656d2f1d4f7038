//! `Topic`: one Runnel topic on one `Cluster`, created and kept in shape
//! through the brokers' admin API (see `controller::topic`).
// Several `printcolumn(...)` entries repeat `type_ = …`; clippy reads the
// derive's arguments as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The finalizer that deletes the topic from the brokers before Kubernetes
/// forgets the resource.
pub const TOPIC_FINALIZER: &str = "topics.runnel.dev/cleanup";

/// A topic, as `kubectl apply` sees it.
///
/// The transition rules catch the changes Runnel cannot make before they are
/// stored: partitions never decrease, and a topic never moves to another
/// cluster or name. The reconciler checks the same things again (a CRD
/// installed without these rules must not let a mistake through).
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[cfg_attr(test, x_kube(cel))]
#[kube(
    group = "runnel.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    shortname = "rt",
    category = "runnel",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Topic", type_ = "string", json_path = ".status.topicName"),
    printcolumn(name = "Partitions", type_ = "integer", json_path = ".spec.partitions"),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicationFactor"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.partitions >= oldSelf.partitions").message("partitions can only increase: Runnel cannot remove a partition without losing its records").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("self.cluster == oldSelf.cluster").message("cluster is immutable: create a new Topic for another cluster"))]
#[x_kube(validation = Rule::new("has(self.topicName) == has(oldSelf.topicName) && (!has(self.topicName) || self.topicName == oldSelf.topicName)").message("topicName is immutable"))]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// Name of the `Cluster` (same namespace) that holds the topic.
    #[x_kube(validation = Rule::new("self != ''").message("cluster must name a Cluster in this namespace"))]
    pub cluster: String,

    /// The topic's name on the brokers; defaults to `metadata.name`. Set it
    /// when the Kafka-style name is not a valid Kubernetes name (upper case,
    /// underscores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z0-9._-]{1,249}$')").message("topicName: 1-249 characters of a-z, A-Z, 0-9, '.', '_' and '-'"))]
    pub topic_name: Option<String>,

    /// Number of partitions (can grow, never shrink).
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 100000))]
    pub partitions: i32,

    /// Copies of every partition. A change moves replicas through the
    /// reassignment API (added copies catch up before they count).
    #[serde(default = "default_replication_factor")]
    #[schemars(range(min = 1, max = 32))]
    pub replication_factor: i32,

    /// Topic configs by their Kafka names (`retention.ms`, `retention.bytes`,
    /// `segment.bytes`, `segment.ms`, `cleanup.policy`, `min.insync.replicas`,
    /// `max.message.bytes`, …). Values are strings as in Kafka; the broker
    /// validates them (an unknown key or bad value puts the Topic in
    /// `Ready=False, reason=InvalidConfig` and changes nothing). Keys removed
    /// here go back to the broker default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("!('cleanup.policy' in self) || self['cleanup.policy'] == 'delete'").message("cleanup.policy: only 'delete' is supported (log compaction is not implemented)"))]
    #[x_kube(validation = Rule::new("!('min.insync.replicas' in self) || int(self['min.insync.replicas']) >= 1").message("min.insync.replicas must be at least 1"))]
    pub config: BTreeMap<String, String>,
}

fn default_partitions() -> i32 {
    1
}

fn default_replication_factor() -> i32 {
    3
}

/// What the operator last saw of the topic.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the topic exists as specified) with reasons such as
    /// `Created`, `Updated`, `NotSupported`, `InvalidConfig`,
    /// `ResourceConflict`, `ClusterNotFound`, `ClusterUnavailable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The name on the brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Leader, replicas and in-sync replicas of every partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionStatus>,
}

/// One partition's placement, as the controller last reported it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionStatus {
    pub id: i32,
    /// Broker id of the leader; -1 while the partition is offline.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl Topic {
    /// The topic's name on the brokers.
    pub fn topic_name(&self) -> String {
        self.spec
            .topic_name
            .clone()
            .unwrap_or_else(|| kube::ResourceExt::name_any(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(partitions: i32) -> serde_json::Value {
        json!({"cluster": "main", "partitions": partitions, "replicationFactor": 3})
    }

    #[test]
    fn partitions_may_grow_but_not_shrink() {
        assert!(TopicSpec::validate_cel(&spec(6), Some(&spec(3))).is_ok());
        let err = TopicSpec::validate_cel(&spec(2), Some(&spec(3))).unwrap_err();
        assert!(
            err.to_string().contains("partitions can only increase"),
            "{err}"
        );
    }

    #[test]
    fn cluster_and_topic_name_are_immutable() {
        let old = json!({"cluster": "main", "topicName": "Orders", "partitions": 1});
        let moved = json!({"cluster": "other", "topicName": "Orders", "partitions": 1});
        let renamed = json!({"cluster": "main", "topicName": "orders", "partitions": 1});
        let dropped = json!({"cluster": "main", "partitions": 1});
        assert!(TopicSpec::validate_cel(&old, Some(&old)).is_ok());
        for new in [moved, renamed, dropped] {
            assert!(TopicSpec::validate_cel(&new, Some(&old)).is_err(), "{new}");
        }
    }

    #[test]
    fn config_rules_catch_unsupported_values() {
        let with = |k: &str, v: &str| json!({"cluster": "main", "partitions": 1, "config": {k: v}});
        assert!(TopicSpec::validate_cel(&with("cleanup.policy", "delete"), None).is_ok());
        assert!(TopicSpec::validate_cel(&with("cleanup.policy", "compact"), None).is_err());
        assert!(TopicSpec::validate_cel(&with("min.insync.replicas", "0"), None).is_err());
        assert!(TopicSpec::validate_cel(&with("retention.ms", "1000"), None).is_ok());
        let bad_name = json!({"cluster": "main", "topicName": "a b", "partitions": 1});
        assert!(TopicSpec::validate_cel(&bad_name, None).is_err());
        let no_cluster = json!({"cluster": "", "partitions": 1});
        assert!(TopicSpec::validate_cel(&no_cluster, None).is_err());
    }
}
