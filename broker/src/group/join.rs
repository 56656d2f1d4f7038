//! JoinGroup: add a member (or refresh a re-joining one).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use runnel_proto::v1::{JoinGroupRequest, JoinGroupResponse};

use super::assignor::{Assignor, TopicPartition};
use super::state::PartitionCounts;
use super::{DEFAULT_SESSION_TIMEOUT, GroupCoordinator, GroupEntry, to_wire};
use crate::{Error, Result};

/// Shortest and longest session timeouts accepted (Kafka's
/// group.min/max.session.timeout.ms are 6 s and 30 min; ours allow short
/// ones for tests and fast failover).
pub(super) const MIN_SESSION: Duration = Duration::from_millis(500);
pub(super) const MAX_SESSION: Duration = Duration::from_secs(1800);

pub async fn handle(coord: &GroupCoordinator, req: JoinGroupRequest) -> Result<JoinGroupResponse> {
    let assignor = if req.assignor.is_empty() {
        Assignor::Range
    } else {
        Assignor::from_name(&req.assignor).ok_or_else(|| {
            Error::InvalidRequest(format!(
                "unknown assignor {:?}; use range, roundrobin or sticky",
                req.assignor
            ))
        })?
    };
    let session = if req.session_timeout_ms == 0 {
        DEFAULT_SESSION_TIMEOUT
    } else {
        Duration::from_millis(u64::from(req.session_timeout_ms))
    };
    if !(MIN_SESSION..=MAX_SESSION).contains(&session) {
        return Err(Error::InvalidRequest(format!(
            "session timeout {session:?} is outside {MIN_SESSION:?}..={MAX_SESSION:?}"
        )));
    }
    if req.topics.is_empty() {
        return Err(Error::InvalidRequest(
            "a member must subscribe to at least one topic".into(),
        ));
    }
    let topics: BTreeSet<String> = req.topics.iter().cloned().collect();
    for t in &topics {
        crate::topic::validate_topic_name(t)?;
    }
    let entry = coord.entry(&req.group_id).await?;
    let (member_id, generation, assignment) = join_members(
        &entry,
        &req.member_id,
        &req.client_id,
        topics,
        assignor,
        session,
        Instant::now(),
        &|t| coord.partition_count(t),
    )?;
    Ok(JoinGroupResponse {
        member_id,
        generation,
        heartbeat_interval_ms: GroupCoordinator::heartbeat_interval(session).as_millis() as u32,
        assignment: to_wire(assignment),
    })
}

/// Join Runnel's protocol, unless Kafka's classic protocol runs the group.
#[allow(clippy::too_many_arguments)]
pub(super) fn join_members(
    entry: &GroupEntry,
    member_id: &str,
    client_id: &str,
    topics: BTreeSet<String>,
    assignor: Assignor,
    session: Duration,
    now: Instant,
    counts: PartitionCounts<'_>,
) -> Result<(String, i32, Vec<TopicPartition>)> {
    let mut state = entry.state.lock();
    // Checked under `state`, which a classic JoinGroup also takes first: no
    // Kafka member joins meanwhile.
    let classic = entry.classic.lock().group.member_count();
    if classic > 0 {
        return Err(Error::InconsistentGroupProtocol {
            group: state.group_id.clone(),
            reason: format!(
                "it has {classic} member(s) using Kafka's classic group protocol (Kafka \
                 consumers); a Runnel consumer can join once they have left, or use another group id"
            ),
        });
    }
    Ok(state.join(member_id, client_id, topics, assignor, session, now, counts))
}
