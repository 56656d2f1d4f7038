//! TLS on the gRPC listener: rustls, with the certificate, key and client
//! CA read from PEM files and read again whenever they change, so a
//! certificate rotated in place (a Kubernetes Secret updated by the
//! operator or cert-manager) is served without a restart. Connections keep
//! the configuration they were accepted with; new ones get the new one.
//!
//! Client certificates follow Kafka's `ssl.client.auth`: `none`,
//! `requested` (verified against `ssl.ca.location` when sent) or
//! `required` (mutual TLS: a connection without one is refused in the
//! handshake). A verified certificate reaches the request handlers through
//! tonic's `Request::peer_certs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::config::BrokerConfig;
use crate::{Error, Result};

/// A handshake that has not finished by then is dropped (a client that
/// connects and says nothing must not hold a task forever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// Where the listener's TLS material is, from the broker config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
    pub reload_interval: Duration,
}

impl TlsSettings {
    /// `None` when `ssl.certificate.location` is unset (plaintext); an
    /// error for a half-configured listener.
    pub fn from_config(config: &BrokerConfig) -> Result<Option<Self>> {
        let invalid = |key: &str, value: &Path, reason: &str| Error::InvalidConfig {
            key: key.into(),
            value: value.display().to_string(),
            reason: reason.into(),
        };
        let client_auth = match config.ssl_client_auth.as_str() {
            "none" | "" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            other => {
                return Err(invalid(
                    "ssl.client.auth",
                    Path::new(other),
                    "must be none, requested or required",
                ));
            }
        };
        let set = |p: &PathBuf| !p.as_os_str().is_empty();
        if !set(&config.ssl_certificate_location) {
            if set(&config.ssl_key_location) {
                return Err(invalid(
                    "ssl.key.location",
                    &config.ssl_key_location,
                    "is set but ssl.certificate.location is not; set both to turn TLS on",
                ));
            }
            if client_auth != ClientAuth::None {
                return Err(invalid(
                    "ssl.client.auth",
                    Path::new(&config.ssl_client_auth),
                    "needs TLS: set ssl.certificate.location and ssl.key.location",
                ));
            }
            return Ok(None);
        }
        if !set(&config.ssl_key_location) {
            return Err(invalid(
                "ssl.certificate.location",
                &config.ssl_certificate_location,
                "is set but ssl.key.location is not; the listener needs the private key too",
            ));
        }
        let ca = set(&config.ssl_ca_location).then(|| config.ssl_ca_location.clone());
        if client_auth != ClientAuth::None && ca.is_none() {
            return Err(invalid(
                "ssl.client.auth",
                Path::new(&config.ssl_client_auth),
                "needs ssl.ca.location: the CA that client certificates must chain to",
            ));
        }
        Ok(Some(TlsSettings {
            certificate: config.ssl_certificate_location.clone(),
            key: config.ssl_key_location.clone(),
            ca,
            client_auth,
            reload_interval: Duration::from_millis(config.ssl_reload_interval_ms.max(100)),
        }))
    }

    fn files(&self) -> Vec<&Path> {
        let mut files = vec![self.certificate.as_path(), self.key.as_path()];
        files.extend(self.ca.as_deref());
        files
    }

    /// Read the files and build the rustls server configuration.
    pub fn load(&self) -> Result<Arc<rustls::ServerConfig>> {
        let chain = read_certificates(&self.certificate)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| pem_error(&self.key, "a private key", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(&self.certificate, &e))?;
        let builder = match (&self.ca, self.client_auth) {
            (Some(ca), auth) if auth != ClientAuth::None => {
                let mut roots = RootCertStore::empty();
                for cert in read_certificates(ca)? {
                    roots.add(cert).map_err(|e| tls_error(ca, &e))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| tls_error(ca, &e))?)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| tls_error(&self.certificate, &e))?;
        // gRPC is HTTP/2 only; clients ask for it by ALPN.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

impl TlsSettings {
    /// TLS for this broker's own connections to other brokers (follower
    /// fetches, offset lookups): trust `ssl.ca.location`, present this
    /// broker's certificate (so listeners that require client certificates
    /// let brokers in), check the peer's certificate against `host`. The
    /// files are read on every connect, so rotated ones are used from the
    /// next reconnect on.
    pub fn inter_broker(&self, host: &str) -> std::result::Result<ClientTlsConfig, String> {
        let Some(ca) = &self.ca else {
            return Err(
                "this broker's listener uses TLS but ssl.ca.location is not set, so it cannot \
                 verify other brokers; set it to the CA that signed the brokers' certificates"
                    .into(),
            );
        };
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(ca)?))
            .identity(Identity::from_pem(
                read(&self.certificate)?,
                read(&self.key)?,
            ))
            .domain_name(host))
    }
}

