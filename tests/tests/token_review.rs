//! Bearer tokens against a real broker process: Kubernetes ServiceAccount
//! tokens verified by TokenReview (`auth.token.review.enable`), and the
//! static `auth.tokens.file` read again when it changes.
//!
//! No real Kubernetes API server can run on these machines, so the
//! TokenReview tests serve `POST /apis/authentication.k8s.io/v1/tokenreviews`
//! from this process (plain HTTP on loopback, named in a kubeconfig the
//! broker finds through `KUBECONFIG`), answering as kube-apiserver does and
//! counting the reviews.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use runnel_proto::batch::BatchBuilder;
use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::broker_client::BrokerClient;
use runnel_proto::v1::*;
use runnel_tests::{BrokerProcess, binary};
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic::{Code, Status};

const ADMIN: &str = "admin-token-0123456789";
const SA_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.service-account-app";
const SA_USER: &str = "system:serviceaccount:ns:app";
const UNKNOWN_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.forged";

/// The fake API server's state: which tokens it knows (token → user name,
/// audiences), and every TokenReview it was sent.
#[derive(Default)]
struct FakeKube {
    tokens: BTreeMap<String, (String, Vec<String>)>,
    reviews: Vec<Value>,
}

type Shared = Arc<Mutex<FakeKube>>;

impl FakeKube {
    /// The reviews of `token` received so far.
    fn reviews_of(kube: &Shared, token: &str) -> Vec<Value> {
        kube.lock()
            .unwrap()
            .reviews
            .iter()
            .filter(|r| r["spec"]["token"] == token)
            .cloned()
            .collect()
    }
}

/// Answers as kube-apiserver does: 201 with the review's status filled in;
/// a token asked for audiences it is not meant for is not authenticated.
async fn token_review(State(kube): State<Shared>, body: Bytes) -> Response {
    let review: Value = match serde_json::from_slice(&body) {
        Ok(review) => review,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mut kube = kube.lock().unwrap();
    kube.reviews.push(review.clone());
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let wanted: Option<Vec<String>> = review["spec"]["audiences"].as_array().map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    });
    let status = match kube.tokens.get(token) {
        None => json!({
            "authenticated": false,
            "error": "[invalid bearer token, square/go-jose: error in cryptographic primitive]",
        }),
        Some((user, audiences)) => {
            let granted: Vec<&String> = match &wanted {
                Some(wanted) => audiences.iter().filter(|a| wanted.contains(a)).collect(),
                None => audiences.iter().collect(),
            };
            if granted.is_empty() {
                json!({
                    "authenticated": false,
                    "error": format!("[invalid bearer token, token audiences {audiences:?} is invalid for the target audiences {wanted:?}]"),
                })
            } else {
                json!({
                    "authenticated": true,
                    "user": {"username": user, "uid": "0d3c-uid", "groups": ["system:serviceaccounts", "system:authenticated"]},
                    "audiences": granted,
                })
            }
        }
    };
    let answer = json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": review["spec"],
        "status": status,
    });
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        answer.to_string(),
    )
        .into_response()
}

/// Serve the fake API server on a free loopback port; returns its address
/// and the kubeconfig naming it.
async fn fake_api_server(kube: Shared, dir: &Path) -> (std::net::SocketAddr, std::path::PathBuf) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post(token_review),
        )
        .with_state(kube);
    tokio::spawn(async move { axum::serve(listener, app).await });
    (api, kubeconfig(dir, &format!("http://{api}")))
}

