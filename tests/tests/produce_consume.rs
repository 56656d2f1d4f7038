//! The client library against a real broker process: 100k records over
//! several partitions go in through `Producer` and come back through
//! `Consumer`, complete and in order per partition; plus long-polling.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runnel_client::{
    Admin, AlterTopic, ClientConfig, Consumer, ConsumerConfig, Offset, Producer, ProducerConfig,
    ProducerRecord,
};
use runnel_tests::BrokerProcess;

const RECORDS: usize = 100_000;
const PARTITIONS: u32 = 4;

/// A broker on a data dir under `dir`, started with `args`, a client config
/// for it, and an admin that has created `topic` (`partitions`, RF 1,
/// `configs`).
async fn broker_with_topic(
    dir: &std::path::Path,
    args: &[&str],
    topic: &str,
    partitions: u32,
    configs: &[(&str, &str)],
) -> (BrokerProcess, ClientConfig, Admin) {
    let broker = BrokerProcess::start(&dir.join("data"), args).unwrap();
    let config = ClientConfig::new(&broker.bootstrap()).unwrap();
    let admin = Admin::connect(config.clone()).await.unwrap();
    admin
        .create_topic(topic, partitions, 1, configs)
        .await
        .unwrap();
    (broker, config, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_round_trip_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: the records span many segments and index lookups.
    let (_broker, config, _) = broker_with_topic(
        dir.path(),
        &["--log-segment-bytes", "1048576"],
        "bulk",
        PARTITIONS,
        &[],
    )
    .await;

    let producer = Producer::connect(config.clone(), ProducerConfig::default())
        .await
        .unwrap();
    let mut deliveries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        // Keys spread records over partitions by hash; the value says which
        // key and sequence it was, for the order check.
        let key = format!("key-{}", i % 97);
        let record = ProducerRecord::new("bulk", format!("{key}/{i}")).key(key);
        deliveries.push(producer.send(record).await.unwrap());
    }
    producer.flush().await;
    let mut acked: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for d in deliveries {
        let meta = d.await.unwrap();
        acked.entry(meta.partition).or_default().push(meta.offset);
    }
    producer.close().await;
    assert_eq!(
        acked.len(),
        PARTITIONS as usize,
        "key hashing should use every partition"
    );
    for (p, offsets) in &mut acked {
        offsets.sort_unstable();
        let dense: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            *offsets, dense,
            "partition {p}: acknowledged offsets are not dense from 0"
        );
    }

    let mut consumer = Consumer::connect(config, ConsumerConfig::default())
        .await
        .unwrap();
    consumer.assign((0..PARTITIONS).map(|p| ("bulk", p)));
    for p in 0..PARTITIONS {
        consumer.seek("bulk", p, Offset::Earliest).await.unwrap();
    }
    let mut seen: BTreeMap<u32, Vec<(i64, String)>> = BTreeMap::new();
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while total < RECORDS {
        assert!(
            Instant::now() < deadline,
            "consumed only {total} of {RECORDS}"
        );
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            assert!(
                value.starts_with(&format!("{key}/")),
                "key {key} with value {value}"
            );
            seen.entry(r.partition).or_default().push((r.offset, value));
            total += 1;
        }
    }
    assert_eq!(total, RECORDS);
    for (p, records) in &seen {
        assert_eq!(records.len(), acked[p].len(), "partition {p}");
        // Offsets dense and in order; each key's sequence numbers increase.
        let mut last_seq: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, (offset, value)) in records.iter().enumerate() {
            assert_eq!(*offset, i as i64, "partition {p}");
            let (key, seq) = value.split_once('/').unwrap();
            let seq: usize = seq.parse().unwrap();
            if let Some(prev) = last_seq.insert(key, seq) {
                assert!(seq > prev, "partition {p}: {key} went from {prev} to {seq}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_returns_when_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, config, _) = broker_with_topic(dir.path(), &[], "wake", 1, &[]).await;

    let consumer_config = ConsumerConfig {
        fetch_max_wait: Duration::from_secs(10),
        ..Default::default()
    };
    let mut consumer = Consumer::connect(config.clone(), consumer_config)
        .await
        .unwrap();
    consumer.assign([("wake", 0)]);
    consumer.seek("wake", 0, Offset::Latest).await.unwrap();

    let poll = tokio::spawn(async move {
        let started = Instant::now();
        let records = consumer.poll(Duration::from_secs(20)).await.unwrap();
        (records, started.elapsed())
    });
    // Give the fetch time to park on the broker, then produce.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let producer = Producer::connect(config, ProducerConfig::default())
        .await
        .unwrap();
    producer
        .send(ProducerRecord::new("wake", "ping").partition(0))
        .await
        .unwrap()
        .await
        .unwrap();
    let (records, waited) = poll.await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value.as_deref(), Some(&b"ping"[..]));
    // Woken by the append, not by the 10 s max wait.
    assert!(waited < Duration::from_secs(8), "fetch waited {waited:?}");
}

/// One partition, small batches, no linger, an fsync per batch: the
/// producer keeps several requests of the partition in flight, the broker
/// runs them concurrently and shares fsyncs between them, and still every
/// record lands at the offset of its place in the send order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_of_one_partition_keep_send_order() {
    const N: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let (_broker, config, _) =
        broker_with_topic(dir.path(), &[], "piped", 1, &[("flush.messages", "1")]).await;
    let producer = Producer::connect(
        config.clone(),
        ProducerConfig {
            batch_size: 1024,
            linger: Duration::ZERO,
            ..ProducerConfig::default()
        },
    )
    .await
    .unwrap();
    let mut deliveries = Vec::with_capacity(N);
    for i in 0..N {
        let record = ProducerRecord::new("piped", format!("{i:08}-{}", "x".repeat(100)));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for (i, d) in deliveries.into_iter().enumerate() {
        assert_eq!(d.await.unwrap().offset, i as i64, "record {i}");
    }
    producer.close().await;

    let mut consumer = Consumer::connect(config, ConsumerConfig::default())
        .await
        .unwrap();
    consumer.assign([("piped", 0)]);
    consumer.seek("piped", 0, Offset::Earliest).await.unwrap();
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while next < N {
        assert!(Instant::now() < deadline, "consumed only {next} of {N}");
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            assert_eq!(
                (r.offset, &value[..8]),
                (next as i64, &*format!("{next:08}"))
            );
            next += 1;
        }
    }
}

