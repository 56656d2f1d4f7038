//! OffsetCommit: into the one committed-offset store (what `runnel group
//! describe` and the ConsumerGroup resource read), fenced by member id and
//! generation as the coordinator decides for classic and Runnel members.

use std::sync::Arc;

pub use kafka_protocol::messages::OffsetCommitRequest;
use kafka_protocol::messages::OffsetCommitResponse;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::{UNKNOWN_TOPIC_OR_PARTITION, code};
use super::topics::{TOPIC_AUTHORIZATION_FAILED, allowed, exists};
use crate::auth::acl::Operation;

/// v2 to v8 (v9 carries KIP-848 member epochs).
pub const VERSIONS: (i16, i16) = (2, 8);

pub async fn handle(
    conn: Arc<Conn>,
    version: i16,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let group = req.group_id.0.to_string();
    let mut answers: Vec<(String, Vec<(i32, i16)>)> = Vec::new();
    let mut topics = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let count = ctx
            .replicas
            .topic(&name)
            .map_or(0, |k| k.record.partitions());
        let permitted = count > 0 && allowed(ctx, &who, Operation::Read, &name);
        let mut partitions = Vec::new();
        let mut codes = Vec::new();
        for p in &t.partitions {
            let refusal = if !exists(p.partition_index, count) {
                UNKNOWN_TOPIC_OR_PARTITION
            } else if !permitted {
                TOPIC_AUTHORIZATION_FAILED
            } else {
                partitions.push(v1::OffsetCommitPartition {
                    partition: p.partition_index as u32,
                    offset: p.committed_offset,
                    metadata: p
                        .committed_metadata
                        .as_deref()
                        .unwrap_or_default()
                        .to_owned(),
                });
                0
            };
            codes.push((p.partition_index, refusal));
        }
        if !partitions.is_empty() {
            topics.push(v1::OffsetCommitTopic {
                topic: name.clone(),
                partitions,
            });
        }
        answers.push((name, codes));
    }
    if !topics.is_empty() {
        let instance = if version >= 7 {
            req.group_instance_id.as_deref().map(str::to_owned)
        } else {
            None
        };
        let proto = v1::OffsetCommitRequest {
            group_id: group.clone(),
            member_id: req.member_id.to_string(),
            generation: req.generation_id_or_member_epoch,
            topics,
        };
        let outcome = crate::server::run(ctx, "OffsetCommit", &who, proto, |body| async move {
            ctx.groups
                .commit_offsets(
                    &body.group_id,
                    &body.member_id,
                    instance.as_deref(),
                    body.generation,
                    &body.topics,
                )
                .await?;
            Ok(v1::OffsetCommitResponse {})
        })
        .await;
        if let Err(e) = outcome {
            let error_code = code(&e);
            for (_, codes) in &mut answers {
                for (_, c) in codes.iter_mut().filter(|(_, c)| *c == 0) {
                    *c = error_code;
                }
            }
        }
    }
    OffsetCommitResponse::default().with_topics(
        answers
            .into_iter()
            .map(|(name, codes)| {
                OffsetCommitResponseTopic::default()
                    .with_name(super::topics::topic_name(&name))
                    .with_partitions(
                        codes
                            .into_iter()
                            .map(|(i, c)| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(i)
                                    .with_error_code(c)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
