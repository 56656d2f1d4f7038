//! Cluster reconciler scenarios: the Kubernetes side is a store-backed mock
//! API server ([`FakeApi`]); where the reconciler needs the brokers' view
//! (rolls, scale-in), the brokers are a real Runnel cluster (etcd + broker
//! processes with ids 0..n, like StatefulSet ordinals).

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use runnel_client::{Admin, ClientConfig};
use runnel_tests::cluster::TestCluster;
use serde_json::{Value, json};

use super::reconcile;
use crate::context::{Connector, Context, OperatorConfig};
use crate::crd::{Cluster, ClusterSpec};
use crate::fixtures::{FakeApi, MockApi};
use crate::metrics::Metrics;

const CLUSTER_PATH: &str = "/apis/runnel.dev/v1alpha1/namespaces/ns/clusters/main";
const STS_PATH: &str = "/apis/apps/v1/namespaces/ns/statefulsets/main-broker";

fn cluster(spec: Value) -> Cluster {
    let mut object: Cluster = serde_json::from_value(json!({
        "apiVersion": "runnel.dev/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "main", "namespace": "ns", "uid": "u-1", "generation": 1},
        "spec": spec,
    }))
    .expect("a valid Cluster");
    object.spec =
        serde_json::from_value::<ClusterSpec>(serde_json::to_value(&object.spec).unwrap()).unwrap();
    object
}

fn context(client: kube::Client, bootstrap: &str) -> Arc<Context> {
    let config = OperatorConfig {
        broker_image: "runnel/broker:test".into(),
        resync: Duration::from_secs(60),
    };
    Arc::new(Context::new(
        client,
        config,
        Arc::new(Metrics::default()),
        Connector::fixed(bootstrap),
    ))
}

/// Reconcile `cluster` once against `api`; the stored Cluster (with the
/// status the reconcile wrote) comes back for the next round.
async fn run(
    api: &mut FakeApi,
    mock: &mut MockApi,
    ctx: &Arc<Context>,
    cluster: Cluster,
) -> (Action, Cluster) {
    api.insert(CLUSTER_PATH, serde_json::to_value(&cluster).unwrap());
    api.log.clear();
    let task = tokio::spawn(reconcile(Arc::new(cluster), ctx.clone()));
    let action = api.serve(mock, task).await.expect("reconcile");
    let stored = serde_json::from_value(api.store[CLUSTER_PATH].clone()).unwrap();
    (action, stored)
}

fn condition<'a>(
    cluster: &'a Cluster,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let status = cluster.status.as_ref().expect("status written");
    crate::crd::condition::get(&status.conditions, type_)
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

#[tokio::test]
async fn creates_every_object_and_a_second_reconcile_writes_nothing() {
    let (client, mut mock) = MockApi::new();
    let ctx = context(client, "127.0.0.1:1");
    let mut api = FakeApi::new();
    let (_, stored) = run(&mut api, &mut mock, &ctx, cluster(json!({"replicas": 3}))).await;
    let writes = api.writes().join("\n");
    for path in [
        "PATCH /api/v1/namespaces/ns/configmaps/main-config",
        "PATCH /api/v1/namespaces/ns/services/main-brokers",
        "PATCH /api/v1/namespaces/ns/services/main-client",
        "PATCH /apis/apps/v1/namespaces/ns/statefulsets/main-broker",
        "PATCH /apis/policy/v1/namespaces/ns/poddisruptionbudgets/main-broker",
        "PATCH /apis/apps/v1/namespaces/ns/statefulsets/main-etcd",
        "PATCH /api/v1/namespaces/ns/services/main-etcd-client",
        "PATCH /apis/runnel.dev/v1alpha1/namespaces/ns/clusters/main/status",
    ] {
        assert!(writes.contains(path), "missing {path} in\n{writes}");
    }
    let sts = &api.store[STS_PATH];
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(sts["metadata"]["ownerReferences"][0]["kind"], "Cluster");
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");
    let ready = condition(&stored, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "BrokersUnreachable")
    );
    assert_eq!(
        stored.status.as_ref().unwrap().bootstrap.as_deref(),
        Some("main-client.ns.svc:9092")
    );
    // Kafka shares the gRPC port by default.
    assert_eq!(
        stored.status.as_ref().unwrap().kafka_bootstrap.as_deref(),
        Some("main-client.ns.svc:9092")
    );

    // Nothing changed: reads only.
    run(&mut api, &mut mock, &ctx, stored).await;
    assert!(api.writes().is_empty(), "{:?}", api.writes());
}

