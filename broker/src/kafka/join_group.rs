//! JoinGroup: a member of a classic group (client-side assignment) joins
//! and waits for the rebalance to complete; the leader is sent every
//! member's subscription to assign from. The coordinator's classic state
//! machine (`crate::group::classic`) does the work.

use std::sync::Arc;
use std::time::Duration;

pub use kafka_protocol::messages::JoinGroupRequest;
use kafka_protocol::messages::JoinGroupResponse;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::code;
use super::topics::str_bytes;
use crate::Error;
use crate::group::classic::ClassicJoin;

pub const VERSIONS: (i16, i16) = (0, 9);

pub async fn handle(conn: Arc<Conn>, version: i16, req: JoinGroupRequest) -> JoinGroupResponse {
    let ctx = &conn.ctx;
    let group_id = req.group_id.0.to_string();
    let join = ClassicJoin {
        group_id: group_id.clone(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: conn.client_id(),
        client_host: format!("/{}", conn.peer.ip()),
        session_timeout: Duration::from_millis(u64::try_from(req.session_timeout_ms).unwrap_or(0)),
        // v0 has none: the coordinator then uses the session timeout.
        rebalance_timeout: Duration::from_millis(
            u64::try_from(if version >= 1 {
                req.rebalance_timeout_ms
            } else {
                0
            })
            .unwrap_or(0),
        ),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    // Group Read, as for Runnel's own JoinGroup; the subscribed topics are
    // inside the client's opaque metadata, checked when it fetches.
    let access = v1::JoinGroupRequest {
        group_id: group_id.clone(),
        ..Default::default()
    };
    let joined = crate::server::run_unfiltered(ctx, "JoinGroup", &conn.principal(), access, |_| {
        ctx.groups.classic_join(join)
    })
    .await;
    let mut response = JoinGroupResponse::default();
    match joined {
        Ok(j) => {
            response.generation_id = j.generation;
            response.protocol_name = j.protocol_name.map(str_bytes);
            response.leader = str_bytes(j.leader);
            response.member_id = str_bytes(j.member_id);
            response.members = j
                .members
                .into_iter()
                .map(|m| {
                    let mut member = JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_metadata(m.metadata);
                    if version >= 5 {
                        member.group_instance_id = m.group_instance_id.map(str_bytes);
                    }
                    member
                })
                .collect();
            if version >= 7 {
                response.protocol_type = Some(str_bytes(j.protocol_type));
            }
            if version >= 9 {
                response.skip_assignment = j.skip_assignment;
            }
        }
        Err(e) => {
            response.error_code = code(&e);
            response.generation_id = -1;
            response.member_id = match &e {
                // KIP-394: the id to join again with.
                Error::MemberIdRequired { member, .. } => str_bytes(member.clone()),
                _ => req.member_id,
            };
            if version < 7 {
                response.protocol_name = Some(str_bytes(""));
            }
        }
    }
    response
}
