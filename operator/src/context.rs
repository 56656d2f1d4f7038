//! What every reconciler shares: the Kubernetes client, the operator's
//! settings, metrics, the event recorder and the way to reach a cluster's
//! brokers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use runnel_client::{Admin, ClientConfig, TlsConfig};
use tokio::sync::Mutex;

use crate::crd::Cluster;
use crate::manifests::security;
use crate::metrics::Metrics;
use crate::{Error, Result};

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "runnel-operator";

/// Operator-wide settings (from `runnel-operator` flags).
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// Broker image for Clusters that name none.
    pub broker_image: String,
    /// How often every resource is reconciled even without a change: the
    /// period in which drift made outside Kubernetes is reverted and status
    /// (lag, ISR) refreshed.
    pub resync: Duration,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            broker_image: format!("runnel/broker:{}", env!("CARGO_PKG_VERSION")),
            resync: Duration::from_secs(60),
        }
    }
}

/// Shared by all reconcilers.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub metrics: Arc<Metrics>,
    /// Publishes Kubernetes Events (one shared recorder, so repeated
    /// events are aggregated into series).
    pub recorder: Recorder,
    pub connector: Connector,
}

impl Context {
    pub fn new(
        client: Client,
        config: OperatorConfig,
        metrics: Arc<Metrics>,
        connector: Connector,
    ) -> Self {
        let reporter = Reporter {
            controller: "runnel-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            metrics,
            connector,
        }
    }
}

/// Reaches a Cluster's brokers through its client Service (or, in tests and
/// when the operator runs outside Kubernetes, a fixed bootstrap list), and
/// keeps one admin client per cluster so a reconcile does not reconnect.
pub struct Connector {
    fixed: Option<String>,
    timeout: Duration,
    admins: Mutex<HashMap<String, (String, Admin)>>,
}

impl Connector {
    /// Brokers at `<cluster>-client.<namespace>.svc:<grpc port>`.
    pub fn in_cluster() -> Self {
        Connector {
            fixed: None,
            timeout: Duration::from_secs(10),
            admins: Mutex::new(HashMap::new()),
        }
    }

    /// Every cluster at `bootstrap` (`host:port[,host:port…]`): tests, and an
    /// operator run from a laptop against port-forwarded brokers.
    pub fn fixed(bootstrap: impl Into<String>) -> Self {
        Connector {
            fixed: Some(bootstrap.into()),
            ..Connector::in_cluster()
        }
    }

    /// The bootstrap address clients of `cluster` use.
    pub fn bootstrap(&self, cluster: &Cluster) -> String {
        match &self.fixed {
            Some(fixed) => fixed.clone(),
            None => crate::manifests::client_bootstrap(cluster),
        }
    }

    /// An admin client for `cluster`, connected on first use. With
    /// `spec.security.tls` it speaks TLS, trusting the cluster's CA bundle
    /// and presenting the operator's certificate (Secret
    /// `<c>-operator-tls`, read with `kube`); a renewed certificate makes a
    /// new connection.
    pub async fn admin(&self, kube: &kube::Client, cluster: &Cluster) -> Result<Admin> {
        let bootstrap = self.bootstrap(cluster);
        let tls = self.tls(kube, cluster).await?;
        // What the cached client was made with: address and credentials.
        let made_with = match &tls {
            Some(tls) => {
                let pem = tls.pem.as_ref().expect("from_pem");
                let identity = pem.identity.as_ref().map(|(c, _)| c.as_slice());
                format!(
                    "{bootstrap} {}",
                    crate::manifests::config::config_hash(&format!(
                        "{}{}",
                        String::from_utf8_lossy(&pem.ca),
                        String::from_utf8_lossy(identity.unwrap_or_default())
                    ))
                )
            }
            None => bootstrap.clone(),
        };
        let key = cluster_key(cluster);
        let mut admins = self.admins.lock().await;
        if let Some((made, admin)) = admins.get(&key)
            && *made == made_with
        {
            return Ok(admin.clone());
        }
        let runnel_error = |source| Error::Runnel {
            cluster: key.clone(),
            source,
        };
        let mut config = ClientConfig::new(&bootstrap).map_err(runnel_error)?;
        config.request_timeout = self.timeout;
        config.connect_timeout = self.timeout;
        config.client_id = "runnel-operator".into();
        config.tls = tls;
        let admin = Admin::connect(config).await.map_err(runnel_error)?;
        admins.insert(key.clone(), (made_with, admin.clone()));
        Ok(admin)
    }

    /// TLS settings for `cluster`'s brokers, if its listener has TLS.
    async fn tls(&self, kube: &kube::Client, cluster: &Cluster) -> Result<Option<TlsConfig>> {
        if cluster.spec.tls().is_none() {
            return Ok(None);
        }
        let namespace = crate::manifests::namespace(cluster)?;
        let name = security::operator_tls_secret_name(cluster);
        let secrets: Api<Secret> = Api::namespaced(kube.clone(), &namespace);
        let secret = secrets.get_opt(&name).await?;
        let field = |key: &str| {
            secret
                .as_ref()
                .and_then(|s| s.data.as_ref())
                .and_then(|d| d.get(key))
                .map(|v| v.0.clone())
                .filter(|v| !v.is_empty())
        };
        let (Some(ca), Some(cert), Some(key)) = (
            field(security::CA_CRT),
            field(security::TLS_CRT),
            field(security::TLS_KEY),
        ) else {
            return Err(Error::Certificate(format!(
                "Secret {namespace}/{name} (the operator's client certificate) is missing or incomplete"
            )));
        };
        let mut tls = TlsConfig::from_pem(ca, Some((cert, key)));
        if self.fixed.is_some() {
            // Port-forwarded or test brokers answer on addresses their
            // certificate does not name; check it against the client
            // Service's name instead.
            tls.server_name = Some(
                crate::manifests::client_bootstrap(cluster)
                    .rsplit_once(':')
                    .map_or_else(String::new, |(host, _)| host.to_owned()),
            );
        }
        Ok(Some(tls))
    }

    /// Drop the cached client of `cluster` (after the cluster is deleted).
    pub async fn forget(&self, cluster: &Cluster) {
        self.admins.lock().await.remove(&cluster_key(cluster));
    }
}

/// `namespace/name`.
pub fn cluster_key(cluster: &Cluster) -> String {
    format!(
        "{}/{}",
        kube::ResourceExt::namespace(cluster).unwrap_or_default(),
        kube::ResourceExt::name_any(cluster)
    )
}
