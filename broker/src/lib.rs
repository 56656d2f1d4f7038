//! `runnel-broker`: a Kafka-style broker serving partition logs over gRPC.
//!
//! Start reading at [`Broker`]: [`Broker::open`] loads metadata and logs,
//! [`Broker::serve`] runs the gRPC and HTTP servers until a shutdown future
//! resolves, then flushes and marks the shutdown clean.
//!
//! Modules, bottom up:
//! - [`log`]: segmented append-only partition logs (segments, sparse mmap
//!   indexes, recovery, retention, flushing).
//! - [`meta`]: the etcd-shaped [`meta::MetadataStore`] (etcd in cluster
//!   mode, embedded redb on a single node); key layout, stored records,
//!   broker registration, producer ids.
//! - [`topic`]: topic name rules and Kafka-named topic configs.
//! - [`replica`]: hosted partitions (leader or follower, high watermark,
//!   ISR), follower fetching, leader epochs, idempotent producer state.
//! - [`cluster`]: this broker's mirror of the metadata store, kept current
//!   by a watch and applied to the replicas.
//! - [`controller`]: controller election, leader election, replica
//!   placement, topic creation, alteration and deletion.
//! - [`group`]: the consumer group coordinator (membership, assignment,
//!   committed offsets).
//! - [`kafka`]: the Kafka wire protocol on the same operations (one file
//!   per API), and the listener that tells Kafka clients from gRPC ones.
//! - [`server`]: gRPC operations (one file each), error → status mapping,
//!   HTTP health and metrics.
//! - [`auth`]: principals (bearer tokens: static file, Kubernetes
//!   TokenReview; client certificates) and ACLs.
//! - [`reload`]: files read again when they change (TLS, tokens).
//! - [`config`]: flags, env vars and config file.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod error;
pub mod group;
pub mod kafka;
pub mod log;
pub mod meta;
pub mod metrics;
pub mod reload;
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

use crate::cluster::ClusterView;
use crate::cluster::sync::MetadataSync;
use crate::controller::{ClusterConfigs, Controller, ControllerSettings, TopicController};
use crate::log::LogManager;
use crate::meta::MetadataStore;
use crate::meta::embedded::EmbeddedStore;
use crate::meta::etcd::EtcdStore;
use crate::meta::keys::Keys;
use crate::meta::producer_ids::ProducerIdManager;
use crate::meta::records::{BrokerRecord, VERSION};
use crate::meta::registration::Registration;
use crate::metrics::Metrics;
use crate::replica::ReplicaManager;
use crate::replica::fetcher::{FetchSettings, FetcherManager};
use crate::replica::isr::IsrWriter;
use crate::server::Context;

/// File in the data dir holding the broker's current lease id.
const LEASE_FILE: &str = "broker.lease";

/// How often producer state snapshots are written and leader epoch caches
/// trimmed to their log start.
const REPLICA_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);

/// How long shutdown waits for in-flight gRPC requests before closing
/// connections anyway (well under Kubernetes' default 30 s grace period).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long start-up keeps retrying a metadata store that is there but
/// cannot answer right now (etcd electing a leader, or without quorum for a
/// moment), like Kafka's `zookeeper.connection.timeout.ms`: a broker
/// restarted during an etcd hiccup waits it out instead of exiting.
const STARTUP_STORE_RETRY: Duration = Duration::from_secs(60);

/// Run `attempt` until it succeeds, fails with anything but
/// [`Error::MetadataUnavailable`], or [`STARTUP_STORE_RETRY`] has passed.
async fn while_store_unavailable<T, F, Fut>(what: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let deadline = Instant::now() + STARTUP_STORE_RETRY;
    let mut backoff = Duration::from_millis(100);
    loop {
        match attempt().await {
            Err(e @ Error::MetadataUnavailable(_)) if Instant::now() < deadline => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                    "{what}: the metadata store is unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            outcome => return outcome,
        }
    }
}

/// A loaded broker, ready to serve.
#[derive(Debug)]
pub struct Broker {
    ctx: Arc<Context>,
    logs: Arc<LogManager>,
    controller: Controller,
    /// The gRPC listener's TLS, loaded at open so that unusable files stop
    /// the broker before it says it is ready.
    tls: Option<Arc<server::tls::ReloadingTls>>,
}

