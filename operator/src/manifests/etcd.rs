//! The managed etcd, for a Cluster whose `spec.metadataStore` names no
//! external one: StatefulSet `<c>-etcd` with headless Service `<c>-etcd`
//! (peer and per-member client DNS) and client Service `<c>-etcd-client`
//! (what brokers connect to), plus its disruption budget (see [`super::pdb`]).
//!
//! Members bootstrap statically: every member's peer URL is known in
//! advance from the StatefulSet's pod names, so `--initial-cluster` lists
//! them all and no discovery service is needed.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, PodSpec, PodTemplateSpec, Probe, Service, ServiceSpec,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::services::port;
use super::statefulset::{
    claim_retention, container_port, default_pod_security_context, field_env, http_probe,
    restricted_container_security_context, spread_over_nodes, volume_claim,
};
use super::{names, namespace, object_meta, pdb, selector};
use crate::Result;
use crate::crd::Cluster;
use crate::crd::cluster::ManagedEtcd;

/// etcd's client port.
pub const CLIENT_PORT: i32 = 2379;
/// etcd's peer (raft) port.
pub const PEER_PORT: i32 = 2380;
const DATA_MOUNT: &str = "/var/lib/etcd";

/// The managed etcd of `cluster`, or `None` when it uses an external one.
/// No `metadataStore`, or one without `managed` settings, means a managed
/// etcd with [`ManagedEtcd::default`].
pub fn managed_etcd(cluster: &Cluster) -> Option<ManagedEtcd> {
    match &cluster.spec.metadata_store {
        None => Some(ManagedEtcd::default()),
        Some(store) if store.external.is_some() => None,
        Some(store) => Some(store.managed.clone().unwrap_or_default()),
    }
}

/// The brokers' `etcd.endpoints`: the external endpoints, comma-separated,
/// or the managed etcd's client Service.
pub fn etcd_endpoints(cluster: &Cluster) -> String {
    match cluster
        .spec
        .metadata_store
        .as_ref()
        .and_then(|s| s.external.as_ref())
    {
        Some(external) => external.endpoints.join(","),
        None => format!(
            "http://{}.{}.svc:{CLIENT_PORT}",
            names::etcd_client_service(cluster),
            cluster.namespace().unwrap_or_else(|| "default".into())
        ),
    }
}

/// The objects of a managed etcd.
#[derive(Clone, Debug, PartialEq)]
pub struct EtcdObjects {
    pub headless_service: Service,
    pub client_service: Service,
    pub statefulset: StatefulSet,
    /// `None` for a single member (see [`pdb::etcd_pdb`]).
    pub pdb: Option<PodDisruptionBudget>,
}

/// The managed etcd's objects, or `None` with an external etcd.
pub fn etcd_objects(cluster: &Cluster) -> Result<Option<EtcdObjects>> {
    let Some(etcd) = managed_etcd(cluster) else {
        return Ok(None);
    };
    Ok(Some(EtcdObjects {
        headless_service: headless_service(cluster)?,
        client_service: client_service(cluster)?,
        statefulset: statefulset(cluster, &etcd)?,
        pdb: pdb::etcd_pdb(cluster, etcd.replicas)?,
    }))
}

