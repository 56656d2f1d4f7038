//! LeaveGroup: a member's clean exit; its partitions move at once instead
//! of after its session timeout.

use runnel_proto::v1::{LeaveGroupRequest, LeaveGroupResponse};

use super::GroupCoordinator;
use crate::Result;

pub async fn handle(
    coord: &GroupCoordinator,
    req: LeaveGroupRequest,
) -> Result<LeaveGroupResponse> {
    let entry = coord.entry(&req.group_id).await?;
    entry
        .state
        .lock()
        .leave(&req.member_id, &|t| coord.partition_count(t))?;
    tracing::info!(group = %req.group_id, member = %req.member_id, "member left the group");
    Ok(LeaveGroupResponse {})
}
