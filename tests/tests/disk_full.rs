//! Issue 22: fill the data disk of a broker. The broker must refuse writes
//! with a precise, retriable storage error (KAFKA_STORAGE_ERROR naming the
//! condition and the directory), stay up, keep serving reads, take writes
//! again by itself once space returns, and never corrupt a segment: every
//! acknowledged record is still at its offset after a SIGTERM restart and
//! after a `kill -9`, and recovery cuts nothing.
//!
//! The data directory is a 16 MiB tmpfs the test mounts itself (tests run
//! as root here and in CI); a filler file takes the space away and gives it
//! back.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use runnel_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, Offset, Producer, ProducerConfig, ProducerRecord,
};
use runnel_proto::batch::BatchBuilder;
use runnel_proto::v1::broker_client::BrokerClient;
use runnel_proto::v1::{Acks, ErrorCode, PartitionProduceData, ProduceRequest, TopicProduceData};
use runnel_tests::BrokerProcess;
use runnel_tests::kafka_clients::venv_python;

const TOPIC: &str = "full";

/// A size-limited tmpfs mounted for the test, unmounted on drop (panics
/// included), after the broker using it is gone.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs at {} failed: {}; this test needs root (or \
             CAP_SYS_ADMIN) to mount the small filesystem it fills",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs {
            path: path.to_owned(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a broker killed a moment ago may still hold files open.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Take every free byte of the filesystem at `dir` with a filler file,
/// then give `slack` bytes back, so appends run into the full disk a
/// little later (partial writes, index pages, segment rolls at the edge).
fn fill(dir: &Path, slack: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 64 << 10];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("writing the filler: {e}"),
        }
    }
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(slack)).unwrap();
    path
}

/// The process is alive (not gone, not a zombie that crashed).
fn alive(broker: &BrokerProcess) -> bool {
    let Some(pid) = broker.pid() else {
        return false;
    };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // pid (comm) STATE ...
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    !matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X') | None)
}

fn value(round: &str, i: usize, size: usize) -> String {
    let mut v = format!("{round}-{i}-");
    while v.len() < size {
        v.push((b'a' + (v.len() % 26) as u8) as char);
    }
    v
}

fn producer_config(delivery: Duration) -> ProducerConfig {
    ProducerConfig {
        enable_idempotence: true,
        linger: Duration::from_millis(0),
        request_timeout: delivery - Duration::from_millis(500),
        delivery_timeout: delivery,
        retry_backoff: Duration::from_millis(50),
        retry_backoff_max: Duration::from_millis(200),
        ..ProducerConfig::default()
    }
}

/// Send `value` and wait for its outcome.
async fn send(producer: &Producer, value: &str) -> runnel_client::Result<i64> {
    let delivery = producer
        .send(ProducerRecord::new(TOPIC, value.to_owned()))
        .await?;
    Ok(delivery.await?.offset)
}

/// Every record of the partition, offset → value, read from offset 0 to
/// the high watermark.
async fn read_all(config: &ClientConfig) -> BTreeMap<i64, String> {
    let mut consumer = Consumer::connect(config.clone(), ConsumerConfig::default())
        .await
        .unwrap();
    consumer.assign([(TOPIC, 0)]);
    consumer.seek(TOPIC, 0, Offset::At(0)).await.unwrap();
    let end = consumer.end_offsets(&[(TOPIC, 0)]).await.unwrap()[0];
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < end as usize {
        assert!(
            Instant::now() < deadline,
            "read only {} of {end} records",
            out.len()
        );
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            assert!(
                out.insert(r.offset, v).is_none(),
                "offset {} twice",
                r.offset
            );
        }
    }
    assert_eq!(
        out.keys().copied().collect::<Vec<_>>(),
        (0..end).collect::<Vec<_>>(),
        "offsets must be dense from 0"
    );
    out
}

async fn end_offset(config: &ClientConfig) -> i64 {
    let consumer = Consumer::connect(config.clone(), ConsumerConfig::default())
        .await
        .unwrap();
    consumer.end_offsets(&[(TOPIC, 0)]).await.unwrap()[0]
}

#[track_caller]
fn assert_all_acked(stored: &BTreeMap<i64, String>, acked: &BTreeMap<i64, String>) {
    for (offset, v) in acked {
        assert_eq!(
            stored.get(offset),
            Some(v),
            "acknowledged offset {offset} lost or changed"
        );
    }
}

/// One produce through confluent-kafka (librdkafka) over the Kafka
/// protocol, without retries: the delivery report's error code and text.
fn kafka_produce(bootstrap: &str) -> (i64, String) {
    let script = r#"
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "acks": "all", "retries": 0,
              "enable.idempotence": False, "message.timeout.ms": 10000})
out = []
p.produce(sys.argv[2], b"over the kafka protocol", partition=0,
          on_delivery=lambda err, msg: out.append(err))
p.flush(15)
err = out[0] if out else None
print(0 if err is None else err.code())
print("" if err is None else err.str())
"#;
    let out = Command::new(venv_python())
        .args(["-c", script, bootstrap, TOPIC])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines();
    let code = lines.next().unwrap_or_default().trim().parse().unwrap();
    (code, lines.next().unwrap_or_default().to_owned())
}

/// The message says what is wrong (the disk is full) and where.
#[track_caller]
fn assert_storage_full(message: &str, data: &Path) {
    assert!(
        message.to_lowercase().contains("no space left on device"),
        "the error must name the condition: {message}"
    );
    assert!(
        message.contains(&data.display().to_string()),
        "the error must name the directory {}: {message}",
        data.display()
    );
}

