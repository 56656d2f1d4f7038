//! Fetch: long-poll reads through the shared fetch operation; the stored
//! batches go back to the consumer as the bytes the log holds.
//!
//! Topics are named (v4-12) or given by id (v13+). From v7 a client may
//! open an incremental fetch session ([`super::fetch_session`]).

use std::sync::Arc;

pub use kafka_protocol::messages::FetchRequest;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchResponse};
use runnel_proto::v1;
use uuid::Uuid;

use super::connection::Conn;
use super::errors::{UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION, code, code_of};
use super::fetch_session::Mode;
use super::leader_hint::LeaderHints;
use super::topics::{
    TOPIC_AUTHORIZATION_FAILED, allowed, exists, name_of_id, str_bytes, topic_name,
};
use crate::auth::acl::Operation;

/// v4 (Kafka 0.11) to v16 (KIP-951's leader hints are optional tagged fields).
pub const VERSIONS: (i16, i16) = (4, 16);

/// One requested topic: its name if known, and its partitions in order.
struct Wanted {
    name: Option<String>,
    topic_id: Uuid,
    partitions: Vec<(i32, i16)>,
}

pub async fn handle(conn: Arc<Conn>, version: i16, mut req: FetchRequest) -> FetchResponse {
    let requested = std::mem::take(&mut req.topics);
    if version < 7 || (req.session_id == 0 && req.session_epoch == -1) {
        return read(&conn, version, &req, requested).await;
    }
    let mut sessions = conn.fetch_sessions.lock().await;
    let begun = sessions.begin(
        version,
        req.session_id,
        req.session_epoch,
        requested,
        &req.forgotten_topics_data,
    );
    let (topics, mode) = match begun {
        Ok(b) => b,
        Err(error_code) => {
            return FetchResponse::default()
                .with_error_code(error_code)
                .with_session_id(0);
        }
    };
    if let Mode::Full(id) = mode {
        tracing::debug!(peer = %conn.peer, session_id = id, "fetch session opened");
    }
    let mut response = read(&conn, version, &req, topics).await;
    sessions.finish(version, mode, &mut response.responses);
    if let Mode::Full(id) | Mode::Incremental(id) = mode {
        response.session_id = id;
    }
    response
}

