//! The client against an in-memory mock broker on loopback (see `mock/`):
//! everything but the real broker's storage.

mod mock;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use mock::MockBroker;
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
