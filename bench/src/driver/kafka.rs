//! Any Kafka-protocol broker through librdkafka (the `rdkafka` crate with
//! the librdkafka it bundles, linked statically): Runnel's own Kafka listener and
//! Tansu. The producer is librdkafka's, set like Runnel's own producer in
//! `driver::runnel` (acks=all, idempotent, `linger.ms=0`, the same
//! `batch.size` and requests in flight), so the two Runnel rows differ by
//! protocol and client only; the consumer is assigned every partition from
//! the start, no group, as the other consumers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::{AckFuture, Consumer, Driver, Producer, recv_chunk};
use crate::workload::ProducerSettings;

/// Most unacknowledged messages in librdkafka's queue (its
/// `queue.buffering.max.messages`; bytes bind first), also the runner's
/// window.
pub const QUEUE_MESSAGES: usize = 1 << 20;
/// Requests in flight per broker connection, as Runnel's producer
/// (`max.in.flight.requests.per.connection`; 5 is the most idempotence
/// allows).
pub const IN_FLIGHT: usize = 5;
/// Messages the consumer thread hands over at once.
const CONSUMER_CHUNK: usize = 4096;

/// One Kafka-protocol system.
#[derive(Debug, Clone)]
pub struct KafkaDriver {
    /// `host:port` of the Kafka listener(s).
    pub bootstrap: String,
    pub replication_factor: i32,
    /// Topic configs sent with CreateTopics.
    pub topic_configs: Vec<(String, String)>,
    /// The workload's batch size and linger (max.request.size is Runnel's
    /// producer's only; librdkafka's `message.max.bytes` stays default).
    pub producer: ProducerSettings,
}

impl KafkaDriver {
    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "runnel-bench")
            // Loopback only: name lookups of the advertised addresses are
            // not what is measured.
            .set("broker.address.family", "v4")
            // TCP_NODELAY, as runnel-client (tonic) and the Java client
            // always set it; librdkafka leaves Nagle on unless told, which
            // holds small requests back behind delayed ACKs.
            .set("socket.nagle.disable", "true");
        c
    }

    /// The producer's settings (also shown in the systems table).
    pub fn producer_config(&self) -> Vec<(&'static str, String)> {
        let linger = self.producer.linger.unwrap_or(Duration::ZERO);
        // Runnel's producer default batch.size (runnel_client::ProducerConfig).
        let batch = self
            .producer
            .batch_size
            .unwrap_or(runnel_client::ProducerConfig::default().batch_size);
        vec![
            ("acks", "all".into()),
            ("enable.idempotence", "true".into()),
            ("linger.ms", linger.as_millis().to_string()),
            ("batch.size", batch.to_string()),
            (
                "max.in.flight.requests.per.connection",
                IN_FLIGHT.to_string(),
            ),
            ("compression.type", "none".into()),
            // Runnel's producer's buffer.memory (32 MiB) as the bound on
            // unacknowledged bytes; the message count never binds first.
            ("queue.buffering.max.messages", QUEUE_MESSAGES.to_string()),
            (
                "queue.buffering.max.kbytes",
                (runnel_client::ProducerConfig::default().buffer_memory >> 10).to_string(),
            ),
        ]
    }

    /// The consumer's settings (also shown in the systems table).
    pub fn consumer_config(&self) -> Vec<(&'static str, String)> {
        vec![
            // No group membership or commits; the assignment in `consumer`.
            ("group.id", "runnel-bench".into()),
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
            ("auto.offset.reset", "earliest".into()),
            // librdkafka (2.4+) stops fetching a partition for this long
            // once its queue holds queued.min.messages, and does not wake
            // early when the queue drains: with 100 B messages the queue
            // fills in ~0.1 s and the consumer then idles for a second.
            // Measured on Runnel, 1 × 100 B backlog: 266k msg/s at the
            // default 1000 ms, 800k at 0.
            ("fetch.queue.backoff.ms", "0".into()),
            // Even at 0 a full queue stalls the fetcher until its next
            // timer tick; a deeper queue (still bounded by
            // queued.max.messages.kbytes, 64 MiB) gave 1.25M msg/s.
            ("queued.min.messages", "1000000".into()),
        ]
    }

    /// One line for the systems table.
    pub fn describe(&self) -> String {
        let settings: Vec<String> = self
            .producer_config()
            .into_iter()
            .filter(|(k, _)| *k != "queue.buffering.max.messages")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "librdkafka {} (rdkafka crate): {}; consumer assigned every partition, fetch.queue.backoff.ms=0, queued.min.messages=1000000",
            rdkafka::util::get_rdkafka_version().1,
            settings.join(", ")
        )
    }
}

