//! Bad requests against a real broker process get the precise gRPC code and
//! Kafka error name, and leave stored data untouched.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use runnel_proto::batch::BatchBuilder;
use runnel_proto::error_code;
use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::broker_client::BrokerClient;
use runnel_proto::v1::*;
use runnel_tests::BrokerProcess;
use tonic::Code;
use tonic::transport::Channel;

struct Fixture {
    _dir: tempfile::TempDir,
    broker: BrokerProcess,
    data: BrokerClient<Channel>,
    admin: AdminClient<Channel>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]).unwrap();
    let channel = Channel::from_shared(broker.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let data = BrokerClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let admin = AdminClient::new(channel);
    Fixture {
        _dir: dir,
        broker,
        data,
        admin,
    }
}

fn batch(values: &[&str]) -> Bytes {
    let mut b = BatchBuilder::new();
    for v in values {
        b.push(1_700_000_000_000, None, Some(v.as_bytes()), &[]);
    }
    b.build().expect("non-empty batch")
}

fn produce_req(topic: &str, parts: Vec<(u32, Bytes)>) -> ProduceRequest {
    ProduceRequest {
        topics: vec![TopicProduceData {
            topic: topic.into(),
            partitions: parts
                .into_iter()
                .map(|(partition, records)| PartitionProduceData { partition, records })
                .collect(),
        }],
        acks: Acks::Leader as i32,
        timeout_ms: 0,
        transactional_id: String::new(),
    }
}

async fn create(
    f: &mut Fixture,
    name: &str,
    partitions: u32,
    configs: &[(&str, &str)],
) -> Result<(), tonic::Status> {
    let configs: HashMap<String, String> = configs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    f.admin
        .create_topics(CreateTopicsRequest {
            topics: vec![NewTopic {
                name: name.into(),
                partitions,
                replication_factor: 1,
                configs,
            }],
            validate_only: false,
        })
        .await
        .map(|_| ())
}

async fn latest(f: &mut Fixture, topic: &str, partition: u32) -> i64 {
    let resp = f
        .data
        .list_offsets(ListOffsetsRequest {
            topics: vec![ListOffsetsTopic {
                topic: topic.into(),
                partitions: vec![ListOffsetsPartition {
                    partition,
                    spec: OffsetSpec::Latest as i32,
                    timestamp_ms: 0,
                }],
            }],
            isolation_level: 0,
        })
        .await
        .unwrap()
        .into_inner();
    resp.topics[0].partitions[0].offset
}

async fn fetch_all(
    f: &mut Fixture,
    topic: &str,
    partition: u32,
    offset: i64,
) -> FetchPartitionResult {
    let resp = f
        .data
        .fetch(FetchRequest {
            topics: vec![FetchTopic {
                topic: topic.into(),
                partitions: vec![FetchPartition {
                    partition,
                    fetch_offset: offset,
                    partition_max_bytes: 0,
                    current_leader_epoch: -1,
                }],
            }],
            max_bytes: 1 << 20,
            max_wait_ms: 0,
            min_bytes: 0,
            replica_id: -1,
            isolation_level: 0,
        })
        .await
        .unwrap()
        .into_inner();
    resp.topics
        .into_iter()
        .next()
        .unwrap()
        .partitions
        .into_iter()
        .next()
        .unwrap()
}

#[track_caller]
fn assert_status(status: &tonic::Status, code: Code, error: ErrorCode, needle: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(error_code::from_status(status), Some(error), "{status:?}");
    assert!(
        status.message().contains(needle),
        "message {:?} should mention {needle:?}",
        status.message()
    );
}

