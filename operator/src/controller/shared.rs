//! What the reconcilers of a Cluster's child resources (Topic,
//! ConsumerGroup) share: finding the Cluster, writing status by server-side
//! apply, and publishing Events.

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::FIELD_MANAGER;
use crate::crd::Cluster;
use crate::{Context, Error, Result};

/// How soon to look again when the brokers could not be reached or a change
/// is still in progress (a reassignment): sooner than the resync period,
/// because the next pass is likely to make progress.
pub const RETRY_SOON: Duration = Duration::from_secs(10);

/// Where a resource's `spec.cluster` stands.
pub enum ClusterLookup {
    Found(Box<Cluster>),
    /// No Cluster of that name in the namespace.
    Missing,
    /// The Cluster has a deletion timestamp: its brokers are going away.
    Deleting,
}

/// The Cluster `name` in `namespace`.
pub async fn find_cluster(ctx: &Context, namespace: &str, name: &str) -> Result<ClusterLookup> {
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(match api.get_opt(name).await? {
        None => ClusterLookup::Missing,
        Some(c) if c.metadata.deletion_timestamp.is_some() => ClusterLookup::Deleting,
        Some(c) => ClusterLookup::Found(Box::new(c)),
    })
}

/// The namespace of a namespaced object (the API server always sets it).
pub fn namespace_of(obj: &impl ResourceExt) -> Result<String> {
    obj.namespace()
        .ok_or(Error::MissingField("metadata.namespace"))
}

/// Replace the operator's part of `obj`'s status with `status` (server-side
/// apply, forced: the operator is the only writer of status).
pub async fn apply_status<K>(api: &Api<K>, obj: &K, status: &impl Serialize) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&obj.name_any(), &params, &Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// Publishes Kubernetes Events about one object.
///
/// Best effort: an Event that cannot be written (no RBAC for
/// `events.k8s.io`, API server busy) is logged, never a reason to fail a
/// reconcile whose real work succeeded.
pub struct Events {
    recorder: Recorder,
    reference: ObjectReference,
}

impl Events {
    pub fn new<K: Resource<DynamicType = ()>>(ctx: &Context, obj: &K) -> Self {
        Events {
            recorder: ctx.recorder.clone(),
            reference: obj.object_ref(&()),
        }
    }

    /// Something the operator did (`reason` like `Created`).
    pub async fn normal(&self, reason: &str, note: impl Into<String>) {
        self.publish(EventType::Normal, reason, note.into()).await;
    }

    /// Something the user should look at (`reason` like `InvalidConfig`).
    pub async fn warning(&self, reason: &str, note: impl Into<String>) {
        self.publish(EventType::Warning, reason, note.into()).await;
    }

    async fn publish(&self, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            // The Events API caps notes at 1 kB.
            note: Some(truncate(note, 1000)),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &self.reference).await {
            tracing::warn!(
                object = ?self.reference.name,
                reason,
                %error,
                "could not publish event"
            );
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_whole_characters() {
        assert_eq!(truncate("abc".into(), 10), "abc");
        assert_eq!(truncate("ééé".into(), 3), "é");
    }
}
