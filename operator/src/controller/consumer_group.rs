//! The `ConsumerGroup` reconciler: reports a group's state, members,
//! committed offsets and lag in status, and applies `spec.offsetReset` once
//! per `id`.
//!
//! The operator never creates or deletes a group (consumers create it by
//! joining), so there is no finalizer: deleting the resource leaves the
//! group and its offsets alone. A group nobody has used yet is what the
//! coordinator says it is: `Empty`, no members, no offsets.
//!
//! A reset runs only while the group has no members (the broker refuses it
//! otherwise, and a running consumer would overwrite the offsets with its
//! next commit anyway): with members it is recorded as `GroupActive` and
//! retried on the next passes until the consumers stop. An `id` that was
//! applied or failed is never run again.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use runnel_client::{Admin, ErrorCode, GroupDescription, Offset};

use super::shared::{ClusterLookup, Events, RETRY_SOON, apply_status, find_cluster, namespace_of};
use crate::crd::condition;
use crate::crd::consumer_group::{
    ConsumerGroup, ConsumerGroupStatus, ExplicitOffset, GroupMember, OffsetReset, PartitionOffset,
    ResetResult, ResetTarget,
};
use crate::{Context, Error, Result};

/// The `kind` label of this reconciler's metrics.
const KIND: &str = "ConsumerGroup";

/// Condition reasons and `lastReset.result` values.
pub mod reason {
    /// `Ready=True`: the coordinator described the group.
    pub const OBSERVED: &str = "Observed";
    pub const CLUSTER_NOT_FOUND: &str = "ClusterNotFound";
    pub const CLUSTER_UNAVAILABLE: &str = "ClusterUnavailable";
    /// `ResetApplied=True` / `lastReset.result`.
    pub const APPLIED: &str = "Applied";
    /// The group had members; the reset is retried.
    pub const GROUP_ACTIVE: &str = "GroupActive";
    /// The broker refused the reset (unknown topic, bad timestamp…); the
    /// same id is not tried again.
    pub const FAILED: &str = "Failed";
}

/// Reconcile one ConsumerGroup: refresh its status, run a pending reset.
pub async fn reconcile(group: Arc<ConsumerGroup>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(KIND);
    let api: Api<ConsumerGroup> = Api::namespaced(ctx.client.clone(), &namespace_of(&*group)?);
    let events = Events::new(&ctx, &*group);
    let old = group.status.clone().unwrap_or_default();
    let mut status = ConsumerGroupStatus {
        observed_generation: group.metadata.generation,
        ..old.clone()
    };
    let ready = observe(&group, &ctx, &mut status, &events).await?;
    let previous = condition::get(&old.conditions, "Ready");
    if !ready.ready && previous.is_none_or(|c| c.reason != ready.reason) {
        events.warning(ready.reason, &ready.message).await;
    }
    condition::set(
        &mut status.conditions,
        "Ready",
        ready.ready,
        ready.reason,
        ready.message,
        group.metadata.generation,
    );
    if !unchanged(&old, &status) {
        apply_status(&api, &*group, &status).await?;
    }
    let waiting = !ready.ready || pending_reset(&group, &status).is_some();
    Ok(Action::requeue(if waiting {
        RETRY_SOON
    } else {
        ctx.config.resync
    }))
}

/// A failed reconcile (a Kubernetes API error) is retried soon.
pub fn error_policy(group: Arc<ConsumerGroup>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(group = %group.name_any(), %error, "reconcile failed");
    ctx.metrics.failure(KIND, error);
    Action::requeue(RETRY_SOON)
}

/// The `Ready` condition of one pass.
struct Ready {
    ready: bool,
    reason: &'static str,
    message: String,
}

impl Ready {
    fn not(reason: &'static str, message: impl Into<String>) -> Self {
        Ready {
            ready: false,
            reason,
            message: message.into(),
        }
    }
}

