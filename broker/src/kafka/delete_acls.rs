//! DeleteAcls: remove the Runnel ACLs each Kafka filter matches, through
//! the shared operation, one filter at a time so each gets its own list
//! of what it removed.
//!
//! A MATCH filter is first resolved to the exact bindings it matches
//! (Runnel's filters have no MATCH), which are then deleted exactly.

use std::sync::Arc;

pub use kafka_protocol::messages::DeleteAclsRequest;
use kafka_protocol::messages::DeleteAclsResponse;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use runnel_proto::v1 as pb;

use super::acl_codes::{
    KafkaFilter, filter, operation_to_kafka, pattern_type_to_kafka, permission_to_kafka,
    resource_name_out, resource_type_to_kafka,
};
use super::connection::Conn;
use super::errors::{INVALID_REQUEST, code};
use super::topics::str_bytes;
use crate::auth::Principal;
use crate::server::Context;

pub const VERSIONS: (i16, i16) = (1, 3);

pub async fn handle(conn: Arc<Conn>, _version: i16, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let mut results = Vec::with_capacity(req.filters.len());
    for f in req.filters {
        let wanted = filter(
            f.resource_type_filter,
            f.resource_name_filter.as_deref(),
            f.pattern_type_filter,
            f.principal_filter.as_deref(),
            f.host_filter.as_deref(),
            f.operation,
            f.permission_type,
        );
        let result = match wanted {
            Err(e) => DeleteAclsFilterResult::default()
                .with_error_code(INVALID_REQUEST)
                .with_error_message(Some(str_bytes(e.0))),
            Ok(None) => DeleteAclsFilterResult::default(),
            Ok(Some(f)) => match delete(ctx, &who, f).await {
                Ok(deleted) => DeleteAclsFilterResult::default()
                    .with_matching_acls(deleted.iter().map(matching).collect()),
                Err(e) => DeleteAclsFilterResult::default()
                    .with_error_code(code(&e))
                    .with_error_message(Some(str_bytes(e.to_string()))),
            },
        };
        results.push(result);
    }
    DeleteAclsResponse::default().with_filter_results(results)
}

async fn delete(
    ctx: &Context,
    who: &Principal,
    f: KafkaFilter,
) -> crate::Result<Vec<pb::AclBinding>> {
    let filters = if f.matching.is_some() {
        let proto = pb::DescribeAclsRequest {
            filter: Some(f.filter.clone()),
        };
        let found = crate::server::run(ctx, "DescribeAcls", who, proto, |body| {
            crate::server::acls::describe(ctx, body)
        })
        .await?;
        let exact: Vec<pb::AclFilter> = found
            .acls
            .into_iter()
            .filter(|b| f.keeps(b))
            .map(|b| pb::AclFilter {
                resource_type: b.resource_type,
                resource_name: b.resource_name,
                pattern_type: b.pattern_type,
                principal: b.principal,
                operation: b.operation,
                permission: b.permission,
            })
            .collect();
        if exact.is_empty() {
            return Ok(Vec::new());
        }
        exact
    } else {
        vec![f.filter]
    };
    let proto = pb::DeleteAclsRequest { filters };
    let r = crate::server::run(ctx, "DeleteAcls", who, proto, |body| {
        crate::server::acls::delete(ctx, body)
    })
    .await?;
    Ok(r.deleted)
}

fn matching(b: &pb::AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(resource_type_to_kafka(b.resource_type))
        .with_resource_name(str_bytes(resource_name_out(b)))
        .with_pattern_type(pattern_type_to_kafka(b.pattern_type))
        .with_principal(str_bytes(b.principal.clone()))
        .with_host(str_bytes("*"))
        .with_operation(operation_to_kafka(b.operation))
        .with_permission_type(permission_to_kafka(b.permission))
}