#[tokio::test]
async fn bad_produce_requests_get_precise_errors_and_write_nothing() {
    let mut f = fixture().await;
    create(&mut f, "orders", 2, &[("max.message.bytes", "1024")])
        .await
        .unwrap();
    let ok = f
        .data
        .produce(produce_req("orders", vec![(0, batch(&["a", "b"]))]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.topics[0].partitions[0].base_offset, 0);
    assert!(ok.topics[0].partitions[0].error.is_none());
    let before = fetch_all(&mut f, "orders", 0, 0).await.records;

    // Bad topic name.
    let err = f
        .data
        .produce(produce_req("bad name!", vec![(0, batch(&["x"]))]))
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::InvalidArgument,
        ErrorCode::InvalidTopic,
        "bad name!",
    );

    // Unknown topic.
    let err = f
        .data
        .produce(produce_req("nope", vec![(0, batch(&["x"]))]))
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "nope",
    );

    // Partition out of range.
    let err = f
        .data
        .produce(produce_req("orders", vec![(2, batch(&["x"]))]))
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "partition 2",
    );

    // Oversized batch (max.message.bytes=1024).
    let big = "x".repeat(2000);
    let err = f
        .data
        .produce(produce_req("orders", vec![(0, batch(&[&big]))]))
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::ResourceExhausted,
        ErrorCode::MessageTooLarge,
        "max.message.bytes",
    );

    // Corrupted CRC: flip one byte of a value.
    let mut corrupt = BytesMut::from(&batch(&["hello"])[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let err = f
        .data
        .produce(produce_req("orders", vec![(0, corrupt.clone().freeze())]))
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::InvalidArgument,
        ErrorCode::CorruptMessage,
        "orders-0",
    );

    // Truncated batch.
    let whole = batch(&["hello"]);
    let err = f
        .data
        .produce(produce_req(
            "orders",
            vec![(0, whole.slice(..whole.len() - 3))],
        ))
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::InvalidArgument,
        ErrorCode::CorruptMessage,
        "orders-0",
    );

    // Garbage that is not a batch at all.
    let err = f
        .data
        .produce(produce_req(
            "orders",
            vec![(0, Bytes::from_static(b"not a batch"))],
        ))
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::InvalidArgument,
        ErrorCode::CorruptMessage,
        "orders-0",
    );

    // One good partition and one corrupt: the whole request is refused, the
    // good partition gets nothing either.
    let err = f
        .data
        .produce(produce_req(
            "orders",
            vec![(1, batch(&["good"])), (0, corrupt.freeze())],
        ))
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::InvalidArgument,
        ErrorCode::CorruptMessage,
        "orders-0",
    );

    assert_eq!(latest(&mut f, "orders", 0).await, 2);
    assert_eq!(
        latest(&mut f, "orders", 1).await,
        0,
        "refused request must not write partition 1"
    );
    assert_eq!(
        fetch_all(&mut f, "orders", 0, 0).await.records,
        before,
        "stored batches unchanged"
    );

    // And the log still accepts good data at the next dense offset.
    let ok = f
        .data
        .produce(produce_req("orders", vec![(0, batch(&["c"]))]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.topics[0].partitions[0].base_offset, 2);
}

#[tokio::test]
async fn fetch_out_of_range_is_a_partition_error() {
    let mut f = fixture().await;
    create(&mut f, "t", 1, &[]).await.unwrap();
    f.data
        .produce(produce_req("t", vec![(0, batch(&["a"]))]))
        .await
        .unwrap();
    let past_end = fetch_all(&mut f, "t", 0, 5).await;
    let err = past_end.error.expect("out of range");
    assert_eq!(err.code, ErrorCode::OffsetOutOfRange as i32);
    assert!(err.message.contains("0..=1"), "{}", err.message);
    assert_eq!(past_end.high_watermark, 1);

    let negative = f
        .data
        .fetch(FetchRequest {
            topics: vec![FetchTopic {
                topic: "t".into(),
                partitions: vec![FetchPartition {
                    partition: 0,
                    fetch_offset: -1,
                    partition_max_bytes: 0,
                    current_leader_epoch: -1,
                }],
            }],
            max_bytes: 0,
            max_wait_ms: 0,
            min_bytes: 0,
            replica_id: -1,
            isolation_level: 0,
        })
        .await
        .unwrap_err();
    assert_status(
        &negative,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "negative",
    );
}

