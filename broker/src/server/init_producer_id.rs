//! InitProducerId: a cluster-unique producer id for an idempotent producer.

use runnel_proto::v1::{InitProducerIdRequest, InitProducerIdResponse};

use super::Context;
use crate::{Error, Result};

pub(crate) async fn handle(
    ctx: &Context,
    req: InitProducerIdRequest,
) -> Result<InitProducerIdResponse> {
    if !req.transactional_id.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "transactional id {:?} given, but transactions are not supported yet; \
             leave it empty for an idempotent producer",
            req.transactional_id
        )));
    }
    let producer_id = ctx.producer_ids.next_id().await?;
    tracing::debug!(producer_id, "allocated producer id");
    Ok(InitProducerIdResponse {
        producer_id,
        producer_epoch: 0,
    })
}
