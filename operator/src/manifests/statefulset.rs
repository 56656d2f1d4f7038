//! The broker StatefulSet `<c>-broker`: pod `<c>-broker-<i>` runs broker id
//! `i` with its own volume. The operator owns the rollout (update strategy
//! `OnDelete`: it deletes one pod at a time once the cluster is healthy) and
//! the scale-in (it drains brokers before lowering `replicas`).
//!
//! Everything a broker must not get from `spec.config` comes from the
//! environment, which beats the config file: broker id, listen and advertised
//! addresses, data directory, cluster name, etcd endpoints and rack.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecurityContext, TopologySpreadConstraint, Volume,
    VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::{CONFIG_DIR, CONFIG_FILE, CONFIG_HASH_ANNOTATION};
use super::services::{GRPC_PORT, HTTP_PORT, KAFKA_PORT};
use super::{config, etcd, names, namespace, object_meta, security, selector};
use crate::Result;
use crate::crd::Cluster;
use crate::crd::cluster::StorageSpec;

/// Where the data volume is mounted.
pub const DATA_MOUNT: &str = "/var/lib/runnel";
/// The broker's data directory: a subdirectory of the volume, because the
/// root of a fresh ext4 volume holds `lost+found`, which the broker would
/// take for a stray file in its log directory.
pub const DATA_DIR: &str = "/var/lib/runnel/data";
/// The uid/gid of the default pod security context (distroless `nonroot`).
pub const NONROOT_ID: i64 = 65532;
/// The label Kubernetes (1.28+) puts on every StatefulSet pod with its
/// ordinal: the broker id.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// Broker StatefulSet `<c>-broker` with `replicas` pods (the reconciler
/// passes `spec.replicas`, or the old count while a scale-in drains), running
/// `spec.image` or else `default_image`.
pub fn statefulset(cluster: &Cluster, replicas: i32, default_image: &str) -> Result<StatefulSet> {
    let spec = &cluster.spec;
    let template = spec.template.clone().unwrap_or_default();
    let hash = config::config_hash(&config::broker_config_toml(cluster)?);

    let mut pod_labels = names::labels(cluster, "broker");
    // Overrides first, then ours: the selector labels must stay as they are
    // or the StatefulSet would lose its pods.
    let mut merged = template.labels.clone();
    merged.append(&mut pod_labels);
    let mut annotations = template.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), hash);

    let mut spread = Vec::new();
    if let Some(rack) = &spec.rack {
        spread.push(TopologySpreadConstraint {
            max_skew: 1,
            topology_key: rack.topology_key.clone(),
            // A preference: a cluster with fewer racks than brokers, or a
            // rack without room, must still run every broker.
            when_unsatisfiable: "ScheduleAnyway".to_owned(),
            label_selector: Some(selector(cluster, "broker")),
            ..TopologySpreadConstraint::default()
        });
    }
    spread.extend(template.topology_spread_constraints.iter().cloned());

    let mut volumes = vec![
        Volume {
            name: "config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(cluster),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    if let Some(security) = &spec.security {
        volumes.extend(security::broker_volumes(security, cluster).0);
    }

    let pod = PodSpec {
        containers: vec![broker_container(cluster, default_image)?],
        // Service links would put `<SERVICE>_PORT=tcp://…` variables of
        // every Service in the namespace into the environment; one named
        // like a `RUNNEL_*` setting (a Service `runnel` gives `RUNNEL_PORT`…)
        // would reach the broker's flag parser.
        enable_service_links: Some(false),
        // A clean shutdown writes snapshots and hands partition leadership
        // over; recovery after a kill rereads the logs instead.
        termination_grace_period_seconds: Some(60),
        security_context: Some(
            template
                .security_context
                .clone()
                .unwrap_or_else(default_pod_security_context),
        ),
        affinity: Some(
            template
                .affinity
                .clone()
                .unwrap_or_else(|| spread_over_nodes(cluster, "broker")),
        ),
        tolerations: non_empty(template.tolerations.clone()),
        node_selector: non_empty_map(template.node_selector.clone()),
        priority_class_name: template.priority_class_name.clone(),
        service_account_name: template.service_account_name.clone(),
        topology_spread_constraints: non_empty(spread),
        volumes: Some(volumes),
        ..PodSpec::default()
    };

    Ok(StatefulSet {
        metadata: object_meta(cluster, names::statefulset(cluster), "broker")?,
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(names::headless_service(cluster)),
            selector: selector(cluster, "broker"),
            // Brokers start together; none waits for another to be ready
            // (they become ready only once the cluster has formed).
            pod_management_policy: Some("Parallel".to_owned()),
            // The operator rolls pods itself, one at a time, and only while
            // no partition would go under min.insync.replicas.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_owned()),
                ..StatefulSetUpdateStrategy::default()
            }),
            persistent_volume_claim_retention_policy: Some(claim_retention(&spec.storage)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(merged),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: Some(vec![volume_claim(cluster, &spec.storage, "broker")]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    })
}

