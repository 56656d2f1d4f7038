//! Sample Clusters, rendered by the golden tests (`operator/tests/golden/`)
//! and by `cargo xtask render-manifests` for validation against the
//! Kubernetes schemas: one with nothing but a name, one with every field set.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PodSecurityContext, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::crd::cluster::{
    ExternalEtcd, KafkaAuthentication, KafkaAuthenticationType, KafkaSpec, ListenersSpec,
    MetadataStoreSpec, PodTemplateOverrides, PullPolicy, RackSpec, StorageSpec,
};
use crate::crd::security::{
    AuthenticationSpec, AuthorizationSpec, CertificatesSpec, ClientAuth, Issuer, IssuerRef,
    SecuritySpec, TlsSpec,
};
use crate::crd::{Cluster, ClusterSpec};

/// The operator's `--broker-image` in the samples (fixed, so golden files
/// do not change with the crate version).
pub const DEFAULT_IMAGE: &str = "runnel/broker:sample";

/// Every sample with its name (the golden file's stem).
pub fn all() -> Vec<(&'static str, Cluster)> {
    vec![("minimal", minimal()), ("full", full())]
}

/// Only a name and namespace: every default, managed etcd of 3 members.
pub fn minimal() -> Cluster {
    let spec: ClusterSpec = serde_json::from_value(serde_json::json!({}))
        .expect("every ClusterSpec field has a default");
    with_metadata(Cluster::new("minimal", spec), "default")
}

/// Every field set: image, storage, resources, config, rack, external etcd,
/// listeners, a Kafka-only port with SASL, pod template overrides and
/// security (TLS from cert-manager, authorization, ServiceAccount tokens).
pub fn full() -> Cluster {
    let spec = ClusterSpec {
        replicas: 5,
        image: Some("registry.example.com/runnel/broker:1.2.3".to_owned()),
        image_pull_policy: Some(PullPolicy::IfNotPresent),
        storage: StorageSpec {
            size: "100Gi".to_owned(),
            storage_class_name: Some("fast-ssd".to_owned()),
            delete_claim: true,
        },
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "2"), ("memory", "4Gi")])),
            limits: Some(quantities(&[("memory", "4Gi")])),
            ..ResourceRequirements::default()
        }),
        config: strings(&[
            ("auto.leader.rebalance.enable", "true"),
            ("default.replication.factor", "3"),
            ("log.retention.ms", "604800000"),
            ("min.insync.replicas", "2"),
            ("num.partitions", "12"),
        ]),
        rack: Some(RackSpec {
            topology_key: "topology.kubernetes.io/zone".to_owned(),
        }),
        metadata_store: Some(MetadataStoreSpec {
            external: Some(ExternalEtcd {
                endpoints: vec![
                    "https://etcd-0.etcd.infra.svc:2379".to_owned(),
                    "https://etcd-1.etcd.infra.svc:2379".to_owned(),
                    "https://etcd-2.etcd.infra.svc:2379".to_owned(),
                ],
            }),
            managed: None,
        }),
        listeners: ListenersSpec {
            grpc: 19092,
            http: 19095,
        },
        kafka: KafkaSpec {
            enabled: true,
            port: Some(19093),
            tls: Some(true),
            authentication: Some(KafkaAuthentication {
                type_: KafkaAuthenticationType::Sasl,
            }),
        },
        rebalance_on_scale_out: false,
        template: Some(PodTemplateOverrides {
            labels: strings(&[("team", "streaming")]),
            annotations: strings(&[("prometheus.io/scrape", "true")]),
            tolerations: vec![Toleration {
                key: Some("dedicated".to_owned()),
                operator: Some("Equal".to_owned()),
                value: Some("runnel".to_owned()),
                effect: Some("NoSchedule".to_owned()),
                ..Toleration::default()
            }],
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: "node.example.com/pool".to_owned(),
                                operator: "In".to_owned(),
                                values: Some(vec!["storage".to_owned()]),
                            }]),
                            ..NodeSelectorTerm::default()
                        }],
                    }),
                    ..NodeAffinity::default()
                }),
                ..Affinity::default()
            }),
            node_selector: strings(&[("kubernetes.io/os", "linux")]),
            security_context: Some(PodSecurityContext {
                run_as_user: Some(10001),
                run_as_group: Some(10001),
                fs_group: Some(10001),
                run_as_non_root: Some(true),
                ..PodSecurityContext::default()
            }),
            topology_spread_constraints: vec![TopologySpreadConstraint {
                max_skew: 2,
                topology_key: "kubernetes.io/hostname".to_owned(),
                when_unsatisfiable: "DoNotSchedule".to_owned(),
                label_selector: Some(LabelSelector {
                    match_labels: Some(strings(&[("app.kubernetes.io/instance", "events")])),
                    ..LabelSelector::default()
                }),
                ..TopologySpreadConstraint::default()
            }],
            priority_class_name: Some("runnel-critical".to_owned()),
            service_account_name: Some("runnel-broker".to_owned()),
        }),
        security: Some(SecuritySpec {
            tls: Some(TlsSpec {
                client_auth: ClientAuth::Required,
                certificates: CertificatesSpec {
                    issuer: Issuer::CertManager,
                    issuer_ref: Some(IssuerRef {
                        name: "runnel-ca".to_owned(),
                        kind: "ClusterIssuer".to_owned(),
                        group: "cert-manager.io".to_owned(),
                    }),
                    validity_days: 90,
                    renew_before_days: 15,
                    ca_validity_days: 365,
                },
                https_endpoints: true,
            }),
            authorization: Some(AuthorizationSpec {
                super_users: vec!["User:platform-admin".to_owned()],
                allow_everyone_if_no_acl_found: false,
            }),
            authentication: Some(AuthenticationSpec {
                service_account_tokens: true,
                audiences: vec!["runnel".to_owned()],
            }),
        }),
    };
    with_metadata(Cluster::new("events", spec), "streaming")
}

/// What the API server would have set: namespace and uid (the owner
/// references need the uid).
fn with_metadata(mut cluster: Cluster, namespace: &str) -> Cluster {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    cluster.metadata = ObjectMeta {
        namespace: Some(namespace.to_owned()),
        uid: Some(format!("00000000-0000-4000-8000-{:0>12}", name.len())),
        ..cluster.metadata
    };
    cluster
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The samples are Clusters the API server would accept: the golden
    /// files and the validated manifests show real configurations.
    #[test]
    fn samples_pass_the_crd_rules() {
        for (sample, cluster) in all() {
            let spec = serde_json::to_value(&cluster.spec).unwrap();
            ClusterSpec::validate_cel(&spec, None).unwrap_or_else(|e| panic!("{sample}: {e}"));
        }
    }
}