/// A Kafka-only port reaches the API server: in both Services, the broker
/// container and its advertised address, and the status patch; turning
/// Kafka off again takes the port away and the Kafka bootstrap out of the
/// status.
#[tokio::test]
async fn a_dedicated_kafka_port_is_applied_and_reported() {
    let (client, mut mock) = MockApi::new();
    let ctx = context(client, "127.0.0.1:1");
    let mut api = FakeApi::new();
    let spec = json!({"replicas": 3, "kafka": {"port": 9093}});
    let (_, stored) = run(&mut api, &mut mock, &ctx, cluster(spec)).await;
    let ports = |api: &FakeApi, path: &str| -> Vec<(String, i64)> {
        api.store[path]["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["port"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    for service in ["main-brokers", "main-client"] {
        let path = format!("/api/v1/namespaces/ns/services/{service}");
        assert!(
            ports(&api, &path).contains(&("kafka".to_owned(), 9093)),
            "{service}: {:?}",
            ports(&api, &path)
        );
    }
    let container = &api.store[STS_PATH]["spec"]["template"]["spec"]["containers"][0];
    let env = |name: &str| {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(
        env("RUNNEL_KAFKA_ADVERTISE"),
        Some(json!("$(POD_NAME).main-brokers.$(POD_NAMESPACE).svc:9093"))
    );
    assert_eq!(env("RUNNEL_KAFKA_SHARED_LISTENER"), Some(json!("false")));
    let status = stored.status.clone().unwrap();
    assert_eq!(
        status.kafka_bootstrap.as_deref(),
        Some("main-client.ns.svc:9093")
    );
    assert_eq!(status.kafka_security_protocol.as_deref(), Some("PLAINTEXT"));
    assert_eq!(status.bootstrap.as_deref(), Some("main-client.ns.svc:9092"));

    let mut off = stored;
    off.spec.kafka.enabled = false;
    off.spec.kafka.port = None;
    let (_, stored) = run(&mut api, &mut mock, &ctx, off).await;
    let writes = api.writes();
    assert!(
        writes.contains(&"PATCH /apis/runnel.dev/v1alpha1/namespaces/ns/clusters/main/status"),
        "{writes:?}"
    );
    assert!(
        !ports(&api, "/api/v1/namespaces/ns/services/main-client")
            .iter()
            .any(|(name, _)| name == "kafka")
    );
    let status = stored.status.unwrap();
    assert_eq!(status.kafka_bootstrap, None);
    assert_eq!(status.kafka_security_protocol, None);
}

#[tokio::test]
async fn a_spec_change_rewrites_only_what_it_touches() {
    let (client, mut mock) = MockApi::new();
    let ctx = context(client, "127.0.0.1:1");
    let mut api = FakeApi::new();
    let (_, mut stored) = run(&mut api, &mut mock, &ctx, cluster(json!({"replicas": 3}))).await;
    // A static setting: it goes into the file, so the brokers roll.
    stored
        .spec
        .config
        .insert("num.partitions".into(), "6".into());
    run(&mut api, &mut mock, &ctx, stored).await;
    let writes = api.writes();
    assert!(
        writes.contains(&"PATCH /api/v1/namespaces/ns/configmaps/main-config"),
        "{writes:?}"
    );
    // The config hash is in the pod template: a new revision to roll.
    assert!(
        writes.contains(&"PATCH /apis/apps/v1/namespaces/ns/statefulsets/main-broker"),
        "{writes:?}"
    );
    assert!(
        !writes.iter().any(|w| w.contains("/services/")),
        "{writes:?}"
    );
}

#[tokio::test]
async fn invalid_broker_config_is_reported_and_nothing_is_applied() {
    let (client, mut mock) = MockApi::new();
    let ctx = context(client, "127.0.0.1:1");
    let mut api = FakeApi::new();
    let spec = json!({"replicas": 3, "config": {"broker.id": "7"}});
    let (_, stored) = run(&mut api, &mut mock, &ctx, cluster(spec)).await;
    let writes: Vec<&str> = api
        .writes()
        .into_iter()
        .filter(|w| !w.contains("/events"))
        .collect();
    assert_eq!(
        writes,
        vec!["PATCH /apis/runnel.dev/v1alpha1/namespaces/ns/clusters/main/status"]
    );
    assert!(
        api.log
            .iter()
            .any(|w| w == "POST /apis/events.k8s.io/v1/namespaces/ns/events")
    );
    let ready = condition(&stored, "Ready");
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(ready.message.contains("broker.id"), "{}", ready.message);
}

/// A StatefulSet at `replicas` whose update revision is `r2`, and its pods
/// (all Ready) at revision `pod_revision`.
fn statefulset_with_pods(api: &mut FakeApi, replicas: i32, pod_revision: &str) {
    api.insert(
        STS_PATH,
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "main-broker", "namespace": "ns"},
               "spec": {"replicas": replicas, "selector": {}, "template": {}},
               "status": {"replicas": replicas, "readyReplicas": replicas, "updateRevision": "r2"}}),
    );
    for id in 0..replicas {
        api.insert(
            &format!("/api/v1/namespaces/ns/pods/main-broker-{id}"),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": format!("main-broker-{id}"), "namespace": "ns",
                                "labels": {"apps.kubernetes.io/pod-index": id.to_string(),
                                           "controller-revision-hash": pod_revision}},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
    }
}

