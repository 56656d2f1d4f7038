//! `runnel-broker`: a Kafka-style broker serving partition logs over gRPC.
//!
//! Start reading at [`Broker`]: [`Broker::open`] loads metadata and logs,
//! [`Broker::serve`] runs the gRPC and HTTP servers until a shutdown future
//! resolves, then flushes and marks the shutdown clean.
//!
//! Modules, bottom up:
//! - [`log`]: segmented append-only partition logs (segments, sparse mmap
//!   indexes, recovery, retention, flushing).
//! - [`meta`]: the etcd-shaped [`meta::MetadataStore`] and its embedded
//!   (redb) implementation; key layout and stored records.
//! - [`topic`]: topic name rules and Kafka-named topic configs.
//! - [`replica`]: hosted partitions (log + leader epoch + high watermark).
//! - [`controller`]: topic creation, alteration and deletion.
//! - [`server`]: gRPC operations (one file each), error → status mapping,
//!   HTTP health and metrics.
//! - [`config`]: flags, env vars and config file.

pub mod config;
pub mod controller;
pub mod error;
pub mod log;
pub mod meta;
pub mod metrics;
pub mod replica;
pub mod server;
pub mod topic;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{BrokerArgs, BrokerConfig};
pub use error::{Error, Result};

use crate::controller::TopicController;
use crate::log::LogManager;
use crate::meta::embedded::EmbeddedStore;
use crate::meta::keys::Keys;
use crate::metrics::Metrics;
use crate::replica::ReplicaManager;
use crate::server::Context;

/// How long shutdown waits for in-flight gRPC requests before closing
/// connections anyway (well under Kubernetes' default 30 s grace period).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A loaded broker, ready to serve.
#[derive(Debug)]
pub struct Broker {
    ctx: Arc<Context>,
    logs: Arc<LogManager>,
}

impl Broker {
    /// Open the data directory: metadata store, partition logs (recovering
    /// them after an unclean stop) and every topic.
    pub async fn open(config: BrokerConfig) -> Result<Broker> {
        let started = Instant::now();
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::io("creating data dir", &config.data_dir, e))?;
        // A data dir without a metadata store is new: nothing to recover.
        let fresh = !config.data_dir.join(meta::embedded::FILE_NAME).exists();
        let store = Arc::new(EmbeddedStore::open(&config.data_dir)?);
        let logs = LogManager::open(&config.data_dir)?;
        if !fresh && !logs.was_clean_shutdown() {
            tracing::warn!(data_dir = %config.data_dir.display(), "last shutdown was not clean; recovering logs");
        }
        let replicas = Arc::new(ReplicaManager::new(
            config.broker_id,
            logs.clone(),
            config.topic_defaults()?,
        ));
        let topics = TopicController::new(
            store,
            Keys::new(&config.cluster),
            replicas.clone(),
            config.num_partitions,
            config.default_replication_factor,
        );
        let loaded = topics.load().await?;
        replicas.delete_stray_logs()?;
        tracing::info!(
            topics = loaded,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "broker loaded"
        );
        let ctx = Arc::new(Context {
            config,
            replicas,
            topics,
            metrics: Metrics::new(),
            // Everything is loaded: ready as soon as the servers accept.
            ready: true.into(),
        });
        Ok(Broker { ctx, logs })
    }

    /// Serve gRPC on `grpc` and HTTP on `http` until `shutdown` resolves;
    /// then stop accepting requests, flush every log and write the
    /// clean-shutdown marker.
    pub async fn serve(
        self,
        grpc: TcpListener,
        http: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        let Broker { ctx, logs } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let cleaner = logs.spawn_background(
            Duration::from_millis(ctx.config.log_retention_check_interval_ms),
            Duration::from_millis(ctx.config.log_flush_scheduler_interval_ms),
            stop_rx.clone(),
        );
        let grpc_task = tokio::spawn(server::serve_grpc(
            ctx.clone(),
            grpc,
            stopped(stop_rx.clone()),
        ));
        let http_task = tokio::spawn(server::http::serve_http(
            ctx.clone(),
            http,
            stopped(stop_rx.clone()),
        ));

        // Either a shutdown request or a server dying ends serving.
        tokio::pin!(shutdown);
        let mut grpc_task = grpc_task;
        let early = tokio::select! {
            _ = &mut shutdown => None,
            r = &mut grpc_task => Some(r),
        };
        tracing::info!("shutting down");
        ctx.ready.store(false, Ordering::Release);
        let _ = stop_tx.send(true);
        let grpc_result = match early {
            Some(r) => r,
            // In-flight requests get a grace period; a client that never
            // answers the GOAWAY must not keep the broker from stopping.
            None => match tokio::time::timeout(SHUTDOWN_GRACE, &mut grpc_task).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(grace = ?SHUTDOWN_GRACE, "gRPC connections still open after the grace period; closing them");
                    grpc_task.abort();
                    Ok(Ok(()))
                }
            },
        };
        let http_result = http_task.await;
        let _ = cleaner.await;
        logs.shutdown()?;
        tracing::info!("shutdown complete");
        grpc_result.map_err(|e| Error::NotAvailable(format!("gRPC task: {e}")))??;
        http_result.map_err(|e| Error::NotAvailable(format!("HTTP task: {e}")))??;
        Ok(())
    }
}
