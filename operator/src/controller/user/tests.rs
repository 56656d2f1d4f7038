//! User reconciler scenarios against a store-backed mock API server
//! ([`FakeApi`]) and a real broker that runs with exactly the security
//! settings and files the operator makes for its pods: the Cluster
//! reconciler issues the CA and certificates, the broker is started with the
//! StatefulSet's security environment pointing at those Secrets' files, and
//! the operator reaches it over mutual TLS as a super user. Users then get
//! credentials and ACLs that the real broker enforces.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use runnel_client::{
    AclFilter, Admin, BearerToken, ClientConfig, ErrorCode, Producer, ProducerConfig,
    ProducerRecord, TlsConfig,
};
use runnel_tests::BrokerProcess;
use serde_json::{Value, json};

use crate::context::{Connector, Context, OperatorConfig};
use crate::crd::user::USER_FINALIZER;
use crate::crd::{Cluster, User};
use crate::fixtures::{FakeApi, MockApi};
use crate::manifests::security::{self as sec, CA_CRT, TLS_CRT, TLS_KEY, TOKENS_FILE};
use crate::metrics::Metrics;

const NS: &str = "ns";
const CLUSTER_PATH: &str = "/apis/runnel.dev/v1alpha1/namespaces/ns/clusters/main";
/// What the brokers' certificate is checked against: the broker here
/// listens on 127.0.0.1, which the certificate does not name.
const SERVER_NAME: &str = "main-client.ns.svc";

fn secret_path(name: &str) -> String {
    format!("/api/v1/namespaces/{NS}/secrets/{name}")
}

fn user_path(name: &str) -> String {
    format!("/apis/runnel.dev/v1alpha1/namespaces/{NS}/users/{name}")
}

fn cluster(security: Value) -> Value {
    json!({
        "apiVersion": "runnel.dev/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "main", "namespace": NS, "uid": "uid-main", "generation": 1},
        "spec": {"replicas": 1, "security": security},
    })
}

/// A stored User that already carries its finalizer.
fn user(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "runnel.dev/v1alpha1", "kind": "User",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                     "generation": 1, "finalizers": [USER_FINALIZER]},
        "spec": spec,
    })
}

fn context(client: kube::Client, bootstrap: &str) -> Arc<Context> {
    Arc::new(Context::new(
        client,
        OperatorConfig {
            broker_image: "runnel/broker:test".into(),
            resync: Duration::from_secs(60),
        },
        Arc::new(Metrics::default()),
        Connector::fixed(bootstrap),
    ))
}

/// `key` of stored Secret `name`.
fn secret_value(api: &FakeApi, name: &str, key: &str) -> Vec<u8> {
    let secret: Secret = serde_json::from_value(
        api.store
            .get(&secret_path(name))
            .unwrap_or_else(|| panic!("no Secret {name}"))
            .clone(),
    )
    .unwrap();
    secret.data.unwrap()[key].0.clone()
}

/// Reconcile the Cluster once.
async fn reconcile_cluster(api: &mut FakeApi, mock: &mut MockApi, ctx: &Arc<Context>) {
    let cluster: Cluster = serde_json::from_value(api.store[CLUSTER_PATH].clone()).unwrap();
    let task = tokio::spawn(crate::controller::cluster::reconcile(
        Arc::new(cluster),
        ctx.clone(),
    ));
    api.serve(mock, task).await.expect("cluster reconcile");
}

/// Reconcile User `name` once; returns its stored status.
async fn reconcile_user(
    api: &mut FakeApi,
    mock: &mut MockApi,
    ctx: &Arc<Context>,
    name: &str,
) -> (Action, Value) {
    let user: User = serde_json::from_value(api.store[&user_path(name)].clone()).unwrap();
    let task = tokio::spawn(super::reconcile(Arc::new(user), ctx.clone()));
    let action = api.serve(mock, task).await.expect("user reconcile");
    (action, api.store[&user_path(name)]["status"].clone())
}

fn ready(status: &Value) -> (&str, &str) {
    let c = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .unwrap_or_else(|| panic!("no Ready condition in {status}"));
    (c["status"].as_str().unwrap(), c["reason"].as_str().unwrap())
}

