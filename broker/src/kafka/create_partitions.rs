//! CreatePartitions: raise a topic's partition count through the shared
//! AlterTopic operation (the controller places the new replicas; manual
//! assignments are refused).

use std::sync::Arc;

pub use kafka_protocol::messages::CreatePartitionsRequest;
use kafka_protocol::messages::CreatePartitionsResponse;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::{INVALID_REQUEST, code};
use super::topics::str_bytes;

pub const VERSIONS: (i16, i16) = (0, 3);

pub async fn handle(
    conn: Arc<Conn>,
    _version: i16,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            result.error_code = INVALID_REQUEST;
            result.error_message = Some(str_bytes(
                "manual assignments of new partitions are not supported; the controller places them",
            ));
            results.push(result);
            continue;
        }
        let proto = v1::AlterTopicRequest {
            name: t.name.0.to_string(),
            partitions: u32::try_from(t.count).unwrap_or(0),
            validate_only: req.validate_only,
            ..Default::default()
        };
        if let Err(e) = crate::server::run(ctx, "CreatePartitions", &who, proto, |body| {
            crate::server::admin::alter_topic(ctx, body)
        })
        .await
        {
            result.error_code = code(&e);
            result.error_message = Some(str_bytes(e.to_string()));
        }
        results.push(result);
    }
    CreatePartitionsResponse::default().with_results(results)
}
