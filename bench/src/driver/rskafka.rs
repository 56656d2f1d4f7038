//! Runnel's Kafka listener through rskafka (InfluxData's pure-Rust, async
//! Kafka client): the Kafka protocol with a client about as lean as
//! runnel-client, so that `runnel-rskafka` next to `runnel` compares the
//! two protocols on the same broker with the client's cost mostly out of
//! the way (librdkafka in `runnel-kafka` spends several times
//! runnel-client's CPU per message, on the same two cores as the broker).
//!
//! rskafka sends what it is given as one Produce request and leaves
//! batching to its user, so this driver batches as runnel-client does:
//! the workload's `batch.size` per partition, a sticky partition that moves
//! on when a batch is full, the workload's `linger.ms` (0 by default: a
//! partition's next batch grows while its request is in flight), 5 requests in flight on the
//! connection, and the producer's 32 MiB buffer as the bound on
//! unacknowledged bytes. acks=all (rskafka's only setting); rskafka has no
//! idempotent producer, so its batches carry no producer id.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use rskafka::chrono::DateTime;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use super::{AckFuture, Consumer, Driver, Producer, recv_chunk};
use crate::driver::runnel::RunnelDriver;

/// Produce requests in flight on the connection, as runnel-client's
/// `max.in.flight.requests.per.connection`.
pub const IN_FLIGHT: usize = 5;
/// The most bytes one partition fetch asks for (librdkafka's and the Java
/// client's `max.partition.fetch.bytes`).
const PARTITION_FETCH_BYTES: i32 = 1 << 20;
/// How long a fetch may wait for data (`fetch.max.wait.ms`).
const FETCH_WAIT_MS: i32 = 500;

/// A RecordBatch v2 header.
const BATCH_HEADER: usize = 61;
/// The most a keyless, headerless record adds to its value (length,
/// attributes, timestamp and offset deltas, key length, value length and
/// header count as varints).
const RECORD_OVERHEAD: usize = 21;

/// One request's outcome, shared by the acks of every message in it.
type BatchAck = Shared<BoxFuture<'static, Result<(), Arc<str>>>>;

/// Runnel over the Kafka protocol, driven by rskafka.
#[derive(Debug, Clone)]
pub struct RsKafkaDriver {
    /// `host:port` of the broker's listener (the Kafka protocol shares the
    /// gRPC port).
    pub bootstrap: String,
    /// Makes the topic (over gRPC, with the `runnel` system's topic
    /// configs: rskafka's CreateTopics sends no configs) and supplies the
    /// producer settings, so batch.size and the buffer are runnel-client's.
    pub runnel: RunnelDriver,
}

impl RsKafkaDriver {
    async fn client(&self) -> Result<Client> {
        ClientBuilder::new(vec![self.bootstrap.clone()])
            .client_id("runnel-bench")
            .build()
            .await
            .with_context(|| format!("rskafka connecting to {}", self.bootstrap))
    }

    async fn partitions(&self, topic: &str, partitions: u32) -> Result<Vec<Arc<PartitionClient>>> {
        let client = self.client().await?;
        let mut out = Vec::with_capacity(partitions as usize);
        for p in 0..partitions as i32 {
            let pc = client
                .partition_client(topic, p, UnknownTopicHandling::Retry)
                .await
                .with_context(|| format!("rskafka partition client for {topic}-{p}"))?;
            out.push(Arc::new(pc));
        }
        Ok(out)
    }

    /// One line for the systems table.
    pub fn describe(&self) -> String {
        let p = self.runnel.producer_config();
        format!(
            "rskafka {}: acks=all, no idempotence (rskafka has none), batching as runnel-client: batch.size={} B, linger.ms={}, {IN_FLIGHT} requests in flight; consumer: one fetch loop per partition, {} KiB per partition fetch",
            RSKAFKA_VERSION,
            p.batch_size,
            p.linger.as_millis(),
            PARTITION_FETCH_BYTES >> 10
        )
    }
}

/// The rskafka release `third_party/rskafka` copies (the crate exports
/// no version constant).
const RSKAFKA_VERSION: &str = "0.6.0";

