//! Produce: the producer's record batches go to the shared produce
//! operation as the bytes it sent (validated, stamped with offsets and the
//! leader epoch, appended), and come back as Kafka's per-partition answers.
//!
//! The appends happen before the connection's next request starts, so one
//! connection's batches reach the log in the order sent, idempotent or not;
//! the wait for fsync and acks=all runs alongside later requests. acks=0
//! gets no answer at all, as in Kafka.

use std::collections::HashMap;
use std::sync::Arc;

pub use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceResponse};
use runnel_proto::v1::{self, Acks};

use super::connection::Conn;
use super::dispatch::Deferred;
use super::errors::{INVALID_REQUEST, UNKNOWN_TOPIC_OR_PARTITION, code, code_of};
use super::leader_hint::LeaderHints;
use super::topics::{TOPIC_AUTHORIZATION_FAILED, allowed, exists, str_bytes, topic_name};
use crate::auth::acl::Operation;

/// v3 (Kafka 0.11, record batches v2) to v12; v13 names topics by id.
pub const VERSIONS: (i16, i16) = (3, 12);

/// Kafka's INVALID_REQUIRED_ACKS.
const INVALID_REQUIRED_ACKS: i16 = kafka_protocol::ResponseError::InvalidRequiredAcks.code();

pub async fn handle(
    conn: Arc<Conn>,
    version: i16,
    req: ProduceRequest,
) -> Deferred<ProduceResponse> {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let acks = match req.acks {
        0 => Some(Acks::None),
        1 => Some(Acks::Leader),
        -1 => Some(Acks::All),
        _ => None,
    };
    // Answers decided here, before the shared operation: (topic, partition) → code.
    let mut refused: HashMap<(String, i32), (i16, Option<String>)> = HashMap::new();
    let mut order = Vec::with_capacity(req.topic_data.len());
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let name = t.name.0.to_string();
        let known = ctx.replicas.topic(&name).ok();
        let permitted =
            known.is_some() && acks.is_some() && allowed(ctx, &who, Operation::Write, &name);
        let mut partitions = Vec::with_capacity(t.partition_data.len());
        let mut indexes = Vec::with_capacity(t.partition_data.len());
        for p in t.partition_data {
            indexes.push(p.index);
            let count = known.as_ref().map_or(0, |k| k.record.partitions());
            let refusal = if acks.is_none() {
                Some((
                    INVALID_REQUIRED_ACKS,
                    format!("acks={} is not 0, 1 or -1 (all)", req.acks),
                ))
            } else if !exists(p.index, count) {
                Some((
                    UNKNOWN_TOPIC_OR_PARTITION,
                    format!("{name}-{} does not exist", p.index),
                ))
            } else if !permitted {
                Some((
                    TOPIC_AUTHORIZATION_FAILED,
                    format!("not allowed to write to {name}"),
                ))
            } else if p.records.is_none() {
                Some((
                    INVALID_REQUEST,
                    "a produce partition without records".to_owned(),
                ))
            } else {
                None
            };
            match refusal {
                Some((error_code, message)) => {
                    refused.insert((name.clone(), p.index), (error_code, Some(message)));
                }
                None => partitions.push(v1::PartitionProduceData {
                    partition: p.index as u32,
                    records: p.records.unwrap_or_default(),
                }),
            }
        }
        order.push((name.clone(), indexes));
        if !partitions.is_empty() {
            topics.push(v1::TopicProduceData {
                topic: name,
                partitions,
            });
        }
    }
    let no_answer = acks == Some(Acks::None);
    let shared = if topics.is_empty() {
        None
    } else {
        let proto = v1::ProduceRequest {
            topics,
            acks: acks.unwrap_or(Acks::Leader) as i32,
            timeout_ms: u32::try_from(req.timeout_ms).unwrap_or(0),
            transactional_id: String::new(),
        };
        Some(
            crate::server::run_unfiltered(ctx, "Produce", &who, proto, |body| {
                crate::server::produce::append(ctx, body)
            })
            .await,
        )
    };
    let conn = conn.clone();
    Box::pin(async move {
        let answered = match shared {
            None => Ok(None),
            Some(Ok(appended)) => Ok(Some(appended.answer().await)),
            Some(Err(e)) => Err(e),
        };
        if no_answer {
            return None;
        }
        let mut results: HashMap<(String, i32), PartitionProduceResponse> = HashMap::new();
        match answered {
            Ok(Some(response)) => {
                for t in response.topics {
                    for p in t.partitions {
                        let mut r = PartitionProduceResponse::default()
                            .with_index(p.partition as i32)
                            .with_error_code(code_of(p.error.as_ref()))
                            .with_base_offset(p.base_offset)
                            .with_log_append_time_ms(p.log_append_time_ms);
                        if version >= 5 {
                            r.log_start_offset = p.log_start_offset;
                        }
                        if version >= 8 {
                            r.error_message = p.error.map(|e| str_bytes(e.message));
                        }
                        results.insert((t.topic.clone(), p.partition as i32), r);
                    }
                }
            }
            Ok(None) => {}
            // The whole request failed (a corrupt batch anywhere): every
            // partition that went to the operation says why.
            Err(e) => {
                for ((topic, indexes), _) in order.iter().zip(0..) {
                    for &i in indexes {
                        refused
                            .entry((topic.clone(), i))
                            .or_insert_with(|| (code(&e), Some(e.to_string())));
                    }
                }
            }
        }
        let responses: Vec<TopicProduceResponse> = order
            .into_iter()
            .map(|(name, indexes)| {
                let partition_responses = indexes
                    .into_iter()
                    .map(|i| {
                        let key = (name.clone(), i);
                        if let Some(r) = results.remove(&key) {
                            return r;
                        }
                        let (error_code, message) =
                            refused.remove(&key).unwrap_or((INVALID_REQUEST, None));
                        let mut r = PartitionProduceResponse::default()
                            .with_index(i)
                            .with_error_code(error_code)
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1);
                        if version >= 5 {
                            r.log_start_offset = -1;
                        }
                        if version >= 8 {
                            r.error_message = message.map(str_bytes);
                        }
                        r
                    })
                    .collect();
                TopicProduceResponse::default()
                    .with_name(topic_name(&name))
                    .with_partition_responses(partition_responses)
            })
            .collect();
        let mut response = ProduceResponse::default().with_responses(responses);
        if version >= 10 {
            add_leader_hints(&conn.ctx, &mut response);
        }
        Some(response)
    })
}

/// KIP-951's current leader and its endpoint on partitions refused with
/// NOT_LEADER_OR_FOLLOWER.
fn add_leader_hints(ctx: &crate::server::Context, response: &mut ProduceResponse) {
    let mut hints = LeaderHints::new(ctx);
    for t in &mut response.responses {
        for p in &mut t.partition_responses {
            if let Some((leader, epoch)) = hints.hint(p.error_code, &t.name.0, p.index) {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
            }
        }
    }
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
