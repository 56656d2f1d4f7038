//! AlterConfigs (the legacy, non-incremental form): the given configs
//! replace every override of the resource; overrides not named are
//! removed, as Kafka does.

use std::collections::BTreeMap;
use std::sync::Arc;

pub use kafka_protocol::messages::AlterConfigsRequest;
use kafka_protocol::messages::AlterConfigsResponse;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;

use super::configs::{TOPIC, alter};
use super::connection::Conn;
use super::errors::code;
use super::topics::str_bytes;

pub const VERSIONS: (i16, i16) = (0, 2);

pub async fn handle(
    conn: Arc<Conn>,
    _version: i16,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let ctx = &conn.ctx;
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let set: BTreeMap<String, String> = r
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        // Overrides the request does not name go back to their defaults.
        let delete: Vec<String> = if r.resource_type == TOPIC {
            ctx.replicas
                .topic(&r.resource_name)
                .map(|t| {
                    t.record
                        .configs
                        .keys()
                        .filter(|k| !set.contains_key(*k))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let outcome = alter(
            &conn,
            "AlterConfigs",
            r.resource_type,
            &r.resource_name,
            set,
            delete,
            req.validate_only,
        )
        .await;
        let mut response = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        if let Err(e) = outcome {
            response.error_code = code(&e);
            response.error_message = Some(str_bytes(e.to_string()));
        }
        responses.push(response);
    }
    AlterConfigsResponse::default().with_responses(responses)
}
