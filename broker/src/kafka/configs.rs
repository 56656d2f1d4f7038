//! What DescribeConfigs, AlterConfigs and IncrementalAlterConfigs share:
//! Kafka's resource types and config sources, and the alteration of one
//! resource through the shared operations (a topic's overrides through
//! AlterTopic, the cluster-wide dynamic defaults — Kafka's broker resource
//! with an empty name — through AlterClusterConfigs).

use std::collections::BTreeMap;

use runnel_proto::v1::{self, ConfigSource};

use super::connection::Conn;
use crate::{Error, Result};

/// Kafka's ConfigResource.Type TOPIC.
pub const TOPIC: i8 = 2;
/// Kafka's ConfigResource.Type BROKER.
pub const BROKER: i8 = 4;

/// Kafka's ConfigSource for ours.
pub fn kafka_source(source: i32) -> i8 {
    match ConfigSource::try_from(source) {
        Ok(ConfigSource::Topic) => 1,            // DYNAMIC_TOPIC_CONFIG
        Ok(ConfigSource::DynamicDefault) => 3,   // DYNAMIC_DEFAULT_BROKER_CONFIG
        Ok(ConfigSource::Broker) => 4,           // STATIC_BROKER_CONFIG
        Ok(ConfigSource::Default) | Err(_) => 5, // DEFAULT_CONFIG
    }
}

/// Set `set` and remove `delete` on one resource.
pub async fn alter(
    conn: &Conn,
    api: &'static str,
    resource_type: i8,
    name: &str,
    set: BTreeMap<String, String>,
    delete: Vec<String>,
    validate_only: bool,
) -> Result<()> {
    let ctx = &conn.ctx;
    let who = conn.principal();
    match resource_type {
        TOPIC => {
            let proto = v1::AlterTopicRequest {
                name: name.to_owned(),
                partitions: 0,
                set_configs: set.into_iter().collect(),
                delete_configs: delete,
                validate_only,
            };
            crate::server::run(ctx, api, &who, proto, |body| {
                crate::server::admin::alter_topic(ctx, body)
            })
            .await
            .map(drop)
        }
        BROKER if name.is_empty() => {
            let proto = v1::AlterClusterConfigsRequest {
                set_configs: set.into_iter().collect(),
                delete_configs: delete,
                validate_only,
            };
            crate::server::run(ctx, api, &who, proto, |body| {
                crate::server::cluster_configs::alter(ctx, body)
            })
            .await
            .map(drop)
        }
        BROKER => Err(Error::InvalidRequest(format!(
            "per-broker configs (broker {name:?}) are static in Runnel; alter the cluster-wide \
             default (the broker resource with an empty name) instead"
        ))),
        other => Err(Error::InvalidRequest(format!(
            "config resource type {other} is not supported; use TOPIC (2) or BROKER (4)"
        ))),
    }
}
