//! FindCoordinator: which broker coordinates a group (claiming it for this
//! broker when nobody does).

use runnel_proto::v1::{FindCoordinatorRequest, FindCoordinatorResponse};

use super::{GroupCoordinator, validate_group_id};
use crate::{Error, Result};

pub async fn handle(
    coord: &GroupCoordinator,
    req: FindCoordinatorRequest,
) -> Result<FindCoordinatorResponse> {
    validate_group_id(&req.group_id)?;
    let broker = match coord.holder(&req.group_id).await? {
        Some((broker, _, _)) => broker,
        None => coord
            .entry(&req.group_id)
            .await
            .map(|_| coord.broker_id())?,
    };
    let record = coord
        .view()
        .read(|i| i.brokers.get(&broker).cloned())
        .ok_or_else(|| Error::NotCoordinator {
            group: req.group_id.clone(),
            reason: format!("its coordinator, broker {broker}, is not live; retry shortly"),
        })?;
    Ok(FindCoordinatorResponse {
        coordinator_id: broker,
        host: record.host,
        port: u32::from(record.port),
    })
}