/// The (log start, log end) offsets of partition 0 of `topic`.
async fn offsets(admin: &Admin, topic: &str) -> (i64, i64) {
    let t = admin.describe_topic(topic).await.unwrap();
    let p = &t.partitions[0];
    (p.log_start_offset, p.log_end_offset)
}

/// Poll until `pred` holds for the partition's offsets; fail after 15 s.
async fn wait_offsets(
    broker: &BrokerProcess,
    admin: &Admin,
    topic: &str,
    pred: impl Fn((i64, i64)) -> bool,
) -> (i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = offsets(admin, topic).await;
        if pred(now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "offsets stuck at {now:?}; broker log:\n{}",
            broker.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Retention on a running broker: retention stops at the high watermark,
/// which on a single replica is the log end after every append and after a
/// restart with no new appends, so old segments do go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_segments_up_to_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, config, admin) = broker_with_topic(
        dir.path(),
        &["--log-retention-check-interval-ms", "100"],
        "aged",
        1,
        &[("segment.bytes", "65536"), ("retention.bytes", "131072")],
    )
    .await;
    let producer = Producer::connect(config, ProducerConfig::default())
        .await
        .unwrap();
    // Ten flushed rounds of 100 KiB: a segment rolls between produce
    // requests (one request's batches share a segment), so this makes ten.
    let value = vec![b'r'; 1024];
    for _ in 0..10 {
        let mut deliveries = Vec::new();
        for _ in 0..100 {
            deliveries.push(
                producer
                    .send(ProducerRecord::new("aged", value.clone()))
                    .await
                    .unwrap(),
            );
        }
        producer.flush().await;
        for d in deliveries {
            d.await.unwrap();
        }
    }
    producer.close().await;
    let (start, end) = wait_offsets(&broker, &admin, "aged", |(start, _)| start > 0).await;
    assert_eq!(end, 1_000);
    assert!(start < end, "the active segment is not due: {start}");

    // After a restart nothing new is appended; the HW is the log end once
    // the partition leads again, so an alter that wants everything gone
    // empties the log down to its end.
    broker.restart().unwrap();
    let admin = Admin::connect(ClientConfig::new(&broker.bootstrap()).unwrap())
        .await
        .unwrap();
    admin
        .alter_topic(AlterTopic::new("aged").set_config("retention.bytes", "0"))
        .await
        .unwrap();
    assert_eq!(
        wait_offsets(&broker, &admin, "aged", |(start, _)| start == 1_000).await,
        (1_000, 1_000)
    );
}

