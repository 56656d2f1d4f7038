//! The `Topic` reconciler: makes the topic on the brokers match the spec,
//! and deletes it when the resource goes.
//!
//! One pass ([`reconcile`]) under [`TOPIC_FINALIZER`]:
//! 1. Conflict: if an older Topic claims the same topic on the same
//!    Cluster, this one reports `ResourceConflict` and touches nothing.
//! 2. Find the Cluster and connect to its brokers (`ClusterNotFound`,
//!    `ClusterUnavailable` otherwise).
//! 3. `converge`: create the topic, or grow its partitions, set and remove
//!    config overrides (reverting changes made outside Kubernetes), and move
//!    replicas when the replication factor changed. What the broker refuses
//!    (`InvalidConfig`, fewer partitions, more replicas than brokers) is
//!    reported and nothing is changed.
//! 4. Status by server-side apply, skipped when only times would change;
//!    Events for what was done. Requeue after the resync period.
//!
//! `cleanup` (the resource is being deleted) deletes the topic on the
//! brokers, unless another Topic owns it or the Cluster is gone.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, ResourceExt};
use runnel_client::{
    Admin, AlterTopic, ConfigEntry, ConfigSource, ErrorCode, MetadataResponse, TopicDescription,
};

use super::shared::{ClusterLookup, Events, RETRY_SOON, apply_status, find_cluster, namespace_of};
use crate::crd::condition;
use crate::crd::topic::{PartitionStatus, TOPIC_FINALIZER, Topic, TopicStatus};
use crate::{Context, Error, Result};

/// The `kind` label of this reconciler's metrics.
const KIND: &str = "Topic";

/// `Ready` condition reasons.
pub mod reason {
    pub const CREATED: &str = "Created";
    pub const UPDATED: &str = "Updated";
    /// Nothing needed doing this pass (a previous `True` reason is kept).
    pub const IN_SYNC: &str = "InSync";
    pub const REASSIGNING: &str = "Reassigning";
    pub const RESOURCE_CONFLICT: &str = "ResourceConflict";
    pub const CLUSTER_NOT_FOUND: &str = "ClusterNotFound";
    pub const CLUSTER_UNAVAILABLE: &str = "ClusterUnavailable";
    pub const NOT_SUPPORTED: &str = "NotSupported";
    pub const INVALID_CONFIG: &str = "InvalidConfig";
    pub const INVALID_REPLICATION_FACTOR: &str = "InvalidReplicationFactor";
}

