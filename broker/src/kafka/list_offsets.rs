//! ListOffsets: earliest (-2), latest (-1) or the first offset at or after
//! a timestamp, through the shared operation.

use std::sync::Arc;

pub use kafka_protocol::messages::ListOffsetsRequest;
use kafka_protocol::messages::ListOffsetsResponse;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use runnel_proto::v1::{self, OffsetSpec};

use super::connection::Conn;
use super::errors::{INVALID_REQUEST, UNKNOWN_TOPIC_OR_PARTITION, code, code_of};
use super::topics::{TOPIC_AUTHORIZATION_FAILED, allowed, exists};
use crate::auth::acl::Operation;

/// v1 to v8 (v9+ add tiered-storage specs we do not have).
pub const VERSIONS: (i16, i16) = (1, 8);

pub async fn handle(conn: Arc<Conn>, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let count = ctx
            .replicas
            .topic(&name)
            .map_or(0, |k| k.record.partitions());
        let permitted = count > 0 && allowed(ctx, &who, Operation::Describe, &name);
        let mut asked = Vec::new();
        let mut answers: Vec<ListOffsetsPartitionResponse> = Vec::new();
        for p in &t.partitions {
            let refuse = |error_code| {
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error_code)
                    .with_timestamp(-1)
                    .with_offset(-1)
            };
            if !exists(p.partition_index, count) {
                answers.push(refuse(UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            }
            if !permitted {
                answers.push(refuse(TOPIC_AUTHORIZATION_FAILED));
                continue;
            }
            let spec = match p.timestamp {
                -2 => OffsetSpec::Earliest,
                -1 => OffsetSpec::Latest,
                ts if ts >= 0 => OffsetSpec::Timestamp,
                // -3 (max timestamp), -4/-5 (tiered storage): not served.
                _ => {
                    answers.push(refuse(INVALID_REQUEST));
                    continue;
                }
            };
            asked.push(v1::ListOffsetsPartition {
                partition: p.partition_index as u32,
                spec: spec as i32,
                timestamp_ms: p.timestamp.max(0),
            });
            answers.push(refuse(0));
        }
        if !asked.is_empty() {
            let proto = v1::ListOffsetsRequest {
                topics: vec![v1::ListOffsetsTopic {
                    topic: name.clone(),
                    partitions: asked,
                }],
                isolation_level: i32::from(req.isolation_level.clamp(0, 1)),
            };
            let shared = crate::server::run(ctx, "ListOffsets", &who, proto, |body| {
                crate::server::list_offsets::handle(ctx, body)
            })
            .await;
            for a in answers.iter_mut().filter(|a| a.error_code == 0) {
                match &shared {
                    Ok(r) => {
                        if let Some(p) = r
                            .topics
                            .iter()
                            .flat_map(|t| &t.partitions)
                            .find(|p| p.partition as i32 == a.partition_index)
                        {
                            a.error_code = code_of(p.error.as_ref());
                            a.offset = p.offset;
                            a.timestamp = p.timestamp_ms;
                            if version >= 4 {
                                a.leader_epoch = p.leader_epoch;
                            }
                        }
                    }
                    Err(e) => a.error_code = code(e),
                }
            }
        }
        responses.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(answers),
        );
    }
    ListOffsetsResponse::default().with_topics(responses)
}
