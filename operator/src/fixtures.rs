//! Test fixtures: a mock Kubernetes API server (kube-rs's `tower-test`
//! pattern, as in controller-rs) that lets a scenario test answer, in order,
//! each request a reconciler makes and assert its method, path and body.

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::Value;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The API server side of a mock [`Client`].
pub struct MockApi(Handle);

/// One request the reconciler made, waiting for its answer.
pub struct Call {
    pub method: Method,
    /// Path and query, e.g. `/apis/runnel.dev/v1alpha1/namespaces/ns/topics/a?…`.
    pub uri: String,
    /// The request body as JSON (`Value::Null` when empty).
    pub body: Value,
    send: tower_test::mock::SendResponse<Response<Body>>,
}

impl MockApi {
    /// A client whose every request comes out of the returned [`MockApi`].
    pub fn new() -> (Client, MockApi) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(service, "default"), MockApi(handle))
    }

    /// The next request; panics if none comes within 5 s (the reconciler
    /// stopped making calls the test expected).
    pub async fn next(&mut self) -> Call {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), self.0.next_request());
        let (request, send) = next
            .await
            .expect("the reconciler made no further API request within 5 s")
            .expect("the client was dropped");
        let method = request.method().clone();
        let uri = request.uri().to_string();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("request body is JSON")
        };
        Call {
            method,
            uri,
            body,
            send,
        }
    }

    /// The next request, asserted to be `method` on a path starting with
    /// `path` (query ignored).
    pub async fn expect(&mut self, method: Method, path: &str) -> Call {
        let call = self.next().await;
        assert_eq!(call.method, method, "method of {}", call.uri);
        assert!(
            call.path() == path,
            "expected {method} {path}, got {} {}",
            call.method,
            call.uri
        );
        call
    }

    /// Asserts that no request arrives within `ms` milliseconds (the
    /// reconciler is done).
    pub async fn expect_silence(&mut self, ms: u64) {
        let next =
            tokio::time::timeout(std::time::Duration::from_millis(ms), self.0.next_request()).await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }
}

impl Call {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    /// The query string.
    pub fn query(&self) -> &str {
        self.uri.split_once('?').map(|(_, q)| q).unwrap_or_default()
    }

    /// Answer 200 with `body`.
    pub fn ok(self, body: Value) {
        self.respond(StatusCode::OK, body);
    }

    /// Answer 404 the way the API server does.
    pub fn not_found(self) {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "not found", "reason": "NotFound", "code": 404
        });
        self.respond(StatusCode::NOT_FOUND, body);
    }

    /// Answer 409 Conflict (stale resourceVersion).
    pub fn conflict(self) {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "the object has been modified", "reason": "Conflict", "code": 409
        });
        self.respond(StatusCode::CONFLICT, body);
    }

    /// Answer 200 with the request's own body (what an apply or replace
    /// returns, near enough for the reconcilers).
    pub fn echo(self) {
        let body = self.body.clone();
        self.ok(body);
    }

    /// Answer with any status and body.
    pub fn respond(self, status: StatusCode, body: Value) {
        let bytes = serde_json::to_vec(&body).expect("JSON");
        let response = Response::builder()
            .status(status)
            .body(Body::from(bytes))
            .expect("response");
        self.send.send_response(response);
    }
}
