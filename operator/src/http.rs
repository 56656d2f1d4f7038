//! `/healthz`, `/readyz` and Prometheus `/metrics` of the operator.
//!
//! Ready means "this replica does its job": it leads and its controllers
//! run, or it is a standby waiting for the Lease (a standby is healthy and
//! ready — it must not be restarted or taken out of a Service for waiting).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Shared with the main loop.
#[derive(Debug, Default)]
pub struct Health {
    /// Set once the Kubernetes API answered and the controllers (or the
    /// standby loop) started.
    pub ready: AtomicBool,
    /// This replica holds the Lease.
    pub leading: AtomicBool,
}

struct AppState {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if state.health.ready.load(Ordering::Relaxed) {
        let role = if state.health.leading.load(Ordering::Relaxed) {
            "leader"
        } else {
            "standby"
        };
        (StatusCode::OK, format!("ready ({role})\n"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned())
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Arc::new(AppState { health, metrics }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
