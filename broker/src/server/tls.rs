//! TLS on the gRPC listener (and, with `http.ssl.enable`, on the HTTP
//! health and metrics endpoint): rustls, with the certificate, key and
//! client CA read from PEM files and read again whenever they change
//! ([`crate::reload`]), so a certificate rotated in place (a Kubernetes
//! Secret updated by the operator or cert-manager) is served without a
//! restart. Connections keep the configuration they were accepted with; new
//! ones get the new one.
//!
//! Client certificates follow Kafka's `ssl.client.auth`: `none`,
//! `requested` (verified against `ssl.ca.location` when sent) or
//! `required` (mutual TLS: a connection without one is refused in the
//! handshake). A verified certificate reaches the request handlers through
//! tonic's `Request::peer_certs`. The HTTP endpoint never asks for one:
//! kubelet probes cannot present one.
//!
//! A certificate and a key that do not belong together are refused when
//! loaded (the broker does not start; a rotation to such a pair keeps the
//! previous one), rather than failing every handshake later.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::config::BrokerConfig;
use crate::reload::Reloading;
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

    fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.certificate.clone(), self.key.clone()];
        files.extend(self.ca.clone());
        files
    }

    /// Read the files and build the rustls server configurations.
    pub fn load(&self) -> Result<ServerConfigs> {
        let chain = read_certificates(&self.certificate)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| pem_error(&self.key, "a private key", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        self.check_key_matches(&chain, &key, &provider)?;
        let builder = || {
            rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| tls_error(&self.certificate, &e))
        };
        let grpc = match (&self.ca, self.client_auth) {
            (Some(ca), auth) if auth != ClientAuth::None => {
                let mut roots = RootCertStore::empty();
                for cert in read_certificates(ca)? {
                    roots.add(cert).map_err(|e| tls_error(ca, &e))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let verifier = if auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder()?
                    .with_client_cert_verifier(verifier.build().map_err(|e| tls_error(ca, &e))?)
            }
            _ => builder()?.with_no_client_auth(),
        };
        let mut grpc = grpc
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| tls_error(&self.certificate, &e))?;
        // gRPC is HTTP/2 only; clients ask for it by ALPN.
        grpc.alpn_protocols = vec![b"h2".to_vec()];
        // Probes and scrapers present no certificate, whatever the gRPC
        // listener requires.
        let mut http = builder()?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| tls_error(&self.certificate, &e))?;
        // The HTTP server speaks HTTP/1.1 only (axum without http2).
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerConfigs {
            grpc: Arc::new(grpc),
            http: Arc::new(http),
        })
    }

    /// Refuse a key that is not the certificate's: otherwise every
    /// handshake would fail later, with nothing but a debug log to say why.
    /// rustls compares the key's public half with the certificate's
    /// SubjectPublicKeyInfo; ring's RSA, ECDSA and Ed25519 keys all expose
    /// theirs, so "cannot tell" does not happen with this provider (and is
    /// let through, as rustls itself does, should a key type ever not).
    fn check_key_matches(
        &self,
        chain: &[CertificateDer<'static>],
        key: &PrivateKeyDer<'static>,
        provider: &rustls::crypto::CryptoProvider,
    ) -> Result<()> {
        let signing_key = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| Error::InvalidConfig {
                key: "ssl.key.location".into(),
                value: self.key.display().to_string(),
                reason: format!("not a usable private key: {e}"),
            })?;
        match CertifiedKey::new(chain.to_vec(), signing_key).keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(()),
            Err(e) => Err(Error::InvalidConfig {
                key: "ssl.key.location".into(),
                value: self.key.display().to_string(),
                reason: format!(
                    "this private key does not belong to the certificate in {} \
                     (ssl.certificate.location): {}; use the key the certificate was issued for",
                    self.certificate.display(),
                    match e {
                        rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
                            "the certificate holds another public key".to_owned()
                        }
                        other => other.to_string(),
                    }
                ),
            }),
        }
    }
}

/// The server configurations built from one certificate and key.
#[derive(Debug)]
pub struct ServerConfigs {
    /// The gRPC listener: h2, client certificates per `ssl.client.auth`.
    pub grpc: Arc<rustls::ServerConfig>,
    /// The HTTP endpoint (`http.ssl.enable`): http/1.1, no client
    /// certificates.
    pub http: Arc<rustls::ServerConfig>,
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

/// The current server configurations, replaced when the files change.
#[derive(Debug)]
pub struct ReloadingTls {
    settings: TlsSettings,
    configs: Arc<Reloading<ServerConfigs>>,
}

impl ReloadingTls {
    /// Load the files now: a broker whose TLS files are unusable does not
    /// start.
    pub fn new(settings: TlsSettings) -> Result<Arc<Self>> {
        let files = settings.files();
        let configs = Reloading::new("TLS files", files, {
            let settings = settings.clone();
            move || settings.load()
        })?;
        Ok(Arc::new(ReloadingTls {
            settings,
            configs: Arc::new(configs),
        }))
    }

