//! DeleteTopics: by name (v1-5) or also by id (v6+), each topic through
//! the shared delete operation on its own, with its own answer.

use std::sync::Arc;

pub use kafka_protocol::messages::DeleteTopicsRequest;
use kafka_protocol::messages::DeleteTopicsResponse;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::{UNKNOWN_TOPIC_ID, code};
use super::topics::{name_of_id, str_bytes, topic_name};

pub const VERSIONS: (i16, i16) = (1, 6);

pub async fn handle(
    conn: Arc<Conn>,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| match t.name {
                Some(name) => (Some(name.0.to_string()), t.topic_id),
                None => (name_of_id(ctx, t.topic_id), t.topic_id),
            })
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, topic_id) in wanted {
        let mut result = DeletableTopicResult::default().with_name(name.as_deref().map(topic_name));
        if version >= 6 {
            result.topic_id = topic_id;
        }
        let Some(name) = name else {
            result.error_code = UNKNOWN_TOPIC_ID;
            responses.push(result);
            continue;
        };
        let proto = v1::DeleteTopicsRequest { names: vec![name] };
        if let Err(e) = crate::server::run(ctx, "DeleteTopics", &who, proto, |body| {
            crate::server::admin::delete_topics(ctx, body)
        })
        .await
        {
            result.error_code = code(&e);
            if version >= 5 {
                result.error_message = Some(str_bytes(e.to_string()));
            }
        }
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
