//! FindCoordinator: which broker coordinates a group (key type 0), through
//! the shared lookup, at the coordinator's Kafka address. v4+ ask for many
//! keys at once. Transaction coordinators (key type 1) do not exist yet.

use std::sync::Arc;

pub use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::{INVALID_REQUEST, code};
use super::topics::{kafka_endpoint, str_bytes};

pub const VERSIONS: (i16, i16) = (0, 6);

pub async fn handle(
    conn: Arc<Conn>,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for key in req.coordinator_keys {
            coordinators.push(find(&conn, req.key_type, key).await);
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = find(&conn, req.key_type, req.key).await;
    let mut response = FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port);
    if version >= 1 {
        response.error_message = c.error_message;
    }
    response
}

async fn find(conn: &Conn, key_type: i8, key: StrBytes) -> Coordinator {
    let ctx = &conn.ctx;
    let failed = |key: StrBytes, error_code: i16, message: String| {
        Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::default())
            .with_port(-1)
            .with_error_code(error_code)
            .with_error_message(Some(str_bytes(message)))
    };
    if key_type != 0 {
        return failed(
            key,
            INVALID_REQUEST,
            "only group coordinators (key type 0) exist; transactions are not supported yet".into(),
        );
    }
    let proto = v1::FindCoordinatorRequest {
        group_id: key.to_string(),
    };
    let found = crate::server::run(ctx, "FindCoordinator", &conn.principal(), proto, |body| {
        crate::group::find_coordinator::handle(&ctx.groups, body)
    })
    .await;
    match found {
        Ok(found) => {
            let record = ctx
                .sync
                .view()
                .read(|i| i.brokers.get(&found.coordinator_id).cloned());
            let (host, port) = match &record {
                Some(b) => kafka_endpoint(b),
                None => (found.host, found.port as i32),
            };
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(found.coordinator_id))
                .with_host(str_bytes(host))
                .with_port(port)
        }
        Err(e) => failed(key, code(&e), e.to_string()),
    }
}