#[async_trait]
impl Driver for KafkaDriver {
    async fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = self
            .base()
            .create()
            .context("making a librdkafka admin client")?;
        let mut new = NewTopic::new(
            topic,
            partitions as i32,
            TopicReplication::Fixed(self.replication_factor),
        );
        for (k, v) in &self.topic_configs {
            new = new.set(k, v);
        }
        // Wait for the broker to report the topic made (CreateTopics'
        // timeout_ms), not just accepted.
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = admin
            .create_topics([&new], &options)
            .await
            .with_context(|| format!("CreateTopics {topic}"))?;
        for result in results {
            if let Err((name, code)) = result {
                bail!("CreateTopics {name}: {code}");
            }
        }
        Ok(())
    }

    async fn producer(&self, topic: &str, _partitions: u32) -> Result<Box<dyn Producer>> {
        let mut config = self.base();
        for (k, v) in self.producer_config() {
            config.set(k, v);
        }
        extra_settings(&mut config, "RUNNEL_BENCH_RDKAFKA_PRODUCER")?;
        let producer: FutureProducer = config.create().context("making a librdkafka producer")?;
        // Learn the partitions and leaders before the clock starts.
        let handle = producer.clone();
        let topic_owned = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            handle
                .client()
                .fetch_metadata(Some(&topic_owned), Duration::from_secs(10))
                .map(drop)
        })
        .await?
        .context("Metadata for the topic")?;
        Ok(Box::new(KafkaProducer {
            producer,
            topic: Arc::from(topic),
        }))
    }

    async fn consumer(&self, topic: &str, partitions: u32) -> Result<Box<dyn Consumer>> {
        let mut config = self.base();
        for (k, v) in self.consumer_config() {
            config.set(k, v);
        }
        extra_settings(&mut config, "RUNNEL_BENCH_RDKAFKA_CONSUMER")?;
        let consumer: BaseConsumer = config.create().context("making a librdkafka consumer")?;
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            assignment.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        // librdkafka's poll blocks: a thread of its own hands chunks over,
        // as the other consumers' clients do on their I/O tasks.
        let (tx, rx) = mpsc::channel(64);
        std::thread::Builder::new()
            .name("kafka-consumer".into())
            .spawn(move || consume(consumer, tx))?;
        Ok(Box::new(KafkaConsumer { rx }))
    }

    fn window(&self) -> usize {
        QUEUE_MESSAGES
    }
}

/// Experiments only (the tables show the settings above): extra
/// librdkafka settings from the environment variable `var`,
/// "key=value,key=value".
fn extra_settings(config: &mut ClientConfig, var: &str) -> Result<()> {
    if let Ok(extra) = std::env::var(var) {
        for kv in extra.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("{var}: key=value, comma-separated"))?;
            config.set(k, v);
        }
    }
    Ok(())
}

/// The consumer thread: poll, copy each payload out (librdkafka owns the
/// message's buffer), send chunks until the receiver is gone.
fn consume(consumer: BaseConsumer, tx: mpsc::Sender<Result<Vec<Bytes>>>) {
    loop {
        let mut chunk = Vec::new();
        let mut timeout = Duration::from_millis(100);
        while chunk.len() < CONSUMER_CHUNK {
            match consumer.poll(timeout) {
                None => break,
                Some(Ok(m)) => {
                    if let Some(v) = m.payload() {
                        chunk.push(Bytes::copy_from_slice(v));
                    }
                    // Drain what is already fetched without waiting.
                    timeout = Duration::ZERO;
                }
                // The end of a partition is news, not an error.
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    let _ = tx.blocking_send(Err(anyhow!("consume: {e}")));
                    return;
                }
            }
        }
        if tx.blocking_send(Ok(chunk)).is_err() {
            return;
        }
    }
}

struct KafkaProducer {
    producer: FutureProducer,
    topic: Arc<str>,
}

#[async_trait]
impl Producer for KafkaProducer {
    async fn send_all(&mut self, payloads: Vec<Bytes>, acks: &mut Vec<AckFuture>) -> Result<()> {
        for payload in payloads {
            // No key: librdkafka's sticky partitioner, like Runnel's.
            let delivery = loop {
                let record = FutureRecord::<(), [u8]>::to(&self.topic).payload(&payload);
                match self.producer.send_result(record) {
                    Ok(delivery) => break delivery,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // The window keeps this rare; let deliveries drain.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => return Err(anyhow!("produce: {e}")),
                }
            };
            acks.push(Box::pin(async move {
                match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(anyhow!("delivery: {e}")),
                    Err(_) => Err(anyhow!("producer dropped the delivery")),
                }
            }));
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        // linger.ms sends partial batches on its own.
        Ok(())
    }

    async fn close(self: Box<Self>) -> Result<()> {
        let producer = self.producer;
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30)))
            .await?
            .context("flushing the librdkafka producer")
    }
}

struct KafkaConsumer {
    rx: mpsc::Receiver<Result<Vec<Bytes>>>,
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn poll(&mut self, timeout: Duration) -> Result<Vec<Bytes>> {
        recv_chunk(&mut self.rx, timeout, "the consumer thread").await
    }
}
