//! [`Cluster`]: connections to brokers and the cached cluster metadata that
//! says which broker leads which partition.
//!
//! Routing is the one place that knows about more than one broker:
//!
//! - [`Cluster::leader`] maps a topic-partition to a broker id using the last
//!   `Metadata` response, and [`Cluster::broker_conn`] maps a broker id to a
//!   connection using the `host:port` that broker advertised. A partition's
//!   requests go to its leader or fail retriably (no leader known, leader
//!   unreachable); they never go silently to another broker, which would
//!   only answer `NOT_LEADER_OR_FOLLOWER`.
//! - [`Cluster::call_any`] sends calls any broker can answer (`Metadata`,
//!   `InitProducerId`, admin calls) to the broker that answered last. When
//!   that one stops answering it tries the other brokers of the last
//!   `Metadata` response and then the bootstrap list, in order, and sticks
//!   with the first that answers (Kafka's "least loaded node", simplified
//!   to "last one that worked").
//!
//! Connections are kept per address and dropped ([`Cluster::forget`]) when
//! a call on them fails at the transport level, so the next use reconnects
//! instead of reusing a channel to a dead broker. On `NOT_LEADER_OR_FOLLOWER`
//! and similar the producer and consumer call [`Cluster::invalidate`] and
//! the next [`Cluster::topic`] asks again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::broker_client::BrokerClient;
use runnel_proto::v1::group_client::GroupClient;
use runnel_proto::v1::{ErrorCode, MetadataRequest, MetadataResponse};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::config::{ClientConfig, MAX_MESSAGE_SIZE};
use crate::error::{Error, Result};

/// Broker id meaning "unknown": no leader is known (yet).
pub(crate) const UNKNOWN_BROKER: i32 = -1;

/// One HTTP/2 connection to one broker. Cloning is cheap and every clone
/// multiplexes over the same connection, so callers clone freely to keep
/// several requests in flight.
#[derive(Clone)]
pub(crate) struct Conn {
    /// `host:port`, for error messages and [`Cluster::forget`].
    pub address: Arc<str>,
    channel: Svc,
}

/// A broker connection that stamps every request with the client's
/// credentials.
pub(crate) type Svc = InterceptedService<Channel, Credentials>;

/// Adds `authorization: Bearer <token>` to every request when the client
/// has a token.
#[derive(Clone, Default)]
pub(crate) struct Credentials {
    header: Option<MetadataValue<Ascii>>,
}

impl Credentials {
    pub fn new(config: &ClientConfig) -> Result<Self> {
        let header = match &config.token {
            Some(token) => Some(format!("Bearer {}", token.expose()).parse().map_err(|_| {
                Error::Config("the bearer token has characters a header cannot carry".into())
            })?),
            None => None,
        };
        Ok(Credentials { header })
    }
}

impl Interceptor for Credentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

