//! Controller election and the active controller's loop.
//!
//! Every broker campaigns: one transaction creates `controller` under the
//! broker's own lease, only if no controller exists, and bumps
//! `controller_epoch`. The winner acts until its `controller` key goes
//! (its lease expired or was revoked); then everyone campaigns again.
//! Every write the controller makes is conditional on its `controller` key
//! still having the revision it created it at, so a deposed controller that
//! has not noticed yet cannot change anything (epoch fencing through the
//! store, rather than through a number each reader must check).

use std::sync::Arc;
use std::time::Duration;

use super::leaders::{self, PartitionChange};
use crate::Result;
use crate::cluster::ClusterView;
use crate::meta::keys::Keys;
use crate::meta::records::{self, ControllerEpoch, ControllerRecord, VERSION};
use crate::meta::registration::Registration;
use crate::meta::{Compare, MetadataStore, Op};
use crate::topic::{SharedDefaults, TopicConfig};

/// Controller knobs (Kafka names).
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// `auto.leader.rebalance.enable`: move leadership back to preferred
    /// replicas once they are in sync again.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, as a duration.
    pub leader_imbalance_check_interval: Duration,
    /// Topic config defaults (for `unclean.leader.election.enable`): the
    /// replica manager's live ones, so a dynamic default counts here too.
    pub defaults: SharedDefaults,
}

/// Campaigns for controller and, when elected, keeps leadership right.
pub struct Controller {
    store: Arc<dyn MetadataStore>,
    keys: Keys,
    view: Arc<ClusterView>,
    registration: Arc<Registration>,
    broker_id: i32,
    settings: ControllerSettings,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("broker_id", &self.broker_id)
            .finish_non_exhaustive()
    }
}

/// Proof of election: the revision our `controller` key was created at.
#[derive(Debug, Clone, Copy)]
struct Term {
    epoch: i64,
    revision: i64,
}

