//! Consumer groups: the broker-side coordinator.
//!
//! Each group has one coordinator broker at a time: the broker holding
//! `groups/<g>/coordinator` under its own lease (claimed by whichever broker
//! a client asks first while nobody holds it). The coordinator keeps the
//! membership in memory ([`state::GroupState`]); committed offsets live in
//! the metadata store, so when a coordinator dies its lease takes the key
//! with it, the next broker asked claims the group, members join again and
//! consumption resumes from the committed offsets.
//!
//! A group speaks one of two protocols at a time, sharing the coordinator
//! claim ([`GroupCoordinator::entry`]) and the committed-offset store:
//! - Runnel's own, heartbeat-driven with broker-side assignment
//!   ([`state::GroupState`]): `join`, `heartbeat`, `leave`.
//! - Kafka's classic protocol, for Kafka clients through the Kafka front end
//!   ([`classic::ClassicGroup`], client-side assignment): `classic_join`,
//!   `classic_sync`, `classic_heartbeat`, `classic_leave`,
//!   `classic_describe` (with Kafka's ListGroups view).
//!
//! One file per operation (the above, and `find_coordinator`,
//! `offset_commit`, `offset_fetch`, `list`, `describe`, `delete`,
//! `reset_offsets`); [`assignor`] holds the assignment strategies and
//! [`offsets`] the store side of committed offsets. Start with this file,
//! then `state.rs` or `classic.rs`.

pub mod assignor;
pub mod classic;
pub mod classic_describe;
pub mod classic_heartbeat;
pub mod classic_join;
pub mod classic_leave;
pub mod classic_sync;
pub mod delete;
pub mod describe;
pub mod find_coordinator;
pub mod heartbeat;
pub mod join;
pub mod leave;
pub mod list;
pub mod lookup;
pub mod offset_commit;
pub mod offset_fetch;
pub mod offsets;
pub mod reset_offsets;
pub mod state;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use runnel_proto::v1::TopicPartitions;

use self::assignor::TopicPartition;
use self::classic::{Classic, INITIAL_REBALANCE_DELAY};
use self::state::GroupState;
use crate::cluster::ClusterView;
use crate::meta::keys::Keys;
use crate::meta::records::{self, GroupCoordinatorRecord, VERSION};
use crate::meta::registration::Registration;
use crate::meta::{Compare, LeaseId, MetadataStore, Op};
use crate::replica::ReplicaManager;
use crate::{Error, Result};

/// Kafka's `session.timeout.ms` default.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// Kafka's `heartbeat.interval.ms` default; shorter for short sessions.
pub const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
/// How often silent members are looked for.
const REAPER_INTERVAL: Duration = Duration::from_millis(100);

/// A group this broker coordinates. It holds both protocols' state; at
/// most one has members at a time (each protocol's JoinGroup refuses while
/// the other's members exist). Lock order: `state`, then `classic`.
#[derive(Debug)]
pub struct GroupEntry {
    /// Runnel's own protocol.
    pub state: Mutex<GroupState>,
    /// Kafka's classic protocol, with its parked requests.
    pub classic: Mutex<Classic>,
    /// The lease our `coordinator` key is under; a new registration lease
    /// means the key (and so the group) was lost.
    lease: LeaseId,
    /// Revision of our `coordinator` key: offset writes compare it, so a
    /// deposed coordinator cannot commit.
    claim_revision: i64,
}

impl GroupEntry {
    fn new(group: &str, lease: LeaseId, claim_revision: i64, initial_delay: Duration) -> Self {
        GroupEntry {
            state: Mutex::new(GroupState::new(group)),
            classic: Mutex::new(Classic::new(group, initial_delay)),
            lease,
            claim_revision,
        }
    }

    /// Members in either protocol.
    pub fn member_count(&self) -> usize {
        let runnel = self.state.lock().members.len();
        runnel + self.classic.lock().group.member_count()
    }

