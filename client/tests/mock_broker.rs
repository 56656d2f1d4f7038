//! The client against an in-memory mock broker on loopback (see `mock/`):
//! everything but the real broker's storage.

mod mock;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use mock::{MockBroker, ProduceFault};
use runnel_client::producer::partitioner::partition_for_key;
use runnel_client::*;

fn client(mock: &MockBroker) -> ClientConfig {
    ClientConfig::new(&mock.bootstrap()).unwrap()
}

async fn producer(mock: &MockBroker, config: ProducerConfig) -> Producer {
    Producer::connect(client(mock), config).await.unwrap()
}

async fn consumer(mock: &MockBroker, config: ConsumerConfig) -> Consumer {
    Consumer::connect(client(mock), config).await.unwrap()
}

/// Poll until `n` records arrived or 10 s passed.
async fn poll_n(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while out.len() < n && tokio::time::Instant::now() < deadline {
        out.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    out
}

#[tokio::test]
async fn admin_round_trip() {
    let mock = MockBroker::start().await;
    let admin = Admin::connect(client(&mock)).await.unwrap();
    let created = admin
        .create_topic("events", 3, 1, &[("retention.ms", "1000")])
        .await
        .unwrap();
    assert_eq!(created.partitions.len(), 3);

    let err = admin.create_topic("events", 3, 1, &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TopicAlreadyExists));
    assert_eq!(
        err.to_string(),
        "topic \"events\" already exists; pick another name or delete the existing topic first"
    );

    let listed = admin.list_topics().await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["events"]
    );

    let altered = admin
        .alter_topic(
            AlterTopic::new("events")
                .partitions(5)
                .set_config("segment.bytes", "100")
                .delete_config("retention.ms"),
        )
        .await
        .unwrap();
    assert_eq!(altered.partitions.len(), 5);
    assert_eq!(
        altered
            .configs
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["segment.bytes"]
    );

    let described = admin.describe_topic("events").await.unwrap();
    assert_eq!(described.partitions.len(), 5);
    let meta = admin.metadata(&["events"]).await.unwrap();
    assert_eq!(meta.topics[0].partitions.len(), 5);

    admin.delete_topic("events").await.unwrap();
    let err = admin.describe_topic("events").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition));
    assert!(
        err.to_string()
            .starts_with("unknown topic \"events\"; create it first"),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_broker_is_named() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(2),
        ..ClientConfig::new(&addr).unwrap()
    };
    let err = Admin::connect(config)
        .await
        .err()
        .expect("nothing listens there");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("could not connect to {addr}: ")),
        "{err}"
    );
    assert!(err.is_retriable());
}

#[tokio::test]
async fn produce_then_consume_keeps_order_and_keys() {
    let mock = MockBroker::start().await;
    mock.create("t", 4);
    let producer = producer(
        &mock,
        ProducerConfig {
            batch_size: 1024,
            ..Default::default()
        },
    )
    .await;

    let mut deliveries = Vec::new();
    for i in 0..500u32 {
        let key = format!("key-{}", i % 7);
        let record = ProducerRecord::new("t", format!("value-{i}")).key(key.clone());
        deliveries.push((key, producer.send(record).await.unwrap()));
    }
    let mut next_offset: HashMap<u32, i64> = HashMap::new();
    for (key, delivery) in deliveries {
        let meta = delivery.await.unwrap();
        assert_eq!(
            meta.partition,
            partition_for_key(key.as_bytes(), 4),
            "murmur2 partition"
        );
        let expected = next_offset.entry(meta.partition).or_default();
        assert_eq!(
            meta.offset, *expected,
            "offsets follow send order per partition"
        );
        *expected += 1;
    }
    assert!(
        mock.produce_requests() < 500,
        "records were batched: {} requests",
        mock.produce_requests()
    );

    let mut consumer = consumer(&mock, ConsumerConfig::default()).await;
    consumer.assign((0..4).map(|p| ("t", p)));
    for p in 0..4 {
        consumer.seek("t", p, Offset::Earliest).await.unwrap();
    }
    let records = poll_n(&mut consumer, 500).await;
    assert_eq!(records.len(), 500);
    let mut last: HashMap<u32, i64> = HashMap::new();
    for r in &records {
        let key = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
        assert_eq!(r.partition, partition_for_key(key.as_bytes(), 4));
        let prev = last.insert(r.partition, r.offset);
        assert_eq!(prev.map_or(0, |p| p + 1), r.offset);
    }
    for p in 0..4 {
        assert_eq!(consumer.position("t", p), Some(mock.end_offset("t", p)));
    }
}

