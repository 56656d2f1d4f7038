//! DescribeGroups: state, protocol and members of each group, as its
//! coordinator keeps them (Kafka's state names).

use std::sync::Arc;

pub use kafka_protocol::messages::DescribeGroupsRequest;
use kafka_protocol::messages::DescribeGroupsResponse;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::code;
use super::topics::str_bytes;

pub const VERSIONS: (i16, i16) = (0, 5);

pub async fn handle(
    conn: Arc<Conn>,
    version: i16,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let ctx = &conn.ctx;
    let mut groups = Vec::with_capacity(req.groups.len());
    for g in req.groups {
        let group_id = g.0.to_string();
        let access = v1::DescribeGroupRequest {
            group_id: group_id.clone(),
        };
        let described =
            crate::server::run_unfiltered(ctx, "DescribeGroups", &conn.principal(), access, |_| {
                ctx.groups.classic_describe(&group_id)
            })
            .await;
        groups.push(match described {
            Ok(d) => DescribedGroup::default()
                .with_group_id(g)
                .with_group_state(str_bytes(d.state))
                .with_protocol_type(str_bytes(d.protocol_type))
                .with_protocol_data(str_bytes(d.protocol_name))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            let mut member = DescribedGroupMember::default()
                                .with_member_id(str_bytes(m.member_id))
                                .with_client_id(str_bytes(m.client_id))
                                .with_client_host(str_bytes(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if version >= 4 {
                                member.group_instance_id = m.group_instance_id.map(str_bytes);
                            }
                            member
                        })
                        .collect(),
                ),
            Err(e) => DescribedGroup::default()
                .with_group_id(g)
                .with_error_code(code(&e))
                .with_group_state(str_bytes("Dead")),
        });
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
