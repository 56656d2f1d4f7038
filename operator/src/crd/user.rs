//! `User`: one principal of one `Cluster` — how it authenticates (a client
//! certificate the operator issues, a token it generates, or a Kubernetes
//! ServiceAccount) and the ACLs it holds, like Strimzi's `KafkaUser`. See
//! `controller::user`.
// Several `printcolumn(...)` entries repeat `type_ = …`; clippy reads the
// derive's arguments as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema, ResourceExt};
use runnel_proto::v1::{AclBinding, AclOperation, AclPatternType, AclPermission, AclResourceType};
use serde::{Deserialize, Serialize};

/// The finalizer that removes the user's ACLs from the brokers before
/// Kubernetes forgets the resource.
pub const USER_FINALIZER: &str = "users.runnel.dev/acls";

/// The name the broker gives the cluster resource in ACLs.
pub const CLUSTER_RESOURCE_NAME: &str = "runnel-cluster";

/// A principal and its rights.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[cfg_attr(test, x_kube(cel))]
#[kube(
    group = "runnel.dev",
    version = "v1alpha1",
    kind = "User",
    namespaced,
    status = "UserStatus",
    shortname = "ru",
    category = "runnel",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(
        name = "Authentication",
        type_ = "string",
        json_path = ".spec.authentication.type"
    ),
    printcolumn(name = "Principal", type_ = "string", json_path = ".status.principal"),
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
#[x_kube(validation = Rule::new("self.cluster == oldSelf.cluster").message("cluster is immutable: create a new User for another cluster"))]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// Name of the `Cluster` (same namespace) the user belongs to.
    #[x_kube(validation = Rule::new("self != ''").message("cluster must name a Cluster in this namespace"))]
    pub cluster: String,

    /// How the user proves who it is. Unset: the operator issues no
    /// credential and only manages the ACLs of `User:<metadata.name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<UserAuthentication>,

    /// What the user may (or may not) do. The operator owns every ACL of
    /// the user's principal: ACLs added by hand for it are removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub acls: Vec<AclRule>,
}

/// Credentials.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.type != 'ServiceAccount' || has(self.serviceAccount)").message("authentication.serviceAccount names the ServiceAccount when type is ServiceAccount"))]
#[serde(rename_all = "camelCase")]
pub struct UserAuthentication {
    /// `Tls`: a client certificate with CN `<metadata.name>`, in Secret
    /// `<metadata.name>` (`tls.crt`, `tls.key`, `ca.crt`). `Token`: a
    /// random bearer token in Secret `<metadata.name>` (`token`).
    /// `ServiceAccount`: the pods' own ServiceAccount token, verified by
    /// TokenReview (the Cluster needs
    /// `security.authentication.serviceAccountTokens`).
    #[serde(rename = "type")]
    pub type_: AuthenticationType,
    /// The ServiceAccount (same namespace) for `type: ServiceAccount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum AuthenticationType {
    Tls,
    Token,
    ServiceAccount,
}

/// One rule: `effect` the `operations` on the resources `resource` names.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AclRule {
    pub resource: AclResource,
    #[schemars(length(min = 1))]
    pub operations: Vec<Operation>,
    #[serde(default)]
    pub effect: Effect,
}

/// Which resources a rule is about.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.type != 'Cluster' || !has(self.name) || self.name == 'runnel-cluster'").message("a Cluster resource has no name (or 'runnel-cluster')"))]
#[serde(rename_all = "camelCase")]
pub struct AclResource {
    #[serde(rename = "type")]
    pub type_: ResourceType,
    /// Topic or group name, `*` for all of them, or a prefix with
    /// `patternType: Prefixed`. Not needed for `Cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub pattern_type: PatternType,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
}

#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum PatternType {
    #[default]
    Literal,
    Prefixed,
}

/// Kafka's ACL operations (`Read`, `Write`, `Delete` and `Alter` imply
/// `Describe`).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
}

#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Effect {
    #[default]
    Allow,
    Deny,
}

/// What the operator applied.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` with reasons such as `Applied`, `ClusterNotFound`,
    /// `ClusterUnavailable`, `InvalidSpec`, `CertificateAuthorityNotReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The principal ACLs name, e.g. `User:orders-app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The Secret holding the user's credentials (`Tls`, `Token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// ACL bindings in force on the brokers for the principal.
    #[serde(default)]
    pub acls: i32,
    /// When the client certificate expires (`Tls`, RFC 3339); it is renewed
    /// before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_expires: Option<String>,
}

impl User {
    /// The principal the brokers see for this user.
    pub fn principal(&self) -> String {
        match &self.spec.authentication {
            Some(UserAuthentication {
                type_: AuthenticationType::ServiceAccount,
                service_account: Some(account),
            }) => format!(
                "User:system:serviceaccount:{}:{account}",
                self.namespace().unwrap_or_default()
            ),
            _ => format!("User:{}", self.name_any()),
        }
    }

