//! One trait over every system's client, so the runner drives Runnel (over
//! gRPC and over the Kafka protocol through librdkafka and rskafka), Tansu, NATS JetStream and Redis
//! Streams with the same loop.
//!
//! The unit is one message: the runner offers payloads in order (in
//! chunks, to keep its own overhead small) and each system batches the way
//! its own client does (Runnel's producer and librdkafka into
//! record batches, async-nats into its write buffer, Redis into pipelines).
//! Each message gets an [`AckFuture`] that completes when the server
//! acknowledged it.

pub mod kafka;
pub mod nats;
pub mod redis;
pub mod rskafka;
pub mod runnel;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use bytes::Bytes;

/// Completes when the server acknowledged one message.
pub type AckFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// A connected client of one system under test.
#[async_trait]
pub trait Driver: Send + Sync {
    /// Make a topic (Runnel topic, JetStream stream, Redis: nothing, its
    /// stream keys appear on the first XADD).
    async fn create_topic(&self, topic: &str, partitions: u32) -> Result<()>;
    async fn producer(&self, topic: &str, partitions: u32) -> Result<Box<dyn Producer>>;
    /// A consumer reading every partition of `topic` from its start.
    async fn consumer(&self, topic: &str, partitions: u32) -> Result<Box<dyn Consumer>>;
    /// Most unacknowledged messages the runner lets one producer have.
    fn window(&self) -> usize;
}

#[async_trait]
pub trait Producer: Send {
    /// Queue each payload, in order, on the next partition (the system's
    /// own choice: Runnel's sticky partitioner, round robin for the peers)
    /// and push one [`AckFuture`] per payload onto `acks`. Waits only when
    /// the client's buffers are full.
    ///
    /// A chunk per call, not a message: one boxed call per chunk keeps the
    /// harness's own cost per message (measured at about a third of the
    /// client's CPU with 100 B messages when it was one call each) out of
    /// the numbers.
    async fn send_all(&mut self, payloads: Vec<Bytes>, acks: &mut Vec<AckFuture>) -> Result<()>;
    /// Put queued messages on the wire now: called before the runner waits
    /// (for the rate, for the window), where a client without a linger
    /// timer of its own would otherwise sit on a half-built batch.
    async fn flush(&mut self) -> Result<()>;
    async fn close(self: Box<Self>) -> Result<()>;
}

#[async_trait]
pub trait Consumer: Send {
    /// The next messages' payloads, waiting up to `timeout`; empty when
    /// nothing arrived.
    async fn poll(&mut self, timeout: Duration) -> Result<Vec<Bytes>>;
}

/// [`Consumer::poll`] for a consumer whose client reads on tasks or
/// threads of its own and hands chunks over `rx`; `stopped` names them in
/// the error when they are gone.
pub async fn recv_chunk(
    rx: &mut tokio::sync::mpsc::Receiver<Result<Vec<Bytes>>>,
    timeout: Duration,
    stopped: &str,
) -> Result<Vec<Bytes>> {
    match tokio::time::timeout(timeout, rx.recv()).await {
        Err(_) => Ok(Vec::new()),
        Ok(Some(chunk)) => chunk,
        Ok(None) => anyhow::bail!("{stopped} stopped"),
    }
}
