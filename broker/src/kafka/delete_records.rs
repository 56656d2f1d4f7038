//! DeleteRecords: records below an offset stop being readable (Kafka's
//! `kafka-delete-records`, AdminClient `delete_records`), through the
//! shared operation. Concurrent: the answer waits for the in-sync
//! replicas to delete too.

use std::sync::Arc;

pub use kafka_protocol::messages::DeleteRecordsRequest;
use kafka_protocol::messages::DeleteRecordsResponse;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::{UNKNOWN_TOPIC_OR_PARTITION, code, code_of};
use super::topics::{TOPIC_AUTHORIZATION_FAILED, allowed, exists};
use crate::auth::acl::Operation;

/// v0 to v2 (v2 is flexible); every version current clients send.
pub const VERSIONS: (i16, i16) = (0, 2);

pub async fn handle(
    conn: Arc<Conn>,
    _version: i16,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    // Answers in request order; what is asked of the shared operation is
    // what passed the per-topic checks, by (topic, partition).
    let mut answers = Vec::with_capacity(req.topics.len());
    let mut asked = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let count = ctx
            .replicas
            .topic(&name)
            .map_or(0, |k| k.record.partitions());
        let permitted = count > 0 && allowed(ctx, &who, Operation::Delete, &name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        let mut mine = Vec::new();
        for p in &t.partitions {
            let error_code = if !exists(p.partition_index, count) {
                UNKNOWN_TOPIC_OR_PARTITION
            } else if !permitted {
                TOPIC_AUTHORIZATION_FAILED
            } else {
                mine.push(v1::DeleteRecordsPartition {
                    partition: p.partition_index as u32,
                    offset: p.offset,
                });
                0
            };
            partitions.push(
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error_code)
                    .with_low_watermark(-1),
            );
        }
        if !mine.is_empty() {
            asked.push(v1::DeleteRecordsTopic {
                topic: name,
                partitions: mine,
            });
        }
        answers.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    if !asked.is_empty() {
        let proto = v1::DeleteRecordsRequest {
            topics: asked,
            timeout_ms: u32::try_from(req.timeout_ms).unwrap_or(0),
        };
        let shared = crate::server::run(ctx, "DeleteRecords", &who, proto, |body| {
            crate::server::delete_records::handle(ctx, body)
        })
        .await;
        for t in &mut answers {
            for a in t.partitions.iter_mut().filter(|a| a.error_code == 0) {
                match &shared {
                    Ok(r) => {
                        let found = r
                            .topics
                            .iter()
                            .filter(|rt| rt.topic == t.name.0.as_str())
                            .flat_map(|rt| &rt.partitions)
                            .find(|rp| rp.partition as i32 == a.partition_index);
                        if let Some(rp) = found {
                            a.error_code = code_of(rp.error.as_ref());
                            a.low_watermark = rp.low_watermark;
                        }
                    }
                    Err(e) => a.error_code = code(e),
                }
            }
        }
    }
    DeleteRecordsResponse::default().with_topics(answers)
}
