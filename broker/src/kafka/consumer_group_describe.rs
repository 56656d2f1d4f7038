//! ConsumerGroupDescribe: KIP-848's describe of a consumer-protocol group
//! (what AdminClient's describe_consumer_groups sends for
//! `group.protocol=consumer` groups), from the same DescribeGroup
//! operation as gRPC and `runnel group describe`.
//!
//! Each member's `assignment` is what it last reported owning and its
//! `target_assignment` the coordinator's target, as in Kafka; the member
//! epoch is the group's generation, which is what every member of a
//! Runnel group heartbeats with once it caught up. A group run by the
//! classic protocol, or one that does not exist, gets GROUP_ID_NOT_FOUND,
//! Kafka's answer (clients then describe it with DescribeGroups).

use std::sync::Arc;

pub use kafka_protocol::messages::ConsumerGroupDescribeRequest;
use kafka_protocol::messages::ConsumerGroupDescribeResponse;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::code;
use super::topics::{str_bytes, topic_name, topic_uuid};
use crate::server::Context;

pub const VERSIONS: (i16, i16) = (0, 1);

/// Kafka's GROUP_ID_NOT_FOUND.
const GROUP_ID_NOT_FOUND: i16 = kafka_protocol::ResponseError::GroupIdNotFound.code();

/// `member_type` (v1): a member of the consumer protocol.
const CONSUMER_MEMBER: i8 = 1;

pub async fn handle(
    conn: Arc<Conn>,
    version: i16,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for g in req.group_ids {
        let group_id = g.0.to_string();
        let proto = v1::DescribeGroupRequest {
            group_id: group_id.clone(),
        };
        let described = crate::server::run_unfiltered(ctx, "DescribeGroup", &who, proto, |body| {
            crate::group::describe::handle(&ctx.groups, body)
        })
        .await;
        let not_found = |message: String| {
            DescribedGroup::default()
                .with_group_id(g.clone())
                .with_error_code(GROUP_ID_NOT_FOUND)
                .with_error_message(Some(str_bytes(message)))
                .with_group_state(str_bytes("Dead"))
        };
        let group = match described {
            Err(e) => DescribedGroup::default()
                .with_group_id(g.clone())
                .with_error_code(code(&e))
                .with_error_message(Some(str_bytes(e.to_string())))
                .with_group_state(str_bytes("Dead")),
            Ok(d) if is_classic(ctx, &group_id).await => not_found(format!(
                "group {} is a classic group; describe it with DescribeGroups",
                d.group_id
            )),
            Ok(d) if d.members.is_empty() && d.offsets.is_empty() => {
                not_found(format!("group {} does not exist", d.group_id))
            }
            Ok(d) => described_group(ctx, version, g.clone(), d),
        };
        groups.push(group);
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

/// Does the classic protocol run `group` now (it has members, and not of
/// Runnel's own protocol, which KIP-848 members join)?
async fn is_classic(ctx: &Context, group: &str) -> bool {
    ctx.groups.classic_describe(group).await.is_ok_and(|d| {
        !d.members.is_empty()
            && d.protocol_type != crate::group::classic_describe::RUNNEL_PROTOCOL_TYPE
    })
}

fn described_group(
    ctx: &Context,
    version: i16,
    group_id: kafka_protocol::messages::GroupId,
    d: v1::DescribeGroupResponse,
) -> DescribedGroup {
    let members = d
        .members
        .into_iter()
        .map(|m| {
            let mut member = Member::default()
                .with_member_id(str_bytes(m.member_id))
                .with_member_epoch(d.generation)
                .with_client_id(str_bytes(m.client_id))
                .with_subscribed_topic_names(m.topics.iter().map(|t| topic_name(t)).collect())
                .with_assignment(assignment(ctx, m.owned))
                .with_target_assignment(assignment(ctx, m.assignment));
            if version >= 1 {
                member.member_type = CONSUMER_MEMBER;
            }
            member
        })
        .collect();
    DescribedGroup::default()
        .with_group_id(group_id)
        .with_group_state(str_bytes(d.state))
        .with_group_epoch(d.generation)
        .with_assignment_epoch(d.generation)
        // KIP-848 calls the server assignors "uniform" and "range".
        .with_assignor_name(str_bytes(match d.assignor.as_str() {
            "sticky" => "uniform".to_owned(),
            other => other.to_owned(),
        }))
        .with_members(members)
}

/// Partitions by topic, with the topic's id and name.
fn assignment(ctx: &Context, topics: Vec<v1::TopicPartitions>) -> Assignment {
    Assignment::default().with_topic_partitions(
        topics
            .into_iter()
            .map(|t| {
                let id = ctx
                    .replicas
                    .topic(&t.topic)
                    .map(|k| topic_uuid(&k.record.topic_id))
                    .unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(topic_name(&t.topic))
                    .with_partitions(t.partitions.iter().map(|&p| p as i32).collect())
            })
            .collect(),
    )
}
