//! The Cluster reconciler: applies the objects [`crate::manifests`] builds,
//! scales safely (scale-in drains brokers through reassignments before the
//! StatefulSet shrinks; scale-out optionally rebalances), rolls broker pods
//! one at a time when that cannot hurt availability ([`roll`]), and reports
//! status from what the brokers say ([`view`]).
//!
//! Children are garbage-collected through owner references when the Cluster
//! goes, so there is no finalizer; volume claims follow
//! `spec.storage.deleteClaim` through the StatefulSet's retention policy.

pub mod roll;
pub mod scale;
pub mod security;
#[cfg(test)]
mod tests;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use runnel_client::Admin;
use runnel_proto::v1::ConfigSource;
use tracing::{info, warn};

use self::roll::{BrokerPod, RollStep};
use self::scale::Move;
use self::view::ClusterView;
use super::shared::{Events, apply_status};
use crate::context::Context;
use crate::crd::condition;
use crate::crd::{Cluster, ClusterStatus};
use crate::manifests::{self, names};
use crate::{Error, Result};

/// How soon to look again while something is in motion (a roll, a drain).
const BUSY_REQUEUE: Duration = Duration::from_secs(5);

/// Label Kubernetes puts on StatefulSet pods with their ordinal (= broker id).
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// What this reconcile decided about scaling, for status.
#[derive(Debug, Default)]
struct ScaleOutcome {
    /// Replicas to give the StatefulSet now.
    statefulset_replicas: i32,
    /// Brokers being emptied for a scale-in.
    draining: Vec<i32>,
    /// Why the cluster is not at its desired size yet, if it is not.
    waiting: Option<(String, String)>,
    /// A scale-in that cannot proceed (reason, message).
    blocked: Option<(String, String)>,
}

pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile("Cluster");
    let namespace = cluster
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    if cluster.meta().deletion_timestamp.is_some() {
        // Owner references delete the children; forget the cached client.
        ctx.connector.forget(&cluster).await;
        return Ok(Action::await_change());
    }
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let current = statefulsets.get_opt(&names::statefulset(&cluster)).await?;
    let current_replicas = current
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas);

    // The brokers' own view, when they answer (not yet, on creation).
    let admin = match current {
        Some(_) => ctx.connector.admin(&ctx.client, &cluster).await.ok(),
        None => None,
    };
    let view = match &admin {
        Some(admin) => match ClusterView::fetch(admin).await {
            Ok(view) => Some(view),
            Err(error) => {
                warn!(cluster = %cluster.name_any(), %error, "cannot read cluster state from the brokers");
                None
            }
        },
        None => None,
    };

    let scale = plan_scale(&cluster, current_replicas, view.as_ref(), admin.as_ref()).await?;

    let desired = manifests::desired_with_replicas(
        &cluster,
        scale.statefulset_replicas,
        &ctx.config.broker_image,
    )
    .and_then(|desired| desired.manifests());
    let objects: Vec<serde_json::Value> = match desired {
        Ok(manifests) => manifests.into_iter().map(|m| m.object).collect(),
        Err(Error::InvalidSpec(message)) => {
            return report_invalid(&ctx, &cluster, view.as_ref(), "InvalidSpec", message).await;
        }
        Err(e) => return Err(e),
    };
    // Secrets first: broker pods mount the certificate and token file.
    let secrets = security::secrets(&ctx.client, &cluster, SystemTime::now()).await?;
    for (reason, note) in &secrets.done {
        info!(cluster = %cluster.name_any(), reason, note, "security");
        Events::new(&ctx, &*cluster)
            .normal(reason, note.clone())
            .await;
    }
    let mut secret_objects = Vec::new();
    for secret in secrets.secrets {
        let mut object = serde_json::to_value(&secret)?;
        object["apiVersion"] = "v1".into();
        object["kind"] = "Secret".into();
        secret_objects.push(object);
    }
    let mut written = super::apply::apply_all(&ctx.client, &namespace, secret_objects).await?;
    match super::apply::apply_all(&ctx.client, &namespace, objects).await {
        Ok(more) => written.extend(more),
        // The API server does not serve cert-manager's Certificate kind.
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 && uses_cert_manager(&cluster) => {
            let message = format!(
                "spec.security.tls.certificates.issuer is CertManager but the API server does not serve \
                 cert-manager.io/v1 Certificate ({}): install cert-manager or use issuer: Operator",
                e.message
            );
            return report_invalid(&ctx, &cluster, view.as_ref(), "CertManagerMissing", message)
                .await;
        }
        Err(e) => return Err(e),
    }
    if !written.is_empty() {
        info!(cluster = %cluster.name_any(), ?written, "applied");
    }

    // Dynamic settings go to the brokers live (they need no restart and
    // are not in the pod template), once the brokers answer.
    if let (Some(admin), Some(_)) = (&admin, &view) {
        let changed = sync_dynamic_config(&cluster, admin).await?;
        if !changed.is_empty() {
            info!(cluster = %cluster.name_any(), ?changed, "applied dynamic broker config");
            Events::new(&ctx, &*cluster)
                .normal(
                    "ConfigApplied",
                    format!("applied live, no restart: {}", changed.join(", ")),
                )
                .await;
        }
    }

    let roll = roll_step(&ctx, &cluster, &namespace, view.as_ref()).await?;
    if let RollStep::Restart(id) = &roll {
        let pod = names::broker_pod(&cluster, *id);
        Api::<Pod>::namespaced(ctx.client.clone(), &namespace)
            .delete(&pod, &DeleteParams::default())
            .await?;
        info!(cluster = %cluster.name_any(), broker = id, "restarting broker for the new revision");
        Events::new(&ctx, &*cluster)
            .normal(
                "RollingRestart",
                format!("restarting broker {id} ({pod}) to apply a new pod template"),
            )
            .await;
    }

    let status = status(&ctx, &cluster, &namespace, view.as_ref(), &scale, &roll).await?;
    let busy = !matches!(roll, RollStep::Done) || scale.waiting.is_some();
    patch_status(&ctx, &cluster, status).await?;
    Ok(Action::requeue(if busy {
        BUSY_REQUEUE
    } else {
        ctx.config.resync
    }))
}

