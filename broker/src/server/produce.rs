//! Produce: validate every partition's batches, then append them.
//!
//! Validation of the whole request comes first (topic, partition, CRC,
//! sizes) so a request with one bad partition writes nothing anywhere.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use runnel_proto::v1::{
    Acks, PartitionProduceResult, ProduceRequest, ProduceResponse, TopicProduceResult,
};

use super::Context;
use crate::log::ValidatedRecords;
use crate::metrics::TopicLabels;
use crate::replica::Partition;
use crate::topic::validate_topic_name;
use crate::{Error, Result};

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One partition's validated share of a produce request.
struct PlannedAppend {
    part: Arc<Partition>,
    records: Bytes,
    valid: ValidatedRecords,
}

pub(crate) async fn handle(ctx: &Context, req: ProduceRequest) -> Result<ProduceResponse> {
    // Phase 1: resolve and validate everything.
    let mut plan: Vec<(String, Vec<PlannedAppend>)> = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        validate_topic_name(&topic.topic)?;
        let mut parts = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let part = ctx.replicas.partition(&topic.topic, p.partition)?;
            let valid = part.log().validate(&p.records)?;
            parts.push(PlannedAppend {
                part,
                records: p.records,
                valid,
            });
        }
        plan.push((topic.topic, parts));
    }
    if plan.is_empty() {
        return Err(Error::InvalidRequest(
            "produce request names no topic".into(),
        ));
    }

    // Phase 2: append. Failures here are per partition (e.g. a disk error,
    // or too few in-sync replicas for acks=all).
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
            valid,
        } in parts
        {
            let appended = if acks_all {
                part.check_min_insync()
            } else {
                Ok(())
            }
            .and_then(|()| part.append_as_leader(&records, &valid, now));
            let mut result = PartitionProduceResult {
                partition: part.tp.partition,
                error: None,
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: -1,
            };
            match appended {
                Ok(info) => {
                    ctx.metrics
                        .bytes_in
                        .get_or_create(&labels)
                        .inc_by(records.len() as u64);
                    ctx.metrics
                        .messages_in
                        .get_or_create(&labels)
                        .inc_by(u64::from(info.records));
                    result.base_offset = info.first_offset;
                    result.log_start_offset = part.log().log_start_offset();
                }
                Err(e) => {
                    if !matches!(e, Error::NotEnoughReplicas { .. }) {
                        tracing::error!(topic = %name, partition = part.tp.partition, error = %e, "append failed");
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
    Ok(ProduceResponse {
        topics,
        throttle_time_ms: 0,
    })
}
