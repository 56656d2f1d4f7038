//! Scenario tests of the Topic reconciler: the Kubernetes side is the mock
//! API server (each request answered in order and checked), the broker side
//! is either absent (a listener that must stay untouched) or a real
//! etcd + 3-broker cluster.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use http::Method;
use runnel_client::{Admin, AlterTopic, TopicDescription};
use serde_json::{Value, json};

use super::*;
use crate::Connector;
use crate::controller::test_support::*;
use crate::fixtures::MockApi;

/// One reconcile of `topic` with the finalizer in place: answers the
/// conflict check's list (`others` plus `topic`), the Cluster lookup, and
/// the Events and status at the end.
async fn pass(
    api: &mut MockApi,
    ctx: &Arc<Context>,
    topic: &Value,
    others: &[&Value],
) -> (Result<Action>, Written) {
    let task = tokio::spawn(reconcile(typed(topic), ctx.clone()));
    let mut listed = others.to_vec();
    listed.push(topic);
    answer_topic_list(api, &listed).await;
    answer_cluster(api).await;
    finish(api, task, topic).await
}

/// `topic` as the next pass sees it: with the status the last pass wrote.
fn with_status(topic: &mut Value, written: &Written) {
    if let Some(status) = &written.status {
        topic["status"] = status.clone();
    }
}

/// `topic` with the last pass's status and a new `spec` (on [`CLUSTER`]).
fn respec(topic: &mut Value, written: &Written, spec: Value) -> Value {
    with_status(topic, written);
    topic["spec"] = spec;
    topic["spec"]["cluster"] = json!(CLUSTER);
    topic.clone()
}

/// The config overrides set on the topic itself.
fn overrides(topic: &TopicDescription) -> BTreeMap<String, String> {
    topic
        .configs
        .iter()
        .filter(|e| e.source == ConfigSource::Topic as i32)
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn describe(admin: &Admin, name: &str) -> TopicDescription {
    admin.describe_topic(name).await.expect("describe topic")
}

// ------------------------------------------------- Kubernetes side only

#[tokio::test]
async fn a_fresh_topic_gets_the_finalizer_before_anything_else() {
    let (client, mut api) = MockApi::new();
    let brokers = NoBrokers::bind().await;
    let ctx = context(client, brokers.connector());
    let mut fresh = topic("orders", json!({"partitions": 3}));
    fresh["metadata"]["finalizers"] = json!(null);
    let task = tokio::spawn(reconcile(typed(&fresh), ctx));

    let patch = api
        .expect(Method::PATCH, &path("topics", Some("orders")))
        .await;
    assert_eq!(
        patch.body,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [TOPIC_FINALIZER]},
        ])
    );
    patch.ok(topic("orders", json!({"partitions": 3})));
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    api.expect_silence(100).await;
    brokers.assert_untouched().await;
}

#[tokio::test]
async fn a_missing_cluster_is_reported_and_a_repeat_pass_writes_nothing() {
    let (client, mut api) = MockApi::new();
    let brokers = NoBrokers::bind().await;
    let ctx = context(client, brokers.connector());
    let mut orders = topic("orders", json!({"partitions": 3}));

    let run = |orders: Value, ctx: Arc<Context>| tokio::spawn(reconcile(typed(&orders), ctx));
    let task = run(orders.clone(), ctx.clone());
    answer_topic_list(&mut api, &[&orders]).await;
    answer_no_cluster(&mut api).await;
    let (action, written) = finish(&mut api, task, &orders).await;
    assert_eq!(action.unwrap(), Action::requeue(ctx.config.resync));
    let (status, reason, message) = written.condition("Ready");
    assert_eq!((status, reason), ("False", "ClusterNotFound"));
    assert!(message.contains("Cluster main not found"), "{message}");
    assert_eq!(written.status()["observedGeneration"], 1);
    assert_eq!(written.status()["topicName"], "orders");
    assert_eq!(written.events, ["ClusterNotFound"]);

    // Same outcome again: no status write, no second warning.
    with_status(&mut orders, &written);
    let task = run(orders.clone(), ctx.clone());
    answer_topic_list(&mut api, &[&orders]).await;
    answer_no_cluster(&mut api).await;
    let (action, again) = finish(&mut api, task, &orders).await;
    assert!(action.is_ok());
    assert!(again.status.is_none(), "wrote {:?}", again.status);
    assert!(again.events.is_empty(), "{:?}", again.events);
    brokers.assert_untouched().await;
}

