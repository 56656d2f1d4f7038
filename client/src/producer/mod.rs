//! [`Producer`]: batches records per partition and sends them in the
//! background, Kafka-style.
//!
//! Start with [`Producer::send`]. The pieces, in the order a record meets
//! them:
//!
//! - `partitioner`: which partition (explicit, murmur2 of the key, sticky).
//! - `accumulator`: per-partition batches, sealed by size or linger, and
//!   grouped into per-broker requests.
//! - `sender`: the background task that sends requests, retries batches
//!   that failed retriably, and hands each batch's answer to its records.
//! - `wire`: the `Produce` call, encoded straight from the batches.
//! - `delivery`: the [`DeliveryFuture`] each `send` returns.
//!
//! With `enable_idempotence` (the default) [`Producer::connect`] asks for a
//! producer id (`InitProducerId`) and every batch carries it, its epoch and
//! a per-partition sequence number, so the partition leader can drop a
//! retried batch it already has instead of writing it twice.
//!
//! `compression` (Kafka's `compression.type`) compresses each batch's
//! records with LZ4 or zstd when the batch is sealed and sent; the broker
//! stores it compressed and consumers decompress. `interceptors` (see
//! [`crate::interceptor`]) see every record before it is partitioned and
//! every record's outcome.

mod accumulator;
mod delivery;
pub mod partitioner;
mod sender;
mod wire;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::task::JoinHandle;

pub use delivery::DeliveryFuture;

pub use runnel_proto::batch::Compression;
use runnel_proto::v1::InitProducerIdRequest;

use crate::cluster::{Cluster, request};
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::interceptor::{self, ProducerInterceptor};
use accumulator::{
    Accumulator, Append, BATCH_OVERHEAD, Limits, ProducerStamp, record_size_upper_bound,
};
use sender::Shared;

/// How many replicas must have a batch before it is acknowledged (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// `acks=0`: a record counts as sent once its request goes to the
    /// leader; nobody waits for the broker's answer, offsets are -1 (as in
    /// Kafka).
    None,
    /// `acks=1`: the leader has appended the batch.
    Leader,
    /// `acks=all`: every in-sync replica has it (Kafka's default since 3.0).
    #[default]
    All,
}

impl Acks {
    pub(crate) fn to_proto(self) -> runnel_proto::v1::Acks {
        match self {
            Acks::None => runnel_proto::v1::Acks::None,
            Acks::Leader => runnel_proto::v1::Acks::Leader,
            Acks::All => runnel_proto::v1::Acks::All,
        }
    }
}

impl FromStr for Acks {
    type Err = Error;

    /// `0`, `1`, `all` (or `-1`), as Kafka spells them.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "0" | "none" => Ok(Acks::None),
            "1" | "leader" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(Error::Config(format!(
                "acks must be 0, 1 or all, not {other:?}"
            ))),
        }
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        })
    }
}

