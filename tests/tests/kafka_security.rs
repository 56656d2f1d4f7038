//! Security on the Kafka listener, against real broker processes and
//! Kafka clients no one here wrote (confluent-kafka, kafka-python; driven
//! by `tests/kafka_clients/security_check.py`), side by side with gRPC:
//!
//! - TLS with certificates from a test CA: the right CA produces and
//!   consumes, a wrong CA and a plaintext client are refused; with mutual
//!   TLS a client without a certificate (or with another CA's) is refused,
//!   and a CA-issued certificate's common name is the principal ACLs see.
//! - SASL PLAIN and OAUTHBEARER over SASL_PLAINTEXT and SASL_SSL carrying
//!   the broker's bearer tokens: the right token works, a wrong one (or a
//!   PLAIN username that is not the token's) fails authentication, and a
//!   client that skips SASL is `User:ANONYMOUS`, refused by default-deny.
//! - One table of ACL cases (principal × operation × resource), each run
//!   over gRPC (`runnel-client`) and over Kafka; both must give the
//!   expected allow or TOPIC_/GROUP_/CLUSTER_AUTHORIZATION_FAILED.
//! - CreateAcls / DescribeAcls / DeleteAcls from confluent-kafka's
//!   AdminClient: one store with the gRPC admin and `runnel acl list`.
//!
//! scripts/test.sh installs the clients (target/venv); a missing one fails
//! the test with that advice.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runnel_client::{
    AclBinding, AclFilter, AclOperation, AclPatternType, AclPermission, AclResourceType, Admin,
    BearerToken, ClientConfig, Consumer, ConsumerConfig, Offset, Producer, ProducerConfig,
    ProducerRecord, TlsConfig,
};
use runnel_proto::v1::group_client::GroupClient;
use runnel_proto::v1::{JoinGroupRequest, LeaveGroupRequest};
use runnel_tests::kafka_clients::{script, venv_python};
use runnel_tests::tls::Ca;
use runnel_tests::{BrokerProcess, binary};
use serde_json::{Value, json};

/// Tokens of `auth.tokens.file` (kube-apiserver's CSV): `admin` is the
/// super user; the others get only what each test grants.
const TOKENS: &[(&str, &str)] = &[
    ("admin", "admin-token-0123456789"),
    ("alice", "alice-token-0123456789"),
    ("bob", "bob-token-0123456789ab"),
    ("carol", "carol-token-0123456789"),
];

/// The outcomes compared: success, or the Kafka error name both
/// protocols report for a refusal.
const OK: &str = "ok";
const TOPIC_DENIED: &str = "TOPIC_AUTHORIZATION_FAILED";
const GROUP_DENIED: &str = "GROUP_AUTHORIZATION_FAILED";
const CLUSTER_DENIED: &str = "CLUSTER_AUTHORIZATION_FAILED";

fn token(user: &str) -> &'static str {
    TOKENS
        .iter()
        .find(|(u, _)| *u == user)
        .unwrap_or_else(|| panic!("no token for {user}"))
        .1
}

/// How a test broker's listener is secured.
#[derive(Clone, Copy, PartialEq)]
enum Listener {
    Plaintext,
    /// TLS with the CA's `broker` certificate.
    Tls,
    /// TLS with `ssl.client.auth=required`.
    MutualTls,
}

/// Who a client is.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// No credentials: `User:ANONYMOUS`.
    Anonymous,
    /// A bearer token of [`TOKENS`]: a gRPC `authorization` header, SASL
    /// PLAIN (username + token as password) over Kafka.
    Token(&'static str),
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::Anonymous => f.write_str("anonymous"),
            Who::Token(user) => f.write_str(user),
        }
    }
}

/// One broker process with a test CA, a token file and (optionally)
/// default-deny authorization with `User:admin` as the super user.
struct Secured {
    dir: tempfile::TempDir,
    ca: Ca,
    listener: Listener,
    broker: BrokerProcess,
}

