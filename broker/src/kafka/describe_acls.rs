//! DescribeAcls: Runnel's ACLs matching a Kafka filter, grouped by
//! resource pattern as Kafka's response has them.

use std::collections::BTreeMap;
use std::sync::Arc;

pub use kafka_protocol::messages::DescribeAclsRequest;
use kafka_protocol::messages::DescribeAclsResponse;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use runnel_proto::v1 as pb;

use super::acl_codes::{
    filter, operation_to_kafka, pattern_type_to_kafka, permission_to_kafka, resource_name_out,
    resource_type_to_kafka,
};
use super::connection::Conn;
use super::errors::{INVALID_REQUEST, code};
use super::topics::str_bytes;

pub const VERSIONS: (i16, i16) = (1, 3);

pub async fn handle(
    conn: Arc<Conn>,
    _version: i16,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let wanted = filter(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        req.pattern_type_filter,
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    );
    let kafka_filter = match wanted {
        Err(e) => {
            return DescribeAclsResponse::default()
                .with_error_code(INVALID_REQUEST)
                .with_error_message(Some(str_bytes(e.0)));
        }
        Ok(None) => return DescribeAclsResponse::default(),
        Ok(Some(f)) => f,
    };
    let proto = pb::DescribeAclsRequest {
        filter: Some(kafka_filter.filter.clone()),
    };
    let found = crate::server::run(ctx, "DescribeAcls", &who, proto, |body| {
        crate::server::acls::describe(ctx, body)
    })
    .await;
    match found {
        Err(e) => DescribeAclsResponse::default()
            .with_error_code(code(&e))
            .with_error_message(Some(str_bytes(e.to_string()))),
        Ok(r) => {
            let kept = r.acls.into_iter().filter(|b| kafka_filter.keeps(b));
            DescribeAclsResponse::default().with_resources(by_resource(kept))
        }
    }
}

/// Bindings grouped by (resource type, name, pattern type).
fn by_resource(bindings: impl Iterator<Item = pb::AclBinding>) -> Vec<DescribeAclsResource> {
    let mut groups: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in bindings {
        let key = (
            resource_type_to_kafka(b.resource_type),
            resource_name_out(&b),
            pattern_type_to_kafka(b.pattern_type),
        );
        groups.entry(key).or_default().push(
            AclDescription::default()
                .with_principal(str_bytes(b.principal))
                .with_host(str_bytes("*"))
                .with_operation(operation_to_kafka(b.operation))
                .with_permission_type(permission_to_kafka(b.permission)),
        );
    }
    groups
        .into_iter()
        .map(|((rt, name, pt), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt)
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pt)
                .with_acls(acls)
        })
        .collect()
}
