//! Leader election through a `coordination.k8s.io/v1` Lease, so two or more
//! operator replicas can run and exactly one reconciles. The Lease holds the
//! leader's identity and last renewal; a replica takes it over only once it
//! has not been renewed for `leaseDurationSeconds`. Every write carries the
//! Lease's `resourceVersion`, so two replicas racing for it cannot both win
//! (the loser gets 409 Conflict).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::{Client, Error as KubeError};

use crate::Result;

/// One replica's view of the election.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// Elect through Lease `name` in `namespace`, as `identity` (the pod name).
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration,
        }
    }

    /// How long a Lease lives without renewal.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// Take or renew the Lease; `true` when this replica leads afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let now = Timestamp::now();
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return lost_race_is_false(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let acquired = spec.acquire_time.as_ref().map(|t| t.0).unwrap_or(now);
        let next = if holder == self.identity {
            self.spec(acquired, now, transitions)
        } else if holder.is_empty() || expired(&spec, now) {
            self.spec(now, now, transitions + 1)
        } else {
            return Ok(false);
        };
        let mut updated = lease;
        updated.spec = Some(next);
        // `replace` sends the resourceVersion read above: a concurrent
        // writer makes this fail with 409 instead of both leading.
        lost_race_is_false(
            self.api
                .replace(&self.name, &PostParams::default(), &updated)
                .await,
        )
    }

    /// Give the Lease up on shutdown so another replica need not wait for
    /// it to expire.
    pub async fn release(&self) -> Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        lost_race_is_false(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
        .map(|_| ())
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.lease_duration.as_secs().max(1) as i32),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().map(|t| t.0) else {
        return true;
    };
    let duration = SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(15).into());
    renewed + duration < now
}

/// 409 (someone else wrote the Lease first) means "not leader", not an error.
fn lost_race_is_false<T>(result: Result<T, KubeError>) -> Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(KubeError::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::MockApi;
    use http::Method;
    use serde_json::json;

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/runnel-operator";

    fn elector(client: Client, identity: &str) -> LeaderElector {
        LeaderElector::new(
            client,
            "ops",
            "runnel-operator",
            identity,
            Duration::from_secs(15),
        )
    }

    fn lease(holder: &str, renewed: Timestamp) -> serde_json::Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "runnel-operator", "namespace": "ops", "resourceVersion": "7"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                     "renewTime": MicroTime(renewed), "acquireTime": MicroTime(renewed),
                     "leaseTransitions": 2}
        })
    }

    #[tokio::test]
    async fn creates_the_lease_when_there_is_none() {
        let (client, mut api) = MockApi::new();
        let task = tokio::spawn(async move { elector(client, "a").try_acquire_or_renew().await });
        api.expect(Method::GET, PATH).await.not_found();
        let create = api
            .expect(
                Method::POST,
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases",
            )
            .await;
        assert_eq!(create.body["spec"]["holderIdentity"], "a");
        assert_eq!(create.body["spec"]["leaseDurationSeconds"], 15);
        create.echo();
        assert!(task.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn renews_its_own_lease_with_the_read_resource_version() {
        let (client, mut api) = MockApi::new();
        let task = tokio::spawn(async move { elector(client, "a").try_acquire_or_renew().await });
        api.expect(Method::GET, PATH)
            .await
            .ok(lease("a", Timestamp::now()));
        let put = api.expect(Method::PUT, PATH).await;
        assert_eq!(put.body["metadata"]["resourceVersion"], "7");
        assert_eq!(put.body["spec"]["holderIdentity"], "a");
        assert_eq!(put.body["spec"]["leaseTransitions"], 2);
        put.echo();
        assert!(task.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn leaves_a_live_lease_of_another_replica_alone() {
        let (client, mut api) = MockApi::new();
        let task = tokio::spawn(async move { elector(client, "b").try_acquire_or_renew().await });
        api.expect(Method::GET, PATH)
            .await
            .ok(lease("a", Timestamp::now()));
        assert!(!task.await.unwrap().unwrap());
        api.expect_silence(100).await;
    }

    #[tokio::test]
    async fn takes_over_an_expired_lease_and_loses_a_race_gracefully() {
        let stale = Timestamp::now() - SignedDuration::from_secs(60);
        let (client, mut api) = MockApi::new();
        let elector = elector(client, "b");
        let e = elector.clone();
        let task = tokio::spawn(async move { e.try_acquire_or_renew().await });
        api.expect(Method::GET, PATH).await.ok(lease("a", stale));
        let put = api.expect(Method::PUT, PATH).await;
        assert_eq!(put.body["spec"]["holderIdentity"], "b");
        assert_eq!(put.body["spec"]["leaseTransitions"], 3);
        put.echo();
        assert!(task.await.unwrap().unwrap());

        let task = tokio::spawn(async move { elector.try_acquire_or_renew().await });
        api.expect(Method::GET, PATH).await.ok(lease("a", stale));
        api.expect(Method::PUT, PATH).await.conflict();
        assert!(!task.await.unwrap().unwrap());
    }
}