/// One acks=all produce of an 8 KiB record straight over gRPC: the
/// partition's error code and message.
async fn raw_produce(broker: &BrokerProcess) -> (i32, String) {
    let mut client = BrokerClient::connect(broker.endpoint()).await.unwrap();
    let mut batch = BatchBuilder::new();
    let v = value("raw", 0, 8 << 10);
    batch.push(1_700_000_000_000, None, Some(v.as_bytes()), &[]);
    let response = client
        .produce(ProduceRequest {
            topics: vec![TopicProduceData {
                topic: TOPIC.into(),
                partitions: vec![PartitionProduceData {
                    partition: 0,
                    records: batch.build().unwrap(),
                }],
            }],
            acks: Acks::All as i32,
            timeout_ms: 0,
            transactional_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let error = response.topics[0].partitions[0]
        .error
        .clone()
        .expect("a produce to a full disk must fail");
    (error.code, error.message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_serves_reads_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mount = Tmpfs::mount(&data, "16m");
    // Small segments so the disk fills up around rolls too; the indexes
    // keep their default (sparse, 10 MiB) size.
    let mut broker = BrokerProcess::start(&data, &[]).unwrap();
    let config = ClientConfig::new(&broker.bootstrap()).unwrap();
    let admin = Admin::connect(config.clone()).await.unwrap();
    admin
        .create_topic(TOPIC, 1, 1, &[("segment.bytes", "262144")])
        .await
        .unwrap();

    let mut acked: BTreeMap<i64, String> = BTreeMap::new();
    let producer = Producer::connect(config.clone(), producer_config(Duration::from_secs(3)))
        .await
        .unwrap();
    for i in 0..64 {
        let v = value("before", i, 8 << 10);
        acked.insert(send(&producer, &v).await.unwrap(), v);
    }

    let filler = fill(&data, 1 << 20);
    // Big records until the disk refuses one, then small ones (which may
    // still fit in what a failed big one left) until they fail too.
    let mut failures = Vec::new();
    for (round, size) in [("big", 8 << 10), ("small", 100)] {
        for i in 0.. {
            let v = value(round, i, size);
            match send(&producer, &v).await {
                Ok(offset) => {
                    acked.insert(offset, v);
                }
                Err(e) => {
                    failures.push(e);
                    break;
                }
            }
            assert!(i < 10_000, "a 16 MiB disk took {i} more records");
        }
    }
    assert!(
        alive(&broker),
        "the broker died on a full disk: {}",
        broker.log_tail()
    );
    eprintln!("producer errors on the full disk: {failures:#?}");
    let error = &failures[0];
    assert!(error.is_retriable(), "{error}");
    assert_eq!(
        error.code(),
        Some(ErrorCode::KafkaStorageError),
        "a full disk must be a storage error, got: {error}; broker log: {}",
        broker.log_tail()
    );
    assert_storage_full(&error.to_string(), &data);

    // What the broker answers, without a client's retries in between.
    let (code, message) = raw_produce(&broker).await;
    assert_eq!(code, ErrorCode::KafkaStorageError as i32, "{message}");
    assert_storage_full(&message, &data);

    // The Kafka protocol says the same: KAFKA_STORAGE_ERROR (56).
    let (code, text) = kafka_produce(&broker.bootstrap());
    assert_eq!(code, 56, "Kafka produce on a full disk: {text}");

    // Reads keep working, and every acknowledged record is there.
    let stored = read_all(&config).await;
    assert_all_acked(&stored, &acked);
    assert!(alive(&broker), "{}", broker.log_tail());

    // Space comes back: writes succeed again without a restart. A new
    // idempotent producer needs a producer id, which the embedded metadata
    // store (on the same disk, refused by it while full when the first
    // producer asked for a new one) must hand out again.
    std::fs::remove_file(&filler).unwrap();
    let producer = Producer::connect(config.clone(), producer_config(Duration::from_secs(3)))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    loop {
        let v = value("after", i, 8 << 10);
        match send(&producer, &v).await {
            Ok(offset) => {
                acked.insert(offset, v);
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "no produce succeeded 20 s after the disk had space again: {e}"
            ),
        }
        i += 1;
    }
    // Enough to roll a few segments past the point where it filled up.
    for i in 0..128 {
        let v = value("after-more", i, 8 << 10);
        acked.insert(send(&producer, &v).await.unwrap(), v);
    }
    producer.close().await;
    let stored = read_all(&config).await;
    assert_all_acked(&stored, &acked);
    let end = end_offset(&config).await;
    assert_eq!(end, stored.len() as i64);

    // Restart cleanly, then crash: nothing acknowledged is lost, nothing
    // is cut, and the log ends where it did.
    let log_path = dir.path().join("data.broker.log");
    for crash in [false, true] {
        let logged_before = std::fs::read_to_string(&log_path).unwrap().len();
        let restarted = if crash {
            broker.kill9().unwrap();
            broker.start_again()
        } else {
            broker.restart()
        };
        if let Err(e) = restarted {
            let logged = std::fs::read_to_string(&log_path).unwrap();
            panic!(
                "restart (crash: {crash}) failed: {e}\n{}",
                &logged[logged_before..]
            );
        }
        let config = ClientConfig::new(&broker.bootstrap()).unwrap();
        let stored_again = read_all(&config).await;
        assert_eq!(
            stored_again, stored,
            "restart (crash: {crash}) changed the log"
        );
        assert_eq!(end_offset(&config).await, end);
        let logged = std::fs::read_to_string(&log_path).unwrap();
        let since = &logged[logged_before..];
        for worrying in ["truncating", "torn", "corrupt", "rebuilding indexes"] {
            assert!(
                !since.contains(worrying),
                "restart (crash: {crash}) logged {worrying:?}:\n{since}"
            );
        }
    }
    drop(broker);
    drop(mount);
}