/// Read `topics` for the request's limits and wait.
async fn read(
    conn: &Conn,
    version: i16,
    req: &FetchRequest,
    requested: Vec<FetchTopic>,
) -> FetchResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let mut wanted = Vec::with_capacity(requested.len());
    let mut topics = Vec::new();
    for t in requested {
        let name = if version >= 13 {
            name_of_id(ctx, t.topic_id)
        } else {
            Some(t.topic.0.to_string())
        };
        let known = name.as_ref().and_then(|n| ctx.replicas.topic(n).ok());
        let unknown = if version >= 13 {
            UNKNOWN_TOPIC_ID
        } else {
            UNKNOWN_TOPIC_OR_PARTITION
        };
        let permitted = name
            .as_ref()
            .is_some_and(|n| known.is_some() && allowed(ctx, &who, Operation::Read, n));
        let mut partitions = Vec::with_capacity(t.partitions.len());
        let mut order = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let count = known.as_ref().map_or(0, |k| k.record.partitions());
            let refusal = if known.is_none() {
                unknown
            } else if !exists(p.partition, count) {
                UNKNOWN_TOPIC_OR_PARTITION
            } else if !permitted {
                TOPIC_AUTHORIZATION_FAILED
            } else if p.fetch_offset < 0 {
                kafka_protocol::ResponseError::OffsetOutOfRange.code()
            } else {
                partitions.push(v1::FetchPartition {
                    partition: p.partition as u32,
                    fetch_offset: p.fetch_offset,
                    partition_max_bytes: u32::try_from(p.partition_max_bytes).unwrap_or(0).max(1),
                    current_leader_epoch: if version >= 9 {
                        p.current_leader_epoch
                    } else {
                        -1
                    },
                });
                0
            };
            order.push((p.partition, refusal));
        }
        if let Some(name) = &name
            && !partitions.is_empty()
        {
            topics.push(v1::FetchTopic {
                topic: name.clone(),
                partitions,
            });
        }
        wanted.push(Wanted {
            name,
            topic_id: t.topic_id,
            partitions: order,
        });
    }
    let shared = if topics.is_empty() {
        Ok(v1::FetchResponse::default())
    } else {
        let proto = v1::FetchRequest {
            topics,
            max_bytes: u32::try_from(req.max_bytes).unwrap_or(0).max(1),
            max_wait_ms: u32::try_from(req.max_wait_ms).unwrap_or(0),
            min_bytes: u32::try_from(req.min_bytes).unwrap_or(0),
            replica_id: -1,
            isolation_level: i32::from(req.isolation_level.clamp(0, 1)),
        };
        crate::server::run(ctx, "Fetch", &who, proto, |body| {
            crate::server::fetch::handle(ctx, body)
        })
        .await
    };
    let (mut read, failed) = match shared {
        Ok(response) => (response.topics, None),
        Err(e) => (Vec::new(), Some(code(&e))),
    };
    let responses = wanted
        .into_iter()
        .map(|w| {
            let mut results = w
                .name
                .as_ref()
                .and_then(|n| read.iter().position(|t| &t.topic == n))
                .map(|i| read.swap_remove(i).partitions)
                .unwrap_or_default();
            let partitions = w
                .partitions
                .into_iter()
                .map(|(index, refusal)| {
                    let empty = |error_code| {
                        PartitionData::default()
                            .with_partition_index(index)
                            .with_error_code(error_code)
                            .with_high_watermark(-1)
                            .with_aborted_transactions(None)
                            .with_records(None)
                    };
                    if refusal != 0 {
                        return empty(refusal);
                    }
                    if let Some(error_code) = failed {
                        return empty(error_code);
                    }
                    match results.iter().position(|r| r.partition as i32 == index) {
                        Some(i) => partition_data(results.swap_remove(i)),
                        None => empty(UNKNOWN_TOPIC_OR_PARTITION),
                    }
                })
                .collect();
            let mut topic = FetchableTopicResponse::default().with_partitions(partitions);
            if version >= 13 {
                topic.topic_id = w.topic_id;
            } else {
                topic.topic = topic_name(w.name.as_deref().unwrap_or_default());
            }
            topic
        })
        .collect();
    let mut response = FetchResponse::default().with_responses(responses);
    if version >= 12 {
        add_leader_hints(ctx, version, &mut response);
    }
    response
}

/// KIP-951's current leader on partitions refused with
/// NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH, and (v16+) where it is.
fn add_leader_hints(ctx: &crate::server::Context, version: i16, response: &mut FetchResponse) {
    let mut hints = LeaderHints::new(ctx);
    for t in &mut response.responses {
        // The common case, nothing refused: no name lookup per fetch.
        if t.partitions.iter().all(|p| p.error_code == 0) {
            continue;
        }
        let name = if version >= 13 {
            name_of_id(ctx, t.topic_id).unwrap_or_default()
        } else {
            t.topic.0.to_string()
        };
        for p in &mut t.partitions {
            if let Some((leader, epoch)) = hints.hint(p.error_code, &name, p.partition_index) {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
            }
        }
    }
    if version >= 16 {
        response.node_endpoints = hints
            .endpoints()
            .into_iter()
            .map(|(id, host, port, rack)| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(id))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_rack(rack.map(str_bytes))
            })
            .collect();
    }
}

fn partition_data(p: v1::FetchPartitionResult) -> PartitionData {
    let error_code = code_of(p.error.as_ref());
    PartitionData::default()
        .with_partition_index(p.partition as i32)
        .with_error_code(error_code)
        .with_high_watermark(p.high_watermark)
        // No transactions: everything below the high watermark is stable.
        .with_last_stable_offset(p.high_watermark)
        .with_log_start_offset(p.log_start_offset)
        .with_aborted_transactions(None)
        .with_records(Some(p.records))
}