fn broker_container(cluster: &Cluster, default_image: &str) -> Result<Container> {
    let spec = &cluster.spec;
    let ns = namespace(cluster)?;
    let name = kube::ResourceExt::name_any(cluster);
    let grpc = spec.listeners.grpc;
    let http = spec.listeners.http;
    let mut env = vec![
        // POD_NAME and POD_NAMESPACE first: later values refer to them as
        // $(VAR), which Kubernetes expands only from variables defined
        // earlier in the list.
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env(
            "RUNNEL_BROKER_ID",
            &format!("metadata.labels['{POD_INDEX_LABEL}']"),
        ),
        value_env(
            "RUNNEL_ADVERTISE",
            format!(
                "$(POD_NAME).{}.$(POD_NAMESPACE).svc:{grpc}",
                names::headless_service(cluster)
            ),
        ),
        value_env("RUNNEL_LISTEN", format!("0.0.0.0:{grpc}")),
        value_env("RUNNEL_HTTP_LISTEN", format!("0.0.0.0:{http}")),
        value_env("RUNNEL_DATA_DIR", DATA_DIR.to_owned()),
        // Unique per Cluster, so several Clusters can share one external
        // etcd (metadata lives under /runnel/<cluster.name>/).
        value_env("RUNNEL_CLUSTER", format!("{ns}.{name}")),
        value_env("RUNNEL_ETCD_ENDPOINTS", etcd::etcd_endpoints(cluster)),
    ];
    // Kafka on the gRPC port only without a port of its own: with one, that
    // port is the only Kafka address (Services, status, NetworkPolicies),
    // and the brokers advertise it even to clients that came in on the
    // gRPC port. Set only when off: the broker's default is on, and a new
    // variable in every pod template would roll every broker of every
    // Cluster on an operator upgrade.
    if !(spec.kafka.enabled && spec.kafka.port.is_none()) {
        env.push(value_env(
            "RUNNEL_KAFKA_SHARED_LISTENER",
            "false".to_owned(),
        ));
    }
    let dedicated_kafka = spec.dedicated_kafka_port();
    if let Some(kafka) = dedicated_kafka {
        env.push(value_env("RUNNEL_KAFKA_LISTEN", format!("0.0.0.0:{kafka}")));
        // What Metadata and FindCoordinator return for this broker: its
        // stable name under the headless Service, as for gRPC, so a Kafka
        // client reaches each partition's leader directly. (The shared
        // port needs no such setting: there the broker hands out
        // RUNNEL_ADVERTISE.)
        env.push(value_env(
            "RUNNEL_KAFKA_ADVERTISE",
            format!(
                "$(POD_NAME).{}.$(POD_NAMESPACE).svc:{kafka}",
                names::headless_service(cluster)
            ),
        ));
    }
    let https = spec.tls().is_some_and(|t| t.https_endpoints);
    let mut security_mounts = Vec::new();
    if let Some(security) = &spec.security {
        env.extend(security::broker_env(security, cluster));
        security_mounts = security::broker_volumes(security, cluster).1;
    }
    if let Some(rack) = &spec.rack {
        // The pod carries its node's topology labels when the API server
        // runs the PodTopologyLabelsAdmission plugin (Kubernetes 1.33+),
        // which copies `topology.kubernetes.io/zone` and `…/region` from the
        // node onto pods at binding. Without it (or for another node label)
        // the variable is empty, which the broker takes as "no rack".
        env.push(field_env(
            "RUNNEL_RACK",
            &format!("metadata.labels['{}']", rack.topology_key),
        ));
    }

    Ok(Container {
        name: "broker".to_owned(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| default_image.to_owned()),
        ),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        args: Some(vec![
            "--config".to_owned(),
            format!("{CONFIG_DIR}/{CONFIG_FILE}"),
        ]),
        env: Some(env),
        ports: Some(
            [
                container_port(GRPC_PORT, grpc),
                container_port(HTTP_PORT, http),
            ]
            .into_iter()
            .chain(dedicated_kafka.map(|kafka| container_port(KAFKA_PORT, kafka)))
            .collect(),
        ),
        // Ready = registered in the cluster and serving.
        readiness_probe: Some(Probe {
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..http_probe("/readyz", HTTP_PORT, https)
        }),
        // Alive = the process answers; a slow disk or a busy replica
        // fetcher must not get it killed, hence the tolerance.
        liveness_probe: Some(Probe {
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            failure_threshold: Some(6),
            ..http_probe("/healthz", HTTP_PORT, https)
        }),
        // A broker recovering many partitions after a crash (rereading
        // segments, rebuilding indexes) can take minutes; until it first
        // answers, liveness is not checked. 10 s × 180 = 30 minutes.
        startup_probe: Some(Probe {
            period_seconds: Some(10),
            failure_threshold: Some(180),
            ..http_probe("/healthz", HTTP_PORT, https)
        }),
        resources: spec.resources.clone(),
        security_context: Some(restricted_container_security_context()),
        volume_mounts: Some(
            [
                VolumeMount {
                    name: "config".to_owned(),
                    mount_path: CONFIG_DIR.to_owned(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "data".to_owned(),
                    mount_path: DATA_MOUNT.to_owned(),
                    ..VolumeMount::default()
                },
                // The root filesystem is read-only; anything that wants a
                // scratch file gets it here.
                VolumeMount {
                    name: "tmp".to_owned(),
                    mount_path: "/tmp".to_owned(),
                    ..VolumeMount::default()
                },
            ]
            .into_iter()
            .chain(security_mounts)
            .collect(),
        ),
        ..Container::default()
    })
}