async fn admin(bootstrap: &str) -> Admin {
    Admin::connect(ClientConfig::new(bootstrap).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn rolls_one_pod_at_a_time_only_while_every_isr_is_full() {
    let mut brokers = TestCluster::start_from(0, 3, &[]).unwrap();
    brokers
        .wait_registered(Duration::from_secs(20))
        .await
        .unwrap();
    let bootstrap = brokers.bootstrap();
    let admin = admin(&bootstrap).await;
    admin
        .create_topic("orders", 3, 3, &[("min.insync.replicas", "2")])
        .await
        .unwrap();
    brokers
        .wait_for_leader("orders", 2, &[0, 1, 2], Some(3), Duration::from_secs(20))
        .await
        .unwrap();

    let (client, mut mock) = MockApi::new();
    let ctx = context(client, &bootstrap);
    let mut api = FakeApi::new();
    statefulset_with_pods(&mut api, 3, "r1");
    let (_, stored) = run(&mut api, &mut mock, &ctx, cluster(json!({"replicas": 3}))).await;
    let deletes: Vec<&str> = api
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("DELETE"))
        .collect();
    let controller = stored
        .status
        .as_ref()
        .unwrap()
        .controller
        .expect("controller id");
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert!(
        !deletes[0].ends_with(&format!("main-broker-{controller}")),
        "controller first: {deletes:?}"
    );
    assert_eq!(condition(&stored, "Progressing").reason, "RollingRestart");

    // A broker dies: its partitions are under-replicated, so the roll waits
    // (the deleted pod is "back" on r1 for this round).
    statefulset_with_pods(&mut api, 3, "r1");
    let victim = (0..3).find(|b| *b != controller).unwrap();
    brokers.broker_mut(victim).kill9().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let p = brokers.partition("orders", 0).await.unwrap();
        if p.isr.len() < 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "ISR never shrank");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, stored) = run(&mut api, &mut mock, &ctx, stored).await;
    assert!(
        !api.writes().iter().any(|w| w.starts_with("DELETE")),
        "{:?}",
        api.writes()
    );
    let progressing = condition(&stored, "Progressing");
    assert_eq!(progressing.reason, "RollingRestartWaiting");
    assert!(
        progressing.message.contains("under-replicated"),
        "{}",
        progressing.message
    );
    assert_eq!(condition(&stored, "Degraded").reason, "UnderReplicated");
}

