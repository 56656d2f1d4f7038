//! [`Cluster`]: connections to brokers and the cached cluster metadata that
//! says which broker leads which partition.
//!
//! Routing is the one place that knows about more than one broker:
//! [`Cluster::leader`] maps a topic-partition to a broker id using the last
//! `Metadata` response, and [`Cluster::conn`] maps a broker id to a
//! connection using the `host:port` that broker advertised. Anything that
//! cannot be resolved (no metadata yet, leader `-1`, an advertised address
//! that does not answer) falls back to the bootstrap connection, which is
//! all a single-node cluster needs.
//!
//! Cluster mode adds to this file, not to its callers: on
//! `NOT_LEADER_OR_FOLLOWER` the producer and consumer call
//! [`Cluster::invalidate`] and the next [`Cluster::topic`] refreshes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::broker_client::BrokerClient;
use runnel_proto::v1::{ErrorCode, MetadataRequest, MetadataResponse};
use tonic::transport::Channel;

use crate::config::{ClientConfig, MAX_MESSAGE_SIZE};
use crate::error::{Error, Result};

/// Broker id meaning "unknown": the bootstrap connection is used.
pub(crate) const UNKNOWN_BROKER: i32 = -1;

/// One HTTP/2 connection to one broker. Cloning is cheap and every clone
/// multiplexes over the same connection, so callers clone freely to keep
/// several requests in flight.
#[derive(Clone)]
pub(crate) struct Conn {
    /// `host:port`, for error messages.
    pub address: Arc<str>,
    channel: Channel,
}

impl Conn {
    pub fn broker(&self) -> BrokerClient<Channel> {
        BrokerClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    /// The underlying channel, for calls made without the generated clients.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn admin(&self) -> AdminClient<Channel> {
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
    /// Broker id → advertised `host:port`.
    brokers: HashMap<i32, String>,
    topics: HashMap<String, Arc<TopicInfo>>,
}

/// Connections plus the metadata cache; shared (`Arc`) by everything one
/// `Admin`/`Producer`/`Consumer` does.
pub(crate) struct Cluster {
    pub config: ClientConfig,
    /// The first bootstrap broker that accepted a connection.
    bootstrap: Conn,
    /// Connections by broker id (the bootstrap connection may appear here
    /// too, when a broker advertises the address it was reached at).
    conns: Mutex<HashMap<i32, Conn>>,
    metadata: RwLock<MetadataCache>,
}

impl Cluster {
    /// Connect to the first bootstrap broker that answers.
    pub async fn connect(config: ClientConfig) -> Result<Arc<Self>> {
        config.validate()?;
        let mut last_error = None;
        for address in &config.bootstrap {
            match connect(&config, address).await {
                Ok(bootstrap) => {
                    return Ok(Arc::new(Cluster {
                        config,
                        bootstrap,
                        conns: Mutex::default(),
                        metadata: RwLock::default(),
                    }));
                }
                Err(e) => {
                    tracing::debug!(%address, error = %e, "bootstrap broker unreachable");
                    last_error = Some(e);
                }
            }
        }
        Err(match (last_error, config.bootstrap.len()) {
            (Some(Error::Connect { address, reason }), n) if n > 1 => Error::Connect {
                address: format!(
                    "any of {} (last tried {address})",
                    config.bootstrap.join(",")
                ),
                reason,
            },
            (Some(e), _) => e,
            (None, _) => Error::Config("bootstrap is empty".into()),
        })
    }

    /// The bootstrap connection: for admin calls and metadata.
    pub fn any(&self) -> &Conn {
        &self.bootstrap
    }

    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    /// Ask for metadata (all topics when `topics` is empty) and cache it.
    pub async fn refresh(&self, topics: &[&str]) -> Result<MetadataResponse> {
        let message = MetadataRequest {
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        };
        let conn = self.any();
        let timeout = self.request_timeout();
        let response = conn
            .call(
                "Metadata",
                timeout,
                conn.broker().metadata(request(message, timeout)),
            )
            .await?;
        let mut cache = self.metadata.write().expect("metadata lock");
        cache.brokers = response
            .brokers
            .iter()
            .map(|b| (b.id, format!("{}:{}", b.host, b.port)))
            .collect();
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
    /// advertised address. Unknown ids and unreachable addresses fall back to
    /// the bootstrap connection.
    pub async fn conn(&self, id: i32) -> Conn {
        if id == UNKNOWN_BROKER {
            return self.bootstrap.clone();
        }
        if let Some(conn) = self.conns.lock().expect("conns lock").get(&id) {
            return conn.clone();
        }
        let advertised = self
            .metadata
            .read()
            .expect("metadata lock")
            .brokers
            .get(&id)
            .cloned();
        let conn = match advertised {
            None => self.bootstrap.clone(),
            Some(address) if *address == *self.bootstrap.address => self.bootstrap.clone(),
            Some(address) => match connect(&self.config, &address).await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(broker = id, %address, error = %e,
                        "advertised broker address unreachable; using the bootstrap connection");
                    self.bootstrap.clone()
                }
            },
        };
        self.conns
            .lock()
            .expect("conns lock")
            .entry(id)
            .or_insert(conn)
            .clone()
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
        channel,
    })
}
