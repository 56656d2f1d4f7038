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

/// After an unclean shutdown (a crash, `kill -9`, power loss) a replica may
/// have lost the tail of its log: writes acknowledged by every in-sync
/// replica sit in page caches, not necessarily on disk, and recovery cuts a
/// torn batch. If it then stayed in the ISR — and above all if it led on at
/// the same epoch — the others would truncate to its shorter log and lose
/// acknowledged records. The controller cannot always tell it restarted: it
/// only sees registrations, and one cut off from etcd while the broker was
/// down sees it registered again as if it had never gone. So, as Kafka's
/// KIP-966 has an uncleanly stopped broker leave every ISR when it
/// registers, this broker, before it takes any partition on, removes itself
/// from the ISR of every partition where others are in sync, and gives up
/// leading them (leader -1, epoch + 1: the controller elects one of the
/// others). It rejoins as a follower once caught up. A partition whose ISR
/// is this broker alone keeps it: no replica is known to have more.
///
/// Returns the partitions changed.
pub async fn leave_isrs_after_unclean_shutdown(
    store: &dyn MetadataStore,
    keys: &Keys,
    broker_id: i32,
) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    for kv in store.range(&keys.topics_prefix()).await? {
        if !kv.key.ends_with("/state") {
            continue;
        }
        let mut current = kv;
        // A compare-and-swap that loses to another writer (the controller,
        // a leader's ISR change) reads the state again and decides anew.
        loop {
            let mut state: PartitionState = records::decode(&current.key, &current.value)?;
            let Some(new) = without(&state, broker_id) else {
                break;
            };
            state = new;
            let outcome = store
                .txn(
                    vec![Compare::ModRevision(
                        current.key.clone(),
                        current.mod_revision,
                    )],
                    vec![Op::Put(current.key.clone(), records::encode(&state))],
                )
                .await?;
            if outcome.succeeded {
                changed.push(current.key.clone());
                break;
            }
            match store.get(&current.key).await? {
                Some(kv) => current = kv,
                None => break,
            }
        }
    }
    Ok(changed)
}

/// `state` without `broker_id` in its ISR (and not led by it), or `None`
/// when nothing changes: it is not in the ISR, or is the ISR alone.
fn without(state: &PartitionState, broker_id: i32) -> Option<PartitionState> {
    if !state.isr.contains(&broker_id) || state.isr.len() < 2 {
        return None;
    }
    let mut new = state.clone();
    new.isr.retain(|&r| r != broker_id);
    if new.leader == broker_id {
        new.leader = super::NO_LEADER;
        new.leader_epoch += 1;
    }
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(leader: i32, epoch: i32, isr: &[i32]) -> PartitionState {
        PartitionState {
            version: records::VERSION,
            leader,
            leader_epoch: epoch,
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn an_uncleanly_stopped_replica_leaves_the_isr_and_its_leadership() {
        // It led: the others take over at a new epoch.
        assert_eq!(
            without(&state(1, 43, &[1, 2, 3]), 1),
            Some(state(super::super::NO_LEADER, 44, &[2, 3]))
        );
        // A follower: only the ISR changes.
        assert_eq!(
            without(&state(2, 7, &[1, 2, 3]), 3),
            Some(state(2, 7, &[1, 2]))
        );
        // Not in the ISR, or the only one in it: nothing to do.
        assert_eq!(without(&state(2, 7, &[2, 3]), 1), None);
        assert_eq!(without(&state(1, 7, &[1]), 1), None);
    }
}
