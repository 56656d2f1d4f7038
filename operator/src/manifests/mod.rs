//! Pure functions from a `Cluster` to the Kubernetes objects it needs. No
//! I/O: the Cluster reconciler applies what these return, golden tests pin
//! them, and `scripts/test.sh` validates them against the Kubernetes schemas.
//!
//! Naming (for `<c>` = the Cluster's name): StatefulSet and PDB `<c>-broker`
//! (pods `<c>-broker-<i>`, broker id = `i`), headless Service `<c>-brokers`
//! (stable per-pod DNS), client Service `<c>-client`, ConfigMap
//! `<c>-config`; a managed etcd is StatefulSet `<c>-etcd` with headless
//! Service `<c>-etcd` and client Service `<c>-etcd-client`.
//!
//! Where to start reading: [`desired`] (everything a Cluster needs, in apply
//! order), then one module per kind of object:
//! - [`config`]: `spec.config` → the broker's `server.toml` (checked with the
//!   broker's own parser) and its hash, which rolls the brokers on change;
//! - [`services`]: the headless Service (per-pod DNS) and the client Service;
//! - [`statefulset`]: the broker StatefulSet — env, probes, volumes, security;
//! - [`pdb`]: the disruption budgets;
//! - [`etcd`]: the managed etcd (Services, StatefulSet) when no external one
//!   is given;
//! - [`names`]: every object name and label;
//! - [`samples`]: the Clusters the golden tests and `cargo xtask
//!   render-manifests` render.

pub mod config;
pub mod etcd;
pub mod names;
pub mod pdb;
pub mod samples;
pub mod security;
pub mod services;
pub mod statefulset;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{Resource, ResourceExt};
use serde::Serialize;

use crate::crd::Cluster;
use crate::{Error, Result};

pub use names::client_bootstrap;

/// Everything a Cluster needs, as typed objects so a reconciler can
/// server-side-apply each with `Api::<K>::patch`; [`Desired::manifests`]
/// lists them alike, in apply order, for code that treats them generically.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub config_map: ConfigMap,
    pub headless_service: Service,
    pub client_service: Service,
    /// `None` when `spec.metadataStore.external` is set.
    pub etcd: Option<etcd::EtcdObjects>,
    /// cert-manager `Certificate`s (`spec.security.tls.certificates.issuer:
    /// CertManager`); the operator's own issuer makes Secrets instead, in
    /// the reconciler (they depend on what is stored).
    pub certificates: Vec<serde_json::Value>,
    pub statefulset: StatefulSet,
    pub pdb: PodDisruptionBudget,
}

/// One object of [`Desired`] as JSON (with `apiVersion` and `kind`).
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub kind: &'static str,
    pub name: String,
    pub object: serde_json::Value,
}

impl Desired {
    /// Every object, in the order to apply them: config and Services before
    /// the StatefulSets whose pods mount and resolve them, etcd before the
    /// brokers that connect to it.
    pub fn manifests(&self) -> Result<Vec<Manifest>> {
        let mut out = vec![
            manifest(&self.config_map)?,
            manifest(&self.headless_service)?,
            manifest(&self.client_service)?,
        ];
        if let Some(etcd) = &self.etcd {
            out.push(manifest(&etcd.headless_service)?);
            out.push(manifest(&etcd.client_service)?);
            out.push(manifest(&etcd.statefulset)?);
            if let Some(pdb) = &etcd.pdb {
                out.push(manifest(pdb)?);
            }
        }
        for certificate in &self.certificates {
            out.push(Manifest {
                kind: "Certificate",
                name: certificate["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                object: certificate.clone(),
            });
        }
        out.push(manifest(&self.statefulset)?);
        out.push(manifest(&self.pdb)?);
        Ok(out)
    }
}

fn manifest<K>(object: &K) -> Result<Manifest>
where
    K: k8s_openapi::Resource + Serialize + ResourceExt,
{
    Ok(Manifest {
        kind: K::KIND,
        name: object.name_any(),
        object: serde_json::to_value(object)?,
    })
}

/// Everything `cluster` needs, with `spec.replicas` brokers. `default_image`
/// is the operator's `--broker-image`, for Clusters that name no image.
pub fn desired(cluster: &Cluster, default_image: &str) -> Result<Desired> {
    desired_with_replicas(cluster, cluster.spec.replicas, default_image)
}

/// [`desired`] with `replicas` brokers: during a scale-in the reconciler
/// keeps the old count until the brokers being removed are drained.
pub fn desired_with_replicas(
    cluster: &Cluster,
    replicas: i32,
    default_image: &str,
) -> Result<Desired> {
    Ok(Desired {
        config_map: config::config_map(cluster)?,
        headless_service: services::headless_service(cluster)?,
        client_service: services::client_service(cluster)?,
        etcd: etcd::etcd_objects(cluster)?,
        certificates: security::cluster_certificates(cluster)?,
        statefulset: statefulset::statefulset(cluster, replicas, default_image)?,
        pdb: pdb::broker_pdb(cluster)?,
    })
}

/// The metadata every object of `cluster` carries: its name, the Cluster's
/// namespace, the component's labels, and the Cluster as controller owner so
/// Kubernetes garbage-collects the object when the Cluster is deleted.
pub(crate) fn object_meta(cluster: &Cluster, name: String, component: &str) -> Result<ObjectMeta> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(namespace(cluster)?),
        labels: Some(names::labels(cluster, component)),
        owner_references: Some(vec![
            cluster
                .controller_owner_ref(&())
                .ok_or(Error::MissingField("metadata.uid"))?,
        ]),
        ..ObjectMeta::default()
    })
}

/// The Cluster's namespace (always set on a namespaced object read from the
/// API server).
pub(crate) fn namespace(cluster: &Cluster) -> Result<String> {
    cluster
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))
}

