//! The sender task: drains ready batches from the accumulator and sends
//! them, one `ProduceRequest` per broker per drain, several requests in
//! flight at once (each on its own task; tonic multiplexes them over the
//! broker's HTTP/2 connection).

use std::sync::Arc;

use runnel_proto::v1::{ErrorCode, ProduceResponse};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::producer::ProducerConfig;
use crate::producer::accumulator::{Accumulator, Request};
use crate::producer::delivery::BatchAck;
use crate::producer::wire::{self, PartitionBody, ProduceBody, TopicBody};

/// What the sender and its request tasks share with the `Producer`.
pub(crate) struct Shared {
    pub acc: Accumulator,
    pub cluster: Arc<Cluster>,
    pub config: ProducerConfig,
}

/// Run until the producer is closed (or dropped) and everything is sent.
pub(crate) async fn run(shared: Arc<Shared>) {
    loop {
        let drain = shared.acc.drain(Instant::now(), |topic, partition| {
            shared.cluster.leader(topic, partition)
        });
        for request in drain.requests {
            tokio::spawn(send(shared.clone(), request));
        }
        if drain.finished {
            return;
        }
        let wake = shared.acc.sender_wake.notified();
        match drain.next_due {
            Some(at) => {
                tokio::select! {
                    () = wake => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            None => wake.await,
        }
    }
}

/// Send one request and deliver its outcome to every batch in it.
async fn send(shared: Arc<Shared>, request: Request) {
    let started = Instant::now();
    let outcome = produce(&shared, &request).await;
    tracing::trace!(
        broker = request.broker,
        partitions = request.partitions.len(),
        bytes = request.bytes,
        elapsed_us = started.elapsed().as_micros() as u64,
        ok = outcome.is_ok(),
        "produce request answered"
    );
    for pb in &request.partitions {
        let result = match &outcome {
            Ok(response) => partition_result(response, &pb.topic, pb.partition),
            Err(e) => Err(e.clone()),
        };
        match result {
            Ok(mut ack) => {
                for batch in &pb.batches {
                    batch.result.complete(Ok(ack));
                    if ack.base_offset >= 0 {
                        ack.base_offset += i64::from(batch.count);
                    }
                }
            }
            Err(e) => {
                tracing::debug!(topic = %pb.topic, partition = pb.partition, error = %e, "produce failed");
                // Stale routing or a deleted/recreated topic: look again next time.
                // (Retrying on a new leader is cluster mode's job.)
                if matches!(
                    e.code(),
                    Some(ErrorCode::NotLeaderOrFollower | ErrorCode::UnknownTopicOrPartition)
                ) {
                    shared.cluster.invalidate(&pb.topic);
                }
                for batch in &pb.batches {
                    batch.result.complete(Err(e.clone()));
                }
            }
        }
    }
    shared.acc.request_done(&request);
    // `request` drops here, returning its batches' memory to the buffer.
}

async fn produce(shared: &Shared, req: &Request) -> Result<ProduceResponse> {
    let mut topics: Vec<TopicBody> = Vec::new();
    for pb in &req.partitions {
        let data = PartitionBody {
            partition: pb.partition,
            batches: pb.batches.iter().map(|b| b.records.clone()).collect(),
        };
        match topics.iter_mut().find(|t| t.topic == pb.topic) {
            Some(t) => t.partitions.push(data),
            None => topics.push(TopicBody {
                topic: pb.topic.clone(),
                partitions: vec![data],
            }),
        }
    }
    let timeout = shared.config.request_timeout;
    let body = ProduceBody {
        topics,
        acks: shared.config.acks.to_proto() as i32,
        timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
    };
    let conn = shared.cluster.conn(req.broker).await;
    conn.call(
        "Produce",
        timeout,
        wire::produce(conn.channel(), body, timeout),
    )
    .await
}

fn partition_result(response: &ProduceResponse, topic: &str, partition: u32) -> Result<BatchAck> {
    let found = response
        .topics
        .iter()
        .filter(|t| t.topic == topic)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition == partition);
    let Some(p) = found else {
        return Err(Error::Partition {
            topic: topic.to_owned(),
            partition,
            code: ErrorCode::UnknownServerError,
            message: "the broker's produce answer left this partition out".into(),
        });
    };
    if let Some(e) = Error::from_partition(topic, partition, p.error.as_ref()) {
        return Err(e);
    }
    Ok(BatchAck {
        base_offset: p.base_offset,
        log_append_time: p.log_append_time_ms,
    })
}
