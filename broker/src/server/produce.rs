//! Produce: validate every partition's batches, append them as leader, and
//! answer once they are as durable as asked: fsynced when the topic's
//! `flush.messages` says so, and for acks=all in every in-sync replica.
//!
//! Validation of the whole request comes first (topic, partition, CRC,
//! sizes) so a request with one malformed partition writes nothing
//! anywhere. Conditions of the moment — not the leader here, too few
//! in-sync replicas, a sequence gap — are answered per partition.
//!
//! An idempotent producer keeps several requests per partition in flight;
//! a batch that overtook its predecessor waits for it at the append (see
//! [`Partition::append_as_leader_in_sequence`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use runnel_proto::v1::{
    Acks, PartitionProduceResult, ProduceRequest, ProduceResponse, TopicProduceResult,
};

use super::Context;
use crate::log::{FlushTicket, Log, ValidatedRecords};
use crate::metrics::TopicLabels;
use crate::replica::Partition;
use crate::topic::validate_topic_name;
use crate::{Error, Result};

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One partition's validated share of a produce request, or why this
/// broker cannot take it.
struct PlannedAppend {
    partition: u32,
    target: Result<(Arc<Partition>, Bytes, ValidatedRecords)>,
}

/// An appended partition whose answer still waits: for the fsync its
/// flush policy wants, and with acks=all for the in-sync replicas.
struct Pending {
    topic: usize,
    slot: usize,
    part: Arc<Partition>,
    flush: Option<FlushTicket>,
    /// Offset and epoch the ISR must reach (acks=all only).
    replicated: Option<(i64, i32)>,
}

pub(crate) async fn handle(ctx: &Context, req: ProduceRequest) -> Result<ProduceResponse> {
    Ok(append(ctx, req).await?.answer().await)
}

/// A produce request whose appends are done and whose answer waits for
/// their fsyncs and replication ([`Appended::answer`]).
///
/// Kafka clients pipeline produce requests on one connection and expect
/// them appended in the order sent (without idempotence too), but the
/// waits of several requests may overlap: the Kafka front end appends one
/// request after another and lets the answers wait side by side.
pub(crate) struct Appended {
    topics: Vec<TopicProduceResult>,
    pending: Vec<Pending>,
    /// When the request's `timeout_ms` runs out.
    deadline: tokio::time::Instant,
}