#[async_trait]
impl Driver for RsKafkaDriver {
    async fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        self.runnel.create_topic(topic, partitions).await
    }

    async fn producer(&self, topic: &str, partitions: u32) -> Result<Box<dyn Producer>> {
        let config = self.runnel.producer_config();
        let partitions = self.partitions(topic, partitions).await?;
        let shared = Arc::new(SendLimits {
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
            buffer: Arc::new(Semaphore::new(config.buffer_memory)),
        });
        let mut queues = Vec::with_capacity(partitions.len());
        let mut senders = Vec::with_capacity(partitions.len());
        for client in partitions {
            let queue = Arc::new(PartitionQueue::default());
            senders.push(tokio::spawn(send_loop(
                client,
                queue.clone(),
                shared.clone(),
                config.linger,
                config.batch_size,
            )));
            queues.push(queue);
        }
        Ok(Box::new(RsKafkaProducer {
            queues,
            senders,
            shared,
            batch_size: config.batch_size,
            buffer_memory: config.buffer_memory,
            sticky: 0,
        }))
    }

    async fn consumer(&self, topic: &str, partitions: u32) -> Result<Box<dyn Consumer>> {
        let partitions = self.partitions(topic, partitions).await?;
        let (tx, rx) = mpsc::channel(64);
        let fetchers = partitions
            .into_iter()
            .map(|client| tokio::spawn(fetch_loop(client, tx.clone())))
            .collect();
        Ok(Box::new(RsKafkaConsumer { rx, fetchers }))
    }

    fn window(&self) -> usize {
        // The buffer semaphore is the producer's own bound, as
        // runnel-client's buffer.memory.
        1 << 20
    }
}

/// What every partition's sender shares.
struct SendLimits {
    /// Requests in flight on the one connection.
    in_flight: Arc<Semaphore>,
    /// Bytes queued or in flight (buffer.memory).
    buffer: Arc<Semaphore>,
}

/// One partition's batches waiting to be sent; the back one is open.
#[derive(Default)]
struct PartitionQueue {
    batches: Mutex<VecDeque<OpenBatch>>,
    ready: Notify,
}

struct OpenBatch {
    records: Vec<Record>,
    /// Payload bytes (what the buffer semaphore counts).
    bytes: usize,
    /// The batch's size as encoded, at most: header and record overheads.
    encoded: usize,
    done: oneshot::Sender<Result<(), Arc<str>>>,
    ack: BatchAck,
    /// When its first message came, for linger.ms.
    opened: Instant,
}

impl OpenBatch {
    fn new() -> Self {
        let (done, rx) = oneshot::channel();
        let ack = rx
            .map(|r| r.unwrap_or_else(|_| Err(Arc::from("the producer was dropped"))))
            .boxed()
            .shared();
        OpenBatch {
            records: Vec::new(),
            bytes: 0,
            encoded: BATCH_HEADER,
            done,
            ack,
            opened: Instant::now(),
        }
    }
}

struct RsKafkaProducer {
    queues: Vec<Arc<PartitionQueue>>,
    senders: Vec<tokio::task::JoinHandle<()>>,
    shared: Arc<SendLimits>,
    batch_size: usize,
    /// buffer.memory: the buffer semaphore's permits when nothing is
    /// unacknowledged.
    buffer_memory: usize,
    /// The partition new messages go to until its batch is full.
    sticky: usize,
}

