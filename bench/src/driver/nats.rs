//! NATS JetStream through `async-nats`: one file-backed stream per topic
//! with a subject per partition (`<topic>.<p>`), asynchronous publishes
//! with up to [`ACKS_IN_FLIGHT`] acks outstanding, and an ordered pull
//! consumer (no acks) for reading.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};

use super::{AckFuture, Consumer, Driver, Producer};

/// Publish acks outstanding per producer (the async-nats context's limit;
/// publishing waits when it is reached).
pub const ACKS_IN_FLIGHT: usize = 1024;

#[derive(Debug, Clone)]
pub struct NatsDriver {
    pub url: String,
}

impl NatsDriver {
    async fn context(&self) -> Result<jetstream::Context> {
        let client = async_nats::connect(&self.url)
            .await
            .with_context(|| format!("connecting to nats at {}", self.url))?;
        Ok(jetstream::context::ContextBuilder::new()
            .max_ack_inflight(ACKS_IN_FLIGHT)
            .backpressure_on_inflight(true)
            .build(client))
    }
}

#[async_trait]
impl Driver for NatsDriver {
    async fn create_topic(&self, topic: &str, _partitions: u32) -> Result<()> {
        let js = self.context().await?;
        js.create_stream(stream::Config {
            name: topic.to_owned(),
            subjects: vec![format!("{topic}.*")],
            storage: stream::StorageType::File,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("creating stream {topic}: {e}"))?;
        Ok(())
    }

    async fn producer(&self, topic: &str, partitions: u32) -> Result<Box<dyn Producer>> {
        Ok(Box::new(NatsProducer {
            js: self.context().await?,
            subjects: (0..partitions).map(|p| format!("{topic}.{p}")).collect(),
            next: 0,
        }))
    }

    async fn consumer(&self, topic: &str, _partitions: u32) -> Result<Box<dyn Consumer>> {
        let js = self.context().await?;
        let stream = js
            .get_stream(topic)
            .await
            .map_err(|e| anyhow!("stream {topic}: {e}"))?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("ordered consumer on {topic}: {e}"))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| anyhow!("consuming {topic}: {e}"))?;
        Ok(Box::new(NatsConsumer { messages }))
    }

    fn window(&self) -> usize {
        ACKS_IN_FLIGHT
    }
}

struct NatsProducer {
    js: jetstream::Context,
    subjects: Vec<String>,
    next: usize,
}

#[async_trait]
impl Producer for NatsProducer {
    async fn send_all(&mut self, payloads: Vec<Bytes>, acks: &mut Vec<AckFuture>) -> Result<()> {
        for payload in payloads {
            let subject = self.subjects[self.next].clone();
            self.next = (self.next + 1) % self.subjects.len();
            let ack = self
                .js
                .publish(subject, payload)
                .await
                .map_err(|e| anyhow!("publish: {e}"))?;
            acks.push(Box::pin(async move {
                ack.await.map_err(|e| anyhow!("publish ack: {e}"))?;
                Ok(())
            }));
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        // The client's writer flushes as soon as it is idle.
        Ok(())
    }

    async fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

struct NatsConsumer {
    messages: consumer::pull::Ordered,
}

/// Most messages returned by one poll.
const MAX_POLL: usize = 1000;

#[async_trait]
impl Consumer for NatsConsumer {
    async fn poll(&mut self, timeout: Duration) -> Result<Vec<Bytes>> {
        let mut out = Vec::new();
        let first = match tokio::time::timeout(timeout, self.messages.next()).await {
            Err(_) | Ok(None) => return Ok(out),
            Ok(Some(m)) => m.map_err(|e| anyhow!("ordered consumer: {e}"))?,
        };
        out.push(first.message.payload);
        // Take what has already arrived without waiting again.
        while out.len() < MAX_POLL {
            match self.messages.next().now_or_never() {
                Some(Some(m)) => out.push(
                    m.map_err(|e| anyhow!("ordered consumer: {e}"))?
                        .message
                        .payload,
                ),
                _ => break,
            }
        }
        Ok(out)
    }
}
