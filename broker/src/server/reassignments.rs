//! AlterPartitionReassignments and ListPartitionReassignments.

use runnel_proto::v1::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, OngoingReassignment,
};

use super::Context;
use crate::Result;
use crate::topic::validate_topic_name;

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
    let states = if req.topics.is_empty() {
        ctx.replicas.topics()
    } else {
        let mut states = Vec::with_capacity(req.topics.len());
        for name in &req.topics {
            validate_topic_name(name)?;
            states.push(ctx.replicas.topic(name)?);
        }
        states
    };
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