#[async_trait]
impl Producer for RsKafkaProducer {
    async fn send_all(&mut self, payloads: Vec<Bytes>, acks: &mut Vec<AckFuture>) -> Result<()> {
        let bytes: usize = payloads.iter().map(Bytes::len).sum();
        // Waits only when buffer.memory is used up.
        self.shared
            .buffer
            .acquire_many(u32::try_from(bytes).context("chunk too large")?)
            .await?
            .forget();
        // One clock read per chunk: the messages of a chunk are offered at
        // the same instant.
        // (rskafka's chrono has no clock of its own.)
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let timestamp = DateTime::from_timestamp_millis(now.as_millis() as i64)
            .context("clock out of range")?;
        let mut touched = Vec::new();
        let mut queue = self.queues[self.sticky].batches.lock().unwrap();
        let mut current = self.sticky;
        for payload in payloads {
            if current != self.sticky {
                drop(queue);
                touched.push(current);
                current = self.sticky;
                queue = self.queues[current].batches.lock().unwrap();
            }
            // A batch stays within batch.size as encoded (runnel-client's
            // rule too): a full one is closed before it would grow past.
            let cost = payload.len() + RECORD_OVERHEAD;
            if queue
                .back()
                .is_none_or(|b| !b.records.is_empty() && b.encoded + cost > self.batch_size)
            {
                queue.push_back(OpenBatch::new());
            }
            let batch = queue.back_mut().expect("an open batch");
            batch.bytes += payload.len();
            batch.encoded += cost;
            // rskafka's records own their bytes: one copy per message.
            batch.records.push(Record {
                key: None,
                value: Some(payload.to_vec()),
                headers: Default::default(),
                timestamp,
            });
            acks.push(Box::pin(
                batch
                    .ack
                    .clone()
                    .map(|r| r.map_err(|e| anyhow!("produce: {e}"))),
            ));
            if batch.encoded + RECORD_OVERHEAD >= self.batch_size {
                self.sticky = (self.sticky + 1) % self.queues.len();
            }
        }
        drop(queue);
        touched.push(current);
        for p in touched {
            self.queues[p].ready.notify_one();
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        // The senders keep linger.ms themselves (at 0 they take whatever
        // is queued as soon as a request slot is free).
        Ok(())
    }

    async fn close(self: Box<Self>) -> Result<()> {
        // Everything queued was answered once the whole buffer is free
        // again (a batch's bytes come back with its answer); then stop the
        // senders.
        let all = tokio::time::timeout(Duration::from_secs(30), async {
            while self.shared.buffer.available_permits() < self.buffer_memory {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        for s in &self.senders {
            s.abort();
        }
        all.map_err(|_| anyhow!("rskafka producer: not acknowledged within 30 s"))
    }
}

/// Send one partition's batches, oldest first, each as one Produce request
/// once a request slot is free.
async fn send_loop(
    client: Arc<PartitionClient>,
    queue: Arc<PartitionQueue>,
    shared: Arc<SendLimits>,
    linger: Duration,
    batch_size: usize,
) {
    loop {
        // Something to send first, then a slot: an idle partition must not
        // hold one of the connection's slots.
        while queue.batches.lock().unwrap().is_empty() {
            queue.ready.notified().await;
        }
        // linger.ms: an open batch that is neither full nor old enough
        // waits for more messages (a full one has a successor behind it).
        if !linger.is_zero() {
            let wait = {
                let batches = queue.batches.lock().unwrap();
                match batches.front() {
                    Some(b) if batches.len() == 1 && b.encoded + RECORD_OVERHEAD < batch_size => {
                        linger.saturating_sub(b.opened.elapsed())
                    }
                    _ => Duration::ZERO,
                }
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    // A message that filled it, or a next batch.
                    _ = queue.ready.notified() => {}
                }
                continue;
            }
        }
        let Ok(permit) = shared.in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(batch) = queue.batches.lock().unwrap().pop_front() else {
            continue;
        };
        let client = client.clone();
        let buffer = shared.buffer.clone();
        tokio::spawn(async move {
            let outcome = client
                .produce(batch.records, Compression::NoCompression)
                .await
                .map(drop)
                .map_err(|e| Arc::from(e.to_string()));
            drop(permit);
            buffer.add_permits(batch.bytes);
            let _ = batch.done.send(outcome);
        });
    }
}

struct RsKafkaConsumer {
    rx: mpsc::Receiver<Result<Vec<Bytes>>>,
    fetchers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RsKafkaConsumer {
    fn drop(&mut self) {
        for f in &self.fetchers {
            f.abort();
        }
    }
}

/// Fetch one partition from its start, forever, handing payloads over.
async fn fetch_loop(client: Arc<PartitionClient>, tx: mpsc::Sender<Result<Vec<Bytes>>>) {
    let mut next = 0i64;
    loop {
        let fetched = client
            .fetch_records(next, 1..PARTITION_FETCH_BYTES, FETCH_WAIT_MS)
            .await;
        let chunk = match fetched {
            Ok((records, _high_watermark)) => {
                let mut chunk = Vec::with_capacity(records.len());
                for r in records {
                    // A batch may start before the offset asked for.
                    if r.offset < next {
                        continue;
                    }
                    next = r.offset + 1;
                    if let Some(v) = r.record.value {
                        chunk.push(Bytes::from(v));
                    }
                }
                Ok(chunk)
            }
            Err(e) => Err(anyhow!("fetch: {e}")),
        };
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            return;
        }
    }
}

#[async_trait]
impl Consumer for RsKafkaConsumer {
    async fn poll(&mut self, timeout: Duration) -> Result<Vec<Bytes>> {
        recv_chunk(&mut self.rx, timeout, "the fetch loops").await
    }
}