impl Conn {
    pub fn broker(&self) -> BrokerClient<Svc> {
        BrokerClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    /// The underlying channel, for calls made without the generated clients.
    pub fn channel(&self) -> Svc {
        self.channel.clone()
    }

    pub fn group(&self) -> GroupClient<Svc> {
        GroupClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    pub fn admin(&self) -> AdminClient<Svc> {
        AdminClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    /// Await one call with a deadline, turning every failure into
    /// [`Error`]. Build the request with [`request`] so the broker learns the
    /// same deadline through `grpc-timeout`.
    pub async fn call<T>(
        &self,
        operation: &'static str,
        timeout: Duration,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(Error::Timeout {
                operation,
                address: self.address.to_string(),
                timeout,
            }),
            Ok(Err(status)) => Err(Error::from_status(status, operation, &self.address)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }
}

/// A request carrying `timeout` as its `grpc-timeout`.
pub(crate) fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// What the client knows about one topic.
#[derive(Debug, Clone)]
pub(crate) struct TopicInfo {
    /// Leader broker id per partition, indexed by partition number.
    pub leaders: Vec<i32>,
}

impl TopicInfo {
    pub fn partitions(&self) -> u32 {
        self.leaders.len() as u32
    }
}

#[derive(Default)]
struct MetadataCache {
    /// Broker id and advertised `host:port`, in the order of the last
    /// `Metadata` response (the order failover tries them in).
    brokers: Vec<(i32, String)>,
    topics: HashMap<String, Arc<TopicInfo>>,
}

/// Connections plus the metadata cache; shared (`Arc`) by everything one
/// `Admin`/`Producer`/`Consumer` does.
pub(crate) struct Cluster {
    pub config: ClientConfig,
    /// Address of the broker that answered the last [`Cluster::call_any`]:
    /// tried first next time. `None` after it failed.
    current: Mutex<Option<Arc<str>>>,
    /// Open connections by address. A broker id is resolved to its address
    /// through the metadata, so a broker reached both as bootstrap and as a
    /// leader shares one connection.
    conns: Mutex<HashMap<Arc<str>, Conn>>,
    metadata: RwLock<MetadataCache>,
}

impl Cluster {
    /// Connect to the first bootstrap broker that answers.
    pub async fn connect(config: ClientConfig) -> Result<Arc<Self>> {
        config.validate()?;
        let mut last_error = None;
        for address in &config.bootstrap {
            match connect(&config, address).await {
                Ok(conn) => {
                    let address = conn.address.clone();
                    return Ok(Arc::new(Cluster {
                        config,
                        current: Mutex::new(Some(address.clone())),
                        conns: Mutex::new(HashMap::from([(address, conn)])),
                        metadata: RwLock::default(),
                    }));
                }
                Err(e) => {
                    tracing::debug!(%address, error = %e, "bootstrap broker unreachable");
                    last_error = Some(e);
                }
            }
        }
        Err(all_failed(last_error, &config.bootstrap))
    }

    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    /// The address [`Cluster::call_any`] tries first, for error messages.
    pub fn current_address(&self) -> String {
        self.current
            .lock()
            .expect("current lock")
            .as_deref()
            .unwrap_or("(none)")
            .to_owned()
    }

    /// Make a call any broker can answer. `call` builds the call on a
    /// connection with the request timeout. The broker that answered last
    /// is tried first; if it is unreachable (see
    /// [`Error::is_unreachable`]) its connection is dropped and the other
    /// brokers of the last `Metadata` response, then the bootstrap list,
    /// are tried in order, once each. The first that answers (success or a
    /// broker error) is used from then on.
    pub async fn call_any<T, F, Fut>(&self, operation: &'static str, call: F) -> Result<T>
    where
        F: Fn(Conn, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let timeout = self.request_timeout();
        let current = self.current.lock().expect("current lock").clone();
        let mut tried: Vec<Arc<str>> = Vec::new();
        let mut last_error = None;
        for address in current.into_iter().chain(self.candidates()) {
            if tried.contains(&address) {
                continue;
            }
            tried.push(address.clone());
            let outcome = match self.conn_to(&address).await {
                Ok(conn) => {
                    conn.call(operation, timeout, call(conn.clone(), timeout))
                        .await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Err(e) if e.is_unreachable() => {
                    tracing::warn!(%address, operation, error = %e,
                        "broker unreachable; trying the next known broker");
                    self.forget(&address);
                    last_error = Some(e);
                }
                outcome => {
                    *self.current.lock().expect("current lock") = Some(address);
                    return outcome;
                }
            }
        }
        let addresses: Vec<String> = tried.iter().map(|a| a.to_string()).collect();
        Err(all_failed(last_error, &addresses))
    }

    /// Failover order: the brokers of the last `Metadata` response, then
    /// the bootstrap list, without repeats.
    fn candidates(&self) -> Vec<Arc<str>> {
        let cache = self.metadata.read().expect("metadata lock");
        let mut out: Vec<Arc<str>> = Vec::new();
        let known = cache.brokers.iter().map(|(_, a)| a.as_str());
        for address in known.chain(self.config.bootstrap.iter().map(String::as_str)) {
            if !out.iter().any(|a| **a == *address) {
                out.push(address.into());
            }
        }
        out
    }

    /// Drop the connection to `address` (a call on it failed at the
    /// transport level); the next use opens a new one.
    pub fn forget(&self, address: &str) {
        self.conns.lock().expect("conns lock").remove(address);
        let mut current = self.current.lock().expect("current lock");
        if current.as_deref() == Some(address) {
            *current = None;
        }
    }

    /// The open connection to `address`, or a new one.
    async fn conn_to(&self, address: &Arc<str>) -> Result<Conn> {
        if let Some(conn) = self.conns.lock().expect("conns lock").get(address) {
            return Ok(conn.clone());
        }
        let conn = connect(&self.config, address).await?;
        Ok(self
            .conns
            .lock()
            .expect("conns lock")
            .entry(address.clone())
            .or_insert(conn)
            .clone())
    }

    /// Ask for metadata (all topics when `topics` is empty) and cache it.
    pub async fn refresh(&self, topics: &[&str]) -> Result<MetadataResponse> {
        let message = MetadataRequest {
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        };
        let response = self
            .call_any("Metadata", |conn, timeout| {
                let message = message.clone();
                async move { conn.broker().metadata(request(message, timeout)).await }
            })
            .await?;
        let mut cache = self.metadata.write().expect("metadata lock");
        if !response.brokers.is_empty() {
            cache.brokers = response
                .brokers
                .iter()
                .map(|b| (b.id, format!("{}:{}", b.host, b.port)))
                .collect();
        }
        for topic in &response.topics {
            let failed = topic
                .error
                .as_ref()
                .is_some_and(|e| e.code != ErrorCode::None as i32);
            if failed || topic.partitions.is_empty() {
                cache.topics.remove(&topic.name);
                continue;
            }
            let mut leaders = vec![UNKNOWN_BROKER; topic.partitions.len()];
            for p in &topic.partitions {
                if let Some(slot) = leaders.get_mut(p.partition as usize) {
                    *slot = p.leader;
                }
            }
            cache
                .topics
                .insert(topic.name.clone(), Arc::new(TopicInfo { leaders }));
        }
        Ok(response)
    }

    /// Metadata for `topic`, from the cache or, on a miss, from the broker.
    /// Fails with `UNKNOWN_TOPIC_OR_PARTITION` if the topic does not exist.
    pub async fn topic(&self, topic: &str) -> Result<Arc<TopicInfo>> {
        if let Some(info) = self.cached(topic) {
            return Ok(info);
        }
        self.refresh_topic(topic).await
    }

    /// Fetch `topic`'s metadata even if it is cached (after an error that
    /// says the cache is stale, or to see a new partition count).
    pub async fn refresh_topic(&self, topic: &str) -> Result<Arc<TopicInfo>> {
        let response = self.refresh(&[topic]).await?;
        if let Some(info) = self.cached(topic) {
            return Ok(info);
        }
        let reported = response.topics.iter().find(|t| t.name == topic);
        let (code, message) = match reported.and_then(|t| t.error.as_ref()) {
            Some(e) if e.code != ErrorCode::None as i32 => (
                ErrorCode::try_from(e.code).unwrap_or(ErrorCode::UnknownServerError),
                e.message.clone(),
            ),
            _ => (
                ErrorCode::UnknownTopicOrPartition,
                format!("unknown topic {topic:?}"),
            ),
        };
        Err(Error::Server {
            operation: "Metadata",
            grpc_code: tonic::Code::NotFound,
            code: Some(code),
            message,
        })
    }

    fn cached(&self, topic: &str) -> Option<Arc<TopicInfo>> {
        self.metadata
            .read()
            .expect("metadata lock")
            .topics
            .get(topic)
            .cloned()
    }

    /// Forget what is cached about `topic`; the next [`Cluster::topic`] asks
    /// the broker again.
    pub fn invalidate(&self, topic: &str) {
        self.metadata
            .write()
            .expect("metadata lock")
            .topics
            .remove(topic);
    }

    /// The broker id leading `topic`-`partition`, or [`UNKNOWN_BROKER`].
    pub fn leader(&self, topic: &str, partition: u32) -> i32 {
        let cache = self.metadata.read().expect("metadata lock");
        cache
            .topics
            .get(topic)
            .and_then(|t| t.leaders.get(partition as usize).copied())
            .unwrap_or(UNKNOWN_BROKER)
    }

    /// The connection to broker `id`, opened on first use from its
    /// advertised address. Fails retriably (as [`Error::Connect`]) for an
    /// id the metadata does not name or an address that does not answer:
    /// the caller invalidates the metadata and tries again later.
    pub async fn broker_conn(&self, id: i32) -> Result<Conn> {
        let advertised = self
            .metadata
            .read()
            .expect("metadata lock")
            .brokers
            .iter()
            .find(|(b, _)| *b == id)
            .map(|(_, address)| Arc::<str>::from(address.as_str()));
        let Some(address) = advertised else {
            return Err(Error::Connect {
                address: format!("broker {id}"),
                reason: if id == UNKNOWN_BROKER {
                    "no partition leader is known (yet)".into()
                } else {
                    "the cluster metadata does not name this broker".into()
                },
            });
        };
        self.conn_to(&address).await
    }
}

/// The error after every address in `tried` failed.
fn all_failed(last_error: Option<Error>, tried: &[String]) -> Error {
    match (last_error, tried.len()) {
        (Some(Error::Connect { address, reason }), n) if n > 1 => Error::Connect {
            address: format!("any of {} (last tried {address})", tried.join(",")),
            reason,
        },
        (Some(e), _) => e,
        (None, _) => Error::Config("bootstrap is empty".into()),
    }
}

async fn connect(config: &ClientConfig, address: &str) -> Result<Conn> {
    let endpoint = config.endpoint(address)?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| Error::connect(address, &e))?;
    Ok(Conn {
        address: address.into(),
        channel: InterceptedService::new(channel, Credentials::new(config)?),
    })
}