/// The files the kubelet would project from the Cluster's Secrets into a
/// broker pod, under `dir` instead of `/etc/runnel`.
fn project_secrets(api: &FakeApi, dir: &Path) {
    std::fs::create_dir_all(dir.join("tls")).unwrap();
    std::fs::create_dir_all(dir.join("auth")).unwrap();
    for key in [TLS_CRT, TLS_KEY, CA_CRT] {
        std::fs::write(
            dir.join("tls").join(key),
            secret_value(api, "main-broker-tls", key),
        )
        .unwrap();
    }
    // Renamed into place, like the kubelet's atomic Secret update.
    let tmp = dir.join("auth").join(".tokens.tmp");
    std::fs::write(&tmp, secret_value(api, "main-tokens", TOKENS_FILE)).unwrap();
    std::fs::rename(tmp, dir.join("auth").join(TOKENS_FILE)).unwrap();
}

/// A broker with the StatefulSet's security environment, its
/// `/etc/runnel` paths moved under `dir`.
fn broker(api: &FakeApi, dir: &Path) -> BrokerProcess {
    let cluster: Cluster = serde_json::from_value(api.store[CLUSTER_PATH].clone()).unwrap();
    let env: Vec<(String, String)> =
        sec::broker_env(cluster.spec.security.as_ref().unwrap(), &cluster)
            .into_iter()
            .map(|e| {
                let value = e
                    .value
                    .unwrap_or_default()
                    .replace("/etc/runnel", dir.to_str().unwrap());
                (e.name, value)
            })
            .chain([("RUNNEL_SSL_RELOAD_INTERVAL_MS".to_owned(), "200".to_owned())])
            .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    BrokerProcess::start_with_env(&dir.join("data"), &[], &env).unwrap()
}

fn user_client(broker: &BrokerProcess, tls: TlsConfig, token: Option<String>) -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(5),
        tls: Some(TlsConfig {
            server_name: Some(SERVER_NAME.into()),
            ..tls
        }),
        token: token.map(BearerToken::new),
        ..ClientConfig::new(&broker.bootstrap()).unwrap()
    }
}

async fn produce(config: &ClientConfig, topic: &str) -> Result<(), runnel_client::Error> {
    let producer = Producer::connect(config.clone(), ProducerConfig::default()).await?;
    let result = match producer.send(ProducerRecord::new(topic, "hello")).await {
        Ok(ack) => ack.await.map(|_| ()),
        Err(e) => Err(e),
    };
    producer.close().await;
    result
}

/// Refused by the ACLs: the topic, or (with no Write anywhere) the
/// idempotent producer's InitProducerId, as in Kafka (KIP-679).
fn denied(result: Result<(), runnel_client::Error>) -> bool {
    matches!(
        result.as_ref().err().and_then(|e| e.code()),
        Some(ErrorCode::TopicAuthorizationFailed | ErrorCode::ClusterAuthorizationFailed)
    )
}

