//! Producer compression and interceptors end to end against the mock
//! broker (see `mock/`): what reaches the broker's log, and what the
//! interceptors hear back.

mod mock;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mock::{MockBroker, ProduceFault};
use runnel_client::interceptor::{
    BoxError, CountingInterceptor, ProducerInterceptor, TimestampPrefixInterceptor,
};
use runnel_client::serialization::ConsumerRecordExt;
use runnel_client::*;
use runnel_proto::batch::validate_batch;

fn client(mock: &MockBroker) -> ClientConfig {
    ClientConfig::new(&mock.bootstrap()).unwrap()
}

fn config() -> ProducerConfig {
    ProducerConfig {
        retry_backoff: Duration::from_millis(20),
        retry_backoff_max: Duration::from_millis(100),
        linger: Duration::ZERO,
        ..Default::default()
    }
}

async fn producer(mock: &MockBroker, config: ProducerConfig) -> Producer {
    Producer::connect(client(mock), config).await.unwrap()
}

/// Send `values` to partition 0 and wait for every outcome.
async fn send_all(producer: &Producer, values: &[&str]) -> Vec<Result<RecordMetadata>> {
    let mut deliveries = Vec::new();
    for v in values {
        deliveries.push(
            producer
                .send(ProducerRecord::new("t", v.to_string()).partition(0))
                .await
                .unwrap(),
        );
    }
    let mut out = Vec::new();
    for d in deliveries {
        out.push(d.await);
    }
    out
}

#[tokio::test]
async fn compressed_batches_reach_the_log_and_consume_back() {
    for codec in [Compression::Lz4, Compression::Zstd] {
        let mock = MockBroker::start().await;
        mock.create("t", 1);
        let producer = producer(
            &mock,
            ProducerConfig {
                compression: codec,
                linger: Duration::from_millis(50),
                ..config()
            },
        )
        .await;
        let value = "a fairly compressible value, ".repeat(10);
        let values: Vec<String> = (0..50).map(|i| format!("{value}{i}")).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let offsets: Vec<i64> = send_all(&producer, &refs)
            .await
            .into_iter()
            .map(|r| r.unwrap().offset)
            .collect();
        assert_eq!(offsets, (0..50).collect::<Vec<_>>());

        // On the wire and in the log: compressed, labelled, smaller than
        // the records they hold.
        let headers = mock.log_headers("t", 0);
        assert!(!headers.is_empty());
        assert!(
            headers.iter().all(|h| h.compression() == Ok(codec)),
            "{codec}"
        );
        let received = mock.received("t", 0);
        let sent_bytes: usize = received.iter().map(Bytes::len).sum();
        let plain_bytes: usize = values.iter().map(String::len).sum();
        assert!(
            sent_bytes < plain_bytes / 3,
            "{codec}: {sent_bytes} of {plain_bytes}"
        );
        for b in &received {
            validate_batch(b).unwrap();
        }
        assert_eq!(mock.values("t", 0), values);

        // And a consumer decompresses them.
        let mut consumer = Consumer::connect(client(&mock), ConsumerConfig::default())
            .await
            .unwrap();
        consumer.assign([("t", 0)]);
        consumer.seek("t", 0, Offset::At(0)).await.unwrap();
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got.len() < 50 && tokio::time::Instant::now() < deadline {
            for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
                got.push(r.value_str().unwrap().unwrap().to_owned());
            }
        }
        assert_eq!(got, values);
    }
}

/// Appends its marker to every value.
struct Marker(&'static str);

impl ProducerInterceptor for Marker {
    fn on_send(&self, mut record: ProducerRecord) -> Result<ProducerRecord, BoxError> {
        let mut v = record.value.take().unwrap_or_default().to_vec();
        v.extend_from_slice(self.0.as_bytes());
        record.value = Some(v.into());
        Ok(record)
    }

    fn on_acknowledgement(&self, _: &Result<RecordMetadata>) {}
}

/// Fails (or panics) on every call.
struct Broken {
    panic: bool,
}

impl ProducerInterceptor for Broken {
    fn on_send(&self, _: ProducerRecord) -> Result<ProducerRecord, BoxError> {
        if self.panic {
            panic!("interceptor bug");
        }
        Err("interceptor refused".into())
    }

    fn on_acknowledgement(&self, _: &Result<RecordMetadata>) {
        panic!("acknowledgement bug");
    }

    fn close(&self) {
        panic!("close bug");
    }
}

/// Remembers every outcome and whether it was closed.
#[derive(Default)]
struct Recorder {
    outcomes: Mutex<Vec<std::result::Result<i64, Option<ErrorCode>>>>,
    closed: Mutex<u32>,
}

impl ProducerInterceptor for Recorder {
    fn on_send(&self, record: ProducerRecord) -> Result<ProducerRecord, BoxError> {
        Ok(record)
    }

    fn on_acknowledgement(&self, result: &Result<RecordMetadata>) {
        let outcome = match result {
            Ok(meta) => Ok(meta.offset),
            Err(e) => Err(e.code()),
        };
        self.outcomes.lock().unwrap().push(outcome);
    }

    fn close(&self) {
        *self.closed.lock().unwrap() += 1;
    }
}

#[tokio::test]
async fn interceptors_run_in_order_and_broken_ones_are_skipped() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    let recorder = Arc::new(Recorder::default());
    let producer = producer(
        &mock,
        ProducerConfig {
            interceptors: vec![
                Arc::new(Marker("-first")),
                Arc::new(Broken { panic: false }),
                Arc::new(Broken { panic: true }),
                Arc::new(Marker("-second")),
                recorder.clone(),
            ],
            ..config()
        },
    )
    .await;
    let results = send_all(&producer, &["a", "b"]).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(mock.values("t", 0), ["a-first-second", "b-first-second"]);

    // One acknowledgement per record, with its offset; the panicking
    // interceptor before it did not stop it.
    producer.close().await;
    producer.close().await;
    assert_eq!(*recorder.outcomes.lock().unwrap(), [Ok(0), Ok(1)]);
    assert_eq!(*recorder.closed.lock().unwrap(), 1, "closed once");
}