    /// May this committer commit? The classic group's rules while it has
    /// members, else Runnel's (which also cover a group with no members).
    pub fn check_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
    ) -> Result<()> {
        let state = self.state.lock();
        let classic = self.classic.lock();
        if classic.group.member_count() > 0 {
            classic
                .group
                .check_commit(member_id, group_instance_id, generation)
        } else {
            state.check_commit(member_id, generation)
        }
    }

    /// What the reaper does for one group: expire silent members of either
    /// protocol and act on the classic group's deadlines. Returns who went.
    pub fn tick(
        &self,
        now: Instant,
        classic_now: tokio::time::Instant,
        counts: state::PartitionCounts<'_>,
    ) -> Vec<String> {
        let mut gone = self.state.lock().expire(now, counts);
        gone.extend(self.classic.lock().tick(classic_now));
        gone
    }
}

/// The coordinator side of every group this broker coordinates.
pub struct GroupCoordinator {
    store: Arc<dyn MetadataStore>,
    keys: Keys,
    broker_id: i32,
    registration: Arc<Registration>,
    view: Arc<ClusterView>,
    replicas: Arc<ReplicaManager>,
    groups: Mutex<HashMap<String, Arc<GroupEntry>>>,
    /// `group.initial.rebalance.delay.ms` for classic groups.
    initial_rebalance_delay: Duration,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("broker_id", &self.broker_id)
            .finish_non_exhaustive()
    }
}