#[tokio::test]
async fn keyless_records_fill_batches_on_one_partition() {
    let mock = MockBroker::start().await;
    mock.create("t", 8);
    let producer = producer(
        &mock,
        ProducerConfig {
            linger: Duration::from_secs(60),
            ..Default::default()
        },
    )
    .await;
    let mut partitions = Vec::new();
    for _ in 0..10 {
        partitions.push(
            producer
                .send(ProducerRecord::new("t", "small"))
                .await
                .unwrap()
                .partition(),
        );
    }
    assert!(
        partitions.iter().all(|p| *p == partitions[0]),
        "sticky: {partitions:?}"
    );
    producer.flush().await;
    assert_eq!(
        mock.produce_requests(),
        1,
        "one batch, one request, sent by flush before linger"
    );
    assert_eq!(mock.end_offset("t", partitions[0]), 10);
}

#[tokio::test]
async fn send_errors_are_immediate_and_actionable() {
    let mock = MockBroker::start().await;
    mock.create("t", 2);
    let producer = producer(
        &mock,
        ProducerConfig {
            max_request_size: 10_000,
            ..Default::default()
        },
    )
    .await;

    let err = producer
        .send(ProducerRecord::new("missing", "v"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition));
    assert!(err.to_string().contains("\"missing\""), "{err}");

    let err = producer
        .send(ProducerRecord::new("t", "v").partition(2))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "t-2: partition 2 does not exist (topic \"t\" has 2); create it first or check the name and partition"
    );

    let err = producer
        .send(ProducerRecord::new("t", vec![0u8; 20_000]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RecordTooLarge { max: 10_000, .. }),
        "{err}"
    );

    // A topic grown after the producer cached it is seen on demand.
    mock.create("t", 3);
    let meta = producer
        .send(ProducerRecord::new("t", "v").partition(2))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!((meta.partition, meta.offset), (2, 0));
}

#[tokio::test]
async fn acks_none_gives_no_offsets_and_close_refuses_more() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    let producer = producer(
        &mock,
        ProducerConfig {
            acks: Acks::None,
            // Idempotence needs acks=all.
            enable_idempotence: false,
            ..Default::default()
        },
    )
    .await;
    let meta = producer
        .send(ProducerRecord::new("t", "v").timestamp(123))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!((meta.offset, meta.timestamp), (-1, 123));
    producer.send(ProducerRecord::new("t", "w")).await.unwrap();
    producer.close().await;
    assert_eq!(mock.end_offset("t", 0), 2, "close sends what was buffered");
    assert!(matches!(
        producer.send(ProducerRecord::new("t", "x")).await,
        Err(Error::Closed)
    ));
}

#[tokio::test]
async fn dropped_producer_still_delivers() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    let p = producer(
        &mock,
        ProducerConfig {
            linger: Duration::from_millis(50),
            ..Default::default()
        },
    )
    .await;
    let delivery = p.send(ProducerRecord::new("t", "v")).await.unwrap();
    drop(p);
    assert_eq!(delivery.await.unwrap().offset, 0);
}

