//! DeleteGroup: drop a group without members and its committed offsets.

use runnel_proto::v1::{DeleteGroupRequest, DeleteGroupResponse};

use super::{GroupCoordinator, offsets};
use crate::meta::{Compare, Op};
use crate::{Error, Result};

pub async fn handle(
    coord: &GroupCoordinator,
    req: DeleteGroupRequest,
) -> Result<DeleteGroupResponse> {
    let existed = !offsets::read_all(coord, &req.group_id).await?.is_empty();
    let entry = coord.entry(&req.group_id).await?;
    // Members of either protocol (Runnel's or Kafka's classic one).
    let members = entry.member_count();
    if members > 0 {
        return Err(Error::NonEmptyGroup {
            group: req.group_id.clone(),
            members,
        });
    }
    let keys = coord.keys();
    let outcome = coord
        .store()
        .txn(
            vec![Compare::ModRevision(
                keys.group_coordinator(&req.group_id),
                entry.claim_revision,
            )],
            vec![Op::DeletePrefix(keys.group(&req.group_id))],
        )
        .await
        .map_err(|e| e.for_group(&req.group_id))?;
    coord.forget(&req.group_id);
    if !outcome.succeeded {
        return Err(Error::NotCoordinator {
            group: req.group_id.clone(),
            reason: "its coordinator claim was lost".into(),
        });
    }
    if !existed {
        return Err(Error::GroupIdNotFound(req.group_id));
    }
    tracing::info!(group = %req.group_id, "deleted group");
    Ok(DeleteGroupResponse {})
}
