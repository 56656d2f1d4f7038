//! `Cluster`: a Runnel broker cluster — a StatefulSet of brokers, their
//! Services, config and disruption budget, and (unless external endpoints
//! are given) a managed etcd for the metadata.
// Several `printcolumn(...)` entries repeat `type_ = …`; clippy reads the
// derive's arguments as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, PodSecurityContext, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::security::{SecuritySpec, TlsSpec};

/// A broker cluster.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[cfg_attr(test, x_kube(cel))]
#[kube(
    group = "runnel.dev",
    version = "v1alpha1",
    kind = "Cluster",
    namespaced,
    status = "ClusterStatus",
    shortname = "rc",
    category = "runnel",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Brokers", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyBrokers"),
    printcolumn(
        name = "Controller",
        type_ = "integer",
        json_path = ".status.controller"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Bootstrap",
        type_ = "string",
        json_path = ".status.bootstrap",
        priority = 1
    ),
    printcolumn(
        name = "Kafka",
        type_ = "string",
        json_path = ".status.kafkaBootstrap",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(oldSelf.metadataStore) || self.metadataStore == oldSelf.metadataStore").message("metadataStore is immutable: the cluster's metadata cannot move to another etcd"))]
#[x_kube(validation = Rule::new("self.storage.size == oldSelf.storage.size && (has(self.storage.storageClassName) == has(oldSelf.storage.storageClassName)) && (!has(self.storage.storageClassName) || self.storage.storageClassName == oldSelf.storage.storageClassName)").message("storage size and class are fixed at creation (volume claims of a StatefulSet cannot change)"))]
#[x_kube(validation = Rule::new("!has(self.kafka) || !has(self.kafka.port) || !has(self.listeners) || (self.kafka.port != self.listeners.grpc && self.kafka.port != self.listeners.http)").message("kafka.port must differ from listeners.grpc and listeners.http (leave it unset to share the gRPC port)"))]
#[x_kube(validation = Rule::new("!has(self.kafka) || !has(self.kafka.port) || !has(self.kafka.enabled) || self.kafka.enabled").message("kafka.port is a port of the Kafka listener: unset it when kafka.enabled is false"))]
#[x_kube(validation = Rule::new("!has(self.kafka) || !has(self.kafka.tls) || self.kafka.tls == (has(self.security) && has(self.security.tls))").message("kafka.tls follows spec.security.tls (brokers serve one TLS configuration on every port): set security.tls for TLS, or leave kafka.tls unset"))]
#[x_kube(validation = Rule::new("!has(self.kafka) || !has(self.kafka.authentication) || self.kafka.authentication.type != 'Tls' || (has(self.security) && has(self.security.tls) && has(self.security.tls.clientAuth) && self.security.tls.clientAuth == 'Required')").message("kafka.authentication.type Tls needs security.tls.clientAuth Required: that is what makes every connection present a client certificate"))]
#[x_kube(validation = Rule::new("!has(self.kafka) || !has(self.kafka.authentication) || self.kafka.authentication.type != 'Sasl' || (has(self.security) && has(self.security.authorization) && (!has(self.security.authorization.allowEveryoneIfNoAclFound) || !self.security.authorization.allowEveryoneIfNoAclFound))").message("kafka.authentication.type Sasl needs security.authorization without allowEveryoneIfNoAclFound: a client that skips SASL is User:ANONYMOUS, which only default-deny ACLs refuse"))]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Number of brokers. Scaling in moves every replica off the brokers
    /// being removed before their pods go (see docs/operator.md).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,

    /// Broker image; defaults to the operator's `--broker-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Image pull policy of broker (and managed etcd) pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// Persistent volume per broker.
    #[serde(default)]
    pub storage: StorageSpec,

    /// CPU/memory of each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Broker settings by their Kafka names (`log.retention.ms`,
    /// `num.partitions`, `default.replication.factor`, `min.insync.replicas`,
    /// …). Checked against the broker's own parser; keys the operator owns
    /// (`broker.id`, `listen`, `data.dir`, `etcd.endpoints`, `cluster.name`,
    /// `advertised.listener`, `http.listen`, `broker.rack`) are refused. A
    /// change rolls the brokers one at a time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,

    /// Rack awareness: spread brokers over a node label and give each broker
    /// its node's value as `broker.rack`, so replicas land in distinct racks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<RackSpec>,

    /// Where the cluster's metadata lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_store: Option<MetadataStoreSpec>,

    /// Ports of the broker containers.
    #[serde(default)]
    pub listeners: ListenersSpec,

    /// The Kafka wire protocol (docs/kafka.md): on the gRPC port by
    /// default, or on a Kafka-only port.
    #[serde(default)]
    pub kafka: KafkaSpec,

    /// Move partitions onto new brokers after a scale-out (balanced leaders
    /// and replicas). Off: new brokers only get new topics' partitions.
    #[serde(default = "default_true")]
    pub rebalance_on_scale_out: bool,

    /// Extra pod settings for broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplateOverrides>,

    /// TLS, authentication and ACL authorization (docs/security.md). Unset:
    /// plaintext and no access control, as in the quickstart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SecuritySpec>,
}

