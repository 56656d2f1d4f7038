//! ConsumerGroupHeartbeat: Kafka's KIP-848 consumer protocol
//! (`group.protocol=consumer`), served by Runnel's own group protocol,
//! which already has its shape: the coordinator assigns, a member learns
//! its partitions from heartbeats, reports what it owns, and a partition
//! moves only once its old owner stopped reporting it.
//!
//! member epoch 0 joins (JoinGroup), -1 and -2 leave (LeaveGroup), any
//! other heartbeats (Heartbeat) with the partitions owned; the member epoch
//! is the group's generation. Topics are named by id on this API.

use std::sync::Arc;

pub use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
use kafka_protocol::messages::ConsumerGroupHeartbeatResponse;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::code;
use super::topics::{name_of_id, str_bytes, topic_uuid};
use crate::Error;

/// v0 (the broker names new members) and v1 (the client does).
pub const VERSIONS: (i16, i16) = (0, 1);

/// Kafka's FENCED_MEMBER_EPOCH: what a KIP-848 member acts on where a
/// classic one gets ILLEGAL_GENERATION.
const FENCED_MEMBER_EPOCH: i16 = kafka_protocol::ResponseError::FencedMemberEpoch.code();

pub async fn handle(
    conn: Arc<Conn>,
    _version: i16,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let group_id = req.group_id.0.to_string();
    let member_id = req.member_id.to_string();
    let answer =
        |member_id: String, epoch: i32, interval: u32, assignment: Vec<v1::TopicPartitions>| {
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(str_bytes(member_id)))
                .with_member_epoch(epoch)
                .with_heartbeat_interval_ms(interval as i32)
                .with_assignment(Some(
                    Assignment::default().with_topic_partitions(
                        assignment
                            .into_iter()
                            .filter_map(|t| {
                                let id = ctx.replicas.topic(&t.topic).ok()?.record.topic_id.clone();
                                Some(
                                    TopicPartitions::default()
                                        .with_topic_id(topic_uuid(&id))
                                        .with_partitions(
                                            t.partitions.iter().map(|&p| p as i32).collect(),
                                        ),
                                )
                            })
                            .collect(),
                    ),
                ))
        };
    let refuse = |e: &Error| {
        let error_code = match e {
            Error::IllegalGeneration { .. } => FENCED_MEMBER_EPOCH,
            e => code(e),
        };
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error_code)
            .with_error_message(Some(str_bytes(e.to_string())))
            .with_member_epoch(-1)
    };
    match req.member_epoch {
        0 => {
            let topics: Vec<String> = req
                .subscribed_topic_names
                .iter()
                .flatten()
                .map(|t| t.0.to_string())
                .collect();
            let proto = v1::JoinGroupRequest {
                group_id,
                member_id,
                topics,
                // Kafka's default server assignor is "uniform": ours is sticky.
                assignor: match req.server_assignor.as_deref() {
                    Some("range") => "range".into(),
                    _ => "sticky".into(),
                },
                session_timeout_ms: 0,
                client_id: conn.client_id(),
            };
            match crate::server::run(ctx, "JoinGroup", &who, proto, |body| {
                crate::group::join::handle(&ctx.groups, body)
            })
            .await
            {
                Ok(r) => answer(
                    r.member_id,
                    r.generation,
                    r.heartbeat_interval_ms,
                    r.assignment,
                ),
                Err(e) => refuse(&e),
            }
        }
        -1 | -2 => {
            let proto = v1::LeaveGroupRequest {
                group_id,
                member_id: member_id.clone(),
            };
            match crate::server::run(ctx, "LeaveGroup", &who, proto, |body| {
                crate::group::leave::handle(&ctx.groups, body)
            })
            .await
            {
                Ok(_) => ConsumerGroupHeartbeatResponse::default()
                    .with_member_id(Some(str_bytes(member_id)))
                    .with_member_epoch(req.member_epoch),
                Err(e) => refuse(&e),
            }
        }
        epoch => {
            let owned = req
                .topic_partitions
                .iter()
                .flatten()
                .filter_map(|t| {
                    Some(v1::TopicPartitions {
                        topic: name_of_id(ctx, t.topic_id)?,
                        partitions: t
                            .partitions
                            .iter()
                            .filter_map(|&p| u32::try_from(p).ok())
                            .collect(),
                    })
                })
                .collect();
            let proto = v1::HeartbeatRequest {
                group_id,
                member_id: member_id.clone(),
                generation: epoch,
                owned,
            };
            match crate::server::run(ctx, "Heartbeat", &who, proto, |body| {
                crate::group::heartbeat::handle(&ctx.groups, body)
            })
            .await
            {
                Ok(r) => answer(
                    member_id,
                    r.generation,
                    r.heartbeat_interval_ms,
                    r.assignment,
                ),
                Err(e) => refuse(&e),
            }
        }
    }
}
