//! A small stream-processing library on top of the consumer group and the
//! producer, in the spirit of Kafka Streams' stateless DSL:
//! `source(topic) → map / filter / flat_map / … → sink(topic)`.
//!
//! - **Parallel across instances**: every instance of an application is a
//!   member of the consumer group named by its application id, so the
//!   source topic's partitions are shared among running instances and move
//!   when one stops.
//! - **At least once**: a batch of input records is transformed, every
//!   output is sent (idempotent producer, acks=all), and only once all of
//!   them are acknowledged are the input offsets committed. A crash between
//!   the two replays the batch: outputs may repeat, none is lost.
//!
//! ```no_run
//! # async fn example() -> runnel_client::Result<()> {
//! use runnel_client::ClientConfig;
//! use runnel_client::streams::{StreamBuilder, StreamRecord};
//!
//! // The classic data-cleaning job: keep what follows the last ">>>".
//! StreamBuilder::source("raw-logs")
//!     .filter(|r| r.value_str().is_some_and(|v| v.contains(">>>")))
//!     .map(|r| {
//!         let v = r.value_str().unwrap_or_default();
//!         let cleaned = v.rsplit(">>>").next().unwrap_or_default().to_owned();
//!         r.with_value(cleaned)
//!     })
//!     .sink("clean-logs")
//!     .run(ClientConfig::new("127.0.0.1:9092")?, "log-cleaner")
//!     .await
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::ClientConfig;
use crate::consumer::{AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord};
use crate::error::Result;
use crate::producer::{Producer, ProducerConfig, ProducerRecord};

/// A record flowing through a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// The source record's timestamp, kept on outputs.
    pub timestamp: i64,
}

impl StreamRecord {
    /// The value as UTF-8, if it is.
    pub fn value_str(&self) -> Option<&str> {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The same record with another value.
    pub fn with_value(self, value: impl Into<Bytes>) -> Self {
        StreamRecord {
            value: Some(value.into()),
            ..self
        }
    }

    /// The same record with another key.
    pub fn with_key(self, key: impl Into<Bytes>) -> Self {
        StreamRecord {
            key: Some(key.into()),
            ..self
        }
    }
}

impl From<&ConsumerRecord> for StreamRecord {
    fn from(r: &ConsumerRecord) -> Self {
        StreamRecord {
            key: r.key.clone(),
            value: r.value.clone(),
            timestamp: r.timestamp,
        }
    }
}

type Step = Arc<dyn Fn(StreamRecord) -> Vec<StreamRecord> + Send + Sync>;

/// A topology under construction: a source topic and a chain of steps.
#[derive(Clone)]
pub struct StreamBuilder {
    source: String,
    steps: Vec<Step>,
}

impl std::fmt::Debug for StreamBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamBuilder")
            .field("source", &self.source)
            .field("steps", &self.steps.len())
            .finish()
    }
}

impl StreamBuilder {
    /// Read `topic`.
    pub fn source(topic: impl Into<String>) -> Self {
        StreamBuilder {
            source: topic.into(),
            steps: Vec::new(),
        }
    }

    /// Transform each record.
    pub fn map(self, f: impl Fn(StreamRecord) -> StreamRecord + Send + Sync + 'static) -> Self {
        self.step(move |r| vec![f(r)])
    }

    /// Keep the records for which `f` is true.
    pub fn filter(self, f: impl Fn(&StreamRecord) -> bool + Send + Sync + 'static) -> Self {
        self.step(move |r| if f(&r) { vec![r] } else { Vec::new() })
    }

    /// Turn each record into any number of records.
    pub fn flat_map(
        self,
        f: impl Fn(StreamRecord) -> Vec<StreamRecord> + Send + Sync + 'static,
    ) -> Self {
        self.step(f)
    }

    /// Transform values only.
    pub fn map_values(self, f: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static) -> Self {
        self.map(move |r| match r.value.as_deref().map(&f) {
            Some(v) => r.with_value(v),
            None => r,
        })
    }