/// Producer knobs, named and defaulted as in Kafka's producer.
///
/// ```
/// use std::sync::Arc;
/// use runnel_client::interceptor::CountingInterceptor;
/// use runnel_client::{Compression, ProducerConfig};
///
/// let config = ProducerConfig {
///     // Kafka's compression.type names parse: none, lz4, zstd.
///     compression: "zstd".parse().expect("a known codec"),
///     interceptors: vec![Arc::new(CountingInterceptor::new())],
///     ..Default::default()
/// };
/// assert_eq!(config.compression, Compression::Zstd);
/// ```
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `acks`; default `all`.
    pub acks: Acks,
    /// `batch.size`: bytes a batch may grow to before it is sent without
    /// waiting for `linger`; default 16384. A record larger than this gets a
    /// batch of its own. Counts uncompressed bytes, as in Kafka: with
    /// `compression` the batch sent is usually smaller.
    pub batch_size: usize,
    /// `linger.ms`: how long a batch that is not full waits for more
    /// records; default 5 ms. Larger values trade latency for bigger batches.
    pub linger: Duration,
    /// `max.in.flight.requests.per.connection`: requests to one broker that
    /// may be awaiting an answer at once; default 5. With idempotence a
    /// partition may use all of them (the leader orders its batches by
    /// sequence number, so records keep their order, retries included);
    /// without, a partition is in one request at a time.
    pub max_in_flight_requests: usize,
    /// `request.timeout.ms`: how long to wait for a produce answer; default
    /// 30 s. Also sent as the broker's acks=all replication timeout.
    pub request_timeout: Duration,
    /// `max.request.size`: bytes of record batches in one request, and so
    /// the largest record that can be sent; default 1 MiB.
    pub max_request_size: usize,
    /// `buffer.memory`: bytes of batches not yet acknowledged; `send` waits
    /// when they are used up; default 32 MiB.
    pub buffer_memory: usize,
    /// `retry.backoff.ms`: how long to wait before sending a batch again
    /// after a retriable error (leader moved, not enough replicas, broker
    /// unreachable, ...); default 100 ms. Doubles with each further attempt
    /// of the batch, up to `retry_backoff_max`.
    pub retry_backoff: Duration,
    /// `retry.backoff.max.ms`: the most the backoff grows to; default 1 s.
    pub retry_backoff_max: Duration,
    /// `delivery.timeout.ms`: how long after a record was sent (added to a
    /// batch) the producer keeps retrying it; then its delivery fails with
    /// the last error. Default 120 s; must be at least `linger +
    /// request_timeout`, as in Kafka.
    pub delivery_timeout: Duration,
    /// `enable.idempotence`: get a producer id from the broker
    /// (`InitProducerId`) and stamp it with a per-partition sequence number
    /// into every batch, so a retry never writes a record twice. Default
    /// `true`, as in Kafka since 3.0; requires `acks=all`. Set to `false`
    /// for a broker without `InitProducerId`.
    pub enable_idempotence: bool,
    /// `compression.type`: codec for each batch's records. Default
    /// [`Compression::None`]; every Kafka codec is built in: `lz4` (fast,
    /// the usual choice), `zstd` (smaller, more CPU), `snappy` and `gzip`
    /// (for consumers that expect them). Parse Kafka's names with
    /// `"lz4".parse()`.
    pub compression: Compression,
    /// `interceptor.classes`: interceptors that see every record before it
    /// is partitioned (and may change it) and every record's outcome, in
    /// this order. Default none. See [`crate::interceptor`].
    pub interceptors: Vec<Arc<dyn ProducerInterceptor>>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            batch_size: 16384,
            linger: Duration::from_millis(5),
            max_in_flight_requests: 5,
            request_timeout: Duration::from_secs(30),
            max_request_size: 1024 * 1024,
            buffer_memory: 32 * 1024 * 1024,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            delivery_timeout: Duration::from_secs(120),
            enable_idempotence: true,
            compression: Compression::None,
            interceptors: Vec::new(),
        }
    }
}

impl ProducerConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1 byte".into());
        }
        if self.max_in_flight_requests == 0 {
            return bad("max_in_flight_requests must be at least 1".into());
        }
        if self.max_request_size <= BATCH_OVERHEAD {
            return bad(format!(
                "max_request_size must be more than {BATCH_OVERHEAD} bytes"
            ));
        }
        if self.request_timeout.is_zero() {
            return bad("request_timeout must be greater than zero".into());
        }
        if self.delivery_timeout < self.linger + self.request_timeout {
            return bad(format!(
                "delivery_timeout ({:?}) must be at least linger + request_timeout ({:?})",
                self.delivery_timeout,
                self.linger + self.request_timeout
            ));
        }
        if self.enable_idempotence && self.acks != Acks::All {
            return bad(format!(
                "enable_idempotence requires acks=all (acks is {}); set acks=all or \
                 enable_idempotence=false",
                self.acks
            ));
        }
        let largest = self.batch_size.max(self.max_request_size);
        if self.buffer_memory < largest || self.buffer_memory > u32::MAX as usize {
            return bad(format!(
                "buffer_memory ({}) must be at least batch_size and max_request_size ({largest}) \
                 and at most 4 GiB",
                self.buffer_memory
            ));
        }
        Ok(())
    }
}

/// A record to send. Build one with [`ProducerRecord::new`] and the
/// builder methods, or fill in the fields.
///
/// `topic` is an `Arc<str>` so a producer sending many records to one topic
/// clones a pointer, not a string; `key` and `value` are [`Bytes`] for the
/// same reason.
#[derive(Debug, Clone)]
pub struct ProducerRecord {
    pub topic: Arc<str>,
    /// `None`: chosen by key hash, or sticky for keyless records.
    pub partition: Option<u32>,
    pub key: Option<Bytes>,
    /// `None` is a tombstone (deletes the key under compaction).
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// CreateTime in ms since the Unix epoch; `None` = now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A keyless record with a value.
    pub fn new(topic: impl Into<Arc<str>>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Set the key (which picks the partition unless one is set).
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Send to this partition.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Add a header.
    pub fn header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push((key.into(), value));
        self
    }

    /// Set the CreateTime (ms since the Unix epoch).
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }
}

/// Where an acknowledged record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: Arc<str>,
    pub partition: u32,
    /// The record's offset; -1 with `acks=0`.
    pub offset: i64,
    /// CreateTime, or the broker's append time for LogAppendTime topics.
    pub timestamp: i64,
}