#[tokio::test]
async fn bad_admin_requests_get_precise_errors() {
    let mut f = fixture().await;
    create(&mut f, "t", 2, &[]).await.unwrap();

    let err = create(&mut f, "t", 1, &[]).await.unwrap_err();
    assert_status(
        &err,
        Code::AlreadyExists,
        ErrorCode::TopicAlreadyExists,
        "\"t\"",
    );
    let err = create(&mut f, "..", 1, &[]).await.unwrap_err();
    assert_status(
        &err,
        Code::InvalidArgument,
        ErrorCode::InvalidTopic,
        "'.' and '..'",
    );
    let err = create(&mut f, "u", 1, &[("retention.ms", "forever")])
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::InvalidArgument,
        ErrorCode::InvalidConfig,
        "retention.ms",
    );
    let err = create(&mut f, "u", 1, &[("retention.msec", "1")])
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::InvalidArgument,
        ErrorCode::InvalidConfig,
        "supported keys",
    );

    let err = f
        .admin
        .create_topics(CreateTopicsRequest {
            topics: vec![NewTopic {
                name: "u".into(),
                partitions: 1,
                replication_factor: 3,
                configs: HashMap::new(),
            }],
            validate_only: false,
        })
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::FailedPrecondition,
        ErrorCode::InvalidReplicationFactor,
        "1 live broker",
    );

    // All or nothing: one bad topic in a batch creates none of them.
    let err = f
        .admin
        .create_topics(CreateTopicsRequest {
            topics: vec![
                NewTopic {
                    name: "good".into(),
                    partitions: 1,
                    replication_factor: 1,
                    configs: HashMap::new(),
                },
                NewTopic {
                    name: "bad/name".into(),
                    partitions: 1,
                    replication_factor: 1,
                    configs: HashMap::new(),
                },
            ],
            validate_only: false,
        })
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::InvalidArgument,
        ErrorCode::InvalidTopic,
        "bad/name",
    );
    let topics = f
        .admin
        .list_topics(ListTopicsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .topics;
    assert_eq!(
        topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["t"]
    );

    let alter = |partitions| AlterTopicRequest {
        name: "t".into(),
        partitions,
        set_configs: HashMap::new(),
        delete_configs: vec![],
        validate_only: false,
    };
    let err = f.admin.alter_topic(alter(1)).await.unwrap_err();
    assert_status(
        &err,
        Code::InvalidArgument,
        ErrorCode::InvalidPartitions,
        "only be increased",
    );
    let grown = f
        .admin
        .alter_topic(alter(4))
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    assert_eq!(grown.partitions.len(), 4);

    let err = f
        .admin
        .delete_topics(DeleteTopicsRequest {
            names: vec!["missing".into()],
        })
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "missing",
    );
    assert_eq!(
        f.admin
            .describe_topics(DescribeTopicsRequest {
                names: vec!["t".into()]
            })
            .await
            .unwrap()
            .into_inner()
            .topics
            .len(),
        1
    );
    drop(f.broker);
}

#[tokio::test]
async fn acks_all_below_min_insync_replicas_is_refused_per_partition() {
    let mut f = fixture().await;
    // A single node has an ISR of one: min.insync.replicas=2 cannot be met.
    create(&mut f, "strict", 1, &[("min.insync.replicas", "2")])
        .await
        .unwrap();
    let mut req = produce_req("strict", vec![(0, batch(&["a"]))]);
    req.acks = Acks::All as i32;
    let resp = f.data.produce(req).await.unwrap().into_inner();
    let p = &resp.topics[0].partitions[0];
    let err = p.error.as_ref().expect("NOT_ENOUGH_REPLICAS");
    assert_eq!(err.code, ErrorCode::NotEnoughReplicas as i32);
    assert!(
        err.message.contains("min.insync.replicas=2"),
        "{}",
        err.message
    );
    assert_eq!(p.base_offset, -1);
    assert_eq!(latest(&mut f, "strict", 0).await, 0, "nothing written");

    // acks=1 does not wait for replicas and succeeds.
    let ok = f
        .data
        .produce(produce_req("strict", vec![(0, batch(&["a"]))]))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.topics[0].partitions[0].error.is_none());
    assert_eq!(latest(&mut f, "strict", 0).await, 1);
}