/// Ask the coordinator about the group, run a pending reset, and fill
/// `status` in. Without a Cluster or brokers the last known figures stay.
async fn observe(
    group: &ConsumerGroup,
    ctx: &Context,
    status: &mut ConsumerGroupStatus,
    events: &Events,
) -> Result<Ready> {
    let namespace = namespace_of(group)?;
    let cluster_name = &group.spec.cluster;
    let cluster = match find_cluster(ctx, &namespace, cluster_name).await? {
        ClusterLookup::Found(cluster) => cluster,
        ClusterLookup::Missing => {
            return Ok(Ready::not(
                reason::CLUSTER_NOT_FOUND,
                format!("Cluster {cluster_name} not found in namespace {namespace}"),
            ));
        }
        ClusterLookup::Deleting => {
            return Ok(Ready::not(
                reason::CLUSTER_NOT_FOUND,
                format!("Cluster {cluster_name} is being deleted"),
            ));
        }
    };
    let unavailable = |error: Error| {
        ctx.metrics.failure(KIND, &error);
        Ready::not(reason::CLUSTER_UNAVAILABLE, error.to_string())
    };
    let runnel = |source| Error::Runnel {
        cluster: crate::context::cluster_key(&cluster),
        source,
    };
    let admin = match ctx.connector.admin(&ctx.client, &cluster).await {
        Ok(admin) => admin,
        Err(error) => return Ok(unavailable(error)),
    };
    let group_id = &group.spec.group_id;
    let mut described = match admin.describe_group(group_id).await {
        Ok(described) => described,
        Err(error) => return Ok(unavailable(runnel(error))),
    };
    if let Some(reset) = pending_reset(group, status) {
        match run_reset(&admin, group_id, reset, &described).await {
            Err(error) => return Ok(unavailable(runnel(error))),
            Ok(result) => {
                record_reset(group, status, result, events).await;
                // The offsets just moved: report them, not the old ones.
                match admin.describe_group(group_id).await {
                    Ok(after) => described = after,
                    Err(error) => return Ok(unavailable(runnel(error))),
                }
            }
        }
    }
    fill(status, &described);
    Ok(Ready {
        ready: true,
        reason: reason::OBSERVED,
        message: "the group coordinator described the group".into(),
    })
}

/// The reset to run now: a new `id`, or one refused earlier because the
/// group was active.
fn pending_reset<'a>(
    group: &'a ConsumerGroup,
    status: &ConsumerGroupStatus,
) -> Option<&'a OffsetReset> {
    let reset = group.spec.offset_reset.as_ref()?;
    match &status.last_reset {
        Some(last) if last.id == reset.id && last.result != reason::GROUP_ACTIVE => None,
        _ => Some(reset),
    }
}

/// Run `reset` unless the group has members. `Err` only for trouble
/// reaching the brokers (try again); refusals are results.
async fn run_reset(
    admin: &Admin,
    group_id: &str,
    reset: &OffsetReset,
    described: &GroupDescription,
) -> runnel_client::Result<ResetResult> {
    let members = described.described.members.len();
    let result = |result: &str, message: String| ResetResult {
        id: reset.id.clone(),
        result: result.to_owned(),
        message,
        offsets: Vec::new(),
    };
    if members > 0 {
        return Ok(result(
            reason::GROUP_ACTIVE,
            format!("the group has {members} member(s); stop its consumers and the reset runs"),
        ));
    }
    match reset_offsets(admin, group_id, reset).await {
        Ok(rows) => Ok(ResetResult {
            offsets: rows
                .into_iter()
                .map(|(topic, partition, offset)| ExplicitOffset {
                    topic,
                    partition: partition as i32,
                    offset,
                })
                .collect(),
            ..result(reason::APPLIED, format!("offsets reset to {:?}", reset.to))
        }),
        // A consumer joined since the describe: the broker refused.
        Err(ResetError::Broker(e)) if e.code() == Some(ErrorCode::NonEmptyGroup) => {
            Ok(result(reason::GROUP_ACTIVE, e.to_string()))
        }
        Err(ResetError::Broker(e)) if e.is_retriable() => Err(e),
        Err(ResetError::Broker(e)) => Ok(result(reason::FAILED, e.to_string())),
        Err(ResetError::Spec(message)) => Ok(result(reason::FAILED, message)),
    }
}

/// Why a reset did not happen.
enum ResetError {
    /// The spec cannot be carried out as written.
    Spec(String),
    Broker(runnel_client::Error),
}

impl From<runnel_client::Error> for ResetError {
    fn from(e: runnel_client::Error) -> Self {
        ResetError::Broker(e)
    }
}