/// Validate and append every partition of `req` (phases 1 and 2).
pub(crate) async fn append(ctx: &Context, req: ProduceRequest) -> Result<Appended> {
    // An unknown acks value (say Kafka's -1) must not quietly mean acks=1.
    let acks = Acks::try_from(req.acks).map_err(|_| {
        Error::InvalidRequest(format!(
            "acks {} is not an Acks value; use ACKS_LEADER (0, Kafka's acks=1), \
             ACKS_NONE (1, acks=0) or ACKS_ALL (2, acks=all)",
            req.acks
        ))
    })?;
    // Phase 1: resolve and validate everything.
    let mut plan: Vec<(String, Vec<PlannedAppend>)> = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        validate_topic_name(&topic.topic)?;
        let mut parts = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let target = match ctx.replicas.leader(&topic.topic, p.partition)? {
                Ok(part) => {
                    let valid = part.log().validate(&p.records)?;
                    // Control batches (transaction markers) are the broker's
                    // to write; consumers skip them, so a client's records
                    // in one would vanish.
                    if valid.headers().any(|h| h.is_control()) {
                        return Err(Error::InvalidRequest(format!(
                            "produce to {} carries a control batch; clients may not write \
                             control records (clear bit 5 of the batch attributes)",
                            part.tp
                        )));
                    }
                    Ok((part, p.records, valid))
                }
                Err(e) => Err(e),
            };
            parts.push(PlannedAppend {
                partition: p.partition,
                target,
            });
        }
        plan.push((topic.topic, parts));
    }
    if plan.is_empty() {
        return Err(Error::InvalidRequest(
            "produce request names no topic".into(),
        ));
    }
    if plan.iter().all(|(_, parts)| parts.is_empty()) {
        return Err(Error::InvalidRequest(
            "produce request names no partition".into(),
        ));
    }

    // Phase 2: append. Failures here are per partition.
    let timeout = Duration::from_millis(if req.timeout_ms == 0 {
        ctx.config.request_timeout_ms
    } else {
        u64::from(req.timeout_ms)
    });
    // A batch may wait for its predecessors (several requests of one
    // producer in flight) for half the request's time, leaving the rest
    // for acks=all and answering before the producer gives up on us.
    let started = tokio::time::Instant::now();
    // Capped by the broker's own request.timeout.ms: a client's huge
    // timeout_ms must not park a request for days.
    let sequence_deadline =
        started + (timeout / 2).min(Duration::from_millis(ctx.config.request_timeout_ms));
    let acks_all = acks == Acks::All;
    // A leader that cannot reach the metadata store may have been replaced
    // without knowing it: it must not promise acks=all durability.
    let fenced = acks_all && !ctx.registration.is_registered();
    let now = now_ms();
    let mut topics = Vec::with_capacity(plan.len());
    let mut pending = Vec::new();
    for (t, (name, parts)) in plan.into_iter().enumerate() {
        let labels = TopicLabels {
            topic: name.clone(),
        };
        let mut results = Vec::with_capacity(parts.len());
        for PlannedAppend { partition, target } in parts {
            let mut result = PartitionProduceResult {
                partition,
                error: None,
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: -1,
            };
            let appended = match target {
                Err(e) => Err(e),
                Ok((part, _, _)) if fenced => Err(Error::NotLeaderOrFollower {
                    topic_partition: part.tp.to_string(),
                    broker_id: ctx.config.broker_id,
                    reason: "this broker cannot reach the metadata store, so it cannot prove \
                             it still leads; acks=all writes are refused until it can"
                        .into(),
                }),
                Ok((part, records, valid)) => part
                    .append_as_leader_in_sequence(
                        &records,
                        &valid,
                        now,
                        acks_all,
                        sequence_deadline,
                    )
                    .await
                    .map(|(info, epoch)| (part, records.len(), info, epoch)),
            };
            match appended {
                Ok((part, bytes, info, epoch)) => {
                    ctx.metrics
                        .bytes_in
                        .get_or_create(&labels)
                        .inc_by(bytes as u64);
                    ctx.metrics
                        .messages_in
                        .get_or_create(&labels)
                        .inc_by(u64::from(info.records));
                    result.base_offset = info.first_offset;
                    result.log_append_time_ms = info.log_append_time_ms;
                    result.log_start_offset = part.log().log_start_offset();
                    let replicated = acks_all.then_some((info.last_offset + 1, epoch));
                    if info.flush.is_some() || replicated.is_some() {
                        pending.push(Pending {
                            topic: t,
                            slot: results.len(),
                            part,
                            flush: info.flush,
                            replicated,
                        });
                    }
                }
                Err(e) => {
                    if !is_expected(&e) {
                        tracing::error!(topic = %name, partition, error = %e, "append failed");
                    }
                    result.error = Some(e.to_proto());
                }
            }
            results.push(result);
        }
        topics.push(TopicProduceResult {
            topic: name,
            partitions: results,
        });
    }

    Ok(Appended {
        topics,
        pending,
        deadline: started + timeout,
    })
}

impl Appended {
    /// Phase 3: wait for every appended partition at once.
    pub(crate) async fn answer(self) -> ProduceResponse {
        let Appended {
            mut topics,
            pending,
            deadline,
        } = self;
        if !pending.is_empty() {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let waits = pending.iter().map(|p| async move {
                if let Some(ticket) = p.flush {
                    flush(p.part.log().clone(), ticket).await?;
                }
                match p.replicated {
                    Some((end_offset, epoch)) => {
                        p.part
                            .wait_for_replication(end_offset, epoch, remaining)
                            .await
                    }
                    None => Ok(()),
                }
            });
            let outcomes = futures::future::join_all(waits).await;
            for (p, outcome) in pending.iter().zip(outcomes) {
                if let Err(e) = outcome {
                    let result = &mut topics[p.topic].partitions[p.slot];
                    result.error = Some(e.to_proto());
                }
            }
        }
        ProduceResponse {
            topics,
            throttle_time_ms: 0,
        }
    }
}

/// The fsync `flush.messages` wants before the answer, on a blocking
/// thread: an fsync takes milliseconds, and the runtime's few threads are
/// meanwhile reading the next requests, whose appends join the next fsync.
async fn flush(log: Arc<Log>, ticket: FlushTicket) -> Result<()> {
    tokio::task::spawn_blocking(move || log.flush_through(ticket))
        .await
        .map_err(|e| Error::NotAvailable(format!("the fsync task failed: {e}")))?
}

/// Errors that are part of normal cluster life, not worth an error log.
fn is_expected(e: &Error) -> bool {
    matches!(
        e,
        Error::NotEnoughReplicas { .. }
            | Error::NotLeaderOrFollower { .. }
            | Error::LeaderNotAvailable { .. }
            | Error::OutOfOrderSequence { .. }
            | Error::InvalidProducerEpoch { .. }
    )
}
