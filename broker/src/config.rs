//! Broker configuration: command-line flags, `RUNNEL_*` environment
//! variables and an optional TOML file, in that order of precedence, over
//! documented defaults.
//!
//! Names follow Kafka's broker configs where one exists: the flag
//! `--log-retention-ms`, the variable `RUNNEL_LOG_RETENTION_MS` and the file
//! key `"log.retention.ms"` all set Kafka's `log.retention.ms`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

use crate::topic::ConfigDefaults;
use crate::{Error, Result};

/// Declares every knob once: the clap flag (with its env var and help), the
/// file key, and the overlay onto `BrokerConfig`.
macro_rules! knobs {
    ($( $(#[doc = $doc:literal])* $field:ident : $ty:ty, file = $key:literal, env = $env:literal; )*) => {
        /// `runnel-broker` command line. Every flag can also be set by its
        /// environment variable or in the `--config` file.
        #[derive(Debug, Clone, Default, Parser)]
        #[command(name = "runnel-broker", version, about = "Runnel broker: a Kafka-style commit log over gRPC")]
        pub struct BrokerArgs {
            /// TOML file with broker settings; keys are the Kafka-style names
            /// shown in brackets below, e.g. "log.retention.ms" = 3600000.
            #[arg(long, env = "RUNNEL_CONFIG", value_name = "FILE")]
            pub config: Option<PathBuf>,
            $(
                $(#[doc = $doc])*
                #[doc = concat!("[file key: \"", $key, "\"]")]
                #[arg(long, env = $env, allow_negative_numbers = true)]
                pub $field: Option<$ty>,
            )*
        }

        /// Every broker config key (the file keys), for telling a static
        /// key from an unknown one.
        pub const BROKER_KEYS: &[&str] = &[$($key),*];

        /// The `--config` file: every key optional, unknown keys refused.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileConfig {
            $( #[serde(rename = $key)] $field: Option<$ty>, )*
        }

        impl BrokerConfig {
            fn overlay_file(&mut self, f: FileConfig) {
                $( if let Some(v) = f.$field { self.$field = v; } )*
            }
            fn overlay_args(&mut self, a: &BrokerArgs) {
                $( if let Some(v) = &a.$field { self.$field = v.clone(); } )*
            }
        }
    };
}

knobs! {
    /// Directory for partition logs and the embedded metadata store.
    data_dir: PathBuf, file = "data.dir", env = "RUNNEL_DATA_DIR";
    /// Address the gRPC API listens on.
    listen: SocketAddr, file = "listen", env = "RUNNEL_LISTEN";
    /// Address for /healthz, /readyz and Prometheus /metrics.
    http_listen: SocketAddr, file = "http.listen", env = "RUNNEL_HTTP_LISTEN";
    /// host:port clients should use to reach this broker (default: the listen address).
    advertise: String, file = "advertised.listener", env = "RUNNEL_ADVERTISE";
    /// An extra Kafka-protocol-only listener, host:port (empty = none). The Kafka protocol is also served on --listen unless --kafka-shared-listener=false.
    kafka_listen: String, file = "kafka.listen", env = "RUNNEL_KAFKA_LISTEN";
    /// host:port Kafka clients are told to use for this broker's --kafka-listen listener (default: its listen address).
    kafka_advertise: String, file = "kafka.advertised.listener", env = "RUNNEL_KAFKA_ADVERTISE";
    /// Serve the Kafka protocol next to gRPC on --listen (told apart by a connection's first bytes).
    kafka_shared_listener: bool, file = "kafka.shared.listener", env = "RUNNEL_KAFKA_SHARED_LISTENER";
    /// This broker's id.
    broker_id: i32, file = "broker.id", env = "RUNNEL_BROKER_ID";
    /// Rack (failure domain) of this broker, for rack-aware replica placement.
    rack: String, file = "broker.rack", env = "RUNNEL_RACK";
    /// Cluster name: metadata lives under `/runnel/<cluster>/`.
    cluster: String, file = "cluster.name", env = "RUNNEL_CLUSTER";
    /// etcd endpoints, comma-separated (e.g. http://10.0.0.1:2379,http://10.0.0.2:2379): cluster mode. Empty = single node on the embedded metadata store.
    etcd_endpoints: String, file = "etcd.endpoints", env = "RUNNEL_ETCD_ENDPOINTS";
    /// Lease TTL of this broker's registration, in ms: a broker silent this long is dead to the cluster (etcd rounds up to whole seconds and enforces its own minimum).
    broker_session_timeout_ms: u64, file = "broker.session.timeout.ms", env = "RUNNEL_BROKER_SESSION_TIMEOUT_MS";
    /// A follower that has not caught up with its leader for this long leaves the ISR, in ms.
    replica_lag_time_max_ms: u64, file = "replica.lag.time.max.ms", env = "RUNNEL_REPLICA_LAG_TIME_MAX_MS";
    /// How long a leader may hold a follower's fetch waiting for data, in ms.
    replica_fetch_wait_max_ms: u64, file = "replica.fetch.wait.max.ms", env = "RUNNEL_REPLICA_FETCH_WAIT_MAX_MS";
    /// Largest follower fetch response, in bytes.
    replica_fetch_response_max_bytes: u32, file = "replica.fetch.response.max.bytes", env = "RUNNEL_REPLICA_FETCH_RESPONSE_MAX_BYTES";
    /// Pause after a failed follower fetch, in ms.
    replica_fetch_backoff_ms: u64, file = "replica.fetch.backoff.ms", env = "RUNNEL_REPLICA_FETCH_BACKOFF_MS";
    /// Move leadership back to preferred replicas once they are in sync again.
    auto_leader_rebalance_enable: bool, file = "auto.leader.rebalance.enable", env = "RUNNEL_AUTO_LEADER_REBALANCE_ENABLE";
    /// How often the controller restores preferred leaders, in seconds.
    leader_imbalance_check_interval_seconds: u64, file = "leader.imbalance.check.interval.seconds", env = "RUNNEL_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS";
    /// Default unclean.leader.election.enable: let an out-of-sync replica lead (losing acknowledged records) rather than leave a partition offline.
    unclean_leader_election_enable: bool, file = "unclean.leader.election.enable", env = "RUNNEL_UNCLEAN_LEADER_ELECTION_ENABLE";
    /// Forget an idempotent producer's sequence numbers after this long without writes, in ms.
    producer_id_expiration_ms: i64, file = "producer.id.expiration.ms", env = "RUNNEL_PRODUCER_ID_EXPIRATION_MS";
    /// Partitions of a topic created without an explicit count.
    num_partitions: u32, file = "num.partitions", env = "RUNNEL_NUM_PARTITIONS";
    /// Replication factor of a topic created without an explicit one.
    default_replication_factor: u32, file = "default.replication.factor", env = "RUNNEL_DEFAULT_REPLICATION_FACTOR";
    /// Default segment.bytes: roll a new segment after this many bytes.
    log_segment_bytes: i64, file = "log.segment.bytes", env = "RUNNEL_LOG_SEGMENT_BYTES";
    /// Default segment.ms: roll a new segment after this long.
    log_roll_ms: i64, file = "log.roll.ms", env = "RUNNEL_LOG_ROLL_MS";
    /// Default retention.ms: delete segments older than this (-1 = keep forever).
    log_retention_ms: i64, file = "log.retention.ms", env = "RUNNEL_LOG_RETENTION_MS";
    /// Default retention.bytes: keep at most this many bytes per partition (-1 = no limit).
    log_retention_bytes: i64, file = "log.retention.bytes", env = "RUNNEL_LOG_RETENTION_BYTES";
    /// How often the cleaner checks retention, in ms.
    log_retention_check_interval_ms: u64, file = "log.retention.check.interval.ms", env = "RUNNEL_LOG_RETENTION_CHECK_INTERVAL_MS";
    /// Default max.message.bytes: the largest record batch a topic accepts.
    message_max_bytes: i64, file = "message.max.bytes", env = "RUNNEL_MESSAGE_MAX_BYTES";
    /// Default flush.messages: fsync after this many unflushed messages (1 = every append).
    log_flush_interval_messages: i64, file = "log.flush.interval.messages", env = "RUNNEL_LOG_FLUSH_INTERVAL_MESSAGES";
    /// Default flush.ms: fsync data older than this many ms (see docs/storage.md).
    log_flush_interval_ms: i64, file = "log.flush.interval.ms", env = "RUNNEL_LOG_FLUSH_INTERVAL_MS";
    /// How often the flusher checks flush.ms, in ms.
    log_flush_scheduler_interval_ms: u64, file = "log.flush.scheduler.interval.ms", env = "RUNNEL_LOG_FLUSH_SCHEDULER_INTERVAL_MS";
    /// Default index.interval.bytes: bytes of log between sparse index entries.
    log_index_interval_bytes: i64, file = "log.index.interval.bytes", env = "RUNNEL_LOG_INDEX_INTERVAL_BYTES";
    /// Default segment.index.bytes: maximum size of a segment's offset index.
    log_index_size_max_bytes: i64, file = "log.index.size.max.bytes", env = "RUNNEL_LOG_INDEX_SIZE_MAX_BYTES";
    /// Default message.timestamp.after.max.ms: refuse records timestamped more than this far ahead of the broker's clock.
    log_message_timestamp_after_max_ms: i64, file = "log.message.timestamp.after.max.ms", env = "RUNNEL_LOG_MESSAGE_TIMESTAMP_AFTER_MAX_MS";
    /// Default message.timestamp.before.max.ms: refuse records timestamped more than this far behind the broker's clock.
    log_message_timestamp_before_max_ms: i64, file = "log.message.timestamp.before.max.ms", env = "RUNNEL_LOG_MESSAGE_TIMESTAMP_BEFORE_MAX_MS";
    /// Default message.timestamp.type: CreateTime (the producer's clock) or LogAppendTime (the leader's clock when it appends).
    log_message_timestamp_type: String, file = "log.message.timestamp.type", env = "RUNNEL_LOG_MESSAGE_TIMESTAMP_TYPE";
    /// Default page.cache.drop.behind.bytes: keep only this much of the end of each active segment in the page cache (-1 = leave it to the kernel).
    log_page_cache_drop_behind_bytes: i64, file = "log.page.cache.drop.behind.bytes", env = "RUNNEL_LOG_PAGE_CACHE_DROP_BEHIND_BYTES";
    /// Default preallocate: reserve each segment's disk before appending to it (see docs/storage.md).
    log_preallocate: bool, file = "log.preallocate", env = "RUNNEL_LOG_PREALLOCATE";
    /// Default min.insync.replicas for acks=all.
    min_insync_replicas: i64, file = "min.insync.replicas", env = "RUNNEL_MIN_INSYNC_REPLICAS";
    /// Largest gRPC request the broker accepts, in bytes.
    socket_request_max_bytes: usize, file = "socket.request.max.bytes", env = "RUNNEL_SOCKET_REQUEST_MAX_BYTES";
    /// Default acks=all wait when a produce request gives no timeout, in ms.
    request_timeout_ms: u64, file = "request.timeout.ms", env = "RUNNEL_REQUEST_TIMEOUT_MS";
    /// PEM certificate chain of this broker: set, the gRPC listener speaks TLS only (see docs/security.md).
    ssl_certificate_location: PathBuf, file = "ssl.certificate.location", env = "RUNNEL_SSL_CERTIFICATE_LOCATION";
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of ssl.certificate.location.
    ssl_key_location: PathBuf, file = "ssl.key.location", env = "RUNNEL_SSL_KEY_LOCATION";
    /// PEM CA bundle that client certificates must chain to (mTLS).
    ssl_ca_location: PathBuf, file = "ssl.ca.location", env = "RUNNEL_SSL_CA_LOCATION";
    /// Client certificates: none, requested (verified if sent) or required (mTLS).
    ssl_client_auth: String, file = "ssl.client.auth", env = "RUNNEL_SSL_CLIENT_AUTH";
    /// How often the TLS files are checked for changes (rotation without a restart), in ms.
    ssl_reload_interval_ms: u64, file = "ssl.reload.interval.ms", env = "RUNNEL_SSL_RELOAD_INTERVAL_MS";
    /// PEM CA bundle etcd's certificate must chain to: set, etcd is reached over TLS (https:// endpoints).
    etcd_ssl_ca_location: PathBuf, file = "etcd.ssl.ca.location", env = "RUNNEL_ETCD_SSL_CA_LOCATION";
    /// PEM client certificate for etcd's --client-cert-auth.
    etcd_ssl_certificate_location: PathBuf, file = "etcd.ssl.certificate.location", env = "RUNNEL_ETCD_SSL_CERTIFICATE_LOCATION";
    /// PEM private key of etcd.ssl.certificate.location.
    etcd_ssl_key_location: PathBuf, file = "etcd.ssl.key.location", env = "RUNNEL_ETCD_SSL_KEY_LOCATION";
    /// Check every request against the ACLs (default deny); see docs/security.md.
    authorizer_enable: bool, file = "authorizer.enable", env = "RUNNEL_AUTHORIZER_ENABLE";
    /// Principals allowed everything, semicolon-separated (e.g. User:admin;User:broker).
    super_users: String, file = "super.users", env = "RUNNEL_SUPER_USERS";
    /// Allow a request when no ACL at all matches its resource (Kafka's escape hatch; default false).
    allow_everyone_if_no_acl_found: bool, file = "allow.everyone.if.no.acl.found", env = "RUNNEL_ALLOW_EVERYONE_IF_NO_ACL_FOUND";
    /// Bearer tokens: a file of token,user[,...] lines (kube-apiserver's --token-auth-file format).
    auth_tokens_file: PathBuf, file = "auth.tokens.file", env = "RUNNEL_AUTH_TOKENS_FILE";
    /// Verify bearer tokens that are not in auth.tokens.file (Kubernetes ServiceAccount tokens) with the Kubernetes API server's TokenReview.
    auth_token_review_enable: bool, file = "auth.token.review.enable", env = "RUNNEL_AUTH_TOKEN_REVIEW_ENABLE";
    /// Audiences a reviewed token must be meant for, comma-separated (empty: the API server's own).
    auth_token_review_audiences: String, file = "auth.token.review.audiences", env = "RUNNEL_AUTH_TOKEN_REVIEW_AUDIENCES";
    /// How long a TokenReview's acceptance is trusted without asking again, in ms (refusals: at most 10 s).
    auth_token_review_cache_ms: u64, file = "auth.token.review.cache.ms", env = "RUNNEL_AUTH_TOKEN_REVIEW_CACHE_MS";
    /// Serve /healthz, /readyz and /metrics over HTTPS with the gRPC listener's certificate (needs ssl.certificate.location).
    http_ssl_enable: bool, file = "http.ssl.enable", env = "RUNNEL_HTTP_SSL_ENABLE";
}

/// Effective broker configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// Empty = derive from `listen`.
    pub advertise: String,
    /// Empty = no Kafka-only listener.
    pub kafka_listen: String,
    /// Empty = derive from `kafka_listen`.
    pub kafka_advertise: String,
    /// True: Kafka clients can use the gRPC port (the README's
    /// `kcat -b 127.0.0.1:9092` works out of the box).
    pub kafka_shared_listener: bool,
    pub broker_id: i32,
    pub rack: String,
    pub cluster: String,
    /// Comma-separated; empty = single node (embedded store).
    pub etcd_endpoints: String,
    /// 1000 ms, for failover within 2 s: etcd grants at least its own
    /// minimum (2 s with its default raft timing, 1 s with
    /// `--heartbeat-interval=50 --election-timeout=500`, as the dev cluster
    /// and the chart run it), and keep-alives follow what it granted.
    pub broker_session_timeout_ms: u64,
    /// Kafka's default, 30 s.
    pub replica_lag_time_max_ms: u64,
    pub replica_fetch_wait_max_ms: u64,
    pub replica_fetch_response_max_bytes: u32,
    pub replica_fetch_backoff_ms: u64,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: u64,
    pub unclean_leader_election_enable: bool,
    pub producer_id_expiration_ms: i64,
    pub num_partitions: u32,
    pub default_replication_factor: u32,
    pub log_segment_bytes: i64,
    pub log_roll_ms: i64,
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_retention_check_interval_ms: u64,
    pub message_max_bytes: i64,
    /// Kafka's default is "never" (i64::MAX): durability comes from
    /// replication and the OS writeback. See docs/storage.md.
    pub log_flush_interval_messages: i64,
    /// 1000 ms by default, like Redis' `appendfsync everysec`: a power loss
    /// loses at most about a second of acknowledged writes on a single node;
    /// a crash of the broker process loses nothing (the page cache survives).
    pub log_flush_interval_ms: i64,
    pub log_flush_scheduler_interval_ms: u64,
    pub log_index_interval_bytes: i64,
    pub log_index_size_max_bytes: i64,
    /// -1 (off) by default: Kafka leaves the page cache to the kernel.
    /// See `log::drop_behind`.
    pub log_message_timestamp_after_max_ms: i64,
    pub log_message_timestamp_before_max_ms: i64,
    pub log_message_timestamp_type: String,
    pub log_page_cache_drop_behind_bytes: i64,
    /// Off by default, as in Kafka. See `log::preallocate`.
    pub log_preallocate: bool,
    pub min_insync_replicas: i64,
    /// Kafka's default, 100 MiB.
    pub socket_request_max_bytes: usize,
    pub request_timeout_ms: u64,
    /// Empty = plaintext listener.
    pub ssl_certificate_location: PathBuf,
    pub ssl_key_location: PathBuf,
    /// Empty = no client certificates accepted.
    pub ssl_ca_location: PathBuf,
    pub ssl_client_auth: String,
    pub ssl_reload_interval_ms: u64,
    /// Empty = plaintext to etcd.
    pub etcd_ssl_ca_location: PathBuf,
    pub etcd_ssl_certificate_location: PathBuf,
    pub etcd_ssl_key_location: PathBuf,
    pub authorizer_enable: bool,
    pub super_users: String,
    pub allow_everyone_if_no_acl_found: bool,
    /// Empty = no static bearer tokens. Read again when it changes.
    pub auth_tokens_file: PathBuf,
    /// Off by default: the single node has no Kubernetes API to ask.
    pub auth_token_review_enable: bool,
    /// Comma-separated; empty = the API server's own audiences.
    pub auth_token_review_audiences: String,
    /// 120 000 ms, kube-apiserver's webhook token cache TTL: a revoked
    /// ServiceAccount token is accepted for at most this long.
    pub auth_token_review_cache_ms: u64,
    /// Off by default: probes and Prometheus speak plain HTTP unless told.
    pub http_ssl_enable: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from("runnel-data"),
            listen: "127.0.0.1:9092".parse().expect("valid"),
            http_listen: "127.0.0.1:9095".parse().expect("valid"),
            advertise: String::new(),
            kafka_listen: String::new(),
            kafka_advertise: String::new(),
            kafka_shared_listener: true,
            broker_id: 0,
            rack: String::new(),
            cluster: "runnel".into(),
            etcd_endpoints: String::new(),
            broker_session_timeout_ms: 1000,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_response_max_bytes: 10 << 20,
            replica_fetch_backoff_ms: 100,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            unclean_leader_election_enable: false,
            producer_id_expiration_ms: 86_400_000,
            num_partitions: 1,
            default_replication_factor: 1,
            log_segment_bytes: 1 << 30,
            log_roll_ms: 7 * 24 * 3600 * 1000,
            log_retention_ms: 7 * 24 * 3600 * 1000,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 300_000,
            message_max_bytes: 1_048_588,
            log_flush_interval_messages: i64::MAX,
            log_flush_interval_ms: 1000,
            log_flush_scheduler_interval_ms: 200,
            log_index_interval_bytes: 4096,
            log_index_size_max_bytes: 10 * 1024 * 1024,
            log_message_timestamp_after_max_ms: 3_600_000,
            log_message_timestamp_before_max_ms: i64::MAX,
            log_message_timestamp_type: "CreateTime".into(),
            log_page_cache_drop_behind_bytes: -1,
            log_preallocate: false,
            min_insync_replicas: 1,
            socket_request_max_bytes: 100 * 1024 * 1024,
            request_timeout_ms: 30_000,
            ssl_certificate_location: PathBuf::new(),
            ssl_key_location: PathBuf::new(),
            ssl_ca_location: PathBuf::new(),
            ssl_client_auth: "none".into(),
            ssl_reload_interval_ms: 5_000,
            etcd_ssl_ca_location: PathBuf::new(),
            etcd_ssl_certificate_location: PathBuf::new(),
            etcd_ssl_key_location: PathBuf::new(),
            authorizer_enable: false,
            super_users: String::new(),
            allow_everyone_if_no_acl_found: false,
            auth_tokens_file: PathBuf::new(),
            auth_token_review_enable: false,
            auth_token_review_audiences: String::new(),
            auth_token_review_cache_ms: 120_000,
            http_ssl_enable: false,
        }
    }
}

