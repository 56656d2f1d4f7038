//! `runnel-operator`: parse flags, start logging, the HTTP endpoints and —
//! once this replica holds the leader Lease — the controllers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use runnel_operator::http::Health;
use runnel_operator::leader::LeaderElector;
use runnel_operator::metrics::Metrics;
use runnel_operator::{Connector, Context, OperatorConfig, controller};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Kubernetes operator for Runnel: Cluster, Topic and ConsumerGroup resources.
#[derive(Debug, Parser)]
#[command(name = "runnel-operator", version)]
struct Args {
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "RUNNEL_OPERATOR_NAMESPACE")]
    namespace: Option<String>,
    /// Broker image for Clusters that do not name one.
    #[arg(long, env = "RUNNEL_BROKER_IMAGE", default_value_t = OperatorConfig::default().broker_image)]
    broker_image: String,
    /// Reconcile every resource at least this often (reverts drift, refreshes status).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    resync: Duration,
    /// /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "RUNNEL_OPERATOR_HTTP_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    http_listen: SocketAddr,
    /// Elect a leader through a Lease so several replicas can run.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, default_value = "runnel-operator")]
    lease_name: String,
    /// Namespace of the leader Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// A leader that has not renewed the Lease for this long is replaced.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// This replica's identity in the Lease (default: the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Reach every cluster's brokers at this bootstrap instead of its client
    /// Service: for an operator run outside Kubernetes (port-forwarded brokers).
    #[arg(long)]
    bootstrap_override: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    let args = Args::parse();

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let listener = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("binding {}", args.http_listen))?;
    info!(address = %listener.local_addr()?, "serving /healthz, /readyz, /metrics");
    let http = tokio::spawn(runnel_operator::http::serve(
        listener,
        health.clone(),
        metrics.clone(),
        stopped(stop_rx.clone()),
    ));

    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let connector = match &args.bootstrap_override {
        Some(bootstrap) => Connector::fixed(bootstrap.clone()),
        None => Connector::in_cluster(),
    };
    let config = OperatorConfig {
        broker_image: args.broker_image.clone(),
        resync: args.resync,
    };
    let ctx = Arc::new(Context::new(client.clone(), config, metrics, connector));
    health.ready.store(true, Ordering::Relaxed);

    if args.leader_election {
        let identity = args
            .identity
            .clone()
            .unwrap_or_else(|| format!("runnel-operator-{}", std::process::id()));
        let elector = LeaderElector::new(
            client,
            &args.lease_namespace,
            &args.lease_name,
            &identity,
            args.lease_duration,
        );
        lead(elector, ctx, args.namespace, health, stop_rx.clone()).await?;
    } else {
        health.leading.store(true, Ordering::Relaxed);
        controller::run(ctx, args.namespace, stopped(stop_rx.clone())).await;
    }
    http.await??;
    Ok(())
}

/// Wait for the Lease, run the controllers while renewing it, and exit
/// (error) when it is lost: Kubernetes restarts the pod, which then waits as
/// a standby — the usual way out for a leader that may have been replaced.
async fn lead(
    elector: LeaderElector,
    ctx: Arc<Context>,
    namespace: Option<String>,
    health: Arc<Health>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let renew_every = elector.lease_duration() / 3;
    info!("waiting for the leader lease");
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        match elector.try_acquire_or_renew().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => warn!(error = %e, "leader election"),
        }
        let mut stop = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(renew_every) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
    info!("leading");
    health.leading.store(true, Ordering::Relaxed);
    let (lost_tx, mut lost_rx) = watch::channel(false);
    let renewer = {
        let elector = elector.clone();
        tokio::spawn(async move {
            let mut last_renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(renew_every).await;
                match elector.try_acquire_or_renew().await {
                    Ok(true) => last_renewed = tokio::time::Instant::now(),
                    Ok(false) => break,
                    Err(e) => {
                        warn!(error = %e, "renewing the leader lease");
                        if last_renewed.elapsed() >= elector.lease_duration() {
                            break;
                        }
                    }
                }
            }
            let _ = lost_tx.send(true);
        })
    };
    let mut stop_rx = stop.clone();
    let until = async move {
        tokio::select! {
            _ = stop_rx.wait_for(|s| *s) => {}
            _ = lost_rx.wait_for(|l| *l) => {}
        }
    };
    controller::run(ctx, namespace, until).await;
    renewer.abort();
    if *stop.borrow() {
        if let Err(e) = elector.release().await {
            warn!(error = %e, "releasing the leader lease");
        }
        return Ok(());
    }
    error!("lost the leader lease; exiting so a restart can rejoin as a standby");
    anyhow::bail!("lost the leader lease")
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