impl Broker {
    /// Open the data directory: metadata store, partition logs (recovering
    /// them after an unclean stop) and every topic.
    pub async fn open(config: BrokerConfig) -> Result<Broker> {
        let started = Instant::now();
        let tls = server::tls::TlsSettings::from_config(&config)?
            .map(server::tls::ReloadingTls::new)
            .transpose()?;
        // Like the TLS files: unusable token settings stop the start before
        // the broker registers.
        let authenticator = auth::Authenticator::from_config(&config).await?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::io("creating data dir", &config.data_dir, e))?;
        check_data_dir_identity(&config)?;
        let endpoints = config.etcd_endpoints();
        let store: Arc<dyn MetadataStore> = if endpoints.is_empty() {
            Arc::new(EmbeddedStore::open(&config.data_dir)?)
        } else {
            let tls = config.etcd_tls()?;
            // Waits out an etcd that is there but busy (see `connect`); a
            // refused connection or TLS failure is said at once.
            Arc::new(
                while_store_unavailable("connecting to etcd", || {
                    EtcdStore::connect_with_tls(&endpoints, Duration::from_secs(5), tls.as_ref())
                })
                .await?,
            )
        };
        let keys = Keys::new(&config.cluster);
        let logs = LogManager::open(&config.data_dir)?;
        if !logs.was_clean_shutdown() && !logs.existing_partitions()?.is_empty() {
            tracing::warn!(data_dir = %config.data_dir.display(), "last shutdown was not clean; recovering logs");
        }
        let broker_id = config.broker_id;
        let addresses = Default::default();
        let fetchers = Arc::new(FetcherManager::new(
            broker_id,
            Arc::clone(&addresses),
            FetchSettings {
                max_wait: Duration::from_millis(config.replica_fetch_wait_max_ms),
                max_bytes: config.replica_fetch_response_max_bytes,
                backoff: Duration::from_millis(config.replica_fetch_backoff_ms),
                tls: tls.as_ref().map(|t| Arc::new(t.settings().clone())),
            },
        ));
        let replicas = Arc::new(ReplicaManager::new(
            broker_id,
            logs.clone(),
            config.topic_defaults()?,
            fetchers,
        ));
        let view = Arc::new(ClusterView::new(addresses));
        let sync = Arc::new(MetadataSync::new(
            store.clone(),
            keys.clone(),
            view.clone(),
            replicas.clone(),
        ));
        let session = Duration::from_millis(config.broker_session_timeout_ms);
        let registration = Arc::new(
            while_store_unavailable("registering", || {
                Registration::register_with_lease_file(
                    store.clone(),
                    keys.clone(),
                    broker_record(&config),
                    session,
                    Some(config.data_dir.join(LEASE_FILE)),
                    session + Duration::from_secs(2),
                )
            })
            .await?,
        );
        if !logs.was_clean_shutdown() {
            // Before this broker leads or follows anything (see the
            // function's docs): its log may be shorter than what it
            // acknowledged.
            let left =
                while_store_unavailable("leaving the ISRs after an unclean shutdown", || {
                    replica::isr::leave_isrs_after_unclean_shutdown(&*store, &keys, broker_id)
                })
                .await?;
            if !left.is_empty() {
                tracing::warn!(
                    partitions = left.len(),
                    "last shutdown was not clean: left the ISR of every partition with other \
                     in-sync replicas; rejoining each as a follower once caught up"
                );
            }
        }
        let loaded = while_store_unavailable("loading the metadata", || sync.load()).await?;
        replicas.delete_stray_logs()?;
        let topics = TopicController::new(
            store.clone(),
            keys.clone(),
            replicas.clone(),
            sync.clone(),
            config.num_partitions,
            config.default_replication_factor,
        );
        let cluster_configs =
            ClusterConfigs::new(store.clone(), keys.clone(), replicas.clone(), sync.clone());
        let controller = Controller::new(
            store.clone(),
            keys.clone(),
            view.clone(),
            registration.clone(),
            broker_id,
            ControllerSettings {
                auto_leader_rebalance: config.auto_leader_rebalance_enable,
                leader_imbalance_check_interval: Duration::from_secs(
                    config.leader_imbalance_check_interval_seconds.max(1),
                ),
                defaults: replicas.shared_defaults(),
            },
        );
        tracing::info!(
            broker_id,
            topics = loaded,
            mode = if endpoints.is_empty() {
                "single node (embedded metadata)"
            } else {
                "cluster (etcd)"
            },
            elapsed_ms = started.elapsed().as_millis() as u64,
            "broker loaded"
        );
        let groups = Arc::new(crate::group::GroupCoordinator::new(
            store.clone(),
            keys.clone(),
            broker_id,
            registration.clone(),
            sync.view().clone(),
            replicas.clone(),
        ));
        let metrics = Metrics::new();
        let authorizer = auth::Authorizer::new(
            &config,
            sync.view().clone(),
            metrics.authorization_denied.clone(),
        );
        if authorizer.is_enabled() {
            tracing::info!(super_users = %config.super_users, "authorization on: requests need ACLs");
        }
        let ctx = Arc::new(Context {
            authorizer,
            authenticator,
            groups,
            isr: Arc::new(IsrWriter::new(store.clone(), keys.clone(), broker_id)),
            producer_ids: ProducerIdManager::new(store, &keys),
            config,
            replicas,
            topics,
            cluster_configs,
            sync,
            registration,
            metrics,
            // Everything is loaded: ready as soon as the servers accept.
            ready: true.into(),
            stopping: watch::channel(false).0,
        });
        Ok(Broker {
            ctx,
            logs,
            controller,
            tls,
        })
    }

    /// Serve gRPC (and, unless `kafka.shared.listener=false`, the Kafka
    /// protocol) on `grpc`, the Kafka protocol alone on `kafka`, and HTTP on
    /// `http` until `shutdown` resolves;
    /// then stop accepting requests, flush every log and write the
    /// clean-shutdown marker.
    pub async fn serve(
        self,
        grpc: TcpListener,
        kafka: Option<TcpListener>,
        http: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        let Broker {
            ctx,
            logs,
            controller,
            tls,
        } = self;
        let lag = Duration::from_millis(ctx.config.replica_lag_time_max_ms);
        let mut background = vec![
            tokio::spawn(ctx.sync.clone().run()),
            tokio::spawn(controller.run()),
            tokio::spawn(
                ctx.isr
                    .clone()
                    .run_shrinker(ctx.replicas.clone(), lag / 2, lag),
            ),
            tokio::spawn(checkpoint_replicas(ctx.clone())),
            tokio::spawn(ctx.groups.clone().run_reaper()),
        ];
        background.extend(ctx.authenticator.watcher().map(tokio::spawn));
        let stop_rx = ctx.stopping.subscribe();
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let cleaner = logs.spawn_background(
            Duration::from_millis(ctx.config.log_retention_check_interval_ms),
            Duration::from_millis(ctx.config.log_flush_scheduler_interval_ms),
            stop_rx.clone(),
        );
        // The HTTP endpoint shares the listener's certificate (and its
        // reloads) when asked to; the gRPC server watches the files.
        let http_tls = tls.clone().filter(|_| ctx.config.http_ssl_enable);
        if let Some(kafka) = kafka {
            tracing::info!(addr = %kafka.local_addr().map_err(|e| Error::io("kafka listener", "kafka.listen", e))?, "Kafka-only listener");
            // Connections are served by the accept loop; it stops with the
            // broker.
            drop(kafka::accept(
                ctx.clone(),
                kafka,
                tls.clone(),
                kafka::listener::Protocols::Kafka,
            ));
        }
        let protocols = if ctx.config.kafka_shared_listener {
            kafka::listener::Protocols::Both
        } else {
            kafka::listener::Protocols::Grpc
        };
        if tls.is_some() {
            tracing::info!("gRPC listener speaks TLS");
            tokio::spawn(tls.clone().expect("checked").watch());
        }
        let incoming = kafka::accept(ctx.clone(), grpc, tls, protocols);
        let grpc_task = tokio::spawn(server::serve_grpc(
            ctx.clone(),
            incoming,
            stopped(stop_rx.clone()),
        ));
        let http_task = tokio::spawn(server::http::serve_http(
            ctx.clone(),
            http,
            http_tls,
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
        ctx.stopping.send_replace(true);
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
        for task in background {
            task.abort();
        }
        ctx.replicas.fetchers().shutdown();
        // Controlled shutdown: leaving at once lets the controller move
        // leadership now rather than after the session timeout.
        if let Err(e) = ctx.registration.deregister().await {
            tracing::warn!(error = %e, "deregistering failed; the registration ends with its lease");
        }
        ctx.replicas.snapshot_producer_state(
            crate::log::wall_clock_ms(),
            ctx.config.producer_id_expiration_ms,
        );
        if let Err(e) = logs.shutdown() {
            // Without the clean-shutdown marker the next start recovers
            // (scans the active segments); nothing is lost. A full disk
            // lands here, and is no reason to exit with an error.
            tracing::warn!(error = %e, "logs did not close cleanly; the next start recovers them");
        }
        tracing::info!("shutdown complete");
        grpc_result.map_err(|e| Error::NotAvailable(format!("gRPC task: {e}")))??;
        http_result.map_err(|e| Error::NotAvailable(format!("HTTP task: {e}")))??;
        Ok(())
    }
}

/// File in the data dir naming the broker and cluster it belongs to
/// (Kafka's `meta.properties`).
const META_PROPERTIES: &str = "meta.properties";

/// Refuse a data directory that belongs to another broker id or cluster
/// (a mix-up that would serve one broker's replicas as another's), and
/// claim a new one.
fn check_data_dir_identity(config: &BrokerConfig) -> Result<()> {
    let path = config.data_dir.join(META_PROPERTIES);
    let wanted = [
        ("broker.id", config.broker_id.to_string()),
        ("cluster.name", config.cluster.clone()),
    ];
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            for (key, value) in &wanted {
                let found = text
                    .lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                    .map(str::trim);
                if let Some(found) = found
                    && found != value
                {
                    return Err(Error::InvalidConfig {
                        key: (*key).to_owned(),
                        value: value.clone(),
                        reason: format!(
                            "the data dir {} belongs to {key}={found} ({}); start this broker with \
                             its own --data-dir, or with {key}={found}",
                            config.data_dir.display(),
                            path.display()
                        ),
                    });
                }
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut text = String::from("version=0\n");
            for (key, value) in &wanted {
                text.push_str(&format!("{key}={value}\n"));
            }
            std::fs::write(&path, text).map_err(|e| Error::io("writing", &path, e))
        }
        Err(e) => Err(Error::io("reading", &path, e)),
    }
}

