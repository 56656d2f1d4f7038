//! [`ReplicaManager`]: the partitions this broker hosts, by topic.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;

use super::Partition;
use crate::log::{LogManager, TopicPartition};
use crate::meta::records::TopicRecord;
use crate::topic::{ConfigDefaults, TopicConfig};
use crate::{Error, Result};

/// One topic as this broker currently serves it.
#[derive(Debug)]
pub struct TopicState {
    pub name: String,
    pub record: TopicRecord,
    pub config: TopicConfig,
    pub partitions: Vec<Arc<Partition>>,
}

/// Hosts partitions and maps requests to them.
pub struct ReplicaManager {
    broker_id: i32,
    logs: Arc<LogManager>,
    defaults: ConfigDefaults,
    /// Copy-on-write per topic: requests clone an `Arc` and never hold the
    /// lock while doing I/O.
    topics: RwLock<HashMap<String, Arc<TopicState>>>,
}

impl std::fmt::Debug for ReplicaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager")
            .field("broker_id", &self.broker_id)
            .finish_non_exhaustive()
    }
}

impl ReplicaManager {
    pub fn new(broker_id: i32, logs: Arc<LogManager>, defaults: ConfigDefaults) -> Self {
        ReplicaManager {
            broker_id,
            logs,
            defaults,
            topics: RwLock::new(HashMap::new()),
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

    /// A hosted partition, or the precise reason it is not there.
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        let state = self.topic(topic)?;
        state
            .partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| Error::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partitions: state.partitions.len() as u32,
            })
    }

    /// Make the hosted state match `record`: open or create partition logs,
    /// apply config changes to open logs. Partitions are only ever added.
    pub fn apply_topic(
        &self,
        name: &str,
        record: TopicRecord,
        leader_epochs: &[i32],
    ) -> Result<()> {
        let config = TopicConfig::resolve(&record.configs, &self.defaults)?;
        let log_config = config.log_config();
        let existing = self.topics.read().get(name).cloned();
        let same_incarnation = existing
            .as_ref()
            .filter(|s| s.record.topic_id == record.topic_id);
        let mut partitions = Vec::with_capacity(record.assignment.len());
        for p in 0..record.partitions() {
            if let Some(part) = same_incarnation.and_then(|s| s.partitions.get(p as usize)) {
                part.log().set_config(log_config.clone());
                part.set_min_insync_replicas(config.min_insync_replicas());
                partitions.push(part.clone());
                continue;
            }
            let tp = TopicPartition {
                topic: name.to_owned(),
                partition: p,
            };
            let log = self.logs.get_or_create(&tp, log_config.clone())?;
            let epoch = leader_epochs.get(p as usize).copied().unwrap_or(0);
            let isr = vec![self.broker_id];
            partitions.push(Arc::new(Partition::new(
                tp,
                log,
                epoch,
                isr,
                config.min_insync_replicas(),
            )));
        }
        let state = TopicState {
            name: name.to_owned(),
            record,
            config,
            partitions,
        };
        self.topics.write().insert(name.to_owned(), Arc::new(state));
        Ok(())
    }

    /// Stop serving a topic and delete its partitions' files.
    pub fn remove_topic(&self, name: &str) -> Result<()> {
        let removed = self.topics.write().remove(name);
        if let Some(state) = removed {
            for part in &state.partitions {
                self.logs.remove(&part.tp)?;
            }
        }
        Ok(())
    }

    /// Delete partition directories no topic owns any more (a topic deleted
    /// while this broker was down), as Kafka does at start-up.
    pub fn delete_stray_logs(&self) -> Result<Vec<TopicPartition>> {
        let wanted: BTreeMap<String, u32> = self
            .topics
            .read()
            .iter()
            .map(|(n, s)| (n.clone(), s.record.partitions()))
            .collect();
        let mut removed = Vec::new();
        for tp in self.logs.existing_partitions()? {
            let keep = wanted.get(&tp.topic).is_some_and(|&n| tp.partition < n);
            if !keep {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, "deleting log of a partition no topic owns");
                self.logs.remove(&tp)?;
                removed.push(tp);
            }
        }
        Ok(removed)
    }
}
