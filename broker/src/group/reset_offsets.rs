//! ResetGroupOffsets: set a group's committed offsets — explicit ones, or
//! the partitions' earliest, latest or first-at-a-time offsets (asked of
//! their leaders) — only while the group has no members. `dry_run` returns
//! the plan and changes nothing, like Kafka's tool without `--execute`.

use runnel_proto::v1::{
    CommittedOffset, OffsetCommitPartition, OffsetCommitTopic, OffsetSpec,
    ResetGroupOffsetsRequest, ResetGroupOffsetsResponse, ResetSpec,
};

use super::{GroupCoordinator, lookup, offsets};
use crate::{Error, Result};

pub async fn handle(
    coord: &GroupCoordinator,
    req: ResetGroupOffsetsRequest,
) -> Result<ResetGroupOffsetsResponse> {
    let spec = ResetSpec::try_from(req.spec)
        .map_err(|_| Error::InvalidRequest(format!("unknown reset spec {}", req.spec)))?;
    let topics = match spec {
        ResetSpec::Explicit => req.topics.clone(),
        _ => resolve(coord, &req.topics, spec, req.timestamp_ms).await?,
    };
    let rows = offsets::validate(coord, &topics)?;
    let entry = coord.entry(&req.group_id).await?;
    // Members of either protocol (Runnel's or Kafka's classic one).
    let members = entry.member_count();
    if members > 0 {
        return Err(Error::NonEmptyGroup {
            group: req.group_id.clone(),
            members,
        });
    }
    let planned = rows
        .iter()
        .map(|(topic, partition, offset, metadata)| CommittedOffset {
            topic: topic.clone(),
            partition: *partition,
            offset: *offset,
            metadata: metadata.clone(),
        })
        .collect();
    if !req.dry_run {
        offsets::write(coord, &req.group_id, &entry, -1, rows).await?;
        tracing::info!(group = %req.group_id, ?spec, "reset group offsets");
    }
    Ok(ResetGroupOffsetsResponse { offsets: planned })
}

/// The topics' partitions (all of them where none are listed) at `spec`.
async fn resolve(
    coord: &GroupCoordinator,
    topics: &[OffsetCommitTopic],
    spec: ResetSpec,
    timestamp_ms: i64,
) -> Result<Vec<OffsetCommitTopic>> {
    let mut partitions: Vec<(String, u32)> = Vec::new();
    for t in topics {
        crate::topic::validate_topic_name(&t.topic)?;
        let count = coord
            .partition_count(&t.topic)
            .ok_or_else(|| Error::UnknownTopic(t.topic.clone()))?;
        if t.partitions.is_empty() {
            partitions.extend((0..count).map(|p| (t.topic.clone(), p)));
        }
        for p in &t.partitions {
            // Else its leader would be "not available", a retriable lie.
            if p.partition >= count {
                return Err(Error::UnknownPartition {
                    topic: t.topic.clone(),
                    partition: p.partition,
                    partitions: count,
                });
            }
            partitions.push((t.topic.clone(), p.partition));
        }
    }
    let offset_spec = match spec {
        ResetSpec::Earliest => OffsetSpec::Earliest,
        ResetSpec::Latest => OffsetSpec::Latest,
        _ => OffsetSpec::Timestamp,
    };
    let found = lookup::list_offsets(coord, &partitions, offset_spec, timestamp_ms).await?;
    let mut out: Vec<OffsetCommitTopic> = Vec::new();
    for ((topic, partition), offset) in partitions.into_iter().zip(found) {
        if offset < 0 {
            return Err(Error::LeaderNotAvailable {
                topic_partition: format!("{topic}-{partition}"),
            });
        }
        let p = OffsetCommitPartition {
            partition,
            offset,
            metadata: String::new(),
        };
        match out.iter_mut().find(|t| t.topic == topic) {
            Some(t) => t.partitions.push(p),
            None => out.push(OffsetCommitTopic {
                topic,
                partitions: vec![p],
            }),
        }
    }
    Ok(out)
}
