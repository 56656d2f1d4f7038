//! DeleteRecords: move partitions' log start offsets forward (Kafka's
//! `kafka-delete-records`), on their leaders, then wait for the in-sync
//! replicas to follow so that a leader change cannot bring the records back.

use std::time::Duration;

use futures::future::join_all;
use runnel_proto::v1::{
    DeleteRecordsPartitionResult, DeleteRecordsRequest, DeleteRecordsResponse,
    DeleteRecordsTopicResult,
};

use super::Context;
use crate::Result;
use crate::topic::validate_topic_name;

/// Used when the request sets no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn handle(
    ctx: &Context,
    req: DeleteRecordsRequest,
) -> Result<DeleteRecordsResponse> {
    for t in &req.topics {
        validate_topic_name(&t.topic)?;
    }
    let timeout = match req.timeout_ms {
        0 => DEFAULT_TIMEOUT,
        ms => Duration::from_millis(u64::from(ms)),
    };
    // Every partition deletes on its leader first; then all wait together.
    let mut topics = Vec::with_capacity(req.topics.len());
    let mut waits = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut results = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            let mut result = DeleteRecordsPartitionResult {
                partition: p.partition,
                error: None,
                low_watermark: -1,
            };
            let started = ctx
                .replicas
                .leader(&t.topic, p.partition)?
                .and_then(|part| Ok((part.delete_records_before(p.offset)?, part)));
            match started {
                Ok((start, part)) => waits.push(async move {
                    ((ti, pi), part.wait_for_low_watermark(start, timeout).await)
                }),
                Err(e) => result.error = Some(e.to_proto()),
            }
            results.push(result);
        }
        topics.push(DeleteRecordsTopicResult {
            topic: t.topic.clone(),
            partitions: results,
        });
    }
    for ((ti, pi), waited) in join_all(waits).await {
        let result = &mut topics[ti].partitions[pi];
        match waited {
            Ok(low) => result.low_watermark = low,
            Err(e) => result.error = Some(e.to_proto()),
        }
    }
    Ok(DeleteRecordsResponse { topics })
}