/// Kafka allows almost any group id; ours become etcd key segments.
pub fn validate_group_id(group: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidGroupId {
            group: group.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if group.is_empty() {
        return bad("it is empty");
    }
    if group.len() > 249 {
        return bad("it is longer than 249 characters");
    }
    if group.contains('/') || group.chars().any(char::is_control) {
        return bad("it contains '/' or a control character");
    }
    Ok(())
}

impl GroupCoordinator {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        keys: Keys,
        broker_id: i32,
        registration: Arc<Registration>,
        view: Arc<ClusterView>,
        replicas: Arc<ReplicaManager>,
    ) -> Self {
        GroupCoordinator {
            store,
            keys,
            broker_id,
            registration,
            view,
            replicas,
            groups: Mutex::new(HashMap::new()),
            initial_rebalance_delay: INITIAL_REBALANCE_DELAY,
        }
    }

    /// Set `group.initial.rebalance.delay.ms` for classic groups (default
    /// [`INITIAL_REBALANCE_DELAY`]; tests use shorter ones, zero disables).
    pub fn with_initial_rebalance_delay(mut self, delay: Duration) -> Self {
        self.initial_rebalance_delay = delay;
        self
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    pub fn view(&self) -> &Arc<ClusterView> {
        &self.view
    }

    pub fn broker_id(&self) -> i32 {
        self.broker_id
    }

    /// Partition count of `topic` if it exists.
    pub fn partition_count(&self, topic: &str) -> Option<u32> {
        self.replicas
            .topic(topic)
            .ok()
            .map(|t| t.record.partitions())
    }

    /// The leader of `topic`-`partition` as this broker last heard.
    pub fn leader_of(&self, topic: &str, partition: u32) -> Option<i32> {
        self.replicas
            .topic(topic)
            .ok()?
            .partition_state(partition)
            .map(|s| s.leader)
    }

    /// The group if this broker coordinates it, claiming it when nobody
    /// does; else `NotCoordinator` naming who does.
    pub async fn entry(&self, group: &str) -> Result<Arc<GroupEntry>> {
        validate_group_id(group)?;
        let not_coordinator = |reason: String| Error::NotCoordinator {
            group: group.to_owned(),
            reason,
        };
        if !self.registration.is_registered() {
            return Err(not_coordinator(
                "this broker cannot reach the metadata store".into(),
            ));
        }
        let lease = self.registration.lease();
        if let Some(e) = self.groups.lock().get(group).filter(|e| e.lease == lease) {
            return Ok(e.clone());
        }
        match self.holder(group).await? {
            Some((broker, revision, held_lease))
                if broker == self.broker_id && held_lease == Some(lease) =>
            {
                Ok(self.remember(group, lease, revision))
            }
            Some((broker, _, _)) => Err(not_coordinator(format!("broker {broker} coordinates it"))),
            None => match self.claim(group, lease).await? {
                Some(revision) => Ok(self.remember(group, lease, revision)),
                None => Err(not_coordinator("another broker just claimed it".into())),
            },
        }
    }

    /// Who holds `groups/<g>/coordinator`: (broker, revision, lease).
    pub async fn holder(&self, group: &str) -> Result<Option<(i32, i64, Option<LeaseId>)>> {
        let key = self.keys.group_coordinator(group);
        Ok(
            match self.store.get(&key).await.map_err(|e| e.for_group(group))? {
                Some(kv) => {
                    let record: GroupCoordinatorRecord = records::decode(&kv.key, &kv.value)?;
                    Some((record.broker_id, kv.mod_revision, kv.lease))
                }
                None => None,
            },
        )
    }

    /// Create `groups/<g>/coordinator` under our lease if absent.
    pub async fn claim(&self, group: &str, lease: LeaseId) -> Result<Option<i64>> {
        let key = self.keys.group_coordinator(group);
        let record = GroupCoordinatorRecord {
            version: VERSION,
            broker_id: self.broker_id,
        };
        let outcome = self
            .store
            .txn(
                vec![Compare::ModRevision(key.clone(), 0)],
                vec![Op::PutWithLease(key, records::encode(&record), lease)],
            )
            .await
            .map_err(|e| e.for_group(group))?;
        if outcome.succeeded {
            tracing::info!(group, broker_id = self.broker_id, "coordinating group");
        }
        Ok(outcome.succeeded.then_some(outcome.revision))
    }

    fn remember(&self, group: &str, lease: LeaseId, claim_revision: i64) -> Arc<GroupEntry> {
        let delay = self.initial_rebalance_delay;
        let fresh = || Arc::new(GroupEntry::new(group, lease, claim_revision, delay));
        let mut groups = self.groups.lock();
        let entry = groups
            .entry(group.to_owned())
            .and_modify(|e| {
                if e.lease != lease {
                    kill(e, "this broker lost its claim on the group");
                    *e = fresh();
                }
            })
            .or_insert_with(fresh);
        entry.clone()
    }

    /// Forget a group (deleted, or its claim was lost).
    pub fn forget(&self, group: &str) {
        if let Some(e) = self.groups.lock().remove(group) {
            kill(
                &e,
                "the group was deleted or this broker lost its claim on it",
            );
        }
    }

    /// Groups coordinated here.
    pub fn local_groups(&self) -> Vec<String> {
        self.groups.lock().keys().cloned().collect()
    }

    /// Remove silent members now and then, until aborted.
    pub async fn run_reaper(self: Arc<Self>) {
        let mut tick = tokio::time::interval(REAPER_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let entries: Vec<Arc<GroupEntry>> = self.groups.lock().values().cloned().collect();
            let now = Instant::now();
            let classic_now = tokio::time::Instant::now();
            for e in entries {
                let gone = e.tick(now, classic_now, &|t| self.partition_count(t));
                for member in gone {
                    tracing::info!(%member, "group member's session expired");
                }
            }
        }
    }

    /// The heartbeat interval for a session timeout.
    pub fn heartbeat_interval(session_timeout: Duration) -> Duration {
        (session_timeout / 3).min(MAX_HEARTBEAT_INTERVAL)
    }
}

/// Requests parked on a dropped entry's classic group are told to find the
/// coordinator again, instead of waiting for deadlines of a group nobody
/// will see again.
fn kill(entry: &GroupEntry, reason: &str) {
    let mut classic = entry.classic.lock();
    classic.group.kill(reason);
    classic.deliver();
}

/// Wire form of a partition list, grouped by topic.
pub fn to_wire(tps: impl IntoIterator<Item = TopicPartition>) -> Vec<TopicPartitions> {
    let mut by_topic: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    for (t, p) in tps {
        by_topic.entry(t).or_default().push(p);
    }
    by_topic
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            TopicPartitions { topic, partitions }
        })
        .collect()
}

/// Partition list from the wire.
pub fn from_wire(tps: &[TopicPartitions]) -> BTreeSet<TopicPartition> {
    tps.iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.clone(), *p)))
        .collect()
}