/// The whole path: the Cluster reconciler issues CA and certificates; a
/// broker runs on them with mutual TLS required and ACLs on; a TLS User
/// gets a client certificate and ACLs the broker enforces; an ACL removed
/// from the spec is removed from the broker; deleting the User removes its
/// ACLs; a User may not take the brokers' name; a User pointing at a
/// Cluster without TLS is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_user_gets_a_certificate_and_acls_the_broker_enforces() {
    let dir = tempfile::tempdir().unwrap();
    let (client, mut mock) = MockApi::new();
    let mut api = FakeApi::new();
    api.insert(
        CLUSTER_PATH,
        cluster(json!({"tls": {"clientAuth": "Required"}, "authorization": {}})),
    );
    // The Cluster reconciler makes the Secrets (no broker is up yet).
    reconcile_cluster(&mut api, &mut mock, &context(client.clone(), "127.0.0.1:1")).await;
    for name in [
        "main-cluster-ca",
        "main-cluster-ca-cert",
        "main-broker-tls",
        "main-operator-tls",
        "main-tokens",
    ] {
        assert!(
            api.store.contains_key(&secret_path(name)),
            "no Secret {name}"
        );
    }
    let sts = &api.store["/apis/apps/v1/namespaces/ns/statefulsets/main-broker"];
    let volumes = sts["spec"]["template"]["spec"]["volumes"].to_string();
    assert!(volumes.contains("main-broker-tls") && volumes.contains("main-tokens"));

    project_secrets(&api, dir.path());
    let broker = broker(&api, dir.path());
    let ctx = context(client, &broker.bootstrap());

    // The operator reaches the broker over mTLS as a super user.
    let cluster: Cluster = serde_json::from_value(api.store[CLUSTER_PATH].clone()).unwrap();
    let admin_task = {
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.connector.admin(&ctx.client, &cluster).await })
    };
    let admin: Admin = api.serve(&mut mock, admin_task).await.unwrap();
    for topic in ["orders", "payments"] {
        admin.create_topic(topic, 1, 1, &[]).await.unwrap();
    }

    // A TLS user with the right to write `orders`.
    api.insert(
        &user_path("orders-app"),
        user(
            "orders-app",
            json!({"cluster": "main", "authentication": {"type": "Tls"}, "acls": [
                {"resource": {"type": "Topic", "name": "orders"}, "operations": ["Write", "Describe"]},
                {"resource": {"type": "Group", "name": "orders-", "patternType": "Prefixed"}, "operations": ["Read"]},
            ]}),
        ),
    );
    let (_, status) = reconcile_user(&mut api, &mut mock, &ctx, "orders-app").await;
    assert_eq!(ready(&status), ("True", "Applied"), "{status}");
    assert_eq!(status["principal"], "User:orders-app");
    assert_eq!(status["secret"], "orders-app");
    assert_eq!(status["acls"], 3);
    assert!(status["certificateExpires"].is_string(), "{status}");
    let owner = &api.store[&secret_path("orders-app")]["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "User");
    let cert = String::from_utf8(secret_value(&api, "orders-app", TLS_CRT)).unwrap();
    let info = crate::certs::inspect(&cert).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("orders-app"));

    // The user's Secret is all a client needs.
    let tls = TlsConfig::from_pem(
        secret_value(&api, "orders-app", CA_CRT),
        Some((
            secret_value(&api, "orders-app", TLS_CRT),
            secret_value(&api, "orders-app", TLS_KEY),
        )),
    );
    let as_user = user_client(&broker, tls.clone(), None);
    produce(&as_user, "orders").await.unwrap();
    assert!(denied(produce(&as_user, "payments").await));
    // Without a certificate the handshake is refused (clientAuth Required).
    let anonymous = user_client(
        &broker,
        TlsConfig::from_pem(secret_value(&api, "orders-app", CA_CRT), None),
        None,
    );
    assert!(produce(&anonymous, "orders").await.is_err());

    // A second pass changes nothing on the brokers and keeps the certificate.
    let (_, status) = reconcile_user(&mut api, &mut mock, &ctx, "orders-app").await;
    assert_eq!(ready(&status), ("True", "Applied"));
    assert_eq!(secret_value(&api, "orders-app", TLS_CRT), cert.as_bytes());

    // An ACL added by hand for the principal is removed; Write leaves the
    // spec and the broker.
    admin
        .create_acls(vec![runnel_client::AclBinding {
            resource_type: runnel_client::AclResourceType::Topic as i32,
            resource_name: "payments".into(),
            pattern_type: runnel_client::AclPatternType::Literal as i32,
            principal: "User:orders-app".into(),
            operation: runnel_client::AclOperation::Write as i32,
            permission: runnel_client::AclPermission::Allow as i32,
        }])
        .await
        .unwrap();
    let path = user_path("orders-app");
    api.store.get_mut(&path).unwrap()["spec"]["acls"][0]["operations"] = json!(["Describe"]);
    let (_, status) = reconcile_user(&mut api, &mut mock, &ctx, "orders-app").await;
    assert_eq!(status["acls"], 2, "{status}");
    let now = admin
        .describe_acls(AclFilter {
            principal: "User:orders-app".into(),
            ..AclFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(now.len(), 2, "{now:?}");
    let result = produce(&as_user, "orders").await;
    assert!(denied(result.clone()), "{result:?}");
    assert!(denied(produce(&as_user, "payments").await));

    // Deleting the User removes every ACL of its principal.
    api.store.get_mut(&path).unwrap()["metadata"]["deletionTimestamp"] =
        json!("2024-05-01T10:00:00Z");
    reconcile_user(&mut api, &mut mock, &ctx, "orders-app").await;
    let left = admin
        .describe_acls(AclFilter {
            principal: "User:orders-app".into(),
            ..AclFilter::default()
        })
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");

    // Reserved names and missing Cluster features are refused, changing nothing.
    api.insert(
        &user_path("main-broker"),
        user(
            "main-broker",
            json!({"cluster": "main", "authentication": {"type": "Tls"}}),
        ),
    );
    let (_, status) = reconcile_user(&mut api, &mut mock, &ctx, "main-broker").await;
    assert_eq!(ready(&status), ("False", "InvalidSpec"), "{status}");
    assert!(!api.store.contains_key(&secret_path("main-broker")));
    api.insert(
        &user_path("robot"),
        user(
            "robot",
            json!({"cluster": "main", "authentication": {"type": "ServiceAccount", "serviceAccount": "robot"}}),
        ),
    );
    let (_, status) = reconcile_user(&mut api, &mut mock, &ctx, "robot").await;
    assert_eq!(ready(&status), ("False", "InvalidSpec"), "{status}");
    assert!(
        ready_message(&status).contains("serviceAccountTokens"),
        "{status}"
    );
    drop(broker);
}

fn ready_message(status: &Value) -> String {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A Token user: the operator generates its token, the Cluster reconciler
/// writes it into the brokers' token file, and once that file reaches the
/// broker (renamed into place like a Secret volume update, no restart) the
/// token is the user's identity there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_user_reaches_the_broker_through_the_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let (client, mut mock) = MockApi::new();
    let mut api = FakeApi::new();
    api.insert(
        CLUSTER_PATH,
        cluster(json!({"tls": {"clientAuth": "Requested"}, "authorization": {}})),
    );
    reconcile_cluster(&mut api, &mut mock, &context(client.clone(), "127.0.0.1:1")).await;
    project_secrets(&api, dir.path());
    let broker = broker(&api, dir.path());
    let ctx = context(client, &broker.bootstrap());

    api.insert(
        &user_path("reporting"),
        user(
            "reporting",
            json!({"cluster": "main", "authentication": {"type": "Token"}, "acls": [
                {"resource": {"type": "Topic", "name": "*"}, "operations": ["Write"]},
            ]}),
        ),
    );
    let (_, status) = reconcile_user(&mut api, &mut mock, &ctx, "reporting").await;
    assert_eq!(ready(&status), ("True", "Applied"), "{status}");
    let token = String::from_utf8(secret_value(&api, "reporting", super::TOKEN_KEY)).unwrap();
    assert_eq!(token.len(), 64);

    let cluster: Cluster = serde_json::from_value(api.store[CLUSTER_PATH].clone()).unwrap();
    let admin_task = {
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.connector.admin(&ctx.client, &cluster).await })
    };
    let admin: Admin = api.serve(&mut mock, admin_task).await.unwrap();
    admin.create_topic("metrics", 1, 1, &[]).await.unwrap();

    let ca_only = TlsConfig::from_pem(secret_value(&api, "main-cluster-ca-cert", CA_CRT), None);
    let as_user = user_client(&broker, ca_only.clone(), Some(token.clone()));
    // Not in the broker's token file yet.
    let before = produce(&as_user, "metrics").await;
    assert!(
        matches!(
            before.as_ref().err().and_then(|e| e.code()),
            Some(ErrorCode::SaslAuthenticationFailed)
        ),
        "{before:?}"
    );

    // The Cluster reconciler puts the token into `<c>-tokens`; the kubelet
    // (here: project_secrets) updates the file; the broker re-reads it.
    reconcile_cluster(&mut api, &mut mock, &ctx).await;
    let file = String::from_utf8(secret_value(&api, "main-tokens", TOKENS_FILE)).unwrap();
    assert!(file.contains(&format!("{token},reporting")), "{file}");
    project_secrets(&api, dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match produce(&as_user, "metrics").await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the token never worked: {e}"),
        }
    }
    // Anonymous (no token, no certificate) is still refused by the ACLs.
    let anonymous = user_client(&broker, ca_only, None);
    assert!(denied(produce(&anonymous, "metrics").await));
    drop(broker);
}