/// Move the committed offsets; returns `(topic, partition, offset)` rows
/// written. For earliest/latest/timestamp the broker works the offsets of
/// each topic out first (dry run), then all are written in one request, so
/// a reset of several topics happens entirely or not at all.
async fn reset_offsets(
    admin: &Admin,
    group_id: &str,
    reset: &OffsetReset,
) -> Result<Vec<(String, u32, i64)>, ResetError> {
    let to = match reset.to {
        ResetTarget::Earliest => Offset::Earliest,
        ResetTarget::Latest => Offset::Latest,
        ResetTarget::Timestamp => Offset::Timestamp(timestamp_ms(reset.timestamp.as_deref())?),
        ResetTarget::Offsets => {
            let rows: Vec<(String, u32, i64)> = reset
                .offsets
                .iter()
                .map(|o| (o.topic.clone(), o.partition.max(0) as u32, o.offset))
                .collect();
            admin.reset_group_offsets(group_id, &rows).await?;
            return Ok(rows);
        }
    };
    let mut rows = Vec::new();
    for topic in &reset.topics {
        rows.extend(
            admin
                .reset_group_offsets_to(group_id, topic, None, to, true)
                .await?,
        );
    }
    admin.reset_group_offsets(group_id, &rows).await?;
    Ok(rows)
}

/// RFC 3339 → milliseconds since the Unix epoch.
fn timestamp_ms(timestamp: Option<&str>) -> Result<i64, ResetError> {
    let text =
        timestamp.ok_or_else(|| ResetError::Spec("to: timestamp needs a timestamp".into()))?;
    text.parse::<Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| ResetError::Spec(format!("timestamp {text:?} is not RFC 3339: {e}")))
}

/// Record a reset's outcome in status and announce it.
async fn record_reset(
    group: &ConsumerGroup,
    status: &mut ConsumerGroupStatus,
    result: ResetResult,
    events: &Events,
) {
    let applied = result.result == reason::APPLIED;
    let repeated = status
        .last_reset
        .as_ref()
        .is_some_and(|last| last.id == result.id && last.result == result.result);
    let reason = match result.result.as_str() {
        reason::APPLIED => reason::APPLIED,
        reason::GROUP_ACTIVE => reason::GROUP_ACTIVE,
        _ => reason::FAILED,
    };
    let note = format!("reset {}: {}", result.id, result.message);
    match (applied, repeated) {
        (true, _) => events.normal(reason, &note).await,
        // One warning per refusal, not one per retry.
        (false, false) => events.warning(reason, &note).await,
        (false, true) => {}
    }
    condition::set(
        &mut status.conditions,
        "ResetApplied",
        applied,
        reason,
        note,
        group.metadata.generation,
    );
    status.last_reset = Some(result);
}

/// Copy what the coordinator said into `status`.
fn fill(status: &mut ConsumerGroupStatus, group: &GroupDescription) {
    let described = &group.described;
    status.state = Some(described.state.clone());
    status.member_count = described.members.len() as i32;
    status.members = described
        .members
        .iter()
        .map(|m| GroupMember {
            member_id: m.member_id.clone(),
            client_id: m.client_id.clone(),
            // The coordinator does not record members' addresses.
            host: String::new(),
            assignment: m
                .assignment
                .iter()
                .flat_map(|t| t.partitions.iter().map(move |p| format!("{}-{p}", t.topic)))
                .collect(),
        })
        .collect();
    status.offsets = group
        .lag
        .iter()
        .map(|l| PartitionOffset {
            topic: l.topic.clone(),
            partition: l.partition as i32,
            committed_offset: l.committed,
            log_end_offset: l.end_offset,
            lag: l.lag,
        })
        .collect();
    // -1 means "leader did not answer"; it is not negative lag.
    status.total_lag = group.lag.iter().map(|l| l.lag.max(0)).sum();
}

/// Whether `new` says nothing `old` did not (times aside).
fn unchanged(old: &ConsumerGroupStatus, new: &ConsumerGroupStatus) -> bool {
    let without_conditions = |s: &ConsumerGroupStatus| ConsumerGroupStatus {
        conditions: Vec::new(),
        ..s.clone()
    };
    condition::same(&old.conditions, &new.conditions)
        && without_conditions(old) == without_conditions(new)
}

#[cfg(test)]
mod tests;
