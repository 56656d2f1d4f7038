//! The reconcilers, one module per kind, each `reconcile(obj, ctx) ->
//! Result<Action>` plus `error_policy`, and [`run`] that drives them with
//! kube-runtime `Controller`s.
//!
//! - [`cluster`]: brokers, Services, config, PDB, managed etcd; safe rolls
//!   and scaling.
//! - [`topic`]: creates, alters and (through a finalizer) deletes topics on
//!   the brokers.
//! - [`consumer_group`]: reports a group's members and lag and applies
//!   one-shot offset resets.
//! - [`user`]: a principal's credentials (client certificate or token
//!   Secret) and ACLs.
//! - [`apply`]: server-side apply that skips unchanged objects.
//! - `shared`: what Topic and ConsumerGroup need (finding the Cluster,
//!   status writes, events).

pub mod apply;
pub mod cluster;
pub mod consumer_group;
mod shared;
pub mod topic;
pub mod user;

#[cfg(test)]
mod test_support;

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::Context;
use crate::crd::{Cluster, ConsumerGroup, Topic, User};

/// `Api` over one namespace, or all when `namespace` is `None`.
pub fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Run every controller until `shutdown` resolves. `namespace`: watch one
/// namespace, or all.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    // Only the StatefulSets this operator made wake a Cluster up.
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=runnel-operator");

    let clusters = Controller::new(
        api::<Cluster>(&client, ns),
        watcher::Config::default().any_semantic(),
    )
    .owns(api::<StatefulSet>(&client, ns), owned)
    // A User with a token changes the Cluster's token file.
    .watches(
        api::<User>(&client, ns),
        watcher::Config::default(),
        |user| {
            let namespace = user.namespace()?;
            Some(ObjectRef::<Cluster>::new(&user.spec.cluster).within(&namespace))
        },
    )
    .graceful_shutdown_on(shutdown.clone())
    .run(cluster::reconcile, cluster::error_policy, ctx.clone())
    .for_each(|result| async move { log_result("Cluster", result) });

    let topics = Controller::new(
        api::<Topic>(&client, ns),
        watcher::Config::default().any_semantic(),
    )
    .graceful_shutdown_on(shutdown.clone())
    .run(topic::reconcile, topic::error_policy, ctx.clone())
    .for_each(|result| async move { log_result("Topic", result) });

    let groups = Controller::new(
        api::<ConsumerGroup>(&client, ns),
        watcher::Config::default().any_semantic(),
    )
    .graceful_shutdown_on(shutdown.clone())
    .run(
        consumer_group::reconcile,
        consumer_group::error_policy,
        ctx.clone(),
    )
    .for_each(|result| async move { log_result("ConsumerGroup", result) });

    let users = Controller::new(
        api::<User>(&client, ns),
        watcher::Config::default().any_semantic(),
    )
    .graceful_shutdown_on(shutdown)
    .run(user::reconcile, user::error_policy, ctx)
    .for_each(|result| async move { log_result("User", result) });

    info!(namespace = ns.unwrap_or("<all>"), "controllers started");
    futures::join!(clusters, topics, groups, users);
}

fn log_result<T: std::fmt::Debug, E: std::fmt::Display>(kind: &str, result: Result<T, E>) {
    match result {
        Ok(object) => tracing::debug!(kind, ?object, "reconciled"),
        Err(error) => warn!(kind, %error, "reconcile error"),
    }
}