#[tokio::test]
async fn scale_in_moves_replicas_off_before_the_statefulset_shrinks() {
    let brokers = TestCluster::start_from(0, 3, &[]).unwrap();
    brokers
        .wait_registered(Duration::from_secs(20))
        .await
        .unwrap();
    let bootstrap = brokers.bootstrap();
    let admin = admin(&bootstrap).await;
    admin.create_topic("events", 6, 2, &[]).await.unwrap();
    brokers
        .wait_for_leader("events", 5, &[0, 1, 2], Some(2), Duration::from_secs(20))
        .await
        .unwrap();

    let (client, mut mock) = MockApi::new();
    let ctx = context(client, &bootstrap);
    let mut api = FakeApi::new();
    statefulset_with_pods(&mut api, 3, "r2");
    let (_, mut stored) = run(&mut api, &mut mock, &ctx, cluster(json!({"replicas": 2}))).await;
    assert_eq!(
        api.store[STS_PATH]["spec"]["replicas"], 3,
        "shrunk before draining"
    );
    assert_eq!(stored.status.as_ref().unwrap().draining_brokers, vec![2]);
    assert_eq!(condition(&stored, "Progressing").reason, "ScaleInWaiting");

    // The reassignments finish on the brokers; then the StatefulSet shrinks.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metadata = brokers.metadata(&["events"]).await.unwrap();
        let on_2 = metadata.topics[0]
            .partitions
            .iter()
            .filter(|p| p.replicas.contains(&2))
            .count();
        let running = admin.list_partition_reassignments(&[]).await.unwrap().len();
        if on_2 == 0 && running == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker 2 still holds {on_2} replicas"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The status the reconcile wrote came back; later rounds see it.
    for _ in 0..2 {
        stored = run(&mut api, &mut mock, &ctx, stored).await.1;
    }
    assert_eq!(api.store[STS_PATH]["spec"]["replicas"], 2);
    assert!(stored.status.as_ref().unwrap().draining_brokers.is_empty());
}

#[tokio::test]
async fn scale_in_below_a_topics_replication_factor_is_blocked() {
    let brokers = TestCluster::start_from(0, 3, &[]).unwrap();
    brokers
        .wait_registered(Duration::from_secs(20))
        .await
        .unwrap();
    let bootstrap = brokers.bootstrap();
    admin(&bootstrap)
        .await
        .create_topic("wide", 2, 3, &[])
        .await
        .unwrap();
    brokers
        .wait_for_leader("wide", 1, &[0, 1, 2], Some(3), Duration::from_secs(20))
        .await
        .unwrap();

    let (client, mut mock) = MockApi::new();
    let ctx = context(client, &bootstrap);
    let mut api = FakeApi::new();
    statefulset_with_pods(&mut api, 3, "r2");
    let (_, stored) = run(&mut api, &mut mock, &ctx, cluster(json!({"replicas": 2}))).await;
    assert_eq!(api.store[STS_PATH]["spec"]["replicas"], 3);
    let degraded = condition(&stored, "Degraded");
    assert_eq!(degraded.reason, "ScaleInBlocked");
    assert!(degraded.message.contains("wide"), "{}", degraded.message);
    assert!(
        admin(&bootstrap)
            .await
            .list_partition_reassignments(&[])
            .await
            .unwrap()
            .is_empty()
    );
}

/// Replicas per broker of `topic`, from the brokers' metadata.
async fn replica_counts(
    brokers: &TestCluster,
    topic: &str,
) -> std::collections::BTreeMap<i32, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for p in &brokers.metadata(&[topic]).await.unwrap().topics[0].partitions {
        for r in &p.replicas {
            *counts.entry(*r).or_default() += 1;
        }
    }
    counts
}