    fn step(
        mut self,
        f: impl Fn(StreamRecord) -> Vec<StreamRecord> + Send + Sync + 'static,
    ) -> Self {
        self.steps.push(Arc::new(f));
        self
    }

    /// Write the results to `topic`.
    pub fn sink(self, topic: impl Into<String>) -> Topology {
        Topology {
            builder: self,
            sink: topic.into(),
        }
    }

    /// Apply the steps to one record (exposed for unit tests of a
    /// topology's logic without a broker).
    pub fn apply(&self, record: StreamRecord) -> Vec<StreamRecord> {
        let mut records = vec![record];
        for step in &self.steps {
            records = records.into_iter().flat_map(|r| step(r)).collect();
        }
        records
    }
}

/// A complete topology: source → steps → sink.
#[derive(Debug, Clone)]
pub struct Topology {
    builder: StreamBuilder,
    sink: String,
}

impl Topology {
    /// The steps, for [`StreamBuilder::apply`].
    pub fn builder(&self) -> &StreamBuilder {
        &self.builder
    }

    /// Run as one instance of application `application_id` (the consumer
    /// group) until the future is dropped or an error stops it.
    pub async fn run(self, client: ClientConfig, application_id: &str) -> Result<()> {
        let mut consumer = Consumer::connect(
            client.clone(),
            ConsumerConfig {
                group_id: Some(application_id.to_owned()),
                client_id: format!("{application_id}-streams"),
                auto_offset_reset: AutoOffsetReset::Earliest,
                // Commits follow acknowledged outputs, below.
                enable_auto_commit: false,
                session_timeout: Duration::from_secs(10),
                ..ConsumerConfig::default()
            },
        )
        .await?;
        consumer.subscribe([&self.builder.source])?;
        let producer = Producer::connect(client, ProducerConfig::default()).await?;
        loop {
            let records = consumer.poll(Duration::from_millis(500)).await?;
            if records.is_empty() {
                continue;
            }
            let mut deliveries = Vec::new();
            let mut done: std::collections::BTreeMap<(String, u32), i64> = Default::default();
            for r in &records {
                for out in self.builder.apply(StreamRecord::from(r)) {
                    let mut record =
                        ProducerRecord::new(self.sink.clone(), out.value.unwrap_or_default())
                            .timestamp(out.timestamp);
                    if let Some(k) = out.key {
                        record = record.key(k);
                    }
                    deliveries.push(producer.send(record).await?);
                }
                done.insert((r.topic.to_string(), r.partition), r.offset + 1);
            }
            for d in deliveries {
                d.await?;
            }
            // Only partitions still ours: a revoked one's new owner redoes
            // the batch from its last commit (at least once).
            let owned: std::collections::BTreeSet<(String, u32)> = consumer
                .assignment()
                .into_iter()
                .map(|(t, p)| (t.to_string(), p))
                .collect();
            let offsets: Vec<((String, u32), i64)> = done
                .into_iter()
                .filter(|(tp, _)| owned.contains(tp))
                .collect();
            consumer.commit_offsets(&offsets).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(v: &str) -> StreamRecord {
        StreamRecord {
            key: None,
            value: Some(Bytes::from(v.to_owned())),
            timestamp: 1,
        }
    }

    #[test]
    fn steps_apply_in_order() {
        let b = StreamBuilder::source("in")
            .filter(|r| r.value_str().is_some_and(|v| v.contains(">>>")))
            .map(|r| {
                let v = r.value_str().unwrap_or_default();
                let cleaned = v.rsplit(">>>").next().unwrap_or_default().to_owned();
                r.with_value(cleaned)
            })
            .flat_map(|r| vec![r.clone(), r]);
        let out = b.apply(record("atguigu>>>ximenqing"));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].value_str(), Some("ximenqing"));
        assert!(b.apply(record("no marker")).is_empty());
        assert_eq!(b.apply(record("a>>>b>>>c"))[0].value_str(), Some("c"));
    }
}
