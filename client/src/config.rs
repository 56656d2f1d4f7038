//! [`ClientConfig`]: where the brokers are and how long to wait for them.
//! Shared by [`Admin`](crate::Admin), [`Producer`](crate::Producer) and
//! [`Consumer`](crate::Consumer); each of those has its own config for the
//! knobs only it uses.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::error::{Error, Result};

/// Largest gRPC message a client sends or accepts. tonic's default of 4 MiB
/// is smaller than one `fetch_max_bytes` (50 MiB) fetch response; the real
/// limits are the broker's and the request's own byte budgets.
pub(crate) const MAX_MESSAGE_SIZE: usize = 256 * 1024 * 1024;

/// HTTP/2 flow-control windows. hyper's defaults (2 MiB per stream, 5 MiB
/// per connection) stall a 1 MiB-per-partition fetch of many partitions or a
/// few produce requests in flight; these let one round trip carry them.
const STREAM_WINDOW: u32 = 16 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 64 * 1024 * 1024;

/// Largest HTTP/2 DATA frame the broker may send us. The default 16 KiB
/// splits a 1 MiB fetch answer into 64 frames, each copied and woken for
/// separately; 1 MiB frames took `perf consume` from ~500 to ~700 MB/s on
/// loopback.
const MAX_FRAME_SIZE: u32 = 1024 * 1024;

/// How to reach the cluster. Knob names follow Kafka's client configs.
///
/// ```
/// use runnel_client::ClientConfig;
///
/// let config: ClientConfig = "10.0.0.1:9092, 10.0.0.2:9092".parse().unwrap();
/// assert_eq!(config.bootstrap, ["10.0.0.1:9092", "10.0.0.2:9092"]);
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of brokers to ask for cluster metadata first (Kafka's
    /// `bootstrap.servers`). They are tried in order; after that the client
    /// connects to the brokers the metadata names. Default
    /// `["127.0.0.1:9092"]`.
    pub bootstrap: Vec<String>,
    /// How long to wait for the answer to one request (`request.timeout.ms`,
    /// default 30 s). A fetch may additionally wait its long-poll time.
    pub request_timeout: Duration,
    /// How long to wait for a TCP + HTTP/2 connection (default 10 s).
    pub connect_timeout: Duration,
    /// Names this client in broker logs (`client.id`, default `runnel-client`).
    pub client_id: String,
    /// TLS to the brokers (Kafka's `security.protocol=SSL`); `None` is
    /// plaintext (default).
    pub tls: Option<TlsConfig>,
    /// Bearer token sent with every request (`authorization: Bearer`): a
    /// static token from the brokers' `auth.tokens.file`. Use it with TLS:
    /// over plaintext anyone on the path can read it.
    pub token: Option<BearerToken>,
}

/// A bearer token; its `Debug` form does not show it, so configs can be
/// logged.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    pub fn new(token: impl Into<String>) -> Self {
        BearerToken(token.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

/// TLS settings, with librdkafka's names for PEM files. The files are read
/// on every new connection, so a rotated client certificate is used from
/// the next reconnect on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM CA bundle the brokers' certificates must chain to
    /// (`ssl.ca.location`). Only these CAs are trusted.
    pub ca_location: PathBuf,
    /// PEM client certificate chain (`ssl.certificate.location`), for
    /// brokers with `ssl.client.auth=required|requested` (mutual TLS).
    pub certificate_location: Option<PathBuf>,
    /// PEM private key of that certificate (`ssl.key.location`).
    pub key_location: Option<PathBuf>,
    /// Name the broker's certificate must carry instead of the host the
    /// client connects to (`ssl.endpoint.identification` override): for
    /// brokers reached by IP address or through a tunnel.
    pub server_name: Option<String>,
    /// CA bundle and client identity given in memory rather than as files
    /// (a program that read them from elsewhere, e.g. the operator from a
    /// Kubernetes Secret). When set, the `*_location` fields are not read.
    pub pem: Option<TlsPem>,
}

