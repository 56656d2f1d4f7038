//! ResetGroupOffsets: overwrite committed offsets of a group without
//! members (the client turns earliest/latest/a time into offsets first, as
//! Kafka's tool does).

use runnel_proto::v1::{ResetGroupOffsetsRequest, ResetGroupOffsetsResponse};

use super::{GroupCoordinator, offsets};
use crate::{Error, Result};

pub async fn handle(
    coord: &GroupCoordinator,
    req: ResetGroupOffsetsRequest,
) -> Result<ResetGroupOffsetsResponse> {
    let rows = offsets::validate(coord, &req.topics)?;
    let entry = coord.entry(&req.group_id).await?;
    {
        let state = entry.state.lock();
        if !state.members.is_empty() {
            return Err(Error::NonEmptyGroup {
                group: req.group_id.clone(),
                members: state.members.len(),
            });
        }
    }
    offsets::write(coord, &req.group_id, &entry, -1, rows).await?;
    tracing::info!(group = %req.group_id, "reset group offsets");
    Ok(ResetGroupOffsetsResponse {})
}