#[tokio::test]
async fn timestamp_prefix_reaches_the_broker() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    let producer = producer(
        &mock,
        ProducerConfig {
            interceptors: vec![Arc::new(TimestampPrefixInterceptor::new())],
            ..config()
        },
    )
    .await;
    send_all(&producer, &["hello"]).await[0].as_ref().unwrap();
    let values = mock.values("t", 0);
    let (ms, rest) = values[0].split_once(',').unwrap();
    assert!(ms.parse::<i64>().unwrap() > 1_600_000_000_000, "{ms}");
    assert_eq!(rest, "hello");
}

#[tokio::test]
async fn acknowledgements_count_successes_and_failures() {
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    let counter = Arc::new(CountingInterceptor::new());
    let recorder = Arc::new(Recorder::default());
    let producer = producer(
        &mock,
        ProducerConfig {
            interceptors: vec![counter.clone(), recorder.clone()],
            ..config()
        },
    )
    .await;

    // Three good records, one at a time so each is its own request.
    for v in ["a", "b", "c"] {
        send_all(&producer, &[v]).await[0].as_ref().unwrap();
    }
    // A batch of two that fails for good (not retriable).
    mock.fail_produce(ProduceFault {
        code: ErrorCode::CorruptMessage,
        append: false,
        delay: Duration::ZERO,
    });
    let failed = send_all(&producer, &["x", "y"]).await;
    assert!(failed.iter().all(Result::is_err));
    // A retriable failure that succeeds on the retry counts once, as a
    // success.
    mock.fail_produce(ProduceFault {
        code: ErrorCode::NotEnoughReplicas,
        append: false,
        delay: Duration::ZERO,
    });
    send_all(&producer, &["d"]).await[0].as_ref().unwrap();
    // A record `send` refuses (no such partition) is a failure too.
    let refused = producer
        .send(ProducerRecord::new("t", "z").partition(9))
        .await;
    assert!(refused.is_err());

    producer.close().await;
    let counts = counter.counts();
    assert_eq!((counts.succeeded, counts.failed), (4, 3));
    assert_eq!(counts.to_string(), "4 records sent successfully, 3 failed");
    let outcomes = recorder.outcomes.lock().unwrap().clone();
    assert_eq!(
        outcomes,
        [
            Ok(0),
            Ok(1),
            Ok(2),
            Err(Some(ErrorCode::CorruptMessage)),
            Err(Some(ErrorCode::CorruptMessage)),
            Ok(3),
            Err(Some(ErrorCode::UnknownTopicOrPartition)),
        ]
    );
}

#[tokio::test]
async fn records_lost_at_close_are_acknowledged_as_failures() {
    // The producer is closed while the broker keeps failing retriably:
    // the delivery timeout fails the record, and the interceptor hears it.
    let mock = MockBroker::start().await;
    mock.create("t", 1);
    for _ in 0..1000 {
        mock.fail_produce(ProduceFault {
            code: ErrorCode::NotLeaderOrFollower,
            append: false,
            delay: Duration::ZERO,
        });
    }
    let counter = Arc::new(CountingInterceptor::new());
    let producer = producer(
        &mock,
        ProducerConfig {
            interceptors: vec![counter.clone()],
            request_timeout: Duration::from_millis(200),
            delivery_timeout: Duration::from_millis(400),
            ..config()
        },
    )
    .await;
    let delivery = producer.send(ProducerRecord::new("t", "x")).await.unwrap();
    producer.close().await;
    assert!(delivery.await.is_err());
    assert_eq!(counter.counts().failed, 1);
    assert_eq!(counter.counts().succeeded, 0);
}
