//! OffsetCommit: store offsets, fenced by member id and generation.

use runnel_proto::v1::{OffsetCommitRequest, OffsetCommitResponse};

use super::{GroupCoordinator, offsets};
use crate::Result;

pub async fn handle(
    coord: &GroupCoordinator,
    req: OffsetCommitRequest,
) -> Result<OffsetCommitResponse> {
    let rows = offsets::validate(coord, &req.topics)?;
    let entry = coord.entry(&req.group_id).await?;
    entry
        .state
        .lock()
        .check_commit(&req.member_id, req.generation)?;
    offsets::write(coord, &req.group_id, &entry, req.generation, rows).await?;
    Ok(OffsetCommitResponse {})
}