#[tokio::test]
async fn fetches_larger_than_tonics_default_limit() {
    let mock = MockBroker::start().await;
    mock.create("big", 1);
    let producer = producer(
        &mock,
        ProducerConfig {
            batch_size: 1 << 20,
            ..Default::default()
        },
    )
    .await;
    let value = Bytes::from(vec![7u8; 64 * 1024]);
    for _ in 0..128 {
        producer
            .send(ProducerRecord::new("big", value.clone()))
            .await
            .unwrap();
    }
    producer.flush().await;

    // 8 MiB in one partition, fetched with a 16 MiB partition limit: the
    // response is well over tonic's default 4 MiB message limit.
    let config = ConsumerConfig {
        max_partition_fetch_bytes: 16 << 20,
        ..Default::default()
    };
    let mut consumer = consumer(&mock, config).await;
    consumer.assign([("big", 0)]);
    consumer.seek("big", 0, Offset::Earliest).await.unwrap();
    let first = consumer.poll(Duration::from_secs(10)).await.unwrap();
    assert_eq!(first.len(), 128, "everything in one fetch");
    assert!(first.iter().all(|r| r.value.as_ref() == Some(&value)));
}

#[tokio::test]
async fn consumer_seeks_and_resets() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    let producer = producer(&mock, ProducerConfig::default()).await;
    for i in 0..10i64 {
        producer
            .send(ProducerRecord::new("t", format!("{i}")).timestamp(1000 + i))
            .await
            .unwrap();
    }
    producer.flush().await;

    let mut consumer = consumer(
        &mock,
        ConsumerConfig {
            auto_offset_reset: AutoOffsetReset::Earliest,
            ..Default::default()
        },
    )
    .await;
    consumer.assign([("t", 0)]);
    assert!(matches!(
        consumer.seek("t", 1, Offset::Earliest).await,
        Err(Error::NotAssigned { .. })
    ));

    consumer.seek("t", 0, Offset::At(4)).await.unwrap();
    let records = poll_n(&mut consumer, 6).await;
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [4, 5, 6, 7, 8, 9],
        "records before 4 are skipped"
    );

    consumer
        .seek("t", 0, Offset::Timestamp(1007))
        .await
        .unwrap();
    assert_eq!(consumer.position("t", 0), Some(7));
    consumer
        .seek("t", 0, Offset::Timestamp(5000))
        .await
        .unwrap();
    assert_eq!(
        consumer.position("t", 0),
        Some(10),
        "nothing that new: the end"
    );
    consumer.seek("t", 0, Offset::Latest).await.unwrap();
    assert_eq!(consumer.position("t", 0), Some(10));
    assert_eq!(consumer.end_offsets(&[("t", 0)]).await.unwrap(), [10]);

    // Out of range: reset to earliest (after retention moved the start).
    mock.truncate_before("t", 0, 3);
    consumer.seek("t", 0, Offset::At(1)).await.unwrap();
    let records = poll_n(&mut consumer, 7).await;
    assert_eq!(records.first().map(|r| r.offset), Some(3));
    assert_eq!(consumer.beginning_offsets(&[("t", 0)]).await.unwrap(), [3]);

    // With no reset policy the error says what to do.
    let mut strict = self::consumer(
        &mock,
        ConsumerConfig {
            auto_offset_reset: AutoOffsetReset::None,
            ..Default::default()
        },
    )
    .await;
    strict.assign([("t", 0)]);
    let err = strict.poll(Duration::from_millis(100)).await.unwrap_err();
    assert!(matches!(err, Error::NoOffset { offset: None, .. }), "{err}");
    strict.seek("t", 0, Offset::At(100)).await.unwrap();
    let err = strict.poll(Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::OffsetOutOfRange));
    assert!(
        err.to_string().contains("offset 100 is out of range"),
        "{err}"
    );
}

