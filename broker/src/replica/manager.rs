//! [`ReplicaManager`]: the partitions this broker hosts, by topic, and the
//! role changes that start and stop replication.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;

use super::fetcher::FetcherManager;
use super::partition::{Partition, Transition};
use crate::log::{LogManager, TopicPartition};
use crate::meta::records::{PartitionState, TopicRecord};
use crate::topic::{ConfigDefaults, SharedDefaults, TopicConfig};
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
    /// Static broker defaults under the dynamic cluster-wide ones; shared
    /// with topic admin and the controller so they resolve alike.
    defaults: SharedDefaults,
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
            defaults: SharedDefaults::new(defaults),
            fetchers,
            topics: RwLock::new(HashMap::new()),
            changing: parking_lot::Mutex::new(()),
        }
    }

    pub fn broker_id(&self) -> i32 {
        self.broker_id
    }

    /// The topic config defaults in force now (static and dynamic).
    pub fn defaults(&self) -> ConfigDefaults {
        self.defaults.get()
    }

    /// The live defaults, for the controller.
    pub fn shared_defaults(&self) -> SharedDefaults {
        self.defaults.clone()
    }

    /// Adopt new dynamic cluster-wide defaults (by topic config name) and,
    /// if they changed anything, re-resolve every topic's config and push it
    /// into its open logs and partitions. Holds `changing` throughout, so a
    /// topic applied concurrently cannot keep a config resolved from the old
    /// defaults.
    pub fn set_dynamic_defaults(&self, dynamic: BTreeMap<String, String>) -> Result<()> {
        let _changing = self.changing.lock();
        let new = self.defaults.get().with_dynamic(dynamic)?;
        if !self.defaults.replace(new) {
            return Ok(());
        }
        tracing::info!(dynamic = ?self.defaults.get().dynamic(), "dynamic topic config defaults changed");
        for topic in self.topics() {
            // The topic's current record at its current revision: only
            // the defaults under it changed.
            if let Err(e) =
                self.apply_topic_locked(&topic.name, topic.record.clone(), topic.revision)
            {
                tracing::warn!(topic = %topic.name, error = %e, "re-applying config failed");
            }
        }
        Ok(())
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
        self.apply_topic_locked(name, record, revision)
    }

    /// [`Self::apply_topic`], with `changing` already held.
    fn apply_topic_locked(&self, name: &str, record: TopicRecord, revision: i64) -> Result<()> {
        let config = TopicConfig::resolve(&record.configs, &self.defaults.get())?;
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

    /// Trim every hosted partition's leader epoch cache to its log start
    /// offset (run after retention, periodically).
    pub fn trim_leader_epochs(&self) {
        for part in self.hosted() {
            if let Err(e) = part.trim_leader_epochs() {
                tracing::warn!(tp = %part.tp, error = %e, "trimming the leader epoch cache failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::BrokerConfig;
    use crate::meta::records::VERSION;
    use crate::replica::fetcher::FetchSettings;
    use runnel_proto::v1::ConfigSource;

    fn manager(dir: &std::path::Path) -> ReplicaManager {
        let fetchers = FetcherManager::new(
            1,
            Default::default(),
            FetchSettings {
                max_wait: Duration::from_millis(100),
                max_bytes: 1 << 20,
                backoff: Duration::from_millis(100),
                tls: None,
            },
        );
        ReplicaManager::new(
            1,
            LogManager::open(dir).unwrap(),
            BrokerConfig::default().topic_defaults().unwrap(),
            Arc::new(fetchers),
        )
    }

    fn record(overrides: &[(&str, &str)]) -> TopicRecord {
        TopicRecord {
            version: VERSION,
            topic_id: "id".into(),
            replication_factor: 1,
            configs: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            assignment: vec![vec![1], vec![1]],
            reassignments: Default::default(),
        }
    }

    fn source(state: &TopicState, key: &str) -> (String, i32) {
        let e = state
            .config
            .entries()
            .into_iter()
            .find(|e| e.name == key)
            .unwrap();
        (e.value, e.source)
    }

    #[test]
    fn dynamic_defaults_reach_open_logs_but_not_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.apply_topic("plain", record(&[]), 5).unwrap();
        m.apply_topic("pinned", record(&[("retention.ms", "7777")]), 6)
            .unwrap();
        let dynamic: BTreeMap<String, String> = [
            ("retention.ms", "1000"),
            ("segment.bytes", "4096"),
            ("min.insync.replicas", "2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        m.set_dynamic_defaults(dynamic).unwrap();

        let plain = m.topic("plain").unwrap();
        assert_eq!(plain.revision, 5, "re-applied at its own revision");
        assert_eq!(
            source(&plain, "retention.ms"),
            ("1000".into(), ConfigSource::DynamicDefault as i32)
        );
        assert_eq!(plain.config.min_insync_replicas(), 2);
        for p in 0..2 {
            let log = m.partition("plain", p).unwrap().log().config();
            assert_eq!((log.retention_ms, log.segment_bytes), (1000, 4096));
        }
        let pinned = m.topic("pinned").unwrap();
        assert_eq!(
            source(&pinned, "retention.ms"),
            ("7777".into(), ConfigSource::Topic as i32)
        );
        let log = m.partition("pinned", 0).unwrap().log().config();
        assert_eq!((log.retention_ms, log.segment_bytes), (7777, 4096));

        // A topic created later starts with the dynamic defaults too.
        m.apply_topic("later", record(&[]), 9).unwrap();
        assert_eq!(
            m.partition("later", 1)
                .unwrap()
                .log()
                .config()
                .segment_bytes,
            4096
        );

        // Removing them goes back to the static config everywhere.
        m.set_dynamic_defaults(BTreeMap::new()).unwrap();
        let static_ms = BrokerConfig::default().log_retention_ms;
        for topic in ["plain", "later"] {
            let log = m.partition(topic, 0).unwrap().log().config();
            assert_eq!(log.retention_ms, static_ms);
            assert_eq!(log.segment_bytes, 1 << 30);
            assert_eq!(
                source(&m.topic(topic).unwrap(), "retention.ms").1,
                ConfigSource::Default as i32
            );
        }
        assert_eq!(
            m.partition("pinned", 0)
                .unwrap()
                .log()
                .config()
                .retention_ms,
            7777
        );
    }

    #[test]
    fn invalid_dynamic_defaults_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.apply_topic("t", record(&[]), 5).unwrap();
        let bad = [("segment.bytes".to_string(), "10".to_string())].into();
        assert!(m.set_dynamic_defaults(bad).is_err());
        assert!(m.defaults().dynamic().is_empty());
        assert_eq!(
            m.partition("t", 0).unwrap().log().config().segment_bytes,
            1 << 30
        );
    }
}
