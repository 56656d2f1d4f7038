//! Shared by the reconcilers' scenario tests: objects as the API server
//! returns them, a context over the mock API server, a driver that answers
//! the Events and status patch a reconcile ends with, a listener that proves
//! no broker was called, and a real Runnel cluster for the broker side.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::Client;
use runnel_client::{Admin, ClientConfig};
use runnel_tests::cluster::TestCluster;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::crd::topic::TOPIC_FINALIZER;
use crate::fixtures::{Call, MockApi};
use crate::metrics::Metrics;
use crate::{Connector, Context, OperatorConfig};

pub const NS: &str = "ns";
pub const CLUSTER: &str = "main";
/// Creation time of the objects [`object`] builds.
pub const CREATED: &str = "2024-05-01T10:00:00Z";

/// A context whose Kubernetes requests come out of `MockApi`.
pub fn context(client: Client, connector: Connector) -> Arc<Context> {
    let config = OperatorConfig {
        resync: Duration::from_secs(300),
        ..OperatorConfig::default()
    };
    Arc::new(Context::new(
        client,
        config,
        Arc::new(Metrics::default()),
        connector,
    ))
}

/// `/apis/runnel.dev/v1alpha1/namespaces/ns/<plural>[/<name>]`.
pub fn path(plural: &str, name: Option<&str>) -> String {
    let base = format!("/apis/runnel.dev/v1alpha1/namespaces/{NS}/{plural}");
    match name {
        Some(name) => format!("{base}/{name}"),
        None => base,
    }
}

/// A stored `runnel.dev` object of `kind` with `spec`: uid, generation 1,
/// created at [`CREATED`].
pub fn object(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "runnel.dev/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": name, "namespace": NS, "uid": format!("uid-{name}"),
            "generation": 1, "resourceVersion": "1", "creationTimestamp": CREATED,
        },
        "spec": spec,
    })
}

/// A Topic on [`CLUSTER`] that already has its finalizer (the common case:
/// every pass after the first).
pub fn topic(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["cluster"] = json!(CLUSTER);
    let mut topic = object("Topic", name, spec);
    topic["metadata"]["finalizers"] = json!([TOPIC_FINALIZER]);
    topic
}

/// `value` as the typed object.
pub fn typed<K: serde::de::DeserializeOwned>(value: &Value) -> Arc<K> {
    Arc::new(serde_json::from_value(value.clone()).expect("a valid object"))
}

/// The Cluster the Topics and ConsumerGroups point at.
pub fn cluster() -> Value {
    object("Cluster", CLUSTER, json!({"replicas": 3}))
}

/// A list response of `kind`.
pub fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({
        "apiVersion": "runnel.dev/v1alpha1", "kind": format!("{kind}List"),
        "metadata": {"resourceVersion": "1"}, "items": items,
    })
}

/// What a reconcile wrote after its lookups.
#[derive(Debug, Default)]
pub struct Written {
    /// The `status` of the server-side apply, if there was one.
    pub status: Option<Value>,
    /// Reasons of the Events published, in order.
    pub events: Vec<String>,
}

impl Written {
    /// The status, which the test expected to be written.
    pub fn status(&self) -> &Value {
        self.status.as_ref().expect("the reconcile wrote no status")
    }

    /// `reason` of the status condition `type_`.
    pub fn condition(&self, type_: &str) -> (&str, &str, &str) {
        condition(self.status(), type_)
    }
}

/// `(status, reason, message)` of condition `type_` in `status`.
pub fn condition<'a>(status: &'a Value, type_: &str) -> (&'a str, &'a str, &'a str) {
    let c = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"));
    (
        c["status"].as_str().unwrap(),
        c["reason"].as_str().unwrap(),
        c["message"].as_str().unwrap(),
    )
}

/// Answer Event creations and status applies until the reconcile `task`
/// of `object` returns; any other request fails the test. The status apply
/// must be a forced server-side apply by the operator's field manager.
pub async fn finish<T>(api: &mut MockApi, task: JoinHandle<T>, object: &Value) -> (T, Written) {
    let mut task = std::pin::pin!(task);
    let mut written = Written::default();
    loop {
        tokio::select! {
            biased;
            done = &mut task => return (done.expect("the reconcile panicked"), written),
            call = api.next() => answer(call, object, &mut written),
        }
    }
}

fn answer(call: Call, object: &Value, written: &mut Written) {
    let path = call.path().to_owned();
    // A repeated event (same object, reason and note) becomes a PATCH of
    // the first one's series; the body is the whole event either way.
    let event_patch = call.method == Method::PATCH && path.contains("/events/");
    if (call.method == Method::POST && path.ends_with("/events")) || event_patch {
        written
            .events
            .push(call.body["reason"].as_str().unwrap_or_default().to_owned());
        return call.echo();
    }
    if call.method == Method::PATCH && path.ends_with("/status") {
        let query = call.query();
        assert!(
            query.contains("fieldManager=runnel-operator") && query.contains("force=true"),
            "status must be a forced apply by runnel-operator: {query}"
        );
        assert!(
            written.status.is_none(),
            "status written twice in one reconcile"
        );
        written.status = Some(call.body["status"].clone());
        // The API server answers with the whole object.
        let mut updated = object.clone();
        updated["status"] = call.body["status"].clone();
        return call.ok(updated);
    }
    panic!("unexpected request {} {}", call.method, call.uri);
}

/// Answer the Topic list of the conflict check with `topics`.
pub async fn answer_topic_list(api: &mut MockApi, topics: &[&Value]) {
    let items = topics.iter().map(|t| (*t).clone()).collect();
    api.expect(Method::GET, &path("topics", None))
        .await
        .ok(list("Topic", items));
}

/// Answer the Cluster lookup with [`cluster`].
pub async fn answer_cluster(api: &mut MockApi) {
    api.expect(Method::GET, &path("clusters", Some(CLUSTER)))
        .await
        .ok(cluster());
}

/// Answer the Cluster lookup with 404.
pub async fn answer_no_cluster(api: &mut MockApi) {
    api.expect(Method::GET, &path("clusters", Some(CLUSTER)))
        .await
        .not_found();
}

/// A loopback port that counts as a cluster's brokers: a test that must
/// not reach the brokers points the [`Connector`] here and then calls
/// [`NoBrokers::assert_untouched`].
pub struct NoBrokers(TcpListener);

impl NoBrokers {
    pub async fn bind() -> Self {
        NoBrokers(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
    }

    pub fn connector(&self) -> Connector {
        Connector::fixed(self.0.local_addr().expect("address").to_string())
    }

    /// Nobody connected.
    pub async fn assert_untouched(&self) {
        let accepted = tokio::time::timeout(Duration::from_millis(50), self.0.accept()).await;
        assert!(accepted.is_err(), "the reconcile connected to the brokers");
    }
}

/// etcd and three real brokers, all registered.
pub async fn three_brokers() -> (TestCluster, Admin) {
    let cluster = tokio::task::spawn_blocking(|| TestCluster::start(3, &[]))
        .await
        .expect("start task")
        .expect("starting etcd and 3 brokers (built? cargo build -p runnel-broker --bins)");
    let admin = Admin::connect(ClientConfig::new(&cluster.bootstrap()).expect("bootstrap"))
        .await
        .expect("admin client");
    let admin_ref = &admin;
    cluster
        .wait_for(
            "3 registered brokers",
            Duration::from_secs(20),
            || async move {
                let metadata = admin_ref.metadata(&[]).await.ok()?;
                (metadata.brokers.len() == 3).then_some(())
            },
        )
        .await
        .expect("brokers registered");
    (cluster, admin)
}
