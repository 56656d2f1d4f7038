//! InitProducerId: a producer id for an idempotent producer, from the
//! shared allocator. Transactional ids are refused until transactions exist.

use std::sync::Arc;

pub use kafka_protocol::messages::InitProducerIdRequest;
use kafka_protocol::messages::{InitProducerIdResponse, ProducerId};
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::code;

pub const VERSIONS: (i16, i16) = (0, 5);

pub async fn handle(
    conn: Arc<Conn>,
    _version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let ctx = &conn.ctx;
    let proto = v1::InitProducerIdRequest {
        transactional_id: req
            .transactional_id
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
    };
    match crate::server::run(ctx, "InitProducerId", &conn.principal(), proto, |body| {
        crate::server::init_producer_id::handle(ctx, body)
    })
    .await
    {
        Ok(r) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(r.producer_id))
            .with_producer_epoch(r.producer_epoch as i16),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(code(&e))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
