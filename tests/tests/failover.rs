//! Failover under load: idempotent producers write unique values with
//! acks=all to an RF=3, `min.insync.replicas=2` topic while the test
//! `kill -9`s the current leader again and again (and restarts it). A
//! checker then reads everything back and asserts that
//! - no acknowledged record is lost (each is at its acknowledged offset),
//! - no value appears twice (retries across leader changes never
//!   duplicate),
//! - each producer's records keep their order within a partition,
//! - an offset never maps to two values (the acknowledged one is there).
//!
//! CI runs a small size; run longer with e.g.
//! `RUNNEL_FAILOVER_KILLS=20 RUNNEL_FAILOVER_PRODUCERS=4 cargo nextest run
//! -p runnel-tests -E 'binary(failover)'`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use runnel_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, Offset, Producer, ProducerConfig, ProducerRecord,
};
use runnel_tests::cluster::TestCluster;

const TOPIC: &str = "orders";
const PARTITIONS: u32 = 3;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one producer had acknowledged: value → (partition, offset).
type Acked = Vec<(String, u32, i64)>;

async fn produce_until(
    bootstrap: String,
    producer_no: usize,
    stop: Arc<AtomicBool>,
) -> (Acked, usize) {
    let producer = Producer::connect(
        ClientConfig::new(&bootstrap).unwrap(),
        ProducerConfig {
            linger: Duration::from_millis(2),
            ..ProducerConfig::default()
        },
    )
    .await
    .unwrap();
    let mut pending = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    let mut seq = 0u64;
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        let value = format!("p{producer_no}-{seq:08}");
        let record = ProducerRecord::new(TOPIC, value.clone()).key(format!("k{}", seq % 31));
        pending.push((value, producer.send(record).await.unwrap()));
        seq += 1;
    }
    producer.flush().await;
    let mut acked = Vec::new();
    let mut failed = 0;
    for (value, delivery) in pending {
        match delivery.await {
            Ok(meta) => acked.push((value, meta.partition, meta.offset)),
            // Allowed (e.g. a delivery timeout), but must not duplicate.
            Err(e) => {
                failed += 1;
                if failed < 5 {
                    eprintln!("producer {producer_no}: {value} not acknowledged: {e}");
                }
            }
        }
    }
    producer.close().await;
    (acked, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_records_survive_repeated_leader_kills() {
    let kills = env_or("RUNNEL_FAILOVER_KILLS", 3);
    let producers = env_or("RUNNEL_FAILOVER_PRODUCERS", 2);
    let mut cluster = TestCluster::start(3, &[]).unwrap();
    let admin = Admin::connect(ClientConfig::new(&cluster.bootstrap()).unwrap())
        .await
        .unwrap();
    admin
        .create_topic(TOPIC, PARTITIONS, 3, &[("min.insync.replicas", "2")])
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..producers)
        .map(|n| tokio::spawn(produce_until(cluster.bootstrap(), n, stop.clone())))
        .collect();

    // A producer that retries quickly, to time failovers.
    let probe = Producer::connect(
        ClientConfig::new(&cluster.bootstrap()).unwrap(),
        ProducerConfig {
            linger: Duration::ZERO,
            retry_backoff: Duration::from_millis(25),
            retry_backoff_max: Duration::from_millis(50),
            ..ProducerConfig::default()
        },
    )
    .await
    .unwrap();
    // Kill the leader of partition (round % PARTITIONS), restart it, repeat.
    let mut failovers = Vec::new();
    for round in 0..kills {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let p = round as u32 % PARTITIONS;
        let before = cluster.partition(TOPIC, p).await.unwrap();
        let victim = before.leader;
        assert!(victim > 0, "{before:?}");
        let killed = Instant::now();
        cluster.broker_mut(victim).kill9().unwrap();
        // Failover as a client sees it: kill -9 → first acks=all write to
        // that partition acknowledged by the new leader.
        let first_ack =
            probe.send(ProducerRecord::new(TOPIC, format!("probe-{round}")).partition(p));
        let first_ack = first_ack.await.unwrap().await;
        let to_first_ack = killed.elapsed();
        first_ack.unwrap_or_else(|e| panic!("probe write failed: {e}\n{}", cluster.logs()));
        let others: Vec<i32> = (1..=3).filter(|&b| b != victim).collect();
        let after = cluster
            .wait_for_leader(TOPIC, p, &others, None, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        failovers.push(to_first_ack);
        eprintln!(
            "round {round}: killed broker {victim} (leader of {TOPIC}-{p} at epoch {}); broker {} leads at epoch {}; \
             first acks=all write acknowledged {to_first_ack:?} after the kill",
            before.leader_epoch, after.leader, after.leader_epoch,
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.broker_mut(victim).start_again().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Release);

    let mut acked: Acked = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (a, f) = t.await.unwrap();
        acked.extend(a);
        failed += f;
    }
    assert!(
        acked.len() > 1000,
        "too little was acknowledged: {}",
        acked.len()
    );

    // Read every partition back from its current leader.
    let mut consumer = Consumer::connect(
        ClientConfig::new(&cluster.bootstrap()).unwrap(),
        ConsumerConfig::default(),
    )
    .await
    .unwrap();
    let mut stored: BTreeMap<(u32, i64), String> = BTreeMap::new();
    for p in 0..PARTITIONS {
        consumer.assign([(TOPIC, p)]);
        consumer.seek(TOPIC, p, Offset::Earliest).await.unwrap();
        let end = consumer.end_offsets(&[(TOPIC, p)]).await.unwrap()[0];
        while consumer.position(TOPIC, p).unwrap_or(0) < end {
            for r in consumer.poll(Duration::from_secs(1)).await.unwrap() {
                let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                assert!(
                    stored.insert((p, r.offset), v).is_none(),
                    "offset read twice"
                );
            }
        }
    }

    // The probes are not part of the check.
    stored.retain(|_, v| !v.starts_with("probe-"));
    // No value twice.
    let mut seen: HashMap<&str, (u32, i64)> = HashMap::new();
    for (&(p, o), v) in &stored {
        if let Some(first) = seen.insert(v, (p, o)) {
            panic!("{v} stored twice: at {first:?} and {:?}", (p, o));
        }
    }
    // Every acknowledged record at its acknowledged offset.
    let mut lost = Vec::new();
    for (value, p, offset) in &acked {
        match stored.get(&(*p, *offset)) {
            Some(v) if v == value => {}
            other => lost.push(format!("{value} acked at {p}/{offset}, stored {other:?}")),
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // Each producer's order kept per partition.
    let mut last: HashMap<(u32, String), String> = HashMap::new();
    for (&(p, _), v) in &stored {
        let producer = v.split('-').next().unwrap().to_owned();
        if let Some(prev) = last.insert((p, producer), v.clone()) {
            assert!(prev < *v, "{v} stored after {prev} in partition {p}");
        }
    }
    let worst = failovers.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{} acknowledged, {failed} not acknowledged, {} stored, {kills} leader kills, slowest failover (kill -9 to first acks=all ack) {worst:?}",
        acked.len(),
        stored.len()
    );
}
