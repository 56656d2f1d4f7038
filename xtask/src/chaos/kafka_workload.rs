//! The chaos workload over the Kafka protocol, through librdkafka (the
//! `rdkafka` crate): an idempotent acks=all producer and group consumers
//! that commit what they read, recorded in the same history and with the
//! same value scheme as the gRPC clients (`workload`), so one checker reads
//! both.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::history::Op;
use super::workload::{Delivery, Shared, TOPIC, produce_at_rate};

/// Longest wait for a synchronous commit.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(15);

fn common(shared: &Shared, name: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &shared.bootstrap)
        .set("client.id", name)
        // A broker cut off by a partition answers nothing: notice soon.
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .set("log_level", "3");
    // librdkafka's own debug contexts (e.g. `eos,msg,broker,metadata`),
    // logged as target `librdkafka` at debug level into clients.log when
    // `RUNNEL_CHAOS_LOG` lets them through: what a stalled client waited for.
    if let Ok(contexts) = std::env::var("RUNNEL_CHAOS_RDKAFKA_DEBUG") {
        config.set("debug", contexts).set("log_level", "7");
    }
    config
}

/// `rate` values a second round-robin over the partitions until told to
/// stop; then wait for every outstanding delivery report.
pub async fn producer(name: String, shared: Shared, rate: u32) -> Result<()> {
    let producer: FutureProducer = common(&shared, &name)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("request.timeout.ms", "10000")
        // As the gRPC producer's delivery timeout.
        .set("message.timeout.ms", "60000")
        .create()
        .with_context(|| format!("{name}: creating the librdkafka producer"))?;
    produce_at_rate(&name, &shared, rate, |partition, value| {
        let record = FutureRecord::<(), _>::to(TOPIC)
            .partition(partition as i32)
            .payload(value.as_bytes());
        // librdkafka queues at once (or refuses: queue full).
        let delivery = producer.send_result(record).map_err(|(e, _)| e);
        std::future::ready(Box::pin(async move {
            match delivery {
                Ok(future) => match future.await {
                    Ok(Ok(delivery)) => Ok(delivery.offset),
                    Ok(Err((e, _))) => Err(e.to_string()),
                    Err(_) => Err("the producer went away before the delivery report".into()),
                },
                Err(e) => Err(e.to_string()),
            }
        }) as Delivery)
    })
    .await?;
    tokio::task::block_in_place(|| producer.flush(Duration::from_secs(5)))?;
    Ok(())
}

/// A consumer in `group`: record every message, commit the positions
/// (synchronously) after every batch of up to 100 messages or 500 ms.
pub async fn consumer(name: String, group: String, shared: Shared) -> Result<()> {
    let consumer: Arc<StreamConsumer> = common(&shared, &name)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        // librdkafka pauses a partition's fetches for a second once its
        // queue is full (docs/benchmarks.md); not what a test wants.
        .set("fetch.queue.backoff.ms", "0")
        .create()
        .map(Arc::new)
        .with_context(|| format!("{name}: creating the librdkafka consumer"))?;
    consumer.subscribe(&[TOPIC])?;
    while !shared.stop_consuming.load(Ordering::Relaxed) {
        let mut read = 0;
        let batch = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(batch);
        while read < 100 {
            tokio::select! {
                _ = &mut batch => break,
                message = consumer.recv() => match message {
                    Ok(m) => {
                        read += 1;
                        shared.history.record(&name, Op::Read {
                            partition: m.partition() as u32,
                            offset: m.offset(),
                            value: m.payload().map_or_else(
                                || "<null>".into(),
                                |v| String::from_utf8_lossy(v).into_owned(),
                            ),
                        });
                    }
                    Err(e) => {
                        shared.history.record(&name, Op::Info {
                            message: format!("consume failed: {e}"),
                        });
                        break;
                    }
                },
            }
        }
        if read == 0 {
            continue;
        }
        let Ok(positions) = consumer.position() else {
            continue;
        };
        let offsets: Vec<(u32, i64)> = positions
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition() as u32, o)),
                _ => None,
            })
            .collect();
        if offsets.is_empty() {
            continue;
        }
        // Only the partitions with a position: a commit of "no offset yet"
        // would be refused as a whole.
        let mut commit = TopicPartitionList::new();
        for &(partition, offset) in &offsets {
            commit.add_partition_offset(TOPIC, partition as i32, Offset::Offset(offset))?;
        }
        // librdkafka's synchronous commit has no timeout of its own, and
        // has been seen to wait for good after its connections all failed;
        // the history calls such a commit failed (it may still land).
        let committing = {
            let consumer = consumer.clone();
            tokio::task::spawn_blocking(move || consumer.commit(&commit, CommitMode::Sync))
        };
        let outcome = match tokio::time::timeout(COMMIT_TIMEOUT, committing).await {
            Ok(Ok(result)) => result.map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(format!("the commit task failed: {e}")),
            Err(_) => Err(format!("no answer within {COMMIT_TIMEOUT:?}")),
        };
        for (partition, offset) in offsets {
            shared.history.record(
                &name,
                match &outcome {
                    Ok(()) => Op::Commit {
                        group: group.clone(),
                        partition,
                        offset,
                    },
                    Err(error) => Op::CommitFailed {
                        group: group.clone(),
                        partition,
                        offset,
                        error: error.clone(),
                    },
                },
            );
        }
    }
    let _ = tokio::time::timeout(
        COMMIT_TIMEOUT,
        tokio::task::spawn_blocking(move || consumer.unsubscribe()),
    )
    .await;
    Ok(())
}