#[tokio::test]
async fn long_poll_wakes_on_new_records_and_stream_yields_them() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    let mut consumer = consumer(
        &mock,
        ConsumerConfig {
            fetch_max_wait: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .await;
    consumer.assign([("t", 0)]);
    consumer.seek("t", 0, Offset::Latest).await.unwrap();
    assert!(
        consumer
            .poll(Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty()
    );

    let producer = producer(&mock, ProducerConfig::default()).await;
    let mut stream = Box::pin(consumer.into_stream());
    let sending = tokio::spawn(async move {
        for i in 0..3 {
            producer
                .send(ProducerRecord::new("t", format!("r{i}")))
                .await
                .unwrap()
                .await
                .unwrap();
        }
    });
    let mut values = Vec::new();
    while values.len() < 3 {
        let record = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
    }
    assert_eq!(values, ["r0", "r1", "r2"]);
    sending.await.unwrap();
}

#[tokio::test]
async fn corrupt_batch_is_reported_and_can_be_skipped() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    let producer = producer(&mock, ProducerConfig::default()).await;
    producer
        .send(ProducerRecord::new("t", "before"))
        .await
        .unwrap()
        .await
        .unwrap();
    // Two records, but the header claims three: the third does not decode.
    let mut b = runnel_proto::batch::BatchBuilder::new();
    b.push(0, None, Some(b"x"), &[]);
    b.push(0, None, Some(b"y"), &[]);
    let mut bad = b.build().unwrap().to_vec();
    bad[57..61].copy_from_slice(&3i32.to_be_bytes());
    mock.inject("t", 0, &bad);
    producer
        .send(ProducerRecord::new("t", "after"))
        .await
        .unwrap()
        .await
        .unwrap();

    let mut consumer = consumer(&mock, ConsumerConfig::default()).await;
    consumer.assign([("t", 0)]);
    consumer.seek("t", 0, Offset::Earliest).await.unwrap();
    let mut seen = Vec::new();
    let err = loop {
        match consumer.poll(Duration::from_secs(5)).await {
            Ok(records) => seen.extend(records.into_iter().map(|r| r.offset)),
            Err(e) => break e,
        }
    };
    assert_eq!(seen, [0]);
    assert!(matches!(err, Error::Codec { partition: 0, .. }), "{err}");
    assert_eq!(err.code(), Some(ErrorCode::CorruptMessage));
    assert_eq!(consumer.position("t", 0), Some(1), "stays at the bad batch");
    consumer.seek("t", 0, Offset::At(3)).await.unwrap();
    let records = poll_n(&mut consumer, 1).await;
    assert_eq!(records[0].value.as_deref(), Some(&b"after"[..]));
}

// ------------------------------------------------- cluster mode: failover

fn cluster_client(brokers: &[&MockBroker]) -> ClientConfig {
    let list: Vec<String> = brokers.iter().map(|b| b.bootstrap()).collect();
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        ..ClientConfig::new(&list.join(",")).unwrap()
    }
}

/// Retries quickly so tests do not wait for Kafka's defaults.
fn retrying() -> ProducerConfig {
    ProducerConfig {
        retry_backoff: Duration::from_millis(20),
        retry_backoff_max: Duration::from_millis(100),
        linger: Duration::ZERO,
        ..Default::default()
    }
}

async fn send_values(producer: &Producer, topic: &str, values: &[&str]) -> Vec<i64> {
    let mut deliveries = Vec::new();
    for v in values {
        deliveries.push(
            producer
                .send(ProducerRecord::new(topic, v.to_string()).partition(0))
                .await
                .unwrap(),
        );
    }
    let mut offsets = Vec::new();
    for d in deliveries {
        offsets.push(d.await.unwrap().offset);
    }
    offsets
}

