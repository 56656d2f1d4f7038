//! The real `runnel-operator` binary against a small fake Kubernetes API
//! server (plain HTTP on loopback, named in a kubeconfig): it must take the
//! leader Lease, start a watch on every kind it reconciles, report
//! `/readyz` as leader and serve `/metrics`, and on SIGTERM stop cleanly and
//! hand the Lease back. (No real API server can run on these machines; the
//! reconcilers themselves are tested in the operator crate.)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use runnel_tests::{binary, http_get};
use serde_json::{Value, json};

#[derive(Default)]
struct FakeKube {
    /// "METHOD path?query" of every request.
    log: Vec<String>,
    leases: BTreeMap<String, Value>,
}

type Shared = Arc<Mutex<FakeKube>>;

async fn handle(State(kube): State<Shared>, request: Request) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let body: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let mut kube = kube.lock().unwrap();
    kube.log.push(format!("{method} {path}?{query}"));
    if path.contains("/leases") {
        return lease(&mut kube, &method, &path, &body);
    }
    if method == Method::GET && query.contains("watch=true") {
        // A watch that stays open and quiet, like an idle API server's.
        return Response::new(Body::from_stream(futures::stream::pending::<
            Result<Bytes, std::io::Error>,
        >()));
    }
    if method == Method::GET {
        // An empty list of whatever was asked for.
        return json_response(
            StatusCode::OK,
            json!({"metadata": {"resourceVersion": "1"}, "items": []}),
        );
    }
    json_response(
        StatusCode::CREATED,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

fn lease(kube: &mut FakeKube, method: &Method, path: &str, body: &[u8]) -> Response {
    let name = path.rsplit('/').next().unwrap_or_default().to_owned();
    match *method {
        Method::GET => match kube.leases.get(&name) {
            Some(lease) => json_response(StatusCode::OK, lease.clone()),
            None => json_response(
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
            ),
        },
        Method::POST | Method::PUT => {
            let mut lease: Value = serde_json::from_slice(body).unwrap();
            let lease_name = lease["metadata"]["name"].as_str().unwrap().to_owned();
            lease["metadata"]["resourceVersion"] = json!(kube.log.len().to_string());
            kube.leases.insert(lease_name, lease.clone());
            json_response(
                if *method == Method::POST {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                lease,
            )
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

fn json_response(status: StatusCode, value: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_leads_watches_serves_health_and_hands_back_the_lease() {
    let kube: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let app = Router::new().fallback(handle).with_state(kube.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters: [{{name: fake, cluster: {{server: 'http://{api}'}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: ops}}}}]\n"
        ),
    )
    .unwrap();
    let http = free_port();
    let mut operator = Command::new(binary("runnel-operator"))
        .args([
            "--http-listen",
            &http.to_string(),
            "--lease-namespace",
            "ops",
        ])
        .args(["--identity", "operator-0", "--lease-duration", "3s"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runnel-operator binary (cargo build --workspace --bins)");

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, body)) = http_get(http, "/readyz")
            && body.contains("leader")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "operator never became ready as leader"
        );
        assert!(operator.try_wait().unwrap().is_none(), "operator exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lease = kube.lock().unwrap().leases["runnel-operator"].clone();
    assert_eq!(lease["spec"]["holderIdentity"], "operator-0");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 3);

    // Every kind gets watched (a list first, then a watch).
    let deadline = Instant::now() + Duration::from_secs(20);
    for resource in [
        "/apis/runnel.dev/v1alpha1/clusters",
        "/apis/runnel.dev/v1alpha1/topics",
        "/apis/runnel.dev/v1alpha1/consumergroups",
        "/apis/apps/v1/statefulsets",
    ] {
        loop {
            let seen = kube
                .lock()
                .unwrap()
                .log
                .iter()
                .any(|l| l.starts_with(&format!("GET {resource}?")));
            if seen {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no watch on {resource}: {:?}",
                kube.lock().unwrap().log
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (code, metrics) = http_get(http, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("runnel_operator_reconciles"), "{metrics}");
    assert_eq!(http_get(http, "/healthz").unwrap().0, 200);

    kill(Pid::from_raw(operator.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = operator.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "operator did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    let lease = kube.lock().unwrap().leases["runnel-operator"].clone();
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "lease kept: {lease}"
    );
}
