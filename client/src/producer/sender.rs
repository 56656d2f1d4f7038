//! The sender task: drains ready batches from the accumulator and sends
//! them, one `ProduceRequest` per broker per drain, several requests in
//! flight at once (each on its own task; tonic multiplexes them over the
//! broker's HTTP/2 connection).
//!
//! Retries follow Kafka's producer: a partition result with a retriable
//! code (see [`retriable`]), or a request that failed as a whole at the
//! transport level, timed out or met `UNAVAILABLE`, sends the same batch
//! bytes again to the partition's current leader after `retry_backoff`
//! (doubling per attempt up to `retry_backoff_max`), until
//! `delivery_timeout` after the batch's first record was sent. Leader-type
//! errors and transport failures first invalidate the topic's metadata, so
//! the retry is routed by fresh metadata.
//!
//! Idempotence: a batch that carries a sequence number and fails for good
//! (a non-retriable error, or its delivery timeout) leaves a gap, or an
//! unknown outcome, in its partition's sequence, and the leader would
//! refuse every later batch with `OUT_OF_ORDER_SEQUENCE_NUMBER`. As Kafka's
//! idempotent producer did before KIP-360, the sender then stops giving
//! out sequences, lets the requests in flight and the pending retries
//! finish, gets a new producer id and starts every partition at sequence 0.
//! One refusal is not a gap: `OUT_OF_ORDER_SEQUENCE_NUMBER` for a batch
//! whose predecessor's outcome is still open (in flight to a deposed or
//! paused leader, or waiting to be retried) is retried like Kafka's
//! producer does, since the predecessor will land first
//! ([`waits_on_predecessor`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_proto::v1::{ErrorCode, PartitionProduceResult, ProduceResponse, TopicProduceResult};
use tokio::time::Instant;

use crate::cluster::{Cluster, UNKNOWN_BROKER};
use crate::error::{Error, Result};
use crate::producer::accumulator::{
    Accumulator, PartitionBatches, ProducerStamp, Request, SealedBatch,
};
use crate::producer::delivery::BatchAck;
use crate::producer::wire::{self, PartitionBody, ProduceBody, TopicBody};
use crate::producer::{Acks, ProducerConfig};

/// What the sender and its request tasks share with the `Producer`.
pub(crate) struct Shared {
    pub acc: Accumulator,
    pub cluster: Arc<Cluster>,
    pub config: ProducerConfig,
    /// Producer id and epoch from `InitProducerId`; `None` when
    /// `enable_idempotence` is off.
    pub stamp: Mutex<Option<ProducerStamp>>,
    /// A sequenced batch failed for good: get a new producer id before
    /// sending new batches (see the module docs).
    pub reset_producer_id: AtomicBool,
}

impl Shared {
    fn stamp(&self) -> Option<ProducerStamp> {
        *self.stamp.lock().expect("stamp lock")
    }
}

