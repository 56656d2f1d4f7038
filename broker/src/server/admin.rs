//! The Admin service's operations: thin wrappers over
//! [`crate::controller::TopicController`] plus describe/list views.

use runnel_proto::v1::{
    AlterTopicRequest, AlterTopicResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeTopicsRequest, DescribeTopicsResponse,
    ListTopicsRequest, ListTopicsResponse, PartitionDescription, TopicDescription, TopicListing,
};

use super::Context;
use crate::Result;
use crate::replica::{NO_LEADER, TopicState};

pub(crate) async fn create_topics(
    ctx: &Context,
    req: CreateTopicsRequest,
) -> Result<CreateTopicsResponse> {
    let names = ctx
        .topics
        .create_topics(&req.topics, req.validate_only)
        .await?;
    let topics = if req.validate_only {
        Vec::new()
    } else {
        names
            .iter()
            .map(|n| ctx.replicas.topic(n).map(|s| describe(&s)))
            .collect::<Result<_>>()?
    };
    Ok(CreateTopicsResponse { topics })
}

pub(crate) async fn delete_topics(
    ctx: &Context,
    req: DeleteTopicsRequest,
) -> Result<DeleteTopicsResponse> {
    let deleted = ctx.topics.delete_topics(&req.names).await?;
    Ok(DeleteTopicsResponse { deleted })
}

pub(crate) async fn list_topics(
    ctx: &Context,
    _req: ListTopicsRequest,
) -> Result<ListTopicsResponse> {
    let topics = ctx
        .replicas
        .topics()
        .iter()
        .map(|s| TopicListing {
            name: s.name.clone(),
            topic_id: s.record.topic_id.clone(),
            partitions: s.record.partitions(),
            replication_factor: s.record.replication_factor,
            internal: false,
        })
        .collect();
    Ok(ListTopicsResponse { topics })
}

pub(crate) async fn describe_topics(
    ctx: &Context,
    req: DescribeTopicsRequest,
) -> Result<DescribeTopicsResponse> {
    let states = ctx.replicas.topics_named(&req.names)?;
    Ok(DescribeTopicsResponse {
        topics: states.iter().map(|s| describe(s)).collect(),
    })
}

pub(crate) async fn alter_topic(
    ctx: &Context,
    req: AlterTopicRequest,
) -> Result<AlterTopicResponse> {
    ctx.topics.alter_topic(&req).await?;
    let state = ctx.replicas.topic(&req.name)?;
    Ok(AlterTopicResponse {
        topic: Some(describe(&state)),
    })
}

/// A full description of one topic as this broker serves it.
fn describe(state: &TopicState) -> TopicDescription {
    TopicDescription {
        name: state.name.clone(),
        topic_id: state.record.topic_id.clone(),
        replication_factor: state.record.replication_factor,
        configs: state.config.entries(),
        internal: false,
        partitions: state
            .partitions
            .iter()
            .zip(&state.record.assignment)
            .enumerate()
            .map(|(p, (part, replicas))| {
                let leadership = state.partition_state(p as u32);
                let mut d = PartitionDescription {
                    partition: p as u32,
                    leader: leadership.as_ref().map_or(NO_LEADER, |s| s.leader),
                    leader_epoch: leadership.as_ref().map_or(-1, |s| s.leader_epoch),
                    replicas: replicas.clone(),
                    isr: leadership.map(|s| s.isr).unwrap_or_default(),
                    log_start_offset: -1,
                    high_watermark: -1,
                    log_end_offset: -1,
                    size_bytes: 0,
                };
                // Offsets are the leader's; another broker's replica would
                // show stale ones.
                if let Some(part) = part.as_ref().filter(|p| p.is_leader()) {
                    let log = part.log();
                    d.log_start_offset = log.log_start_offset();
                    d.high_watermark = part.high_watermark();
                    d.log_end_offset = log.log_end_offset();
                    d.size_bytes = log.size_bytes();
                }
                d
            })
            .collect(),
    }
}
