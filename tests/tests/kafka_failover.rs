//! Cluster mode over the Kafka protocol: 3 brokers on a real etcd, a topic
//! with RF=3 and `min.insync.replicas=2`, and a librdkafka idempotent
//! producer (confluent-kafka) with acks=all writing while the test
//! `kill -9`s partition leaders and restarts them. The producer is given
//! all three brokers and nothing else: it must find each new leader by
//! itself (Metadata, NOT_LEADER_OR_FOLLOWER). Then a librdkafka consumer
//! reads everything back, and the checker asserts that every acknowledged
//! message is there exactly once, at its acknowledged offset, in send
//! order per partition, and that the victim's partition kept being
//! acknowledged after each kill.

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runnel_tests::cluster::TestCluster;
use runnel_tests::kafka_clients::{script, venv_python};
use serde_json::Value;

const TOPIC: &str = "payments";
const PARTITIONS: u32 = 3;
const KILLS: usize = 2;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// JSON lines of a check script; the last is its summary.
fn lines(stdout: &[u8]) -> (Vec<Value>, Value) {
    let mut all: Vec<Value> = String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summary = all.pop().expect("a summary line");
    assert_eq!(summary["summary"], true, "{summary}");
    (all, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn librdkafka_idempotent_producer_rides_out_leader_kills() {
    let mut cluster = TestCluster::start(3, &[]).unwrap();
    let admin = cluster
        .registered_admin(Duration::from_secs(20))
        .await
        .unwrap();
    admin
        .create_topic(TOPIC, PARTITIONS, 3, &[("min.insync.replicas", "2")])
        .await
        .unwrap();
    for p in 0..PARTITIONS {
        cluster
            .wait_for_leader(TOPIC, p, &[1, 2, 3], Some(3), Duration::from_secs(20))
            .await
            .unwrap();
    }
    let bootstrap = cluster.bootstrap();

    let seconds = 8 + KILLS * 6;
    let producer = Command::new(venv_python())
        .arg(script("failover_check.py"))
        .args(["produce", &bootstrap, TOPIC, &PARTITIONS.to_string()])
        .arg(seconds.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let producing = tokio::task::spawn_blocking(move || producer.wait_with_output().unwrap());

    // (partition, wall clock of the kill)
    let mut kills = Vec::new();
    for round in 0..KILLS {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let p = round as u32 % PARTITIONS;
        let before = cluster.partition(TOPIC, p).await.unwrap();
        let victim = before.leader;
        kills.push((p, now()));
        cluster.broker_mut(victim).kill9().unwrap();
        let others: Vec<i32> = (1..=3).filter(|&b| b != victim).collect();
        let after = cluster
            .wait_for_leader(TOPIC, p, &others, None, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        eprintln!(
            "round {round}: killed broker {victim}, leader of {TOPIC}-{p} at epoch {}; broker {} leads at epoch {}",
            before.leader_epoch, after.leader, after.leader_epoch
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.broker_mut(victim).start_again().unwrap();
    }

    let out = producing.await.unwrap();
    assert!(
        out.status.success(),
        "producer: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.logs()
    );
    let (acks, summary) = lines(&out.stdout);
    eprintln!("producer: {summary}, {} acknowledged", acks.len());
    assert_eq!(summary["unflushed"], 0, "{summary}");

    // Read back once every partition has its full ISR again.
    for p in 0..PARTITIONS {
        cluster
            .wait_for_leader(TOPIC, p, &[1, 2, 3], Some(3), Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
    let reader = Command::new(venv_python())
        .arg(script("failover_check.py"))
        .args(["read", &bootstrap, TOPIC, &PARTITIONS.to_string()])
        .output()
        .unwrap();
    assert!(
        reader.status.success(),
        "reader: {}",
        String::from_utf8_lossy(&reader.stderr)
    );
    let (records, read_summary) = lines(&reader.stdout);
    assert_eq!(read_summary["complete"], true, "{read_summary}");

    let mut stored: BTreeMap<(u64, i64), String> = BTreeMap::new();
    for r in &records {
        let key = (r["p"].as_u64().unwrap(), r["o"].as_i64().unwrap());
        let v = r["v"].as_str().unwrap().to_owned();
        assert!(stored.insert(key, v).is_none(), "offset {key:?} read twice");
    }
    // Exactly once: no value at two offsets.
    let mut seen: HashMap<&str, (u64, i64)> = HashMap::new();
    for (at, v) in &stored {
        if let Some(first) = seen.insert(v, *at) {
            panic!("{v} stored twice: at {first:?} and {at:?}");
        }
    }
    // Every acknowledged message at its acknowledged offset.
    let lost: Vec<String> = acks
        .iter()
        .filter_map(|a| {
            let key = (a["p"].as_u64().unwrap(), a["o"].as_i64().unwrap());
            let v = a["v"].as_str().unwrap();
            (stored.get(&key).map(String::as_str) != Some(v))
                .then(|| format!("{v} acked at {key:?}, stored {:?}", stored.get(&key)))
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // Send order kept per partition: values are v<n>, n rising.
    let mut last: HashMap<u64, u64> = HashMap::new();
    for ((p, o), v) in &stored {
        let n: u64 = v[1..].parse().unwrap();
        if let Some(prev) = last.insert(*p, n) {
            assert!(prev < n, "v{n} at {p}/{o} after v{prev}");
        }
    }
    // The client followed each new leader by itself: the killed leader's
    // partition was acknowledged again after the kill.
    for (p, at) in &kills {
        let later = acks
            .iter()
            .filter(|a| a["p"].as_u64() == Some(u64::from(*p)) && a["t"].as_f64().unwrap() > *at)
            .count();
        assert!(
            later > 0,
            "nothing acknowledged on partition {p} after its leader was killed"
        );
    }
    assert!(acks.len() > 1000, "only {} acknowledged", acks.len());
    eprintln!(
        "{} acknowledged, {} stored, {} failed sends, {KILLS} leader kills",
        acks.len(),
        stored.len(),
        summary["errors"]
    );
}

/// Every broker's registration gone at once, as when etcd stalls for
/// longer than the lease TTL while the brokers serve on (found by `xtask
/// chaos`: a broker answered Metadata with no broker at all, librdkafka
/// decommissioned every broker it knew, and its producer never sent
/// again). The registrations are deleted by hand here, so the state holds
/// still: the brokers keep their leases and do not register again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_metadata_lists_the_answering_broker_and_the_leaders_while_registrations_are_gone() {
    use runnel_broker::meta::keys::Keys;
    use runnel_broker::meta::{MetadataStore, Op};

    let cluster = TestCluster::start(2, &[]).unwrap();
    let admin = cluster
        .registered_admin(Duration::from_secs(20))
        .await
        .unwrap();
    admin.create_topic("stall", 2, 2, &[]).await.unwrap();
    for p in 0..2 {
        cluster
            .wait_for_leader("stall", p, &[1, 2], Some(2), Duration::from_secs(20))
            .await
            .unwrap();
    }

    let store = runnel_broker::meta::etcd::EtcdStore::connect(
        &[cluster.etcd.endpoint()],
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let keys = Keys::new("test");
    store
        .txn(
            Vec::new(),
            vec![Op::Delete(keys.broker(1)), Op::Delete(keys.broker(2))],
        )
        .await
        .unwrap();
    // Broker 1 (asked first) has seen both go: every replica offline.
    cluster
        .wait_for(
            "broker 1 to see no live broker",
            Duration::from_secs(20),
            || async {
                let m = cluster.metadata(&["stall"]).await.ok()?;
                m.topics[0]
                    .partitions
                    .iter()
                    .all(|p| p.offline_replicas.len() == 2)
                    .then_some(())
            },
        )
        .await
        .unwrap();

    let metadata = runnel_tests::json_output(runnel_tests::kcat().args([
        "-b",
        &cluster.broker(1).bootstrap(),
        "-L",
        "-J",
        "-t",
        "stall",
    ]));
    let listed: Vec<i64> = metadata["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert!(
        listed.contains(&1),
        "the broker answering is not listed: {metadata}"
    );
    for p in metadata["topics"][0]["partitions"].as_array().unwrap() {
        let leader = p["leader"].as_i64().unwrap();
        assert!(
            leader < 0 || listed.contains(&leader),
            "leader {leader} of partition {} is not listed: {metadata}",
            p["partition"]
        );
    }
}
