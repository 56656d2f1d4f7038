//! The chaos workload over gRPC (runnel-client): idempotent acks=all
//! producers writing unique values round-robin over the topic's partitions
//! at a steady rate, and consumers in a group that read everything and
//! commit what they read. Every send, ack, error, read and commit goes to
//! the history as it happens.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use runnel_client::{
    AutoOffsetReset, ClientConfig, Consumer, ConsumerConfig, Offset, Producer, ProducerConfig,
    ProducerRecord,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::history::{Op, Recorder};

/// The topic every client uses.
pub const TOPIC: &str = "chaos";

/// What a workload client needs to know.
#[derive(Clone)]
pub struct Shared {
    pub bootstrap: String,
    pub partitions: u32,
    pub history: Recorder,
    /// Set when the producers should stop sending.
    pub stop_producing: Arc<AtomicBool>,
    /// Set when the consumers should stop.
    pub stop_consuming: Arc<AtomicBool>,
}

impl Shared {
    pub fn client_config(&self, client_id: &str) -> Result<ClientConfig> {
        let mut config = ClientConfig::new(self.bootstrap.as_str())?;
        config.client_id = client_id.to_owned();
        // A broker cut off by a partition answers nothing; give up on it
        // soon and try another.
        config.request_timeout = Duration::from_secs(10);
        config.connect_timeout = Duration::from_secs(2);
        Ok(config)
    }
}

/// Most sends awaiting their ack at once, per producer: a cluster that
/// stalls under a fault makes the producer wait instead of buffering
/// without bound.
const MAX_OUTSTANDING: usize = 2000;