impl BrokerConfig {
    /// Defaults, then the `--config` file, then env and flags (clap has
    /// already merged those two, flags first).
    pub fn load(args: &BrokerArgs) -> Result<Self> {
        let mut config = BrokerConfig::default();
        if let Some(path) = &args.config {
            config.overlay_file(read_file(path)?);
        }
        config.overlay_args(args);
        config.validate()?;
        Ok(config)
    }

    /// Parse a TOML config file's contents (used by `load` and tests).
    pub fn from_toml(text: &str) -> Result<Self> {
        let file: FileConfig =
            toml::from_str(text).map_err(|e| Error::InvalidRequest(format!("config file: {e}")))?;
        let mut config = BrokerConfig::default();
        config.overlay_file(file);
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        self.topic_defaults()?;
        if self.cluster.is_empty() || self.cluster.contains('/') {
            return Err(Error::InvalidConfig {
                key: "cluster.name".into(),
                value: self.cluster.clone(),
                reason: "must be non-empty and contain no '/'".into(),
            });
        }
        if self.broker_id < 0 {
            return Err(Error::InvalidConfig {
                key: "broker.id".into(),
                value: self.broker_id.to_string(),
                reason: "must be 0 or more".into(),
            });
        }
        if self.replica_fetch_wait_max_ms >= self.replica_lag_time_max_ms {
            return Err(Error::InvalidConfig {
                key: "replica.fetch.wait.max.ms".into(),
                value: self.replica_fetch_wait_max_ms.to_string(),
                reason: format!(
                    "must be below replica.lag.time.max.ms ({}), or idle followers would drop out of the ISR",
                    self.replica_lag_time_max_ms
                ),
            });
        }
        self.kafka_listen_address()?;
        if !self.kafka_advertise.is_empty() && self.kafka_listen.is_empty() {
            return Err(Error::InvalidConfig {
                key: "kafka.advertised.listener".into(),
                value: self.kafka_advertise.clone(),
                reason: "is set but kafka.listen is not; the shared listener is advertised by \
                         advertised.listener"
                    .into(),
            });
        }
        let tls = crate::server::tls::TlsSettings::from_config(self)?;
        if self.http_ssl_enable && tls.is_none() {
            return Err(Error::InvalidConfig {
                key: "http.ssl.enable".into(),
                value: "true".into(),
                reason: "needs ssl.certificate.location and ssl.key.location: the HTTP endpoint \
                         serves the gRPC listener's certificate"
                    .into(),
            });
        }
        self.etcd_tls()?;
        if self.num_partitions == 0 {
            return Err(Error::InvalidConfig {
                key: "num.partitions".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// TLS to etcd, when `etcd.ssl.ca.location` is set.
    pub fn etcd_tls(&self) -> Result<Option<crate::meta::EtcdTls>> {
        let set = |p: &PathBuf| !p.as_os_str().is_empty();
        let (cert, key) = (
            &self.etcd_ssl_certificate_location,
            &self.etcd_ssl_key_location,
        );
        if set(cert) != set(key) {
            let (key_name, value) = if set(cert) {
                ("etcd.ssl.certificate.location", cert)
            } else {
                ("etcd.ssl.key.location", key)
            };
            return Err(Error::InvalidConfig {
                key: key_name.into(),
                value: value.display().to_string(),
                reason: "etcd.ssl.certificate.location and etcd.ssl.key.location go together"
                    .into(),
            });
        }
        if !set(&self.etcd_ssl_ca_location) {
            if set(cert) {
                return Err(Error::InvalidConfig {
                    key: "etcd.ssl.certificate.location".into(),
                    value: cert.display().to_string(),
                    reason: "needs etcd.ssl.ca.location, the CA of etcd's own certificate".into(),
                });
            }
            return Ok(None);
        }
        Ok(Some(crate::meta::EtcdTls {
            ca: self.etcd_ssl_ca_location.clone(),
            identity: set(cert).then(|| (cert.clone(), key.clone())),
        }))
    }

    /// The etcd endpoints, or none for single-node mode. Endpoints without
    /// a scheme get `https://` when etcd TLS is configured, else `http://`.
    pub fn etcd_endpoints(&self) -> Vec<String> {
        let scheme = if self.etcd_ssl_ca_location.as_os_str().is_empty() {
            "http"
        } else {
            "https"
        };
        self.etcd_endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                if e.contains("://") {
                    e.to_owned()
                } else {
                    format!("{scheme}://{e}")
                }
            })
            .collect()
    }

    /// The address clients should connect to.
    pub fn advertised_address(&self) -> String {
        if self.advertise.is_empty() {
            self.listen.to_string()
        } else {
            self.advertise.clone()
        }
    }

    /// The Kafka-only listener's address, if one is configured.
    pub fn kafka_listen_address(&self) -> Result<Option<SocketAddr>> {
        if self.kafka_listen.is_empty() {
            return Ok(None);
        }
        self.kafka_listen
            .parse()
            .map(Some)
            .map_err(|e| Error::InvalidConfig {
                key: "kafka.listen".into(),
                value: self.kafka_listen.clone(),
                reason: format!("{e}; give an IP address and port, e.g. 0.0.0.0:9093"),
            })
    }

    /// host:port Kafka clients should use for this broker: the Kafka-only
    /// listener's when there is one, else the shared listener's.
    pub fn kafka_advertised_address(&self) -> Option<String> {
        if !self.kafka_advertise.is_empty() {
            return Some(self.kafka_advertise.clone());
        }
        if !self.kafka_listen.is_empty() {
            return Some(self.kafka_listen.clone());
        }
        None
    }

    /// Broker-level defaults for topic configs (Kafka's broker → topic key
    /// mapping, [`DYNAMIC_CONFIGS`]), as this broker's config file and flags
    /// set them; dynamic cluster-wide defaults go on top at run time.
    pub fn topic_defaults(&self) -> Result<ConfigDefaults> {
        ConfigDefaults::new(
            DYNAMIC_CONFIGS
                .iter()
                .map(|d| (d.topic_key.to_owned(), (d.value)(self)))
                .collect::<BTreeMap<_, _>>(),
        )
    }
}

/// A broker config that is the cluster-wide default of a topic config, and
/// so may change at run time (Kafka's dynamic broker configs).
#[derive(Debug)]
pub struct DynamicConfig {
    /// The broker key, e.g. `log.retention.ms`: dynamic configs are set by
    /// this name, like Kafka's `kafka-configs --entity-type brokers`.
    pub broker_key: &'static str,
    /// The topic config it defaults, e.g. `retention.ms`.
    pub topic_key: &'static str,
    /// Its static value in a [`BrokerConfig`] (file, env, flags, default).
    pub value: fn(&BrokerConfig) -> String,
}

/// The one broker → topic config mapping: what `topic_defaults` reads and
/// exactly the keys `AlterClusterConfigs` accepts. Sorted by broker key.
pub const DYNAMIC_CONFIGS: &[DynamicConfig] = &[
    DynamicConfig {
        broker_key: "log.flush.interval.messages",
        topic_key: "flush.messages",
        value: |c| c.log_flush_interval_messages.to_string(),
    },
    DynamicConfig {
        broker_key: "log.flush.interval.ms",
        topic_key: "flush.ms",
        value: |c| c.log_flush_interval_ms.to_string(),
    },
    DynamicConfig {
        broker_key: "log.index.interval.bytes",
        topic_key: "index.interval.bytes",
        value: |c| c.log_index_interval_bytes.to_string(),
    },
    DynamicConfig {
        broker_key: "log.index.size.max.bytes",
        topic_key: "segment.index.bytes",
        value: |c| c.log_index_size_max_bytes.to_string(),
    },
    DynamicConfig {
        broker_key: "log.message.timestamp.after.max.ms",
        topic_key: "message.timestamp.after.max.ms",
        value: |c| c.log_message_timestamp_after_max_ms.to_string(),
    },
    DynamicConfig {
        broker_key: "log.message.timestamp.before.max.ms",
        topic_key: "message.timestamp.before.max.ms",
        value: |c| c.log_message_timestamp_before_max_ms.to_string(),
    },
    DynamicConfig {
        broker_key: "log.message.timestamp.type",
        topic_key: "message.timestamp.type",
        value: |c| c.log_message_timestamp_type.clone(),
    },
    DynamicConfig {
        broker_key: "log.page.cache.drop.behind.bytes",
        topic_key: "page.cache.drop.behind.bytes",
        value: |c| c.log_page_cache_drop_behind_bytes.to_string(),
    },
    DynamicConfig {
        broker_key: "log.preallocate",
        topic_key: "preallocate",
        value: |c| c.log_preallocate.to_string(),
    },
    DynamicConfig {
        broker_key: "log.retention.bytes",
        topic_key: "retention.bytes",
        value: |c| c.log_retention_bytes.to_string(),
    },
    DynamicConfig {
        broker_key: "log.retention.ms",
        topic_key: "retention.ms",
        value: |c| c.log_retention_ms.to_string(),
    },
    DynamicConfig {
        broker_key: "log.roll.ms",
        topic_key: "segment.ms",
        value: |c| c.log_roll_ms.to_string(),
    },
    DynamicConfig {
        broker_key: "log.segment.bytes",
        topic_key: "segment.bytes",
        value: |c| c.log_segment_bytes.to_string(),
    },
    DynamicConfig {
        broker_key: "message.max.bytes",
        topic_key: "max.message.bytes",
        value: |c| c.message_max_bytes.to_string(),
    },
    DynamicConfig {
        broker_key: "min.insync.replicas",
        topic_key: "min.insync.replicas",
        value: |c| c.min_insync_replicas.to_string(),
    },
    DynamicConfig {
        broker_key: "unclean.leader.election.enable",
        topic_key: "unclean.leader.election.enable",
        value: |c| c.unclean_leader_election_enable.to_string(),
    },
];

/// The dynamic config named `broker_key`, if it is one.
pub fn dynamic_config(broker_key: &str) -> Option<&'static DynamicConfig> {
    DYNAMIC_CONFIGS.iter().find(|d| d.broker_key == broker_key)
}

/// Whether `broker_key` may change at run time (a cluster-wide default of a
/// topic config); every other broker config is read at start-up only.
pub fn is_dynamic(broker_key: &str) -> bool {
    dynamic_config(broker_key).is_some()
}

/// The dynamic config named `broker_key`, or an [`Error::InvalidConfig`]
/// (naming `value`, which may be empty for a delete) saying why not: a
/// static broker config needs a restart, an unknown key lists the dynamic
/// ones (and a topic key names its broker-wide counterpart).
pub fn check_dynamic_key(broker_key: &str, value: &str) -> Result<&'static DynamicConfig> {
    let invalid = |reason: String| Error::InvalidConfig {
        key: broker_key.to_owned(),
        value: value.to_owned(),
        reason,
    };
    if let Some(dynamic) = dynamic_config(broker_key) {
        return Ok(dynamic);
    }
    if BROKER_KEYS.contains(&broker_key) {
        return Err(invalid(format!(
            "{broker_key} cannot change at run time (a static broker config: change the \
             config file and restart the broker); dynamic keys: {}",
            dynamic_keys()
        )));
    }
    if let Some(d) = DYNAMIC_CONFIGS.iter().find(|d| d.topic_key == broker_key) {
        return Err(invalid(format!(
            "{broker_key} is a topic config (set it on a topic with `runnel topic alter`); \
             its cluster-wide default is the broker config {}",
            d.broker_key
        )));
    }
    Err(invalid(format!(
        "unknown dynamic broker config; dynamic keys: {}",
        dynamic_keys()
    )))
}