#[tokio::test]
async fn admin_fails_over_to_the_next_broker() {
    // Known only through metadata: the bootstrap list names broker 1 alone.
    let cluster = MockBroker::start_cluster(2).await;
    let admin = Admin::connect(cluster_client(&[&cluster[0]]))
        .await
        .unwrap();
    admin.create_topic("t", 1, 1, &[]).await.unwrap();
    assert_eq!(admin.metadata(&[]).await.unwrap().brokers.len(), 2);
    cluster[0].stop().await;
    let listed = admin.list_topics().await.unwrap();
    assert_eq!(listed[0].name, "t", "answered by broker 2");
    // And it sticks with broker 2 (broker 1 is not tried again first).
    admin.describe_topic("t").await.unwrap();

    // Known only through the bootstrap list: no metadata call before the stop.
    let cluster = MockBroker::start_cluster(2).await;
    let admin = Admin::connect(cluster_client(&[&cluster[0], &cluster[1]]))
        .await
        .unwrap();
    cluster[0].stop().await;
    admin.create_topic("u", 2, 1, &[]).await.unwrap();
    assert_eq!(admin.list_topics().await.unwrap().len(), 1);

    // Every broker gone: the error names what was tried.
    cluster[1].stop().await;
    let err = admin.list_topics().await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn producer_follows_a_leader_move_resending_the_same_bytes() {
    let cluster = MockBroker::start_cluster(2).await;
    cluster[0].create("t", 1);
    let producer = Producer::connect(cluster_client(&[&cluster[0]]), retrying())
        .await
        .unwrap();
    assert_eq!(send_values(&producer, "t", &["a", "b"]).await, [0, 1]);

    cluster[0].set_leader("t", 0, 2);
    assert_eq!(send_values(&producer, "t", &["c"]).await, [2]);
    assert_eq!(cluster[0].values("t", 0), ["a", "b", "c"]);

    // Broker 1 refused "c" (not the leader); broker 2 got the same bytes.
    let refused = cluster[0].received("t", 0).pop().unwrap();
    assert_eq!(cluster[1].received("t", 0), [refused]);

    // Idempotent by default: producer id, epoch and dense sequences.
    let headers = cluster[0].log_headers("t", 0);
    let mut sequence = 0;
    for h in &headers {
        assert_eq!((h.producer_id, h.producer_epoch), (1001, 3));
        assert_eq!(h.base_sequence, sequence);
        sequence += h.records_count;
    }
    assert_eq!(sequence, 3);
}

#[tokio::test]
async fn producer_survives_the_leader_crashing() {
    let cluster = MockBroker::start_cluster(2).await;
    cluster[0].create("t", 1);
    let producer = Producer::connect(cluster_client(&[&cluster[0]]), retrying())
        .await
        .unwrap();
    assert_eq!(send_values(&producer, "t", &["a"]).await, [0]);
    // Broker 1 dies; broker 2 takes over. Metadata, too, now has to come
    // from broker 2, which the producer knows from the first metadata.
    cluster[0].stop().await;
    cluster[1].set_leader("t", 0, 2);
    assert_eq!(send_values(&producer, "t", &["b", "c"]).await, [1, 2]);
    assert_eq!(cluster[1].values("t", 0), ["a", "b", "c"]);
}

#[tokio::test]
async fn retriable_errors_are_retried_with_growing_backoff() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    for _ in 0..2 {
        mock.fail_produce(ProduceFault {
            code: ErrorCode::NotEnoughReplicas,
            append: false,
            delay: Duration::ZERO,
        });
    }
    let config = ProducerConfig {
        retry_backoff: Duration::from_millis(100),
        retry_backoff_max: Duration::from_secs(1),
        ..retrying()
    };
    let producer = producer(&mock, config).await;
    let started = tokio::time::Instant::now();
    assert_eq!(send_values(&producer, "t", &["x"]).await, [0]);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300),
        "100 ms then 200 ms of backoff, took {elapsed:?}"
    );
    let received = mock.received("t", 0);
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|b| *b == received[0]), "byte-identical");
    assert_eq!(mock.values("t", 0), ["x"]);
}

#[tokio::test]
async fn non_retriable_errors_fail_at_once() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    mock.fail_produce(ProduceFault {
        code: ErrorCode::CorruptMessage,
        append: false,
        delay: Duration::ZERO,
    });
    let producer = producer(&mock, retrying()).await;
    let err = producer
        .send(ProducerRecord::new("t", "x"))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CorruptMessage));
    assert_eq!(mock.received("t", 0).len(), 1, "not retried");
}

