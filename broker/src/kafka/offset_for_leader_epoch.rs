//! OffsetForLeaderEpoch (KIP-101, KIP-320): where a leader epoch ends in
//! the leader's log, from the replica's leader epoch cache.
//!
//! Consumers ask it after a leader change to learn whether the log they
//! were reading was truncated under them (their position past the answer's
//! end offset means it was). Followers use Runnel's own replication stream,
//! which carries the same answer, so a request naming a replica id is
//! served the same way.

use std::sync::Arc;

pub use kafka_protocol::messages::OffsetForLeaderEpochRequest;
use kafka_protocol::messages::OffsetForLeaderEpochResponse;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};

use super::connection::Conn;
use super::errors::{UNKNOWN_TOPIC_OR_PARTITION, code};
use super::topics::{TOPIC_AUTHORIZATION_FAILED, allowed, exists};
use crate::auth::acl::Operation;
use crate::replica::epoch_cache::{UNDEFINED_EPOCH, UNDEFINED_OFFSET};

/// v2 to v4 (v0/v1 lack the current leader epoch that fences stale
/// leaders; no current client needs them).
pub const VERSIONS: (i16, i16) = (2, 4);

pub async fn handle(
    conn: Arc<Conn>,
    _version: i16,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let topics =
        req.topics
            .into_iter()
            .map(|t| {
                let name = t.topic.0.to_string();
                let count = ctx
                    .replicas
                    .topic(&name)
                    .map_or(0, |k| k.record.partitions());
                let permitted = count > 0 && allowed(ctx, &who, Operation::Describe, &name);
                let partitions =
                    t.partitions
                        .iter()
                        .map(|p| {
                            let answer = EpochEndOffset::default()
                                .with_partition(p.partition)
                                .with_leader_epoch(UNDEFINED_EPOCH)
                                .with_end_offset(UNDEFINED_OFFSET);
                            if !exists(p.partition, count) {
                                return answer.with_error_code(UNKNOWN_TOPIC_OR_PARTITION);
                            }
                            if !permitted {
                                return answer.with_error_code(TOPIC_AUTHORIZATION_FAILED);
                            }
                            let found = ctx.replicas.partition(&name, p.partition as u32).and_then(
                                |part| {
                                    // Only the leader at the asker's epoch knows
                                    // where epochs end for everyone.
                                    part.check_leader_epoch(p.current_leader_epoch)?;
                                    Ok(part.end_offset_for_epoch(p.leader_epoch))
                                },
                            );
                            match found {
                                Ok((epoch, end_offset)) => {
                                    answer.with_leader_epoch(epoch).with_end_offset(end_offset)
                                }
                                Err(e) => answer.with_error_code(code(&e)),
                            }
                        })
                        .collect();
                OffsetForLeaderTopicResult::default()
                    .with_topic(t.topic)
                    .with_partitions(partitions)
            })
            .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
