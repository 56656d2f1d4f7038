//! ListOffsets: earliest (log start), latest (high watermark) or the first
//! offset at or after a timestamp.

use runnel_proto::v1::{
    ListOffsetsPartitionResult, ListOffsetsRequest, ListOffsetsResponse, ListOffsetsTopicResult,
    OffsetSpec,
};

use super::Context;
use crate::topic::validate_topic_name;
use crate::{Error, Result};

pub(crate) async fn handle(ctx: &Context, req: ListOffsetsRequest) -> Result<ListOffsetsResponse> {
    super::fetch::check_isolation_level(req.isolation_level)?;
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        validate_topic_name(&topic.topic)?;
        let mut results = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let leader = ctx.replicas.leader(&topic.topic, p.partition)?;
            let spec = OffsetSpec::try_from(p.spec).map_err(|_| {
                Error::InvalidRequest(format!(
                    "unknown offset spec {} for {}-{}",
                    p.spec, topic.topic, p.partition
                ))
            })?;
            let mut result = ListOffsetsPartitionResult {
                partition: p.partition,
                error: None,
                offset: -1,
                timestamp_ms: -1,
                leader_epoch: -1,
            };
            let part = match leader {
                Ok(part) => part,
                Err(e) => {
                    result.error = Some(e.to_proto());
                    results.push(result);
                    continue;
                }
            };
            result.leader_epoch = part.leader_epoch();
            match spec {
                OffsetSpec::Earliest => result.offset = part.log().log_start_offset(),
                OffsetSpec::Latest => result.offset = part.high_watermark(),
                OffsetSpec::Timestamp => match part.log().offset_for_timestamp(p.timestamp_ms) {
                    // Offsets at or past the high watermark are not visible yet.
                    Ok(Some((offset, ts))) if offset < part.high_watermark() => {
                        result.offset = offset;
                        result.timestamp_ms = ts;
                    }
                    Ok(_) => {}
                    Err(e) => result.error = Some(e.to_proto()),
                },
            }
            results.push(result);
        }
        topics.push(ListOffsetsTopicResult {
            topic: topic.topic,
            partitions: results,
        });
    }
    Ok(ListOffsetsResponse { topics })
}