/// `whenDeleted`: Delete only when the user asked (`storage.deleteClaim`).
/// `whenScaled`: always Retain — the StatefulSet would delete the volume of
/// a removed pod as soon as `replicas` drops, and the volume may still hold
/// the only copy of partitions if the drain did not finish (a scale-in the
/// operator did not make, or one interrupted). Claims of removed brokers
/// stay until deleted by hand (docs/operator.md, "Scaling"); a later
/// scale-out reuses them.
pub(crate) fn claim_retention(
    storage: &StorageSpec,
) -> StatefulSetPersistentVolumeClaimRetentionPolicy {
    StatefulSetPersistentVolumeClaimRetentionPolicy {
        when_deleted: Some(
            if storage.delete_claim {
                "Delete"
            } else {
                "Retain"
            }
            .to_owned(),
        ),
        when_scaled: Some("Retain".to_owned()),
    }
}

/// Volume claim template `data`: one ReadWriteOnce volume per pod.
pub(crate) fn volume_claim(
    cluster: &Cluster,
    storage: &StorageSpec,
    component: &str,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".to_owned()),
            // The claims outlive the StatefulSet; labels find them.
            labels: Some(names::labels(cluster, component)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// Non-root with a group that owns the volumes.
pub(crate) fn default_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_user: Some(NONROOT_ID),
        run_as_group: Some(NONROOT_ID),
        fs_group: Some(NONROOT_ID),
        // Re-own a volume only when its root is not already ours: a
        // recursive chown of a large log directory delays every restart.
        fs_group_change_policy: Some("OnRootMismatch".to_owned()),
        run_as_non_root: Some(true),
        ..PodSecurityContext::default()
    }
}

