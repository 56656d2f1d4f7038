//! Dynamic cluster-wide defaults of topic configs (`AlterClusterConfigs`)
//! with real broker processes: a change reaches every broker's topics live
//! and their logs, survives restarts, and a wrong request changes nothing.
//! Once in cluster mode (etcd, three brokers) and once on a single node
//! (the embedded store).

use std::collections::BTreeMap;
use std::time::Duration;

use runnel_client::{
    Admin, ClientConfig, ClusterConfigEntry, ConfigSource, ErrorCode, Producer, ProducerConfig,
    ProducerRecord,
};
use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::{DescribeClusterConfigsRequest, DescribeTopicsRequest};
use runnel_tests::BrokerProcess;
use runnel_tests::cluster::TestCluster;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(10);

/// The static `log.retention.ms` every broker is started with, so "back to
/// the static value" is told apart from Kafka's default.
const STATIC_RETENTION: &str = "86400000";

async fn admin(bootstrap: &str) -> Admin {
    Admin::connect(ClientConfig::new(bootstrap).unwrap())
        .await
        .unwrap()
}

/// An Admin client bound to one broker, to see that broker's own view.
async fn broker_admin(broker: &BrokerProcess) -> AdminClient<Channel> {
    AdminClient::new(
        Channel::from_shared(broker.endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
}

/// `key`'s effective value and source in `topic`, as `broker` describes it.
async fn topic_config(broker: &BrokerProcess, topic: &str, key: &str) -> (String, ConfigSource) {
    let topics = broker_admin(broker)
        .await
        .describe_topics(DescribeTopicsRequest {
            names: vec![topic.into()],
        })
        .await
        .unwrap()
        .into_inner()
        .topics;
    let entry = topics[0].configs.iter().find(|c| c.name == key).unwrap();
    (entry.value.clone(), entry.source())
}

/// Every dynamic key as `broker` describes it.
async fn cluster_configs(broker: &BrokerProcess) -> Vec<ClusterConfigEntry> {
    broker_admin(broker)
        .await
        .describe_cluster_configs(DescribeClusterConfigsRequest {})
        .await
        .unwrap()
        .into_inner()
        .configs
}

fn entry(configs: &[ClusterConfigEntry], name: &str) -> (String, ConfigSource) {
    let e = configs.iter().find(|c| c.name == name).unwrap();
    (e.value.clone(), e.source())
}

/// Poll until `broker` describes `topic`'s `key` as `want`.
async fn wait_topic_config(
    cluster: &TestCluster,
    broker: i32,
    topic: &str,
    key: &str,
    want: (&str, ConfigSource),
) {
    let b = cluster.broker(broker);
    cluster
        .wait_for(
            &format!("broker {broker}: {topic} {key} = {want:?}"),
            WAIT,
            || async {
                let got = topic_config(b, topic, key).await;
                (got.0 == want.0 && got.1 == want.1).then_some(())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
}

fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Segment files of `topic-p` in a data dir.
fn segments(data_dir: &std::path::Path, topic: &str, p: u32) -> usize {
    std::fs::read_dir(data_dir.join(format!("{topic}-{p}")))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .count()
}

/// A non-dynamic key, an unknown key and a bad value are each refused with
/// INVALID_CONFIG (gRPC INVALID_ARGUMENT) naming the problem; validate_only
/// answers but writes nothing. Afterwards every broker describes exactly
/// what it did before.
async fn refused_requests_change_nothing(admin: &Admin, brokers: &[&BrokerProcess]) {
    let mut before = Vec::new();
    for b in brokers {
        before.push(cluster_configs(b).await);
    }
    for (set_, delete, needle) in [
        (
            set(&[("num.partitions", "6")]),
            vec![],
            "num.partitions cannot change at run time (a static broker config",
        ),
        (
            set(&[("log.retention.ms", "1000"), ("log.retention.mins", "1")]),
            vec![],
            "log.retention.mins",
        ),
        (set(&[("log.segment.bytes", "10")]), vec![], "between 1024"),
        (BTreeMap::new(), vec!["data.dir".to_string()], "restart"),
    ] {
        let err = admin
            .alter_cluster_configs(&set_, &delete, false)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidConfig), "{err}");
        assert_eq!(err.grpc_code(), Some(tonic::Code::InvalidArgument), "{err}");
        assert!(err.to_string().contains(needle), "{needle:?}: {err}");
    }
    let would = admin
        .alter_cluster_configs(&set(&[("min.insync.replicas", "3")]), &[], true)
        .await
        .unwrap();
    assert_eq!(
        entry(&would, "min.insync.replicas"),
        ("3".into(), ConfigSource::DynamicDefault)
    );
    for (b, before) in brokers.iter().zip(before) {
        assert_eq!(
            cluster_configs(b).await,
            before,
            "a refused request changed something"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_defaults_reach_every_broker_live_and_survive_restarts() {
    let mut cluster = TestCluster::start(3, &["--log-retention-ms", STATIC_RETENTION]).unwrap();
    let admin = admin(&cluster.bootstrap()).await;
    admin.create_topic("plain", 1, 3, &[]).await.unwrap();
    admin
        .create_topic("pinned", 1, 3, &[("retention.ms", "7777")])
        .await
        .unwrap();
    let all = [1, 2, 3];
    for b in all {
        wait_topic_config(
            &cluster,
            b,
            "plain",
            "retention.ms",
            (STATIC_RETENTION, ConfigSource::Broker),
        )
        .await;
    }

    // Set: every broker's topics without an override follow at once.
    let after = admin
        .alter_cluster_configs(&set(&[("log.retention.ms", "3600000")]), &[], false)
        .await
        .unwrap();
    assert_eq!(
        entry(&after, "log.retention.ms"),
        ("3600000".into(), ConfigSource::DynamicDefault)
    );
    for b in all {
        wait_topic_config(
            &cluster,
            b,
            "plain",
            "retention.ms",
            ("3600000", ConfigSource::DynamicDefault),
        )
        .await;
        assert_eq!(
            topic_config(cluster.broker(b), "pinned", "retention.ms").await,
            ("7777".into(), ConfigSource::Topic),
            "an override beats the dynamic default on broker {b}"
        );
        assert_eq!(
            entry(
                &cluster_configs(cluster.broker(b)).await,
                "log.retention.ms"
            ),
            ("3600000".into(), ConfigSource::DynamicDefault)
        );
    }

    // The log itself follows: a tiny dynamic segment size makes the
    // leader roll segments it would otherwise never roll (1 GiB static).
    admin
        .alter_cluster_configs(&set(&[("log.segment.bytes", "1024")]), &[], false)
        .await
        .unwrap();
    let leader = cluster.partition("plain", 0).await.unwrap().leader;
    wait_topic_config(
        &cluster,
        leader,
        "plain",
        "segment.bytes",
        ("1024", ConfigSource::DynamicDefault),
    )
    .await;
    let producer = Producer::connect(
        ClientConfig::new(&cluster.bootstrap()).unwrap(),
        ProducerConfig::default(),
    )
    .await
    .unwrap();
    for i in 0..12 {
        // One batch per record: await each before sending the next.
        producer
            .send(ProducerRecord::new("plain", format!("{i:0>300}")))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let rolled = segments(cluster.broker(leader).data_dir(), "plain", 0);
    assert!(
        rolled >= 4,
        "12 batches of ~370 bytes in 1 KiB segments, got {rolled} segment(s)"
    );

    // A restarted broker starts with the dynamic values: no waiting.
    let restarted = if leader == 1 { 2 } else { 1 };
    cluster.broker_mut(restarted).restart().unwrap();
    let b = cluster.broker(restarted);
    assert_eq!(
        topic_config(b, "plain", "retention.ms").await,
        ("3600000".into(), ConfigSource::DynamicDefault)
    );
    assert_eq!(
        entry(&cluster_configs(b).await, "log.segment.bytes"),
        ("1024".into(), ConfigSource::DynamicDefault)
    );

    refused_requests_change_nothing(&admin, &[cluster.broker(1), cluster.broker(2)]).await;

    // Delete: back to each broker's static config.
    let after = admin
        .alter_cluster_configs(
            &BTreeMap::new(),
            &["log.retention.ms".into(), "log.segment.bytes".into()],
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        entry(&after, "log.retention.ms"),
        (STATIC_RETENTION.into(), ConfigSource::Broker)
    );
    for b in all {
        wait_topic_config(
            &cluster,
            b,
            "plain",
            "retention.ms",
            (STATIC_RETENTION, ConfigSource::Broker),
        )
        .await;
        wait_topic_config(
            &cluster,
            b,
            "plain",
            "segment.bytes",
            ("1073741824", ConfigSource::Default),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_defaults_on_a_single_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(
        &dir.path().join("data"),
        &["--log-retention-ms", STATIC_RETENTION],
    )
    .unwrap();
    let admin = admin(&broker.bootstrap()).await;
    admin.create_topic("events", 1, 1, &[]).await.unwrap();
    assert_eq!(
        topic_config(&broker, "events", "retention.ms").await,
        (STATIC_RETENTION.into(), ConfigSource::Broker)
    );

    admin
        .alter_cluster_configs(
            &set(&[
                ("log.retention.ms", "3600000"),
                ("min.insync.replicas", "1"),
            ]),
            &[],
            false,
        )
        .await
        .unwrap();
    // The broker that served the alter answers with it at once.
    assert_eq!(
        topic_config(&broker, "events", "retention.ms").await,
        ("3600000".into(), ConfigSource::DynamicDefault)
    );

    refused_requests_change_nothing(&admin, &[&broker]).await;

    broker.restart().unwrap();
    assert_eq!(
        topic_config(&broker, "events", "retention.ms").await,
        ("3600000".into(), ConfigSource::DynamicDefault),
        "the embedded store kept the dynamic default across a restart"
    );

    let admin = self::admin(&broker.bootstrap()).await;
    admin
        .alter_cluster_configs(
            &BTreeMap::new(),
            &["log.retention.ms".into(), "min.insync.replicas".into()],
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        topic_config(&broker, "events", "retention.ms").await,
        (STATIC_RETENTION.into(), ConfigSource::Broker)
    );
    let configs = cluster_configs(&broker).await;
    assert!(
        configs
            .iter()
            .all(|c| c.source() != ConfigSource::DynamicDefault),
        "{configs:?}"
    );
    assert_eq!(configs.len(), 16, "every dynamic key is listed");
}
