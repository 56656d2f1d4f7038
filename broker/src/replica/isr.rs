//! Writing a leader's ISR changes to the metadata store.
//!
//! Every ISR change is a compare-and-swap on the partition state: the
//! leader reads the state, checks it still leads at the epoch it proposed
//! under, and writes the new ISR only if nobody (the controller electing a
//! new leader, say) changed the state since. Only then does the partition
//! use the new ISR ([`Partition::isr_committed`]).

use std::sync::Arc;
use std::time::Duration;

use super::manager::ReplicaManager;
use super::partition::{IsrProposal, Partition};
use crate::Result;
use crate::meta::keys::Keys;
use crate::meta::records::{self, PartitionState};
use crate::meta::{Compare, MetadataStore, Op};

/// Writes ISR changes for the partitions this broker leads.
pub struct IsrWriter {
    store: Arc<dyn MetadataStore>,
    keys: Keys,
    broker_id: i32,
}

impl std::fmt::Debug for IsrWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsrWriter")
            .field("broker_id", &self.broker_id)
            .finish_non_exhaustive()
    }
}

impl IsrWriter {
    pub fn new(store: Arc<dyn MetadataStore>, keys: Keys, broker_id: i32) -> Self {
        IsrWriter {
            store,
            keys,
            broker_id,
        }
    }

    /// Write `proposal` for `part`, then tell the partition how it went.
    pub async fn write(&self, part: &Partition, proposal: IsrProposal) {
        let result = self.try_write(part, &proposal).await;
        match &result {
            Ok(Some(revision)) => {
                tracing::info!(tp = %part.tp, isr = ?proposal.isr, "ISR changed");
                part.isr_committed(Some((&proposal.isr, *revision)));
            }
            Ok(None) => part.isr_committed(None),
            Err(e) => {
                tracing::warn!(tp = %part.tp, isr = ?proposal.isr, error = %e, "writing ISR change failed; will retry");
                part.isr_committed(None);
            }
        }
    }

    /// `Ok(None)` when the state moved on (another leader, another ISR).
    async fn try_write(&self, part: &Partition, proposal: &IsrProposal) -> Result<Option<i64>> {
        let key = self.keys.partition_state(&part.tp.topic, part.tp.partition);
        let Some(current) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let mut state: PartitionState = records::decode(&key, &current.value)?;
        if state.leader != self.broker_id || state.leader_epoch != proposal.leader_epoch {
            return Ok(None);
        }
        if state.isr == proposal.isr {
            return Ok(Some(current.mod_revision));
        }
        state.isr = proposal.isr.clone();
        let outcome = self
            .store
            .txn(
                vec![Compare::ModRevision(key.clone(), current.mod_revision)],
                vec![Op::Put(key, records::encode(&state))],
            )
            .await?;
        Ok(outcome.succeeded.then_some(outcome.revision))
    }

    /// Every `interval`, shrink the ISR of led partitions whose followers
    /// lag more than `max_lag`, until the task is aborted.
    pub async fn run_shrinker(
        self: Arc<Self>,
        replicas: Arc<ReplicaManager>,
        interval: Duration,
        max_lag: Duration,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for part in replicas.hosted() {
                if let Some(proposal) = part.isr_shrink_proposal(max_lag) {
                    tracing::info!(tp = %part.tp, isr = ?proposal.isr, ?max_lag, "follower(s) fell behind; shrinking ISR");
                    self.write(&part, proposal).await;
                }
            }
        }
    }
}
