//! [`ReplicaManager`]: the partitions this broker hosts, by topic, and the
//! role changes that start and stop replication.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;

use super::fetcher::FetcherManager;
use super::partition::{Partition, Transition};
use crate::log::{LogManager, TopicPartition};
use crate::meta::records::{PartitionState, TopicRecord};
use crate::topic::{ConfigDefaults, TopicConfig};
use crate::{Error, Result};

/// One topic as this broker currently knows it.
#[derive(Debug)]
pub struct TopicState {
    pub name: String,
    pub record: TopicRecord,
    pub config: TopicConfig,
    /// Store revision of the topic record.
    pub revision: i64,
    /// The replicas hosted here; `None` where this broker is not assigned.
    pub partitions: Vec<Option<Arc<Partition>>>,
    /// Leadership of every partition (hosted or not), for Metadata.
    pub states: RwLock<Vec<Option<PartitionState>>>,
}

impl TopicState {
    /// Leader, epoch and ISR of partition `p`, if known yet.
    pub fn partition_state(&self, p: u32) -> Option<PartitionState> {
        self.states.read().get(p as usize).cloned().flatten()
    }
}

/// Hosts partitions and maps requests to them.
pub struct ReplicaManager {
    broker_id: i32,
    logs: Arc<LogManager>,
    defaults: ConfigDefaults,
    fetchers: Arc<FetcherManager>,
    /// Copy-on-write per topic: requests clone an `Arc` and never hold the
    /// lock while doing I/O.
    topics: RwLock<HashMap<String, Arc<TopicState>>>,
    /// Metadata changes arrive from the watch and from this broker's own
    /// admin writes at once; they are applied one at a time, or two callers
    /// could each open a replica of the same partition.
    changing: parking_lot::Mutex<()>,
}

impl std::fmt::Debug for ReplicaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager")
            .field("broker_id", &self.broker_id)
            .finish_non_exhaustive()
    }
}

impl ReplicaManager {
    pub fn new(
        broker_id: i32,
        logs: Arc<LogManager>,
        defaults: ConfigDefaults,
        fetchers: Arc<FetcherManager>,
    ) -> Self {
        ReplicaManager {
            broker_id,
            logs,
            defaults,
            fetchers,
            topics: RwLock::new(HashMap::new()),
            changing: parking_lot::Mutex::new(()),
        }
    }

    pub fn broker_id(&self) -> i32 {
        self.broker_id
    }

    pub fn defaults(&self) -> &ConfigDefaults {
        &self.defaults
    }

    pub fn log_manager(&self) -> &Arc<LogManager> {
        &self.logs
    }

    pub fn fetchers(&self) -> &Arc<FetcherManager> {
        &self.fetchers
    }