    /// Where the files are.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The configuration for the next gRPC connection.
    pub(crate) fn grpc(&self) -> Arc<rustls::ServerConfig> {
        self.configs.current().grpc.clone()
    }

    /// The configuration for the next HTTP connection.
    fn http(&self) -> Arc<rustls::ServerConfig> {
        self.configs.current().http.clone()
    }

    /// Load the files again if any changed. A change that does not load
    /// (a half-written rotation, a key that does not match) keeps the old
    /// configuration and is retried at the next check.
    pub fn reload_if_changed(&self) -> bool {
        self.configs.reload_if_changed()
    }

    /// Check the files every `ssl.reload.interval.ms` until dropped.
    pub async fn watch(self: Arc<Self>) {
        self.configs
            .clone()
            .watch(self.settings.reload_interval)
            .await
    }
}

/// Connections to the HTTP endpoint whose TLS handshake succeeded, with
/// the peer's address.
pub fn incoming_http(
    listener: TcpListener,
    tls: Arc<ReloadingTls>,
) -> mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)> {
    handshakes(listener, move || tls.http())
}

/// Accept TCP connections on `listener` and pass on those whose handshake
/// succeeds with the configuration `config` returns at the time. Handshakes
/// run concurrently, so a slow or silent client holds up nobody; failures
/// are logged at debug level (scanners, wrong CA).
pub(crate) fn handshakes(
    listener: TcpListener,
    config: impl Fn() -> Arc<rustls::ServerConfig> + Send + 'static,
) -> mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)> {
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
            let acceptor = TlsAcceptor::from(config());
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send((stream, peer)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    /// A self-signed certificate for `key`, and the files of both.
    fn files(dir: &Path, stem: &str, key: &KeyPair) -> (PathBuf, PathBuf) {
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(key)
            .unwrap();
        let (crt, key_path) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&crt, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (crt, key_path)
    }

    fn settings(certificate: &Path, key: &Path) -> TlsSettings {
        TlsSettings {
            certificate: certificate.to_owned(),
            key: key.to_owned(),
            ca: None,
            client_auth: ClientAuth::None,
            reload_interval: Duration::from_millis(100),
        }
    }

    /// ECDSA P-256 and RSA: a key that is not the certificate's is refused,
    /// naming both files; at a reload it keeps the previous pair.
    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let rsa =
            |pem: &str| KeyPair::from_pem_and_sign_algo(pem, &rcgen::PKCS_RSA_SHA256).unwrap();
        let pairs = [
            (KeyPair::generate().unwrap(), KeyPair::generate().unwrap()),
            (
                rsa(include_str!("../../testdata/rsa-a.key")),
                rsa(include_str!("../../testdata/rsa-b.key")),
            ),
        ];
        for (n, (key, other)) in pairs.iter().enumerate() {
            let (crt, key_path) = files(dir.path(), &format!("right-{n}"), key);
            let (_, other_path) = files(dir.path(), &format!("other-{n}"), other);
            settings(&crt, &key_path).load().unwrap();
            let err = settings(&crt, &other_path).load().unwrap_err().to_string();
            assert!(err.contains("does not belong to the certificate"), "{err}");
            assert!(err.contains(&*crt.to_string_lossy()), "{err}");
            assert!(err.contains(&*other_path.to_string_lossy()), "{err}");

            let tls = ReloadingTls::new(settings(&crt, &key_path)).unwrap();
            let before = tls.grpc();
            // A trailing newline: the length changes, so the change is seen
            // whatever the filesystem's timestamp resolution.
            let other_pem = std::fs::read_to_string(&other_path).unwrap();
            std::fs::write(&key_path, format!("{other_pem}\n")).unwrap();
            assert!(!tls.reload_if_changed(), "a mismatched pair was loaded");
            assert!(Arc::ptr_eq(&before, &tls.grpc()), "the old pair is kept");
            // Its own certificate joins it: now the pair loads.
            std::fs::copy(dir.path().join(format!("other-{n}.crt")), &crt).unwrap();
            assert!(tls.reload_if_changed());
            assert!(!Arc::ptr_eq(&before, &tls.grpc()));
        }
    }
}