/// What the "restricted" Pod Security Standard asks of a container.
pub(crate) fn restricted_container_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

/// Prefer one pod of `component` per node: losing a node then costs one
/// replica of each partition, not several. Preferred, not required, so a
/// cluster with fewer nodes than pods still runs.
pub(crate) fn spread_over_nodes(cluster: &Cluster, component: &str) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        label_selector: Some(selector(cluster, component)),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

pub(crate) fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

pub(crate) fn value_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value),
        ..EnvVar::default()
    }
}

pub(crate) fn container_port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

/// An HTTP(S) GET probe. Over HTTPS the kubelet does not verify the
/// certificate, so the brokers' own certificate serves.
pub(crate) fn http_probe(path: &str, port: &str, https: bool) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(port.to_owned()),
            scheme: https.then(|| "HTTPS".to_owned()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn non_empty_map(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}

/// The env var `name` of the broker container (tests, and the reconciler's
/// checks of a running pod's wiring).
pub fn broker_env<'a>(sts: &'a StatefulSet, name: &str) -> Option<&'a EnvVar> {
    broker_container_of(sts)?
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)
}

/// The `broker` container of a broker StatefulSet.
pub fn broker_container_of(sts: &StatefulSet) -> Option<&Container> {
    sts.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "broker")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::cluster::RackSpec;
    use crate::manifests::samples;

    fn spec(sts: &StatefulSet) -> &StatefulSetSpec {
        sts.spec.as_ref().unwrap()
    }

    fn pod(sts: &StatefulSet) -> &PodSpec {
        spec(sts).template.spec.as_ref().unwrap()
    }

    fn field_path(env: &EnvVar) -> &str {
        &env.value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path
    }

    #[test]
    fn operator_rolls_and_scales_itself() {
        let cluster = samples::minimal();
        let sts = statefulset(&cluster, 5, "img").unwrap();
        let s = spec(&sts);
        assert_eq!(s.replicas, Some(5), "the explicit count, not spec.replicas");
        assert_eq!(
            s.update_strategy.as_ref().unwrap().type_.as_deref(),
            Some("OnDelete")
        );
        assert_eq!(s.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(s.service_name.as_deref(), Some("minimal-brokers"));
        let retention = s.persistent_volume_claim_retention_policy.as_ref().unwrap();
        assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
        assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
        // The selector must match the pod labels, or the API server refuses it.
        let labels = s
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        for (k, v) in s.selector.match_labels.as_ref().unwrap() {
            assert_eq!(labels.get(k), Some(v));
        }
    }

    #[test]
    fn delete_claim_deletes_volumes_with_the_cluster_only() {
        let mut cluster = samples::minimal();
        cluster.spec.storage.delete_claim = true;
        let sts = statefulset(&cluster, 3, "img").unwrap();
        let retention = spec(&sts)
            .persistent_volume_claim_retention_policy
            .as_ref()
            .unwrap();
        assert_eq!(retention.when_deleted.as_deref(), Some("Delete"));
        assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
    }

    #[test]
    fn broker_identity_comes_from_the_pod() {
        let cluster = samples::minimal();
        let sts = statefulset(&cluster, 3, "runnel/broker:test").unwrap();
        let id = broker_env(&sts, "RUNNEL_BROKER_ID").unwrap();
        assert_eq!(
            field_path(id),
            "metadata.labels['apps.kubernetes.io/pod-index']"
        );
        let value = |name| broker_env(&sts, name).unwrap().value.clone().unwrap();
        assert_eq!(
            value("RUNNEL_ADVERTISE"),
            "$(POD_NAME).minimal-brokers.$(POD_NAMESPACE).svc:9092"
        );
        assert_eq!(value("RUNNEL_CLUSTER"), "default.minimal");
        assert_eq!(value("RUNNEL_DATA_DIR"), "/var/lib/runnel/data");
        assert_eq!(
            value("RUNNEL_ETCD_ENDPOINTS"),
            "http://minimal-etcd-client.default.svc:2379"
        );
        // $(POD_NAME) expands only if POD_NAME comes earlier.
        let env = broker_container_of(&sts).unwrap().env.as_ref().unwrap();
        let position = |name| env.iter().position(|e| e.name == name).unwrap();
        assert!(position("POD_NAME") < position("RUNNEL_ADVERTISE"));
        assert!(position("POD_NAMESPACE") < position("RUNNEL_ADVERTISE"));
        assert!(broker_env(&sts, "RUNNEL_RACK").is_none());
        let container = broker_container_of(&sts).unwrap();
        assert_eq!(container.image.as_deref(), Some("runnel/broker:test"));
        assert_eq!(
            container.args.as_deref().unwrap(),
            ["--config", "/etc/runnel/server.toml"]
        );
    }

    fn container_ports(sts: &StatefulSet) -> Vec<(String, i32)> {
        broker_container_of(sts)
            .unwrap()
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap(), p.container_port))
            .collect()
    }

    #[test]
    fn kafka_shares_the_grpc_port_by_default() {
        let sts = statefulset(&samples::minimal(), 3, "img").unwrap();
        let value = |name| broker_env(&sts, name).map(|e| e.value.clone().unwrap());
        // The broker's default (shared) is left alone: no variable, so
        // existing pod templates, and so the brokers, are unchanged.
        assert_eq!(value("RUNNEL_KAFKA_SHARED_LISTENER"), None);
        assert_eq!(value("RUNNEL_KAFKA_LISTEN"), None);
        assert_eq!(value("RUNNEL_KAFKA_ADVERTISE"), None);
        assert_eq!(
            container_ports(&sts),
            [("grpc".to_owned(), 9092), ("http".to_owned(), 9095)]
        );
    }

    #[test]
    fn a_dedicated_kafka_port_is_listened_on_and_advertised_per_pod() {
        let mut cluster = samples::minimal();
        cluster.spec.kafka.port = Some(9093);
        let sts = statefulset(&cluster, 3, "img").unwrap();
        let value = |name| broker_env(&sts, name).map(|e| e.value.clone().unwrap());
        assert_eq!(
            value("RUNNEL_KAFKA_SHARED_LISTENER").as_deref(),
            Some("false")
        );
        assert_eq!(
            value("RUNNEL_KAFKA_LISTEN").as_deref(),
            Some("0.0.0.0:9093")
        );
        assert_eq!(
            value("RUNNEL_KAFKA_ADVERTISE").as_deref(),
            Some("$(POD_NAME).minimal-brokers.$(POD_NAMESPACE).svc:9093")
        );
        let env = broker_container_of(&sts).unwrap().env.as_ref().unwrap();
        let position = |name| env.iter().position(|e| e.name == name).unwrap();
        assert!(position("POD_NAME") < position("RUNNEL_KAFKA_ADVERTISE"));
        assert!(position("POD_NAMESPACE") < position("RUNNEL_KAFKA_ADVERTISE"));
        assert_eq!(
            container_ports(&sts),
            [
                ("grpc".to_owned(), 9092),
                ("http".to_owned(), 9095),
                ("kafka".to_owned(), 9093)
            ]
        );
    }

    #[test]
    fn kafka_off_leaves_grpc_alone() {
        let mut cluster = samples::minimal();
        cluster.spec.kafka.enabled = false;
        // A port left behind is ignored (the CRD refuses it anyway).
        cluster.spec.kafka.port = Some(9093);
        let sts = statefulset(&cluster, 3, "img").unwrap();
        let value = |name| broker_env(&sts, name).map(|e| e.value.clone().unwrap());
        assert_eq!(
            value("RUNNEL_KAFKA_SHARED_LISTENER").as_deref(),
            Some("false")
        );
        assert_eq!(value("RUNNEL_KAFKA_LISTEN"), None);
        assert_eq!(container_ports(&sts).len(), 2);
    }

    #[test]
    fn rack_spreads_pods_and_sets_the_broker_rack() {
        let mut cluster = samples::minimal();
        cluster.spec.rack = Some(RackSpec {
            topology_key: "example.com/rack".to_owned(),
        });
        let sts = statefulset(&cluster, 3, "img").unwrap();
        let rack = broker_env(&sts, "RUNNEL_RACK").unwrap();
        assert_eq!(field_path(rack), "metadata.labels['example.com/rack']");
        let spread = pod(&sts).topology_spread_constraints.as_ref().unwrap();
        assert_eq!(spread.len(), 1);
        assert_eq!(spread[0].topology_key, "example.com/rack");
        assert_eq!(spread[0].max_skew, 1);
        assert_eq!(spread[0].when_unsatisfiable, "ScheduleAnyway");
    }

    #[test]
    fn config_change_changes_the_pod_template() {
        let cluster = samples::minimal();
        let mut changed = cluster.clone();
        changed
            .spec
            .config
            .insert("num.partitions".to_owned(), "12".to_owned());
        let hash = |c: &Cluster| {
            let sts = statefulset(c, 3, "img").unwrap();
            spec(&sts)
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[CONFIG_HASH_ANNOTATION]
                .clone()
        };
        assert_ne!(hash(&cluster), hash(&changed));
    }

    #[test]
    fn template_overrides_replace_defaults_but_not_selector_labels() {
        let cluster = samples::full();
        let template = cluster.spec.template.clone().unwrap();
        let sts = statefulset(&cluster, 3, "img").unwrap();
        let p = pod(&sts);
        assert_eq!(p.affinity, template.affinity);
        assert_eq!(p.security_context, template.security_context);
        let mut hijack = cluster.clone();
        hijack
            .spec
            .template
            .as_mut()
            .unwrap()
            .labels
            .insert("app.kubernetes.io/component".to_owned(), "other".to_owned());
        let sts = statefulset(&hijack, 3, "img").unwrap();
        let labels = spec(&sts)
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone()
            .unwrap();
        assert_eq!(labels["app.kubernetes.io/component"], "broker");

        let defaults = statefulset(&samples::minimal(), 3, "img").unwrap();
        let p = pod(&defaults);
        assert_eq!(
            p.security_context.as_ref().unwrap().run_as_user,
            Some(NONROOT_ID)
        );
        assert!(p.affinity.as_ref().unwrap().pod_anti_affinity.is_some());
        let c = broker_container_of(&defaults).unwrap();
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
    }

    /// The broker binary accepts what the StatefulSet gives it: its
    /// arguments, every `RUNNEL_*` variable (as the flag clap reads it from,
    /// with downward-API values and `$(VAR)` references filled in as
    /// Kubernetes would) and the ConfigMap's `server.toml`, through the
    /// broker's own `BrokerArgs` parser and `BrokerConfig::load`. A renamed
    /// broker flag or variable fails here instead of in a crash-looping pod.
    #[test]
    fn the_broker_accepts_the_arguments_environment_and_config_file() {
        use clap::{CommandFactory, Parser};
        use runnel_broker::{BrokerArgs, BrokerConfig};

        let flags: BTreeMap<String, String> = BrokerArgs::command()
            .get_arguments()
            .filter_map(|a| {
                let env = a.get_env()?.to_str()?.to_owned();
                Some((env, format!("--{}", a.get_long()?)))
            })
            .collect();
        for cluster in [samples::minimal(), samples::full()] {
            let sts = statefulset(&cluster, 3, "img").unwrap();
            let container = broker_container_of(&sts).unwrap();
            let dir = std::env::temp_dir().join(format!(
                "runnel-broker-args-{}-{}",
                std::process::id(),
                kube::ResourceExt::name_any(&cluster)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(CONFIG_FILE);
            let toml = config::config_map(&cluster).unwrap().data.unwrap()[CONFIG_FILE].clone();
            std::fs::write(&file, toml).unwrap();

            let mut argv = vec!["runnel-broker".to_owned()];
            for arg in container.args.as_ref().unwrap() {
                // The ConfigMap is mounted at CONFIG_DIR in the pod.
                argv.push(arg.replace(CONFIG_DIR, dir.to_str().unwrap()));
            }
            // What the downward API gives pod 2 of the StatefulSet.
            let pod_name = format!("{}-2", names::statefulset(&cluster));
            let fields = BTreeMap::from([
                ("metadata.name".to_owned(), pod_name.clone()),
                ("metadata.namespace".to_owned(), "default".to_owned()),
                (
                    format!("metadata.labels['{POD_INDEX_LABEL}']"),
                    "2".to_owned(),
                ),
            ]);
            for env in container.env.as_ref().unwrap() {
                let value = match &env.value {
                    Some(v) => v
                        .replace("$(POD_NAME)", &pod_name)
                        .replace("$(POD_NAMESPACE)", "default"),
                    None => {
                        let path = field_path(env);
                        // A node label copied to the pod (rack): any string.
                        fields
                            .get(path)
                            .cloned()
                            .unwrap_or_else(|| "zone-a".to_owned())
                    }
                };
                if env.name == "POD_NAME" || env.name == "POD_NAMESPACE" {
                    continue; // only for $(VAR) expansion above
                }
                let flag = flags.get(&env.name).unwrap_or_else(|| {
                    panic!(
                        "the StatefulSet sets {}, which runnel-broker does not read",
                        env.name
                    )
                });
                argv.push(format!("{flag}={value}"));
            }
            let args = BrokerArgs::try_parse_from(&argv)
                .unwrap_or_else(|e| panic!("runnel-broker refuses {argv:?}: {e}"));
            let config = BrokerConfig::load(&args)
                .unwrap_or_else(|e| panic!("runnel-broker refuses {argv:?}: {e}"));
            assert_eq!(config.broker_id, 2);
            assert_eq!(config.listen.port() as i32, cluster.spec.listeners.grpc);
            assert_eq!(
                config.http_listen.port() as i32,
                cluster.spec.listeners.http
            );
            assert_eq!(config.data_dir, std::path::PathBuf::from(DATA_DIR));
            // Kafka: the address pod 2 hands Kafka clients is its own name
            // under the headless Service, at the port the Services carry.
            let headless = names::headless_service(&cluster);
            assert_eq!(
                config.kafka_shared_listener,
                cluster.spec.kafka.port.is_none()
            );
            match cluster.spec.dedicated_kafka_port() {
                Some(port) => {
                    let listen = config.kafka_listen_address().unwrap().unwrap();
                    assert_eq!(listen.port() as i32, port);
                    assert_eq!(
                        config.kafka_advertised_address().unwrap(),
                        format!("{pod_name}.{headless}.default.svc:{port}")
                    );
                }
                None => {
                    assert_eq!(config.kafka_advertised_address(), None);
                    assert_eq!(
                        config.advertise,
                        format!(
                            "{pod_name}.{headless}.default.svc:{}",
                            cluster.spec.listeners.grpc
                        )
                    );
                }
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
