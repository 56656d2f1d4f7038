//! Kafka clients no one here wrote, against a real broker process on its
//! shared gRPC/Kafka port: kcat (librdkafka 2.0 from Debian), confluent-kafka
//! (a current librdkafka), kafka-python and kafkajs (pure-language, classic
//! group protocol). scripts/test.sh installs them: kcat from Debian, the
//! Python packages into target/venv, kafkajs into tests/kafka_clients.
//! A missing tool fails the test with that advice instead of skipping it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use runnel_tests::kafka_clients::{venv_python, workspace};
use runnel_tests::{BrokerProcess, binary};
use serde_json::Value;

#[track_caller]
fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}; scripts/test.sh installs the Kafka clients"));
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

fn kcat(bootstrap: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = run(
        runnel_tests::kcat().args(["-b", bootstrap]).args(args),
        stdin,
    );
    String::from_utf8(out.stdout).unwrap()
}

fn runnel(bootstrap: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = run(
        Command::new(binary("runnel"))
            .args(["--bootstrap", bootstrap])
            .args(args),
        stdin,
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The last line of a check script's stdout, as JSON.
fn summary(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn broker() -> (tempfile::TempDir, BrokerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]).unwrap();
    (dir, broker)
}

#[test]
fn kcat_metadata_keys_headers_codecs_and_null_values_both_ways() {
    let (_dir, broker) = broker();
    let bs = broker.bootstrap();
    runnel(&bs, &["topic", "create", "t", "-p", "3", "-r", "1"], None);
    let metadata: Value = serde_json::from_str(&kcat(&bs, &["-L", "-J"], None)).unwrap();
    assert_eq!(
        metadata["brokers"].as_array().unwrap().len(),
        1,
        "{metadata}"
    );
    let topic = metadata["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == "t")
        .unwrap_or_else(|| panic!("{metadata}"));
    assert_eq!(
        topic["partitions"].as_array().unwrap().len(),
        3,
        "{metadata}"
    );

    // Keys and headers, then one batch per codec, then a null value (-Z).
    kcat(
        &bs,
        &["-P", "-t", "t", "-p", "0", "-K:", "-H", "h=one"],
        Some(b"alice:1\nbob:2\n"),
    );
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let line = format!("{codec}-key:{codec}-value\n");
        kcat(
            &bs,
            &["-P", "-t", "t", "-p", "0", "-K:", "-z", codec],
            Some(line.as_bytes()),
        );
    }
    kcat(
        &bs,
        &["-P", "-t", "t", "-p", "0", "-K:", "-Z"],
        Some(b"tombstone:\n"),
    );

    let read = kcat(
        &bs,
        &["-C", "-t", "t", "-p", "0", "-o", "beginning", "-e", "-J"],
        None,
    );
    let records: Vec<Value> = read
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pairs: Vec<(String, Value, i64)> = records
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                r["payload"].clone(),
                r["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("alice", Value::from("1")),
        ("bob", Value::from("2")),
        ("gzip-key", Value::from("gzip-value")),
        ("snappy-key", Value::from("snappy-value")),
        ("lz4-key", Value::from("lz4-value")),
        ("zstd-key", Value::from("zstd-value")),
        ("tombstone", Value::Null),
    ];
    assert_eq!(pairs.len(), expected.len(), "{read}");
    for (i, ((key, value, offset), (k, v))) in pairs.iter().zip(&expected).enumerate() {
        assert_eq!((key.as_str(), value, *offset), (*k, v, i as i64), "{read}");
    }
    assert_eq!(
        records[0]["headers"],
        serde_json::json!(["h", "one"]),
        "{read}"
    );

    // Written over Kafka, read over gRPC: the same keys, values, offsets.
    let grpc = runnel(
        &bs,
        &[
            "consume",
            "t",
            "--partition",
            "0",
            "--offset",
            "earliest",
            "--max-messages",
            "6",
            "--format",
            "json",
        ],
        None,
    );
    let grpc: Vec<Value> = grpc
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(grpc.len(), 6, "{grpc:?}");
    for (g, (k, v)) in grpc.iter().zip(&expected) {
        assert_eq!(g["key"], *k, "{g}");
        assert_eq!(g["value"], *v, "{g}");
    }

    // Written over gRPC, read over Kafka.
    runnel(
        &bs,
        &["produce", "t", "--partition", "1", "--key-separator", ":"],
        Some(b"carol:3\ndave:4\n"),
    );
    let read = kcat(
        &bs,
        &[
            "-C",
            "-t",
            "t",
            "-p",
            "1",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%o %k=%s\n",
        ],
        None,
    );
    assert_eq!(read, "0 carol=3\n1 dave=4\n");
}

#[test]
fn kcat_group_commits_are_the_groups_runnel_describes() {
    let (_dir, broker) = broker();
    let bs = broker.bootstrap();
    runnel(&bs, &["topic", "create", "g", "-p", "2", "-r", "1"], None);
    kcat(&bs, &["-P", "-t", "g", "-p", "0"], Some(b"a\nb\nc\n"));
    kcat(&bs, &["-P", "-t", "g", "-p", "1"], Some(b"d\n"));
    let read = kcat(
        &bs,
        &[
            "-G",
            "kcat-group",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%s\n",
            "g",
        ],
        None,
    );
    let mut values: Vec<&str> = read.lines().collect();
    values.sort_unstable();
    assert_eq!(values, ["a", "b", "c", "d"], "{read}");
    let described: Value = serde_json::from_str(&runnel(
        &bs,
        &["--output", "json", "group", "describe", "kcat-group"],
        None,
    ))
    .unwrap();
    let text = described.to_string();
    // Committed offsets 3 and 1 (the next to consume), seen over gRPC.
    let committed: Vec<i64> = described["offsets"]
        .as_array()
        .unwrap_or_else(|| panic!("{text}"))
        .iter()
        .map(|o| o["committed"].as_i64().unwrap())
        .collect();
    assert_eq!(committed, [3, 1], "{text}");
}

#[test]
fn confluent_kafka_admin_idempotent_producer_group_and_resume() {
    let (_dir, broker) = broker();
    let out = run(
        Command::new(venv_python())
            .arg(workspace().join("tests/kafka_clients/confluent_check.py"))
            .args([&broker.bootstrap(), "cf", "1000"]),
        None,
    );
    let s = summary(&out);
    assert_eq!(s["partitions"], 6, "{s}");
    assert_eq!(s["retention_before"], "3600000", "{s}");
    assert_eq!(s["retention_after"], "7200000", "{s}");
    assert_eq!(s["cluster_brokers"], 1, "{s}");
    assert_eq!(s["acked"], 1000, "{s}");
    assert_eq!(s["produce_errors"], serde_json::json!([]), "{s}");
    // Half, commit, then a new member of the same group resumes.
    assert_eq!(s["first"], 500, "{s}");
    assert_eq!(s["committed_sum"], 500, "{s}");
    assert_eq!(s["rest"], 500, "{s}");
    assert_eq!(s["distinct"], 1000, "{s}");
    assert_eq!(s["duplicates"], 0, "{s}");
    assert!(
        s["groups"]
            .as_array()
            .unwrap()
            .contains(&Value::from("checker")),
        "{s}"
    );
    // DeleteRecords: answered with the new log start, which ListOffsets
    // and a consumer from the beginning then start at; past the high
    // watermark refused.
    let cut = s["cut"].as_i64().unwrap();
    assert!(cut > 0, "{s}");
    assert_eq!(s["low_watermark"], cut, "{s}");
    assert_eq!(s["earliest_after_delete"], cut, "{s}");
    assert_eq!(s["first_offset_after_delete"], cut, "{s}");
    assert_eq!(s["delete_past_hw"], "OFFSET_OUT_OF_RANGE", "{s}");
    assert_eq!(s["deleted"], true, "{s}");
}

#[test]
fn kafka_python_produce_group_consume_commit() {
    let (_dir, broker) = broker();
    let bs = broker.bootstrap();
    runnel(&bs, &["topic", "create", "kp", "-p", "3", "-r", "1"], None);
    let out = run(
        Command::new(venv_python())
            .arg(workspace().join("tests/kafka_clients/kafka_python_check.py"))
            .args([&bs, "kp", "200"]),
        None,
    );
    let s = summary(&out);
    assert_eq!(s["acked"], 200, "{s}");
    assert_eq!(s["consumed"], 200, "{s}");
    assert_eq!(s["distinct"], 200, "{s}");
    assert_eq!(s["committed"], 200, "{s}");
}

#[test]
fn kafkajs_admin_produce_group_consume() {
    let (_dir, broker) = broker();
    let dir = workspace().join("tests/kafka_clients");
    assert!(
        dir.join("node_modules/kafkajs").exists(),
        "kafkajs is missing: run scripts/test.sh (npm ci in tests/kafka_clients)"
    );
    let out = run(
        Command::new("node").current_dir(&dir).args([
            "kafkajs_check.js",
            &broker.bootstrap(),
            "kjs",
            "100",
        ]),
        None,
    );
    let s = summary(&out);
    assert_eq!(s["consumed"], 100, "{s}");
    assert_eq!(s["distinct"], 100, "{s}");
    assert_eq!(s["headersOk"], true, "{s}");
}

/// One running `rebalance_check.py` member; its JSON lines are collected
/// as they come.
struct Member {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    stop: std::path::PathBuf,
}

impl Member {
    fn start(bs: &str, dir: &std::path::Path, name: &str, protocol: &str) -> Member {
        let stop = dir.join(format!("{name}.stop"));
        let mut child = Command::new(venv_python())
            .env("GROUP_PROTOCOL", protocol)
            .arg(workspace().join("tests/kafka_clients/rebalance_check.py"))
            .args([bs, "rb", "rebalancers", name, "120"])
            .arg(&stop)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the venv's python; scripts/test.sh installs confluent-kafka");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Member { child, lines, stop }
    }

    fn events(&self, kind: &str) -> Vec<Value> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter(|l| l["event"] == kind)
            .cloned()
            .collect()
    }

    /// Partitions it owns after its latest assignment or revocation.
    fn owns(&self) -> Vec<i64> {
        let lines = self.lines.lock().unwrap();
        let latest = lines
            .iter()
            .rfind(|l| l["event"] == "assigned" || l["event"] == "revoked")
            .cloned();
        latest.map_or(Vec::new(), |a| {
            a["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_i64().unwrap())
                .collect()
        })
    }

    fn values(&self) -> Vec<String> {
        self.events("consumed")
            .iter()
            .flat_map(|c| c["values"].as_array().unwrap().clone())
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    fn stop(mut self) {
        std::fs::write(&self.stop, b"").unwrap();
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Member {
    // A failed assertion must not leave the member consuming for minutes.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn confluent_kafka_group_of_two_processes_shares_six_partitions_and_rebalances() {
    two_members_share_six_partitions_and_rebalance("classic");
}

/// KIP-848: the coordinator assigns (ConsumerGroupHeartbeat).
#[test]
fn confluent_kafka_consumer_protocol_group_shares_six_partitions_and_rebalances() {
    two_members_share_six_partitions_and_rebalance("consumer");
}

fn two_members_share_six_partitions_and_rebalance(protocol: &str) {
    let (dir, broker) = broker();
    let bs = broker.bootstrap();
    runnel(&bs, &["topic", "create", "rb", "-p", "6", "-r", "1"], None);
    let first: String = (0..300).map(|i| format!("a{i}\n")).collect();
    kcat(&bs, &["-P", "-t", "rb"], Some(first.as_bytes()));

    let a = Member::start(&bs, dir.path(), "a", protocol);
    let b = Member::start(&bs, dir.path(), "b", protocol);
    wait_until(
        "both members own three partitions and all 300 are read",
        || a.owns().len() == 3 && b.owns().len() == 3 && a.values().len() + b.values().len() >= 300,
    );
    let mut both = a.owns();
    both.extend(b.owns());
    both.sort_unstable();
    assert_eq!(both, [0, 1, 2, 3, 4, 5], "disjoint, covering the topic");
    described_by_admin_client(&bs, protocol);

    // One member leaves: the other takes over all six, from the offsets
    // the leaver committed.
    let read_by_a = a.values();
    a.stop();
    wait_until("the remaining member owns all six", || b.owns().len() == 6);
    let second: String = (0..300).map(|i| format!("b{i}\n")).collect();
    kcat(&bs, &["-P", "-t", "rb"], Some(second.as_bytes()));
    wait_until("all 600 records read", || {
        read_by_a.len() + b.values().len() >= 600
    });
    let read_by_b = b.values();
    b.stop();
    let mut all = read_by_a.clone();
    all.extend(read_by_b);
    let distinct: std::collections::BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), 600);
    assert_eq!(all.len(), 600, "no record read twice");

    // The group's commits, over gRPC: everything.
    let described: Value = serde_json::from_str(&runnel(
        &bs,
        &["--output", "json", "group", "describe", "rebalancers"],
        None,
    ))
    .unwrap();
    let committed: i64 = described["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["committed"].as_i64().unwrap())
        .sum();
    assert_eq!(committed, 600, "{described}");
}

/// AdminClient.describe_consumer_groups while both members hold three
/// partitions: the group's type, state and each member's partitions, over
/// ConsumerGroupDescribe for a KIP-848 group and DescribeGroups for a
/// classic one (librdkafka picks the API by the group's type). Asked again
/// for a while: the coordinator learns what a member owns from its next
/// heartbeat, so the group can still be reconciling at first.
fn described_by_admin_client(bs: &str, protocol: &str) {
    let describe = || -> Value {
        let out = Command::new(venv_python())
            .arg(workspace().join("tests/kafka_clients/describe_group_check.py"))
            .args([bs, "rebalancers"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let check = |d: &Value| -> Result<(), &'static str> {
        let members = d["members"].as_array().ok_or("no members")?;
        if members.len() != 2 {
            return Err("two members");
        }
        if d["type"] != protocol.to_uppercase() {
            return Err("the group's type is its protocol");
        }
        if d["state"] != "STABLE" {
            return Err("stable");
        }
        let mut all = Vec::new();
        for m in members {
            let owned = m["assignment"].as_array().ok_or("an assignment")?;
            if owned.len() != 3 {
                return Err("three partitions each");
            }
            for tp in owned {
                if tp[0] != "rb" {
                    return Err("partitions of rb");
                }
                all.push(tp[1].as_i64().unwrap());
            }
            // KIP-848: each owns exactly the coordinator's target.
            if protocol == "consumer" && m["assignment"] != m["target_assignment"] {
                return Err("owned = target");
            }
        }
        all.sort_unstable();
        if all != [0, 1, 2, 3, 4, 5] {
            return Err("disjoint, covering the topic");
        }
        if protocol == "consumer" && d["assignor"] != "uniform" {
            return Err("the server assignor");
        }
        Ok(())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let d = describe();
        match check(&d) {
            Ok(()) => return,
            Err(what) if std::time::Instant::now() > deadline => {
                panic!("describe_consumer_groups: expected {what}: {d}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(500)),
        }
    }
}

#[test]
fn committed_offsets_survive_a_broker_kill_and_the_group_resumes_after_them() {
    let (_dir, mut broker) = broker();
    let bs = broker.bootstrap();
    runnel(
        &bs,
        &["topic", "create", "resume", "-p", "3", "-r", "1"],
        None,
    );
    let values: String = (0..100).map(|i| format!("r{i}\n")).collect();
    kcat(&bs, &["-P", "-t", "resume"], Some(values.as_bytes()));
    let consume = |bs: &str, count: &str| -> Vec<String> {
        let read = kcat(
            bs,
            &[
                // Not `-o beginning`: in -G mode kcat assigns that offset
                // over the committed one.
                "-G",
                "resumers",
                "-X",
                "auto.offset.reset=earliest",
                "-c",
                count,
                "-f",
                "%s\n",
                "resume",
            ],
            None,
        );
        read.lines().map(str::to_owned).collect()
    };
    // librdkafka commits what it handed to kcat when kcat closes.
    let first = consume(&bs, "40");
    assert_eq!(first.len(), 40);
    // No clean shutdown: the commits must already be durable.
    broker.kill9().unwrap();
    broker.start_again().unwrap();
    let bs = broker.bootstrap();
    let rest = consume(&bs, "60");
    let mut all: Vec<String> = first.into_iter().chain(rest).collect();
    all.sort_unstable();
    let mut expected: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
    expected.sort_unstable();
    assert_eq!(
        all, expected,
        "the resumed member reads exactly the other 60"
    );
}
