//! The `runnel` CLI end to end: the README's commands against a real broker
//! process, checked through `--output json` / `--format json`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use runnel_tests::{BrokerProcess, binary};
use serde_json::Value;

struct Cli {
    bootstrap: String,
}

impl Cli {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(binary("runnel"))
            .args(["--bootstrap", &self.bootstrap])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runnel binary (cargo build --bins)");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    #[track_caller]
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "runnel {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        serde_json::from_str(&self.ok(&all, None)).unwrap()
    }
}

#[test]
fn readme_walkthrough() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]).unwrap();
    let cli = Cli {
        bootstrap: broker.bootstrap(),
    };

    cli.ok(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=86400000",
        ],
        None,
    );
    let list = cli.json(&["topic", "list"]);
    assert_eq!(list[0]["name"], "orders");
    assert_eq!(list[0]["partitions"], 3);

    // Keyed records: the same key always lands on the same partition.
    cli.ok(
        &["produce", "orders", "--key-separator", ":"],
        Some("alice:1\nbob:2\ncarol:3\nalice:4\n"),
    );
    let out = cli.ok(
        &[
            "consume", "orders", "--offset", "earliest", "--format", "json",
        ],
        None,
    );
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "{out}");
    let alice: Vec<&Value> = records.iter().filter(|r| r["key"] == "alice").collect();
    assert_eq!(alice.len(), 2);
    assert_eq!(alice[0]["partition"], alice[1]["partition"]);
    assert_eq!(alice[0]["value"], "1");
    assert_eq!(alice[1]["value"], "4");

    // Explicit partition, offsets, max-messages.
    cli.ok(
        &["produce", "orders", "--partition", "2", "--acks", "all"],
        Some("x\ny\n"),
    );
    let described = cli.json(&["topic", "describe", "orders"]);
    let p2 = &described["partitions"][2];
    let hw = p2["high_watermark"].as_i64().unwrap();
    assert!(hw >= 2);
    let out = cli.ok(
        &[
            "consume",
            "orders",
            "--partition",
            "2",
            "--offset",
            &(hw - 2).to_string(),
            "--max-messages",
            "1",
        ],
        None,
    );
    assert_eq!(out, "x\n");

    // Alter: more partitions and a config change; describe shows both.
    cli.ok(
        &[
            "topic",
            "alter",
            "orders",
            "--partitions",
            "6",
            "--config",
            "retention.ms=3600000",
        ],
        None,
    );
    let described = cli.json(&["topic", "describe", "orders"]);
    assert_eq!(described["partitions"].as_array().unwrap().len(), 6);
    let retention = described["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "retention.ms")
        .unwrap();
    assert_eq!(retention["value"], "3600000");
    assert_eq!(retention["source"], "topic");

    // Errors: one clear line, non-zero exit, nothing changed.
    let out = cli.run(&["topic", "alter", "orders", "--partitions", "2"], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("only be increased"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    let out = cli.run(&["consume", "nope", "--offset", "earliest"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    let out = cli.run(&["topic", "create", "bad name"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not allowed"));

    // perf: a short run prints a JSON summary.
    let perf = cli.json(&[
        "perf",
        "produce",
        "--topic",
        "orders",
        "--num-records",
        "2000",
        "--record-size",
        "100",
        "--acks",
        "1",
    ]);
    assert_eq!(perf["records"], 2000, "{perf}");
    let perf = cli.json(&["perf", "consume", "--topic", "orders", "--messages", "2000"]);
    assert!(perf["records"].as_u64().unwrap() >= 2000, "{perf}");

    cli.ok(&["topic", "delete", "orders"], None);
    assert_eq!(cli.json(&["topic", "list"]), serde_json::json!([]));
}

/// `runnel acl add|list|remove` against a broker with authorization on,
/// as the superuser (bearer token from RUNNEL_TOKEN's flag), and what the
/// refused user sees.
#[test]
fn acl_commands_grant_list_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "admin-token-0123456789,admin\nalice-token-0123456789,alice\n",
    )
    .unwrap();
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &[
            "--authorizer-enable",
            "true",
            "--super-users",
            "User:admin",
            "--auth-tokens-file",
            tokens.to_str().unwrap(),
        ],
    )
    .unwrap();
    let cli = Cli {
        bootstrap: broker.bootstrap(),
    };
    fn admin<'a>(args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["--token", "admin-token-0123456789"];
        all.extend_from_slice(args);
        all
    }
    cli.ok(&admin(&["topic", "create", "orders-eu"]), None);

    // Alice is refused, and told how to get access.
    let out = cli.run(
        &[
            "--token",
            "alice-token-0123456789",
            "topic",
            "describe",
            "orders-eu",
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("User:alice is not allowed to Describe topic \"orders-eu\"")
            && err.contains(
                "runnel acl add --allow User:alice --operation Describe --topic orders-eu"
            ),
        "{err}"
    );

    cli.ok(
        &admin(&[
            "acl",
            "add",
            "--allow",
            "User:alice",
            "--operation",
            "read",
            "--operation",
            "describe",
            "--topic",
            "orders",
            "--prefixed",
        ]),
        None,
    );
    let listed = cli.json(&admin(&["acl", "list", "--principal", "User:alice"]));
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(rows.iter().all(|r| r["name"] == "orders"
        && r["pattern"] == "prefixed"
        && r["permission"] == "allow"
        && r["resource_type"] == "topic"));
    cli.ok(
        &[
            "--token",
            "alice-token-0123456789",
            "topic",
            "describe",
            "orders-eu",
        ],
        None,
    );

    let removed = cli.json(&admin(&[
        "acl",
        "remove",
        "--topic",
        "orders",
        "--prefixed",
        "--operation",
        "read",
    ]));
    assert_eq!(removed.as_array().unwrap().len(), 1, "{removed}");
    let left = cli.json(&admin(&["acl", "list"]));
    assert_eq!(left[0]["operation"], "describe", "{left}");
    // Nothing matches: a clear failure, not silence.
    let out = cli.run(&admin(&["acl", "remove", "--group", "nobody-here"]), None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ACL matched"));
}
