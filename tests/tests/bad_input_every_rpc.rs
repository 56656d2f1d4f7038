//! Bad input on every RPC of every service (Broker, Group, Admin,
//! Replication) against a real broker process: empty and default messages,
//! empty or absurdly long names, negative and out-of-range numbers, unknown
//! enum values, huge repeated fields, garbage record bytes, and bodies that
//! are not protobuf (or not even gRPC frames) at all.
//!
//! Every answer must be a gRPC status with the precise code, the Kafka-style
//! `runnel-error-code` where the broker produced it, and a message a person
//! can act on — or a response whose per-partition error carries the precise
//! code — never a panic, a crash, a hang or a dropped connection; and the
//! data stored before stays as it was. `bad_input.rs` covers the basic
//! produce/fetch/admin refusals; this file covers the rest.

use std::collections::HashMap;
use std::fmt::Debug;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use runnel_proto::batch::BatchBuilder;
use runnel_proto::error_code;
use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::broker_client::BrokerClient;
use runnel_proto::v1::group_client::GroupClient;
use runnel_proto::v1::replication_client::ReplicationClient;
use runnel_proto::v1::*;
use runnel_tests::BrokerProcess;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::Body as _;
use tonic::codegen::http;
use tonic::transport::Channel;

const MIB: usize = 1 << 20;
/// Entries in the "huge repeated field" cases.
const MANY: usize = 100_000;

// ---------------------------------------------------------------- harness

struct Fixture {
    _dir: tempfile::TempDir,
    broker: BrokerProcess,
    channel: Channel,
    data: BrokerClient<Channel>,
    admin: AdminClient<Channel>,
    group: GroupClient<Channel>,
}

async fn fixture(envs: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    // A debug build spends up to a second on some 100k-entry requests on a
    // busy machine; with the 1 s default session the broker would drop its
    // own registration meanwhile (0 live brokers) and later answers would
    // depend on timing. Leases are not what this file tests.
    let mut envs = envs.to_vec();
    envs.push(("RUNNEL_BROKER_SESSION_TIMEOUT_MS", "10000"));
    let broker = BrokerProcess::start_with_env(&dir.path().join("data"), &[], &envs).unwrap();
    let channel = Channel::from_shared(broker.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        data: BrokerClient::new(channel.clone()).max_decoding_message_size(64 * MIB),
        admin: AdminClient::new(channel.clone()).max_decoding_message_size(64 * MIB),
        group: GroupClient::new(channel.clone()).max_decoding_message_size(64 * MIB),
        channel,
        broker,
    }
}

impl Fixture {
    /// The broker process is up, its health probe answers and so does a
    /// gRPC call on a fresh connection (`is_running` alone only knows we
    /// have not stopped it ourselves).
    async fn assert_alive(&mut self, after: &str) {
        assert!(self.broker.is_running(), "after {after}: broker stopped");
        let probe = self.broker.http_get("/healthz");
        assert!(
            matches!(probe, Ok((200, _))),
            "after {after}: /healthz answered {probe:?}; log:\n{}",
            self.broker.log_tail()
        );
        let fresh = Channel::from_shared(self.broker.endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap_or_else(|e| panic!("after {after}: cannot connect: {e}"));
        BrokerClient::new(fresh)
            .metadata(MetadataRequest::default())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "after {after}: Metadata failed: {e:?}; log:\n{}",
                    self.broker.log_tail()
                )
            });
    }

    /// Everything stored about `topic`: its description (partitions,
    /// offsets, sizes, configs) and every partition's records.
    async fn stored(&mut self, topic: &str) -> (TopicDescription, Vec<Bytes>) {
        let description = self
            .admin
            .describe_topics(DescribeTopicsRequest {
                names: vec![topic.into()],
            })
            .await
            .unwrap()
            .into_inner()
            .topics
            .remove(0);
        let mut records = Vec::new();
        for p in &description.partitions {
            let resp = self
                .data
                .fetch(fetch_req(topic, p.partition, 0))
                .await
                .unwrap()
                .into_inner();
            let part = &resp.topics[0].partitions[0];
            assert!(part.error.is_none(), "{part:?}");
            records.push(part.records.clone());
        }
        (description, records)
    }

    async fn create(&mut self, name: &str, partitions: u32, configs: &[(&str, &str)]) {
        self.admin
            .create_topics(CreateTopicsRequest {
                topics: vec![NewTopic {
                    name: name.into(),
                    partitions,
                    replication_factor: 1,
                    configs: strings(configs),
                }],
                validate_only: false,
            })
            .await
            .unwrap();
    }

    async fn produce_ok(&mut self, topic: &str, partition: u32, values: &[&str]) -> i64 {
        let resp = self
            .data
            .produce(produce_req(topic, vec![(partition, batch(values))]))
            .await
            .unwrap()
            .into_inner();
        let p = &resp.topics[0].partitions[0];
        assert!(p.error.is_none(), "{p:?}");
        p.base_offset
    }

    async fn broker_id(&mut self) -> i32 {
        let meta = self
            .data
            .metadata(MetadataRequest::default())
            .await
            .unwrap()
            .into_inner();
        meta.brokers[0].id
    }
}

fn strings(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
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

fn fetch_req(topic: &str, partition: u32, offset: i64) -> FetchRequest {
    FetchRequest {
        topics: vec![FetchTopic {
            topic: topic.into(),
            partitions: vec![FetchPartition {
                partition,
                fetch_offset: offset,
                partition_max_bytes: 0,
                current_leader_epoch: -1,
            }],
        }],
        max_bytes: 0,
        max_wait_ms: 0,
        min_bytes: 0,
        replica_id: -1,
        isolation_level: IsolationLevel::ReadUncommitted as i32,
    }
}

fn list_offsets_req(
    topic: &str,
    partition: u32,
    spec: i32,
    timestamp_ms: i64,
) -> ListOffsetsRequest {
    ListOffsetsRequest {
        topics: vec![ListOffsetsTopic {
            topic: topic.into(),
            partitions: vec![ListOffsetsPartition {
                partition,
                spec,
                timestamp_ms,
            }],
        }],
        isolation_level: IsolationLevel::ReadUncommitted as i32,
    }
}

/// `count` distinct, valid topic names no topic has: t-0, t-1, ...
fn many_names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("t-{i}")).collect()
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(len: usize) -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// A one-record batch with `edit` applied to its bytes, then (with
/// `fix_crc`) the CRC recomputed so only the edit is wrong.
fn doctored(edit: impl FnOnce(&mut [u8]), fix_crc: bool) -> Bytes {
    let mut b = batch(&["doctored"]).to_vec();
    edit(&mut b);
    if fix_crc {
        // CRC-32C over everything after the CRC field (the batch format's).
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    b.into()
}

/// A refused call: the precise gRPC code, the Kafka-style error name, and a
/// message that is there and says what is wrong.
#[track_caller]
fn refused<T: Debug>(
    case: &str,
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    error: ErrorCode,
    needle: &str,
) {
    let status = match result {
        Ok(resp) => panic!("{case}: expected {code:?}/{error:?}, got {resp:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{case}: {status:?}");
    assert_eq!(
        error_code::from_status(&status),
        Some(error),
        "{case}: {status:?}"
    );
    assert_message(case, &status, needle);
}

#[track_caller]
fn assert_message(case: &str, status: &tonic::Status, needle: &str) {
    let message = status.message();
    assert!(!message.trim().is_empty(), "{case}: empty message");
    assert!(
        message.contains(needle),
        "{case}: message {:?} should mention {needle:?}",
        abbreviate(message)
    );
}

/// A per-partition (or per-topic) error inside a successful response.
#[track_caller]
fn partition_error(
    case: &str,
    error: Option<&runnel_proto::v1::Error>,
    code: ErrorCode,
    needle: &str,
) {
    let error = error.unwrap_or_else(|| panic!("{case}: expected {code:?}, got no error"));
    assert_eq!(error.code, code as i32, "{case}: {error:?}");
    assert!(
        error.message.contains(needle),
        "{case}: message {:?} should mention {needle:?}",
        abbreviate(&error.message)
    );
}

fn abbreviate(s: &str) -> String {
    if s.len() <= 300 {
        s.to_owned()
    } else {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], s.len())
    }
}

// ------------------------------------------------------- Broker service

