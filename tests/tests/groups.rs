//! Consumer groups against real broker processes: sharing partitions,
//! rebalancing without double ownership, at-least-once delivery, broadcast
//! vs queue, fencing of stale commits, offset resets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ErrorCode, Producer, ProducerConfig,
    ProducerRecord,
};
use runnel_proto::v1::group_client::GroupClient;
use runnel_proto::v1::*;
use runnel_tests::BrokerProcess;
use tokio::task::JoinHandle;

const TOPIC: &str = "jobs";

fn group_config(group: &str) -> ConsumerConfig {
    ConsumerConfig {
        group_id: Some(group.into()),
        session_timeout: Duration::from_secs(3),
        auto_offset_reset: runnel_client::AutoOffsetReset::Earliest,
        auto_commit_interval: Duration::from_millis(200),
        fetch_max_wait: Duration::from_millis(100),
        ..ConsumerConfig::default()
    }
}

async fn produce(bootstrap: &str, from: u32, to: u32) {
    let producer = Producer::connect(
        ClientConfig::new(bootstrap).unwrap(),
        ProducerConfig::default(),
    )
    .await
    .unwrap();
    let mut acks = Vec::new();
    for i in from..to {
        let r = ProducerRecord::new(TOPIC, format!("v{i:05}")).key(format!("k{i}"));
        acks.push(producer.send(r).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
    producer.close().await;
}

/// What every consumer saw: value → times seen; and per consumer its
/// latest assignment.
#[derive(Default)]
struct Seen {
    values: BTreeMap<String, usize>,
    assignments: BTreeMap<usize, BTreeSet<(String, u32)>>,
}

/// A group member polling until told to stop; closes cleanly at the end.
fn member(
    bootstrap: String,
    group: &'static str,
    n: usize,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<tokio::sync::Notify>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut c = Consumer::connect(ClientConfig::new(&bootstrap).unwrap(), group_config(group))
            .await
            .unwrap();
        c.subscribe([TOPIC]).unwrap();
        loop {
            tokio::select! {
                _ = stop.notified() => break,
                polled = c.poll(Duration::from_millis(200)) => {
                    let records = polled.unwrap();
                    let mut s = seen.lock().unwrap();
                    for r in records {
                        let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                        *s.values.entry(v).or_default() += 1;
                    }
                    let assignment = c.assignment().into_iter().map(|(t, p)| (t.to_string(), p)).collect();
                    s.assignments.insert(n, assignment);
                }
            }
        }
        c.close().await.unwrap();
        seen.lock().unwrap().assignments.remove(&n);
    })
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn disjoint_and_complete(s: &Seen, members: usize) -> bool {
    let mut all = BTreeSet::new();
    let mut total = 0;
    for a in s.assignments.values() {
        total += a.len();
        all.extend(a.iter().cloned());
    }
    s.assignments.len() == members && total == 6 && all.len() == 6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_shares_partitions_rebalances_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]).unwrap();
    let bootstrap = broker.bootstrap();
    let admin = Admin::connect(ClientConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    admin.create_topic(TOPIC, 6, 1, &[]).await.unwrap();
    produce(&bootstrap, 0, 600).await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stops: Vec<_> = (0..4)
        .map(|_| Arc::new(tokio::sync::Notify::new()))
        .collect();
    let mut members: Vec<_> = (0..3)
        .map(|n| {
            member(
                bootstrap.clone(),
                "workers",
                n,
                seen.clone(),
                stops[n].clone(),
            )
        })
        .collect();
    wait_until("3 members own 6 partitions, each once", || {
        let s = seen.lock().unwrap();
        disjoint_and_complete(&s, 3) && s.values.len() == 600
    })
    .await;

    // A fourth joins, the first leaves, more records arrive.
    members.push(member(
        bootstrap.clone(),
        "workers",
        3,
        seen.clone(),
        stops[3].clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stops[0].notify_one();
    produce(&bootstrap, 600, 1200).await;
    wait_until(
        "3 members again own 6 partitions, and every record was seen",
        || {
            let s = seen.lock().unwrap();
            disjoint_and_complete(&s, 3) && s.values.len() == 1200
        },
    )
    .await;
    {
        let s = seen.lock().unwrap();
        assert!(
            (0..1200).all(|i| s.values.contains_key(&format!("v{i:05}"))),
            "a record was skipped"
        );
    }
    let described = admin.describe_group("workers").await.unwrap();
    assert_eq!(described.described.members.len(), 3);
    assert_eq!(described.described.assignor, "range");
    for stop in &stops[1..] {
        stop.notify_one();
    }
    for m in members {
        m.await.unwrap();
    }
    // Everything consumed was committed on close: no lag is left.
    let described = admin.describe_group("workers").await.unwrap();
    assert_eq!(described.described.state, "Empty");
    let lag: i64 = described.lag.iter().map(|l| l.lag).sum();
    assert_eq!(lag, 0, "{:?}", described.lag);
    assert_eq!(described.lag.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_groups_each_get_everything_one_group_shares_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]).unwrap();
    let bootstrap = broker.bootstrap();
    let admin = Admin::connect(ClientConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    admin.create_topic(TOPIC, 6, 1, &[]).await.unwrap();
    produce(&bootstrap, 0, 300).await;
    let run = |group: &'static str, n: usize| {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stops: Vec<_> = (0..n)
            .map(|_| Arc::new(tokio::sync::Notify::new()))
            .collect();
        let members: Vec<_> = (0..n)
            .map(|i| member(bootstrap.clone(), group, i, seen.clone(), stops[i].clone()))
            .collect();
        (seen, stops, members)
    };
    let (broadcast_a, stops_a, a) = run("audit", 1);
    let (broadcast_b, stops_b, b) = run("billing", 2);
    wait_until("both groups saw all 300", || {
        broadcast_a.lock().unwrap().values.len() == 300
            && broadcast_b.lock().unwrap().values.len() == 300
    })
    .await;
    // Within the two-member group (a queue) each record went to one member.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(broadcast_b.lock().unwrap().values.values().all(|&n| n == 1));
    for s in stops_a.iter().chain(&stops_b) {
        s.notify_one();
    }
    for m in a.into_iter().chain(b) {
        m.await.unwrap();
    }
    let groups: Vec<String> = admin
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(groups, vec!["audit".to_string(), "billing".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_commits_are_fenced_and_resets_wait_for_an_empty_group() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]).unwrap();
    let bootstrap = broker.bootstrap();
    let admin = Admin::connect(ClientConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    admin.create_topic(TOPIC, 2, 1, &[]).await.unwrap();
    let mut raw = GroupClient::connect(broker.endpoint()).await.unwrap();
    let join = |member: &str| JoinGroupRequest {
        group_id: "fenced".into(),
        member_id: member.into(),
        topics: vec![TOPIC.into()],
        assignor: "roundrobin".into(),
        session_timeout_ms: 10_000,
        client_id: "test".into(),
    };
    let a = raw.join_group(join("")).await.unwrap().into_inner();
    let b = raw.join_group(join("")).await.unwrap().into_inner();
    assert!(b.generation > a.generation);
    // a heartbeats and learns the new generation; its old one is now stale.
    let hb = raw
        .heartbeat(HeartbeatRequest {
            group_id: "fenced".into(),
            member_id: a.member_id.clone(),
            generation: a.generation,
            owned: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hb.generation, b.generation);
    let commit = |member: &str, generation: i32| OffsetCommitRequest {
        group_id: "fenced".into(),
        member_id: member.into(),
        generation,
        topics: vec![OffsetCommitTopic {
            topic: TOPIC.into(),
            partitions: vec![OffsetCommitPartition {
                partition: 0,
                offset: 7,
                metadata: String::new(),
            }],
        }],
    };
    let stale = raw
        .offset_commit(commit(&a.member_id, a.generation))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        runnel_proto::error_code::from_status(&stale),
        Some(ErrorCode::IllegalGeneration)
    );
    let ghost = raw.offset_commit(commit("ghost", 1)).await.unwrap_err();
    assert_eq!(
        runnel_proto::error_code::from_status(&ghost),
        Some(ErrorCode::UnknownMemberId)
    );
    raw.offset_commit(commit(&a.member_id, hb.generation))
        .await
        .unwrap();

    // Reset is refused while members are active...
    let err = admin
        .reset_group_offsets("fenced", &[(TOPIC.into(), 0, 0)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NonEmptyGroup), "{err}");
    let offsets = admin
        .describe_group("fenced")
        .await
        .unwrap()
        .described
        .offsets;
    assert_eq!(offsets[0].offset, 7, "nothing changed");
    // ...and applied once they left.
    for m in [&a.member_id, &b.member_id] {
        raw.leave_group(LeaveGroupRequest {
            group_id: "fenced".into(),
            member_id: m.clone(),
        })
        .await
        .unwrap();
    }
    admin
        .reset_group_offsets("fenced", &[(TOPIC.into(), 0, 2)])
        .await
        .unwrap();
    let offsets = admin
        .describe_group("fenced")
        .await
        .unwrap()
        .described
        .offsets;
    assert_eq!(offsets[0].offset, 2);
    // Bad group ids get a precise error.
    let bad = raw
        .find_coordinator(FindCoordinatorRequest {
            group_id: "a/b".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    admin.delete_group("fenced").await.unwrap();
    assert!(admin.list_groups().await.unwrap().is_empty());
    // Looking up made-up groups answers a live broker and claims nothing:
    // no coordinator key, so no group appears.
    for i in 0..20 {
        let found = raw
            .find_coordinator(FindCoordinatorRequest {
                group_id: format!("ghost-{i}"),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(found.port > 0, "{found:?}");
    }
    assert!(admin.list_groups().await.unwrap().is_empty());
}

/// A `runnel consume --group` process and the values it printed.
struct CliConsumer {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl CliConsumer {
    fn start(bootstrap: &str, group: &str) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(runnel_tests::binary("runnel"))
            .args(["--bootstrap", bootstrap, "consume", TOPIC, "--group", group])
            .args(["--offset", "earliest", "--session-timeout", "2s"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(|l| l.ok())
            {
                sink.lock().unwrap().push(line);
            }
        });
        CliConsumer { child, lines }
    }
}

impl Drop for CliConsumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_consumers_partitions_resume_elsewhere_from_committed_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]).unwrap();
    let bootstrap = broker.bootstrap();
    let admin = Admin::connect(ClientConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    admin.create_topic(TOPIC, 6, 1, &[]).await.unwrap();
    produce(&bootstrap, 0, 600).await;
    let mut victim = CliConsumer::start(&bootstrap, "cli");
    let survivor = CliConsumer::start(&bootstrap, "cli");
    let union = |a: &CliConsumer, b: &CliConsumer| {
        let mut all: BTreeMap<String, usize> = BTreeMap::new();
        for l in a
            .lines
            .lock()
            .unwrap()
            .iter()
            .chain(b.lines.lock().unwrap().iter())
        {
            *all.entry(l.clone()).or_default() += 1;
        }
        all
    };
    wait_until("both consumers together print the first 600", || {
        union(&victim, &survivor).len() == 600
    })
    .await;
    // Let the printed offsets be committed, then kill -9 one of them.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    produce(&bootstrap, 600, 1200).await;
    wait_until("the survivor takes over and prints the rest", || {
        union(&victim, &survivor).len() == 1200
    })
    .await;
    let all = union(&victim, &survivor);
    assert!(
        (0..1200).all(|i| all.contains_key(&format!("v{i:05}"))),
        "a record was skipped"
    );
    // Resumed from committed offsets, not from the start: few duplicates.
    let duplicates: usize = all.values().map(|n| n - 1).sum();
    assert!(duplicates < 300, "{duplicates} records printed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_survives_its_coordinator_broker_dying() {
    let mut cluster = runnel_tests::cluster::TestCluster::start(3, &[]).unwrap();
    let bootstrap = cluster.bootstrap();
    let admin = Admin::connect(ClientConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    admin
        .create_topic(TOPIC, 6, 3, &[("min.insync.replicas", "2")])
        .await
        .unwrap();
    produce(&bootstrap, 0, 300).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stops: Vec<_> = (0..2)
        .map(|_| Arc::new(tokio::sync::Notify::new()))
        .collect();
    let members: Vec<_> = (0..2)
        .map(|n| {
            member(
                bootstrap.clone(),
                "durable",
                n,
                seen.clone(),
                stops[n].clone(),
            )
        })
        .collect();
    wait_until("the group reads the first 300", || {
        seen.lock().unwrap().values.len() == 300
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = admin.describe_group("durable").await.unwrap().described;
    let coordinator = before.coordinator_id;
    assert!(
        before.offsets.iter().map(|o| o.offset).sum::<i64>() > 0,
        "offsets were committed"
    );
    cluster.broker_mut(coordinator).kill9().unwrap();
    let bootstrap = cluster.bootstrap();
    produce(&bootstrap, 300, 600).await;
    wait_until("the group reads on after the coordinator died", || {
        seen.lock().unwrap().values.len() == 600
    })
    .await;
    let admin = Admin::connect(ClientConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    let after = admin.describe_group("durable").await.unwrap().described;
    assert_ne!(after.coordinator_id, coordinator);
    assert_eq!(after.members.len(), 2, "{after:?}");
    // The new coordinator started from the committed offsets: few repeats.
    let duplicates: usize = seen.lock().unwrap().values.values().map(|n| n - 1).sum();
    assert!(duplicates < 300, "{duplicates} records read twice");
    for s in &stops {
        s.notify_one();
    }
    for m in members {
        m.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_data_cleaning_stream_runs_end_to_end() {
    use runnel_client::streams::StreamBuilder;
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]).unwrap();
    let bootstrap = broker.bootstrap();
    let admin = Admin::connect(ClientConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    admin.create_topic("raw", 3, 1, &[]).await.unwrap();
    admin.create_topic("clean", 1, 1, &[]).await.unwrap();
    let inputs = [
        "atguigu>>>ximenqing",
        "noise",
        "a>>>b>>>panjinlian",
        ">>>",
        "x>>>y",
    ];
    let producer = Producer::connect(
        ClientConfig::new(&bootstrap).unwrap(),
        ProducerConfig::default(),
    )
    .await
    .unwrap();
    for v in inputs {
        producer
            .send(ProducerRecord::new("raw", v))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // Two instances share the input.
    let topology = StreamBuilder::source("raw")
        .filter(|r| r.value_str().is_some_and(|v| v.contains(">>>")))
        .map(|r| {
            let cleaned = r
                .value_str()
                .and_then(|v| v.rsplit(">>>").next())
                .unwrap_or_default()
                .to_owned();
            r.with_value(cleaned)
        })
        .sink("clean");
    let instances: Vec<_> = (0..2)
        .map(|_| {
            let t = topology.clone();
            let config = ClientConfig::new(&bootstrap).unwrap();
            tokio::spawn(async move { t.run(config, "cleaner").await })
        })
        .collect();
    let mut consumer = Consumer::connect(
        ClientConfig::new(&bootstrap).unwrap(),
        ConsumerConfig {
            auto_offset_reset: runnel_client::AutoOffsetReset::Earliest,
            ..ConsumerConfig::default()
        },
    )
    .await
    .unwrap();
    consumer.assign([("clean", 0)]);
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while out.len() < 4 && std::time::Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    out.sort();
    assert_eq!(out, vec!["", "panjinlian", "ximenqing", "y"]);
    // Offsets are committed once outputs are acknowledged: no lag left.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lag: i64 = admin
        .describe_group("cleaner")
        .await
        .unwrap()
        .lag
        .iter()
        .map(|l| l.lag)
        .sum();
    assert_eq!(lag, 0);
    for i in instances {
        i.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_group_consume_continues_where_it_stopped_and_group_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]).unwrap();
    let bootstrap = broker.bootstrap();
    let admin = Admin::connect(ClientConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    admin.create_topic(TOPIC, 3, 1, &[]).await.unwrap();
    produce(&bootstrap, 0, 250).await;
    let runnel = |args: &[&str]| {
        let out = std::process::Command::new(runnel_tests::binary("runnel"))
            .args(["--bootstrap", &bootstrap])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "runnel {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let consume = || {
        runnel(&[
            "consume",
            TOPIC,
            "--group",
            "cli",
            "--offset",
            "earliest",
            "--max-messages",
            "100",
        ])
    };
    let first: BTreeSet<String> = consume().lines().map(str::to_owned).collect();
    let second: BTreeSet<String> = consume().lines().map(str::to_owned).collect();
    let third: BTreeSet<String> =
        runnel(&["consume", TOPIC, "--group", "cli", "--max-messages", "50"])
            .lines()
            .map(str::to_owned)
            .collect();
    assert_eq!((first.len(), second.len(), third.len()), (100, 100, 50));
    assert!(first.is_disjoint(&second) && second.is_disjoint(&third) && first.is_disjoint(&third));
    assert_eq!(
        first.len() + second.len() + third.len(),
        250,
        "every record exactly once"
    );

    let list = runnel(&["group", "list"]);
    assert!(list.contains("cli"), "{list}");
    let described = runnel(&["group", "describe", "cli"]);
    assert!(
        described.contains("State: Empty") && described.contains("LAG"),
        "{described}"
    );
    let dry = runnel(&[
        "group",
        "reset-offsets",
        "cli",
        "--topic",
        TOPIC,
        "--to-earliest",
    ]);
    assert!(dry.contains("dry run"), "{dry}");
    assert_eq!(
        admin
            .describe_group("cli")
            .await
            .unwrap()
            .lag
            .iter()
            .map(|l| l.lag)
            .sum::<i64>(),
        0,
        "a dry run changes nothing"
    );
    runnel(&[
        "group",
        "reset-offsets",
        "cli",
        "--topic",
        TOPIC,
        "--to-earliest",
        "--execute",
    ]);
    let lag: i64 = admin
        .describe_group("cli")
        .await
        .unwrap()
        .lag
        .iter()
        .map(|l| l.lag)
        .sum();
    assert_eq!(lag, 250);
    // The same through the API: a dry run at a time, then latest.
    let planned = admin
        .reset_group_offsets_to(
            "cli",
            TOPIC,
            None,
            runnel_client::Offset::Timestamp(i64::MAX),
            true,
        )
        .await
        .unwrap();
    let ends: i64 = planned.iter().map(|(_, _, o)| o).sum();
    assert_eq!(
        (planned.len(), ends),
        (3, 250),
        "no record that new: the end"
    );
    let lag: i64 = admin
        .describe_group("cli")
        .await
        .unwrap()
        .lag
        .iter()
        .map(|l| l.lag)
        .sum();
    assert_eq!(lag, 250, "dry run");
    admin
        .reset_group_offsets_to(
            "cli",
            TOPIC,
            Some(&[0]),
            runnel_client::Offset::Latest,
            false,
        )
        .await
        .unwrap();
    let described = admin.describe_group("cli").await.unwrap();
    assert_eq!(
        described.lag.iter().find(|l| l.partition == 0).unwrap().lag,
        0
    );
    runnel(&["group", "delete", "cli"]);
    assert!(!runnel(&["group", "list"]).contains("cli"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_assigned_consumer_commits_sync_and_async_outside_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]).unwrap();
    let bootstrap = broker.bootstrap();
    let admin = Admin::connect(ClientConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    admin.create_topic(TOPIC, 2, 1, &[]).await.unwrap();
    produce(&bootstrap, 0, 20).await;
    let mut c = Consumer::connect(
        ClientConfig::new(&bootstrap).unwrap(),
        ConsumerConfig {
            group_id: Some("manual".into()),
            ..ConsumerConfig::default()
        },
    )
    .await
    .unwrap();
    c.assign([(TOPIC, 0), (TOPIC, 1)]);
    c.seek(TOPIC, 0, runnel_client::Offset::At(3))
        .await
        .unwrap();
    c.seek(TOPIC, 1, runnel_client::Offset::At(1))
        .await
        .unwrap();
    c.commit_async().await.unwrap().unwrap();
    let tps = [(TOPIC.to_string(), 0), (TOPIC.to_string(), 1)];
    assert_eq!(c.committed(&tps).await.unwrap(), vec![3, 1]);
    c.seek(TOPIC, 0, runnel_client::Offset::At(4))
        .await
        .unwrap();
    c.commit_sync().await.unwrap();
    assert_eq!(c.committed(&tps).await.unwrap(), vec![4, 1]);
    // A fresh group member starts from those commits.
    let mut member = Consumer::connect(
        ClientConfig::new(&bootstrap).unwrap(),
        group_config("manual"),
    )
    .await
    .unwrap();
    member.subscribe([TOPIC]).unwrap();
    let mut first: BTreeMap<u32, i64> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while first.len() < 2 && std::time::Instant::now() < deadline {
        for r in member.poll(Duration::from_millis(200)).await.unwrap() {
            first.entry(r.partition).or_insert(r.offset);
        }
    }
    assert_eq!(first, BTreeMap::from([(0, 4), (1, 1)]));
    member.close().await.unwrap();
}
