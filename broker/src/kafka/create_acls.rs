//! CreateAcls: Kafka ACL bindings stored as Runnel ACLs through the shared
//! operation, one at a time so each creation gets its own result as
//! Kafka's response has it.

use std::sync::Arc;

pub use kafka_protocol::messages::CreateAclsRequest;
use kafka_protocol::messages::CreateAclsResponse;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use runnel_proto::v1 as pb;

use super::acl_codes::binding;
use super::connection::Conn;
use super::errors::{INVALID_REQUEST, code};
use super::topics::str_bytes;

pub const VERSIONS: (i16, i16) = (1, 3);

pub async fn handle(conn: Arc<Conn>, _version: i16, req: CreateAclsRequest) -> CreateAclsResponse {
    let ctx = &conn.ctx;
    let who = conn.principal();
    let mut results = Vec::with_capacity(req.creations.len());
    for c in req.creations {
        let wanted = binding(
            c.resource_type,
            &c.resource_name,
            c.resource_pattern_type,
            &c.principal,
            &c.host,
            c.operation,
            c.permission_type,
        );
        let result = match wanted {
            Err(e) => AclCreationResult::default()
                .with_error_code(INVALID_REQUEST)
                .with_error_message(Some(str_bytes(e.0))),
            Ok(b) => {
                let proto = pb::CreateAclsRequest { acls: vec![b] };
                match crate::server::run(ctx, "CreateAcls", &who, proto, |body| {
                    crate::server::acls::create(ctx, body)
                })
                .await
                {
                    Ok(_) => AclCreationResult::default(),
                    Err(e) => AclCreationResult::default()
                        .with_error_code(code(&e))
                        .with_error_message(Some(str_bytes(e.to_string()))),
                }
            }
        };
        results.push(result);
    }
    CreateAclsResponse::default().with_results(results)
}
