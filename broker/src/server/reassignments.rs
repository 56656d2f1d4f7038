//! AlterPartitionReassignments and ListPartitionReassignments.

use runnel_proto::v1::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, OngoingReassignment,
};

use super::Context;
use crate::Result;

pub(crate) async fn alter(
    ctx: &Context,
    req: AlterPartitionReassignmentsRequest,
) -> Result<AlterPartitionReassignmentsResponse> {
    ctx.topics.alter_reassignments(&req.reassignments).await?;
    Ok(AlterPartitionReassignmentsResponse {})
}

pub(crate) async fn list(
    ctx: &Context,
    req: ListPartitionReassignmentsRequest,
) -> Result<ListPartitionReassignmentsResponse> {
    let states = ctx.replicas.topics_named(&req.topics)?;
    let mut reassignments = Vec::new();
    for state in states {
        for (&p, r) in &state.record.reassignments {
            reassignments.push(OngoingReassignment {
                topic: state.name.clone(),
                partition: p,
                replicas: state.record.assignment[p as usize].clone(),
                adding: r
                    .target
                    .iter()
                    .copied()
                    .filter(|b| !r.original.contains(b))
                    .collect(),
                removing: r
                    .original
                    .iter()
                    .copied()
                    .filter(|b| !r.target.contains(b))
                    .collect(),
            });
        }
    }
    Ok(ListPartitionReassignmentsResponse { reassignments })
}