/// PEM contents for [`TlsConfig::pem`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsPem {
    pub ca: Vec<u8>,
    /// Client certificate chain and private key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("TlsPem")
            .field("ca_bytes", &self.ca.len())
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl TlsConfig {
    /// Trust the CA bundle `ca` (PEM) and, with `identity`, present that
    /// certificate chain and key (PEM).
    pub fn from_pem(ca: Vec<u8>, identity: Option<(Vec<u8>, Vec<u8>)>) -> Self {
        TlsConfig {
            pem: Some(TlsPem { ca, identity }),
            ..TlsConfig::default()
        }
    }

    /// Trust the CA bundle at `ca_location`, present no client certificate.
    pub fn new(ca_location: impl Into<PathBuf>) -> Self {
        TlsConfig {
            ca_location: ca_location.into(),
            ..TlsConfig::default()
        }
    }

    /// Present the certificate chain and key in these PEM files (mTLS).
    pub fn identity(mut self, certificate: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.certificate_location = Some(certificate.into());
        self.key_location = Some(key.into());
        self
    }

    fn tonic_config(&self, host: &str) -> Result<ClientTlsConfig> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "cannot read the TLS {what} {}: {e}",
                    path.display()
                ))
            })
        };
        let config =
            ClientTlsConfig::new().domain_name(self.server_name.as_deref().unwrap_or(host));
        if let Some(pem) = &self.pem {
            let config = config.ca_certificate(Certificate::from_pem(&pem.ca));
            return Ok(match &pem.identity {
                Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
                None => config,
            });
        }
        let mut config =
            config.ca_certificate(Certificate::from_pem(read("CA bundle", &self.ca_location)?));
        match (&self.certificate_location, &self.key_location) {
            (Some(cert), Some(key)) => {
                config = config.identity(Identity::from_pem(
                    read("client certificate", cert)?,
                    read("client key", key)?,
                ));
            }
            (None, None) => {}
            _ => {
                return Err(Error::Config(
                    "TLS client certificate and key go together: set both or neither".into(),
                ));
            }
        }
        Ok(config)
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            bootstrap: vec!["127.0.0.1:9092".to_owned()],
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            client_id: "runnel-client".to_owned(),
            tls: None,
            token: None,
        }
    }
}

impl ClientConfig {
    /// Defaults with `bootstrap` parsed from `host:port[,host:port...]`.
    pub fn new(bootstrap: &str) -> Result<Self> {
        Ok(ClientConfig {
            bootstrap: parse_bootstrap(bootstrap)?,
            ..Default::default()
        })
    }

    /// Check the config and build the gRPC endpoint for `address`.
    pub(crate) fn endpoint(&self, address: &str) -> Result<Endpoint> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| Error::Config(format!("bad broker address {address:?}: {e}")))?;
        if let Some(tls) = &self.tls {
            let host = endpoint
                .uri()
                .host()
                .unwrap_or_default()
                .trim_matches(['[', ']']);
            let host = host.to_owned();
            endpoint = endpoint.tls_config(tls.tonic_config(&host)?).map_err(|e| {
                Error::Config(format!("TLS settings for {address} are not usable: {e}"))
            })?;
        }
        let endpoint = endpoint
            .user_agent(format!(
                "runnel-client/{} ({})",
                env!("CARGO_PKG_VERSION"),
                self.client_id
            ))
            .map_err(|e| Error::Config(format!("bad client_id {:?}: {e}", self.client_id)))?;
        Ok(endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20))
            .max_frame_size(MAX_FRAME_SIZE))
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.bootstrap.is_empty() {
            return Err(Error::Config(
                "bootstrap is empty; give at least one host:port".into(),
            ));
        }
        for address in &self.bootstrap {
            check_address(address)?;
        }
        if self.request_timeout.is_zero() {
            return Err(Error::Config(
                "request_timeout must be greater than zero".into(),
            ));
        }
        Ok(())
    }
}

impl FromStr for ClientConfig {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ClientConfig::new(s)
    }
}

/// Split `host:port[,host:port...]`, trimming blanks and an `http://`
/// prefix, and check every entry has a host and a numeric port.
pub fn parse_bootstrap(s: &str) -> Result<Vec<String>> {
    let addresses: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.strip_prefix("http://")
                .unwrap_or(a)
                .trim_end_matches('/')
                .to_owned()
        })
        .collect();
    if addresses.is_empty() {
        return Err(Error::Config(format!(
            "bootstrap {s:?} names no broker; expected host:port"
        )));
    }
    for a in &addresses {
        check_address(a)?;
    }
    Ok(addresses)
}

fn check_address(address: &str) -> Result<()> {
    let bad = || {
        Error::Config(format!(
            "bad broker address {address:?}; expected host:port"
        ))
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_accepts_comma_separated_list() {
        assert_eq!(
            parse_bootstrap(" a:1,b:2 ,, http://c:3/").unwrap(),
            vec!["a:1".to_owned(), "b:2".into(), "c:3".into()]
        );
        assert_eq!(
            parse_bootstrap("[::1]:9092").unwrap(),
            vec!["[::1]:9092".to_owned()]
        );
    }

    #[test]
    fn bootstrap_rejects_missing_port() {
        for bad in [
            "",
            " , ",
            "localhost",
            "localhost:",
            ":9092",
            "host:99999",
            "host:http",
        ] {
            let err = parse_bootstrap(bad).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad:?} -> {err}");
        }
    }

    #[test]
    fn endpoint_builds_for_valid_config() {
        let config = ClientConfig::default();
        config.validate().unwrap();
        assert_eq!(
            config.endpoint("127.0.0.1:9092").unwrap().uri().port_u16(),
            Some(9092)
        );
    }
}
