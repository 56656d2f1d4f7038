//! DescribeConfigs: a topic's effective configs with their sources, and
//! (the broker resource) the dynamic cluster-wide defaults, through the
//! shared DescribeTopics and DescribeClusterConfigs operations.

use std::sync::Arc;

pub use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::messages::DescribeConfigsResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use runnel_proto::v1;

use super::configs::{BROKER, TOPIC, kafka_source};
use super::connection::Conn;
use super::errors::{INVALID_REQUEST, code};
use super::topics::str_bytes;

pub const VERSIONS: (i16, i16) = (1, 4);

pub async fn handle(
    conn: Arc<Conn>,
    _version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let mut results = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let name = r.resource_name.to_string();
        let entries: crate::Result<Vec<(String, String, i32)>> = match r.resource_type {
            TOPIC => crate::server::run(
                ctx,
                "DescribeConfigs",
                &who,
                v1::DescribeTopicsRequest {
                    names: vec![name.clone()],
                },
                |body| crate::server::admin::describe_topics(ctx, body),
            )
            .await
            .map(|d| {
                d.topics
                    .into_iter()
                    .flat_map(|t| t.configs)
                    .map(|c| (c.name, c.value, c.source))
                    .collect()
            }),
            BROKER => crate::server::run(
                ctx,
                "DescribeConfigs",
                &who,
                v1::DescribeClusterConfigsRequest {},
                |body| crate::server::cluster_configs::describe(ctx, body),
            )
            .await
            .map(|d| {
                d.configs
                    .into_iter()
                    .map(|c| (c.name, c.value, c.source))
                    .collect()
            }),
            other => Err(crate::Error::InvalidRequest(format!(
                "config resource type {other} is not supported; use TOPIC (2) or BROKER (4)"
            ))),
        };
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        match entries {
            Ok(entries) => {
                let wanted = r.configuration_keys.as_ref();
                result.configs = entries
                    .into_iter()
                    .filter(|(n, _, _)| {
                        wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == n))
                    })
                    .map(|(n, value, source)| {
                        DescribeConfigsResourceResult::default()
                            .with_name(str_bytes(n))
                            .with_value(Some(str_bytes(value)))
                            .with_config_source(kafka_source(source))
                    })
                    .collect();
            }
            Err(e) => {
                result.error_code = if matches!(e, crate::Error::InvalidRequest(_)) {
                    INVALID_REQUEST
                } else {
                    code(&e)
                };
                result.error_message = Some(str_bytes(e.to_string()));
            }
        }
        results.push(result);
    }
    DescribeConfigsResponse::default().with_results(results)
}