/// acks=0 as in Kafka: a record counts as sent once its request goes to the
/// broker, with offset -1, and nobody waits for the answer — here a broker
/// frozen by SIGSTOP never gives one until it is resumed. The records still
/// arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_does_not_wait_for_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, config, admin) = broker_with_topic(dir.path(), &[], "fire", 1, &[]).await;
    let producer = Producer::connect(
        config.clone(),
        ProducerConfig {
            acks: runnel_client::Acks::None,
            enable_idempotence: false,
            linger: Duration::ZERO,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // The first send also fetches the topic's metadata.
    let first = producer
        .send(ProducerRecord::new("fire", "one"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(first.offset, -1);
    // A partition still has one request out at a time (that keeps its
    // order over HTTP/2): let the broker answer the first before freezing
    // it, or the second would wait for that answer to be sent at all.
    wait_offsets(&broker, &admin, "fire", |(_, end)| end == 1).await;
    producer.flush().await;

    broker.pause().unwrap();
    let sent = producer
        .send(ProducerRecord::new("fire", "two"))
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), sent).await;
    broker.resume().unwrap();
    let meta = outcome
        .expect("acks=0 waited for a frozen broker's answer")
        .unwrap();
    assert_eq!(meta.offset, -1);
    producer.close().await;

    let mut consumer = Consumer::connect(config, ConsumerConfig::default())
        .await
        .unwrap();
    consumer.assign([("fire", 0)]);
    consumer.seek("fire", 0, Offset::Earliest).await.unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while values.len() < 2 && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_secs(1)).await.unwrap() {
            values.push(r.value.unwrap());
        }
    }
    assert_eq!(values, vec!["one".as_bytes(), "two".as_bytes()]);
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Send one record stamped `timestamp` (CreateTime) and wait for its ack.
async fn send_at(
    producer: &Producer,
    topic: &str,
    timestamp: i64,
) -> runnel_client::Result<runnel_client::RecordMetadata> {
    let record = ProducerRecord::new(topic.to_owned(), "v").timestamp(timestamp);
    producer.send(record).await?.await
}

/// Every record of partition 0 of `topic` as `(offset, timestamp)`.
async fn timestamps(config: &ClientConfig, topic: &str, expect: usize) -> Vec<(i64, i64)> {
    let mut consumer = Consumer::connect(config.clone(), ConsumerConfig::default())
        .await
        .unwrap();
    consumer.assign([(topic, 0)]);
    consumer.seek(topic, 0, Offset::Earliest).await.unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < expect && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            out.push((r.offset, r.timestamp));
        }
    }
    out
}

/// `message.timestamp.type=LogAppendTime`: the broker's clock replaces the
/// producer's, in the acknowledgement and for consumers; CreateTime keeps
/// the producer's; switching a topic over affects only later appends; a
/// bad value is refused with the accepted ones named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_topics_carry_the_brokers_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, config, admin) = broker_with_topic(
        dir.path(),
        &[],
        "stamped",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    admin.create_topic("created", 1, 1, &[]).await.unwrap();
    let producer = Producer::connect(config.clone(), ProducerConfig::default())
        .await
        .unwrap();
    let before = wall_clock_ms();
    let stamped = send_at(&producer, "stamped", 1_000).await.unwrap();
    let after = wall_clock_ms();
    assert!(
        (before..=after).contains(&stamped.timestamp),
        "append time {} not within [{before}, {after}]",
        stamped.timestamp
    );
    assert_eq!(
        send_at(&producer, "created", 1_000)
            .await
            .unwrap()
            .timestamp,
        1_000
    );
    assert_eq!(
        timestamps(&config, "stamped", 1).await,
        [(0, stamped.timestamp)]
    );

    admin
        .alter_topic(
            AlterTopic::new("created").set_config("message.timestamp.type", "LogAppendTime"),
        )
        .await
        .unwrap();
    let later = send_at(&producer, "created", 1_000).await.unwrap();
    assert!(later.timestamp >= after, "{later:?}");
    assert_eq!(
        timestamps(&config, "created", 2).await,
        [(0, 1_000), (1, later.timestamp)],
        "the switch does not rewrite what is stored"
    );
    producer.close().await;

    let err = admin
        .create_topic("bad", 1, 1, &[("message.timestamp.type", "WallClock")])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("message.timestamp.type") && err.contains("CreateTime, LogAppendTime"),
        "{err}"
    );
}