#[tokio::test]
async fn broker_service_refuses_bad_input_precisely() {
    // A small request limit so the oversize request stays cheap.
    let mut f = fixture(&[("RUNNEL_SOCKET_REQUEST_MAX_BYTES", &(8 * MIB).to_string())]).await;
    f.create("orders", 2, &[]).await;
    assert_eq!(f.produce_ok("orders", 0, &["a", "b"]).await, 0);
    assert_eq!(f.produce_ok("orders", 1, &["c"]).await, 0);
    let huge = "x".repeat(MIB);

    // Absurd but legal values do what they say.
    let mut req = produce_req("orders", vec![(1, batch(&["d"]))]);
    req.acks = Acks::All as i32;
    req.timeout_ms = u32::MAX;
    req.transactional_id = huge.clone();
    let started = Instant::now();
    let resp = f.data.produce(req).await.unwrap().into_inner();
    let p = &resp.topics[0].partitions[0];
    assert!(p.error.is_none(), "{p:?}");
    assert_eq!(p.base_offset, 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "acks=all on one node waits for nobody"
    );
    let before = f.stored("orders").await;

    // ---- Produce
    refused(
        "produce: default request",
        f.data.produce(ProduceRequest::default()).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "names no topic",
    );
    refused(
        "produce: empty topic name",
        f.data
            .produce(produce_req("", vec![(0, batch(&["x"]))]))
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidTopic,
        "empty",
    );
    refused(
        "produce: 1 MiB topic name",
        f.data
            .produce(produce_req(&huge, vec![(0, batch(&["x"]))]))
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidTopic,
        "249",
    );
    refused(
        "produce: topic without partitions",
        f.data.produce(produce_req("orders", vec![])).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "names no partition",
    );
    refused(
        "produce: partition u32::MAX",
        f.data
            .produce(produce_req("orders", vec![(u32::MAX, batch(&["x"]))]))
            .await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "partition 4294967295",
    );
    for acks in [99, -1, i32::MIN] {
        let mut req = produce_req("orders", vec![(0, batch(&["x"]))]);
        req.acks = acks;
        refused(
            &format!("produce: acks={acks}"),
            f.data.produce(req).await,
            Code::InvalidArgument,
            ErrorCode::InvalidRequest,
            &format!("acks {acks}"),
        );
    }
    refused(
        "produce: empty records",
        f.data
            .produce(produce_req("orders", vec![(0, Bytes::new())]))
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "no record batches",
    );
    refused(
        "produce: 1 MiB of noise",
        f.data
            .produce(produce_req("orders", vec![(0, noise(MIB))]))
            .await,
        Code::InvalidArgument,
        ErrorCode::CorruptMessage,
        "orders-0",
    );
    let good = batch(&["x"]);
    let mut trailing = good.to_vec();
    trailing.extend_from_slice(b"garbage");
    refused(
        "produce: a batch then trailing garbage",
        f.data
            .produce(produce_req("orders", vec![(0, trailing.into())]))
            .await,
        Code::InvalidArgument,
        ErrorCode::CorruptMessage,
        &format!("at byte {}", good.len()),
    );
    let cases: [(&str, Bytes, ErrorCode, &str); 7] = [
        (
            "batchLength i32::MAX",
            doctored(|b| b[8..12].copy_from_slice(&i32::MAX.to_be_bytes()), false),
            ErrorCode::CorruptMessage,
            "truncated",
        ),
        (
            "batchLength -1",
            doctored(|b| b[8..12].copy_from_slice(&(-1i32).to_be_bytes()), false),
            ErrorCode::CorruptMessage,
            "length -1",
        ),
        (
            "magic 1",
            doctored(|b| b[16] = 1, false),
            ErrorCode::CorruptMessage,
            "magic 1",
        ),
        (
            "compression codec 5",
            doctored(|b| b[22] = (b[22] & !7) | 5, true),
            ErrorCode::CorruptMessage,
            "codec id 5",
        ),
        (
            "recordsCount 0",
            doctored(
                |b| {
                    b[23..27].copy_from_slice(&(-1i32).to_be_bytes());
                    b[57..61].copy_from_slice(&0i32.to_be_bytes());
                },
                true,
            ),
            ErrorCode::CorruptMessage,
            "record count 0",
        ),
        (
            // Kafka refuses it too: the log end would move by the claim.
            "recordsCount 2^31-1 over the records it holds",
            doctored(
                |b| {
                    b[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
                    b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
                },
                true,
            ),
            ErrorCode::CorruptMessage,
            "batch ends before its recordsCount records",
        ),
        (
            "a control batch from a client",
            doctored(|b| b[22] |= 0x20, true),
            ErrorCode::InvalidRequest,
            "control",
        ),
    ];
    for (case, records, error, needle) in cases {
        refused(
            &format!("produce: {case}"),
            f.data
                .produce(produce_req("orders", vec![(0, records)]))
                .await,
            Code::InvalidArgument,
            error,
            needle,
        );
    }
    refused(
        "produce: 100k unknown topics",
        f.data
            .produce(ProduceRequest {
                topics: many_names(MANY)
                    .into_iter()
                    .map(|topic| TopicProduceData {
                        topic,
                        partitions: vec![PartitionProduceData {
                            partition: 0,
                            records: Bytes::new(),
                        }],
                    })
                    .collect(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "\"t-0\"",
    );
    // Two good partitions, then 100k that do not exist: nothing is written.
    let mut parts = vec![(0, batch(&["y"])), (1, batch(&["y"]))];
    parts.extend((2..MANY as u32).map(|p| (p, Bytes::new())));
    refused(
        "produce: 100k partitions",
        f.data.produce(produce_req("orders", parts)).await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "partition 2 does not exist",
    );
    let status = f
        .data
        .produce(produce_req("orders", vec![(0, noise(9 * MIB))]))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "oversize request: {status:?}"
    );
    assert_message(
        "produce: 9 MiB over an 8 MiB limit",
        &status,
        "exceeds socket.request.max.bytes=8388608",
    );
    // An idempotent producer's gap waits for the missing predecessor for
    // half the timeout, then is refused in the partition's result.
    let pid = f
        .data
        .init_producer_id(InitProducerIdRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut gap = BatchBuilder::new().producer(pid.producer_id, pid.producer_epoch as i16, 5);
    gap.push(1_700_000_000_000, None, Some(b"gap"), &[]);
    let mut req = produce_req("orders", vec![(0, gap.build().unwrap())]);
    req.timeout_ms = 400;
    let resp = f.data.produce(req).await.unwrap().into_inner();
    let p = &resp.topics[0].partitions[0];
    partition_error(
        "produce: sequence gap",
        p.error.as_ref(),
        ErrorCode::OutOfOrderSequenceNumber,
        "sent sequence 5, expected 0",
    );
    assert_eq!(p.base_offset, -1);
    f.assert_alive("Produce").await;
    assert_eq!(f.stored("orders").await, before, "Produce wrote nothing");

    // ---- Fetch
    refused(
        "fetch: default request",
        f.data.fetch(FetchRequest::default()).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "names no partition",
    );
    refused(
        "fetch: empty topic name",
        f.data.fetch(fetch_req("", 0, 0)).await,
        Code::InvalidArgument,
        ErrorCode::InvalidTopic,
        "empty",
    );
    refused(
        "fetch: 1 MiB topic name",
        f.data.fetch(fetch_req(&huge, 0, 0)).await,
        Code::InvalidArgument,
        ErrorCode::InvalidTopic,
        "249",
    );
    let mut req = fetch_req("orders", 0, 0);
    req.topics[0].partitions.clear();
    refused(
        "fetch: topic without partitions",
        f.data.fetch(req).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "names no partition",
    );
    refused(
        "fetch: partition u32::MAX",
        f.data.fetch(fetch_req("orders", u32::MAX, 0)).await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "partition 4294967295",
    );
    refused(
        "fetch: offset i64::MIN",
        f.data.fetch(fetch_req("orders", 0, i64::MIN)).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "negative",
    );
    let mut req = fetch_req("orders", 0, 0);
    req.isolation_level = 7;
    refused(
        "fetch: isolation level 7",
        f.data.fetch(req).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "isolation level 7",
    );
    let past = f
        .data
        .fetch(fetch_req("orders", 0, i64::MAX))
        .await
        .unwrap()
        .into_inner();
    partition_error(
        "fetch: offset i64::MAX",
        past.topics[0].partitions[0].error.as_ref(),
        ErrorCode::OffsetOutOfRange,
        "0..=2",
    );
    let mut req = fetch_req("orders", 0, 0);
    req.topics[0].partitions[0].current_leader_epoch = i32::MAX;
    let resp = f.data.fetch(req).await.unwrap().into_inner();
    partition_error(
        "fetch: leader epoch i32::MAX",
        resp.topics[0].partitions[0].error.as_ref(),
        ErrorCode::UnknownLeaderEpoch,
        "2147483647",
    );
    // Every limit at its maximum: answered at once, with everything.
    let mut req = fetch_req("orders", 0, 0);
    req.max_bytes = u32::MAX;
    req.max_wait_ms = u32::MAX;
    req.min_bytes = 1;
    req.topics[0].partitions[0].partition_max_bytes = u32::MAX;
    req.topics[0].partitions[0].current_leader_epoch = i32::MIN;
    let started = Instant::now();
    let resp = f.data.fetch(req).await.unwrap().into_inner();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(resp.topics[0].partitions[0].records, before.1[0]);
    // One byte allowed: still at least one whole batch.
    let mut req = fetch_req("orders", 0, 0);
    req.max_bytes = 1;
    req.topics[0].partitions[0].partition_max_bytes = 1;
    let resp = f.data.fetch(req).await.unwrap().into_inner();
    assert_eq!(resp.topics[0].partitions[0].records, before.1[0]);
    // min_bytes nobody will ever reach: a long poll, not a hang of the
    // broker; the client gives up and the broker serves on.
    let mut req = fetch_req("orders", 0, 0);
    req.min_bytes = u32::MAX;
    req.max_wait_ms = u32::MAX;
    let parked = tokio::time::timeout(Duration::from_millis(300), f.data.clone().fetch(req)).await;
    assert!(parked.is_err(), "long poll answered early: {parked:?}");
    refused(
        "fetch: 100k unknown topics",
        f.data
            .fetch(FetchRequest {
                topics: many_names(MANY)
                    .into_iter()
                    .map(|topic| FetchTopic {
                        topic,
                        partitions: vec![FetchPartition::default()],
                    })
                    .collect(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "\"t-0\"",
    );
    let mut req = fetch_req("orders", 0, 0);
    req.topics[0].partitions = (0..MANY as u32)
        .map(|partition| FetchPartition {
            partition,
            ..Default::default()
        })
        .collect();
    refused(
        "fetch: 100k partitions",
        f.data.fetch(req).await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "partition 2 does not exist",
    );
    f.assert_alive("Fetch").await;

    // ---- ListOffsets
    let empty = f
        .data
        .list_offsets(ListOffsetsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        empty.topics.is_empty(),
        "nothing asked, nothing answered: {empty:?}"
    );
    let latest = OffsetSpec::Latest as i32;
    refused(
        "list_offsets: empty topic name",
        f.data
            .list_offsets(list_offsets_req("", 0, latest, 0))
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidTopic,
        "empty",
    );
    refused(
        "list_offsets: 1 MiB topic name",
        f.data
            .list_offsets(list_offsets_req(&huge, 0, latest, 0))
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidTopic,
        "249",
    );
    refused(
        "list_offsets: partition u32::MAX",
        f.data
            .list_offsets(list_offsets_req("orders", u32::MAX, latest, 0))
            .await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "partition 4294967295",
    );
    for spec in [99, -1] {
        refused(
            &format!("list_offsets: spec {spec}"),
            f.data
                .list_offsets(list_offsets_req("orders", 0, spec, 0))
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidRequest,
            &format!("offset spec {spec}"),
        );
    }
    let mut req = list_offsets_req("orders", 0, latest, 0);
    req.isolation_level = 7;
    refused(
        "list_offsets: isolation level 7",
        f.data.list_offsets(req).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "isolation level 7",
    );
    let at = |timestamp| list_offsets_req("orders", 0, OffsetSpec::Timestamp as i32, timestamp);
    let resp = f
        .data
        .list_offsets(at(i64::MAX))
        .await
        .unwrap()
        .into_inner();
    let p = &resp.topics[0].partitions[0];
    assert!(p.error.is_none(), "{p:?}");
    assert_eq!(p.offset, -1, "no record is that late");
    let resp = f
        .data
        .list_offsets(at(i64::MIN))
        .await
        .unwrap()
        .into_inner();
    let p = &resp.topics[0].partitions[0];
    assert!(p.error.is_none(), "{p:?}");
    assert_eq!(p.offset, 0, "every record is later than i64::MIN");
    refused(
        "list_offsets: 100k unknown topics",
        f.data
            .list_offsets(ListOffsetsRequest {
                topics: many_names(MANY)
                    .into_iter()
                    .map(|topic| ListOffsetsTopic {
                        topic,
                        partitions: vec![ListOffsetsPartition::default()],
                    })
                    .collect(),
                isolation_level: 0,
            })
            .await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "\"t-0\"",
    );
    f.assert_alive("ListOffsets").await;

    // ---- Metadata
    let all = f
        .data
        .metadata(MetadataRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.topics.len(), 1);
    assert_eq!(all.topics[0].name, "orders");
    let metadata = |topics: Vec<String>| MetadataRequest { topics };
    refused(
        "metadata: empty topic name",
        f.data.metadata(metadata(vec![String::new()])).await,
        Code::InvalidArgument,
        ErrorCode::InvalidTopic,
        "empty",
    );
    refused(
        "metadata: 1 MiB topic name",
        f.data.metadata(metadata(vec![huge.clone()])).await,
        Code::InvalidArgument,
        ErrorCode::InvalidTopic,
        "249",
    );
    refused(
        "metadata: unknown topic",
        f.data.metadata(metadata(vec!["nope".into()])).await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "\"nope\"",
    );
    refused(
        "metadata: 100k unknown topics",
        f.data.metadata(metadata(many_names(MANY))).await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "\"t-0\"",
    );
    f.assert_alive("Metadata").await;

    // ---- InitProducerId
    let first = f
        .data
        .init_producer_id(InitProducerIdRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(first.producer_id > pid.producer_id);
    assert_eq!(first.producer_epoch, 0);
    for id in ["tx", huge.as_str()] {
        refused(
            "init_producer_id: transactional id",
            f.data
                .init_producer_id(InitProducerIdRequest {
                    transactional_id: id.into(),
                })
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidRequest,
            "transactions are not supported",
        );
    }
    f.assert_alive("InitProducerId").await;
    assert_eq!(f.stored("orders").await, before, "stored data unchanged");
}

// -------------------------------------------------------- Group service

#[tokio::test]
async fn group_service_refuses_bad_input_precisely() {
    let mut f = fixture(&[]).await;
    f.create("orders", 2, &[]).await;
    f.produce_ok("orders", 0, &["a", "b"]).await;
    let huge = "x".repeat(MIB);

    let commit =
        |group: &str, member: &str, generation: i32, topic: &str, parts: Vec<(u32, i64)>| {
            OffsetCommitRequest {
                group_id: group.into(),
                member_id: member.into(),
                generation,
                topics: vec![OffsetCommitTopic {
                    topic: topic.into(),
                    partitions: parts
                        .into_iter()
                        .map(|(partition, offset)| OffsetCommitPartition {
                            partition,
                            offset,
                            metadata: String::new(),
                        })
                        .collect(),
                }],
            }
        };
    // "g": committed offsets and no members. "live": one member.
    f.group
        .offset_commit(commit("g", "", -1, "orders", vec![(0, 1)]))
        .await
        .unwrap();
    let joined = f
        .group
        .join_group(JoinGroupRequest {
            group_id: "live".into(),
            topics: vec!["orders".into()],
            session_timeout_ms: 60_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (member, generation) = (joined.member_id.clone(), joined.generation);
    let fetch_g = OffsetFetchRequest {
        group_id: "g".into(),
        partitions: vec![],
    };
    let offsets_before = f
        .group
        .offset_fetch(fetch_g.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(offsets_before.offsets.len(), 1);
    let before = f.stored("orders").await;

    // Group ids every group RPC refuses the same way.
    let bad_groups: [(&str, &str); 4] = [
        ("", "empty"),
        (&huge, "longer than 249"),
        ("a/b", "'/'"),
        ("bell\u{7}", "control character"),
    ];

    // ---- FindCoordinator
    for (group, needle) in bad_groups {
        refused(
            &format!("find_coordinator: group {:?}", abbreviate(group)),
            f.group
                .find_coordinator(FindCoordinatorRequest {
                    group_id: group.into(),
                })
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidGroupId,
            needle,
        );
    }
    f.assert_alive("FindCoordinator").await;

    // ---- JoinGroup
    let join = |group: &str, topics: Vec<String>| JoinGroupRequest {
        group_id: group.into(),
        topics,
        ..Default::default()
    };
    refused(
        "join_group: default request",
        f.group.join_group(JoinGroupRequest::default()).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "at least one topic",
    );
    for (group, needle) in bad_groups {
        refused(
            &format!("join_group: group {:?}", abbreviate(group)),
            f.group.join_group(join(group, vec!["orders".into()])).await,
            Code::InvalidArgument,
            ErrorCode::InvalidGroupId,
            needle,
        );
    }
    for session in [1, 499, u32::MAX] {
        let mut req = join("j", vec!["orders".into()]);
        req.session_timeout_ms = session;
        refused(
            &format!("join_group: session timeout {session}"),
            f.group.join_group(req).await,
            Code::InvalidArgument,
            ErrorCode::InvalidRequest,
            "session timeout",
        );
    }
    let mut req = join("j", vec!["orders".into()]);
    req.assignor = huge.clone();
    refused(
        "join_group: 1 MiB assignor",
        f.group.join_group(req).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "use range, roundrobin or sticky",
    );
    for (topic, needle) in [("", "empty"), (huge.as_str(), "249"), ("a b", "' '")] {
        refused(
            "join_group: bad topic",
            f.group.join_group(join("j", vec![topic.into()])).await,
            Code::InvalidArgument,
            ErrorCode::InvalidTopic,
            needle,
        );
    }
    // 100k subscriptions to topics that do not exist (yet) are a legal
    // subscription: nothing to assign, and the member can leave again.
    let wide = f
        .group
        .join_group(join("wide", many_names(MANY)))
        .await
        .unwrap()
        .into_inner();
    assert!(wide.assignment.is_empty(), "{:?}", wide.assignment);
    f.group
        .leave_group(LeaveGroupRequest {
            group_id: "wide".into(),
            member_id: wide.member_id,
        })
        .await
        .unwrap();
    f.assert_alive("JoinGroup").await;

    // ---- Heartbeat
    let heartbeat = |group: &str, member: &str, generation: i32| HeartbeatRequest {
        group_id: group.into(),
        member_id: member.into(),
        generation,
        owned: vec![],
    };
    for (group, needle) in bad_groups {
        refused(
            &format!("heartbeat: group {:?}", abbreviate(group)),
            f.group
                .heartbeat(heartbeat(group, &member, generation))
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidGroupId,
            needle,
        );
    }
    refused(
        "heartbeat: no member id",
        f.group.heartbeat(heartbeat("live", "", generation)).await,
        Code::FailedPrecondition,
        ErrorCode::UnknownMemberId,
        "join again",
    );
    refused(
        "heartbeat: 1 MiB member id",
        f.group
            .heartbeat(heartbeat("live", &huge, generation))
            .await,
        Code::FailedPrecondition,
        ErrorCode::UnknownMemberId,
        "join again",
    );
    refused(
        "heartbeat: generation i32::MAX",
        f.group
            .heartbeat(heartbeat("live", &member, i32::MAX))
            .await,
        Code::FailedPrecondition,
        ErrorCode::IllegalGeneration,
        "generation 2147483647",
    );
    // 100k partitions it cannot own: a report, not a claim on anything real.
    let mut req = heartbeat("live", &member, generation);
    req.owned = vec![TopicPartitions {
        topic: "nope".into(),
        partitions: (0..MANY as u32).collect(),
    }];
    let hb = f.group.heartbeat(req).await.unwrap().into_inner();
    assert_eq!(hb.generation, generation);
    let mut req = heartbeat("live", &member, generation);
    req.owned = hb.assignment.clone();
    f.group.heartbeat(req).await.unwrap();
    f.assert_alive("Heartbeat").await;

    // ---- LeaveGroup
    for (group, needle) in bad_groups {
        refused(
            &format!("leave_group: group {:?}", abbreviate(group)),
            f.group
                .leave_group(LeaveGroupRequest {
                    group_id: group.into(),
                    member_id: member.clone(),
                })
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidGroupId,
            needle,
        );
    }
    for who in ["", "ghost", huge.as_str()] {
        refused(
            "leave_group: unknown member",
            f.group
                .leave_group(LeaveGroupRequest {
                    group_id: "live".into(),
                    member_id: who.into(),
                })
                .await,
            Code::FailedPrecondition,
            ErrorCode::UnknownMemberId,
            "join again",
        );
    }
    f.assert_alive("LeaveGroup").await;

    // ---- OffsetCommit
    refused(
        "offset_commit: default request",
        f.group.offset_commit(OffsetCommitRequest::default()).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "no offsets given",
    );
    for (group, needle) in bad_groups {
        refused(
            &format!("offset_commit: group {:?}", abbreviate(group)),
            f.group
                .offset_commit(commit(group, "", -1, "orders", vec![(0, 2)]))
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidGroupId,
            needle,
        );
    }
    for (topic, needle) in [("", "empty"), (huge.as_str(), "249")] {
        refused(
            "offset_commit: bad topic",
            f.group
                .offset_commit(commit("g", "", -1, topic, vec![(0, 2)]))
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidTopic,
            needle,
        );
    }
    refused(
        "offset_commit: unknown topic",
        f.group
            .offset_commit(commit("g", "", -1, "nope", vec![(0, 2)]))
            .await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "\"nope\"",
    );
    refused(
        "offset_commit: partition u32::MAX",
        f.group
            .offset_commit(commit("g", "", -1, "orders", vec![(u32::MAX, 2)]))
            .await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "partition 4294967295",
    );
    for offset in [-1, i64::MIN] {
        refused(
            &format!("offset_commit: offset {offset}"),
            f.group
                .offset_commit(commit("g", "", -1, "orders", vec![(0, offset)]))
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidRequest,
            "negative",
        );
    }
    let mut req = commit("g", "", -1, "orders", vec![(0, 2)]);
    req.topics[0].partitions[0].metadata = huge.clone();
    refused(
        "offset_commit: 1 MiB of metadata",
        f.group.offset_commit(req).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "4096",
    );
    refused(
        "offset_commit: unknown member",
        f.group
            .offset_commit(commit("live", "ghost", generation, "orders", vec![(0, 2)]))
            .await,
        Code::FailedPrecondition,
        ErrorCode::UnknownMemberId,
        "\"ghost\"",
    );
    refused(
        "offset_commit: generation i32::MAX",
        f.group
            .offset_commit(commit("live", &member, i32::MAX, "orders", vec![(0, 2)]))
            .await,
        Code::FailedPrecondition,
        ErrorCode::IllegalGeneration,
        "generation 2147483647",
    );
    refused(
        "offset_commit: from outside a group with members",
        f.group
            .offset_commit(commit("live", "", i32::MIN, "orders", vec![(0, 2)]))
            .await,
        Code::FailedPrecondition,
        ErrorCode::NonEmptyGroup,
        "stop its consumers first",
    );
    // 100k good offsets and one bad partition: nothing is committed.
    let mut parts: Vec<(u32, i64)> = (0..MANY).map(|_| (0, 2)).collect();
    parts.push((2, 2));
    refused(
        "offset_commit: 100k offsets, the last one bad",
        f.group
            .offset_commit(commit("g", "", -1, "orders", parts))
            .await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "partition 2 does not exist",
    );
    f.assert_alive("OffsetCommit").await;

    // ---- OffsetFetch
    for (group, needle) in bad_groups {
        refused(
            &format!("offset_fetch: group {:?}", abbreviate(group)),
            f.group
                .offset_fetch(OffsetFetchRequest {
                    group_id: group.into(),
                    partitions: vec![],
                })
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidGroupId,
            needle,
        );
    }
    let nobody = f
        .group
        .offset_fetch(OffsetFetchRequest {
            group_id: "nobody".into(),
            partitions: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(nobody.offsets.is_empty(), "{nobody:?}");
    // Partitions nothing was committed for (or that do not exist) read -1.
    let many = f
        .group
        .offset_fetch(OffsetFetchRequest {
            group_id: "g".into(),
            partitions: vec![TopicPartitions {
                topic: "orders".into(),
                partitions: (0..MANY as u32).rev().collect(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(many.offsets.len(), MANY);
    for o in &many.offsets {
        assert_eq!(o.offset, if o.partition == 0 { 1 } else { -1 }, "{o:?}");
    }
    f.assert_alive("OffsetFetch").await;

    // ---- ListGroups (no fields: only the default request exists)
    let groups = f
        .group
        .list_groups(ListGroupsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = groups.groups.iter().map(|g| g.group_id.as_str()).collect();
    assert!(names.contains(&"g") && names.contains(&"live"), "{names:?}");
    f.assert_alive("ListGroups").await;

    // ---- DescribeGroup
    for (group, needle) in bad_groups {
        refused(
            &format!("describe_group: group {:?}", abbreviate(group)),
            f.group
                .describe_group(DescribeGroupRequest {
                    group_id: group.into(),
                })
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidGroupId,
            needle,
        );
    }
    f.assert_alive("DescribeGroup").await;

    // ---- DeleteGroup
    for (group, needle) in bad_groups {
        refused(
            &format!("delete_group: group {:?}", abbreviate(group)),
            f.group
                .delete_group(DeleteGroupRequest {
                    group_id: group.into(),
                })
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidGroupId,
            needle,
        );
    }
    refused(
        "delete_group: unknown group",
        f.group
            .delete_group(DeleteGroupRequest {
                group_id: "nobody".into(),
            })
            .await,
        Code::NotFound,
        ErrorCode::GroupIdNotFound,
        "\"nobody\"",
    );
    refused(
        "delete_group: group with members",
        f.group
            .delete_group(DeleteGroupRequest {
                group_id: "live".into(),
            })
            .await,
        Code::FailedPrecondition,
        ErrorCode::NonEmptyGroup,
        "1 active member",
    );
    f.assert_alive("DeleteGroup").await;

    // ---- ResetGroupOffsets
    let reset = |group: &str, spec: ResetSpec, topic: &str, parts: Vec<(u32, i64)>| {
        ResetGroupOffsetsRequest {
            group_id: group.into(),
            topics: commit(group, "", -1, topic, parts).topics,
            spec: spec as i32,
            timestamp_ms: 0,
            dry_run: false,
        }
    };
    refused(
        "reset_group_offsets: default request",
        f.group
            .reset_group_offsets(ResetGroupOffsetsRequest::default())
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "no offsets given",
    );
    for spec in [99, -1] {
        let mut req = reset("g", ResetSpec::Earliest, "orders", vec![]);
        req.spec = spec;
        refused(
            &format!("reset_group_offsets: spec {spec}"),
            f.group.reset_group_offsets(req).await,
            Code::InvalidArgument,
            ErrorCode::InvalidRequest,
            &format!("reset spec {spec}"),
        );
    }
    for (group, needle) in bad_groups {
        refused(
            &format!("reset_group_offsets: group {:?}", abbreviate(group)),
            f.group
                .reset_group_offsets(reset(group, ResetSpec::Explicit, "orders", vec![(0, 0)]))
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidGroupId,
            needle,
        );
    }
    for spec in [ResetSpec::Explicit, ResetSpec::Earliest] {
        for (topic, code, error, needle) in [
            ("", Code::InvalidArgument, ErrorCode::InvalidTopic, "empty"),
            (
                huge.as_str(),
                Code::InvalidArgument,
                ErrorCode::InvalidTopic,
                "249",
            ),
            (
                "nope",
                Code::NotFound,
                ErrorCode::UnknownTopicOrPartition,
                "\"nope\"",
            ),
        ] {
            refused(
                &format!("reset_group_offsets: {spec:?} on a bad topic"),
                f.group
                    .reset_group_offsets(reset("g", spec, topic, vec![(0, 0)]))
                    .await,
                code,
                error,
                needle,
            );
        }
        refused(
            &format!("reset_group_offsets: {spec:?} partition u32::MAX"),
            f.group
                .reset_group_offsets(reset("g", spec, "orders", vec![(u32::MAX, 0)]))
                .await,
            Code::NotFound,
            ErrorCode::UnknownTopicOrPartition,
            "partition 4294967295",
        );
    }
    refused(
        "reset_group_offsets: negative explicit offset",
        f.group
            .reset_group_offsets(reset("g", ResetSpec::Explicit, "orders", vec![(0, -5)]))
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "negative",
    );
    refused(
        "reset_group_offsets: group with members",
        f.group
            .reset_group_offsets(reset("live", ResetSpec::Earliest, "orders", vec![]))
            .await,
        Code::FailedPrecondition,
        ErrorCode::NonEmptyGroup,
        "stop its consumers first",
    );
    // Extreme timestamps are answered (dry run: nothing changes).
    for (timestamp, want) in [(i64::MIN, [0, 0]), (i64::MAX, [2, 0])] {
        let mut req = reset("g", ResetSpec::Timestamp, "orders", vec![]);
        req.timestamp_ms = timestamp;
        req.dry_run = true;
        let planned = f.group.reset_group_offsets(req).await.unwrap().into_inner();
        let got: Vec<i64> = planned.offsets.iter().map(|o| o.offset).collect();
        assert_eq!(got, want, "timestamp {timestamp}: {planned:?}");
    }
    f.assert_alive("ResetGroupOffsets").await;

    // Nothing moved: committed offsets, the live member, the records.
    assert_eq!(
        f.group.offset_fetch(fetch_g).await.unwrap().into_inner(),
        offsets_before
    );
    let live = f
        .group
        .describe_group(DescribeGroupRequest {
            group_id: "live".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(live.members.len(), 1, "{live:?}");
    assert_eq!(live.members[0].member_id, member);
    assert_eq!(f.stored("orders").await, before);
}

// -------------------------------------------------------- Admin service

#[tokio::test]
async fn admin_service_refuses_bad_input_precisely() {
    let mut f = fixture(&[]).await;
    f.create("orders", 2, &[("retention.ms", "86400000")]).await;
    f.produce_ok("orders", 0, &["a", "b"]).await;
    let broker_id = f.broker_id().await;
    let huge = "x".repeat(MIB);
    let before = f.stored("orders").await;
    let cluster_before = f
        .admin
        .describe_cluster_configs(DescribeClusterConfigsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!cluster_before.configs.is_empty());
    let new_topic =
        |name: &str, partitions: u32, replication_factor: u32, configs: &[(&str, &str)]| NewTopic {
            name: name.into(),
            partitions,
            replication_factor,
            configs: strings(configs),
        };
    let create = |topics: Vec<NewTopic>| CreateTopicsRequest {
        topics,
        validate_only: false,
    };

    // ---- CreateTopics
    refused(
        "create_topics: default request",
        f.admin.create_topics(CreateTopicsRequest::default()).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "no topics given",
    );
    for (name, needle) in [("", "empty"), (huge.as_str(), "249"), ("a\u{0}b", "'\\0'")] {
        refused(
            "create_topics: bad name",
            f.admin
                .create_topics(create(vec![new_topic(name, 1, 1, &[])]))
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidTopic,
            needle,
        );
    }
    refused(
        "create_topics: u32::MAX partitions",
        f.admin
            .create_topics(create(vec![new_topic("u", u32::MAX, 1, &[])]))
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidPartitions,
        "limit of 10000",
    );
    refused(
        "create_topics: replication factor u32::MAX",
        f.admin
            .create_topics(create(vec![new_topic("u", 1, u32::MAX, &[])]))
            .await,
        Code::FailedPrecondition,
        ErrorCode::InvalidReplicationFactor,
        "4294967295",
    );
    let bad_configs: [(&str, &str, &str); 6] = [
        ("retention.ms", "-5", "between -1 and"),
        (
            "segment.bytes",
            "99999999999999999999",
            "expected an integer",
        ),
        ("max.message.bytes", "-2147483648", "between 61 and"),
        ("", "", "supported keys"),
        ("retention.ms", &huge, "expected an integer"),
        (&huge, "1", "supported keys"),
    ];
    for (key, value, needle) in bad_configs {
        refused(
            &format!(
                "create_topics: config {:?}={:?}",
                abbreviate(key),
                abbreviate(value)
            ),
            f.admin
                .create_topics(create(vec![new_topic("u", 1, 1, &[(key, value)])]))
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidConfig,
            needle,
        );
    }
    let configs: Vec<(String, String)> = many_names(MANY)
        .into_iter()
        .map(|k| (k, "1".into()))
        .collect();
    let mut crowded = new_topic("u", 1, 1, &[]);
    crowded.configs = configs.into_iter().collect();
    refused(
        "create_topics: 100k configs",
        f.admin.create_topics(create(vec![crowded])).await,
        Code::InvalidArgument,
        ErrorCode::InvalidConfig,
        "invalid config t-0=\"1\": unknown topic config",
    );
    // 100k topics in one request: refused before any work (planning them
    // all once stalled the broker long enough to lose its lease), even
    // just to validate; so are two topics of 6000 partitions.
    let mut topics: Vec<NewTopic> = many_names(MANY)
        .iter()
        .map(|n| new_topic(n, 0, 1, &[]))
        .collect();
    for validate_only in [true, false] {
        refused(
            "create_topics: 100k topics",
            f.admin
                .create_topics(CreateTopicsRequest {
                    topics: topics.clone(),
                    validate_only,
                })
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidRequest,
            "create 100000 partitions in 100000 topics; at most 10000",
        );
    }
    refused(
        "create_topics: 2 x 6000 partitions",
        f.admin
            .create_topics(create(vec![
                new_topic("u", 6000, 1, &[]),
                new_topic("v", 6000, 1, &[]),
            ]))
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "12000 partitions",
    );
    // Thousands of topics: all or nothing, and validate_only creates none.
    topics.truncate(4000);
    let req = CreateTopicsRequest {
        topics: topics.clone(),
        validate_only: true,
    };
    let checked = f.admin.create_topics(req).await.unwrap().into_inner();
    assert!(checked.topics.is_empty(), "validate_only describes nothing");
    topics.push(new_topic("bad name!", 1, 1, &[]));
    refused(
        "create_topics: 4000 topics, the last one bad",
        f.admin.create_topics(create(topics.clone())).await,
        Code::InvalidArgument,
        ErrorCode::InvalidTopic,
        "\"bad name!\"",
    );
    topics.pop();
    topics.push(new_topic("t-0", 1, 1, &[]));
    refused(
        "create_topics: 4000 topics, one twice",
        f.admin.create_topics(create(topics)).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "listed twice",
    );
    f.assert_alive("CreateTopics").await;

    // ---- DeleteTopics
    let delete = |names: Vec<String>| DeleteTopicsRequest { names };
    refused(
        "delete_topics: default request",
        f.admin.delete_topics(DeleteTopicsRequest::default()).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "no topics given",
    );
    for (name, needle) in [("", "empty"), (huge.as_str(), "249")] {
        refused(
            "delete_topics: bad name",
            f.admin.delete_topics(delete(vec![name.into()])).await,
            Code::InvalidArgument,
            ErrorCode::InvalidTopic,
            needle,
        );
    }
    let mut names = many_names(MANY);
    names.insert(0, "orders".into());
    refused(
        "delete_topics: orders and 100k unknown topics",
        f.admin.delete_topics(delete(names)).await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "unknown topic \"t-0\"",
    );
    f.assert_alive("DeleteTopics").await;

    // ---- ListTopics
    for include_internal in [false, true] {
        let listed = f
            .admin
            .list_topics(ListTopicsRequest { include_internal })
            .await
            .unwrap()
            .into_inner();
        let names: Vec<&str> = listed.topics.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["orders"],
            "no topic created or deleted by the above"
        );
    }
    f.assert_alive("ListTopics").await;

    // ---- DescribeTopics
    let all = f
        .admin
        .describe_topics(DescribeTopicsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.topics, vec![before.0.clone()]);
    let describe = |names: Vec<String>| DescribeTopicsRequest { names };
    for (name, code, error, needle) in [
        ("", Code::InvalidArgument, ErrorCode::InvalidTopic, "empty"),
        (
            huge.as_str(),
            Code::InvalidArgument,
            ErrorCode::InvalidTopic,
            "249",
        ),
        (
            "nope",
            Code::NotFound,
            ErrorCode::UnknownTopicOrPartition,
            "\"nope\"",
        ),
    ] {
        refused(
            "describe_topics: bad name",
            f.admin.describe_topics(describe(vec![name.into()])).await,
            code,
            error,
            needle,
        );
    }
    refused(
        "describe_topics: 100k unknown topics",
        f.admin.describe_topics(describe(many_names(MANY))).await,
        Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        "\"t-0\"",
    );
    f.assert_alive("DescribeTopics").await;

    // ---- AlterTopic
    let alter = |name: &str| AlterTopicRequest {
        name: name.into(),
        ..Default::default()
    };
    for (name, code, error, needle) in [
        ("", Code::InvalidArgument, ErrorCode::InvalidTopic, "empty"),
        (
            huge.as_str(),
            Code::InvalidArgument,
            ErrorCode::InvalidTopic,
            "249",
        ),
        (
            "nope",
            Code::NotFound,
            ErrorCode::UnknownTopicOrPartition,
            "\"nope\"",
        ),
    ] {
        refused(
            "alter_topic: bad name",
            f.admin.alter_topic(alter(name)).await,
            code,
            error,
            needle,
        );
    }
    let mut req = alter("orders");
    req.partitions = u32::MAX;
    refused(
        "alter_topic: u32::MAX partitions",
        f.admin.alter_topic(req).await,
        Code::InvalidArgument,
        ErrorCode::InvalidPartitions,
        "limit of 10000",
    );
    for (key, value, needle) in bad_configs {
        // More partitions and a bad config: neither happens.
        for validate_only in [false, true] {
            let mut req = alter("orders");
            req.partitions = 3;
            req.set_configs = strings(&[(key, value)]);
            req.validate_only = validate_only;
            refused(
                &format!(
                    "alter_topic: config {:?}={:?}",
                    abbreviate(key),
                    abbreviate(value)
                ),
                f.admin.alter_topic(req).await,
                Code::InvalidArgument,
                ErrorCode::InvalidConfig,
                needle,
            );
        }
    }
    for delete_configs in [vec!["nope".to_string()], vec![huge.clone()]] {
        let mut req = alter("orders");
        req.delete_configs = delete_configs;
        refused(
            "alter_topic: delete unknown configs",
            f.admin.alter_topic(req).await,
            Code::InvalidArgument,
            ErrorCode::InvalidConfig,
            "supported keys",
        );
    }
    // 100k configs: the first bad one (in key order when set) is named.
    let mut req = alter("orders");
    req.delete_configs = many_names(MANY);
    refused(
        "alter_topic: delete 100k configs",
        f.admin.alter_topic(req).await,
        Code::InvalidArgument,
        ErrorCode::InvalidConfig,
        "invalid config t-0=\"\": unknown topic config",
    );
    let mut req = alter("orders");
    req.set_configs = many_names(MANY)
        .into_iter()
        .map(|k| (k, "1".into()))
        .collect();
    refused(
        "alter_topic: set 100k configs",
        f.admin.alter_topic(req).await,
        Code::InvalidArgument,
        ErrorCode::InvalidConfig,
        "invalid config t-0=\"1\": unknown topic config",
    );
    f.assert_alive("AlterTopic").await;

    // ---- AlterPartitionReassignments
    let move_to = |topic: &str, partition: u32, replicas: Vec<i32>| PartitionReassignment {
        topic: topic.into(),
        partition,
        replicas,
    };
    let reassign = |reassignments| AlterPartitionReassignmentsRequest { reassignments };
    refused(
        "reassign: default request",
        f.admin
            .alter_partition_reassignments(AlterPartitionReassignmentsRequest::default())
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "no reassignments given",
    );
    let cases: Vec<(&str, Vec<PartitionReassignment>, Code, ErrorCode, String)> = vec![
        (
            "empty topic name",
            vec![move_to("", 0, vec![broker_id])],
            Code::InvalidArgument,
            ErrorCode::InvalidTopic,
            "empty".into(),
        ),
        (
            "1 MiB topic name",
            vec![move_to(&huge, 0, vec![broker_id])],
            Code::InvalidArgument,
            ErrorCode::InvalidTopic,
            "249".into(),
        ),
        (
            "unknown topic",
            vec![move_to("nope", 0, vec![broker_id])],
            Code::NotFound,
            ErrorCode::UnknownTopicOrPartition,
            "\"nope\"".into(),
        ),
        (
            "partition u32::MAX",
            vec![move_to("orders", u32::MAX, vec![broker_id])],
            Code::NotFound,
            ErrorCode::UnknownTopicOrPartition,
            "partition 4294967295".into(),
        ),
        (
            "broker -1",
            vec![move_to("orders", 0, vec![-1])],
            Code::InvalidArgument,
            ErrorCode::InvalidReplicaAssignment,
            "broker -1 is not a live broker".into(),
        ),
        (
            "broker i32::MAX",
            vec![move_to("orders", 0, vec![i32::MAX])],
            Code::InvalidArgument,
            ErrorCode::InvalidReplicaAssignment,
            "broker 2147483647 is not a live broker".into(),
        ),
        (
            "the same broker twice",
            vec![move_to("orders", 0, vec![broker_id, broker_id])],
            Code::InvalidArgument,
            ErrorCode::InvalidReplicaAssignment,
            format!("broker {broker_id} is listed twice"),
        ),
        (
            "100k replicas",
            vec![move_to("orders", 0, (1000..1000 + MANY as i32).collect())],
            Code::InvalidArgument,
            ErrorCode::InvalidReplicaAssignment,
            "broker 1000 is not a live broker".into(),
        ),
        (
            "cancel with nothing in progress",
            vec![move_to("orders", 0, vec![])],
            Code::FailedPrecondition,
            ErrorCode::NoReassignmentInProgress,
            "orders-0".into(),
        ),
        (
            "100k reassignments of one partition",
            (0..MANY)
                .map(|_| move_to("orders", 1, vec![broker_id]))
                .collect(),
            Code::InvalidArgument,
            ErrorCode::InvalidRequest,
            "orders-1 is listed twice".into(),
        ),
    ];
    for (case, reassignments, code, error, needle) in cases {
        refused(
            &format!("reassign: {case}"),
            f.admin
                .alter_partition_reassignments(reassign(reassignments))
                .await,
            code,
            error,
            &needle,
        );
    }
    f.assert_alive("AlterPartitionReassignments").await;

    // ---- ListPartitionReassignments
    let ongoing = f
        .admin
        .list_partition_reassignments(ListPartitionReassignmentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        ongoing.reassignments.is_empty(),
        "nothing was started: {ongoing:?}"
    );
    let list = |topics: Vec<String>| ListPartitionReassignmentsRequest { topics };
    for (topics, code, error, needle) in [
        (
            vec![String::new()],
            Code::InvalidArgument,
            ErrorCode::InvalidTopic,
            "empty",
        ),
        (
            vec![huge.clone()],
            Code::InvalidArgument,
            ErrorCode::InvalidTopic,
            "249",
        ),
        (
            many_names(MANY),
            Code::NotFound,
            ErrorCode::UnknownTopicOrPartition,
            "\"t-0\"",
        ),
    ] {
        refused(
            "list_reassignments: bad topics",
            f.admin.list_partition_reassignments(list(topics)).await,
            code,
            error,
            needle,
        );
    }
    f.assert_alive("ListPartitionReassignments").await;

    // ---- DescribeClusterConfigs (no fields: only the default request exists)
    assert_eq!(
        f.admin
            .describe_cluster_configs(DescribeClusterConfigsRequest::default())
            .await
            .unwrap()
            .into_inner(),
        cluster_before
    );
    f.assert_alive("DescribeClusterConfigs").await;

    // ---- AlterClusterConfigs
    refused(
        "alter_cluster_configs: default request",
        f.admin
            .alter_cluster_configs(AlterClusterConfigsRequest::default())
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "nothing to change",
    );
    for (key, value, needle) in [
        ("log.retention.ms", "-5", "between -1 and"),
        ("log.retention.ms", huge.as_str(), "expected an integer"),
        (
            "log.segment.bytes",
            "99999999999999999999",
            "expected an integer",
        ),
        ("retention.ms", "1", "is a topic config"),
        ("broker.id", "7", "cannot change at run time"),
        ("", "", "unknown dynamic broker config"),
        (huge.as_str(), "1", "unknown dynamic broker config"),
    ] {
        for validate_only in [false, true] {
            refused(
                &format!(
                    "alter_cluster_configs: {:?}={:?}",
                    abbreviate(key),
                    abbreviate(value)
                ),
                f.admin
                    .alter_cluster_configs(AlterClusterConfigsRequest {
                        set_configs: strings(&[(key, value)]),
                        delete_configs: vec![],
                        validate_only,
                    })
                    .await,
                Code::InvalidArgument,
                ErrorCode::InvalidConfig,
                needle,
            );
        }
    }
    refused(
        "alter_cluster_configs: set and delete one key",
        f.admin
            .alter_cluster_configs(AlterClusterConfigsRequest {
                set_configs: strings(&[("log.retention.ms", "1000")]),
                delete_configs: vec!["log.retention.ms".into()],
                validate_only: false,
            })
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "both set and deleted",
    );
    for delete_configs in [vec![String::new()], vec![huge.clone()]] {
        refused(
            "alter_cluster_configs: delete unknown keys",
            f.admin
                .alter_cluster_configs(AlterClusterConfigsRequest {
                    set_configs: HashMap::new(),
                    delete_configs,
                    validate_only: false,
                })
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidConfig,
            "unknown dynamic broker config",
        );
    }
    refused(
        "alter_cluster_configs: set 100k keys",
        f.admin
            .alter_cluster_configs(AlterClusterConfigsRequest {
                set_configs: many_names(MANY)
                    .into_iter()
                    .map(|k| (k, "1".into()))
                    .collect(),
                delete_configs: vec![],
                validate_only: false,
            })
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidConfig,
        "invalid config t-0=\"1\": unknown dynamic broker config",
    );
    refused(
        "alter_cluster_configs: delete 100k keys",
        f.admin
            .alter_cluster_configs(AlterClusterConfigsRequest {
                set_configs: HashMap::new(),
                delete_configs: many_names(MANY),
                validate_only: true,
            })
            .await,
        Code::InvalidArgument,
        ErrorCode::InvalidConfig,
        "invalid config t-0=\"\": unknown dynamic broker config",
    );
    f.assert_alive("AlterClusterConfigs").await;

    // ---- CreateAcls / DescribeAcls / DeleteAcls (authorization is off:
    // these only check and store rules)
    let rule = |principal: &str, name: &str| AclBinding {
        resource_type: AclResourceType::Topic as i32,
        resource_name: name.into(),
        pattern_type: AclPatternType::Literal as i32,
        principal: principal.into(),
        operation: AclOperation::Read as i32,
        permission: AclPermission::Allow as i32,
    };
    let create_acls = |acls: Vec<AclBinding>| CreateAclsRequest { acls };
    refused(
        "create_acls: default request",
        f.admin.create_acls(CreateAclsRequest::default()).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "names no ACL",
    );
    let mut bad_rules: Vec<(&str, AclBinding, String)> = vec![
        (
            "all fields ANY",
            AclBinding::default(),
            "needs a resource type".into(),
        ),
        ("no principal", rule("", "orders"), "User:<name>".into()),
        (
            "a principal without User:",
            rule("bob", "orders"),
            "User:<name>".into(),
        ),
        (
            "no resource name",
            rule("User:bob", ""),
            "resource name is empty".into(),
        ),
        (
            "a 1 MiB resource name",
            rule("User:bob", &huge),
            "longer than 4096 bytes".into(),
        ),
    ];
    for (field, value) in [
        ("resource type", 99),
        ("pattern type", -1),
        ("operation", i32::MAX),
        ("permission", 7),
    ] {
        let mut b = rule("User:bob", "orders");
        match field {
            "resource type" => b.resource_type = value,
            "pattern type" => b.pattern_type = value,
            "operation" => b.operation = value,
            _ => b.permission = value,
        }
        bad_rules.push((field, b, format!("unknown ACL {field} {value}")));
    }
    for (case, binding, needle) in bad_rules {
        refused(
            &format!("create_acls: {case}"),
            f.admin.create_acls(create_acls(vec![binding])).await,
            Code::InvalidArgument,
            ErrorCode::InvalidRequest,
            &needle,
        );
    }
    // 100k good rules and one bad: none is stored.
    let mut acls: Vec<AclBinding> = many_names(MANY)
        .iter()
        .map(|n| rule("User:bob", n))
        .collect();
    acls.push(rule("nobody", "orders"));
    refused(
        "create_acls: 100k rules, the last one bad",
        f.admin.create_acls(create_acls(acls)).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "User:<name>",
    );
    let stored_acls = f
        .admin
        .describe_acls(DescribeAclsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        stored_acls.acls.is_empty(),
        "{} rules stored",
        stored_acls.acls.len()
    );
    let filter = |field: &str, value: i32| {
        let mut f = AclFilter::default();
        match field {
            "resource type" => f.resource_type = value,
            "pattern type" => f.pattern_type = value,
            "operation" => f.operation = value,
            _ => f.permission = value,
        }
        f
    };
    for (field, value) in [
        ("resource type", -1),
        ("pattern type", 3),
        ("operation", 99),
        ("permission", i32::MIN),
    ] {
        refused(
            &format!("describe_acls: {field} {value}"),
            f.admin
                .describe_acls(DescribeAclsRequest {
                    filter: Some(filter(field, value)),
                })
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidRequest,
            &format!("unknown ACL {field} {value}"),
        );
        refused(
            &format!("delete_acls: {field} {value}"),
            f.admin
                .delete_acls(DeleteAclsRequest {
                    filters: vec![AclFilter::default(), filter(field, value)],
                })
                .await,
            Code::InvalidArgument,
            ErrorCode::InvalidRequest,
            &format!("unknown ACL {field} {value}"),
        );
    }
    refused(
        "delete_acls: default request",
        f.admin.delete_acls(DeleteAclsRequest::default()).await,
        Code::InvalidArgument,
        ErrorCode::InvalidRequest,
        "names no filter",
    );
    // Filters for nothing that exists (100k of them, or a 1 MiB
    // principal): nothing to delete.
    let mut filters: Vec<AclFilter> = many_names(MANY)
        .into_iter()
        .map(|n| AclFilter {
            resource_name: n,
            ..Default::default()
        })
        .collect();
    filters.push(AclFilter {
        principal: huge.clone(),
        ..Default::default()
    });
    let deleted = f
        .admin
        .delete_acls(DeleteAclsRequest { filters })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.deleted.is_empty(), "{deleted:?}");
    f.assert_alive("CreateAcls/DescribeAcls/DeleteAcls").await;

    assert_eq!(
        f.admin
            .describe_cluster_configs(DescribeClusterConfigsRequest::default())
            .await
            .unwrap()
            .into_inner(),
        cluster_before,
        "cluster configs unchanged"
    );
    assert_eq!(
        f.stored("orders").await,
        before,
        "topic, configs and records unchanged"
    );
}

// -------------------------------------------------- Replication service

#[tokio::test]
async fn replication_service_refuses_bad_input_precisely() {
    let mut f = fixture(&[]).await;
    f.create("orders", 2, &[]).await;
    f.produce_ok("orders", 0, &["a", "b"]).await;
    let me = f.broker_id().await;
    let huge = "x".repeat(MIB);
    let before = f.stored("orders").await;
    let mut replication =
        ReplicationClient::new(f.channel.clone()).max_decoding_message_size(64 * MIB);

    /// One request on its own stream: the first answer, and whether the
    /// stream then ended.
    async fn one(
        client: &mut ReplicationClient<Channel>,
        req: ReplicaFetchRequest,
    ) -> Result<ReplicaFetchResponse, tonic::Status> {
        let mut stream = client
            .replica_fetch(futures::stream::iter(vec![req]))
            .await?
            .into_inner();
        let first = stream.message().await?;
        first.ok_or_else(|| tonic::Status::unknown("stream ended without an answer"))
    }
    let fetch = |replica_id: i32, partitions: Vec<ReplicaFetchPartition>| ReplicaFetchRequest {
        replica_id,
        max_wait_ms: 0,
        max_bytes: 0,
        partitions,
    };
    let part = |topic: &str, partition: u32, fetch_offset: i64| ReplicaFetchPartition {
        topic: topic.into(),
        partition,
        fetch_offset,
        current_leader_epoch: -1,
        last_fetched_epoch: -1,
        log_start_offset: 0,
    };

    // Nothing asked (the default request names broker 0): nothing answered.
    let empty = one(&mut replication, ReplicaFetchRequest::default())
        .await
        .unwrap();
    assert!(empty.partitions.is_empty(), "{empty:?}");
    // Not a broker: the stream fails with a status.
    for replica_id in [-1, i32::MIN] {
        refused(
            &format!("replica_fetch: replica id {replica_id}"),
            one(
                &mut replication,
                fetch(replica_id, vec![part("orders", 0, 0)]),
            )
            .await
            .map(tonic::Response::new),
            Code::InvalidArgument,
            ErrorCode::InvalidRequest,
            "only brokers replicate",
        );
    }
    // Per-partition trouble comes back per partition.
    let mut epoch_max = part("orders", 0, 0);
    epoch_max.current_leader_epoch = i32::MAX;
    let mut diverged = part("orders", 0, 0);
    diverged.last_fetched_epoch = i32::MAX;
    let resp = one(
        &mut replication,
        fetch(
            me,
            vec![
                part("", 0, 0),
                part(&huge, 0, 0),
                part("orders", u32::MAX, 0),
                part("orders", 0, -5),
                part("orders", 0, i64::MIN),
                part("orders", 0, i64::MAX),
                epoch_max,
                diverged,
            ],
        ),
    )
    .await
    .unwrap();
    let results = &resp.partitions;
    assert_eq!(results.len(), 8, "{resp:?}");
    let expected: [(ErrorCode, &str); 7] = [
        (ErrorCode::UnknownTopicOrPartition, "\"\""),
        (ErrorCode::UnknownTopicOrPartition, "xxxx"),
        (ErrorCode::UnknownTopicOrPartition, "partition 4294967295"),
        (ErrorCode::InvalidRequest, "negative"),
        (ErrorCode::InvalidRequest, "negative"),
        (ErrorCode::OffsetOutOfRange, "0..=2"),
        (ErrorCode::UnknownLeaderEpoch, "2147483647"),
    ];
    for (i, (code, needle)) in expected.into_iter().enumerate() {
        partition_error(
            &format!("replica_fetch: partition #{i}"),
            results[i].error.as_ref(),
            code,
            needle,
        );
        assert!(results[i].records.is_empty());
    }
    assert!(results[7].error.is_none(), "{:?}", results[7]);
    let diverging = results[7]
        .diverging_epoch
        .as_ref()
        .expect("a diverging epoch");
    assert_eq!(diverging.end_offset, 2, "{diverging:?}");
    // A broker that is no replica of the partition.
    let resp = one(
        &mut replication,
        fetch(me + 1000, vec![part("orders", 0, 0)]),
    )
    .await
    .unwrap();
    partition_error(
        "replica_fetch: not a replica",
        resp.partitions[0].error.as_ref(),
        ErrorCode::InvalidRequest,
        "is not a replica of orders-0",
    );
    // 100k partitions of unknown topics, each answered.
    let resp = one(
        &mut replication,
        fetch(me, many_names(MANY).iter().map(|t| part(t, 0, 0)).collect()),
    )
    .await
    .unwrap();
    assert_eq!(resp.partitions.len(), MANY);
    assert!(resp.partitions.iter().all(
        |p| p.error.as_ref().map(|e| e.code) == Some(ErrorCode::UnknownTopicOrPartition as i32)
    ));
    // Several requests on one stream, absurd limits, in order.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let requests =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|req| (req, rx)) },
        );
    let mut stream = replication
        .replica_fetch(requests)
        .await
        .unwrap()
        .into_inner();
    for max_bytes in [1, u32::MAX] {
        let mut req = fetch(me, vec![part("orders", 0, 0)]);
        req.max_bytes = max_bytes;
        req.max_wait_ms = u32::MAX;
        tx.send(req).unwrap();
        let resp = stream.message().await.unwrap().expect("an answer");
        let p = &resp.partitions[0];
        assert!(p.error.is_none(), "{p:?}");
        assert_eq!(p.records, before.1[0], "max_bytes {max_bytes}");
    }
    drop(tx);
    assert!(
        stream.message().await.unwrap().is_none(),
        "ends with the requests"
    );
    f.assert_alive("ReplicaFetch").await;
    assert_eq!(f.stored("orders").await, before, "stored data unchanged");
}

// ------------------------------------------------- undecodable requests

/// Passes bytes through untouched, so the broker gets whatever we send.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// What field 1 of a method's request is, for the wire-type mismatch.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field1 {
    /// A message (or repeated message / map entry) whose own field 1 is a
    /// string (an enum for the ACL messages).
    Message,
    /// A (repeated) string.
    String,
    /// A varint (int32, bool).
    Varint,
    /// The request has no fields.
    None,
}

const METHODS: &[(&str, Field1)] = &[
    ("/runnel.v1.Broker/Produce", Field1::Message),
    ("/runnel.v1.Broker/Fetch", Field1::Message),
    ("/runnel.v1.Broker/ListOffsets", Field1::Message),
    ("/runnel.v1.Broker/Metadata", Field1::String),
    ("/runnel.v1.Broker/InitProducerId", Field1::String),
    ("/runnel.v1.Broker/DeleteRecords", Field1::Message),
    ("/runnel.v1.Group/FindCoordinator", Field1::String),
    ("/runnel.v1.Group/JoinGroup", Field1::String),
    ("/runnel.v1.Group/Heartbeat", Field1::String),
    ("/runnel.v1.Group/LeaveGroup", Field1::String),
    ("/runnel.v1.Group/OffsetCommit", Field1::String),
    ("/runnel.v1.Group/OffsetFetch", Field1::String),
    ("/runnel.v1.Group/ListGroups", Field1::None),
    ("/runnel.v1.Group/DescribeGroup", Field1::String),
    ("/runnel.v1.Group/DeleteGroup", Field1::String),
    ("/runnel.v1.Group/ResetGroupOffsets", Field1::String),
    ("/runnel.v1.Admin/CreateTopics", Field1::Message),
    ("/runnel.v1.Admin/DeleteTopics", Field1::String),
    ("/runnel.v1.Admin/ListTopics", Field1::Varint),
    ("/runnel.v1.Admin/DescribeTopics", Field1::String),
    ("/runnel.v1.Admin/AlterTopic", Field1::String),
    (
        "/runnel.v1.Admin/AlterPartitionReassignments",
        Field1::Message,
    ),
    (
        "/runnel.v1.Admin/ListPartitionReassignments",
        Field1::String,
    ),
    ("/runnel.v1.Admin/DescribeClusterConfigs", Field1::None),
    ("/runnel.v1.Admin/AlterClusterConfigs", Field1::Message),
    // Field 1 of an AclBinding or AclFilter is an enum, so the "nested
    // string" body is a wire-type mismatch one level down.
    ("/runnel.v1.Admin/CreateAcls", Field1::Message),
    ("/runnel.v1.Admin/DescribeAcls", Field1::Message),
    ("/runnel.v1.Admin/DeleteAcls", Field1::Message),
    ("/runnel.v1.Replication/ReplicaFetch", Field1::Varint),
];

const STREAMING: &str = "/runnel.v1.Replication/ReplicaFetch";

/// Protobuf bodies no request message decodes from, whatever its fields.
fn undecodable(field1: Field1) -> Vec<(&'static str, Bytes)> {
    let mut bodies: Vec<(&'static str, Bytes)> = vec![
        (
            "length-delimited field cut short",
            Bytes::from_static(&[0x0A, 0x05, 0x01]),
        ),
        (
            "11-byte varint",
            Bytes::from_static(&[
                0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
            ]),
        ),
        ("wire type 7", Bytes::from_static(&[0x0F, 0x00])),
        ("field number 0", Bytes::from_static(&[0x00, 0x00])),
        (
            "group never closed",
            Bytes::from_static(&[0x0B, 0x08, 0x01]),
        ),
        (
            "length prefix 2^63",
            Bytes::from_static(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
        ),
    ];
    match field1 {
        Field1::Message => {
            bodies.push((
                "varint where a message goes",
                Bytes::from_static(&[0x08, 0x01]),
            ));
            bodies.push((
                "invalid UTF-8 in a nested string",
                Bytes::from_static(&[0x0A, 0x04, 0x0A, 0x02, 0xFF, 0xFE]),
            ));
        }
        Field1::String => {
            bodies.push((
                "varint where a string goes",
                Bytes::from_static(&[0x08, 0x01]),
            ));
            bodies.push((
                "invalid UTF-8",
                Bytes::from_static(&[0x0A, 0x02, 0xFF, 0xFE]),
            ));
        }
        Field1::Varint => {
            bodies.push((
                "bytes where a varint goes",
                Bytes::from_static(&[0x0A, 0x01, 0x00]),
            ));
        }
        Field1::None => {}
    }
    bodies
}

/// gRPC bodies that are not a well-formed length-prefixed message, with
/// the code the server answers and a word of its message.
const BAD_FRAMES: &[(&str, &str, Code, &str)] = &[
    (
        "compressed flag without grpc-encoding",
        "\x01\x00\x00\x00\x01x",
        Code::Internal,
        "compressed-flag",
    ),
    (
        "compression flag 7",
        "\x07\x00\x00\x00\x01x",
        Code::Internal,
        "compression flag",
    ),
    (
        "length prefix near 2 GiB",
        "\x00\x7f\x7f\x7f\x7fx",
        Code::ResourceExhausted,
        "socket.request.max.bytes",
    ),
    (
        "length prefix past the body",
        "\x00\x00\x00\x00\x10abc",
        Code::Internal,
        "EOF",
    ),
    ("half a length prefix", "\x00\x00", Code::Internal, "EOF"),
];

/// Send `body` as one message of `path` (a unary call, or the only message
/// of the replication stream) and return the status it ends with.
async fn raw_call(channel: &Channel, path: &'static str, body: Bytes) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("connection still up");
    let path = http::uri::PathAndQuery::from_static(path);
    if path.path() == STREAMING {
        let request = tonic::Request::new(futures::stream::iter(vec![body]));
        match grpc.streaming(request, path, RawCodec).await {
            Err(status) => status,
            Ok(resp) => {
                let mut stream = resp.into_inner();
                match stream.message().await {
                    Err(status) => status,
                    Ok(answer) => panic!("{STREAMING}: garbage was answered with {answer:?}"),
                }
            }
        }
    } else {
        match grpc.unary(tonic::Request::new(body), path, RawCodec).await {
            Err(status) => status,
            Ok(resp) => panic!("garbage was answered with {:?}", resp.into_inner()),
        }
    }
}

/// POST `body` as is (no gRPC framing added) to `path`, with `headers`,
/// and return the status the broker ends the call with.
async fn raw_http(
    channel: &Channel,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> tonic::Status {
    use tonic::codegen::Service as _;
    let mut request = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(tonic::body::Body::new(body.to_owned()))
        .unwrap();
    let mut svc = channel.clone();
    std::future::poll_fn(|cx| svc.poll_ready(cx))
        .await
        .expect("connection still up");
    let response = svc
        .call(request)
        .await
        .unwrap_or_else(|e| panic!("{path}: no HTTP response ({e}): the connection was dropped"));
    let (parts, mut body) = response.into_parts();
    assert_eq!(parts.status, http::StatusCode::OK, "{path}: {parts:?}");
    if let Some(status) = tonic::Status::from_header_map(&parts.headers) {
        return status;
    }
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => panic!("{path}: the response ended without a grpc-status"),
            Some(Err(status)) => panic!("{path}: the response broke off: {status:?}"),
            Some(Ok(frame)) => {
                if let Ok(trailers) = frame.into_trailers() {
                    return tonic::Status::from_header_map(&trailers)
                        .unwrap_or_else(|| panic!("{path}: trailers without grpc-status"));
                }
            }
        }
    }
}

#[tokio::test]
async fn undecodable_requests_get_a_status_on_every_method() {
    let mut f = fixture(&[]).await;
    f.create("orders", 2, &[]).await;
    f.produce_ok("orders", 0, &["a", "b"]).await;
    let before = f.stored("orders").await;

    for &(path, field1) in METHODS {
        // Protobuf that does not decode: tonic's decoder refuses it.
        for (case, body) in undecodable(field1) {
            let status = raw_call(&f.channel, path, body).await;
            assert!(
                matches!(status.code(), Code::Internal | Code::InvalidArgument),
                "{path}, {case}: {status:?}"
            );
            assert_message(&format!("{path}, {case}"), &status, "failed to decode");
        }
        // gRPC framing that is wrong.
        for &(case, body, code, needle) in BAD_FRAMES {
            let status = raw_http(&f.channel, path, body, &[]).await;
            // The broker-internal replication stream ends with its status in
            // trailers, which keep tonic's wording (OUT_OF_RANGE).
            let (code, needle) = match code {
                Code::ResourceExhausted if path == STREAMING => (Code::OutOfRange, "too large"),
                _ => (code, needle),
            };
            assert_eq!(status.code(), code, "{path}, {case}: {status:?}");
            assert_message(&format!("{path}, {case}"), &status, needle);
        }
        // A unary call without its message; a stream may carry none.
        let status = raw_http(&f.channel, path, "", &[]).await;
        if path == STREAMING {
            assert_eq!(status.code(), Code::Ok, "{path}, no message: {status:?}");
        } else {
            assert_eq!(
                status.code(),
                Code::Internal,
                "{path}, no message: {status:?}"
            );
            assert_message(
                &format!("{path}, no message"),
                &status,
                "Missing request message",
            );
        }
        // A compression the broker does not speak.
        let status = raw_http(
            &f.channel,
            path,
            "\x01\x00\x00\x00\x01x",
            &[("grpc-encoding", "br")],
        )
        .await;
        assert_eq!(
            status.code(),
            Code::Unimplemented,
            "{path}, grpc-encoding br: {status:?}"
        );
        assert_message(&format!("{path}, grpc-encoding br"), &status, "br");
    }
    f.assert_alive("undecodable requests").await;

    // Methods and services that do not exist.
    for path in [
        "/runnel.v1.Broker/Nope",
        "/runnel.v1.Nope/Produce",
        "/",
        "/runnel.v1.Broker/",
    ] {
        let status = raw_http(&f.channel, path, "\x00\x00\x00\x00\x00", &[]).await;
        assert_eq!(status.code(), Code::Unimplemented, "{path}: {status:?}");
    }
    f.assert_alive("unknown methods").await;
    assert_eq!(f.stored("orders").await, before, "stored data unchanged");
}
