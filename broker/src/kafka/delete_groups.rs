//! DeleteGroups: each group without members, with its committed offsets,
//! through the shared delete operation.

use std::sync::Arc;

pub use kafka_protocol::messages::DeleteGroupsRequest;
use kafka_protocol::messages::DeleteGroupsResponse;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::code;

pub const VERSIONS: (i16, i16) = (0, 2);

pub async fn handle(
    conn: Arc<Conn>,
    _version: i16,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let ctx = &conn.ctx;
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in req.groups_names {
        let proto = v1::DeleteGroupRequest {
            group_id: g.0.to_string(),
        };
        let outcome = crate::server::run(ctx, "DeleteGroups", &conn.principal(), proto, |body| {
            crate::group::delete::handle(&ctx.groups, body)
        })
        .await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(outcome.err().map_or(0, |e| code(&e))),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
