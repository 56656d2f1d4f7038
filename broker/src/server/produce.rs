//! Produce: validate every partition's batches, then append them.
//!
//! Validation of the whole request comes first (topic, partition, CRC,
//! sizes) so a request with one bad partition writes nothing anywhere.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use runnel_proto::batch;
use runnel_proto::v1::{
    Acks, PartitionProduceResult, ProduceRequest, ProduceResponse, TopicProduceResult,
};

use super::Context;
use crate::metrics::TopicLabels;
use crate::replica::Partition;
use crate::topic::validate_topic_name;
use crate::{Error, Result};

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Check one partition's payload: one or more whole, CRC-valid batches, each
/// within `max.message.bytes`. Returns the record count.
pub(crate) fn validate_records(part: &Partition, records: &[u8]) -> Result<u64> {
    let tp = || part.tp.to_string();
    if records.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "no record batches for {}",
            tp()
        )));
    }
    let max = part.log().config().max_message_bytes;
    let mut position = 0;
    let mut count = 0u64;
    for item in batch::batches(records) {
        let (header, bytes) = item.map_err(|source| Error::CorruptBatch {
            topic_partition: tp(),
            position,
            source,
        })?;
        if bytes.len() > max {
            return Err(Error::MessageTooLarge {
                topic_partition: tp(),
                size: bytes.len(),
                max,
            });
        }
        batch::validate_batch(bytes).map_err(|source| Error::CorruptBatch {
            topic_partition: tp(),
            position,
            source,
        })?;
        count += header.records_count as u64;
        position += bytes.len();
    }
    Ok(count)
}

/// One partition's validated share of a produce request.
struct PlannedAppend {
    part: Arc<Partition>,
    records: Bytes,
    /// Records in `records`, for metrics.
    count: u64,
}

pub(crate) async fn handle(ctx: &Context, req: ProduceRequest) -> Result<ProduceResponse> {
    // Phase 1: resolve and validate everything.
    let mut plan: Vec<(String, Vec<PlannedAppend>)> = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        validate_topic_name(&topic.topic)?;
        let mut parts = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let part = ctx.replicas.partition(&topic.topic, p.partition)?;
            let count = validate_records(&part, &p.records)?;
            parts.push(PlannedAppend {
                part,
                records: p.records,
                count,
            });
        }
        plan.push((topic.topic, parts));
    }
    if plan.is_empty() {
        return Err(Error::InvalidRequest(
            "produce request names no topic".into(),
        ));
    }

    // Phase 2: append. Failures here are per partition (e.g. a disk error).
    let acks_all = req.acks == Acks::All as i32;
    let now = now_ms();
    let mut topics = Vec::with_capacity(plan.len());
    for (name, parts) in plan {
        let labels = TopicLabels {
            topic: name.clone(),
        };
        let mut results = Vec::with_capacity(parts.len());
        for PlannedAppend {
            part,
            records,
            count,
        } in parts
        {
            let appended = if acks_all {
                part.check_min_insync()
            } else {
                Ok(())
            }
            .and_then(|()| part.append_as_leader(&records, now));
            let result = match appended {
                Ok(info) => {
                    ctx.metrics
                        .bytes_in
                        .get_or_create(&labels)
                        .inc_by(records.len() as u64);
                    ctx.metrics.messages_in.get_or_create(&labels).inc_by(count);
                    PartitionProduceResult {
                        partition: part.tp.partition,
                        error: None,
                        base_offset: info.first_offset,
                        log_append_time_ms: -1,
                        log_start_offset: part.log().log_start_offset(),
                    }
                }
                Err(e) => {
                    if !matches!(e, Error::NotEnoughReplicas { .. }) {
                        tracing::error!(topic = %name, partition = part.tp.partition, error = %e, "append failed");
                    }
                    PartitionProduceResult {
                        partition: part.tp.partition,
                        error: Some(e.to_proto()),
                        base_offset: -1,
                        log_append_time_ms: -1,
                        log_start_offset: -1,
                    }
                }
            };
            results.push(result);
        }
        topics.push(TopicProduceResult {
            topic: name,
            partitions: results,
        });
    }
    Ok(ProduceResponse {
        topics,
        throttle_time_ms: 0,
    })
}
