//! LeaveGroup: members leave at once (one by id in v0-2, a batch by id or
//! instance id in v3+), so their partitions move without waiting for
//! their sessions to expire.

use std::sync::Arc;

pub use kafka_protocol::messages::LeaveGroupRequest;
use kafka_protocol::messages::LeaveGroupResponse;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::code;
use super::topics::str_bytes;

pub const VERSIONS: (i16, i16) = (0, 5);

pub async fn handle(conn: Arc<Conn>, version: i16, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let ctx = &conn.ctx;
    let group_id = req.group_id.0.to_string();
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let access = v1::LeaveGroupRequest {
        group_id: group_id.clone(),
        ..Default::default()
    };
    let left = crate::server::run_unfiltered(ctx, "LeaveGroup", &conn.principal(), access, |_| {
        ctx.groups.classic_leave(&group_id, members)
    })
    .await;
    match left {
        Err(e) => LeaveGroupResponse::default().with_error_code(code(&e)),
        Ok(outcomes) if version < 3 => LeaveGroupResponse::default().with_error_code(
            outcomes
                .into_iter()
                .find_map(|(_, _, r)| r.err())
                .map_or(0, |e| code(&e)),
        ),
        Ok(outcomes) => LeaveGroupResponse::default().with_members(
            outcomes
                .into_iter()
                .map(|(member_id, instance, r)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(member_id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_error_code(r.err().map_or(0, |e| code(&e)))
                })
                .collect(),
        ),
    }
}