/// Headless Service `<c>-etcd`: member DNS names for peer traffic and the
/// advertised client URLs.
pub fn headless_service(cluster: &Cluster) -> Result<Service> {
    Ok(Service {
        metadata: object_meta(cluster, names::etcd_headless_service(cluster), "etcd")?,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            // Members must resolve each other to form a quorum, before any
            // of them can be ready.
            publish_not_ready_addresses: Some(true),
            selector: Some(names::selector_labels(cluster, "etcd")),
            ports: Some(vec![port("client", CLIENT_PORT), port("peer", PEER_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// Client Service `<c>-etcd-client`: the brokers' `etcd.endpoints`.
pub fn client_service(cluster: &Cluster) -> Result<Service> {
    Ok(Service {
        metadata: object_meta(cluster, names::etcd_client_service(cluster), "etcd")?,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(names::selector_labels(cluster, "etcd")),
            ports: Some(vec![port("client", CLIENT_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// StatefulSet `<c>-etcd`.
pub fn statefulset(cluster: &Cluster, etcd: &ManagedEtcd) -> Result<StatefulSet> {
    let ns = namespace(cluster)?;
    let name = cluster.name_any();
    let sts = names::etcd_statefulset(cluster);
    let service = names::etcd_headless_service(cluster);
    let member_url = |member: &str, port: i32| format!("http://{member}.{service}.{ns}.svc:{port}");
    let initial_cluster = (0..etcd.replicas)
        .map(|i| {
            let member = format!("{sts}-{i}");
            format!("{member}={}", member_url(&member, PEER_PORT))
        })
        .collect::<Vec<_>>()
        .join(",");
    let own_url = |port: i32| format!("http://$(POD_NAME).{service}.$(POD_NAMESPACE).svc:{port}");
    let args = vec![
        "--name=$(POD_NAME)".to_owned(),
        format!("--data-dir={DATA_MOUNT}/data"),
        format!("--listen-client-urls=http://0.0.0.0:{CLIENT_PORT}"),
        format!("--advertise-client-urls={}", own_url(CLIENT_PORT)),
        format!("--listen-peer-urls=http://0.0.0.0:{PEER_PORT}"),
        format!("--initial-advertise-peer-urls={}", own_url(PEER_PORT)),
        format!("--initial-cluster={initial_cluster}"),
        // Only read when a member starts with an empty data dir; a
        // restarted member rejoins from its data.
        "--initial-cluster-state=new".to_owned(),
        // Distinct per Cluster, so members of two clusters that could
        // reach each other never join one another.
        format!("--initial-cluster-token={ns}-{name}"),
        // Keep one hour of history: without compaction every revision of
        // every key is kept until the backend quota fills and etcd turns
        // read-only (offset commits write often).
        "--auto-compaction-mode=periodic".to_owned(),
        "--auto-compaction-retention=1h".to_owned(),
    ];

    let container = Container {
        name: "etcd".to_owned(),
        image: Some(etcd.image.clone()),
        image_pull_policy: cluster
            .spec
            .image_pull_policy
            .map(|p| p.as_str().to_owned()),
        command: Some(vec!["etcd".to_owned()]),
        args: Some(args),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
        ]),
        ports: Some(vec![
            container_port("client", CLIENT_PORT),
            container_port("peer", PEER_PORT),
        ]),
        // Ready = part of a cluster with a leader.
        readiness_probe: Some(Probe {
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..http_probe("/health", "client", false)
        }),
        // Alive = this member answers. `serializable=true` asks the member
        // alone: plain /health fails while the cluster has no quorum, and
        // restarting the surviving members would not bring it back; nor
        // would restarting one whose backend is full (NOSPACE alarm).
        liveness_probe: Some(Probe {
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            failure_threshold: Some(6),
            ..http_probe("/health?exclude=NOSPACE&serializable=true", "client", false)
        }),
        // Replaying a large WAL after a restart can take a while.
        startup_probe: Some(Probe {
            period_seconds: Some(10),
            failure_threshold: Some(30),
            ..http_probe("/health?exclude=NOSPACE&serializable=true", "client", false)
        }),
        resources: etcd.resources.clone(),
        security_context: Some(restricted_container_security_context()),
        volume_mounts: Some(vec![k8s_openapi::api::core::v1::VolumeMount {
            name: "data".to_owned(),
            mount_path: DATA_MOUNT.to_owned(),
            ..Default::default()
        }]),
        ..Container::default()
    };

    Ok(StatefulSet {
        metadata: object_meta(cluster, sts.clone(), "etcd")?,
        spec: Some(StatefulSetSpec {
            replicas: Some(etcd.replicas),
            service_name: Some(service.clone()),
            selector: selector(cluster, "etcd"),
            // All members must start to form the first quorum; with
            // OrderedReady member 0 would wait forever for readiness.
            pod_management_policy: Some("Parallel".to_owned()),
            persistent_volume_claim_retention_policy: Some(claim_retention(&etcd.storage)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names::labels(cluster, "etcd")),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // etcd reads every `ETCD_*` variable as a flag; a Service
                    // named `etcd` in the namespace would inject `ETCD_PORT`.
                    enable_service_links: Some(false),
                    security_context: Some(default_pod_security_context()),
                    affinity: Some(spread_over_nodes(cluster, "etcd")),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![volume_claim(cluster, &etcd.storage, "etcd")]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::cluster::{ExternalEtcd, MetadataStoreSpec};
    use crate::manifests::samples;

    #[test]
    fn external_etcd_means_no_etcd_objects() {
        let mut cluster = samples::minimal();
        cluster.spec.metadata_store = Some(MetadataStoreSpec {
            external: Some(ExternalEtcd {
                endpoints: vec!["http://a:2379".into(), "https://b:2379".into()],
            }),
            managed: None,
        });
        assert!(etcd_objects(&cluster).unwrap().is_none());
        assert_eq!(etcd_endpoints(&cluster), "http://a:2379,https://b:2379");
    }

    #[test]
    fn managed_by_default() {
        let cluster = samples::minimal();
        let objects = etcd_objects(&cluster).unwrap().unwrap();
        assert_eq!(
            etcd_endpoints(&cluster),
            "http://minimal-etcd-client.default.svc:2379"
        );
        let spec = objects.statefulset.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        let args = spec.template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert!(args.contains(&
            "--initial-cluster=minimal-etcd-0=http://minimal-etcd-0.minimal-etcd.default.svc:2380,\
             minimal-etcd-1=http://minimal-etcd-1.minimal-etcd.default.svc:2380,\
             minimal-etcd-2=http://minimal-etcd-2.minimal-etcd.default.svc:2380"
                .to_owned()), "{args:?}");
        assert!(args.contains(&"--initial-cluster-token=default-minimal".to_owned()));
        assert!(objects.pdb.is_some());
        let headless = objects.headless_service.spec.unwrap();
        assert_eq!(headless.publish_not_ready_addresses, Some(true));
    }

    #[test]
    fn one_member_has_no_budget() {
        let mut cluster = samples::minimal();
        cluster.spec.metadata_store = Some(MetadataStoreSpec {
            external: None,
            managed: Some(ManagedEtcd {
                replicas: 1,
                ..ManagedEtcd::default()
            }),
        });
        let objects = etcd_objects(&cluster).unwrap().unwrap();
        assert!(objects.pdb.is_none());
        let args = objects
            .statefulset
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .containers[0]
            .args
            .clone()
            .unwrap();
        assert!(args.contains(
            &"--initial-cluster=minimal-etcd-0=http://minimal-etcd-0.minimal-etcd.default.svc:2380"
                .to_owned()
        ));
    }
}
