//! OffsetFetch: committed offsets, read from the metadata store (any broker
//! can answer: commits are in the store before they are acknowledged).

use runnel_proto::v1::{CommittedOffset, OffsetFetchRequest, OffsetFetchResponse};

use super::{GroupCoordinator, offsets, validate_group_id};
use crate::Result;

pub async fn handle(
    coord: &GroupCoordinator,
    req: OffsetFetchRequest,
) -> Result<OffsetFetchResponse> {
    validate_group_id(&req.group_id)?;
    let committed = offsets::read_all(coord, &req.group_id).await?;
    if req.partitions.is_empty() {
        return Ok(OffsetFetchResponse {
            offsets: offsets::to_wire(&committed),
        });
    }
    let mut out = Vec::new();
    for t in &req.partitions {
        for &p in &t.partitions {
            let found = committed.get(&(t.topic.clone(), p));
            out.push(CommittedOffset {
                topic: t.topic.clone(),
                partition: p,
                offset: found.map_or(-1, |r| r.offset),
                metadata: found.map(|r| r.metadata.clone()).unwrap_or_default(),
            });
        }
    }
    Ok(OffsetFetchResponse { offsets: out })
}