impl ClusterSpec {
    /// TLS settings, when the listener has TLS.
    pub fn tls(&self) -> Option<&TlsSpec> {
        self.security.as_ref().and_then(|s| s.tls.as_ref())
    }

    /// The port Kafka clients use: the dedicated one, else the gRPC port;
    /// `None` when the Kafka protocol is off.
    pub fn kafka_port(&self) -> Option<i32> {
        self.kafka
            .enabled
            .then(|| self.kafka.port.unwrap_or(self.listeners.grpc))
    }

    /// The Kafka-only port, when there is one.
    pub fn dedicated_kafka_port(&self) -> Option<i32> {
        self.kafka.enabled.then_some(self.kafka.port).flatten()
    }

    /// Kafka's `security.protocol` for clients of the Kafka listener.
    pub fn kafka_security_protocol(&self) -> Option<&'static str> {
        if !self.kafka.enabled {
            return None;
        }
        let tls = self.tls().is_some();
        let sasl = self
            .kafka
            .authentication
            .as_ref()
            .is_some_and(|a| a.type_ == KafkaAuthenticationType::Sasl);
        Some(match (tls, sasl) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        })
    }
}

fn default_replicas() -> i32 {
    3
}

fn default_true() -> bool {
    true
}

/// Kubernetes image pull policy.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// A volume claim per pod.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, a Kubernetes quantity.
    #[serde(default = "default_storage_size")]
    pub size: String,
    /// Storage class; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Delete the volume claims when the Cluster is deleted. Off by default:
    /// deleting a Cluster resource by mistake must not delete its data.
    #[serde(default)]
    pub delete_claim: bool,
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec {
            size: default_storage_size(),
            storage_class_name: None,
            delete_claim: false,
        }
    }
}

fn default_storage_size() -> String {
    "10Gi".to_owned()
}

/// Rack awareness.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RackSpec {
    /// Node label whose value is the rack.
    #[serde(default = "default_topology_key")]
    pub topology_key: String,
}

fn default_topology_key() -> String {
    "topology.kubernetes.io/zone".to_owned()
}

/// External etcd, or one the operator runs.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!(has(self.external) && has(self.managed))").message("metadataStore: set external or managed, not both"))]
#[serde(rename_all = "camelCase")]
pub struct MetadataStoreSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalEtcd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedEtcd>,
}

/// An etcd the cluster is given.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalEtcd {
    /// Client URLs, e.g. `http://etcd-0.etcd:2379`.
    #[x_kube(validation = Rule::new("size(self) >= 1 && self.all(e, e.startsWith('http://') || e.startsWith('https://'))").message("endpoints: at least one http:// or https:// URL"))]
    #[schemars(length(min = 1, max = 16))]
    pub endpoints: Vec<String>,
}

/// An etcd StatefulSet run by the operator for this cluster.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedEtcd {
    /// Members (odd: 1, 3 or 5).
    #[serde(default = "default_etcd_replicas")]
    #[x_kube(validation = Rule::new("self in [1, 3, 5]").message("etcd replicas must be 1, 3 or 5"))]
    pub replicas: i32,
    /// etcd image.
    #[serde(default = "default_etcd_image")]
    pub image: String,
    /// Volume per member.
    #[serde(default = "default_etcd_storage")]
    pub storage: StorageSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for ManagedEtcd {
    fn default() -> Self {
        ManagedEtcd {
            replicas: default_etcd_replicas(),
            image: default_etcd_image(),
            storage: default_etcd_storage(),
            resources: None,
        }
    }
}

fn default_etcd_replicas() -> i32 {
    3
}

fn default_etcd_image() -> String {
    "registry.k8s.io/etcd:3.5.21-0".to_owned()
}

fn default_etcd_storage() -> StorageSpec {
    StorageSpec {
        size: "1Gi".to_owned(),
        ..StorageSpec::default()
    }
}

/// Container ports.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenersSpec {
    /// gRPC API (clients and replication).
    #[serde(default = "default_grpc_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub grpc: i32,
    /// /healthz, /readyz, /metrics.
    #[serde(default = "default_http_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub http: i32,
}

