//! The broker binary as an operator sees it: flags, probes, metrics,
//! graceful shutdown, and state that survives a restart.

use std::collections::HashMap;
use std::process::Command;

use runnel_proto::batch::BatchBuilder;
use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::broker_client::BrokerClient;
use runnel_proto::v1::*;
use runnel_tests::{BrokerProcess, binary};
use tonic::transport::Channel;

async fn clients(broker: &BrokerProcess) -> (BrokerClient<Channel>, AdminClient<Channel>) {
    let channel = Channel::from_shared(broker.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    (
        BrokerClient::new(channel.clone()),
        AdminClient::new(channel),
    )
}

#[test]
fn help_documents_the_knobs() {
    let out = Command::new(binary("runnel-broker"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--data-dir",
        "--listen",
        "--http-listen",
        "--config",
        "--log-retention-ms",
        "--log-segment-bytes",
        "--log-flush-interval-messages",
        "--log-flush-interval-ms",
        "RUNNEL_DATA_DIR",
        "log.retention.ms",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
}

#[test]
fn bad_flags_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(binary("runnel-broker"))
        .args(["--data-dir"])
        .arg(dir.path())
        .args([
            "--log-retention-ms",
            "-7",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("retention.ms") && stderr.contains("between -1"),
        "{stderr}"
    );
}

#[test]
fn a_data_dir_belongs_to_one_broker_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = BrokerProcess::start(&data, &["--broker-id", "1"]).unwrap();
    broker.terminate().unwrap();
    let out = Command::new(binary("runnel-broker"))
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--broker-id",
            "2",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("belongs to broker.id=1") && stderr.contains("meta.properties"),
        "{stderr}"
    );
    // The right id still starts.
    broker.restart().unwrap();
}

// Multi-threaded: `terminate` blocks this thread while the broker's graceful
// shutdown waits for our idle connections to answer its GOAWAY/PING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_metrics_and_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = BrokerProcess::start(&data, &[]).unwrap();
    assert_eq!(broker.http_get("/healthz").unwrap().0, 200);
    assert_eq!(broker.http_get("/readyz").unwrap().0, 200);

    let (mut client, mut admin) = clients(&broker).await;
    admin
        .create_topics(CreateTopicsRequest {
            topics: vec![NewTopic {
                name: "events".into(),
                partitions: 2,
                replication_factor: 1,
                configs: HashMap::from([("retention.ms".to_string(), "3600000".to_string())]),
            }],
            validate_only: false,
        })
        .await
        .unwrap();
    let mut b = BatchBuilder::new();
    for i in 0..10 {
        b.push(
            1_700_000_000_000 + i,
            Some(b"k"),
            Some(format!("v{i}").as_bytes()),
            &[],
        );
    }
    client
        .produce(ProduceRequest {
            topics: vec![TopicProduceData {
                topic: "events".into(),
                partitions: vec![PartitionProduceData {
                    partition: 1,
                    records: b.build().unwrap(),
                }],
            }],
            acks: Acks::Leader as i32,
            timeout_ms: 0,
            transactional_id: String::new(),
        })
        .await
        .unwrap();

    let (code, metrics) = broker.http_get("/metrics").unwrap();
    assert_eq!(code, 200);
    for needle in [
        "runnel_messages_in_total{topic=\"events\"} 10",
        "runnel_bytes_in_total{topic=\"events\"}",
        "runnel_request_duration_seconds_count{api=\"Produce\",code=\"Ok\"} 1",
        "runnel_log_end_offset{topic=\"events\",partition=\"1\"} 10",
        "runnel_log_size_bytes{topic=\"events\",partition=\"1\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }

    // Graceful stop: exit 0 and the clean-shutdown marker.
    let status = broker.terminate().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        data.join(".runnel_clean_shutdown").exists(),
        "no clean-shutdown marker"
    );

    broker.restart().unwrap();
    assert!(
        !data.join(".runnel_clean_shutdown").exists(),
        "marker must be consumed at start"
    );
    let (mut client, mut admin) = clients(&broker).await;
    let described = admin
        .describe_topics(DescribeTopicsRequest {
            names: vec!["events".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .topics
        .remove(0);
    assert_eq!(described.partitions.len(), 2);
    assert_eq!(described.partitions[1].log_end_offset, 10);
    let retention = described
        .configs
        .iter()
        .find(|c| c.name == "retention.ms")
        .unwrap();
    assert_eq!(
        (retention.value.as_str(), retention.source),
        ("3600000", ConfigSource::Topic as i32)
    );

    let earliest = client
        .list_offsets(ListOffsetsRequest {
            topics: vec![ListOffsetsTopic {
                topic: "events".into(),
                partitions: vec![
                    ListOffsetsPartition {
                        partition: 1,
                        spec: OffsetSpec::Earliest as i32,
                        timestamp_ms: 0,
                    },
                    ListOffsetsPartition {
                        partition: 1,
                        spec: OffsetSpec::Latest as i32,
                        timestamp_ms: 0,
                    },
                    ListOffsetsPartition {
                        partition: 1,
                        spec: OffsetSpec::Timestamp as i32,
                        timestamp_ms: 1_700_000_000_005,
                    },
                ],
            }],
            isolation_level: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let offsets: Vec<i64> = earliest.topics[0]
        .partitions
        .iter()
        .map(|p| p.offset)
        .collect();
    // Kafka's semantics: the first *record* whose timestamp is >= the target.
    assert_eq!(offsets, [0, 10, 5]);

    // Deleting the topic removes its files.
    admin
        .delete_topics(DeleteTopicsRequest {
            names: vec!["events".into()],
        })
        .await
        .unwrap();
    assert!(!data.join("events-0").exists() && !data.join("events-1").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_from_file_env_and_flags_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.toml");
    std::fs::write(
        &file,
        "\"log.retention.ms\" = 1111\n\"log.segment.bytes\" = 2222222\n\"num.partitions\" = 3\n",
    )
    .unwrap();
    // File < env < flag: retention from env beats the file, num.partitions
    // from the flag beats the env; segment.bytes comes from the file.
    let broker = BrokerProcess::start_with_env(
        &dir.path().join("data"),
        &["--config", file.to_str().unwrap(), "--num-partitions", "5"],
        &[
            ("RUNNEL_LOG_RETENTION_MS", "3333"),
            ("RUNNEL_NUM_PARTITIONS", "4"),
        ],
    )
    .unwrap();
    let (_, mut admin) = clients(&broker).await;
    let created = admin
        .create_topics(CreateTopicsRequest {
            topics: vec![NewTopic {
                name: "defaults".into(),
                ..Default::default()
            }],
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner()
        .topics
        .remove(0);
    assert_eq!(created.partitions.len(), 5);
    let config = |name: &str| {
        let entry = created.configs.iter().find(|c| c.name == name).unwrap();
        (entry.value.clone(), entry.source)
    };
    assert_eq!(
        config("retention.ms"),
        ("3333".to_string(), ConfigSource::Broker as i32)
    );
    assert_eq!(
        config("segment.bytes"),
        ("2222222".to_string(), ConfigSource::Broker as i32)
    );
}
