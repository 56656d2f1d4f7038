//! The Admin service's operations: thin wrappers over
//! [`crate::controller::TopicController`] plus describe/list views.

use std::collections::HashMap;

use runnel_proto::v1::{
    AlterTopicRequest, AlterTopicResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeTopicsRequest, DescribeTopicsResponse,
    ListTopicsRequest, ListTopicsResponse, PartitionDescription, TopicDescription, TopicListing,
};

use super::Context;
use crate::controller::topics::MAX_PARTITIONS;
use crate::replica::{NO_LEADER, TopicState};
use crate::topic::config;
use crate::{Error, Result};

pub(crate) async fn create_topics(
    ctx: &Context,
    req: CreateTopicsRequest,
) -> Result<CreateTopicsResponse> {
    // Planning a topic is synchronous work (configs, placement): a request
    // naming a hundred thousand of them would hold a runtime thread, and
    // with it the broker's timers and lease keep-alive, for seconds. The
    // per-topic partition limit applies to the request as a whole (a single
    // topic gets the per-topic error).
    let requested: u64 = req
        .topics
        .iter()
        .map(|t| {
            u64::from(if t.partitions == 0 {
                ctx.config.num_partitions
            } else {
                t.partitions
            })
        })
        .sum();
    if req.topics.len() > 1 && requested > u64::from(MAX_PARTITIONS) {
        return Err(Error::InvalidRequest(format!(
            "this request would create {requested} partitions in {} topics; at most \
             {MAX_PARTITIONS} are created per request, send several requests",
            req.topics.len()
        )));
    }
    for t in &req.topics {
        check_many_configs(&t.configs)?;
    }
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
    check_many_configs(&req.set_configs)?;
    ctx.topics.alter_topic(&req).await?;
    let state = ctx.replicas.topic(&req.name)?;
    Ok(AlterTopicResponse {
        topic: Some(describe(&state)),
    })
}

/// More configs than there are keys cannot all be valid. The controller
/// would copy and sort them all before reporting the first bad one (a
/// hundred thousand entries hold a runtime thread, and the broker's timers
/// with it, for a long while); this finds the same entry, the first bad
/// one in key order, in one pass that allocates nothing.
fn check_many_configs(configs: &HashMap<String, String>) -> Result<()> {
    if configs.len() <= config::known_keys().count() {
        return Ok(());
    }
    let first_bad = configs
        .iter()
        .filter(|(k, v)| !config::is_known(k) || config::validate(k, v).is_err())
        .min_by_key(|(k, _)| k.as_str());
    match first_bad {
        Some((k, v)) => config::validate(k, v),
        None => Ok(()),
    }
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