/// Sends records to Runnel. Cheap to clone; clones share one buffer and one
/// sender task. When the last clone is dropped, records already sent are
/// still delivered in the background (use [`Producer::close`] to wait).
///
/// ```no_run
/// # async fn example() -> runnel_client::Result<()> {
/// use runnel_client::{ClientConfig, Producer, ProducerConfig, ProducerRecord};
///
/// let producer =
///     Producer::connect(ClientConfig::new("127.0.0.1:9092")?, ProducerConfig::default()).await?;
///
/// // Await the delivery future for the acknowledgement...
/// let delivery = producer.send(ProducerRecord::new("events", "hello").key("user-1")).await?;
/// let meta = delivery.await?;
/// println!("written to {}-{} at offset {}", meta.topic, meta.partition, meta.offset);
///
/// // ...or keep many in flight and flush at the end.
/// for i in 0..1000 {
///     // Not awaiting the delivery future: fire and forget.
///     producer.send(ProducerRecord::new("events", format!("event {i}"))).await?;
/// }
/// producer.flush().await;
/// producer.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    sender: Mutex<Option<JoinHandle<()>>>,
    /// Set by the first `close`, so interceptors are closed once however
    /// many clones close the producer.
    interceptors_closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The sender sends what is left, then exits.
        self.shared.acc.close();
    }
}

impl Producer {
    /// Connect to the cluster and start the sender task.
    pub async fn connect(client: ClientConfig, config: ProducerConfig) -> Result<Self> {
        config.validate()?;
        let cluster = Cluster::connect(client).await?;
        let limits = Limits {
            batch_size: config.batch_size,
            linger: config.linger,
            max_request_size: config.max_request_size,
            max_in_flight: config.max_in_flight_requests,
            buffer_memory: config.buffer_memory,
            compression: config.compression,
        };
        let stamp = if config.enable_idempotence {
            Some(init_producer_id(&cluster).await?)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            acc: Accumulator::new(limits).with_interceptors(config.interceptors.clone().into()),
            cluster,
            config,
            stamp: Mutex::new(stamp),
            reset_producer_id: AtomicBool::new(false),
        });
        let sender = tokio::spawn(sender::run(shared.clone()));
        Ok(Producer {
            inner: Arc::new(Inner {
                shared,
                sender: Mutex::new(Some(sender)),
                interceptors_closed: AtomicBool::new(false),
            }),
        })
    }

    /// Add a record to its partition's batch and return a future that
    /// resolves when the batch is acknowledged.
    ///
    /// Waits only when it must: for the topic's metadata the first time a
    /// topic is seen, and for buffer space when `buffer_memory` is used up.
    /// Dropping the returned future does not cancel the record.
    ///
    /// Fails at once for a record larger than `max_request_size`, a
    /// partition the topic does not have, an unknown topic, or a closed
    /// producer.
    ///
    /// Interceptors' `on_send` runs first, in order, and the record they
    /// return is the one sent; if `send` fails, their
    /// `on_acknowledgement` hears that error.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let chain = &self.inner.shared.config.interceptors;
        if chain.is_empty() {
            return self.append(record).await;
        }
        let record = interceptor::on_send(chain, record);
        let result = self.append(record).await;
        if let Err(e) = &result {
            interceptor::on_acknowledgement(chain, &Err(e.clone()));
        }
        result
    }

    async fn append(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let shared = &self.inner.shared;
        let size = BATCH_OVERHEAD + record_size_upper_bound(&record);
        if size > shared.config.max_request_size {
            return Err(Error::RecordTooLarge {
                size,
                max: shared.config.max_request_size,
            });
        }
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let mut permit = None;
        let mut refreshed = false;
        loop {
            match shared.acc.try_append(&record, timestamp, &mut permit)? {
                Append::Appended(delivery) => return Ok(delivery),
                Append::NeedTopic => {
                    let info = shared.cluster.topic(&record.topic).await?;
                    shared.acc.set_partitions(&record.topic, info.partitions());
                }
                Append::NoSuchPartition { partitions } => {
                    if refreshed {
                        return Err(Error::Partition {
                            topic: record.topic.to_string(),
                            partition: record.partition.unwrap_or_default(),
                            code: runnel_proto::v1::ErrorCode::UnknownTopicOrPartition,
                            message: format!(
                                "partition {} does not exist (topic {:?} has {partitions})",
                                record.partition.unwrap_or_default(),
                                record.topic
                            ),
                        });
                    }
                    // Maybe the topic grew since we last looked.
                    let info = shared.cluster.refresh_topic(&record.topic).await?;
                    shared.acc.set_partitions(&record.topic, info.partitions());
                    refreshed = true;
                }
                Append::NeedMemory(bytes) => permit = Some(shared.acc.reserve(bytes).await?),
            }
        }
    }

    /// Send everything buffered now, without waiting for `linger`, and wait
    /// until every record sent before this call is acknowledged or failed.
    pub async fn flush(&self) {
        self.inner.shared.acc.flush().await;
    }

    /// Stop accepting records, send everything buffered and wait for the
    /// answers, then close the interceptors (once, whichever clone closes
    /// first). Later [`send`](Producer::send)s fail with [`Error::Closed`].
    pub async fn close(&self) {
        self.inner.shared.acc.close();
        let sender = self.inner.sender.lock().expect("sender lock").take();
        if let Some(sender) = sender
            && let Err(e) = sender.await
        {
            tracing::warn!(error = %e, "producer sender task failed");
            self.inner.shared.acc.abort(Error::Closed);
        }
        // Another clone may have taken the handle: wait the same way.
        self.inner.shared.acc.flush().await;
        if !self.inner.interceptors_closed.swap(true, Ordering::AcqRel) {
            interceptor::close(&self.inner.shared.config.interceptors);
        }
    }

    /// The number of partitions of `topic`, from cached metadata.
    pub async fn partition_count(&self, topic: &str) -> Result<u32> {
        Ok(self.inner.shared.cluster.topic(topic).await?.partitions())
    }
}