    /// The ACL bindings the spec asks for, one per rule × operation,
    /// sorted and without repeats.
    pub fn bindings(&self) -> Vec<AclBinding> {
        let principal = self.principal();
        let mut out: Vec<AclBinding> = self
            .spec
            .acls
            .iter()
            .flat_map(|rule| {
                let principal = principal.clone();
                rule.operations.iter().map(move |op| AclBinding {
                    resource_type: match rule.resource.type_ {
                        ResourceType::Topic => AclResourceType::Topic,
                        ResourceType::Group => AclResourceType::Group,
                        ResourceType::Cluster => AclResourceType::Cluster,
                    } as i32,
                    resource_name: match rule.resource.type_ {
                        ResourceType::Cluster => CLUSTER_RESOURCE_NAME.to_owned(),
                        _ => rule.resource.name.clone().unwrap_or_else(|| "*".to_owned()),
                    },
                    pattern_type: match rule.resource.pattern_type {
                        PatternType::Literal => AclPatternType::Literal,
                        PatternType::Prefixed => AclPatternType::Prefixed,
                    } as i32,
                    principal: principal.clone(),
                    operation: operation(*op) as i32,
                    permission: match rule.effect {
                        Effect::Allow => AclPermission::Allow,
                        Effect::Deny => AclPermission::Deny,
                    } as i32,
                })
            })
            .collect();
        out.sort_by_key(binding_key);
        out.dedup();
        out
    }
}

fn operation(op: Operation) -> AclOperation {
    match op {
        Operation::All => AclOperation::All,
        Operation::Read => AclOperation::Read,
        Operation::Write => AclOperation::Write,
        Operation::Create => AclOperation::Create,
        Operation::Delete => AclOperation::Delete,
        Operation::Alter => AclOperation::Alter,
        Operation::Describe => AclOperation::Describe,
        Operation::ClusterAction => AclOperation::ClusterAction,
    }
}

/// A total order of bindings (for sorting and set comparison).
pub fn binding_key(b: &AclBinding) -> (i32, String, i32, String, i32, i32) {
    (
        b.resource_type,
        b.resource_name.clone(),
        b.pattern_type,
        b.principal.clone(),
        b.operation,
        b.permission,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(spec: serde_json::Value) -> User {
        serde_json::from_value(json!({
            "apiVersion": "runnel.dev/v1alpha1", "kind": "User",
            "metadata": {"name": "orders-app", "namespace": "shop"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn principal_by_authentication() {
        let tls = user(json!({"cluster": "main", "authentication": {"type": "Tls"}}));
        assert_eq!(tls.principal(), "User:orders-app");
        let sa = user(json!({"cluster": "main",
            "authentication": {"type": "ServiceAccount", "serviceAccount": "orders"}}));
        assert_eq!(sa.principal(), "User:system:serviceaccount:shop:orders");
    }

    #[test]
    fn bindings_expand_operations_and_default_names() {
        let u = user(json!({"cluster": "main", "acls": [
            {"resource": {"type": "Topic", "name": "orders"}, "operations": ["Write", "Describe", "Write"]},
            {"resource": {"type": "Group", "name": "orders-", "patternType": "Prefixed"}, "operations": ["Read"]},
            {"resource": {"type": "Topic"}, "operations": ["Delete"], "effect": "Deny"},
            {"resource": {"type": "Cluster"}, "operations": ["Create"]},
        ]}));
        let b = u.bindings();
        assert_eq!(b.len(), 5, "{b:?}");
        assert!(b.iter().all(|b| b.principal == "User:orders-app"));
        assert!(b.iter().any(|b| b.resource_name == "*"
            && b.permission == AclPermission::Deny as i32
            && b.operation == AclOperation::Delete as i32));
        assert!(b.iter().any(|b| b.resource_name == CLUSTER_RESOURCE_NAME
            && b.resource_type == AclResourceType::Cluster as i32));
        assert!(
            b.iter().any(|b| b.resource_name == "orders-"
                && b.pattern_type == AclPatternType::Prefixed as i32)
        );
    }

    #[test]
    fn cel_rules() {
        let ok = json!({"cluster": "main", "authentication": {"type": "ServiceAccount", "serviceAccount": "a"}});
        assert!(UserSpec::validate_cel(&ok, None).is_ok());
        let no_sa = json!({"cluster": "main", "authentication": {"type": "ServiceAccount"}});
        assert!(UserSpec::validate_cel(&no_sa, None).is_err());
        let moved = json!({"cluster": "other"});
        assert!(UserSpec::validate_cel(&moved, Some(&json!({"cluster": "main"}))).is_err());
        let named_cluster = json!({"cluster": "main", "acls": [
            {"resource": {"type": "Cluster", "name": "x"}, "operations": ["Alter"]}]});
        assert!(UserSpec::validate_cel(&named_cluster, None).is_err());
    }
}
