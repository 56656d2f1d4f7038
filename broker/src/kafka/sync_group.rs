//! SyncGroup: the leader hands in the assignment it computed; every member
//! (the leader too) gets its own share once the leader has.

use std::sync::Arc;

pub use kafka_protocol::messages::SyncGroupRequest;
use kafka_protocol::messages::SyncGroupResponse;
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::code;
use super::topics::str_bytes;
use crate::group::classic::ClassicSync;

pub const VERSIONS: (i16, i16) = (0, 5);

pub async fn handle(conn: Arc<Conn>, version: i16, req: SyncGroupRequest) -> SyncGroupResponse {
    let ctx = &conn.ctx;
    let group_id = req.group_id.0.to_string();
    let sync = ClassicSync {
        group_id: group_id.clone(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        generation: req.generation_id,
        protocol_type: req.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    // Group Read, as a heartbeat needs.
    let access = v1::HeartbeatRequest {
        group_id,
        ..Default::default()
    };
    let synced = crate::server::run_unfiltered(ctx, "SyncGroup", &conn.principal(), access, |_| {
        ctx.groups.classic_sync(sync)
    })
    .await;
    match synced {
        Ok(s) => {
            let mut response = SyncGroupResponse::default().with_assignment(s.assignment);
            if version >= 5 {
                response.protocol_type = s.protocol_type.map(str_bytes);
                response.protocol_name = s.protocol_name.map(str_bytes);
            }
            response
        }
        Err(e) => SyncGroupResponse::default().with_error_code(code(&e)),
    }
}