/// Ask any broker for a producer id (Kafka's `InitProducerId`).
async fn init_producer_id(cluster: &Cluster) -> Result<ProducerStamp> {
    let response = cluster
        .call_any("InitProducerId", |conn, timeout| async move {
            let message = InitProducerIdRequest::default();
            conn.broker()
                .init_producer_id(request(message, timeout))
                .await
        })
        .await;
    let response = match response {
        Err(Error::Server {
            grpc_code: tonic::Code::Unimplemented,
            ..
        }) => {
            return Err(Error::IdempotenceUnsupported {
                address: cluster.current_address(),
            });
        }
        other => other?,
    };
    let producer_epoch = i16::try_from(response.producer_epoch).map_err(|_| Error::Server {
        operation: "InitProducerId",
        grpc_code: tonic::Code::Internal,
        code: None,
        message: format!(
            "the broker returned producer epoch {}, which does not fit a batch header's 16 bits",
            response.producer_epoch
        ),
    })?;
    tracing::debug!(
        producer_id = response.producer_id,
        producer_epoch,
        "idempotent producer initialised"
    );
    Ok(ProducerStamp {
        producer_id: response.producer_id,
        producer_epoch,
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_parse_like_kafka() {
        assert_eq!("0".parse::<Acks>().unwrap(), Acks::None);
        assert_eq!("1".parse::<Acks>().unwrap(), Acks::Leader);
        assert_eq!("all".parse::<Acks>().unwrap(), Acks::All);
        assert_eq!("-1".parse::<Acks>().unwrap(), Acks::All);
        assert_eq!("ALL".parse::<Acks>().unwrap(), Acks::All);
        assert!("2".parse::<Acks>().is_err());
        assert_eq!(Acks::All.to_string(), "all");
    }

    #[test]
    fn config_validation() {
        ProducerConfig::default().validate().unwrap();
        let c = ProducerConfig {
            batch_size: 0,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = ProducerConfig {
            buffer_memory: 1000,
            ..Default::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("buffer_memory")
        );
        let c = ProducerConfig {
            max_in_flight_requests: 0,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = ProducerConfig {
            acks: Acks::Leader,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("acks=all"));
        let c = ProducerConfig {
            acks: Acks::Leader,
            enable_idempotence: false,
            ..Default::default()
        };
        c.validate().unwrap();
        let c = ProducerConfig {
            delivery_timeout: Duration::from_secs(1),
            ..Default::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("delivery_timeout")
        );
    }

    #[test]
    fn compression_config() {
        assert_eq!(ProducerConfig::default().compression, Compression::None);
        for codec in Compression::ALL {
            let c = ProducerConfig {
                compression: codec,
                ..Default::default()
            };
            c.validate().unwrap();
        }
    }

    #[test]
    fn record_builder() {
        let r = ProducerRecord::new("t", "v")
            .key("k")
            .partition(3)
            .timestamp(9)
            .header("h", None);
        assert_eq!(&*r.topic, "t");
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(
            (r.partition, r.timestamp, r.headers.len()),
            (Some(3), Some(9), 1)
        );
    }
}
