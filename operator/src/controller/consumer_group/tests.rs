//! Scenario tests of the ConsumerGroup reconciler: the mock API server on
//! the Kubernetes side; no brokers, or a real etcd + 3-broker cluster with
//! a real consumer as the group's member.

use std::time::{Duration, Instant};

use runnel_client::{
    ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
};
use serde_json::{Value, json};

use super::*;
use crate::Connector;
use crate::controller::test_support::*;
use crate::fixtures::MockApi;

fn group(name: &str, group_id: &str) -> Value {
    object(
        "ConsumerGroup",
        name,
        json!({"cluster": CLUSTER, "groupId": group_id}),
    )
}

/// One reconcile of `group`: answers the Cluster lookup, then the Events
/// and status at the end.
async fn pass(api: &mut MockApi, ctx: &Arc<Context>, group: &Value) -> (Result<Action>, Written) {
    let task = tokio::spawn(reconcile(typed(group), ctx.clone()));
    answer_cluster(api).await;
    finish(api, task, group).await
}

fn with_status(group: &mut Value, written: &Written) {
    if let Some(status) = &written.status {
        group["status"] = status.clone();
    }
}

/// `(topic, partition, committed, logEnd, lag)` rows of a status.
fn offsets(status: &Value) -> Vec<(String, i64, i64, i64, i64)> {
    status["offsets"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|o| {
                    (
                        o["topic"].as_str().unwrap().to_owned(),
                        o["partition"].as_i64().unwrap(),
                        o["committedOffset"].as_i64().unwrap(),
                        o["logEndOffset"].as_i64().unwrap(),
                        o["lag"].as_i64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Committed offsets on the brokers, by partition of `events`.
async fn committed(admin: &Admin, group: &str) -> Vec<(u32, i64)> {
    let described = admin.describe_group(group).await.unwrap();
    let mut rows: Vec<(u32, i64)> = described
        .lag
        .iter()
        .map(|l| (l.partition, l.committed))
        .collect();
    rows.sort();
    rows
}

// ------------------------------------------------- Kubernetes side only

#[tokio::test]
async fn a_missing_cluster_is_reported_without_touching_brokers() {
    let (client, mut api) = MockApi::new();
    let brokers = NoBrokers::bind().await;
    let ctx = context(client, brokers.connector());
    let billing = group("billing", "billing");
    let task = tokio::spawn(reconcile(typed(&billing), ctx));
    answer_no_cluster(&mut api).await;
    let (action, written) = finish(&mut api, task, &billing).await;
    assert_eq!(action.unwrap(), Action::requeue(RETRY_SOON));
    let (ready, reason, _) = written.condition("Ready");
    assert_eq!((ready, reason), ("False", "ClusterNotFound"));
    assert_eq!(written.events, ["ClusterNotFound"]);
    assert!(written.status()["lastReset"].is_null());
    api.expect_silence(100).await;
    brokers.assert_untouched().await;
}

// ------------------------------------------------------- pure pieces

#[test]
fn a_reset_id_runs_once_unless_the_group_was_active() {
    let mut billing: ConsumerGroup = serde_json::from_value(group("billing", "billing")).unwrap();
    billing.spec.offset_reset = Some(
        serde_json::from_value(json!({"id": "r1", "to": "earliest", "topics": ["events"]}))
            .unwrap(),
    );
    let last = |id: &str, result: &str| ConsumerGroupStatus {
        last_reset: Some(ResetResult {
            id: id.into(),
            result: result.into(),
            ..ResetResult::default()
        }),
        ..ConsumerGroupStatus::default()
    };
    assert!(pending_reset(&billing, &ConsumerGroupStatus::default()).is_some());
    assert!(pending_reset(&billing, &last("r0", "Applied")).is_some());
    assert!(pending_reset(&billing, &last("r1", "GroupActive")).is_some());
    assert!(pending_reset(&billing, &last("r1", "Applied")).is_none());
    assert!(pending_reset(&billing, &last("r1", "Failed")).is_none());
}

#[test]
fn reset_timestamps_are_rfc3339() {
    assert_eq!(
        timestamp_ms(Some("2024-05-01T10:00:00.250Z")).ok(),
        Some(1_714_557_600_250)
    );
    assert_eq!(
        timestamp_ms(Some("2024-05-01T12:00:00+02:00")).ok(),
        Some(1_714_557_600_000)
    );
    assert!(
        matches!(timestamp_ms(Some("yesterday")), Err(ResetError::Spec(m)) if m.contains("RFC 3339"))
    );
    assert!(timestamp_ms(None).is_err());
}

// ------------------------------------------------ real brokers behind it

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lag_and_resets_on_real_brokers() {
    let (cluster, admin) = three_brokers().await;
    let bootstrap = cluster.bootstrap();
    let (client, mut api) = MockApi::new();
    let ctx = context(client, Connector::fixed(bootstrap.clone()));
    admin.create_topic("events", 2, 1, &[]).await.unwrap();
    produce(&bootstrap, &[(0, 5), (1, 3)]).await;
    let commit = |rows: &[(u32, i64)]| {
        let rows: Vec<(String, u32, i64)> = rows
            .iter()
            .map(|(p, o)| ("events".to_owned(), *p, *o))
            .collect();
        let admin = admin.clone();
        async move { admin.reset_group_offsets("billing", &rows).await.unwrap() }
    };
    commit(&[(0, 2), (1, 1)]).await;

    // Status: committed offsets, log end, lag.
    let mut billing = group("billing", "billing");
    let (action, written) = pass(&mut api, &ctx, &billing).await;
    assert_eq!(action.unwrap(), Action::requeue(ctx.config.resync));
    assert_eq!(written.condition("Ready").0, "True");
    let status = written.status();
    assert_eq!(status["state"], "Empty");
    assert_eq!(status["memberCount"], 0);
    assert_eq!(
        offsets(status),
        [
            ("events".to_owned(), 0, 2, 5, 3),
            ("events".to_owned(), 1, 1, 3, 2)
        ]
    );
    assert_eq!(status["totalLag"], 5);
    with_status(&mut billing, &written);

    // A group nobody has used: Empty, nothing committed, not an error.
    let (_, idle) = pass(&mut api, &ctx, &group("idle", "nobody-yet")).await;
    assert_eq!(idle.condition("Ready").0, "True");
    assert_eq!(idle.status()["state"], "Empty");
    assert_eq!(idle.status()["memberCount"], 0);
    assert!(offsets(idle.status()).is_empty());

    // Reset to earliest with no members: applied.
    billing["spec"]["offsetReset"] = json!({"id": "r1", "to": "earliest", "topics": ["events"]});
    billing["metadata"]["generation"] = json!(2);
    let (_, written) = pass(&mut api, &ctx, &billing).await;
    assert_eq!(written.events, ["Applied"]);
    assert_eq!(
        written.condition("ResetApplied"),
        ("True", "Applied", "reset r1: offsets reset to Earliest")
    );
    let last = &written.status()["lastReset"];
    assert_eq!(
        (&last["id"], &last["result"]),
        (&json!("r1"), &json!("Applied"))
    );
    assert_eq!(last["offsets"].as_array().unwrap().len(), 2);
    assert_eq!(committed(&admin, "billing").await, [(0, 0), (1, 0)]);
    assert_eq!(written.status()["totalLag"], 8);
    with_status(&mut billing, &written);

    // Consumers moved on; the same id is never applied again.
    commit(&[(0, 4), (1, 0)]).await;
    let (_, written) = pass(&mut api, &ctx, &billing).await;
    assert!(written.events.is_empty(), "{:?}", written.events);
    assert_eq!(committed(&admin, "billing").await, [(0, 4), (1, 0)]);
    assert_eq!(written.status()["lastReset"]["id"], "r1");
    with_status(&mut billing, &written);

    // A live member: the next reset is refused, offsets stay.
    let member = join(&bootstrap, "billing").await;
    billing["spec"]["offsetReset"] = json!({"id": "r2", "to": "latest", "topics": ["events"]});
    billing["metadata"]["generation"] = json!(3);
    let (action, written) = pass(&mut api, &ctx, &billing).await;
    assert_eq!(action.unwrap(), Action::requeue(RETRY_SOON));
    assert_eq!(written.events, ["GroupActive"]);
    let (applied, reason, _) = written.condition("ResetApplied");
    assert_eq!((applied, reason), ("False", "GroupActive"));
    let status = written.status();
    assert_eq!(status["lastReset"]["result"], "GroupActive");
    assert_eq!(status["memberCount"], 1);
    let mut assignment: Vec<&str> = status["members"][0]["assignment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assignment.sort();
    assert_eq!(assignment, ["events-0", "events-1"]);
    assert_eq!(status["members"][0]["clientId"], "billing-worker");
    assert_eq!(committed(&admin, "billing").await, [(0, 4), (1, 0)]);
    with_status(&mut billing, &written);

    // The member leaves: the refused reset runs on the next pass.
    member.close().await.unwrap();
    let (_, written) = pass(&mut api, &ctx, &billing).await;
    assert_eq!(written.status()["lastReset"]["result"], "Applied");
    assert_eq!(written.condition("ResetApplied").0, "True");
    assert_eq!(committed(&admin, "billing").await, [(0, 5), (1, 3)]);
    api.expect_silence(50).await;
}

/// `count` records into each `(partition, count)`.
async fn produce(bootstrap: &str, counts: &[(u32, usize)]) {
    let producer = Producer::connect(
        ClientConfig::new(bootstrap).unwrap(),
        ProducerConfig::default(),
    )
    .await
    .unwrap();
    for (partition, count) in counts {
        for i in 0..*count {
            let record = ProducerRecord::new("events", format!("v{i}")).partition(*partition);
            producer.send(record).await.unwrap().await.unwrap();
        }
    }
    producer.close().await;
}

/// A consumer in `group` that owns its partitions; it never commits.
async fn join(bootstrap: &str, group: &str) -> Consumer {
    let config = ConsumerConfig {
        group_id: Some(group.into()),
        client_id: "billing-worker".into(),
        enable_auto_commit: false,
        session_timeout: Duration::from_secs(10),
        fetch_max_wait: Duration::from_millis(50),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(ClientConfig::new(bootstrap).unwrap(), config)
        .await
        .unwrap();
    consumer.subscribe(["events"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while consumer.assignment().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the consumer never got both partitions"
        );
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    consumer
}
