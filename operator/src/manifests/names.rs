//! Object names and labels, in one place so every builder and reconciler
//! agrees on them.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::crd::Cluster;

/// `app.kubernetes.io/*` labels of one component (`broker` or `etcd`) of a
/// cluster; also the selector of its Services and StatefulSet.
pub fn selector_labels(cluster: &Cluster, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "runnel".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), cluster.name_any()),
        (
            "app.kubernetes.io/component".to_owned(),
            component.to_owned(),
        ),
    ])
}

/// Selector labels plus `managed-by`, for the objects themselves.
pub fn labels(cluster: &Cluster, component: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cluster, component);
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        "runnel-operator".to_owned(),
    );
    labels
}

/// The selector string of the broker pods (the Cluster's scale subresource).
pub fn broker_selector(cluster: &Cluster) -> String {
    selector_labels(cluster, "broker")
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn statefulset(cluster: &Cluster) -> String {
    format!("{}-broker", cluster.name_any())
}

pub fn pdb(cluster: &Cluster) -> String {
    format!("{}-broker", cluster.name_any())
}

pub fn headless_service(cluster: &Cluster) -> String {
    format!("{}-brokers", cluster.name_any())
}

pub fn client_service(cluster: &Cluster) -> String {
    format!("{}-client", cluster.name_any())
}

pub fn config_map(cluster: &Cluster) -> String {
    format!("{}-config", cluster.name_any())
}

pub fn etcd_statefulset(cluster: &Cluster) -> String {
    format!("{}-etcd", cluster.name_any())
}

pub fn etcd_headless_service(cluster: &Cluster) -> String {
    format!("{}-etcd", cluster.name_any())
}

pub fn etcd_client_service(cluster: &Cluster) -> String {
    format!("{}-etcd-client", cluster.name_any())
}

/// Pod `i` of the broker StatefulSet (broker id `i`).
pub fn broker_pod(cluster: &Cluster, id: i32) -> String {
    format!("{}-{id}", statefulset(cluster))
}

/// `<c>-client.<ns>.svc:<grpc>`: what apps inside Kubernetes bootstrap from.
pub fn client_bootstrap(cluster: &Cluster) -> String {
    format!(
        "{}.{}.svc:{}",
        client_service(cluster),
        cluster.namespace().unwrap_or_else(|| "default".into()),
        cluster.spec.listeners.grpc
    )
}

/// `<c>-client.<ns>.svc:<port>` of the Kafka listener (the gRPC port unless
/// Kafka has its own): Kafka clients' `bootstrap.servers`. `None` when the
/// Kafka protocol is off.
pub fn kafka_bootstrap(cluster: &Cluster) -> Option<String> {
    let port = cluster.spec.kafka_port()?;
    Some(format!(
        "{}.{}.svc:{port}",
        client_service(cluster),
        cluster.namespace().unwrap_or_else(|| "default".into()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::samples;

    #[test]
    fn kafka_bootstrap_follows_the_kafka_port() {
        let mut cluster = samples::minimal();
        assert_eq!(
            kafka_bootstrap(&cluster).as_deref(),
            Some("minimal-client.default.svc:9092")
        );
        cluster.spec.kafka.port = Some(9093);
        assert_eq!(
            kafka_bootstrap(&cluster).as_deref(),
            Some("minimal-client.default.svc:9093")
        );
        assert_eq!(
            client_bootstrap(&cluster),
            "minimal-client.default.svc:9092"
        );
        cluster.spec.kafka.enabled = false;
        assert_eq!(kafka_bootstrap(&cluster), None);
    }
}