fn kubeconfig(dir: &Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters: [{{name: fake, cluster: {{server: '{server}'}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n"
        ),
    )
    .unwrap();
    path
}

/// The environment of a broker that finds the API server through
/// `kubeconfig` only: no in-cluster configuration, whatever this test runs
/// in.
fn kube_env(kubeconfig: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("KUBECONFIG", kubeconfig.to_str().unwrap().to_owned()),
        ("KUBERNETES_SERVICE_HOST", String::new()),
        ("KUBERNETES_SERVICE_PORT", String::new()),
    ]
}

/// A broker with authorization on, `User:admin` (a static token) as the
/// superuser, and TokenReview for other tokens.
fn broker(dir: &Path, kubeconfig: &Path, extra: &[&str]) -> BrokerProcess {
    let tokens = dir.join("tokens.csv");
    std::fs::write(&tokens, format!("{ADMIN},admin\n")).unwrap();
    let mut args = vec![
        "--authorizer-enable",
        "true",
        "--super-users",
        "User:admin",
        "--auth-tokens-file",
        tokens.to_str().unwrap(),
        "--auth-token-review-enable",
        "true",
    ];
    args.extend_from_slice(extra);
    let env = kube_env(kubeconfig);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    BrokerProcess::start_with_env(&dir.join("data"), &args, &env).unwrap()
}

async fn channel(broker: &BrokerProcess) -> Channel {
    Channel::from_shared(broker.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn req<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(Duration::from_secs(20));
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

async fn create_topic(ch: &Channel, name: &str) {
    AdminClient::new(ch.clone())
        .create_topics(req(
            CreateTopicsRequest {
                topics: vec![NewTopic {
                    name: name.into(),
                    partitions: 1,
                    replication_factor: 1,
                    configs: Default::default(),
                }],
                validate_only: false,
            },
            ADMIN,
        ))
        .await
        .unwrap();
}

async fn produce(ch: &Channel, topic: &str, token: &str) -> Result<(), Status> {
    let mut batch = BatchBuilder::new();
    batch.push(1_000, None, Some(b"x"), &[]);
    BrokerClient::new(ch.clone())
        .produce(req(
            ProduceRequest {
                topics: vec![TopicProduceData {
                    topic: topic.into(),
                    partitions: vec![PartitionProduceData {
                        partition: 0,
                        records: batch.build().unwrap().to_vec().into(),
                    }],
                }],
                acks: Acks::Leader as i32,
                timeout_ms: 5_000,
                transactional_id: String::new(),
            },
            token,
        ))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_are_verified_by_token_review_and_cached() {
    let dir = tempfile::tempdir().unwrap();
    let kube: Shared = Arc::default();
    kube.lock().unwrap().tokens.insert(
        SA_TOKEN.into(),
        (SA_USER.into(), vec!["runnel".into(), "other".into()]),
    );
    kube.lock().unwrap().tokens.insert(
        "eyJhbGciOiJSUzI1NiJ9.meant-for-the-api-server".into(),
        (
            "system:serviceaccount:ns:elsewhere".into(),
            vec!["https://kubernetes.default.svc".into()],
        ),
    );
    let (_, kubeconfig) = fake_api_server(kube.clone(), dir.path()).await;
    let broker = broker(
        dir.path(),
        &kubeconfig,
        &["--auth-token-review-audiences", "runnel, runnel-cluster"],
    );
    let ch = channel(&broker).await;
    create_topic(&ch, "orders").await;
    assert!(
        kube.lock().unwrap().reviews.is_empty(),
        "a static token was sent for review"
    );

    // The ServiceAccount is authenticated, and refused without an ACL:
    // the refusal names its principal.
    let denied = produce(&ch, "orders", SA_TOKEN).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(
        denied
            .message()
            .contains(&format!("User:{SA_USER} is not allowed to Write topic")),
        "{denied:?}"
    );
    let reviews = FakeKube::reviews_of(&kube, SA_TOKEN);
    assert_eq!(reviews.len(), 1);
    assert_eq!(
        reviews[0]["spec"]["audiences"],
        json!(["runnel", "runnel-cluster"]),
        "the audiences are passed through"
    );
    assert_eq!(reviews[0]["apiVersion"], "authentication.k8s.io/v1");

    // An ACL for the ServiceAccount's principal (colons and all), made with
    // the CLI, lets it write.
    let out = Command::new(binary("runnel"))
        .args(["--bootstrap", &broker.bootstrap()])
        .args(["--token", ADMIN, "acl", "add", "--allow"])
        .arg(format!("User:{SA_USER}"))
        .args(["--operation", "write", "--topic", "orders"])
        .output()
        .expect("runnel binary (cargo build --bins)");
    assert!(
        out.status.success(),
        "runnel acl add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = produce(&ch, "orders", SA_TOKEN).await {
        assert!(Instant::now() < deadline, "still refused: {e:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    produce(&ch, "orders", SA_TOKEN).await.unwrap();
    assert_eq!(
        FakeKube::reviews_of(&kube, SA_TOKEN).len(),
        1,
        "within auth.token.review.cache.ms the answer is reused"
    );

    // A token the API server does not accept: UNAUTHENTICATED with its
    // reason; the refusal is cached too.
    for _ in 0..2 {
        let refused = produce(&ch, "orders", UNKNOWN_TOKEN).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        assert!(
            refused.message().contains("invalid bearer token"),
            "{refused:?}"
        );
    }
    assert_eq!(FakeKube::reviews_of(&kube, UNKNOWN_TOKEN).len(), 1);

    // A valid token meant for another audience is refused.
    let elsewhere = produce(
        &ch,
        "orders",
        "eyJhbGciOiJSUzI1NiJ9.meant-for-the-api-server",
    )
    .await
    .unwrap_err();
    assert_eq!(elsewhere.code(), Code::Unauthenticated, "{elsewhere:?}");
    assert!(elsewhere.message().contains("audiences"), "{elsewhere:?}");

    // The admin's static token never needed the API server.
    assert_eq!(FakeKube::reviews_of(&kube, ADMIN).len(), 0);
    let (_, metrics) = broker.http_get("/metrics").unwrap();
    assert!(
        metrics.contains("runnel_authentication_failed_total 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_is_unavailable_not_a_bad_token() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let kubeconfig = kubeconfig(dir.path(), &format!("http://{closed}"));
    let broker = broker(dir.path(), &kubeconfig, &[]);
    let ch = channel(&broker).await;

    let status = produce(&ch, "orders", SA_TOKEN).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let message = status.message();
    assert!(
        message.contains("cannot verify the bearer token")
            && message.contains(&closed.to_string())
            && message.contains("cannot be reached"),
        "{message}"
    );
    assert!(!message.contains("not known"), "{message}");
    // Static tokens do not need the API server.
    create_topic(&ch, "orders").await;
    produce(&ch, "orders", ADMIN).await.unwrap();
}

#[tokio::test]
async fn without_token_review_no_kubeconfig_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no-such-kubeconfig");
    let env = kube_env(&nowhere);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The quickstart: no flags, no Kubernetes.
    let broker = BrokerProcess::start_with_env(&dir.path().join("data"), &[], &env).unwrap();
    assert!(broker.is_running());
    drop(broker);

    // Asked for TokenReview without a way to reach the API server: no start.
    let err = BrokerProcess::start_with_env(
        &dir.path().join("data2"),
        &["--auth-token-review-enable", "true"],
        &env,
    )
    .expect_err("the broker started without a Kubernetes API server");
    let err = format!("{err:#}");
    assert!(
        err.contains("auth.token.review.enable") && err.contains("KUBECONFIG"),
        "{err}"
    );
}

/// `auth.tokens.file` replaced the way a Secret volume is (a new file
/// renamed over the old name): the new token works and the removed one is
/// refused, without a restart; a file that does not parse keeps the tokens
/// in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_file_is_read_again_when_it_changes() {
    const OLD: &str = "old-token-0123456789";
    const NEW: &str = "new-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, format!("{OLD},alice\n")).unwrap();
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &[
            "--auth-tokens-file",
            tokens.to_str().unwrap(),
            "--ssl-reload-interval-ms",
            "100",
        ],
    )
    .unwrap();
    let ch = channel(&broker).await;
    list_topics_as(&ch, OLD).await.unwrap();

    let next = dir.path().join("tokens.csv.next");
    std::fs::write(&next, format!("# rotated\n{NEW},alice\n")).unwrap();
    std::fs::rename(&next, &tokens).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = list_topics_as(&ch, NEW).await {
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        assert!(
            Instant::now() < deadline,
            "the new token is not accepted: {e:?}; log: {}",
            broker.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = list_topics_as(&ch, OLD).await.unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated, "{old:?}");

    // A broken file: the tokens in use stay, with a warning.
    std::fs::write(&tokens, "this line has no token column\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !broker
        .log_tail()
        .contains("auth.tokens.file changed but cannot be loaded")
    {
        assert!(
            Instant::now() < deadline,
            "no warning; log: {}",
            broker.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    list_topics_as(&ch, NEW).await.unwrap();
    assert!(broker.is_running());
}

/// Any request that needs authentication and nothing else (no authorizer
/// here): list the topics.
async fn list_topics_as(ch: &Channel, token: &str) -> Result<(), Status> {
    AdminClient::new(ch.clone())
        .list_topics(req(ListTopicsRequest::default(), token))
        .await
        .map(drop)
}