/// The gRPC endpoint of another broker at `host:port`: TLS when this
/// broker's listener has it (brokers share one listener and one CA), else
/// plaintext.
pub fn broker_endpoint(
    address: &str,
    tls: Option<&TlsSettings>,
) -> std::result::Result<Endpoint, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
        .map_err(|e| format!("bad broker address {address:?}: {e}"))?;
    match tls {
        Some(tls) => {
            let host = endpoint
                .uri()
                .host()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_owned();
            endpoint
                .tls_config(tls.inter_broker(&host)?)
                .map_err(|e| format!("TLS to {address}: {e}"))
        }
        None => Ok(endpoint),
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, "certificates", &e))?;
    if certs.is_empty() {
        return Err(Error::InvalidConfig {
            key: "ssl".into(),
            value: path.display().to_string(),
            reason: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        });
    }
    Ok(certs)
}

fn pem_error(path: &Path, what: &str, e: &rustls_pki_types::pem::Error) -> Error {
    Error::InvalidConfig {
        key: "ssl".into(),
        value: path.display().to_string(),
        reason: format!("cannot read {what} from this PEM file: {e}"),
    }
}

fn tls_error(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::InvalidConfig {
        key: "ssl".into(),
        value: path.display().to_string(),
        reason: format!("not usable for TLS: {e}"),
    }
}

/// The current server configuration, replaced when the files change.
#[derive(Debug)]
pub struct ReloadingTls {
    settings: TlsSettings,
    current: RwLock<Arc<rustls::ServerConfig>>,
    /// Modification time and length of each file at the last load.
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

impl ReloadingTls {
    /// Load the files now: a broker whose TLS files are unusable does not
    /// start.
    pub fn new(settings: TlsSettings) -> Result<Arc<Self>> {
        let stamps = stamps(&settings);
        let config = settings.load()?;
        Ok(Arc::new(ReloadingTls {
            settings,
            current: RwLock::new(config),
            stamps: Mutex::new(stamps),
        }))
    }

    /// Where the files are.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }

    /// Load the files again if any changed. A change that does not load
    /// (a half-written rotation, a key that does not match) keeps the old
    /// configuration and is retried at the next check.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamps(&self.settings);
        if *self.stamps.lock() == now {
            return false;
        }
        match self.settings.load() {
            Ok(config) => {
                *self.current.write() = config;
                *self.stamps.lock() = now;
                tracing::info!(certificate = %self.settings.certificate.display(), "TLS files changed; new connections use them");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS files changed but do not load; still serving the previous certificate");
                false
            }
        }
    }

    /// Check the files every `ssl.reload.interval.ms` until dropped.
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.reload_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.reload_if_changed();
        }
    }
}

fn stamps(settings: &TlsSettings) -> Vec<Option<(SystemTime, u64)>> {
    settings
        .files()
        .into_iter()
        .map(|p| {
            // Follows symlinks: a Secret volume swaps its `..data` link.
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// Accept TCP connections on `listener` and hand tonic the ones whose TLS
/// handshake succeeds, each with the configuration current when it came.
/// Handshakes run concurrently, so a slow or silent client holds up
/// nobody; failures are logged at debug level (scanners, wrong CA).
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ReloadingTls>,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                return;
            }
            // See serve_grpc: Nagle would delay small answers.
            let _ = tcp.set_nodelay(true);
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