/// Check a dynamic config's key and value as `AlterClusterConfigs` does;
/// returns the topic key it defaults. A static broker key, an unknown key
/// and a bad value each get an [`Error::InvalidConfig`] saying what to do.
pub fn validate_dynamic(broker_key: &str, value: &str) -> Result<&'static str> {
    let dynamic = check_dynamic_key(broker_key, value)?;
    // The same checks as the topic config it defaults, reported under the
    // broker key the caller used.
    crate::topic::config::validate(dynamic.topic_key, value).map_err(|e| match e {
        Error::InvalidConfig { reason, .. } => Error::InvalidConfig {
            key: broker_key.to_owned(),
            value: value.to_owned(),
            reason,
        },
        other => other,
    })?;
    Ok(dynamic.topic_key)
}

fn dynamic_keys() -> String {
    DYNAMIC_CONFIGS
        .iter()
        .map(|d| d.broker_key)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks the text of a `--config` file without starting a broker: unknown
/// keys and values of the wrong type are refused (`FileConfig` denies unknown
/// fields), and so are values the broker would refuse at startup, judged with
/// every other setting at its default. The operator runs a `Cluster`'s
/// `spec.config` through this, so a typo fails at apply time rather than as a
/// crash-looping pod.
pub fn check_config_file(text: &str) -> Result<()> {
    BrokerConfig::from_toml(text).map(|_| ())
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io("reading config file", path, e))?;
    toml::from_str(&text)
        .map_err(|e| Error::InvalidRequest(format!("config file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.toml");
        std::fs::write(&path, "\"log.retention.ms\" = 5000\n\"broker.id\" = 3\n").unwrap();
        let args = BrokerArgs {
            config: Some(path),
            broker_id: Some(7),
            ..Default::default()
        };
        let c = BrokerConfig::load(&args).unwrap();
        assert_eq!(c.log_retention_ms, 5000);
        assert_eq!(c.broker_id, 7, "flags beat the file");
        assert_eq!(c.listen, BrokerConfig::default().listen);
    }

    #[test]
    fn half_configured_tls_is_refused_with_the_missing_setting_named() {
        for (toml, named) in [
            (
                "\"ssl.certificate.location\" = \"b.crt\"",
                "ssl.key.location",
            ),
            (
                "\"ssl.key.location\" = \"b.key\"",
                "ssl.certificate.location",
            ),
            ("\"ssl.client.auth\" = \"required\"", "needs TLS"),
            ("\"http.ssl.enable\" = true", "http.ssl.enable"),
            (
                "\"ssl.certificate.location\" = \"b.crt\"\n\"ssl.key.location\" = \"b.key\"\n\"ssl.client.auth\" = \"required\"",
                "ssl.ca.location",
            ),
            (
                "\"ssl.client.auth\" = \"always\"",
                "none, requested or required",
            ),
            (
                "\"etcd.ssl.certificate.location\" = \"c.crt\"",
                "etcd.ssl.key.location go together",
            ),
            (
                "\"etcd.ssl.certificate.location\" = \"c.crt\"\n\"etcd.ssl.key.location\" = \"c.key\"",
                "etcd.ssl.ca.location",
            ),
        ] {
            let err = BrokerConfig::from_toml(toml).unwrap_err().to_string();
            assert!(err.contains(named), "{toml}: {err}");
        }
        let c = BrokerConfig::from_toml(
            "\"etcd.ssl.ca.location\" = \"ca.crt\"\n\"etcd.endpoints\" = \"e1:2379,http://e2:2379\"",
        )
        .unwrap();
        assert_eq!(
            c.etcd_tls().unwrap(),
            Some(crate::meta::EtcdTls {
                ca: "ca.crt".into(),
                identity: None
            })
        );
        assert_eq!(
            c.etcd_endpoints(),
            ["https://e1:2379", "http://e2:2379"],
            "bare endpoints get https with etcd TLS; explicit schemes stay"
        );
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_refused() {
        let err = BrokerConfig::from_toml("\"log.retention.mins\" = 5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("log.retention.mins"), "{err}");
        let err = BrokerConfig::from_toml("\"log.retention.ms\" = -5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("retention.ms"), "{err}");
    }

    #[test]
    fn check_config_file_names_what_is_wrong() {
        check_config_file(
            "\"log.retention.ms\" = 5000\n\"auto.leader.rebalance.enable\" = false\n",
        )
        .unwrap();
        let err = check_config_file("\"log.retention.mins\" = 5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("log.retention.mins"), "{err}");
        let err = check_config_file("\"num.partitions\" = \"many\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("num.partitions"), "{err}");
        let err = check_config_file("\"num.partitions\" = 0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("num.partitions"), "{err}");
    }

    #[test]
    fn dynamic_configs_are_broker_keys_defaulting_known_topic_keys() {
        let defaults = BrokerConfig::default().topic_defaults().unwrap();
        let mut previous = "";
        for d in DYNAMIC_CONFIGS {
            assert!(BROKER_KEYS.contains(&d.broker_key), "{}", d.broker_key);
            assert!(
                crate::topic::config::is_known(d.topic_key),
                "{}",
                d.topic_key
            );
            assert!(
                previous < d.broker_key,
                "sorted: {previous} then {}",
                d.broker_key
            );
            previous = d.broker_key;
            // The built-in static values are Kafka's defaults, so an
            // untouched broker reports source DEFAULT.
            assert_eq!(
                defaults.effective(d.topic_key).unwrap().1,
                runnel_proto::v1::ConfigSource::Default,
                "{}",
                d.broker_key
            );
        }
        assert_eq!(DYNAMIC_CONFIGS.len(), 16);
        assert!(is_dynamic("log.retention.ms"));
        assert!(!is_dynamic("retention.ms"));
        assert!(!is_dynamic("data.dir"));
        let c = BrokerConfig {
            log_retention_ms: 42,
            ..Default::default()
        };
        let d = c.topic_defaults().unwrap();
        assert_eq!(
            d.effective("retention.ms").unwrap(),
            ("42".into(), runnel_proto::v1::ConfigSource::Broker)
        );
    }

    #[test]
    fn dynamic_validation_says_what_to_do() {
        assert_eq!(
            validate_dynamic("log.retention.ms", "3600000").unwrap(),
            "retention.ms"
        );
        for (key, value, want) in [
            (
                "data.dir",
                "/x",
                "data.dir cannot change at run time (a static broker config",
            ),
            ("num.partitions", "3", "restart the broker"),
            (
                "log.retention.mins",
                "5",
                "unknown dynamic broker config; dynamic keys: log.flush",
            ),
            (
                "retention.ms",
                "5",
                "cluster-wide default is the broker config log.retention.ms",
            ),
            ("log.retention.ms", "soon", "expected an integer"),
            ("log.segment.bytes", "10", "between 1024"),
            ("unclean.leader.election.enable", "yes", "true or false"),
        ] {
            let err = validate_dynamic(key, value).unwrap_err();
            assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains(want), "{key}={value}: {text}");
            assert!(text.contains(key), "names the key it was given: {text}");
        }
    }

    #[test]
    fn every_flag_has_help() {
        use clap::CommandFactory;
        let cmd = BrokerArgs::command();
        for arg in cmd.get_arguments() {
            assert!(arg.get_help().is_some(), "--{} has no help", arg.get_id());
        }
    }
}