/// Run until the producer is closed (or dropped) and everything is sent.
pub(crate) async fn run(shared: Arc<Shared>) {
    loop {
        let resetting = shared.reset_producer_id.load(Ordering::SeqCst);
        if resetting && !shared.acc.has_unresolved() {
            match super::init_producer_id(&shared.cluster).await {
                Ok(stamp) => {
                    tracing::info!(
                        producer_id = stamp.producer_id,
                        "new producer id after a failed batch; sequences restart at 0"
                    );
                    *shared.stamp.lock().expect("stamp lock") = Some(stamp);
                    shared.acc.reset_sequences();
                    shared.reset_producer_id.store(false, Ordering::SeqCst);
                    continue;
                }
                Err(e) if e.is_retriable() => {
                    // New batches wait; try again shortly.
                    tracing::warn!(error = %e, "InitProducerId failed; will retry");
                    tokio::time::sleep(shared.config.retry_backoff_max).await;
                    continue;
                }
                Err(e) => {
                    // No producer id to be had (the broker lost the API?):
                    // nothing can be sent idempotently any more.
                    tracing::error!(error = %e, "InitProducerId failed; failing unsent records");
                    shared.acc.abort(e);
                    return;
                }
            }
        }
        let drain = shared.acc.drain(
            Instant::now(),
            |topic, partition| shared.cluster.leader(topic, partition),
            shared.stamp(),
            resetting,
        );
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

/// Kafka's retriable produce errors: the batch was not appended, or its
/// fate is unknown and the idempotent producer's sequence makes resending
/// safe.
pub(crate) fn retriable(e: &Error) -> bool {
    if matches!(e, Error::Timeout { .. }) || e.is_unreachable() {
        return true;
    }
    matches!(
        e.code(),
        Some(
            ErrorCode::NotLeaderOrFollower
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::UnknownTopicOrPartition
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::NotEnoughReplicasAfterAppend
                | ErrorCode::RequestTimedOut
                | ErrorCode::BrokerNotAvailable
                | ErrorCode::KafkaStorageError
        )
    )
}

/// `OUT_OF_ORDER_SEQUENCE_NUMBER` for a batch that is not the next one
/// after everything acknowledged is retriable (Kafka's producer decides the
/// same, `TransactionManager.canRetry`): an earlier batch of the partition
/// is still in flight or being retried — typically stuck on a deposed or
/// paused leader until its request times out, while this one went to the
/// new leader, which refused it after holding it for a while. Once that
/// predecessor lands, this batch is in order. Not when a sequenced batch
/// already failed for good (`resetting`): that gap never fills.
fn waits_on_predecessor(
    error: &Error,
    base_sequence: i32,
    is_next_sequence: impl FnOnce(i32) -> bool,
    resetting: bool,
) -> bool {
    error.code() == Some(ErrorCode::OutOfOrderSequenceNumber)
        && base_sequence >= 0
        && !resetting
        && !is_next_sequence(base_sequence)
}

/// Errors that say the cached leader is wrong (Kafka's
/// `InvalidMetadataException`s, and a leader that cannot be reached).
fn stale_metadata(e: &Error) -> bool {
    e.is_unreachable()
        || matches!(e, Error::Timeout { .. })
        || matches!(
            e.code(),
            Some(
                ErrorCode::NotLeaderOrFollower
                    | ErrorCode::LeaderNotAvailable
                    | ErrorCode::UnknownTopicOrPartition
                    | ErrorCode::BrokerNotAvailable
                    | ErrorCode::KafkaStorageError
            )
        )
}

/// `retry_backoff * 2^(attempts-1)`, at most `retry_backoff_max`
/// (Kafka's exponential `retry.backoff.ms`, without its jitter).
pub(crate) fn backoff(config: &ProducerConfig, attempts: u32) -> Duration {
    let max = config.retry_backoff_max.max(config.retry_backoff);
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    config.retry_backoff.saturating_mul(factor).min(max)
}

/// Send one request and deliver its outcome to every batch in it, or put
/// the batches back for a retry.
async fn send(shared: Arc<Shared>, request: Request) {
    let started = Instant::now();
    if shared.config.acks == Acks::None && request.broker != UNKNOWN_BROKER {
        // Kafka's acks=0: a record counts as sent once its request goes to
        // the leader, with offset -1; nobody waits for the broker. Its
        // answer still frees the request's slot (so memory stays bounded),
        // and a retriable error is still retried, best effort, although
        // the application was already told "sent" (the first outcome wins).
        let sent = Ok(BatchAck {
            base_offset: -1,
            log_append_time: -1,
        });
        for pb in &request.partitions {
            for batch in &pb.batches {
                batch.result.complete(sent.clone());
            }
        }
    }
    let outcome = if request.broker == UNKNOWN_BROKER {
        // Metadata was invalidated and not refreshed yet, or the partition
        // has no leader right now (an election): retry like Kafka does.
        Ok(no_leader(&request))
    } else {
        produce(&shared, &request).await
    };
    tracing::trace!(
        broker = request.broker,
        partitions = request.partitions.len(),
        bytes = request.bytes,
        elapsed_us = started.elapsed().as_micros() as u64,
        ok = outcome.is_ok(),
        "produce request answered"
    );
    if let Err(Error::Transport { address, .. } | Error::Timeout { address, .. }) = &outcome {
        // Reconnect on next use instead of reusing a broken or hung
        // channel (Kafka disconnects on a request timeout too). Requests
        // still in flight on it keep their own handle.
        shared.cluster.forget(address);
    }
    let now = Instant::now();
    let mut done = Vec::new();
    let mut retry = Vec::new();
    let mut stale_topics: Vec<Arc<str>> = Vec::new();
    for mut pb in request.partitions {
        let result = match &outcome {
            Ok(response) => partition_result(response, &pb.topic, pb.partition),
            Err(e) => Err(e.clone()),
        };
        let error = match result {
            Ok(mut ack) => {
                shared
                    .acc
                    .acknowledged(&pb.topic, pb.partition, &pb.batches);
                for batch in &pb.batches {
                    batch.result.complete(Ok(ack));
                    if ack.base_offset >= 0 {
                        ack.base_offset += i64::from(batch.count);
                    }
                }
                done.push(pb);
                continue;
            }
            Err(e) => e,
        };
        let is_retriable = retriable(&error)
            || waits_on_predecessor(
                &error,
                pb.batches.first().map_or(-1, |b| b.base_sequence),
                |seq| shared.acc.is_next_sequence(&pb.topic, pb.partition, seq),
                shared.reset_producer_id.load(Ordering::SeqCst),
            );
        if is_retriable && stale_metadata(&error) && !stale_topics.contains(&pb.topic) {
            stale_topics.push(pb.topic.clone());
        }
        // Batches whose delivery timeout would pass before a retry could
        // start fail now with this error; the rest (younger, so later in
        // the queue: order is kept) are retried.
        let mut again: Vec<SealedBatch> = Vec::new();
        let mut failed = Vec::new();
        for mut batch in pb.batches.drain(..) {
            batch.attempts += 1;
            let deadline = batch.created + shared.config.delivery_timeout;
            if is_retriable && now + backoff(&shared.config, batch.attempts) < deadline {
                again.push(batch);
            } else {
                failed.push(batch);
            }
        }
        if failed.is_empty() {
            tracing::debug!(topic = %pb.topic, partition = pb.partition, error = %error,
                attempts = again.first().map_or(0, |b| b.attempts),
                base_sequence = again.first().map_or(-1, |b| b.base_sequence),
                "produce failed; will retry");
        } else {
            tracing::debug!(topic = %pb.topic, partition = pb.partition, error = %error,
                "produce failed");
        }
        for batch in &failed {
            batch.result.complete(Err(error.clone()));
        }
        if failed.iter().any(|b| b.base_sequence >= 0) {
            shared.reset_producer_id.store(true, Ordering::SeqCst);
        }
        if !failed.is_empty() {
            done.push(PartitionBatches {
                topic: pb.topic.clone(),
                partition: pb.partition,
                batches: failed,
            });
        }
        if let Some(first) = again.first() {
            let at = now + backoff(&shared.config, first.attempts);
            pb.batches = again;
            retry.push((pb, at));
        }
    }
    if !stale_topics.is_empty() {
        for topic in &stale_topics {
            shared.cluster.invalidate(topic);
        }
        // Look up the new leaders during the backoff; if this fails the
        // retry goes to UNKNOWN_BROKER and comes back here.
        let names: Vec<&str> = stale_topics.iter().map(|t| &**t).collect();
        if let Err(e) = shared.cluster.refresh(&names).await {
            tracing::debug!(error = %e, "metadata refresh after a produce error failed");
        }
    }
    shared.acc.request_done(request.broker, done, retry);
}

/// The answer for partitions without a known leader: `LEADER_NOT_AVAILABLE`
/// for each, as a broker in the middle of an election would say.
fn no_leader(req: &Request) -> ProduceResponse {
    let mut response = ProduceResponse::default();
    for pb in &req.partitions {
        let result = PartitionProduceResult {
            partition: pb.partition,
            error: Some(runnel_proto::v1::Error {
                code: ErrorCode::LeaderNotAvailable as i32,
                message: format!(
                    "no leader is known for {}-{} (leader election?)",
                    pb.topic, pb.partition
                ),
            }),
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
        };
        match response.topics.iter_mut().find(|t| *t.topic == *pb.topic) {
            Some(t) => t.partitions.push(result),
            None => response.topics.push(TopicProduceResult {
                topic: pb.topic.to_string(),
                partitions: vec![result],
            }),
        }
    }
    response
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
    let conn = shared.cluster.broker_conn(req.broker).await?;
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
        // A retried batch the leader already has (its first send was
        // appended but the answer was lost): the broker answers with the
        // original offset, which is a success for us.
        let duplicate = e.code() == Some(ErrorCode::DuplicateSequenceNumber);
        if !(duplicate && p.base_offset >= 0) {
            return Err(e);
        }
    }
    Ok(BatchAck {
        base_offset: p.base_offset,
        log_append_time: p.log_append_time_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let config = ProducerConfig::default();
        let ms = |a| backoff(&config, a).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(5)],
            [100, 200, 400, 800, 1000]
        );
        assert_eq!(ms(1000), 1000);
    }

    #[test]
    fn retriable_codes_are_kafkas() {
        let partition = |code| Error::Partition {
            topic: "t".into(),
            partition: 0,
            code,
            message: String::new(),
        };
        for code in [
            ErrorCode::NotLeaderOrFollower,
            ErrorCode::LeaderNotAvailable,
            ErrorCode::UnknownTopicOrPartition,
            ErrorCode::NotEnoughReplicas,
            ErrorCode::NotEnoughReplicasAfterAppend,
            ErrorCode::RequestTimedOut,
            ErrorCode::BrokerNotAvailable,
            ErrorCode::KafkaStorageError,
        ] {
            assert!(retriable(&partition(code)), "{code:?}");
        }
        for code in [
            ErrorCode::CorruptMessage,
            ErrorCode::MessageTooLarge,
            ErrorCode::InvalidTopic,
            ErrorCode::InvalidRequest,
            ErrorCode::OutOfOrderSequenceNumber,
            ErrorCode::UnknownProducerId,
            ErrorCode::DuplicateSequenceNumber,
        ] {
            assert!(!retriable(&partition(code)), "{code:?}");
        }
        let transport = Error::Transport {
            operation: "Produce",
            address: "h:1".into(),
            reason: "reset".into(),
        };
        assert!(retriable(&transport) && stale_metadata(&transport));
    }

    #[test]
    fn out_of_order_is_retried_only_while_a_predecessor_is_open() {
        let oos = Error::Partition {
            topic: "t".into(),
            partition: 0,
            code: ErrorCode::OutOfOrderSequenceNumber,
            message: "sent sequence 1175, expected 1174".into(),
        };
        // Acknowledged up to 1174 (exclusive): 1175 waits on 1174.
        let next_is = |n| move |seq| seq == n;
        assert!(waits_on_predecessor(&oos, 1175, next_is(1174), false));
        // It is the next one: the leader really lost something.
        assert!(!waits_on_predecessor(&oos, 1174, next_is(1174), false));
        // A batch failed for good: the gap never fills.
        assert!(!waits_on_predecessor(&oos, 1175, next_is(1174), true));
        // Not idempotent, or another error.
        assert!(!waits_on_predecessor(&oos, -1, next_is(0), false));
        let other = Error::Partition {
            topic: "t".into(),
            partition: 0,
            code: ErrorCode::InvalidRequest,
            message: String::new(),
        };
        assert!(!waits_on_predecessor(&other, 1175, next_is(1174), false));
    }

    #[test]
    fn duplicate_is_success_only_with_an_offset() {
        let response = |base_offset| ProduceResponse {
            topics: vec![TopicProduceResult {
                topic: "t".into(),
                partitions: vec![PartitionProduceResult {
                    partition: 0,
                    error: Some(runnel_proto::v1::Error {
                        code: ErrorCode::DuplicateSequenceNumber as i32,
                        message: "duplicate".into(),
                    }),
                    base_offset,
                    log_append_time_ms: -1,
                    log_start_offset: 0,
                }],
            }],
            throttle_time_ms: 0,
        };
        assert_eq!(
            partition_result(&response(42), "t", 0).unwrap().base_offset,
            42
        );
        let err = partition_result(&response(-1), "t", 0).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::DuplicateSequenceNumber));
    }
}
