//! DescribeGroup: state, members, assignments and committed offsets.

use runnel_proto::v1::{DescribeGroupRequest, DescribeGroupResponse, GroupMember};

use super::{GroupCoordinator, offsets, to_wire};
use crate::Result;

pub async fn handle(
    coord: &GroupCoordinator,
    req: DescribeGroupRequest,
) -> Result<DescribeGroupResponse> {
    let entry = coord.entry(&req.group_id).await?;
    let committed = offsets::read_all(coord, &req.group_id).await?;
    let state = entry.state.lock();
    Ok(DescribeGroupResponse {
        group_id: req.group_id.clone(),
        state: state.phase().name().to_owned(),
        generation: state.generation,
        assignor: state.assignor.name().to_owned(),
        coordinator_id: coord.broker_id(),
        members: state
            .members
            .values()
            .map(|m| GroupMember {
                member_id: m.id.clone(),
                client_id: m.client_id.clone(),
                topics: m.topics.iter().cloned().collect(),
                assignment: to_wire(state.target.get(&m.id).cloned().unwrap_or_default()),
                owned: to_wire(m.owned.iter().cloned()),
            })
            .collect(),
        offsets: offsets::to_wire(&committed),
    })
}