/// `message.timestamp.after.max.ms` (1 h by default, as in Kafka 4) and
/// `before.max.ms`: a record stamped too far from the broker's clock is
/// refused with INVALID_TIMESTAMP naming the config, and nothing is stored;
/// raising the config lets it in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stamped_too_far_from_the_brokers_clock_are_refused() {
    const HOUR: i64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    let (broker, config, admin) = broker_with_topic(
        dir.path(),
        &[],
        "clocked",
        1,
        &[("message.timestamp.before.max.ms", "86400000")],
    )
    .await;
    let producer = Producer::connect(config.clone(), ProducerConfig::default())
        .await
        .unwrap();
    let send = |timestamp| send_at(&producer, "clocked", timestamp);
    let now = wall_clock_ms();
    let ahead = send(now + 2 * HOUR).await.unwrap_err().to_string();
    assert!(
        ahead.contains("message.timestamp.after.max.ms=3600000"),
        "{ahead}"
    );
    let behind = send(now - 3 * 24 * HOUR).await.unwrap_err().to_string();
    assert!(
        behind.contains("message.timestamp.before.max.ms=86400000"),
        "{behind}"
    );
    wait_offsets(&broker, &admin, "clocked", |(_, end)| end == 0).await;

    send(now).await.unwrap();
    admin
        .alter_topic(
            AlterTopic::new("clocked").set_config("message.timestamp.after.max.ms", "86400000"),
        )
        .await
        .unwrap();
    send(now + 2 * HOUR).await.unwrap();
    producer.close().await;
    assert_eq!(
        timestamps(&config, "clocked", 2).await,
        [(0, now), (1, now + 2 * HOUR)]
    );
}

/// Every Kafka codec end to end: a producer compresses, the broker walks
/// the decompressed records before storing the batch as sent, a consumer
/// reads the same records back; compressible values take less log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_round_trips_through_the_broker() {
    use runnel_client::Compression;
    const N: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let (_broker, config, admin) = broker_with_topic(dir.path(), &[], "none", 1, &[]).await;
    let codecs = Compression::ALL;
    let mut sizes = BTreeMap::new();
    for codec in codecs {
        let topic = codec.name();
        if codec != Compression::None {
            admin.create_topic(topic, 1, 1, &[]).await.unwrap();
        }
        let producer = Producer::connect(
            config.clone(),
            ProducerConfig {
                compression: codec,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        for i in 0..N {
            let record = ProducerRecord::new(topic, format!("{codec} value {i} ").repeat(8))
                .key(format!("k{i}"))
                .header("codec", Some(codec.name().into()));
            drop(producer.send(record).await.unwrap());
        }
        producer.flush().await;
        producer.close().await;

        let mut consumer = Consumer::connect(config.clone(), ConsumerConfig::default())
            .await
            .unwrap();
        consumer.assign([(topic, 0)]);
        consumer.seek(topic, 0, Offset::Earliest).await.unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.len() < N && Instant::now() < deadline {
            got.extend(consumer.poll(Duration::from_millis(500)).await.unwrap());
        }
        assert_eq!(got.len(), N, "{codec}");
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.offset, i as i64, "{codec}");
            assert_eq!(
                r.key.as_deref(),
                Some(format!("k{i}").as_bytes()),
                "{codec}"
            );
            let value = format!("{codec} value {i} ").repeat(8);
            assert_eq!(r.value.as_deref(), Some(value.as_bytes()), "{codec}");
            assert_eq!(r.headers[0].1.as_deref(), Some(codec.name().as_bytes()));
        }
        let t = admin.describe_topic(topic).await.unwrap();
        sizes.insert(topic, t.partitions[0].size_bytes);
    }
    for codec in &codecs[1..] {
        assert!(
            sizes[codec.name()] * 2 < sizes["none"],
            "{codec} should at least halve these values: {sizes:?}"
        );
    }
}