#[tokio::test]
async fn delivery_timeout_fails_with_the_last_error() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    for _ in 0..1000 {
        mock.fail_produce(ProduceFault {
            code: ErrorCode::NotLeaderOrFollower,
            append: false,
            delay: Duration::ZERO,
        });
    }
    let config = ProducerConfig {
        request_timeout: Duration::from_millis(200),
        delivery_timeout: Duration::from_millis(400),
        ..retrying()
    };
    let producer = producer(&mock, config).await;
    let started = tokio::time::Instant::now();
    let err = producer
        .send(ProducerRecord::new("t", "x"))
        .await
        .unwrap()
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.code(), Some(ErrorCode::NotLeaderOrFollower), "{err}");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert!(mock.received("t", 0).len() >= 3, "retried meanwhile");
}

#[tokio::test]
async fn lost_acknowledgement_is_not_written_twice() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    // Appended, but the answer is a timeout: the retry is a duplicate and
    // the broker answers DUPLICATE_SEQUENCE_NUMBER with the first offset.
    mock.fail_produce(ProduceFault {
        code: ErrorCode::RequestTimedOut,
        append: true,
        delay: Duration::ZERO,
    });
    let producer = producer(&mock, retrying()).await;
    assert_eq!(send_values(&producer, "t", &["x"]).await, [0]);
    assert_eq!(send_values(&producer, "t", &["y"]).await, [1]);
    assert_eq!(mock.values("t", 0), ["x", "y"], "x once");
    assert_eq!(mock.received("t", 0).len(), 3);
}

#[tokio::test]
async fn sequences_are_dense_per_partition_and_absent_without_idempotence() {
    let mock = MockBroker::start().await;
    mock.create("t", 2);
    let producer = producer(&mock, retrying()).await;
    for round in 0..3 {
        for p in 0..2 {
            for i in 0..=round {
                producer
                    .send(ProducerRecord::new("t", format!("{i}")).partition(p))
                    .await
                    .unwrap();
            }
        }
        producer.flush().await;
    }
    for p in 0..2 {
        let headers = mock.log_headers("t", p);
        let mut expected = 0;
        for h in &headers {
            assert_eq!((h.producer_id, h.producer_epoch), (1001, 3));
            assert_eq!(h.base_sequence, expected);
            expected += h.records_count;
        }
        assert_eq!(expected, 6);
    }

    let plain = self::producer(
        &mock,
        ProducerConfig {
            enable_idempotence: false,
            ..retrying()
        },
    )
    .await;
    plain
        .send(ProducerRecord::new("t", "z").partition(0))
        .await
        .unwrap()
        .await
        .unwrap();
    let last = *mock.log_headers("t", 0).last().unwrap();
    assert_eq!(
        (last.producer_id, last.producer_epoch, last.base_sequence),
        (-1, -1, -1)
    );
}

#[tokio::test]
async fn a_failed_sequenced_batch_gets_a_new_producer_id() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    let producer = producer(&mock, retrying()).await;
    assert_eq!(send_values(&producer, "t", &["a"]).await, [0]);
    // Sequence 1 is refused for good: the leader never sees it, so sequence
    // 2 of the same producer id would be out of order.
    mock.fail_produce(ProduceFault {
        code: ErrorCode::MessageTooLarge,
        append: false,
        delay: Duration::ZERO,
    });
    let err = producer
        .send(ProducerRecord::new("t", "b").partition(0))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::MessageTooLarge));
    assert_eq!(send_values(&producer, "t", &["c"]).await, [1]);
    let stamps: Vec<_> = mock
        .log_headers("t", 0)
        .iter()
        .map(|h| (h.producer_id, h.base_sequence))
        .collect();
    assert_eq!(stamps, [(1001, 0), (1002, 0)], "new id, sequence from 0");
}