    /// A topic, or `UnknownTopic`.
    pub fn topic(&self, name: &str) -> Result<Arc<TopicState>> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_owned()))
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<Arc<TopicState>> {
        let mut all: Vec<_> = self.topics.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The named topics (each name checked), or every topic when `names`
    /// is empty — what Metadata, DescribeTopics and reassignment listings
    /// take.
    pub fn topics_named(&self, names: &[String]) -> Result<Vec<Arc<TopicState>>> {
        if names.is_empty() {
            return Ok(self.topics());
        }
        names
            .iter()
            .map(|name| {
                crate::topic::validate_topic_name(name)?;
                self.topic(name)
            })
            .collect()
    }

    /// Every hosted partition.
    pub fn hosted(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().flatten().cloned())
            .collect()
    }

    /// Check that `topic` has partition `partition` (request validation).
    pub fn check_partition(&self, topic: &str, partition: u32) -> Result<Arc<TopicState>> {
        let state = self.topic(topic)?;
        if partition as usize >= state.partitions.len() {
            return Err(Error::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partitions: state.partitions.len() as u32,
            });
        }
        Ok(state)
    }

    /// A hosted partition, or the precise reason it is not here: unknown
    /// topic or partition (the request is wrong), or hosted elsewhere
    /// (NOT_LEADER_OR_FOLLOWER, the client's metadata is stale).
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        let state = self.check_partition(topic, partition)?;
        state.partitions[partition as usize].clone().ok_or_else(|| {
            let leader = state.partition_state(partition).map_or(-1, |s| s.leader);
            Error::NotLeaderOrFollower {
                topic_partition: format!("{topic}-{partition}"),
                broker_id: self.broker_id,
                reason: format!("it has no replica here; broker {leader} leads it"),
            }
        })
    }

    /// The partition if this broker leads it. The outer error is the
    /// request's fault (unknown topic or partition: fail the request); the
    /// inner one is per partition and retriable (not the leader here, no
    /// leader right now).
    pub fn leader(&self, topic: &str, partition: u32) -> Result<Result<Arc<Partition>>> {
        self.check_partition(topic, partition)?;
        Ok(self.partition(topic, partition).and_then(|part| {
            part.check_leader_epoch(-1)?;
            Ok(part)
        }))
    }

    /// Make the hosted state match `record` (at store `revision`): open or
    /// create the logs of partitions assigned to this broker, apply config
    /// changes to open logs. Partitions are only ever added.
    pub fn apply_topic(&self, name: &str, record: TopicRecord, revision: i64) -> Result<()> {
        let _changing = self.changing.lock();
        let config = TopicConfig::resolve(&record.configs, &self.defaults)?;
        let log_config = config.log_config();
        let existing = self.topics.read().get(name).cloned();
        let same_incarnation = existing
            .as_ref()
            .filter(|s| s.record.topic_id == record.topic_id);
        if same_incarnation.is_some_and(|s| s.revision > revision) {
            return Ok(());
        }
        if let Some(old) = existing.as_ref().filter(|_| same_incarnation.is_none()) {
            // Deleted and re-created while we were not looking.
            self.drop_partitions(old)?;
        }
        let mut partitions = Vec::with_capacity(record.assignment.len());
        let mut states = Vec::with_capacity(record.assignment.len());
        for (p, replicas) in record.assignment.iter().enumerate() {
            let p = p as u32;
            let old =
                same_incarnation.and_then(|s| s.partitions.get(p as usize).cloned().flatten());
            states.push(same_incarnation.and_then(|s| s.partition_state(p)));
            if let Some(part) = old.as_ref().filter(|_| !replicas.contains(&self.broker_id)) {
                // Reassigned away: stop replicating and delete our copy.
                tracing::info!(tp = %part.tp, "replica removed from this broker");
                self.fetchers.remove(&part.tp);
                self.logs.remove(&part.tp)?;
                partitions.push(None);
                continue;
            }
            if let Some(part) = old {
                part.log().set_config(log_config.clone());
                part.set_min_insync_replicas(config.min_insync_replicas());
                partitions.push(Some(part));
                continue;
            }
            if !replicas.contains(&self.broker_id) {
                partitions.push(None);
                continue;
            }
            let tp = TopicPartition::new(name, p);
            let log = self.logs.get_or_create(&tp, log_config.clone())?;
            partitions.push(Some(Arc::new(Partition::open(
                tp,
                self.broker_id,
                log,
                replicas.clone(),
                config.min_insync_replicas(),
            )?)));
        }
        let state = TopicState {
            name: name.to_owned(),
            record,
            config,
            revision,
            partitions,
            states: RwLock::new(states),
        };
        self.topics.write().insert(name.to_owned(), Arc::new(state));
        Ok(())
    }

    /// Adopt partition `p`'s leadership from the store (at `revision`):
    /// cache it for Metadata and, if hosted here, switch the replica's role
    /// and start or stop fetching.
    pub fn apply_partition_state(
        &self,
        topic: &str,
        p: u32,
        state: PartitionState,
        revision: i64,
    ) -> Result<Transition> {
        let _changing = self.changing.lock();
        let Ok(t) = self.topic(topic) else {
            return Ok(Transition::Unchanged);
        };
        if let Some(slot) = t.states.write().get_mut(p as usize) {
            *slot = Some(state.clone());
        }
        let Some(Some(part)) = t.partitions.get(p as usize) else {
            return Ok(Transition::Unchanged);
        };
        let replicas = &t.record.assignment[p as usize];
        let transition = part.apply_state(&state, replicas, revision)?;
        match transition {
            Transition::BecameLeader { epoch } => {
                tracing::info!(tp = %part.tp, epoch, isr = ?state.isr, "became leader");
                self.fetchers.remove(&part.tp);
            }
            Transition::BecameFollower { leader, epoch } => {
                tracing::info!(tp = %part.tp, leader, epoch, "became follower");
                self.fetchers.remove(&part.tp);
                if leader >= 0 {
                    self.fetchers.add(leader, part.clone());
                }
            }
            Transition::IsrChanged | Transition::Unchanged => {}
        }
        Ok(transition)
    }

    /// Stop serving a topic and delete its partitions' files.
    pub fn remove_topic(&self, name: &str) -> Result<()> {
        let _changing = self.changing.lock();
        let removed = self.topics.write().remove(name);
        if let Some(state) = removed {
            self.drop_partitions(&state)?;
        }
        Ok(())
    }

    fn drop_partitions(&self, state: &TopicState) -> Result<()> {
        for part in state.partitions.iter().flatten() {
            self.fetchers.remove(&part.tp);
            self.logs.remove(&part.tp)?;
        }
        Ok(())
    }

    /// Delete partition directories no topic assigns here any more (a topic
    /// deleted while this broker was down), as Kafka does at start-up.
    pub fn delete_stray_logs(&self) -> Result<Vec<TopicPartition>> {
        let wanted: BTreeMap<String, Vec<bool>> = self
            .topics
            .read()
            .iter()
            .map(|(n, s)| {
                (
                    n.clone(),
                    s.partitions.iter().map(Option::is_some).collect(),
                )
            })
            .collect();
        let mut removed = Vec::new();
        for tp in self.logs.existing_partitions()? {
            let keep = wanted
                .get(&tp.topic)
                .and_then(|v| v.get(tp.partition as usize))
                .copied()
                .unwrap_or(false);
            if !keep {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, "deleting log of a partition not assigned here");
                self.logs.remove(&tp)?;
                removed.push(tp);
            }
        }
        Ok(removed)
    }

    /// Snapshot every hosted partition's producer state (periodically and
    /// at shutdown), expiring producers idle longer than `expiration_ms`.
    pub fn snapshot_producer_state(&self, now_ms: i64, expiration_ms: i64) {
        for part in self.hosted() {
            if let Err(e) = part.snapshot_producer_state(now_ms.saturating_sub(expiration_ms)) {
                tracing::warn!(tp = %part.tp, error = %e, "writing producer state snapshot failed");
            }
        }
    }
}