/// `matchLabels` for one component's pods.
pub(crate) fn selector(cluster: &Cluster, component: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(names::selector_labels(cluster, component)),
        ..LabelSelector::default()
    }
}

/// Objects as one YAML stream (`---` before each document): how golden
/// files store them.
pub fn to_yaml(manifests: &[Manifest]) -> String {
    manifests
        .iter()
        .map(|m| format!("---\n{}", yaml(&m.object)))
        .collect()
}

/// One object as YAML.
pub fn yaml(object: &serde_json::Value) -> String {
    crate::yaml::to_string(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every object of both samples: named, in the Cluster's namespace,
    /// labelled, and owned by the Cluster (so Kubernetes deletes it with
    /// the Cluster).
    #[test]
    fn every_object_is_owned_labelled_and_namespaced() {
        for (sample, cluster) in samples::all() {
            let manifests = desired(&cluster, samples::DEFAULT_IMAGE)
                .unwrap()
                .manifests()
                .unwrap();
            for m in manifests {
                let meta: ObjectMeta =
                    serde_json::from_value(m.object["metadata"].clone()).unwrap();
                let what = format!("{sample}: {} {}", m.kind, m.name);
                assert_eq!(meta.name.as_ref(), Some(&m.name), "{what}");
                assert_eq!(meta.namespace, cluster.namespace(), "{what}");
                let labels = meta.labels.unwrap();
                assert_eq!(labels["app.kubernetes.io/instance"], cluster.name_any());
                assert_eq!(labels["app.kubernetes.io/managed-by"], "runnel-operator");
                let owners = meta.owner_references.unwrap();
                assert_eq!(owners.len(), 1, "{what}");
                assert_eq!(owners[0].kind, "Cluster", "{what}");
                assert_eq!(owners[0].api_version, "runnel.dev/v1alpha1", "{what}");
                assert_eq!(owners[0].uid, cluster.uid().unwrap(), "{what}");
                assert_eq!(owners[0].controller, Some(true), "{what}");
                assert!(m.object["apiVersion"].is_string(), "{what}");
            }
        }
    }

    #[test]
    fn a_cluster_without_uid_or_namespace_is_refused() {
        let mut cluster = samples::minimal();
        cluster.metadata.uid = None;
        assert!(matches!(
            desired(&cluster, "img"),
            Err(Error::MissingField("metadata.uid"))
        ));
        let mut cluster = samples::minimal();
        cluster.metadata.namespace = None;
        assert!(matches!(
            desired(&cluster, "img"),
            Err(Error::MissingField("metadata.namespace"))
        ));
    }

    #[test]
    fn external_etcd_leaves_out_the_etcd_objects() {
        let kinds = |cluster: &Cluster| -> Vec<String> {
            desired(cluster, "img")
                .unwrap()
                .manifests()
                .unwrap()
                .into_iter()
                .map(|m| format!("{}/{}", m.kind, m.name))
                .collect()
        };
        assert_eq!(
            kinds(&samples::full()),
            [
                "ConfigMap/events-config",
                "Service/events-brokers",
                "Service/events-client",
                "Certificate/events-broker-tls",
                "Certificate/events-operator-tls",
                "StatefulSet/events-broker",
                "PodDisruptionBudget/events-broker",
            ]
        );
        assert_eq!(
            kinds(&samples::minimal()),
            [
                "ConfigMap/minimal-config",
                "Service/minimal-brokers",
                "Service/minimal-client",
                "Service/minimal-etcd",
                "Service/minimal-etcd-client",
                "StatefulSet/minimal-etcd",
                "PodDisruptionBudget/minimal-etcd",
                "StatefulSet/minimal-broker",
                "PodDisruptionBudget/minimal-broker",
            ]
        );
    }

    /// The rendered objects of each sample are the committed
    /// `operator/tests/golden/<sample>.yaml`. After an intended change:
    /// `RUNNEL_UPDATE_GOLDEN=1 cargo nextest run -p runnel-operator`, and
    /// review the diff.
    #[test]
    fn golden() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let update = std::env::var_os("RUNNEL_UPDATE_GOLDEN").is_some_and(|v| v == "1");
        let mut stale = Vec::new();
        for (sample, cluster) in samples::all() {
            let manifests = desired(&cluster, samples::DEFAULT_IMAGE)
                .unwrap()
                .manifests()
                .unwrap();
            let rendered = format!(
                "# Generated by the golden test in operator/src/manifests/mod.rs from\n\
                 # samples::{sample}(); RUNNEL_UPDATE_GOLDEN=1 cargo nextest run -p runnel-operator\n{}",
                to_yaml(&manifests)
            );
            let path = dir.join(format!("{sample}.yaml"));
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &rendered).unwrap();
                continue;
            }
            let Ok(committed) = std::fs::read_to_string(&path) else {
                stale.push(format!("{} is missing", path.display()));
                continue;
            };
            if committed != rendered {
                let line = committed
                    .lines()
                    .zip(rendered.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(committed.lines().count().min(rendered.lines().count()));
                stale.push(format!(
                    "{} differs from what samples::{sample}() renders, first at line {}:\n  \
                     committed: {:?}\n  rendered:  {:?}",
                    path.display(),
                    line + 1,
                    committed.lines().nth(line).unwrap_or("<end of file>"),
                    rendered.lines().nth(line).unwrap_or("<end of file>"),
                ));
            }
        }
        assert!(
            stale.is_empty(),
            "{}\nIf the change is intended, update the golden files with\n  \
             RUNNEL_UPDATE_GOLDEN=1 cargo nextest run -p runnel-operator\nand review the diff.",
            stale.join("\n")
        );
    }
}
