//! DescribeGroup: state, members, assignments and committed offsets, for
//! groups of either protocol.

use runnel_proto::v1::{
    DescribeGroupRequest, DescribeGroupResponse, GroupMember, OffsetSpec, PartitionLag,
};

use super::{GroupCoordinator, lookup, offsets, to_wire};
use crate::Result;

pub async fn handle(
    coord: &GroupCoordinator,
    req: DescribeGroupRequest,
) -> Result<DescribeGroupResponse> {
    let entry = coord.entry(&req.group_id).await?;
    let committed = offsets::read_all(coord, &req.group_id).await?;
    let partitions: Vec<(String, u32)> = committed.keys().cloned().collect();
    let ends = lookup::list_offsets(coord, &partitions, OffsetSpec::Latest, 0).await?;
    let lag = committed
        .iter()
        .zip(ends)
        .map(|(((topic, partition), c), end)| PartitionLag {
            topic: topic.clone(),
            partition: *partition,
            committed: c.offset,
            end_offset: end,
            lag: if end < 0 { -1 } else { (end - c.offset).max(0) },
        })
        .collect();
    let classic = entry.classic.lock();
    let group = &classic.group;
    if group.member_count() > 0 {
        // Kafka's classic protocol runs the group: its state names, the
        // chosen protocol (the assignor) and members with their client ids.
        // Their subscriptions and assignments are the clients' own bytes
        // (decoding Kafka's consumer protocol is the front end's business).
        let description = group.describe();
        return Ok(DescribeGroupResponse {
            group_id: req.group_id.clone(),
            state: description.state,
            generation: group.generation(),
            assignor: group.protocol_name().unwrap_or_default().to_owned(),
            coordinator_id: coord.broker_id(),
            members: description
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id,
                    client_id: m.client_id,
                    ..GroupMember::default()
                })
                .collect(),
            offsets: offsets::to_wire(&committed),
            lag,
        });
    }
    drop(classic);
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
        lag,
    })
}