/// Report a spec the operator cannot carry out (`Ready=False` with
/// `reason`, and a warning Event); look again after the resync period.
async fn report_invalid(
    ctx: &Context,
    cluster: &Cluster,
    view: Option<&ClusterView>,
    reason: &str,
    message: String,
) -> Result<Action> {
    let mut status = base_status(cluster, view);
    condition::set(
        &mut status.conditions,
        "Ready",
        false,
        reason,
        &message,
        cluster.meta().generation,
    );
    patch_status(ctx, cluster, status).await?;
    Events::new(ctx, cluster).warning(reason, message).await;
    Ok(Action::requeue(ctx.config.resync))
}

fn uses_cert_manager(cluster: &Cluster) -> bool {
    cluster
        .spec
        .tls()
        .is_some_and(|t| t.certificates.issuer == crate::crd::security::Issuer::CertManager)
}

pub fn error_policy(cluster: Arc<Cluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure("Cluster", error);
    warn!(cluster = %cluster.name_any(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(15))
}

/// Decide the StatefulSet's replica count, starting drains and rebalances.
async fn plan_scale(
    cluster: &Cluster,
    current: Option<i32>,
    view: Option<&ClusterView>,
    admin: Option<&Admin>,
) -> Result<ScaleOutcome> {
    let desired = cluster.spec.replicas;
    let Some(current) = current else {
        return Ok(ScaleOutcome {
            statefulset_replicas: desired,
            ..ScaleOutcome::default()
        });
    };
    if desired >= current {
        let mut outcome = ScaleOutcome {
            statefulset_replicas: desired,
            ..ScaleOutcome::default()
        };
        if cluster.spec.rebalance_on_scale_out
            && let (Some(view), Some(admin)) = (view, admin)
        {
            let brokers: BTreeSet<i32> = (0..desired).collect();
            let all_registered = brokers.iter().all(|b| view.brokers.contains(b));
            if all_registered && view.reassigning.is_empty() {
                let moves = scale::rebalance(view, &brokers);
                if !moves.is_empty() {
                    reassign(cluster, admin, &moves).await?;
                    outcome.waiting = Some((
                        "Rebalancing".into(),
                        format!(
                            "moving {} partition(s) to spread replicas over {desired} brokers",
                            moves.len()
                        ),
                    ));
                }
            } else if !view.reassigning.is_empty() {
                outcome.waiting = Some((
                    "Rebalancing".into(),
                    format!(
                        "{} partition reassignment(s) in progress",
                        view.reassigning.len()
                    ),
                ));
            }
        }
        return Ok(outcome);
    }
    // Scale-in: keep the pods until the brokers going away hold nothing.
    let removing: BTreeSet<i32> = (desired..current).collect();
    let remaining: BTreeSet<i32> = (0..desired).collect();
    let mut outcome = ScaleOutcome {
        statefulset_replicas: current,
        draining: removing.iter().copied().collect(),
        ..ScaleOutcome::default()
    };
    let (Some(view), Some(admin)) = (view, admin) else {
        outcome.waiting = Some((
            "ScaleInWaiting".into(),
            "cannot reach the brokers to move replicas off the brokers being removed".into(),
        ));
        return Ok(outcome);
    };
    let held: usize = removing.iter().map(|b| view.replicas_on(*b)).sum();
    if held == 0 && view.reassigning.is_empty() {
        outcome.statefulset_replicas = desired;
        outcome.draining.clear();
        return Ok(outcome);
    }
    if !view.reassigning.is_empty() {
        outcome.waiting = Some((
            "ScaleInWaiting".into(),
            format!(
                "broker(s) {} still hold {held} replica(s); {} reassignment(s) in progress",
                list(&removing),
                view.reassigning.len()
            ),
        ));
        return Ok(outcome);
    }
    match scale::drain(view, &removing, &remaining) {
        Ok(moves) => {
            reassign(cluster, admin, &moves).await?;
            outcome.waiting = Some((
                "ScaleInWaiting".into(),
                format!(
                    "moving {held} replica(s) off broker(s) {} before removing them",
                    list(&removing)
                ),
            ));
        }
        Err(message) => {
            outcome.blocked = Some(("ScaleInBlocked".into(), message));
        }
    }
    Ok(outcome)
}

/// Make the brokers' dynamic cluster-wide defaults exactly the dynamic part
/// of `spec.config`: set what differs and remove what the spec does not
/// have, so a change made with `runnel cluster config alter` is reverted.
/// Returns what changed (`key=value`, `-key` for a removal).
async fn sync_dynamic_config(cluster: &Cluster, admin: &Admin) -> Result<Vec<String>> {
    let runnel = |source| Error::Runnel {
        cluster: crate::context::cluster_key(cluster),
        source,
    };
    let wanted = manifests::config::dynamic_config(cluster);
    let current: BTreeMap<String, String> = admin
        .describe_cluster_configs()
        .await
        .map_err(runnel)?
        .into_iter()
        .filter(|e| e.source == ConfigSource::DynamicDefault as i32)
        .map(|e| (e.name, e.value))
        .collect();
    let set: BTreeMap<String, String> = wanted
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let delete: Vec<String> = current
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    if set.is_empty() && delete.is_empty() {
        return Ok(Vec::new());
    }
    admin
        .alter_cluster_configs(&set, &delete, false)
        .await
        .map_err(runnel)?;
    Ok(set
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .chain(delete.iter().map(|k| format!("-{k}")))
        .collect())
}

async fn reassign(cluster: &Cluster, admin: &Admin, moves: &[Move]) -> Result<()> {
    let reassignments: Vec<(&str, u32, Vec<i32>)> = moves
        .iter()
        .map(|m| (m.topic.as_str(), m.partition, m.replicas.clone()))
        .collect();
    admin
        .alter_partition_reassignments(&reassignments)
        .await
        .map_err(|source| Error::Runnel {
            cluster: crate::context::cluster_key(cluster),
            source,
        })?;
    info!(cluster = %cluster.name_any(), moves = moves.len(), "started partition reassignments");
    Ok(())
}

/// Broker pods and whether each runs the StatefulSet's current revision.
async fn roll_step(
    ctx: &Context,
    cluster: &Cluster,
    namespace: &str,
    view: Option<&ClusterView>,
) -> Result<RollStep> {
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(update_revision) = statefulsets
        .get_opt(&names::statefulset(cluster))
        .await?
        .and_then(|s| s.status)
        .and_then(|s| s.update_revision)
    else {
        return Ok(RollStep::Done);
    };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let listed = pods
        .list(&ListParams::default().labels(&names::broker_selector(cluster)))
        .await?;
    let pods: Vec<BrokerPod> = listed
        .items
        .iter()
        .filter_map(|pod| broker_pod(pod, &update_revision))
        .collect();
    Ok(roll::next_step(&pods, view))
}

fn broker_pod(pod: &Pod, update_revision: &str) -> Option<BrokerPod> {
    let labels = pod.metadata.labels.as_ref()?;
    let id = labels
        .get(POD_INDEX_LABEL)
        .and_then(|i| i.parse().ok())
        .or_else(|| pod.name_any().rsplit('-').next()?.parse().ok())?;
    let revision = labels.get("controller-revision-hash").map(String::as_str);
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Some(BrokerPod {
        id,
        outdated: revision != Some(update_revision),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    })
}

fn base_status(cluster: &Cluster, view: Option<&ClusterView>) -> ClusterStatus {
    let mut status = cluster.status.clone().unwrap_or_default();
    status.observed_generation = cluster.meta().generation;
    status.selector = Some(names::broker_selector(cluster));
    status.bootstrap = Some(names::client_bootstrap(cluster));
    status.kafka_bootstrap = names::kafka_bootstrap(cluster);
    status.kafka_security_protocol = cluster.spec.kafka_security_protocol().map(str::to_owned);
    if let Some(view) = view {
        status.controller = view.controller;
        status.under_replicated_partitions = view.under_replicated() as i32;
        status.offline_partitions = view.offline() as i32;
    }
    status
}

async fn status(
    ctx: &Context,
    cluster: &Cluster,
    namespace: &str,
    view: Option<&ClusterView>,
    scale: &ScaleOutcome,
    roll: &RollStep,
) -> Result<ClusterStatus> {
    let generation = cluster.meta().generation;
    let mut status = base_status(cluster, view);
    let statefulset = Api::<StatefulSet>::namespaced(ctx.client.clone(), namespace)
        .get_opt(&names::statefulset(cluster))
        .await?;
    let sts_status = statefulset.and_then(|s| s.status);
    status.replicas = sts_status.as_ref().map_or(0, |s| s.replicas);
    status.ready_brokers = sts_status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    status.draining_brokers = scale.draining.clone();
    let desired = cluster.spec.replicas;
    let conditions = &mut status.conditions;

    // Progressing: a roll, a drain, a rebalance or brokers still starting.
    let progressing = match (roll, &scale.waiting) {
        (RollStep::Restart(id), _) => Some((
            "RollingRestart".to_owned(),
            format!("restarting broker {id}"),
        )),
        (RollStep::Wait(why), _) => Some(("RollingRestartWaiting".to_owned(), why.clone())),
        (_, Some((reason, message))) => Some((reason.clone(), message.clone())),
        _ if status.ready_brokers < desired => Some((
            "BrokersStarting".to_owned(),
            format!("{} of {desired} brokers ready", status.ready_brokers),
        )),
        _ => None,
    };
    match &progressing {
        Some((reason, message)) => {
            condition::set(conditions, "Progressing", true, reason, message, generation)
        }
        None => condition::set(
            conditions,
            "Progressing",
            false,
            "Reconciled",
            "",
            generation,
        ),
    }

    // Degraded: data at risk or a scale-in that cannot go on.
    let degraded = if let Some((reason, message)) = &scale.blocked {
        Some((reason.clone(), message.clone()))
    } else if status.offline_partitions > 0 {
        Some((
            "OfflinePartitions".into(),
            format!("{} partition(s) have no leader", status.offline_partitions),
        ))
    } else if status.under_replicated_partitions > 0 {
        Some((
            "UnderReplicated".into(),
            format!(
                "{} partition(s) are under-replicated",
                status.under_replicated_partitions
            ),
        ))
    } else {
        None
    };
    match &degraded {
        Some((reason, message)) => {
            condition::set(conditions, "Degraded", true, reason, message, generation)
        }
        None => condition::set(conditions, "Degraded", false, "Healthy", "", generation),
    }

    let reachable = view.is_some();
    let (ready, reason, message) = if !reachable {
        (
            false,
            "BrokersUnreachable",
            format!("no answer from {}", names::client_bootstrap(cluster)),
        )
    } else if status.ready_brokers < desired {
        (
            false,
            "BrokersNotReady",
            format!("{} of {desired} brokers ready", status.ready_brokers),
        )
    } else if status.offline_partitions > 0 {
        (
            false,
            "OfflinePartitions",
            format!("{} partition(s) have no leader", status.offline_partitions),
        )
    } else {
        (
            true,
            "Ready",
            format!(
                "{desired} brokers ready; bootstrap {}",
                names::client_bootstrap(cluster)
            ),
        )
    };
    condition::set(conditions, "Ready", ready, reason, message, generation);
    Ok(status)
}

/// Server-side apply of the status subresource, skipped when nothing but
/// condition times would change.
async fn patch_status(ctx: &Context, cluster: &Cluster, status: ClusterStatus) -> Result<()> {
    if let Some(old) = &cluster.status {
        let mut a = old.clone();
        let mut b = status.clone();
        let same_conditions = condition::same(&a.conditions, &b.conditions);
        a.conditions.clear();
        b.conditions.clear();
        if same_conditions && a == b {
            return Ok(());
        }
    }
    let namespace = cluster
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &namespace);
    apply_status(&api, cluster, &status).await
}

fn list(ids: &BTreeSet<i32>) -> String {
    ids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
