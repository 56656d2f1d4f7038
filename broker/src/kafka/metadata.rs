//! Metadata: brokers (at their Kafka addresses), the controller, and each
//! topic's partitions with leader, epoch, replicas and ISR — the shared
//! Metadata operation, with Kafka's per-topic answers for topics that do
//! not exist or may not be described.

use std::sync::Arc;

pub use kafka_protocol::messages::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataResponse};
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::{UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION, code, code_of};
use super::topics::{
    TOPIC_AUTHORIZATION_FAILED, allowed, client_brokers, controller_id, name_of_id, str_bytes,
    topic_name, topic_uuid,
};
use crate::auth::acl::Operation;

pub const VERSIONS: (i16, i16) = (0, 12);

/// What one requested topic turned out to be.
enum Wanted {
    Known(String),
    Refused(MetadataResponseTopic),
}

pub async fn handle(conn: Arc<Conn>, version: i16, req: MetadataRequest) -> MetadataResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    // v0: an empty list means every topic; v1+: null does.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let mut wanted = Vec::new();
    for t in req.topics.iter().flatten() {
        let name = match &t.name {
            Some(name) => Some(name.0.to_string()),
            None => name_of_id(ctx, t.topic_id),
        };
        let unknown = |error_code| {
            Wanted::Refused(
                MetadataResponseTopic::default()
                    .with_error_code(error_code)
                    .with_name(t.name.clone())
                    .with_topic_id(t.topic_id),
            )
        };
        wanted.push(match name {
            None => unknown(UNKNOWN_TOPIC_ID),
            Some(name) if ctx.replicas.topic(&name).is_err() => unknown(UNKNOWN_TOPIC_OR_PARTITION),
            Some(name) if !allowed(ctx, &who, Operation::Describe, &name) => {
                unknown(TOPIC_AUTHORIZATION_FAILED)
            }
            Some(name) => Wanted::Known(name),
        });
    }
    let names: Vec<String> = wanted
        .iter()
        .filter_map(|w| match w {
            Wanted::Known(n) => Some(n.clone()),
            Wanted::Refused(_) => None,
        })
        .collect();
    let shared = if all || !names.is_empty() {
        let proto = v1::MetadataRequest { topics: names };
        crate::server::run(ctx, "Metadata", &who, proto, |body| {
            crate::server::metadata::handle(ctx, body)
        })
        .await
    } else {
        // Only refused names (or none at all, v1+: no topics wanted).
        Ok(v1::MetadataResponse {
            cluster_id: ctx.config.cluster.clone(),
            controller_id: ctx.sync.view().controller_id(),
            ..Default::default()
        })
    };
    let mut response = MetadataResponse::default()
        .with_cluster_id((version >= 2).then(|| str_bytes(ctx.config.cluster.clone())))
        .with_controller_id(controller_id(ctx));
    let shared = match shared {
        Ok(shared) => shared,
        Err(e) => {
            // Every named topic gets the request's error.
            let error_code = code(&e);
            response.topics = wanted
                .into_iter()
                .map(|w| match w {
                    Wanted::Known(name) => MetadataResponseTopic::default()
                        .with_error_code(error_code)
                        .with_name(Some(topic_name(&name))),
                    Wanted::Refused(t) => t,
                })
                .collect();
            response.brokers = brokers(ctx, &response.topics);
            return response;
        }
    };
    let mut found: std::collections::HashMap<String, MetadataResponseTopic> = shared
        .topics
        .into_iter()
        .map(|t| (t.name.clone(), topic(version, t)))
        .collect();
    response.topics = if all {
        let mut topics: Vec<_> = found.into_values().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    } else {
        wanted
            .into_iter()
            .map(|w| match w {
                Wanted::Known(name) => found.remove(&name).unwrap_or_else(|| {
                    MetadataResponseTopic::default()
                        .with_error_code(UNKNOWN_TOPIC_OR_PARTITION)
                        .with_name(Some(topic_name(&name)))
                }),
                Wanted::Refused(t) => t,
            })
            .collect()
    };
    response.brokers = brokers(ctx, &response.topics);
    response
}

/// The brokers to list: the live ones, this one, and every leader the
/// answer names (at its last address while its lease has lapsed), so a
/// client can always reach what it is told to use.
fn brokers(
    ctx: &crate::server::Context,
    topics: &[MetadataResponseTopic],
) -> Vec<MetadataResponseBroker> {
    let leaders: std::collections::BTreeSet<i32> = topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.leader_id.0)
        .collect();
    client_brokers(ctx, |id| leaders.contains(&id))
        .into_iter()
        .map(|(id, host, port, rack)| {
            MetadataResponseBroker::default()
                .with_node_id(id)
                .with_host(str_bytes(host))
                .with_port(port)
                .with_rack(rack.map(str_bytes))
        })
        .collect()
}

fn topic(version: i16, t: v1::TopicMetadata) -> MetadataResponseTopic {
    let mut topic = MetadataResponseTopic::default()
        .with_error_code(code_of(t.error.as_ref()))
        .with_name(Some(topic_name(&t.name)))
        .with_is_internal(t.internal)
        .with_partitions(
            t.partitions
                .into_iter()
                .map(|p| {
                    let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect();
                    let mut partition = MetadataResponsePartition::default()
                        .with_error_code(code_of(p.error.as_ref()))
                        .with_partition_index(p.partition as i32)
                        .with_leader_id(BrokerId(p.leader))
                        .with_replica_nodes(ids(p.replicas))
                        .with_isr_nodes(ids(p.isr));
                    if version >= 7 {
                        partition.leader_epoch = p.leader_epoch;
                    }
                    if version >= 5 {
                        partition.offline_replicas = ids(p.offline_replicas);
                    }
                    partition
                })
                .collect(),
        );
    if version >= 10 {
        topic.topic_id = topic_uuid(&t.topic_id);
    }
    topic
}
