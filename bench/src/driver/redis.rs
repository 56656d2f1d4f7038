//! Redis Streams through the `redis` crate: a stream key per partition
//! (`<topic>-<p>`), XADDs sent in pipelines of up to [`PIPELINE`] over one
//! multiplexed connection, and XREAD over every key for reading (no
//! consumer group, so no per-message XACK, like the other consumers).

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::Shared;
use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::sync::oneshot;

use super::{AckFuture, Consumer, Driver, Producer};

/// XADDs per pipeline (one round trip).
pub const PIPELINE: usize = 1000;
/// Pipelines in flight per producer.
pub const PIPELINES_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone)]
pub struct RedisDriver {
    pub url: String,
}

impl RedisDriver {
    async fn connection(&self) -> Result<MultiplexedConnection> {
        let client = redis::Client::open(self.url.as_str())?;
        // The client's default 500 ms response timeout is shorter than a
        // loaded server takes to answer a pipeline or a 16-key XREAD.
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .with_context(|| format!("connecting to redis at {}", self.url))
    }
}

fn keys(topic: &str, partitions: u32) -> Vec<String> {
    (0..partitions).map(|p| format!("{topic}-{p}")).collect()
}

#[async_trait]
impl Driver for RedisDriver {
    async fn create_topic(&self, _topic: &str, _partitions: u32) -> Result<()> {
        Ok(())
    }

    async fn producer(&self, topic: &str, partitions: u32) -> Result<Box<dyn Producer>> {
        Ok(Box::new(RedisProducer {
            conn: self.connection().await?,
            keys: keys(topic, partitions),
            next: 0,
            batch: None,
        }))
    }

    async fn consumer(&self, topic: &str, partitions: u32) -> Result<Box<dyn Consumer>> {
        let keys = keys(topic, partitions);
        Ok(Box::new(RedisConsumer {
            conn: self.connection().await?,
            positions: vec!["0-0".to_owned(); keys.len()],
            keys,
        }))
    }

    fn window(&self) -> usize {
        PIPELINE * PIPELINES_IN_FLIGHT
    }
}

/// Outcome of one pipeline, shared by its messages' ack futures.
type PipelineDone = Shared<oneshot::Receiver<Result<(), String>>>;

/// The pipeline being filled.
struct Batch {
    pipe: redis::Pipeline,
    len: usize,
    done_tx: oneshot::Sender<Result<(), String>>,
    done: PipelineDone,
}

struct RedisProducer {
    conn: MultiplexedConnection,
    keys: Vec<String>,
    next: usize,
    batch: Option<Batch>,
}

impl RedisProducer {
    /// Add one XADD to the open pipeline (sent when full).
    fn add(&mut self, payload: &[u8]) -> AckFuture {
        let key = &self.keys[self.next];
        self.next = (self.next + 1) % self.keys.len();
        let batch = self.batch.get_or_insert_with(|| {
            let (done_tx, rx) = oneshot::channel();
            Batch {
                pipe: redis::pipe(),
                len: 0,
                done_tx,
                done: rx.shared(),
            }
        });
        batch
            .pipe
            .cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("v")
            .arg(payload)
            .ignore();
        batch.len += 1;
        let done = batch.done.clone();
        if batch.len >= PIPELINE {
            self.dispatch();
        }
        Box::pin(async move {
            match done.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(anyhow!("XADD pipeline: {e}")),
                Err(_) => Err(anyhow!("XADD pipeline dropped")),
            }
        })
    }

    /// Send the current pipeline on its own task; its messages' futures
    /// complete with its reply.
    fn dispatch(&mut self) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        let mut conn = self.conn.clone();
        tokio::spawn(async move {
            let outcome = batch
                .pipe
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string());
            let _ = batch.done_tx.send(outcome);
        });
    }
}

#[async_trait]
impl Producer for RedisProducer {
    async fn send_all(&mut self, payloads: Vec<Bytes>, acks: &mut Vec<AckFuture>) -> Result<()> {
        for payload in payloads {
            acks.push(self.add(&payload));
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.dispatch();
        Ok(())
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        self.dispatch();
        Ok(())
    }
}

struct RedisConsumer {
    conn: MultiplexedConnection,
    keys: Vec<String>,
    /// Last id read per key.
    positions: Vec<String>,
}

#[async_trait]
impl Consumer for RedisConsumer {
    async fn poll(&mut self, timeout: Duration) -> Result<Vec<Bytes>> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(PIPELINE)
            .arg("BLOCK")
            .arg(timeout.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.keys)
            .arg(&self.positions);
        let reply: Value = cmd.query_async(&mut self.conn).await?;
        let mut out = Vec::new();
        for (key, entries) in pairs(reply)? {
            let Some(i) = self.keys.iter().position(|k| k.as_bytes() == key) else {
                bail!("XREAD returned an unknown key");
            };
            for entry in array(entries)? {
                let mut entry = array(entry)?.into_iter();
                let (Some(Value::BulkString(id)), Some(fields)) = (entry.next(), entry.next())
                else {
                    bail!("XREAD entry without id and fields");
                };
                self.positions[i] = String::from_utf8(id).context("stream id")?;
                // Fields alternate name, value: the payload is the value of "v".
                if let Some(Value::BulkString(v)) = array(fields)?.into_iter().nth(1) {
                    out.push(Bytes::from(v));
                }
            }
        }
        Ok(out)
    }
}

/// XREAD's reply as (key, entries) pairs: an array of [key, entries]
/// under RESP2, a map under RESP3, nil on timeout.
fn pairs(reply: Value) -> Result<Vec<(Vec<u8>, Value)>> {
    let pairs = match reply {
        Value::Nil => Vec::new(),
        Value::Map(m) => m,
        Value::Array(items) => items
            .into_iter()
            .map(|item| {
                let mut kv = array(item)?.into_iter();
                match (kv.next(), kv.next()) {
                    (Some(k), Some(v)) => Ok((k, v)),
                    _ => bail!("XREAD stream without entries"),
                }
            })
            .collect::<Result<_>>()?,
        other => bail!("unexpected XREAD reply {other:?}"),
    };
    pairs
        .into_iter()
        .map(|(k, v)| match k {
            Value::BulkString(k) => Ok((k, v)),
            other => bail!("unexpected XREAD key {other:?}"),
        })
        .collect()
}

fn array(v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        other => bail!("expected an array in the XREAD reply, got {other:?}"),
    }
}