#[tokio::test]
async fn a_younger_topic_for_the_same_name_conflicts_and_touches_nothing() {
    let (client, mut api) = MockApi::new();
    let brokers = NoBrokers::bind().await;
    let ctx = context(client, brokers.connector());
    let mut older = topic("orders-v1", json!({"topicName": "orders"}));
    older["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
    // Same broker name on another cluster: no conflict with that one.
    let mut elsewhere = topic("orders-other", json!({"topicName": "orders"}));
    elsewhere["spec"]["cluster"] = json!("other");
    elsewhere["metadata"]["creationTimestamp"] = json!("2023-01-01T00:00:00Z");
    let younger = topic("orders", json!({"partitions": 6}));

    let task = tokio::spawn(reconcile(typed(&younger), ctx.clone()));
    answer_topic_list(&mut api, &[&elsewhere, &older, &younger]).await;
    // No Cluster lookup: `finish` fails on any request but Events/status.
    let (action, written) = finish(&mut api, task, &younger).await;
    assert!(action.is_ok());
    let (status, reason, message) = written.condition("Ready");
    assert_eq!((status, reason), ("False", "ResourceConflict"));
    assert!(message.contains("Topic orders-v1"), "{message}");
    assert!(!message.contains("orders-other"), "{message}");
    assert_eq!(written.events, ["ResourceConflict"]);

    // The older one owns the topic: it goes on to its Cluster.
    let task = tokio::spawn(reconcile(typed(&older), ctx));
    answer_topic_list(&mut api, &[&elsewhere, &older, &younger]).await;
    answer_no_cluster(&mut api).await;
    let (_, written) = finish(&mut api, task, &older).await;
    assert_eq!(written.condition("Ready").1, "ClusterNotFound");
    brokers.assert_untouched().await;
}

#[tokio::test]
async fn unreachable_brokers_are_reported_and_retried_soon() {
    let (client, mut api) = MockApi::new();
    // A port nobody listens on: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap().to_string();
    drop(closed);
    let ctx = context(client, Connector::fixed(address.clone()));
    let orders = topic("orders", json!({}));

    let task = tokio::spawn(reconcile(typed(&orders), ctx.clone()));
    answer_topic_list(&mut api, &[&orders]).await;
    answer_cluster(&mut api).await;
    let (action, written) = finish(&mut api, task, &orders).await;
    assert_eq!(action.unwrap(), Action::requeue(RETRY_SOON));
    let (ready, reason, message) = written.condition("Ready");
    assert_eq!((ready, reason), ("False", "ClusterUnavailable"));
    assert!(message.contains(&address), "{message}");
    assert_eq!(written.events, ["ClusterUnavailable"]);
    assert!(ctx.metrics.encode().contains("reason=\"runnel\""));
}

#[tokio::test]
async fn deleting_with_the_cluster_gone_releases_the_finalizer_without_brokers() {
    let (client, mut api) = MockApi::new();
    let brokers = NoBrokers::bind().await;
    let ctx = context(client, brokers.connector());
    let mut orders = topic("orders", json!({}));
    orders["metadata"]["deletionTimestamp"] = json!("2024-05-02T00:00:00Z");

    let task = tokio::spawn(reconcile(typed(&orders), ctx));
    answer_topic_list(&mut api, &[&orders]).await;
    answer_no_cluster(&mut api).await;
    expect_finalizer_removed(&mut api, &orders).await;
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    api.expect_silence(100).await;
    brokers.assert_untouched().await;
}

#[tokio::test]
async fn deleting_a_conflicting_topic_leaves_the_owners_topic_alone() {
    let (client, mut api) = MockApi::new();
    let brokers = NoBrokers::bind().await;
    let ctx = context(client, brokers.connector());
    let mut owner = topic("orders-v1", json!({"topicName": "orders"}));
    owner["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
    let mut loser = topic("orders", json!({}));
    loser["metadata"]["deletionTimestamp"] = json!("2024-05-02T00:00:00Z");

    let task = tokio::spawn(reconcile(typed(&loser), ctx));
    answer_topic_list(&mut api, &[&owner, &loser]).await;
    // Straight to the finalizer: no Cluster lookup, no broker.
    expect_finalizer_removed(&mut api, &loser).await;
    assert!(task.await.unwrap().is_ok());
    brokers.assert_untouched().await;
}

/// The finalizer helper's JSON patch that drops our finalizer.
async fn expect_finalizer_removed(api: &mut MockApi, topic: &Value) {
    let name = topic["metadata"]["name"].as_str().unwrap();
    let patch = api.expect(Method::PATCH, &path("topics", Some(name))).await;
    assert_eq!(
        patch.body,
        json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": TOPIC_FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ])
    );
    let mut released = topic.clone();
    released["metadata"]["finalizers"] = json!([]);
    patch.ok(released);
}

// ------------------------------------------------------- pure planning

#[test]
fn only_topic_overrides_are_removed_and_only_differences_set() {
    let entry = |name: &str, value: &str, source: ConfigSource| ConfigEntry {
        name: name.into(),
        value: value.into(),
        source: source as i32,
    };
    let current = [
        entry("retention.ms", "1000", ConfigSource::Topic),
        entry("segment.bytes", "4096", ConfigSource::Topic),
        entry("max.message.bytes", "2000", ConfigSource::Topic),
        entry("flush.ms", "1000", ConfigSource::Default),
        entry("min.insync.replicas", "2", ConfigSource::Broker),
    ];
    let wanted = map(&[("retention.ms", "1000"), ("segment.bytes", "8192")]);
    let (set, delete) = config_changes(&current, &wanted);
    assert_eq!(set, [("segment.bytes".to_owned(), "8192".to_owned())]);
    assert_eq!(delete, ["max.message.bytes"]);
}

#[test]
fn shrinking_keeps_the_leader_and_growing_picks_the_emptiest_brokers() {
    let mut load = BTreeMap::from([(1, 5), (2, 1), (3, 1), (4, 0)]);
    // The leader is last: the one before it goes instead.
    assert_eq!(resize(&[1, 2, 3], 3, 2, &mut load), [1, 3]);
    assert_eq!(load[&2], 0);
    // Brokers that are gone (not in `load`) go first.
    assert_eq!(resize(&[9, 1, 3], 1, 2, &mut load), [1, 3]);
    // Fewest replicas first, lowest id on a tie; never one already there.
    assert_eq!(resize(&[1], 1, 3, &mut load), [1, 2, 4]);
    assert_eq!((load[&2], load[&4]), (1, 1));
    assert_eq!(resize(&[3], 3, 2, &mut load), [3, 2]);
}

// ------------------------------------------------ real brokers behind it

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_alter_revert_drift_and_delete_on_real_brokers() {
    let (cluster, admin) = three_brokers().await;
    let (client, mut api) = MockApi::new();
    let ctx = context(client, Connector::fixed(cluster.bootstrap()));
    let mut orders = topic(
        "orders",
        json!({"partitions": 3, "replicationFactor": 3, "config": {"retention.ms": "3600000"}}),
    );

    // Create.
    let (action, written) = pass(&mut api, &ctx, &orders, &[]).await;
    assert_eq!(action.unwrap(), Action::requeue(ctx.config.resync));
    let (ready, reason, _) = written.condition("Ready");
    assert_eq!((ready, reason), ("True", "Created"));
    assert_eq!(written.events, ["Created"]);
    let partitions = written.status()["partitions"].as_array().unwrap().clone();
    assert_eq!(partitions.len(), 3, "{partitions:?}");
    for p in &partitions {
        let replicas = p["replicas"].as_array().unwrap();
        assert_eq!(replicas.len(), 3, "{p}");
        assert!(replicas.contains(&p["leader"]), "{p}");
        assert!(!p["isr"].as_array().unwrap().is_empty(), "{p}");
    }
    let on_brokers = describe(&admin, "orders").await;
    assert_eq!(on_brokers.partitions.len(), 3);
    assert!(on_brokers.partitions.iter().all(|p| p.replicas.len() == 3));
    assert_eq!(overrides(&on_brokers), map(&[("retention.ms", "3600000")]));

    // Nothing changed: nothing written.
    with_status(&mut orders, &written);
    let (_, quiet) = pass(&mut api, &ctx, &orders, &[]).await;
    assert!(quiet.status.is_none(), "wrote {:?}", quiet.status);
    assert!(quiet.events.is_empty(), "{:?}", quiet.events);

    // One more partition, a changed value and a new key.
    orders["spec"]["partitions"] = json!(4);
    orders["spec"]["config"] = json!({"retention.ms": "7200000", "segment.bytes": "1048576"});
    orders["metadata"]["generation"] = json!(2);
    let (_, written) = pass(&mut api, &ctx, &orders, &[]).await;
    let (ready, reason, message) = written.condition("Ready");
    assert_eq!((ready, reason), ("True", "Updated"), "{message}");
    assert!(message.contains("partitions 3 → 4"), "{message}");
    assert_eq!(written.events, ["PartitionsIncreased", "ConfigChanged"]);
    assert_eq!(written.status()["observedGeneration"], 2);
    assert_eq!(written.status()["partitions"].as_array().unwrap().len(), 4);
    let altered = describe(&admin, "orders").await;
    assert_eq!(altered.partitions.len(), 4);
    assert_eq!(
        overrides(&altered),
        map(&[("retention.ms", "7200000"), ("segment.bytes", "1048576")])
    );

    // Drift: an override set behind the operator's back, and a key dropped
    // from the spec. Both go; defaults stay untouched.
    admin
        .alter_topic(AlterTopic::new("orders").set_config("max.message.bytes", "2000"))
        .await
        .unwrap();
    with_status(&mut orders, &written);
    orders["spec"]["config"] = json!({"retention.ms": "7200000"});
    orders["metadata"]["generation"] = json!(3);
    let (_, written) = pass(&mut api, &ctx, &orders, &[]).await;
    assert_eq!(written.condition("Ready").1, "Updated");
    let reverted = describe(&admin, "orders").await;
    assert_eq!(overrides(&reverted), map(&[("retention.ms", "7200000")]));
    assert_eq!(reverted.configs.len(), on_brokers.configs.len());

    // Delete: the topic goes from the brokers, then the finalizer.
    orders["metadata"]["deletionTimestamp"] = json!("2024-05-02T00:00:00Z");
    let task = tokio::spawn(reconcile(typed(&orders), ctx.clone()));
    answer_topic_list(&mut api, &[&orders]).await;
    answer_cluster(&mut api).await;
    let event = api
        .expect(Method::POST, "/apis/events.k8s.io/v1/namespaces/ns/events")
        .await;
    assert_eq!(event.body["reason"], "Deleted");
    event.echo();
    expect_finalizer_removed(&mut api, &orders).await;
    assert!(task.await.unwrap().is_ok());
    let gone = admin.describe_topic("orders").await.unwrap_err();
    assert_eq!(
        gone.code(),
        Some(ErrorCode::UnknownTopicOrPartition),
        "{gone}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_changes_leave_the_brokers_as_they_were() {
    let (cluster, admin) = three_brokers().await;
    let (client, mut api) = MockApi::new();
    let ctx = context(client, Connector::fixed(cluster.bootstrap()));
    let mut orders = topic(
        "orders",
        json!({"partitions": 3, "replicationFactor": 2, "config": {"retention.ms": "3600000"}}),
    );
    let (_, written) = pass(&mut api, &ctx, &orders, &[]).await;
    assert_eq!(written.condition("Ready").1, "Created");
    let before = describe(&admin, "orders").await;

    // Fewer partitions.
    let spec =
        json!({"partitions": 2, "replicationFactor": 2, "config": {"retention.ms": "3600000"}});
    let current = respec(&mut orders, &written, spec);
    let (_, written) = pass(&mut api, &ctx, &current, &[]).await;
    let (ready, reason, message) = written.condition("Ready");
    assert_eq!((ready, reason), ("False", "NotSupported"));
    assert!(message.contains("can only be added"), "{message}");
    assert_eq!(written.events, ["NotSupported"]);
    assert_eq!(written.status()["partitions"].as_array().unwrap().len(), 3);

    // A bad value alongside a partition increase: neither happens, and the
    // broker's own complaint is the message.
    let spec = json!({"partitions": 4, "replicationFactor": 2, "config": {"retention.ms": "soon"}});
    let current = respec(&mut orders, &written, spec);
    let (_, written) = pass(&mut api, &ctx, &current, &[]).await;
    let (ready, reason, message) = written.condition("Ready");
    assert_eq!((ready, reason), ("False", "InvalidConfig"));
    assert!(
        message.contains("retention.ms") && message.contains("integer"),
        "{message}"
    );
    assert_eq!(written.events, ["InvalidConfig"]);

    // More copies than brokers.
    let spec =
        json!({"partitions": 3, "replicationFactor": 4, "config": {"retention.ms": "3600000"}});
    let current = respec(&mut orders, &written, spec);
    let (_, written) = pass(&mut api, &ctx, &current, &[]).await;
    let (ready, reason, message) = written.condition("Ready");
    assert_eq!((ready, reason), ("False", "InvalidReplicationFactor"));
    assert!(message.contains("only 3 are live"), "{message}");

    let after = describe(&admin, "orders").await;
    assert_eq!(after.partitions.len(), 3);
    assert_eq!(overrides(&after), map(&[("retention.ms", "3600000")]));
    for (a, b) in after.partitions.iter().zip(&before.partitions) {
        assert_eq!(a.replicas, b.replicas);
    }
    assert!(
        admin
            .list_partition_reassignments(&[])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_factor_change_moves_replicas_and_keeps_leaders() {
    let (cluster, admin) = three_brokers().await;
    let (client, mut api) = MockApi::new();
    let ctx = context(client, Connector::fixed(cluster.bootstrap()));
    let mut moving = topic("moving", json!({"partitions": 2, "replicationFactor": 1}));
    let (_, written) = pass(&mut api, &ctx, &moving, &[]).await;
    assert_eq!(written.condition("Ready").1, "Created");
    with_status(&mut moving, &written);
    let leaders: Vec<i32> = describe(&admin, "moving")
        .await
        .partitions
        .iter()
        .map(|p| p.leader)
        .collect();

    // Up to 2 copies: Reassigning, then Ready once the copies caught up.
    moving["spec"]["replicationFactor"] = json!(2);
    moving["metadata"]["generation"] = json!(2);
    let (action, written) = pass(&mut api, &ctx, &moving, &[]).await;
    assert_eq!(action.unwrap(), Action::requeue(RETRY_SOON));
    assert_eq!(written.condition("Ready").1, "Reassigning");
    assert_eq!(written.events, ["ReplicationFactorChanging"]);
    with_status(&mut moving, &written);
    settle(&mut api, &ctx, &mut moving).await;
    let grown = describe(&admin, "moving").await;
    for p in &grown.partitions {
        assert_eq!(p.replicas.len(), 2, "{p:?}");
        assert_eq!(p.replicas[0], leaders[p.partition as usize], "{p:?}");
    }

    // Back down to 1: the leader is the copy that stays.
    moving["spec"]["replicationFactor"] = json!(1);
    moving["metadata"]["generation"] = json!(3);
    let (_, written) = pass(&mut api, &ctx, &moving, &[]).await;
    assert_eq!(written.condition("Ready").1, "Reassigning");
    with_status(&mut moving, &written);
    settle(&mut api, &ctx, &mut moving).await;
    for p in describe(&admin, "moving").await.partitions {
        assert_eq!(p.replicas, [p.leader], "{p:?}");
    }
}

/// Reconcile `topic` until it is Ready again (a reassignment finished).
async fn settle(api: &mut MockApi, ctx: &Arc<Context>, topic: &mut Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, written) = pass(api, ctx, topic, &[]).await;
        with_status(topic, &written);
        let (ready, reason, message) = condition(&topic["status"], "Ready");
        if ready == "True" {
            return;
        }
        assert_eq!(reason, "Reassigning", "{message}");
        assert!(Instant::now() < deadline, "still {reason}: {message}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