/// This broker's `brokers/<id>` record.
fn broker_record(config: &BrokerConfig) -> BrokerRecord {
    let advertised = config.advertised_address();
    let (host, port) = match advertised.rsplit_once(':') {
        Some((host, port)) => (
            host.trim_matches(['[', ']']).to_owned(),
            port.parse().unwrap_or(config.listen.port()),
        ),
        None => (advertised, config.listen.port()),
    };
    BrokerRecord {
        version: VERSION,
        broker_id: config.broker_id,
        host,
        port,
        rack: (!config.rack.is_empty()).then(|| config.rack.clone()),
        http_port: Some(config.http_listen.port()),
        kafka: config.kafka_advertised_address().map(|address| {
            let (host, port) = split_host_port(&address);
            crate::meta::records::KafkaEndpoint {
                host,
                port: port.unwrap_or(9092),
            }
        }),
    }
}

/// `host:port` (brackets around an IPv6 host removed); no port → `None`.
pub(crate) fn split_host_port(address: &str) -> (String, Option<u16>) {
    match address.rsplit_once(':') {
        Some((host, port)) => (host.trim_matches(['[', ']']).to_owned(), port.parse().ok()),
        None => (address.to_owned(), None),
    }
}

/// Write producer state snapshots now and then, so a restart replays
/// little of the log, and trim leader epoch caches to what retention left.
async fn checkpoint_replicas(ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(REPLICA_CHECKPOINT_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        let ctx = ctx.clone();
        let _ = tokio::task::spawn_blocking(move || {
            ctx.replicas.trim_leader_epochs();
            ctx.replicas.snapshot_producer_state(
                crate::log::wall_clock_ms(),
                ctx.config.producer_id_expiration_ms,
            )
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn start_up_waits_out_an_unavailable_store_but_not_other_errors() {
        let mut calls = 0;
        let outcome = while_store_unavailable("testing", || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(Error::MetadataUnavailable(
                        "etcdserver: leader changed".into(),
                    ))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(outcome.unwrap(), 3);

        let mut calls = 0;
        let outcome: Result<()> = while_store_unavailable("testing", || {
            calls += 1;
            async { Err(Error::Metadata("unreadable value".into())) }
        })
        .await;
        assert!(matches!(outcome, Err(Error::Metadata(_))));
        assert_eq!(calls, 1, "a store that answered wrongly is not retried");
    }
}