impl Secured {
    fn start(listener: Listener, authorizer: bool) -> Secured {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path(), "ca");
        let (cert, key) = ca.issue(dir.path(), "broker");
        let tokens = dir.path().join("tokens.csv");
        let lines: String = TOKENS.iter().map(|(u, t)| format!("{t},{u}\n")).collect();
        std::fs::write(&tokens, lines).unwrap();
        let mut args: Vec<String> = vec!["--auth-tokens-file".into(), path(&tokens)];
        if listener != Listener::Plaintext {
            args.extend([
                "--ssl-certificate-location".into(),
                path(&cert),
                "--ssl-key-location".into(),
                path(&key),
            ]);
        }
        if listener == Listener::MutualTls {
            args.extend([
                "--ssl-ca-location".into(),
                path(&ca.pem),
                "--ssl-client-auth".into(),
                "required".into(),
            ]);
        }
        if authorizer {
            args.extend([
                "--authorizer-enable".into(),
                "true".into(),
                "--super-users".into(),
                "User:admin".into(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let broker = BrokerProcess::start(&dir.path().join("data"), &args).unwrap();
        Secured {
            dir,
            ca,
            listener,
            broker,
        }
    }

    /// A client certificate from the test CA with common name `cn`.
    fn client_cert(&self, cn: &str) -> (PathBuf, PathBuf) {
        self.ca.issue(self.dir.path(), cn)
    }

    /// The Rust client's config for `who` (TLS trusting the CA when the
    /// listener has TLS; with mutual TLS and no token, `admin`'s
    /// certificate).
    fn grpc(&self, who: Who) -> ClientConfig {
        let tls = match self.listener {
            Listener::Plaintext => None,
            Listener::Tls => Some(TlsConfig::new(&self.ca.pem)),
            Listener::MutualTls => {
                let (cert, key) = self.client_cert("admin");
                Some(TlsConfig::new(&self.ca.pem).identity(cert, key))
            }
        };
        ClientConfig {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            tls,
            token: match who {
                Who::Anonymous => None,
                Who::Token(user) => Some(BearerToken::new(token(user))),
            },
            ..ClientConfig::new(&self.broker.bootstrap()).unwrap()
        }
    }

    /// librdkafka settings for `who` on this listener.
    fn kafka(&self, who: Who) -> Value {
        let tls = self.listener != Listener::Plaintext;
        let mut config = match who {
            Who::Anonymous => json!({
                "security.protocol": if tls { "SSL" } else { "PLAINTEXT" },
            }),
            Who::Token(user) => sasl_plain(tls, user, token(user)),
        };
        if tls {
            config["ssl.ca.location"] = path(&self.ca.pem).into();
        }
        config
    }

    async fn admin(&self) -> Admin {
        Admin::connect(self.grpc(Who::Token("admin")))
            .await
            .unwrap()
    }
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

fn sasl_plain(tls: bool, user: &str, token: &str) -> Value {
    json!({
        "security.protocol": if tls { "SASL_SSL" } else { "SASL_PLAINTEXT" },
        "sasl.mechanisms": "PLAIN",
        "sasl.username": user,
        "sasl.password": token,
    })
}

fn oauthbearer(tls: bool) -> Value {
    json!({
        "security.protocol": if tls { "SASL_SSL" } else { "SASL_PLAINTEXT" },
        "sasl.mechanisms": "OAUTHBEARER",
    })
}

/// `a` with `b`'s keys over it.
fn merged(mut a: Value, b: &Value) -> Value {
    for (k, v) in b.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

/// Run `cases` through security_check.py against `bootstrap`; the result
/// line of each, by id.
fn kafka_cases(bootstrap: &str, cases: &[Value]) -> BTreeMap<String, Value> {
    let spec = json!({"bootstrap": bootstrap, "cases": cases});
    let mut child = Command::new(venv_python())
        .arg(script("security_check.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "security_check.py failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut results = BTreeMap::new();
    let mut summary = false;
    for line in stdout.lines() {
        // Every case's result, for when an assertion fails.
        eprintln!("{line}");
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["summary"] == true {
            summary = true;
        } else {
            results.insert(v["id"].as_str().unwrap().to_owned(), v);
        }
    }
    assert!(summary, "no summary line: {stdout}");
    assert_eq!(results.len(), cases.len(), "{stdout}");
    results
}

/// The outcome of a gRPC call in the table's terms: "ok", or the Kafka
/// name of its error code, or the whole error when it has none.
fn grpc_outcome<T>(result: runnel_client::Result<T>) -> String {
    match result {
        Ok(_) => OK.to_owned(),
        Err(e) => match e.code() {
            Some(code) => code.as_str_name().to_owned(),
            None => format!("{e}"),
        },
    }
}

fn topic_binding(principal: &str, topic: &str, operation: AclOperation) -> AclBinding {
    AclBinding {
        resource_type: AclResourceType::Topic as i32,
        resource_name: topic.into(),
        pattern_type: AclPatternType::Literal as i32,
        principal: principal.into(),
        operation: operation as i32,
        permission: AclPermission::Allow as i32,
    }
}

/// A Kafka ACL binding as security_check.py takes and shows it.
fn kafka_binding(restype: &str, name: &str, pattern: &str, principal: &str, op: &str) -> Value {
    json!({"restype": restype, "name": name, "pattern": pattern, "principal": principal,
           "host": "*", "op": op, "perm": "ALLOW"})
}

#[track_caller]
fn assert_outcome(results: &BTreeMap<String, Value>, id: &str, expected: &str) {
    let r = &results[id];
    assert_eq!(r["outcome"], expected, "{id}: {r}");
}

/// TLS on the shared port: confluent-kafka with `security.protocol=SSL`
/// and the CA creates a topic, produces and (kafka-python over TLS)
/// consumes; kcat lists it over TLS; a client trusting another CA, and a
/// plaintext client, get nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_on_the_kafka_listener_takes_the_right_ca_only() {
    let s = Secured::start(Listener::Tls, false);
    let bs = s.broker.bootstrap();
    let tls = s.kafka(Who::Anonymous);
    let other = Ca::new(s.dir.path(), "other-ca");
    let wrong_ca = json!({"security.protocol": "SSL", "ssl.ca.location": path(&other.pem)});
    let results = kafka_cases(
        &bs,
        &[
            json!({"id": "create", "op": "create_topic", "topic": "secret", "config": tls}),
            json!({"id": "produce", "op": "produce", "topic": "secret", "count": 50, "config": tls}),
            json!({"id": "consume", "op": "consume", "topic": "secret", "count": 50, "config": tls}),
            json!({"id": "wrong-ca", "op": "connect", "config": wrong_ca}),
            json!({"id": "plaintext", "op": "connect", "config": {"security.protocol": "PLAINTEXT"}}),
        ],
    );
    assert_outcome(&results, "create", OK);
    assert_outcome(&results, "produce", OK);
    let offsets: Vec<i64> = serde_json::from_value(results["produce"]["offsets"].clone()).unwrap();
    assert_eq!(
        offsets,
        (0..50).collect::<Vec<_>>(),
        "{}",
        results["produce"]
    );
    assert_outcome(&results, "consume", OK);
    let values = results["consume"]["values"].as_array().unwrap();
    assert_eq!(values.len(), 50);
    assert_eq!(values[0], "produce-0");
    // librdkafka reports the failed verification as an SSL error.
    let wrong = &results["wrong-ca"];
    assert_eq!(wrong["outcome"], "_SSL", "{wrong}");
    assert!(
        wrong["detail"]
            .as_str()
            .unwrap()
            .contains("certificate verify failed"),
        "{wrong}"
    );
    assert_ne!(
        results["plaintext"]["outcome"], OK,
        "{}",
        results["plaintext"]
    );

    let kcat = runnel_tests::kcat()
        .args(["-b", &bs, "-X", "security.protocol=ssl", "-X"])
        .arg(format!("ssl.ca.location={}", path(&s.ca.pem)))
        .args(["-L", "-J"])
        .output()
        .expect("kcat (scripts/test.sh installs it)");
    assert!(kcat.status.success(), "{kcat:?}");
    let metadata: Value = serde_json::from_slice(&kcat.stdout).unwrap();
    assert!(
        metadata["topics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["topic"] == "secret"),
        "{metadata}"
    );

    // What Kafka wrote over TLS, gRPC reads over TLS: one log.
    let mut consumer = Consumer::connect(s.grpc(Who::Anonymous), ConsumerConfig::default())
        .await
        .unwrap();
    consumer.assign([("secret", 0)]);
    consumer.seek("secret", 0, Offset::Earliest).await.unwrap();
    let records = consumer.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        records[0].value.as_deref(),
        Some(&b"produce-0"[..]),
        "{records:?}"
    );
    assert!(s.broker.is_running());
}

/// `ssl.client.auth=required` on the Kafka listener, with authorization
/// on: no certificate, or one from another CA, is refused in the
/// handshake; a certificate from the CA gets in as `User:<CN>` — the
/// principal a refusal names and an ACL for that name lets write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_on_the_kafka_listener_makes_the_common_name_the_principal() {
    let s = Secured::start(Listener::MutualTls, true);
    let bs = s.broker.bootstrap();
    s.admin()
        .await
        .create_topic("ledger", 1, 1, &[])
        .await
        .unwrap();
    let other = Ca::new(s.dir.path(), "other-ca");
    let (carol_cert, carol_key) = s.client_cert("carol");
    let (stranger_cert, stranger_key) = other.issue(s.dir.path(), "stranger");
    let ca = path(&s.ca.pem);
    let carol = json!({"security.protocol": "SSL", "ssl.ca.location": ca,
        "ssl.certificate.location": path(&carol_cert), "ssl.key.location": path(&carol_key)});
    let stranger = json!({"security.protocol": "SSL", "ssl.ca.location": ca,
        "ssl.certificate.location": path(&stranger_cert),
        "ssl.key.location": path(&stranger_key)});
    let first = kafka_cases(
        &bs,
        &[
            json!({"id": "no-cert", "op": "connect", "config": {"security.protocol": "SSL",
                   "ssl.ca.location": ca}}),
            json!({"id": "other-ca", "op": "connect", "config": stranger}),
            json!({"id": "carol-connects", "op": "connect", "config": carol}),
            json!({"id": "carol-creates", "op": "create_topic", "topic": "carols",
                   "config": carol}),
            json!({"id": "carol-produces", "op": "produce", "topic": "ledger", "count": 1,
                   "config": carol}),
        ],
    );
    for id in ["no-cert", "other-ca"] {
        let r = &first[id];
        assert!(
            ["_SSL", "_TRANSPORT"].contains(&r["outcome"].as_str().unwrap()),
            "{id}: {r}"
        );
    }
    // In, but as User:carol, who may do nothing yet.
    assert_outcome(&first, "carol-connects", OK);
    assert_outcome(&first, "carol-creates", TOPIC_DENIED);
    assert!(
        first["carol-creates"]["detail"]
            .as_str()
            .unwrap()
            .contains("User:carol"),
        "{}",
        first["carol-creates"]
    );
    assert_outcome(&first, "carol-produces", TOPIC_DENIED);

    s.admin()
        .await
        .create_acls(vec![topic_binding(
            "User:carol",
            "ledger",
            AclOperation::Write,
        )])
        .await
        .unwrap();
    let then = kafka_cases(
        &bs,
        &[
            json!({"id": "carol-produces", "op": "produce", "topic": "ledger", "count": 3,
                   "config": carol}),
            // Write was granted, not Read.
            json!({"id": "carol-consumes", "op": "consume", "topic": "ledger", "count": 1,
                   "config": carol}),
        ],
    );
    assert_outcome(&then, "carol-produces", OK);
    assert_eq!(then["carol-produces"]["offsets"], json!([0, 1, 2]));
    assert_outcome(&then, "carol-consumes", TOPIC_DENIED);
}

/// SASL PLAIN and OAUTHBEARER with the broker's tokens, on a plaintext
/// listener (SASL_PLAINTEXT) and a TLS one (SASL_SSL), default-deny
/// authorization: the right token produces and consumes as its user, a
/// wrong token and a PLAIN username that is not the token's fail
/// authentication, and skipping SASL leaves the client anonymous and
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plain_and_oauthbearer_over_plaintext_and_tls() {
    for listener in [Listener::Plaintext, Listener::Tls] {
        let s = Secured::start(listener, true);
        let tls = listener == Listener::Tls;
        let admin = s.admin().await;
        admin.create_topic("orders", 1, 1, &[]).await.unwrap();
        admin
            .create_acls(vec![
                topic_binding("User:alice", "orders", AclOperation::Write),
                topic_binding("User:alice", "orders", AclOperation::Read),
            ])
            .await
            .unwrap();
        let with_ca = |config: Value| {
            if tls {
                merged(config, &json!({"ssl.ca.location": path(&s.ca.pem)}))
            } else {
                config
            }
        };
        let plain = |user: &str, secret: &str| with_ca(sasl_plain(tls, user, secret));
        let oauth = with_ca(oauthbearer(tls));
        let alice = token("alice");
        let cases = [
            json!({"id": "plain-produce", "op": "produce", "topic": "orders", "count": 5,
                   "config": plain("alice", alice)}),
            json!({"id": "plain-consume", "op": "consume", "topic": "orders", "count": 5,
                   "config": plain("alice", alice)}),
            json!({"id": "oauth-produce", "op": "produce", "topic": "orders", "count": 5,
                   "config": oauth, "oauth_token": alice}),
            json!({"id": "oauth-consume", "op": "consume", "topic": "orders", "count": 10,
                   "config": oauth, "oauth_token": alice}),
            json!({"id": "plain-wrong-token", "op": "connect",
                   "config": plain("alice", "not-a-token-0123456789")}),
            json!({"id": "plain-someone-elses-name", "op": "connect",
                   "config": plain("admin", alice)}),
            json!({"id": "oauth-wrong-token", "op": "connect", "config": oauth,
                   "oauth_token": "not-a-token-0123456789"}),
            // A valid token, but its user (bob) has no ACL.
            json!({"id": "bob-produce", "op": "produce", "topic": "orders", "count": 1,
                   "config": plain("bob", token("bob"))}),
            json!({"id": "no-sasl-produce", "op": "produce", "topic": "orders", "count": 1,
                   "config": s.kafka(Who::Anonymous)}),
            json!({"id": "no-sasl-consume", "op": "consume", "topic": "orders", "count": 1,
                   "config": s.kafka(Who::Anonymous)}),
        ];
        let r = kafka_cases(&s.broker.bootstrap(), &cases);
        let what = if tls { "SASL_SSL" } else { "SASL_PLAINTEXT" };
        for id in [
            "plain-produce",
            "plain-consume",
            "oauth-produce",
            "oauth-consume",
        ] {
            assert_outcome(&r, id, OK);
        }
        assert_eq!(
            r["plain-produce"]["offsets"],
            json!([0, 1, 2, 3, 4]),
            "{what}"
        );
        assert_eq!(
            r["oauth-produce"]["offsets"],
            json!([5, 6, 7, 8, 9]),
            "{what}"
        );
        assert_eq!(
            r["oauth-consume"]["values"].as_array().unwrap().len(),
            10,
            "{what}: {}",
            r["oauth-consume"]
        );
        for (id, reason) in [
            ("plain-wrong-token", "not known to this broker"),
            (
                "plain-someone-elses-name",
                "belongs to User:alice, not User:admin",
            ),
            ("oauth-wrong-token", "not known to this broker"),
        ] {
            let case = &r[id];
            assert_eq!(case["outcome"], "_AUTHENTICATION", "{what} {id}: {case}");
            assert!(
                case["detail"].as_str().unwrap().contains(reason),
                "{what} {id}: {case}"
            );
        }
        assert_outcome(&r, "bob-produce", TOPIC_DENIED);
        assert_outcome(&r, "no-sasl-produce", TOPIC_DENIED);
        assert_outcome(&r, "no-sasl-consume", TOPIC_DENIED);
        // Every failed exchange was counted.
        let (_, metrics) = s.broker.http_get("/metrics").unwrap();
        let failed: f64 = metrics
            .lines()
            .find(|l| l.starts_with("runnel_authentication_failed_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{metrics}"));
        assert!(
            failed >= 3.0,
            "{what}: {failed} authentication failures counted"
        );
    }
}

/// An operation of the ACL table. `{p}` in a name is replaced by the
/// protocol (`grpc`, `kafka`), so that cases which change something
/// (create, delete, join) do not meet each other's results.
#[derive(Clone, Copy, Debug)]
enum Op {
    Produce(&'static str),
    Consume(&'static str),
    /// Commit an offset of the topic for the group, from outside it.
    Commit(&'static str, &'static str),
    /// Join the group subscribed to the topic.
    Join(&'static str, &'static str),
    CreateTopic(&'static str),
    DeleteTopic(&'static str),
    DescribeTopicConfigs(&'static str),
    DescribeClusterConfigs,
    DescribeAcls,
    /// Create a binding (for `User:nobody`) on the named topic.
    CreateAcls(&'static str),
}

fn named(name: &str, protocol: &str) -> String {
    name.replace("{p}", protocol)
}

/// Run `op` as `who` over gRPC with the Rust client.
async fn over_grpc(s: &Secured, who: Who, op: Op) -> String {
    let config = s.grpc(who);
    let n = |name: &str| named(name, "grpc");
    match op {
        Op::Produce(topic) => {
            let producer = match Producer::connect(
                config,
                ProducerConfig {
                    // librdkafka's default too: no InitProducerId, so only
                    // the topic's Write is involved.
                    enable_idempotence: false,
                    request_timeout: Duration::from_secs(5),
                    delivery_timeout: Duration::from_secs(10),
                    ..ProducerConfig::default()
                },
            )
            .await
            {
                Ok(p) => p,
                Err(e) => return grpc_outcome::<()>(Err(e)),
            };
            let sent = producer
                .send(ProducerRecord::new(n(topic), "grpc").partition(0))
                .await;
            let outcome = match sent {
                Ok(delivery) => grpc_outcome(delivery.await),
                Err(e) => grpc_outcome::<()>(Err(e)),
            };
            producer.close().await;
            outcome
        }
        Op::Consume(topic) => {
            let topic = n(topic);
            let mut consumer = Consumer::connect(config, ConsumerConfig::default())
                .await
                .unwrap();
            consumer.assign([(topic.as_str(), 0)]);
            if let Err(e) = consumer.seek(&topic, 0, Offset::Earliest).await {
                return grpc_outcome::<()>(Err(e));
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match consumer.poll(Duration::from_millis(500)).await {
                    Ok(records) if !records.is_empty() => return OK.to_owned(),
                    Ok(_) if Instant::now() > deadline => return "no records".to_owned(),
                    Ok(_) => {}
                    Err(e) => return grpc_outcome::<()>(Err(e)),
                }
            }
        }
        Op::Commit(group, topic) => {
            let consumer = Consumer::connect(
                config,
                ConsumerConfig {
                    group_id: Some(n(group)),
                    ..ConsumerConfig::default()
                },
            )
            .await
            .unwrap();
            grpc_outcome(consumer.commit_offsets(&[((n(topic), 0), 1)]).await)
        }
        Op::Join(group, topic) => {
            // One JoinGroup on the generated gRPC client, as acl.rs does:
            // runnel-client's Consumer joins in the background and retries
            // a refused join without reporting it to `poll`.
            let channel = tonic::transport::Channel::from_shared(s.broker.endpoint())
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut client = GroupClient::new(channel);
            fn request<T>(message: T, who: Who) -> tonic::Request<T> {
                let mut r = tonic::Request::new(message);
                r.set_timeout(Duration::from_secs(10));
                if let Who::Token(user) = who {
                    r.metadata_mut().insert(
                        "authorization",
                        format!("Bearer {}", token(user)).parse().unwrap(),
                    );
                }
                r
            }
            let joined = client
                .join_group(request(
                    JoinGroupRequest {
                        group_id: n(group),
                        member_id: String::new(),
                        topics: vec![n(topic)],
                        assignor: "range".into(),
                        session_timeout_ms: 6_000,
                        client_id: "kafka-security".into(),
                    },
                    who,
                ))
                .await;
            match joined {
                Ok(joined) => {
                    let member_id = joined.into_inner().member_id;
                    client
                        .leave_group(request(
                            LeaveGroupRequest {
                                group_id: n(group),
                                member_id,
                            },
                            who,
                        ))
                        .await
                        .unwrap();
                    OK.to_owned()
                }
                Err(status) => runnel_proto::error_code::from_status(&status)
                    .map_or_else(|| format!("{status:?}"), |c| c.as_str_name().to_owned()),
            }
        }
        Op::CreateTopic(topic) => {
            let admin = Admin::connect(config).await.unwrap();
            grpc_outcome(admin.create_topic(&n(topic), 1, 1, &[]).await)
        }
        Op::DeleteTopic(topic) => {
            let admin = Admin::connect(config).await.unwrap();
            grpc_outcome(admin.delete_topic(&n(topic)).await)
        }
        Op::DescribeTopicConfigs(topic) => {
            let admin = Admin::connect(config).await.unwrap();
            grpc_outcome(admin.describe_topic(&n(topic)).await)
        }
        Op::DescribeClusterConfigs => {
            let admin = Admin::connect(config).await.unwrap();
            grpc_outcome(admin.describe_cluster_configs().await)
        }
        Op::DescribeAcls => {
            let admin = Admin::connect(config).await.unwrap();
            grpc_outcome(admin.describe_acls(AclFilter::default()).await)
        }
        Op::CreateAcls(topic) => {
            let admin = Admin::connect(config).await.unwrap();
            let binding = topic_binding("User:nobody", &n(topic), AclOperation::Read);
            grpc_outcome(admin.create_acls(vec![binding]).await)
        }
    }
}

/// The same operation as a security_check.py case.
fn kafka_case(s: &Secured, id: &str, who: Who, op: Op) -> Value {
    let n = |name: &str| named(name, "kafka");
    let mut case = match op {
        Op::Produce(t) => json!({"op": "produce", "topic": n(t), "count": 1}),
        Op::Consume(t) => json!({"op": "consume", "topic": n(t), "count": 1}),
        Op::Commit(g, t) => json!({"op": "commit", "group": n(g), "topic": n(t)}),
        Op::Join(g, t) => json!({"op": "join", "group": n(g), "topic": n(t)}),
        Op::CreateTopic(t) => json!({"op": "create_topic", "topic": n(t)}),
        Op::DeleteTopic(t) => json!({"op": "delete_topic", "topic": n(t)}),
        Op::DescribeTopicConfigs(t) => json!({"op": "describe_topic_configs", "topic": n(t)}),
        Op::DescribeClusterConfigs => json!({"op": "describe_cluster_configs"}),
        Op::DescribeAcls => json!({"op": "describe_acls", "client": "kafka-python",
            "filter": {"restype": "ANY", "pattern": "ANY", "op": "ANY", "perm": "ANY"}}),
        Op::CreateAcls(t) => json!({"op": "create_acls",
            "bindings": [kafka_binding("TOPIC", &n(t), "LITERAL", "User:nobody", "READ")]}),
    };
    case["id"] = id.into();
    case["config"] = s.kafka(who);
    case
}

/// One table of principal × operation × resource, each case run over gRPC
/// and over Kafka against one broker; both must give what the table says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_are_enforced_identically_over_grpc_and_kafka() {
    use AclOperation as O;
    let s = Secured::start(Listener::Plaintext, true);
    let admin = s.admin().await;
    for topic in ["orders", "audit", "alice-old-grpc", "alice-old-kafka"] {
        admin.create_topic(topic, 1, 1, &[]).await.unwrap();
    }
    let producer = Producer::connect(s.grpc(Who::Token("admin")), ProducerConfig::default())
        .await
        .unwrap();
    producer
        .send(ProducerRecord::new("orders", "first").partition(0))
        .await
        .unwrap()
        .await
        .unwrap();
    producer.close().await;
    let rule = |principal: &str,
                rt: AclResourceType,
                name: &str,
                pt: AclPatternType,
                op: O,
                perm: AclPermission| AclBinding {
        resource_type: rt as i32,
        resource_name: name.into(),
        pattern_type: pt as i32,
        principal: principal.into(),
        operation: op as i32,
        permission: perm as i32,
    };
    use AclPatternType::{Literal, Prefixed};
    use AclPermission::{Allow, Deny};
    use AclResourceType::{Cluster, Group, Topic};
    admin
        .create_acls(vec![
            rule("User:alice", Topic, "orders", Literal, O::Write, Allow),
            rule("User:alice", Topic, "orders", Literal, O::Read, Allow),
            rule("User:alice", Group, "billing-", Prefixed, O::Read, Allow),
            rule("User:alice", Topic, "alice-", Prefixed, O::Create, Allow),
            rule("User:alice", Topic, "alice-", Prefixed, O::Delete, Allow),
            rule(
                "User:alice",
                Cluster,
                "runnel-cluster",
                Literal,
                O::Describe,
                Allow,
            ),
            // Everyone may write the audit log, except alice: Deny wins.
            rule("User:*", Topic, "audit", Literal, O::Write, Allow),
            rule("User:alice", Topic, "audit", Literal, O::Write, Deny),
            // carol may see orders but not read it.
            rule("User:carol", Topic, "orders", Literal, O::Describe, Allow),
            rule("User:carol", Group, "billing-", Prefixed, O::Read, Allow),
        ])
        .await
        .unwrap();

    let (alice, bob, carol, anonymous, admin_who) = (
        Who::Token("alice"),
        Who::Token("bob"),
        Who::Token("carol"),
        Who::Anonymous,
        Who::Token("admin"),
    );
    let table: &[(Who, Op, &str)] = &[
        (alice, Op::Produce("orders"), OK),
        (bob, Op::Produce("orders"), TOPIC_DENIED),
        (anonymous, Op::Produce("orders"), TOPIC_DENIED),
        (alice, Op::Produce("audit"), TOPIC_DENIED),
        (bob, Op::Produce("audit"), OK),
        (alice, Op::Consume("orders"), OK),
        // Describe (offsets) but not Read (the fetch).
        (carol, Op::Consume("orders"), TOPIC_DENIED),
        (bob, Op::Consume("orders"), TOPIC_DENIED),
        (alice, Op::Commit("billing-{p}", "orders"), OK),
        // Read on the group, not on the topic.
        (carol, Op::Commit("billing-{p}", "orders"), TOPIC_DENIED),
        (bob, Op::Commit("billing-{p}", "orders"), GROUP_DENIED),
        (alice, Op::Commit("payroll-{p}", "orders"), GROUP_DENIED),
        (alice, Op::Join("billing-{p}", "orders"), OK),
        (bob, Op::Join("billing-{p}", "orders"), GROUP_DENIED),
        (alice, Op::Join("payroll-{p}", "orders"), GROUP_DENIED),
        (alice, Op::CreateTopic("alice-new-{p}"), OK),
        (alice, Op::CreateTopic("bobs-{p}"), TOPIC_DENIED),
        (bob, Op::CreateTopic("alice-bob-{p}"), TOPIC_DENIED),
        (alice, Op::DeleteTopic("alice-old-{p}"), OK),
        (alice, Op::DeleteTopic("orders"), TOPIC_DENIED),
        (bob, Op::DeleteTopic("orders"), TOPIC_DENIED),
        // Read implies Describe, which is what describing configs needs.
        (alice, Op::DescribeTopicConfigs("orders"), OK),
        (bob, Op::DescribeTopicConfigs("orders"), TOPIC_DENIED),
        (alice, Op::DescribeClusterConfigs, OK),
        (bob, Op::DescribeClusterConfigs, CLUSTER_DENIED),
        (anonymous, Op::DescribeClusterConfigs, CLUSTER_DENIED),
        (alice, Op::DescribeAcls, OK),
        (bob, Op::DescribeAcls, CLUSTER_DENIED),
        // Describe on the cluster is not Alter.
        (alice, Op::CreateAcls("elsewhere-{p}"), CLUSTER_DENIED),
        (admin_who, Op::CreateAcls("elsewhere-{p}"), OK),
    ];

    let mut grpc = Vec::new();
    for (who, op, _) in table {
        grpc.push(over_grpc(&s, *who, *op).await);
    }
    let cases: Vec<Value> = table
        .iter()
        .enumerate()
        .map(|(i, (who, op, _))| kafka_case(&s, &i.to_string(), *who, *op))
        .collect();
    let kafka = kafka_cases(&s.broker.bootstrap(), &cases);

    let mut report = String::new();
    let mut wrong = 0;
    for (i, (who, op, expected)) in table.iter().enumerate() {
        let k = &kafka[&i.to_string()];
        let kafka_outcome = k["outcome"].as_str().unwrap();
        let ok = grpc[i] == *expected && kafka_outcome == *expected;
        wrong += usize::from(!ok);
        report += &format!(
            "{}{:>9} {:<40} expected {expected:<28} grpc {:<28} kafka {kafka_outcome} {}\n",
            if ok { "  " } else { "✗ " },
            who.to_string(),
            format!("{op:?}"),
            grpc[i],
            if ok {
                ""
            } else {
                k["detail"].as_str().unwrap_or("")
            },
        );
    }
    assert_eq!(
        wrong,
        0,
        "{wrong} of {} cases differ:\n{report}",
        table.len()
    );
    eprintln!("{} cases, each over gRPC and Kafka:\n{report}", table.len());

    // Refused produces wrote nothing: orders has the first record plus
    // alice's two, audit bob's two.
    let consumer = Consumer::connect(s.grpc(admin_who), ConsumerConfig::default())
        .await
        .unwrap();
    assert_eq!(
        consumer
            .end_offsets(&[("orders", 0), ("audit", 0)])
            .await
            .unwrap(),
        [3, 2]
    );
    // The allowed creations and deletions happened, the refused did not.
    let mut topics: Vec<String> = admin
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    topics.sort();
    assert_eq!(
        topics,
        ["alice-new-grpc", "alice-new-kafka", "audit", "orders"]
    );
}

/// confluent-kafka's AdminClient on Runnel's ACLs: a binding created over
/// Kafka is described (exact and MATCH filters), lets a produce through,
/// shows up over gRPC and in `runnel acl list` (with Kafka's cluster name
/// mapped to Runnel's), and once deleted is gone everywhere and the
/// produce is refused again. One made over gRPC is seen over Kafka.
/// Bindings Runnel cannot hold are refused saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_acl_apis_share_one_store_with_grpc() {
    let s = Secured::start(Listener::Plaintext, true);
    let bs = s.broker.bootstrap();
    let admin = s.admin().await;
    admin.create_topic("ledger", 1, 1, &[]).await.unwrap();
    let as_admin = s.kafka(Who::Token("admin"));
    let as_carol = s.kafka(Who::Token("carol"));
    let case = |id: &str, mut c: Value, config: &Value| {
        c["id"] = id.into();
        c["config"] = config.clone();
        c
    };
    let write = kafka_binding("TOPIC", "ledger", "LITERAL", "User:carol", "WRITE");
    let cluster = kafka_binding(
        "BROKER",
        "kafka-cluster",
        "LITERAL",
        "User:carol",
        "DESCRIBE",
    );
    let mut on_a_host = write.clone();
    on_a_host["host"] = "10.0.0.1".into();
    let txn = kafka_binding("TRANSACTIONAL_ID", "tx", "LITERAL", "User:carol", "WRITE");
    let filter = |name: Option<&str>, pattern: &str| {
        json!({"restype": "TOPIC", "name": name, "pattern": pattern, "principal": null,
               "host": null, "op": "ANY", "perm": "ANY"})
    };
    let produce = json!({"op": "produce", "topic": "ledger", "count": 1});

    let before = kafka_cases(
        &bs,
        &[
            case("refused", produce.clone(), &as_carol),
            case(
                "create",
                json!({"op": "create_acls", "bindings": [write, cluster, on_a_host, txn]}),
                &as_admin,
            ),
            case("allowed", produce.clone(), &as_carol),
        ],
    );
    assert_outcome(&before, "refused", TOPIC_DENIED);
    let created = before["create"]["results"].as_array().unwrap();
    assert_eq!(created[0]["outcome"], OK, "{created:?}");
    assert_eq!(created[1]["outcome"], OK, "{created:?}");
    for (i, reason) in [(2, "every host"), (3, "resource type")] {
        assert_eq!(created[i]["outcome"], "INVALID_REQUEST", "{created:?}");
        assert!(
            created[i]["detail"].as_str().unwrap().contains(reason),
            "{created:?}"
        );
    }
    assert_outcome(&before, "allowed", OK);

    // The same store over gRPC: exactly the two bindings, the cluster one
    // under Runnel's name.
    let mut seen: Vec<(i32, String, i32)> = admin
        .describe_acls(AclFilter {
            principal: "User:carol".into(),
            ..AclFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.resource_type, b.resource_name, b.operation))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                AclResourceType::Topic as i32,
                "ledger".to_owned(),
                AclOperation::Write as i32
            ),
            (
                AclResourceType::Cluster as i32,
                "runnel-cluster".to_owned(),
                AclOperation::Describe as i32
            ),
        ]
    );
    let cli = Command::new(binary("runnel"))
        .args(["--bootstrap", &bs, "--output", "json", "acl", "list"])
        .env("RUNNEL_TOKEN", token("admin"))
        .output()
        .unwrap();
    assert!(cli.status.success(), "{cli:?}");
    let listed: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let listed = listed.to_string();
    assert!(
        listed.contains("User:carol") && listed.contains("ledger"),
        "{listed}"
    );

    // A prefix rule made over gRPC, seen over Kafka by a MATCH filter on
    // a name it covers and not by a LITERAL one.
    admin
        .create_acls(vec![AclBinding {
            pattern_type: AclPatternType::Prefixed as i32,
            resource_name: "led".into(),
            ..topic_binding("User:carol", "led", AclOperation::Read)
        }])
        .await
        .unwrap();
    let described = kafka_cases(
        &bs,
        &[
            case(
                "literal",
                json!({"op": "describe_acls", "filter": filter(Some("ledger"), "LITERAL")}),
                &as_admin,
            ),
            case(
                "match",
                json!({"op": "describe_acls", "filter": filter(Some("ledger"), "MATCH")}),
                &as_admin,
            ),
            case(
                "match-elsewhere",
                json!({"op": "describe_acls", "filter": filter(Some("payroll"), "MATCH")}),
                &as_admin,
            ),
            case(
                "any",
                json!({"op": "describe_acls", "filter": {"restype": "ANY", "pattern": "ANY",
                       "op": "ANY", "perm": "ANY"}}),
                &as_admin,
            ),
        ],
    );
    let prefixed = kafka_binding("TOPIC", "led", "PREFIXED", "User:carol", "READ");
    let cluster_shown = kafka_binding(
        "BROKER",
        "kafka-cluster",
        "LITERAL",
        "User:carol",
        "DESCRIBE",
    );
    assert_eq!(described["literal"]["bindings"], json!([write]));
    let mut both = vec![write.clone(), prefixed.clone()];
    both.sort_by_key(|b| b.to_string());
    assert_eq!(described["match"]["bindings"], json!(both));
    assert_eq!(described["match-elsewhere"]["bindings"], json!([]));
    let mut all = vec![write.clone(), prefixed.clone(), cluster_shown];
    all.sort_by_key(|b| b.to_string());
    assert_eq!(described["any"]["bindings"], json!(all));

    let after = kafka_cases(
        &bs,
        &[
            case(
                "delete",
                json!({"op": "delete_acls", "filters": [{"restype": "TOPIC", "name": "ledger",
                       "pattern": "LITERAL", "principal": "User:carol", "host": "*",
                       "op": "WRITE", "perm": "ALLOW"}]}),
                &as_admin,
            ),
            case(
                "gone",
                json!({"op": "describe_acls", "filter": filter(Some("ledger"), "MATCH")}),
                &as_admin,
            ),
            case("refused-again", produce, &as_carol),
        ],
    );
    assert_eq!(after["delete"]["deleted"], json!([[write]]));
    assert_eq!(after["gone"]["bindings"], json!([prefixed]));
    assert_outcome(&after, "refused-again", TOPIC_DENIED);
    let left: Vec<String> = admin
        .describe_acls(AclFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.resource_name)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&"ledger".to_owned()), "{left:?}");
}
