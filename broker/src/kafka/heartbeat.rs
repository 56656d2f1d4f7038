//! Heartbeat: keeps a classic member's session alive; REBALANCE_IN_PROGRESS
//! tells it to join again.

use std::sync::Arc;

pub use kafka_protocol::messages::HeartbeatRequest;
use kafka_protocol::messages::HeartbeatResponse;
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::code;

pub const VERSIONS: (i16, i16) = (0, 4);

pub async fn handle(conn: Arc<Conn>, _version: i16, req: HeartbeatRequest) -> HeartbeatResponse {
    let ctx = &conn.ctx;
    let group_id = req.group_id.0.to_string();
    let access = v1::HeartbeatRequest {
        group_id: group_id.clone(),
        ..Default::default()
    };
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let outcome =
        crate::server::run_unfiltered(ctx, "Heartbeat", &conn.principal(), access, |_| {
            ctx.groups.classic_heartbeat(
                &group_id,
                &req.member_id,
                instance.as_deref(),
                req.generation_id,
            )
        })
        .await;
    HeartbeatResponse::default().with_error_code(outcome.err().map_or(0, |e| code(&e)))
}