impl Controller {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        keys: Keys,
        view: Arc<ClusterView>,
        registration: Arc<Registration>,
        broker_id: i32,
        settings: ControllerSettings,
    ) -> Self {
        Controller {
            store,
            keys,
            view,
            registration,
            broker_id,
            settings,
        }
    }

    /// Campaign and control until the task is aborted.
    pub async fn run(self) {
        let mut changes = self.view.subscribe();
        loop {
            match self.campaign().await {
                Ok(Some(term)) => {
                    tracing::info!(
                        broker_id = self.broker_id,
                        epoch = term.epoch,
                        "elected controller"
                    );
                    self.act(term).await;
                    tracing::warn!(
                        broker_id = self.broker_id,
                        epoch = term.epoch,
                        "no longer controller"
                    );
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "controller campaign failed"),
            }
            // Someone else leads (or the store is unreachable): wait for a
            // change, and re-check now and then in case the view is stale.
            changes.borrow_and_update();
            let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
        }
    }

    /// One attempt to become controller.
    async fn campaign(&self) -> Result<Option<Term>> {
        if !self.registration.is_registered() || self.view.controller_id() >= 0 {
            return Ok(None);
        }
        let epoch_key = self.keys.controller_epoch();
        let (epoch, epoch_revision) = match self.store.get(&epoch_key).await? {
            Some(kv) => (
                records::decode::<ControllerEpoch>(&kv.key, &kv.value)?.epoch,
                kv.mod_revision,
            ),
            None => (0, 0),
        };
        let epoch = epoch + 1;
        let key = self.keys.controller();
        let outcome = self
            .store
            .txn(
                vec![
                    Compare::ModRevision(key.clone(), 0),
                    Compare::ModRevision(epoch_key.clone(), epoch_revision),
                ],
                vec![
                    Op::PutWithLease(
                        key,
                        records::encode(&ControllerRecord {
                            version: VERSION,
                            broker_id: self.broker_id,
                            epoch,
                        }),
                        self.registration.lease(),
                    ),
                    Op::Put(
                        epoch_key,
                        records::encode(&ControllerEpoch {
                            version: VERSION,
                            epoch,
                        }),
                    ),
                ],
            )
            .await?;
        Ok(outcome.succeeded.then_some(Term {
            epoch,
            revision: outcome.revision,
        }))
    }

    /// Still controller, as far as the view knows? `seen`: the view has
    /// shown our own `controller` key (until then its absence is lag).
    fn holds(&self, term: Term, seen: &mut bool) -> bool {
        let ours = self.view.read(|i| match &i.controller {
            Some(c) if c.revision == term.revision => {
                *seen = true;
                true
            }
            Some(c) => c.revision < term.revision,
            None => !*seen,
        });
        ours && self.registration.is_registered()
    }

    /// Reconcile on every change and on the preferred-leader tick, while
    /// this broker is controller.
    async fn act(&self, term: Term) {
        let mut changes = self.view.subscribe();
        let mut rebalance = tokio::time::interval(self.settings.leader_imbalance_check_interval);
        rebalance.tick().await;
        let mut preferred = false;
        let mut seen = false;
        while self.holds(term, &mut seen) {
            changes.borrow_and_update();
            match self.reconcile(term, preferred).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "controller write failed; retrying"),
            }
            preferred = false;
            tokio::select! {
                _ = changes.changed() => {}
                _ = rebalance.tick() => preferred = self.settings.auto_leader_rebalance,
                // Catch-up for writes that lost a race with a stale view.
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    /// Write what [`leaders::plan_reassignments`] and [`leaders::plan`]
    /// say; `Ok(false)` once deposed.
    async fn reconcile(&self, term: Term, preferred: bool) -> Result<bool> {
        let image = self.view.snapshot();
        for done in leaders::plan_reassignments(&image) {
            if !self.complete_reassignment(term, &done).await? {
                // Something moved; the next pass sees it.
                return self.still_controller(term).await;
            }
        }
        let defaults = &self.settings.defaults.get();
        let planned = leaders::plan(&image, preferred, |topic| {
            image
                .topics
                .get(topic)
                .and_then(|t| TopicConfig::resolve(&t.value.configs, defaults).ok())
                .is_some_and(|c| c.unclean_leader_election())
        });
        for change in planned {
            if !self.write(term, &change).await? && !self.still_controller(term).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// After a refused write: deposed, or did the state just move?
    async fn still_controller(&self, term: Term) -> Result<bool> {
        let current = self.store.get(&self.keys.controller()).await?;
        Ok(current.is_some_and(|kv| kv.mod_revision == term.revision))
    }

    /// Switch a topic's assignment and the affected partition states in
    /// one transaction.
    async fn complete_reassignment(
        &self,
        term: Term,
        done: &leaders::ReassignmentDone,
    ) -> Result<bool> {
        let topic_key = self.keys.topic(&done.topic);
        let mut compares = vec![
            Compare::ModRevision(self.keys.controller(), term.revision),
            Compare::ModRevision(topic_key.clone(), done.revision),
        ];
        let mut ops = vec![Op::Put(topic_key, records::encode(&done.record))];
        for change in &done.states {
            let key = self.keys.partition_state(&change.topic, change.partition);
            compares.push(Compare::ModRevision(key.clone(), change.revision));
            ops.push(Op::Put(key, records::encode(&change.state)));
        }
        let outcome = self.store.txn(compares, ops).await?;
        if outcome.succeeded {
            tracing::info!(topic = %done.topic, assignment = ?done.record.assignment, "partition reassignment complete");
        }
        Ok(outcome.succeeded)
    }

    async fn write(&self, term: Term, change: &PartitionChange) -> Result<bool> {
        let key = self.keys.partition_state(&change.topic, change.partition);
        let outcome = self
            .store
            .txn(
                vec![
                    Compare::ModRevision(self.keys.controller(), term.revision),
                    Compare::ModRevision(key.clone(), change.revision),
                ],
                vec![Op::Put(key, records::encode(&change.state))],
            )
            .await?;
        if outcome.succeeded {
            tracing::info!(
                topic = %change.topic, partition = change.partition, leader = change.state.leader,
                leader_epoch = change.state.leader_epoch, isr = ?change.state.isr, reason = change.reason,
                "partition state changed"
            );
        }
        Ok(outcome.succeeded)
    }
}