impl Default for ListenersSpec {
    fn default() -> Self {
        ListenersSpec {
            grpc: default_grpc_port(),
            http: default_http_port(),
        }
    }
}

fn default_grpc_port() -> i32 {
    9092
}

fn default_http_port() -> i32 {
    9095
}

/// The Kafka listener, in the terms of a Strimzi listener (`port`, `tls`,
/// `authentication`). There is one: the broker serves one TLS
/// configuration and one set of credentials (`spec.security`) on every
/// port, so `tls` and `authentication` state what those settings must
/// give Kafka clients, and the CRD refuses a Cluster whose `spec.security`
/// does not (rather than silently serving something else).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSpec {
    /// Serve the Kafka protocol. Off: the brokers speak gRPC only
    /// (`kafka.shared.listener=false`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A Kafka-only port (`kafka.listen`), in the Services and advertised
    /// per pod as `<pod>.<c>-brokers.<ns>.svc:<port>`. The gRPC port then
    /// serves gRPC only. Unset: Kafka shares `listeners.grpc`, told apart
    /// per connection by its first bytes (or, with TLS, by ALPN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// TLS on the Kafka listener. Unset: as `spec.security.tls`; set, it
    /// must agree with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// How Kafka clients must authenticate. Unset: as gRPC clients may (a
    /// client certificate, a bearer token over SASL PLAIN or OAUTHBEARER,
    /// or none: `User:ANONYMOUS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<KafkaAuthentication>,
}

impl Default for KafkaSpec {
    fn default() -> Self {
        KafkaSpec {
            enabled: true,
            port: None,
            tls: None,
            authentication: None,
        }
    }
}

/// Authentication of the Kafka listener (Strimzi's
/// `listeners[].authentication`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct KafkaAuthentication {
    /// `Tls`: mutual TLS, every client presents a certificate signed by the
    /// cluster CA (needs `security.tls.clientAuth: Required`; `User`s with
    /// `authentication.type: Tls`). `Sasl`: SASL `PLAIN` (password = bearer
    /// token) or `OAUTHBEARER` with the tokens the brokers accept (`User`s
    /// with `authentication.type: Token`, ServiceAccount tokens with
    /// `security.authentication.serviceAccountTokens`); needs default-deny
    /// `security.authorization`, which refuses a client that skips SASL.
    #[serde(rename = "type")]
    pub type_: KafkaAuthenticationType,
}

/// See [`KafkaAuthentication::type_`].
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum KafkaAuthenticationType {
    Tls,
    Sasl,
}

