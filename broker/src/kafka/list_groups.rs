//! ListGroups: the groups this broker coordinates (Kafka's clients ask
//! every broker and merge), filtered by state in v4+.

use std::sync::Arc;

use kafka_protocol::messages::GroupId;
pub use kafka_protocol::messages::ListGroupsRequest;
use kafka_protocol::messages::ListGroupsResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::code;
use super::topics::str_bytes;
use crate::auth::acl::{Operation, ResourceType};

pub const VERSIONS: (i16, i16) = (0, 4);

pub async fn handle(conn: Arc<Conn>, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    // Runnel's ListGroups access: nothing refused, listings filtered.
    let listed = crate::server::run_unfiltered(
        ctx,
        "ListGroups",
        &who,
        v1::ListGroupsRequest {},
        |_| async { Ok(ctx.groups.classic_list()) },
    )
    .await;
    let listings = match listed {
        Ok(l) => l,
        Err(e) => return ListGroupsResponse::default().with_error_code(code(&e)),
    };
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    ListGroupsResponse::default().with_groups(
        listings
            .into_iter()
            .filter(|l| {
                ctx.authorizer
                    .allowed(&who, Operation::Describe, ResourceType::Group, &l.group_id)
            })
            .filter(|l| states.is_empty() || states.contains(&l.state.to_lowercase()))
            .map(|l| {
                let mut g = ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(l.group_id)))
                    .with_protocol_type(str_bytes(l.protocol_type));
                if version >= 4 {
                    g.group_state = str_bytes(l.state);
                }
                g
            })
            .collect(),
    )
}