/// Found by the fault suite (`pause-leader`, docs/testing.md): a batch
/// whose request is stuck on a leader that answers only late, and the
/// next batch of the partition reaching the leader first. The leader
/// refuses the second as out of order until the first lands; that must be
/// retried, not failed for good (the first is only late, not lost).
#[tokio::test]
async fn out_of_order_behind_a_late_predecessor_is_retried() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    let producer = producer(&mock, retrying()).await;
    assert_eq!(send_values(&producer, "t", &["a"]).await, [0]);
    mock.fail_produce(ProduceFault {
        code: ErrorCode::NotLeaderOrFollower,
        append: false,
        delay: Duration::from_millis(400),
    });
    let b = producer
        .send(ProducerRecord::new("t", "b").partition(0))
        .await
        .unwrap();
    // b's request is out (and held); c goes in a request of its own.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = producer
        .send(ProducerRecord::new("t", "c").partition(0))
        .await
        .unwrap();
    let (b, c) = (b.await, c.await);
    assert_eq!(b.unwrap().offset, 1);
    assert_eq!(c.expect("c must be retried behind b").offset, 2);
    let stamps: Vec<_> = mock
        .log_headers("t", 0)
        .iter()
        .map(|h| (h.producer_id, h.base_sequence))
        .collect();
    assert_eq!(stamps, [(1001, 0), (1001, 1), (1001, 2)], "one producer id");
}

#[tokio::test]
async fn idempotence_needs_init_producer_id() {
    let mock = MockBroker::start().await;
    mock.disable_init_producer_id();
    let err = Producer::connect(client(&mock), ProducerConfig::default())
        .await
        .err()
        .expect("UNIMPLEMENTED");
    assert!(
        matches!(err, Error::IdempotenceUnsupported { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("enable_idempotence=false"),
        "{err}"
    );
    let config = ProducerConfig {
        enable_idempotence: false,
        ..Default::default()
    };
    Producer::connect(client(&mock), config).await.unwrap();
}

#[tokio::test]
async fn consumer_follows_leader_moves_and_crashes_without_errors() {
    let cluster = MockBroker::start_cluster(3).await;
    cluster[0].create("t", 1);
    let producer = Producer::connect(cluster_client(&[&cluster[0]]), retrying())
        .await
        .unwrap();
    let config = ConsumerConfig {
        fetch_max_wait: Duration::from_millis(100),
        ..Default::default()
    };
    let mut consumer = Consumer::connect(cluster_client(&[&cluster[0]]), config)
        .await
        .unwrap();
    consumer.assign([("t", 0)]);
    consumer.seek("t", 0, Offset::Earliest).await.unwrap();

    send_values(&producer, "t", &["a", "b"]).await;
    let records = poll_n(&mut consumer, 2).await;
    assert_eq!(records.len(), 2);

    // A move: broker 1 answers NOT_LEADER_OR_FOLLOWER.
    cluster[0].set_leader("t", 0, 2);
    send_values(&producer, "t", &["c"]).await;
    let records = poll_n(&mut consumer, 1).await;
    assert_eq!(records[0].offset, 2);

    // A crash of the leader (and of the broker metadata came from).
    cluster[1].stop().await;
    cluster[0].stop().await;
    cluster[2].set_leader("t", 0, 3);
    send_values(&producer, "t", &["d"]).await;
    let records = poll_n(&mut consumer, 1).await;
    assert_eq!(records[0].offset, 3);
    assert_eq!(records[0].value.as_deref(), Some(&b"d"[..]));
    assert_eq!(consumer.position("t", 0), Some(4));
    assert_eq!(consumer.end_offsets(&[("t", 0)]).await.unwrap(), [4]);
    assert_eq!(consumer.partition_count("t").await.unwrap(), 1);
}

#[tokio::test]
async fn list_offsets_asks_the_new_leader() {
    let cluster = MockBroker::start_cluster(2).await;
    cluster[0].create("t", 1);
    let consumer = Consumer::connect(cluster_client(&[&cluster[0]]), ConsumerConfig::default())
        .await
        .unwrap();
    assert_eq!(consumer.end_offsets(&[("t", 0)]).await.unwrap(), [0]);
    // The cached leader (1) is stale: NOT_LEADER_OR_FOLLOWER, then broker 2.
    cluster[0].set_leader("t", 0, 2);
    cluster[0].inject("t", 0, &{
        let mut b = runnel_proto::batch::BatchBuilder::new();
        b.push(0, None, Some(b"x"), &[]);
        b.build().unwrap()
    });
    assert_eq!(consumer.end_offsets(&[("t", 0)]).await.unwrap(), [1]);
}
