//! CreateTopics: each topic through the shared create operation on its own,
//! so one topic's error (exists, bad config, not allowed) is that topic's
//! answer and the others are still created, as in Kafka.

use std::sync::Arc;

pub use kafka_protocol::messages::CreateTopicsRequest;
use kafka_protocol::messages::CreateTopicsResponse;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::{INVALID_REQUEST, code};
use super::topics::{str_bytes, topic_uuid};

pub const VERSIONS: (i16, i16) = (2, 7);

pub async fn handle(
    conn: Arc<Conn>,
    version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut result = CreatableTopicResult::default().with_name(t.name.clone());
        let refusal = if !t.assignments.is_empty() {
            Some(
                "manual replica assignments are not supported; give num_partitions and \
                  replication_factor (use AlterPartitionReassignments afterwards)"
                    .to_owned(),
            )
        } else if t.num_partitions < -1
            || t.num_partitions == 0
            || t.replication_factor < -1
            || t.replication_factor == 0
        {
            Some(format!(
                "num_partitions {} and replication_factor {} must be positive, or -1 for the broker default",
                t.num_partitions, t.replication_factor
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            result.error_code = INVALID_REQUEST;
            result.error_message = Some(str_bytes(message));
            results.push(result);
            continue;
        }
        let proto = v1::CreateTopicsRequest {
            topics: vec![v1::NewTopic {
                name: t.name.0.to_string(),
                partitions: u32::try_from(t.num_partitions).unwrap_or(0),
                replication_factor: u32::try_from(t.replication_factor).unwrap_or(0),
                configs: t
                    .configs
                    .into_iter()
                    .filter_map(|c| Some((c.name.to_string(), c.value?.to_string())))
                    .collect(),
            }],
            validate_only: req.validate_only,
        };
        match crate::server::run(ctx, "CreateTopics", &who, proto, |body| {
            crate::server::admin::create_topics(ctx, body)
        })
        .await
        {
            Ok(created) => {
                if let Some(d) = created.topics.into_iter().next() {
                    if version >= 7 {
                        result.topic_id = topic_uuid(&d.topic_id);
                    }
                    if version >= 5 {
                        result.num_partitions = d.partitions.len() as i32;
                        result.replication_factor = d.replication_factor as i16;
                    }
                }
            }
            Err(e) => {
                result.error_code = code(&e);
                result.error_message = Some(str_bytes(e.to_string()));
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}