/// One producer: `rate` values a second until told to stop, then wait for
/// every outstanding ack (or its error).
// The send is two-staged on purpose: handing the record over is awaited in
// the loop (it waits for buffer space), its delivery on a task of its own.
#[allow(clippy::async_yields_async)]
pub async fn grpc_producer(name: String, shared: Shared, rate: u32) -> Result<()> {
    let config = ProducerConfig {
        enable_idempotence: true,
        request_timeout: Duration::from_secs(10),
        // Long enough to ride out every fault a run holds (at most tens of
        // seconds), short enough that the run ends.
        delivery_timeout: Duration::from_secs(60),
        linger: Duration::from_millis(5),
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(shared.client_config(&name)?, config)
        .await
        .with_context(|| format!("{name}: connecting"))?;
    produce_at_rate(&name, &shared, rate, |partition, value| {
        let record = ProducerRecord::new(TOPIC, value.into_bytes()).partition(partition);
        let producer = &producer;
        async move {
            let delivery = producer.send(record).await;
            Box::pin(async move {
                match delivery {
                    Ok(delivery) => delivery.await.map(|meta| meta.offset),
                    Err(e) => Err(e),
                }
                .map_err(|e| e.to_string())
            }) as Delivery
        }
    })
    .await?;
    producer.close().await;
    Ok(())
}

/// How one send ends: the offset it was acknowledged at, or the error.
pub type Delivery = Pin<Box<dyn Future<Output = std::result::Result<i64, String>> + Send>>;

/// The send loop every producer client shares: `rate` unique values a
/// second (`<name>-<seq>`) round-robin over the partitions, each recorded
/// as sent, then as acknowledged or failed when `send`'s delivery resolves;
/// until told to stop, then until every outstanding delivery has resolved.
/// `send` hands a value to the client library (waiting if its buffer is
/// full) and returns the delivery: the offset, or the error.
pub async fn produce_at_rate<S, Sent>(
    name: &str,
    shared: &Shared,
    rate: u32,
    mut send: S,
) -> Result<()>
where
    S: FnMut(u32, String) -> Sent,
    Sent: Future<Output = Delivery>,
{
    let outstanding = Arc::new(Semaphore::new(MAX_OUTSTANDING));
    let mut acks = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u64 = 0;
    while !shared.stop_producing.load(Ordering::Relaxed) {
        tick.tick().await;
        let permit = outstanding.clone().acquire_owned().await?;
        let partition = (seq % u64::from(shared.partitions)) as u32;
        let value = format!("{name}-{seq}");
        seq += 1;
        shared.history.record(
            name,
            Op::Send {
                partition,
                value: value.clone(),
            },
        );
        let delivery = send(partition, value.clone()).await;
        let (history, name) = (shared.history.clone(), name.to_owned());
        acks.spawn(async move {
            let op = match delivery.await {
                Ok(offset) => Op::Ack {
                    partition,
                    value,
                    offset,
                },
                Err(error) => Op::SendFailed {
                    partition,
                    value,
                    error,
                },
            };
            history.record(&name, op);
            drop(permit);
        });
        while acks.try_join_next().is_some() {}
    }
    while acks.join_next().await.is_some() {}
    Ok(())
}

/// One consumer in `group`: poll, record every record read, commit the
/// positions after each poll that returned records.
pub async fn grpc_consumer(name: String, group: String, shared: Shared) -> Result<()> {
    let config = ConsumerConfig {
        group_id: Some(group.clone()),
        client_id: name.clone(),
        auto_offset_reset: AutoOffsetReset::Earliest,
        enable_auto_commit: false,
        session_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(10),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(shared.client_config(&name)?, config)
        .await
        .with_context(|| format!("{name}: connecting"))?;
    consumer.subscribe([TOPIC])?;
    while !shared.stop_consuming.load(Ordering::Relaxed) {
        let records = match consumer.poll(Duration::from_secs(1)).await {
            Ok(records) => records,
            Err(e) => {
                shared.history.record(
                    &name,
                    Op::Info {
                        message: format!("poll failed: {e}"),
                    },
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if records.is_empty() {
            continue;
        }
        for r in &records {
            shared.history.record(
                &name,
                Op::Read {
                    partition: r.partition,
                    offset: r.offset,
                    value: value_text(r.value.as_deref()),
                },
            );
        }
        let offsets: Vec<((String, u32), i64)> = consumer
            .assignment()
            .iter()
            .filter_map(|(t, p)| Some(((t.to_string(), *p), consumer.position(t, *p)?)))
            .collect();
        let outcome = consumer.commit_offsets(&offsets).await;
        for ((_, partition), offset) in offsets {
            shared.history.record(
                &name,
                match &outcome {
                    Ok(()) => Op::Commit {
                        group: group.clone(),
                        partition,
                        offset,
                    },
                    Err(e) => Op::CommitFailed {
                        group: group.clone(),
                        partition,
                        offset,
                        error: e.to_string(),
                    },
                },
            );
        }
    }
    if let Err(e) = consumer.close().await {
        shared.history.record(
            &name,
            Op::Info {
                message: format!("closing the consumer failed: {e}"),
            },
        );
    }
    Ok(())
}

/// After the faults healed: read every partition from its log start to
/// its high watermark, as one record per history line.
pub async fn final_read(shared: &Shared) -> Result<()> {
    let mut consumer = Consumer::connect(
        shared.client_config("final-read")?,
        ConsumerConfig {
            client_id: "final-read".into(),
            ..ConsumerConfig::default()
        },
    )
    .await?;
    for partition in 0..shared.partitions {
        consumer.assign([(TOPIC, partition)]);
        consumer.seek(TOPIC, partition, Offset::Earliest).await?;
        let hw = consumer.end_offsets(&[(TOPIC, partition)]).await?[0];
        shared.history.record(
            "harness",
            Op::FinalHighWatermark {
                partition,
                offset: hw,
            },
        );
        let mut idle = 0;
        while consumer.position(TOPIC, partition).unwrap_or(0) < hw {
            let records = consumer.poll(Duration::from_secs(1)).await?;
            if records.is_empty() {
                idle += 1;
                anyhow::ensure!(
                    idle < 30,
                    "final read of partition {partition} stalled at {:?} below the high \
                     watermark {hw}",
                    consumer.position(TOPIC, partition)
                );
                continue;
            }
            idle = 0;
            for r in records.iter().filter(|r| r.offset < hw) {
                shared.history.record(
                    "harness",
                    Op::FinalRead {
                        partition,
                        offset: r.offset,
                        value: value_text(r.value.as_deref()),
                    },
                );
            }
        }
    }
    Ok(())
}

/// A value as the history keeps it (the workload writes UTF-8).
fn value_text(value: Option<&[u8]>) -> String {
    match value {
        Some(v) => String::from_utf8_lossy(v).into_owned(),
        None => "<null>".into(),
    }
}