/// Reconcile one Topic (add the finalizer first; clean up on deletion).
pub async fn reconcile(topic: Arc<Topic>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(KIND);
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &namespace_of(&*topic)?);
    let (ctx, api_ref) = (&ctx, &api);
    finalizer(&api, TOPIC_FINALIZER, topic, |event| async move {
        match event {
            FinalizerEvent::Apply(topic) => apply(&topic, ctx, api_ref).await,
            FinalizerEvent::Cleanup(topic) => cleanup(&topic, ctx, api_ref).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// A failed reconcile (a Kubernetes API error: broker trouble is reported
/// in status instead) is retried soon.
pub fn error_policy(topic: Arc<Topic>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(topic = %topic.name_any(), %error, "reconcile failed");
    ctx.metrics.failure(KIND, error);
    Action::requeue(RETRY_SOON)
}

/// What one pass found or did, for the `Ready` condition.
#[derive(Debug)]
struct Outcome {
    ready: bool,
    reason: &'static str,
    message: String,
    /// Placement read from the brokers; `None` keeps the last reported one
    /// (the brokers were not asked).
    partitions: Option<Vec<PartitionStatus>>,
}

impl Outcome {
    fn not_ready(reason: &'static str, message: impl Into<String>) -> Self {
        Outcome {
            ready: false,
            reason,
            message: message.into(),
            partitions: None,
        }
    }

    fn ready(reason: &'static str, message: impl Into<String>, topic: &TopicDescription) -> Self {
        Outcome {
            ready: true,
            reason,
            message: message.into(),
            partitions: Some(placement(topic)),
        }
    }

    fn with_placement(mut self, topic: &TopicDescription) -> Self {
        self.partitions = Some(placement(topic));
        self
    }

    /// Reassignments finish on their own: look again soon, not after the
    /// full resync period. The same for brokers that did not answer.
    fn requeue(&self, ctx: &Context) -> Action {
        match self.reason {
            reason::REASSIGNING | reason::CLUSTER_UNAVAILABLE => Action::requeue(RETRY_SOON),
            _ => Action::requeue(ctx.config.resync),
        }
    }
}

/// The Apply half of the finalizer: converge, then report.
async fn apply(topic: &Topic, ctx: &Context, api: &Api<Topic>) -> Result<Action> {
    let events = Events::new(ctx, topic);
    let outcome = sync(topic, ctx, api, &events).await?;
    let old = topic.status.clone().unwrap_or_default();
    let previous = condition::get(&old.conditions, "Ready");
    let is_new_problem = !outcome.ready
        && outcome.reason != reason::REASSIGNING
        && previous.is_none_or(|c| c.reason != outcome.reason);
    if is_new_problem {
        events.warning(outcome.reason, &outcome.message).await;
    }
    let status = next_status(topic, &old, &outcome);
    if !unchanged(&old, &status) {
        apply_status(api, topic, &status).await?;
    }
    Ok(outcome.requeue(ctx))
}

/// Everything up to the status: conflict, Cluster, brokers.
async fn sync(topic: &Topic, ctx: &Context, api: &Api<Topic>, events: &Events) -> Result<Outcome> {
    let name = topic.topic_name();
    let cluster_name = &topic.spec.cluster;
    if let Some(owner) = older_claimant(topic, api).await? {
        return Ok(Outcome::not_ready(
            reason::RESOURCE_CONFLICT,
            format!(
                "topic {name:?} on Cluster {cluster_name} is already managed by Topic {owner}; \
                 this Topic changes nothing until that one is deleted"
            ),
        ));
    }
    let namespace = namespace_of(topic)?;
    let cluster = match find_cluster(ctx, &namespace, cluster_name).await? {
        ClusterLookup::Found(cluster) => cluster,
        ClusterLookup::Missing => {
            return Ok(Outcome::not_ready(
                reason::CLUSTER_NOT_FOUND,
                format!("Cluster {cluster_name} not found in namespace {namespace}"),
            ));
        }
        ClusterLookup::Deleting => {
            return Ok(Outcome::not_ready(
                reason::CLUSTER_NOT_FOUND,
                format!("Cluster {cluster_name} is being deleted"),
            ));
        }
    };
    let unavailable = |error: Error| {
        ctx.metrics.failure(KIND, &error);
        Outcome::not_ready(reason::CLUSTER_UNAVAILABLE, error.to_string())
    };
    let admin = match ctx.connector.admin(&ctx.client, &cluster).await {
        Ok(admin) => admin,
        Err(error) => return Ok(unavailable(error)),
    };
    match converge(&admin, topic, &name, events).await {
        Ok(outcome) => Ok(outcome),
        Err(error) => Ok(match refusal(&error) {
            Some(reason) => Outcome::not_ready(reason, error.to_string()),
            None => unavailable(Error::Runnel {
                cluster: crate::context::cluster_key(&cluster),
                source: error,
            }),
        }),
    }
}

/// A broker error that is the spec's fault (nothing was changed: the
/// broker validates a whole request before it writes anything), as the
/// `Ready` reason to report.
fn refusal(error: &runnel_client::Error) -> Option<&'static str> {
    match error.code()? {
        ErrorCode::InvalidConfig => Some(reason::INVALID_CONFIG),
        ErrorCode::InvalidReplicationFactor | ErrorCode::InvalidReplicaAssignment => {
            Some(reason::INVALID_REPLICATION_FACTOR)
        }
        ErrorCode::InvalidPartitions | ErrorCode::InvalidTopic | ErrorCode::PolicyViolation => {
            Some(reason::NOT_SUPPORTED)
        }
        _ => None,
    }
}

/// Bring the topic on the brokers to the spec.
async fn converge(
    admin: &Admin,
    topic: &Topic,
    name: &str,
    events: &Events,
) -> runnel_client::Result<Outcome> {
    let spec = &topic.spec;
    let current = match admin.describe_topic(name).await {
        Ok(current) => current,
        Err(e) if e.code() == Some(ErrorCode::UnknownTopicOrPartition) => {
            return create(admin, topic, name, events).await;
        }
        Err(e) => return Err(e),
    };
    let have = current.partitions.len();
    let want_rf = replication_factor(topic);
    if (spec.partitions as usize) < have {
        return Ok(Outcome::not_ready(
            reason::NOT_SUPPORTED,
            format!(
                "spec.partitions is {} but the topic has {have} partitions: partitions can only \
                 be added (removing one would lose its records); nothing was changed",
                spec.partitions
            ),
        )
        .with_placement(&current));
    }
    let ongoing = admin.list_partition_reassignments(&[name]).await?;
    // Refuse an impossible replication factor before changing anything else.
    if ongoing.is_empty()
        && needs_moves(&current, want_rf)
        && let Some(problem) = too_few_brokers(&admin.metadata(&[]).await?, want_rf)
    {
        return Ok(
            Outcome::not_ready(reason::INVALID_REPLICATION_FACTOR, problem)
                .with_placement(&current),
        );
    }

    // No validate_only round first: the broker checks an AlterTopic as a
    // whole and writes it in one metadata transaction, so a refused
    // request (bad value, unknown key) has changed nothing.
    let mut changes = Vec::new();
    let after = match alter_for(&current, topic, name) {
        Some(alter) => {
            let after = admin.alter_topic(alter.clone()).await?;
            changes = describe_alter(&alter, have);
            for (reason, note) in &changes {
                events.normal(reason, note).await;
            }
            after
        }
        None => current,
    };

    if !ongoing.is_empty() {
        return Ok(Outcome::not_ready(
            reason::REASSIGNING,
            format!(
                "moving replicas of {} partition(s) to replication factor {want_rf}",
                ongoing.len()
            ),
        )
        .with_placement(&after));
    }
    if needs_moves(&after, want_rf) {
        return reassign(admin, &after, want_rf, events).await;
    }
    if changes.is_empty() {
        return Ok(Outcome::ready(
            reason::IN_SYNC,
            "the topic matches the spec",
            &after,
        ));
    }
    let notes: Vec<&str> = changes.iter().map(|(_, note)| note.as_str()).collect();
    Ok(Outcome::ready(reason::UPDATED, notes.join("; "), &after))
}

/// The topic does not exist yet: create it as specified.
async fn create(
    admin: &Admin,
    topic: &Topic,
    name: &str,
    events: &Events,
) -> runnel_client::Result<Outcome> {
    let spec = &topic.spec;
    let configs: Vec<(&str, &str)> = spec
        .config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // The CRD schema keeps both at 1 or more; 0 would mean "broker default".
    let partitions = spec.partitions.max(1) as u32;
    let created = admin
        .create_topic(name, partitions, replication_factor(topic) as u32, &configs)
        .await?;
    let message = format!(
        "created topic {name:?} with {partitions} partition(s), replication factor {}",
        created.replication_factor
    );
    events.normal(reason::CREATED, &message).await;
    Ok(Outcome::ready(reason::CREATED, message, &created))
}

fn replication_factor(topic: &Topic) -> usize {
    topic.spec.replication_factor.max(1) as usize
}

/// The AlterTopic that brings partitions and config overrides to the spec,
/// if anything differs.
fn alter_for(current: &TopicDescription, topic: &Topic, name: &str) -> Option<AlterTopic> {
    let mut alter = AlterTopic::new(name);
    let mut any = false;
    if topic.spec.partitions as usize > current.partitions.len() {
        alter = alter.partitions(topic.spec.partitions as u32);
        any = true;
    }
    let (set, delete) = config_changes(&current.configs, &topic.spec.config);
    for (key, value) in set {
        alter = alter.set_config(key, value);
        any = true;
    }
    for key in delete {
        alter = alter.delete_config(key);
        any = true;
    }
    any.then_some(alter)
}

/// Overrides to set (absent or different on the topic) and to remove (set
/// on the topic, e.g. by `runnel topic alter`, but not in the spec).
/// Values that come from broker or built-in defaults are not the topic's
/// and are never removed.
fn config_changes(
    current: &[ConfigEntry],
    wanted: &BTreeMap<String, String>,
) -> (Vec<(String, String)>, Vec<String>) {
    let overrides: BTreeMap<&str, &str> = current
        .iter()
        .filter(|e| e.source == ConfigSource::Topic as i32)
        .map(|e| (e.name.as_str(), e.value.as_str()))
        .collect();
    let set = wanted
        .iter()
        .filter(|(k, v)| overrides.get(k.as_str()) != Some(&v.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let delete = overrides
        .keys()
        .filter(|k| !wanted.contains_key(**k))
        .map(|k| (*k).to_owned())
        .collect();
    (set, delete)
}

/// Event reasons and notes for an AlterTopic that succeeded.
fn describe_alter(alter: &AlterTopic, had: usize) -> Vec<(&'static str, String)> {
    let request = alter.as_request();
    let mut changes = Vec::new();
    if request.partitions != 0 {
        changes.push((
            "PartitionsIncreased",
            format!("partitions {had} → {}", request.partitions),
        ));
    }
    let mut notes: Vec<String> = request
        .set_configs
        .iter()
        .map(|(k, v)| format!("set {k}={v}"))
        .collect();
    notes.sort();
    notes.extend(
        request
            .delete_configs
            .iter()
            .map(|k| format!("removed {k}")),
    );
    if !notes.is_empty() {
        changes.push(("ConfigChanged", format!("config: {}", notes.join(", "))));
    }
    changes
}

/// Whether some partition has a different number of replicas than `rf`.
fn needs_moves(topic: &TopicDescription, rf: usize) -> bool {
    topic.partitions.iter().any(|p| p.replicas.len() != rf)
}

/// Why `rf` copies cannot be placed, if they cannot.
fn too_few_brokers(metadata: &MetadataResponse, rf: usize) -> Option<String> {
    let live: Vec<i32> = metadata.brokers.iter().map(|b| b.id).collect();
    (rf > live.len()).then(|| {
        format!(
            "replication factor {rf} needs {rf} brokers but only {} are live ({live:?}); \
             nothing was changed",
            live.len()
        )
    })
}

/// Start moving replicas so every partition has `rf` copies.
async fn reassign(
    admin: &Admin,
    topic: &TopicDescription,
    rf: usize,
    events: &Events,
) -> runnel_client::Result<Outcome> {
    let metadata = admin.metadata(&[]).await?;
    if let Some(problem) = too_few_brokers(&metadata, rf) {
        return Ok(
            Outcome::not_ready(reason::INVALID_REPLICATION_FACTOR, problem).with_placement(topic),
        );
    }
    let moves = plan_moves(topic, rf, &metadata);
    let request: Vec<(&str, u32, Vec<i32>)> = moves
        .iter()
        .map(|(p, replicas)| (topic.name.as_str(), *p, replicas.clone()))
        .collect();
    admin.alter_partition_reassignments(&request).await?;
    let message = format!(
        "moving replicas of {} partition(s) to replication factor {rf}",
        moves.len()
    );
    events.normal("ReplicationFactorChanging", &message).await;
    Ok(Outcome::not_ready(reason::REASSIGNING, message).with_placement(topic))
}

/// New replica lists (preferred leader first) for the partitions whose
/// replica count is not `rf`.
fn plan_moves(
    topic: &TopicDescription,
    rf: usize,
    metadata: &MetadataResponse,
) -> Vec<(u32, Vec<i32>)> {
    // Replicas per live broker over every topic, so added copies go where
    // there are fewest; updated as copies are placed.
    let mut load: BTreeMap<i32, usize> = metadata.brokers.iter().map(|b| (b.id, 0)).collect();
    for partition in metadata.topics.iter().flat_map(|t| &t.partitions) {
        for replica in &partition.replicas {
            if let Some(n) = load.get_mut(replica) {
                *n += 1;
            }
        }
    }
    topic
        .partitions
        .iter()
        .filter(|p| p.replicas.len() != rf)
        .map(|p| (p.partition, resize(&p.replicas, p.leader, rf, &mut load)))
        .collect()
}

/// `replicas` grown or shrunk to `rf`. Shrinking drops replicas on brokers
/// that are gone first, then from the end, never the leader while another
/// can go (dropping the leader forces an election). Growing adds the live
/// brokers with the fewest replicas (lowest id on a tie).
fn resize(replicas: &[i32], leader: i32, rf: usize, load: &mut BTreeMap<i32, usize>) -> Vec<i32> {
    let mut target = replicas.to_vec();
    while target.len() > rf {
        let removable = |r: &i32| *r != leader;
        let pos = target
            .iter()
            .rposition(|r| removable(r) && !load.contains_key(r))
            .or_else(|| target.iter().rposition(removable))
            .unwrap_or(target.len() - 1);
        let removed = target.remove(pos);
        if let Some(n) = load.get_mut(&removed) {
            *n = n.saturating_sub(1);
        }
    }
    while target.len() < rf {
        let Some(next) = load
            .iter()
            .filter(|(b, _)| !target.contains(b))
            .min_by_key(|(b, n)| (**n, **b))
            .map(|(b, _)| *b)
        else {
            break;
        };
        target.push(next);
        *load.entry(next).or_default() += 1;
    }
    target
}

/// Leader, replicas and ISR of every partition.
fn placement(topic: &TopicDescription) -> Vec<PartitionStatus> {
    topic
        .partitions
        .iter()
        .map(|p| PartitionStatus {
            id: p.partition as i32,
            leader: p.leader,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
        })
        .collect()
}

/// The status this pass reports. A pass with nothing to do keeps an
/// earlier `Ready=True` reason (`Created`, `Updated`), so a quiet resync
/// writes nothing.
fn next_status(topic: &Topic, old: &TopicStatus, outcome: &Outcome) -> TopicStatus {
    let generation = topic.metadata.generation;
    let mut conditions = old.conditions.clone();
    let previous = condition::get(&old.conditions, "Ready").filter(|c| c.status == "True");
    let (reason, message) = match previous {
        Some(c) if outcome.reason == reason::IN_SYNC => (c.reason.clone(), c.message.clone()),
        _ => (outcome.reason.to_owned(), outcome.message.clone()),
    };
    condition::set(
        &mut conditions,
        "Ready",
        outcome.ready,
        &reason,
        message,
        generation,
    );
    TopicStatus {
        observed_generation: generation,
        conditions,
        topic_name: Some(topic.topic_name()),
        partitions: outcome
            .partitions
            .clone()
            .unwrap_or_else(|| old.partitions.clone()),
    }
}

/// Whether `new` says nothing `old` did not (times aside).
fn unchanged(old: &TopicStatus, new: &TopicStatus) -> bool {
    let without_conditions = |s: &TopicStatus| TopicStatus {
        conditions: Vec::new(),
        ..s.clone()
    };
    condition::same(&old.conditions, &new.conditions)
        && without_conditions(old) == without_conditions(new)
}

/// The name of an older Topic in the namespace that manages the same topic
/// on the same Cluster: that one owns it (creation time, then name, decide).
async fn older_claimant(topic: &Topic, api: &Api<Topic>) -> Result<Option<String>> {
    let name = topic.topic_name();
    let mine = (topic.creation_timestamp(), topic.name_any());
    let others = api.list(&ListParams::default()).await?;
    Ok(others
        .items
        .iter()
        .filter(|o| o.name_any() != mine.1)
        .filter(|o| o.spec.cluster == topic.spec.cluster && o.topic_name() == name)
        .filter(|o| (o.creation_timestamp(), o.name_any()) < mine)
        .map(ResourceExt::name_any)
        .min())
}

/// The Cleanup half of the finalizer: delete the topic on the brokers.
async fn cleanup(topic: &Topic, ctx: &Context, api: &Api<Topic>) -> Result<Action> {
    let name = topic.topic_name();
    if let Some(owner) = older_claimant(topic, api).await? {
        tracing::info!(topic = %name, %owner, "not deleting a topic another Topic manages");
        return Ok(Action::await_change());
    }
    let namespace = namespace_of(topic)?;
    let cluster = match find_cluster(ctx, &namespace, &topic.spec.cluster).await? {
        ClusterLookup::Found(cluster) => cluster,
        // The brokers are gone or going: nothing to delete, and waiting for
        // them would hang the namespace's deletion.
        ClusterLookup::Missing | ClusterLookup::Deleting => {
            tracing::info!(topic = %name, cluster = %topic.spec.cluster, "Cluster gone; releasing the Topic");
            return Ok(Action::await_change());
        }
    };
    let admin = ctx.connector.admin(&ctx.client, &cluster).await?;
    match admin.delete_topic(&name).await {
        Ok(()) => {
            Events::new(ctx, topic)
                .normal(
                    "Deleted",
                    format!("deleted topic {name:?} from the brokers"),
                )
                .await;
        }
        Err(e) if e.code() == Some(ErrorCode::UnknownTopicOrPartition) => {}
        Err(source) => {
            return Err(Error::Runnel {
                cluster: crate::context::cluster_key(&cluster),
                source,
            });
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests;