/// Brokers 0 and 1 with an RF-2 topic of `partitions` on them, then broker 2
/// started and registered (holding nothing yet): a scale-out from 2 to 3.
async fn grown_to_three(topic: &str, partitions: u32) -> (TestCluster, Admin) {
    let mut brokers = TestCluster::start_from(0, 2, &[]).unwrap();
    brokers
        .wait_registered(Duration::from_secs(20))
        .await
        .unwrap();
    let admin = admin(&brokers.bootstrap()).await;
    admin.create_topic(topic, partitions, 2, &[]).await.unwrap();
    brokers
        .wait_for_leader(
            topic,
            partitions - 1,
            &[0, 1],
            Some(2),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    brokers.add_broker(2, &[]).unwrap();
    brokers
        .wait_for("broker 2 registered", Duration::from_secs(20), || async {
            let metadata = brokers.metadata(&[]).await.ok()?;
            metadata.brokers.iter().any(|b| b.id == 2).then_some(())
        })
        .await
        .unwrap();
    (brokers, admin)
}

#[tokio::test]
async fn scale_out_spreads_replicas_onto_the_new_broker() {
    let (brokers, admin) = grown_to_three("grow", 6).await;
    let bootstrap = brokers.bootstrap();

    let (client, mut mock) = MockApi::new();
    let ctx = context(client, &bootstrap);
    let mut api = FakeApi::new();
    statefulset_with_pods(&mut api, 2, "r2");
    let (_, stored) = run(&mut api, &mut mock, &ctx, cluster(json!({"replicas": 3}))).await;
    assert_eq!(api.store[STS_PATH]["spec"]["replicas"], 3);
    assert_eq!(condition(&stored, "Progressing").reason, "Rebalancing");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let counts = replica_counts(&brokers, "grow").await;
        let running = admin.list_partition_reassignments(&[]).await.unwrap().len();
        let (min, max) = (
            counts.values().min().copied(),
            counts.values().max().copied(),
        );
        if running == 0 && counts.len() == 3 && max.unwrap() - min.unwrap() <= 1 {
            assert_eq!(counts.values().sum::<usize>(), 12, "{counts:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not rebalanced: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn scale_out_without_rebalance_moves_nothing() {
    let (brokers, admin) = grown_to_three("stay", 4).await;
    let bootstrap = brokers.bootstrap();

    let (client, mut mock) = MockApi::new();
    let ctx = context(client, &bootstrap);
    let mut api = FakeApi::new();
    statefulset_with_pods(&mut api, 2, "r2");
    run(
        &mut api,
        &mut mock,
        &ctx,
        cluster(json!({"replicas": 3, "rebalanceOnScaleOut": false})),
    )
    .await;
    assert_eq!(api.store[STS_PATH]["spec"]["replicas"], 3);
    assert!(
        admin
            .list_partition_reassignments(&[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(replica_counts(&brokers, "stay").await.get(&2), None);
}

/// The brokers' dynamic cluster defaults (source DYNAMIC_DEFAULT).
async fn dynamic_configs(admin: &Admin) -> std::collections::BTreeMap<String, String> {
    admin
        .describe_cluster_configs()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.source == runnel_proto::v1::ConfigSource::DynamicDefault as i32)
        .map(|e| (e.name, e.value))
        .collect()
}

#[tokio::test]
async fn dynamic_config_is_applied_live_without_a_roll_and_drift_is_reverted() {
    let brokers = TestCluster::start_from(0, 3, &[]).unwrap();
    brokers
        .wait_registered(Duration::from_secs(20))
        .await
        .unwrap();
    let bootstrap = brokers.bootstrap();
    let admin = admin(&bootstrap).await;

    let (client, mut mock) = MockApi::new();
    let ctx = context(client, &bootstrap);
    let mut api = FakeApi::new();
    statefulset_with_pods(&mut api, 3, "r2");
    let spec =
        json!({"replicas": 3, "config": {"num.partitions": "3", "log.retention.ms": "3600000"}});
    let (_, mut stored) = run(&mut api, &mut mock, &ctx, cluster(spec)).await;
    assert_eq!(dynamic_configs(&admin).await["log.retention.ms"], "3600000");
    assert!(
        api.log.iter().any(|l| l.contains("/events")),
        "ConfigApplied event"
    );
    let file =
        api.store["/api/v1/namespaces/ns/configmaps/main-config"]["data"]["server.toml"].clone();
    assert!(
        !file.as_str().unwrap().contains("log.retention.ms"),
        "{file}"
    );

    // A new dynamic value: the brokers take it; no StatefulSet or ConfigMap write, no pod deleted.
    stored
        .spec
        .config
        .insert("log.retention.ms".into(), "7200000".into());
    stored = run(&mut api, &mut mock, &ctx, stored).await.1;
    let writes = api.writes();
    assert!(
        !writes.iter().any(|w| w.contains("statefulsets")
            || w.contains("configmaps")
            || w.starts_with("DELETE")),
        "{writes:?}"
    );
    assert_eq!(dynamic_configs(&admin).await["log.retention.ms"], "7200000");

    // Made outside Kubernetes: reverted on the next pass.
    let drift =
        std::collections::BTreeMap::from([("log.retention.bytes".to_owned(), "1000".to_owned())]);
    admin
        .alter_cluster_configs(&drift, &[], false)
        .await
        .unwrap();
    run(&mut api, &mut mock, &ctx, stored).await;
    let now = dynamic_configs(&admin).await;
    assert!(!now.contains_key("log.retention.bytes"), "{now:?}");
    assert_eq!(now["log.retention.ms"], "7200000");
}

/// `spec.security` with the operator's CA: the first pass makes the CA,
/// the bundle, the brokers' and the operator's certificates and the token
/// file before the StatefulSet that mounts them; the next pass writes
/// nothing (the certificates are not reissued).
#[tokio::test]
async fn security_secrets_come_first_and_are_kept() {
    let (client, mut mock) = MockApi::new();
    let ctx = context(client, "127.0.0.1:1");
    let mut api = FakeApi::new();
    let spec = json!({"replicas": 3, "security": {"tls": {}, "authorization": {}}});
    let (_, stored) = run(&mut api, &mut mock, &ctx, cluster(spec)).await;
    let writes = api.writes();
    let position = |path: &str| {
        writes
            .iter()
            .position(|w| *w == format!("PATCH {path}"))
            .unwrap_or_else(|| panic!("no PATCH {path} in {writes:?}"))
    };
    let sts = position(STS_PATH);
    for secret in [
        "main-cluster-ca",
        "main-cluster-ca-cert",
        "main-broker-tls",
        "main-operator-tls",
        "main-tokens",
    ] {
        assert!(position(&format!("/api/v1/namespaces/ns/secrets/{secret}")) < sts);
    }
    let broker_tls = &api.store["/api/v1/namespaces/ns/secrets/main-broker-tls"];
    assert_eq!(broker_tls["type"], "kubernetes.io/tls");
    assert_eq!(
        broker_tls["metadata"]["ownerReferences"][0]["kind"],
        "Cluster"
    );
    let env = api.store[STS_PATH]["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(env.contains("RUNNEL_AUTHORIZER_ENABLE"), "{env}");

    run(&mut api, &mut mock, &ctx, stored).await;
    assert!(api.writes().is_empty(), "{:?}", api.writes());
}

/// `issuer: CertManager`: Certificates instead of Secrets; the CA bundle
/// Secret is copied from cert-manager's `ca.crt` once it has issued.
#[tokio::test]
async fn cert_manager_issues_and_the_bundle_follows() {
    let (client, mut mock) = MockApi::new();
    let ctx = context(client, "127.0.0.1:1");
    let mut api = FakeApi::new();
    let spec = json!({"replicas": 1, "security": {"tls": {"certificates": {
        "issuer": "CertManager", "issuerRef": {"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"},
        "validityDays": 90, "renewBeforeDays": 10, "caValidityDays": 365}}}});
    let (_, stored) = run(&mut api, &mut mock, &ctx, cluster(spec)).await;
    let certificate = "/apis/cert-manager.io/v1/namespaces/ns/certificates/main-broker-tls";
    assert_eq!(api.store[certificate]["spec"]["issuerRef"]["name"], "ca");
    assert!(
        api.store
            .contains_key("/apis/cert-manager.io/v1/namespaces/ns/certificates/main-operator-tls")
    );
    let bundle = "/api/v1/namespaces/ns/secrets/main-cluster-ca-cert";
    assert!(!api.store.contains_key(bundle));
    assert!(
        !api.store
            .contains_key("/api/v1/namespaces/ns/secrets/main-cluster-ca")
    );

    // cert-manager has issued.
    api.insert(
        "/api/v1/namespaces/ns/secrets/main-broker-tls",
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "main-broker-tls", "namespace": "ns"},
               "data": {"ca.crt": "Q0EgUEVN", "tls.crt": "eA==", "tls.key": "eQ=="}}),
    );
    run(&mut api, &mut mock, &ctx, stored).await;
    assert_eq!(api.store[bundle]["data"]["ca.crt"], "Q0EgUEVN");
}

/// cert-manager asked for but not installed: `Ready=False,
/// CertManagerMissing` says so instead of a reconcile error loop.
#[tokio::test]
async fn cert_manager_missing_is_reported() {
    let (client, mut mock) = MockApi::new();
    let ctx = context(client, "127.0.0.1:1");
    let mut api = FakeApi::new();
    api.unserved.push("/apis/cert-manager.io/".into());
    let spec = json!({"replicas": 1, "security": {"tls": {"certificates": {
        "issuer": "CertManager", "issuerRef": {"name": "ca"}}}}});
    let (_, stored) = run(&mut api, &mut mock, &ctx, cluster(spec)).await;
    let ready = condition(&stored, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "CertManagerMissing")
    );
    assert!(
        ready.message.contains("install cert-manager"),
        "{}",
        ready.message
    );
}
