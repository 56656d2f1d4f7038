//! `/healthz`, `/readyz` and Prometheus `/metrics` on the HTTP port.
//!
//! Kept off the gRPC port so probes and scrapers never compete with data
//! traffic and can be exposed separately. Plain HTTP unless
//! `http.ssl.enable`: then HTTPS with the gRPC listener's certificate,
//! rotated with it, and no client certificate asked for (kubelet probes
//! cannot present one; the endpoint carries no record data).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use super::Context;
use super::tls::{self, ReloadingTls};
use crate::metrics::PartitionLabels;
use crate::{Error, Result};

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: every topic is loaded and the broker is not shutting down.
async fn readyz(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    if ctx.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    // Sizes, offsets and replication health are sampled now rather than
    // tracked on every append.
    let (mut leading, mut under_replicated, mut under_min_isr) = (0, 0, 0);
    for state in ctx.replicas.topics() {
        for part in state.partitions.iter().flatten() {
            if part.is_leader() {
                let isr = part.isr().len();
                leading += 1;
                under_replicated += i64::from(isr < part.replicas().len());
                under_min_isr += i64::from(isr < state.config.min_insync_replicas() as usize);
                ctx.metrics
                    .high_watermark
                    .get_or_create(&PartitionLabels {
                        topic: state.name.clone(),
                        partition: part.tp.partition,
                    })
                    .set(part.high_watermark());
            }
            let labels = PartitionLabels {
                topic: state.name.clone(),
                partition: part.tp.partition,
            };
            let log = part.log();
            ctx.metrics
                .log_size
                .get_or_create(&labels)
                .set(log.size_bytes() as i64);
            ctx.metrics
                .log_end_offset
                .get_or_create(&labels)
                .set(log.log_end_offset());
            ctx.metrics
                .log_start_offset
                .get_or_create(&labels)
                .set(log.log_start_offset());
        }
    }
    ctx.metrics.leader_partitions.set(leading);
    ctx.metrics
        .under_replicated_partitions
        .set(under_replicated);
    ctx.metrics.under_min_isr_partitions.set(under_min_isr);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ctx.metrics.encode(),
    )
}

/// Serve the HTTP endpoints until `shutdown` resolves, over TLS when `tls`
/// is given.
pub async fn serve_http(
    ctx: Arc<Context>,
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ctx);
    let served = match tls {
        Some(tls) => {
            tracing::info!("HTTP endpoint speaks TLS (http.ssl.enable)");
            let listener = TlsListener {
                local: listener
                    .local_addr()
                    .map_err(|e| Error::NotAvailable(format!("HTTP listener: {e}")))?,
                handshaken: tls::incoming_http(listener, tls),
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    served.map_err(|e| Error::NotAvailable(format!("HTTP server: {e}")))
}

/// Connections whose TLS handshake is done, for axum.
struct TlsListener {
    local: SocketAddr,
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accepting task ends only when this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
