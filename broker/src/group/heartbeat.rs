//! Heartbeat: keep a membership alive, report what it owns, learn what it
//! may consume.

use std::time::Instant;

use runnel_proto::v1::{HeartbeatRequest, HeartbeatResponse};

use super::{GroupCoordinator, from_wire, to_wire};
use crate::Result;

pub async fn handle(coord: &GroupCoordinator, req: HeartbeatRequest) -> Result<HeartbeatResponse> {
    let entry = coord.entry(&req.group_id).await?;
    let mut state = entry.state.lock();
    let (generation, assignment) = state.heartbeat(
        &req.member_id,
        req.generation,
        from_wire(&req.owned),
        Instant::now(),
        &|t| coord.partition_count(t),
    )?;
    let session = state.members[&req.member_id].session_timeout;
    Ok(HeartbeatResponse {
        generation,
        assignment: to_wire(assignment),
        heartbeat_interval_ms: GroupCoordinator::heartbeat_interval(session).as_millis() as u32,
    })
}
