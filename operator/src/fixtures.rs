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

/// A tiny in-memory API server on top of [`MockApi`] for reconcilers that
/// make many requests: GET answers from the store (404 when absent), apply
/// PATCHes store the body (merged over what is there), DELETE removes, LIST
/// answers the stored objects under the path. Every request is logged as
/// `"METHOD path"` so a test can assert exactly what was written.
pub struct FakeApi {
    pub store: std::collections::BTreeMap<String, Value>,
    pub log: Vec<String>,
    /// Path prefixes of API groups this server does not serve (404 for
    /// every request), e.g. `/apis/cert-manager.io/`.
    pub unserved: Vec<String>,
}

impl FakeApi {
    pub fn new() -> Self {
        FakeApi {
            store: Default::default(),
            log: Vec::new(),
            unserved: Vec::new(),
        }
    }

    /// Put an object at its path (e.g. `/apis/apps/v1/namespaces/ns/statefulsets/x`).
    pub fn insert(&mut self, path: &str, object: Value) {
        self.store.insert(path.to_owned(), object);
    }

    /// Serve `mock` until `task` finishes; returns its output.
    pub async fn serve<T>(&mut self, mock: &mut MockApi, task: tokio::task::JoinHandle<T>) -> T {
        tokio::pin!(task);
        loop {
            tokio::select! {
                output = &mut task => return output.expect("reconcile task panicked"),
                request = mock.0.next_request() => {
                    let (request, send) = request.expect("client dropped");
                    let method = request.method().clone();
                    let uri = request.uri().to_string();
                    let bytes = request.into_body().collect_bytes().await.expect("body");
                    let body: Value = if bytes.is_empty() { Value::Null } else {
                        serde_json::from_slice(&bytes).expect("JSON body")
                    };
                    let call = Call { method, uri, body, send };
                    self.answer(call);
                }
            }
        }
    }

    /// The logged requests that write (everything but GET/LIST).
    pub fn writes(&self) -> Vec<&str> {
        self.log
            .iter()
            .map(String::as_str)
            .filter(|l| !l.starts_with("GET "))
            .collect()
    }

    fn answer(&mut self, call: Call) {
        let path = call.path().to_owned();
        // The status subresource lives on the object itself.
        let (object_path, status) = match path.strip_suffix("/status") {
            Some(p) => (p.to_owned(), true),
            None => (path.clone(), false),
        };
        self.log.push(format!("{} {}", call.method, path));
        if self.unserved.iter().any(|p| path.starts_with(p.as_str())) {
            call.not_found();
            return;
        }
        match call.method {
            Method::GET => {
                if let Some(object) = self.store.get(&object_path) {
                    let object = object.clone();
                    call.ok(object);
                } else if let Some(items) = self.list(&object_path) {
                    call.ok(
                        serde_json::json!({"metadata": {"resourceVersion": "1"}, "items": items}),
                    );
                } else {
                    call.not_found();
                }
            }
            Method::PATCH => {
                let mut merged = self.store.get(&object_path).cloned().unwrap_or(Value::Null);
                if status {
                    if merged.is_null() {
                        call.not_found();
                        return;
                    }
                    merged["status"] = call.body["status"].clone();
                } else if let Value::Array(ops) = &call.body {
                    json_patch(&mut merged, ops);
                } else {
                    merge(&mut merged, &call.body);
                }
                self.store.insert(object_path, merged.clone());
                call.ok(merged);
            }
            Method::DELETE => match self.store.remove(&object_path) {
                Some(object) => call.ok(object),
                None => call.not_found(),
            },
            _ => call.respond(StatusCode::METHOD_NOT_ALLOWED, Value::Null),
        }
    }

    /// Objects stored directly under a collection path, if any.
    fn list(&self, collection: &str) -> Option<Vec<Value>> {
        let prefix = format!("{collection}/");
        let items: Vec<Value> = self
            .store
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
            .map(|(_, v)| v.clone())
            .collect();
        // /api/v1/namespaces/<ns>/<plural> or
        // /apis/<group>/<version>/namespaces/<ns>/<plural>.
        let segments: Vec<&str> = collection.split('/').filter(|s| !s.is_empty()).collect();
        let is_collection = match segments.first() {
            Some(&"api") => segments.len() == 5,
            Some(&"apis") => segments.len() == 6,
            _ => false,
        };
        is_collection.then_some(items)
    }
}

impl Default for FakeApi {
    fn default() -> Self {
        Self::new()
    }
}

/// A JSON Patch (RFC 6902) as kube-runtime's finalizer helper sends it:
/// `test` is taken as passing; `add`/`replace`/`remove` on object keys and
/// array indexes.
fn json_patch(into: &mut Value, ops: &[Value]) {
    for op in ops {
        let path = op["path"].as_str().unwrap_or_default();
        let (parent, last) = path.rsplit_once('/').unwrap_or(("", path));
        let Some(target) = into.pointer_mut(parent) else {
            continue;
        };
        match (op["op"].as_str(), target) {
            (Some("remove"), Value::Object(map)) => {
                map.remove(last);
            }
            (Some("remove"), Value::Array(items)) => {
                if let Ok(i) = last.parse::<usize>()
                    && i < items.len()
                {
                    items.remove(i);
                }
            }
            (Some("add" | "replace"), Value::Object(map)) => {
                map.insert(last.to_owned(), op["value"].clone());
            }
            (Some("add" | "replace"), Value::Array(items)) => match last.parse::<usize>() {
                Ok(i) if op["op"] == "replace" && i < items.len() => items[i] = op["value"].clone(),
                Ok(i) if i <= items.len() => items.insert(i, op["value"].clone()),
                _ => items.push(op["value"].clone()),
            },
            _ => {}
        }
    }
}

/// JSON merge: objects merge key by key, anything else replaces.
fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}