/// Pod settings merged into the broker pods.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Replaces the default broker anti-affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Replaces the default (non-root, fsGroup) pod security context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// What the operator last saw of the cluster.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` (rolling, scaling) and `Degraded`
    /// (under-replicated or offline partitions, brokers not ready).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Broker pods that exist (the scale subresource's status).
    #[serde(default)]
    pub replicas: i32,
    /// Label selector of the broker pods (the scale subresource's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default)]
    pub ready_brokers: i32,
    /// Broker id of the active controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<i32>,
    #[serde(default)]
    pub under_replicated_partitions: i32,
    #[serde(default)]
    pub offline_partitions: i32,
    /// `host:port` for clients inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
    /// `host:port` for Kafka clients inside the cluster (`bootstrap.servers`);
    /// unset when `spec.kafka.enabled` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_bootstrap: Option<String>,
    /// The `security.protocol` Kafka clients set: `PLAINTEXT`, `SSL`,
    /// `SASL_PLAINTEXT` or `SASL_SSL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_security_protocol: Option<String>,
    /// Brokers being emptied before a scale-in removes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub draining_brokers: Vec<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn storage_and_metadata_store_are_fixed() {
        let old = json!({"replicas": 3, "storage": {"size": "10Gi"},
            "metadataStore": {"managed": {"replicas": 3}}});
        let bigger = json!({"replicas": 5, "storage": {"size": "20Gi"},
            "metadataStore": {"managed": {"replicas": 3}}});
        let external = json!({"replicas": 3, "storage": {"size": "10Gi"},
            "metadataStore": {"external": {"endpoints": ["http://etcd:2379"]}}});
        let scaled = json!({"replicas": 5, "storage": {"size": "10Gi"},
            "metadataStore": {"managed": {"replicas": 3}}});
        assert!(ClusterSpec::validate_cel(&scaled, Some(&old)).is_ok());
        assert!(ClusterSpec::validate_cel(&bigger, Some(&old)).is_err());
        assert!(ClusterSpec::validate_cel(&external, Some(&old)).is_err());
    }

    /// A spec as the API server validates it: with the schema's defaults
    /// filled in (serde's are the same).
    fn defaulted(spec: serde_json::Value) -> serde_json::Value {
        let spec: ClusterSpec = serde_json::from_value(spec).unwrap();
        serde_json::to_value(spec).unwrap()
    }

    fn kafka_rule_error(spec: serde_json::Value) -> Option<String> {
        ClusterSpec::validate_cel(&defaulted(spec), None)
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn kafka_port_must_be_its_own() {
        assert_eq!(kafka_rule_error(json!({"kafka": {"port": 9093}})), None);
        assert_eq!(kafka_rule_error(json!({})), None);
        for taken in [9092, 9095] {
            let err = kafka_rule_error(json!({"kafka": {"port": taken}})).unwrap();
            assert!(err.contains("must differ from listeners.grpc"), "{err}");
        }
        let moved = json!({"listeners": {"grpc": 19092}, "kafka": {"port": 9092}});
        assert_eq!(kafka_rule_error(moved), None);
        let off = kafka_rule_error(json!({"kafka": {"enabled": false, "port": 9093}})).unwrap();
        assert!(
            off.contains("unset it when kafka.enabled is false"),
            "{off}"
        );
        assert_eq!(kafka_rule_error(json!({"kafka": {"enabled": false}})), None);
    }

    #[test]
    fn kafka_tls_and_authentication_must_be_what_security_gives() {
        let tls = json!({"tls": {"clientAuth": "Requested"}});
        let mtls = json!({"tls": {"clientAuth": "Required"}});
        let deny = json!({"tls": {"clientAuth": "Requested"}, "authorization": {}});
        let open = json!({"tls": {"clientAuth": "Requested"},
            "authorization": {"allowEveryoneIfNoAclFound": true}});
        let with = |kafka: serde_json::Value, security: Option<&serde_json::Value>| {
            let mut spec = json!({"kafka": kafka});
            if let Some(s) = security {
                spec["security"] = s.clone();
            }
            kafka_rule_error(spec)
        };
        assert_eq!(with(json!({"tls": true}), Some(&tls)), None);
        assert_eq!(with(json!({"tls": false}), None), None);
        let err = with(json!({"tls": true}), None).unwrap();
        assert!(err.contains("kafka.tls follows spec.security.tls"), "{err}");
        assert!(with(json!({"tls": false}), Some(&tls)).is_some());

        let auth = |t: &str| json!({"authentication": {"type": t}});
        assert_eq!(with(auth("Tls"), Some(&mtls)), None);
        for security in [None, Some(&tls)] {
            let err = with(auth("Tls"), security).unwrap();
            assert!(err.contains("clientAuth Required"), "{err}");
        }
        assert_eq!(with(auth("Sasl"), Some(&deny)), None);
        for security in [None, Some(&tls), Some(&open)] {
            let err = with(auth("Sasl"), security).unwrap();
            assert!(err.contains("without allowEveryoneIfNoAclFound"), "{err}");
        }
    }

    #[test]
    fn kafka_security_protocol_follows_tls_and_sasl() {
        let protocol = |spec: serde_json::Value| {
            serde_json::from_value::<ClusterSpec>(spec)
                .unwrap()
                .kafka_security_protocol()
        };
        assert_eq!(protocol(json!({})), Some("PLAINTEXT"));
        assert_eq!(protocol(json!({"kafka": {"enabled": false}})), None);
        let tls = json!({"tls": {}});
        assert_eq!(protocol(json!({"security": tls})), Some("SSL"));
        assert_eq!(
            protocol(json!({"security": {"tls": {}, "authorization": {}},
                "kafka": {"authentication": {"type": "Sasl"}}})),
            Some("SASL_SSL")
        );
        assert_eq!(
            protocol(json!({"security": {"tls": {"clientAuth": "Required"}},
                "kafka": {"authentication": {"type": "Tls"}}})),
            Some("SSL")
        );
    }

    #[test]
    fn metadata_store_rules() {
        let both = json!({"storage": {"size": "1Gi"}, "metadataStore": {
            "external": {"endpoints": ["http://etcd:2379"]}, "managed": {"replicas": 3}}});
        let even =
            json!({"storage": {"size": "1Gi"}, "metadataStore": {"managed": {"replicas": 2}}});
        let bad_url = json!({"storage": {"size": "1Gi"},
            "metadataStore": {"external": {"endpoints": ["etcd:2379"]}}});
        for bad in [both, even, bad_url] {
            assert!(ClusterSpec::validate_cel(&bad, None).is_err(), "{bad}");
        }
    }
}
