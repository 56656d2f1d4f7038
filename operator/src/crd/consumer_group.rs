//! `ConsumerGroup`: a window onto one consumer group (members, offsets, lag
//! in status) and a way to reset its offsets once, declaratively.
// Several `printcolumn(...)` entries repeat `type_ = …`; clippy reads the
// derive's arguments as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A consumer group of a `Cluster`. The operator never creates or deletes
/// the group itself (consumers do, by joining); deleting the resource leaves
/// the group and its offsets alone.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[cfg_attr(test, x_kube(cel))]
#[kube(
    group = "runnel.dev",
    version = "v1alpha1",
    kind = "ConsumerGroup",
    namespaced,
    status = "ConsumerGroupStatus",
    shortname = "rcg",
    category = "runnel",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Group", type_ = "string", json_path = ".spec.groupId"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Members", type_ = "integer", json_path = ".status.memberCount"),
    printcolumn(name = "Lag", type_ = "integer", json_path = ".status.totalLag"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.cluster == oldSelf.cluster && self.groupId == oldSelf.groupId").message("cluster and groupId are immutable: create another ConsumerGroup"))]
#[serde(rename_all = "camelCase")]
pub struct ConsumerGroupSpec {
    /// Name of the `Cluster` (same namespace).
    #[x_kube(validation = Rule::new("self != ''").message("cluster must name a Cluster in this namespace"))]
    pub cluster: String,
    /// The group id consumers use.
    #[x_kube(validation = Rule::new("self.size() >= 1 && self.size() <= 255").message("groupId: 1-255 characters"))]
    pub group_id: String,
    /// A one-shot offset reset. It runs once per `id`, only while the group
    /// has no members (stop the consumers first); the result is in
    /// `status.lastReset`. Change `id` to run another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_reset: Option<OffsetReset>,
}

/// Where to move a group's committed offsets.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.to != 'timestamp' || has(self.timestamp)").message("to: timestamp needs a timestamp"))]
#[x_kube(validation = Rule::new("self.to != 'offsets' || (has(self.offsets) && size(self.offsets) > 0)").message("to: offsets needs at least one entry in offsets"))]
#[x_kube(validation = Rule::new("self.to == 'offsets' || (has(self.topics) && size(self.topics) > 0)").message("topics: name the topics to reset"))]
#[serde(rename_all = "camelCase")]
pub struct OffsetReset {
    /// Identifies this request; the operator applies each id once.
    #[x_kube(validation = Rule::new("self != ''").message("id must not be empty"))]
    pub id: String,
    /// The target.
    pub to: ResetTarget,
    /// For `to: timestamp`: RFC 3339 time; each partition goes to its first
    /// record at or after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Topics to reset (all their partitions) for earliest/latest/timestamp.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// For `to: offsets`: explicit offsets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<ExplicitOffset>,
}

/// `kafka-consumer-groups --reset-offsets --to-…`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ResetTarget {
    Earliest,
    Latest,
    Timestamp,
    Offsets,
}

/// One partition's new committed offset.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct ExplicitOffset {
    pub topic: String,
    #[schemars(range(min = 0))]
    pub partition: i32,
    #[schemars(range(min = 0))]
    pub offset: i64,
}

/// What the coordinator last said about the group.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerGroupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (status could be read) and `ResetApplied` (the last reset
    /// request's outcome: reasons `Applied`, `GroupActive`, `Failed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// What the coordinator reports: Empty (no members), Stable (every
    /// member owns exactly its assignment) or Reconciling (partitions are
    /// moving between members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default)]
    pub member_count: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<GroupMember>,
    /// Committed offset, log end offset (high watermark) and lag per
    /// partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<PartitionOffset>,
    #[serde(default)]
    pub total_lag: i64,
    /// The last `offsetReset.id` the operator acted on and its outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reset: Option<ResetResult>,
}

/// One member of the group.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    /// The member's address; empty while Runnel's coordinator does not
    /// record it.
    pub host: String,
    /// `topic-partition` names assigned to the member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignment: Vec<String>,
}

/// One partition's position.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub log_end_offset: i64,
    pub lag: i64,
}

/// The outcome of one reset request.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetResult {
    pub id: String,
    /// `Applied`, `GroupActive` (refused: members are connected; retried
    /// until they leave) or `Failed`.
    pub result: String,
    pub message: String,
    /// The offsets written, for `Applied`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<ExplicitOffset>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reset_targets_need_their_arguments() {
        let ok = json!({"cluster": "main", "groupId": "g",
            "offsetReset": {"id": "1", "to": "earliest", "topics": ["orders"]}});
        assert!(ConsumerGroupSpec::validate_cel(&ok, None).is_ok());
        for bad in [
            json!({"cluster": "main", "groupId": "g",
                "offsetReset": {"id": "1", "to": "timestamp", "topics": ["orders"]}}),
            json!({"cluster": "main", "groupId": "g",
                "offsetReset": {"id": "1", "to": "offsets"}}),
            json!({"cluster": "main", "groupId": "g",
                "offsetReset": {"id": "1", "to": "latest"}}),
            json!({"cluster": "main", "groupId": "", }),
        ] {
            assert!(
                ConsumerGroupSpec::validate_cel(&bad, None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn group_id_is_immutable() {
        let old = json!({"cluster": "main", "groupId": "g"});
        let new = json!({"cluster": "main", "groupId": "h"});
        assert!(ConsumerGroupSpec::validate_cel(&new, Some(&old)).is_err());
        assert!(ConsumerGroupSpec::validate_cel(&old, Some(&old)).is_ok());
    }
}
