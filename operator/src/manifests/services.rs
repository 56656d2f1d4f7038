//! The broker Services: headless `<c>-brokers`, which gives each broker pod
//! the stable DNS name it advertises
//! (`<c>-broker-<i>.<c>-brokers.<ns>.svc`), and `<c>-client`, the one
//! address clients bootstrap from.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{names, object_meta};
use crate::Result;
use crate::crd::Cluster;

/// Name of the gRPC port (container, Services, probes refer to it by name).
pub const GRPC_PORT: &str = "grpc";
/// Name of the HTTP port: `/healthz`, `/readyz`, `/metrics`.
pub const HTTP_PORT: &str = "http";
/// Name of the Kafka-only port (`spec.kafka.port`); Strimzi and the Kafka
/// docs call a listener's port by its listener name, and so do we.
pub const KAFKA_PORT: &str = "kafka";

/// Headless Service `<c>-brokers`: per-pod DNS records for the brokers.
pub fn headless_service(cluster: &Cluster) -> Result<Service> {
    Ok(Service {
        metadata: object_meta(cluster, names::headless_service(cluster), "broker")?,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            // Brokers find each other (replication, the controller) through
            // these names before they are ready — a broker becomes ready
            // only once it has joined the cluster — so the records must
            // exist for pods that are not ready yet.
            publish_not_ready_addresses: Some(true),
            selector: Some(names::selector_labels(cluster, "broker")),
            ports: Some(broker_ports(cluster)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// Client Service `<c>-client`: a ClusterIP over the ready brokers, for
/// bootstrapping (clients then talk to each partition's leader through the
/// advertised per-pod names) and for scraping `/metrics`.
pub fn client_service(cluster: &Cluster) -> Result<Service> {
    Ok(Service {
        metadata: object_meta(cluster, names::client_service(cluster), "broker")?,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(names::selector_labels(cluster, "broker")),
            ports: Some(broker_ports(cluster)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// gRPC, HTTP and, when Kafka has a port of its own, Kafka: the headless
/// Service must carry it too, or the per-pod names Kafka clients are
/// advertised would resolve to no port in the endpoints (and NetworkPolicy
/// rules naming the Service's ports would not know it).
fn broker_ports(cluster: &Cluster) -> Vec<ServicePort> {
    let listeners = &cluster.spec.listeners;
    let mut ports = vec![
        port(GRPC_PORT, listeners.grpc),
        port(HTTP_PORT, listeners.http),
    ];
    if let Some(kafka) = cluster.spec.dedicated_kafka_port() {
        ports.push(port(KAFKA_PORT, kafka));
    }
    ports
}

/// A TCP port forwarding to the container port of the same name.
pub(crate) fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: number,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::samples;

    #[test]
    fn headless_publishes_not_ready_brokers() {
        let cluster = samples::minimal();
        let svc = headless_service(&cluster).unwrap();
        assert_eq!(svc.metadata.name.as_deref(), Some("minimal-brokers"));
        let spec = svc.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(
            spec.selector.unwrap(),
            names::selector_labels(&cluster, "broker")
        );
        let ports: Vec<_> = spec
            .ports
            .unwrap()
            .into_iter()
            .map(|p| (p.name.unwrap(), p.port))
            .collect();
        assert_eq!(
            ports,
            [("grpc".to_owned(), 9092), ("http".to_owned(), 9095)]
        );
    }

    fn port_list(svc: Service) -> Vec<(String, i32)> {
        svc.spec
            .unwrap()
            .ports
            .unwrap()
            .into_iter()
            .map(|p| (p.name.unwrap(), p.port))
            .collect()
    }

    #[test]
    fn a_dedicated_kafka_port_is_in_both_services() {
        let mut cluster = samples::minimal();
        cluster.spec.kafka.port = Some(9093);
        let wanted = [
            ("grpc".to_owned(), 9092),
            ("http".to_owned(), 9095),
            ("kafka".to_owned(), 9093),
        ];
        assert_eq!(port_list(headless_service(&cluster).unwrap()), wanted);
        assert_eq!(port_list(client_service(&cluster).unwrap()), wanted);
        // The shared port (the default) and Kafka turned off add none.
        for kafka in [None, Some(9093)] {
            let mut cluster = samples::minimal();
            cluster.spec.kafka.port = kafka;
            cluster.spec.kafka.enabled = kafka.is_none();
            assert_eq!(port_list(client_service(&cluster).unwrap()), wanted[..2]);
        }
    }

    #[test]
    fn client_service_uses_the_listener_ports() {
        let mut cluster = samples::minimal();
        cluster.spec.listeners.grpc = 19092;
        let spec = client_service(&cluster).unwrap().spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.publish_not_ready_addresses, None);
        assert_eq!(spec.ports.unwrap()[0].port, 19092);
    }
}
