//! Topic administration: create, alter (more partitions, configs), delete.
//!
//! Every request is validated as a whole before anything is written, and the
//! write is one metadata transaction, so a rejected request changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use runnel_proto::v1::{AlterTopicRequest, NewTopic, PartitionReassignment};

use super::placement::{BrokerSlot, assign_replicas};
use crate::cluster::sync::MetadataSync;
use crate::meta::keys::Keys;
use crate::meta::records::{self, PartitionState, Reassignment, TopicRecord, VERSION};
use crate::meta::{Compare, KeyValue, MetadataStore, Op, WatchEvent};
use crate::replica::ReplicaManager;
use crate::topic::{TopicConfig, validate_topic_name};
use crate::{Error, Result};

/// Kafka has no hard limit; ours keeps one request from creating more files
/// than a broker can hold open. Raise it when someone needs more.
pub const MAX_PARTITIONS: u32 = 10_000;

/// Creates, alters and deletes topics.
pub struct TopicController {
    store: Arc<dyn MetadataStore>,
    keys: Keys,
    replicas: Arc<ReplicaManager>,
    sync: Arc<MetadataSync>,
    /// Admin changes are rare; serializing them keeps check-then-write simple
    /// (the store's CAS still guards against other writers).
    lock: tokio::sync::Mutex<()>,
    default_partitions: u32,
    default_replication_factor: u32,
}

impl std::fmt::Debug for TopicController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicController").finish_non_exhaustive()
    }
}

/// What a validated create will write.
struct PlannedTopic {
    name: String,
    record: TopicRecord,
}

impl TopicController {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        keys: Keys,
        replicas: Arc<ReplicaManager>,
        sync: Arc<MetadataSync>,
        default_partitions: u32,
        default_replication_factor: u32,
    ) -> Self {
        TopicController {
            store,
            keys,
            replicas,
            sync,
            lock: tokio::sync::Mutex::new(()),
            default_partitions,
            default_replication_factor,
        }
    }

    /// Live brokers with their racks, for placement.
    fn live_brokers(&self) -> Vec<BrokerSlot> {
        self.sync.view().read(|i| {
            i.brokers
                .values()
                .map(|b| BrokerSlot {
                    id: b.broker_id,
                    rack: b.rack.clone(),
                })
                .collect()
        })
    }

    /// Apply what a successful transaction wrote at `revision` right away,
    /// so the response already reflects it (the watch delivers it again,
    /// harmlessly).
    fn apply_written(&self, ops: &[Op], revision: i64) -> Result<()> {
        for op in ops {
            if let Op::Put(key, value) = op {
                self.sync.apply(WatchEvent::Put(KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: revision,
                    mod_revision: revision,
                    lease: None,
                }))?;
            }
        }
        Ok(())
    }

    /// The view follows the store through a watch, a moment behind: a
    /// broker that registered just now may be missing from it. Before a
    /// replication factor is refused for too few live brokers, new
    /// partitions are placed or a reassignment target is checked, read the
    /// registrations themselves (a broker that left is still removed by
    /// the watch alone). The operator scales out and then reassigns onto
    /// the new brokers at once, so this race is the normal case there.
    async fn catch_up_brokers(&self) -> Result<()> {
        for kv in self.store.range(&self.keys.brokers_prefix()).await? {
            self.sync.apply(WatchEvent::Put(kv))?;
        }
        Ok(())
    }

    fn plan_create(&self, new: &NewTopic) -> Result<PlannedTopic> {
        validate_topic_name(&new.name)?;
        if self.replicas.topic(&new.name).is_ok() {
            return Err(Error::TopicAlreadyExists(new.name.clone()));
        }
        let partitions = if new.partitions == 0 {
            self.default_partitions
        } else {
            new.partitions
        };
        if partitions > MAX_PARTITIONS {
            return Err(Error::InvalidPartitions {
                topic: new.name.clone(),
                reason: format!("{partitions} exceeds the limit of {MAX_PARTITIONS} per topic"),
            });
        }
        let rf = if new.replication_factor == 0 {
            self.default_replication_factor
        } else {
            new.replication_factor
        };
        let brokers = self.live_brokers();
        if rf as usize > brokers.len() {
            let ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
            return Err(Error::InvalidReplicationFactor {
                topic: new.name.clone(),
                reason: format!(
                    "replication factor {rf} is larger than the {} live broker(s) {ids:?}; \
                     start more brokers or use a smaller replication factor",
                    brokers.len()
                ),
            });
        }
        if rf == 0 {
            return Err(Error::InvalidReplicationFactor {
                topic: new.name.clone(),
                reason: "must be at least 1".into(),
            });
        }
        let configs: BTreeMap<String, String> = new
            .configs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        TopicConfig::resolve(&configs, &self.replicas.defaults())?;
        let assignment = assign_replicas(&brokers, partitions, rf, 0);
        Ok(PlannedTopic {
            name: new.name.clone(),
            record: TopicRecord {
                version: VERSION,
                topic_id: new_topic_id(),
                replication_factor: rf,
                configs,
                assignment,
                reassignments: Default::default(),
            },
        })
    }

    fn partition_state_ops(&self, name: &str, record: &TopicRecord, from: u32) -> Vec<Op> {
        (from..record.partitions())
            .map(|p| {
                let replicas = &record.assignment[p as usize];
                let state = PartitionState {
                    version: VERSION,
                    leader: replicas[0],
                    leader_epoch: 0,
                    isr: replicas.clone(),
                };
                Op::Put(self.keys.partition_state(name, p), records::encode(&state))
            })
            .collect()
    }

    /// Create topics, all or none. Returns the names created (or, with
    /// `validate_only`, that would be).
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<String>> {
        let _guard = self.lock.lock().await;
        if topics.is_empty() {
            return Err(Error::InvalidRequest("no topics given".into()));
        }
        let live = self.live_brokers().len();
        let wanted = |t: &NewTopic| match t.replication_factor {
            0 => self.default_replication_factor,
            rf => rf,
        };
        if topics.iter().any(|t| wanted(t) as usize > live) {
            self.catch_up_brokers().await?;
        }
        let mut seen = HashSet::new();
        let mut plans = Vec::with_capacity(topics.len());
        for new in topics {
            if !seen.insert(new.name.as_str()) {
                return Err(Error::InvalidRequest(format!(
                    "topic {:?} is listed twice",
                    new.name
                )));
            }
            plans.push(self.plan_create(new)?);
        }
        let names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
        if validate_only {
            return Ok(names);
        }
        let mut compares = Vec::new();
        let mut heads = Vec::new();
        let mut states = Vec::new();
        for plan in &plans {
            let key = self.keys.topic(&plan.name);
            compares.push(Compare::ModRevision(key.clone(), 0));
            heads.push(Op::Put(key, records::encode(&plan.record)));
            states.extend(self.partition_state_ops(&plan.name, &plan.record, 0));
        }
        if !self.write_chunked(compares, heads, states).await? {
            return Err(Error::TopicAlreadyExists(names.join(", ")));
        }
        for plan in &plans {
            tracing::info!(topic = %plan.name, partitions = plan.record.partitions(), "created topic");
        }
        Ok(names)
    }

    /// Write topic records (`heads`, guarded by `compares`) and partition
    /// states. etcd refuses transactions of more than 128 operations by
    /// default, so states beyond the first transaction follow in chunks,
    /// each conditional on the topic records being unchanged since. Until
    /// they land (or if this broker dies first) brokers see the partitions
    /// without a leader; the controller creates any state still missing.
    /// Returns false if the first transaction's compares failed.
    async fn write_chunked(
        &self,
        compares: Vec<Compare>,
        heads: Vec<Op>,
        mut states: Vec<Op>,
    ) -> Result<bool> {
        const MAX_OPS: usize = 100;
        let room = MAX_OPS.saturating_sub(heads.len());
        let rest = states.split_off(room.min(states.len()));
        let mut first = heads.clone();
        first.extend(states);
        let outcome = self.store.txn(compares, first.clone()).await?;
        if !outcome.succeeded {
            return Ok(false);
        }
        self.apply_written(&first, outcome.revision)?;
        let fence: Vec<Compare> = heads
            .iter()
            .filter_map(|op| match op {
                Op::Put(key, _) => Some(Compare::ModRevision(key.clone(), outcome.revision)),
                _ => None,
            })
            .collect();
        for chunk in rest.chunks(MAX_OPS) {
            let written = self.store.txn(fence.clone(), chunk.to_vec()).await?;
            if !written.succeeded {
                tracing::warn!(
                    "the topic changed while its partition states were written; stopping"
                );
                break;
            }
            self.apply_written(chunk, written.revision)?;
        }
        Ok(true)
    }

    /// Delete topics, all or none.
    pub async fn delete_topics(&self, names: &[String]) -> Result<Vec<String>> {
        let _guard = self.lock.lock().await;
        if names.is_empty() {
            return Err(Error::InvalidRequest("no topics given".into()));
        }
        let unique: BTreeSet<&String> = names.iter().collect();
        let mut compares = Vec::new();
        let mut ops = Vec::new();
        for name in &unique {
            validate_topic_name(name)?;
            self.replicas.topic(name)?;
            let key = self.keys.topic(name);
            let current = self
                .store
                .get(&key)
                .await?
                .ok_or_else(|| Error::UnknownTopic((*name).clone()))?;
            compares.push(Compare::ModRevision(key.clone(), current.mod_revision));
            ops.push(Op::Delete(key));
            ops.push(Op::DeletePrefix(self.keys.topic_children(name)));
        }
        let outcome = self.store.txn(compares, ops).await?;
        if !outcome.succeeded {
            return Err(Error::Metadata(
                "topics changed concurrently; retry the delete".into(),
            ));
        }
        let mut deleted = Vec::new();
        for name in unique {
            self.sync.apply(WatchEvent::Delete {
                key: self.keys.topic(name),
                mod_revision: outcome.revision,
            })?;
            tracing::info!(topic = %name, "deleted topic");
            deleted.push(name.clone());
        }
        Ok(deleted)
    }

    /// Increase partitions and/or change config overrides.
    pub async fn alter_topic(&self, req: &AlterTopicRequest) -> Result<()> {
        let _guard = self.lock.lock().await;
        validate_topic_name(&req.name)?;
        self.replicas.topic(&req.name)?;
        let key = self.keys.topic(&req.name);
        let current = self
            .store
            .get(&key)
            .await?
            .ok_or_else(|| Error::UnknownTopic(req.name.clone()))?;
        let mut record: TopicRecord = records::decode(&key, &current.value)?;
        let old_partitions = record.partitions();

        if req.partitions != 0 && req.partitions != old_partitions {
            if req.partitions < old_partitions {
                return Err(Error::InvalidPartitions {
                    topic: req.name.clone(),
                    reason: format!(
                        "the topic has {old_partitions} partitions and the count can only be increased \
                         (removing partitions would lose data and break key ordering)"
                    ),
                });
            }
            if req.partitions > MAX_PARTITIONS {
                return Err(Error::InvalidPartitions {
                    topic: req.name.clone(),
                    reason: format!(
                        "{} exceeds the limit of {MAX_PARTITIONS} per topic",
                        req.partitions
                    ),
                });
            }
            self.catch_up_brokers().await?;
            let brokers = self.live_brokers();
            if (record.replication_factor as usize) > brokers.len() {
                return Err(Error::InvalidReplicationFactor {
                    topic: req.name.clone(),
                    reason: format!(
                        "new partitions need {} replicas but only {} broker(s) are live",
                        record.replication_factor,
                        brokers.len()
                    ),
                });
            }
            let extra = assign_replicas(
                &brokers,
                req.partitions - old_partitions,
                record.replication_factor,
                old_partitions,
            );
            record.assignment.extend(extra);
        }
        for key in &req.delete_configs {
            // Removing an override that is not set is harmless; an unknown
            // key is probably a typo and gets the same error as setting it.
            if !crate::topic::config::is_known(key) {
                return Err(crate::topic::config::unknown_key(key, ""));
            }
            record.configs.remove(key);
        }
        for (k, v) in &req.set_configs {
            record.configs.insert(k.clone(), v.clone());
        }
        TopicConfig::resolve(&record.configs, &self.replicas.defaults())?;
        if req.validate_only {
            return Ok(());
        }
        let heads = vec![Op::Put(key.clone(), records::encode(&record))];
        let states = self.partition_state_ops(&req.name, &record, old_partitions);
        let compares = vec![Compare::ModRevision(key, current.mod_revision)];
        if !self.write_chunked(compares, heads, states).await? {
            return Err(Error::Metadata(
                "the topic changed concurrently; retry".into(),
            ));
        }
        tracing::info!(topic = %req.name, partitions = record.partitions(), "altered topic");
        Ok(())
    }
}

impl TopicController {
    /// Start (or cancel, with no replicas) partition reassignments, all or
    /// none. The controller completes them once the new replicas are in
    /// sync ([`super::leaders::plan_reassignments`]).
    pub async fn alter_reassignments(&self, requests: &[PartitionReassignment]) -> Result<()> {
        let _guard = self.lock.lock().await;
        if requests.is_empty() {
            return Err(Error::InvalidRequest("no reassignments given".into()));
        }
        self.catch_up_brokers().await?;
        let live: BTreeSet<i32> = self.live_brokers().iter().map(|b| b.id).collect();
        let mut by_topic: BTreeMap<&str, Vec<&PartitionReassignment>> = BTreeMap::new();
        for r in requests {
            validate_topic_name(&r.topic)?;
            by_topic.entry(&r.topic).or_default().push(r);
        }
        let mut compares = Vec::new();
        let mut ops = Vec::new();
        for (topic, reqs) in by_topic {
            let key = self.keys.topic(topic);
            let current = self
                .store
                .get(&key)
                .await?
                .ok_or_else(|| Error::UnknownTopic(topic.to_owned()))?;
            let mut record: TopicRecord = records::decode(&key, &current.value)?;
            let mut seen = HashSet::new();
            for r in reqs {
                let tp = format!("{topic}-{}", r.partition);
                if r.partition >= record.partitions() {
                    return Err(Error::UnknownPartition {
                        topic: topic.to_owned(),
                        partition: r.partition,
                        partitions: record.partitions(),
                    });
                }
                if !seen.insert(r.partition) {
                    return Err(Error::InvalidRequest(format!("{tp} is listed twice")));
                }
                let p = r.partition as usize;
                if r.replicas.is_empty() {
                    let ongoing = record
                        .reassignments
                        .remove(&r.partition)
                        .ok_or(Error::NoReassignmentInProgress(tp))?;
                    record.assignment[p] = ongoing.original;
                    continue;
                }
                let target = check_target(&tp, &r.replicas, &live)?;
                let original = record
                    .reassignments
                    .get(&r.partition)
                    .map_or_else(|| record.assignment[p].clone(), |o| o.original.clone());
                if target == original {
                    record.reassignments.remove(&r.partition);
                    record.assignment[p] = original;
                    continue;
                }
                // Kafka's order while moving: the target first, then the
                // replicas on their way out.
                let mut all = target.clone();
                all.extend(original.iter().filter(|r| !target.contains(r)));
                record.assignment[p] = all;
                record
                    .reassignments
                    .insert(r.partition, Reassignment { target, original });
            }
            compares.push(Compare::ModRevision(key.clone(), current.mod_revision));
            ops.push(Op::Put(key, records::encode(&record)));
        }
        let outcome = self.store.txn(compares, ops.clone()).await?;
        if !outcome.succeeded {
            return Err(Error::Metadata(
                "the topic changed concurrently; retry the reassignment".into(),
            ));
        }
        tracing::info!(partitions = requests.len(), "reassignment requested");
        self.apply_written(&ops, outcome.revision)
    }
}

/// A reassignment target: distinct, registered brokers.
fn check_target(tp: &str, replicas: &[i32], live: &BTreeSet<i32>) -> Result<Vec<i32>> {
    let invalid = |reason: String| Error::InvalidReplicaAssignment {
        topic_partition: tp.to_owned(),
        reason,
    };
    let mut seen = BTreeSet::new();
    for r in replicas {
        if !seen.insert(*r) {
            return Err(invalid(format!("broker {r} is listed twice")));
        }
        if !live.contains(r) {
            return Err(invalid(format!(
                "broker {r} is not a live broker (live: {live:?})"
            )));
        }
    }
    Ok(replicas.to_vec())
}

fn new_topic_id() -> String {
    let id: u128 = rand::random();
    let hex = format!("{id:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cluster::ClusterView;
    use crate::config::BrokerConfig;
    use crate::log::LogManager;
    use crate::meta::embedded::EmbeddedStore;
    use crate::meta::records::BrokerRecord;
    use crate::replica::fetcher::{FetchSettings, FetcherManager};

    fn controller(store: Arc<dyn MetadataStore>, dir: &std::path::Path) -> TopicController {
        let keys = Keys::new("test");
        let fetchers = Arc::new(FetcherManager::new(
            1,
            Default::default(),
            FetchSettings {
                max_wait: Duration::from_millis(100),
                max_bytes: 1 << 20,
                backoff: Duration::from_millis(100),
                tls: None,
            },
        ));
        let replicas = Arc::new(ReplicaManager::new(
            1,
            LogManager::open(dir).unwrap(),
            BrokerConfig::default().topic_defaults().unwrap(),
            fetchers,
        ));
        let view = Arc::new(ClusterView::new(Default::default()));
        let sync = Arc::new(MetadataSync::new(
            store.clone(),
            keys.clone(),
            view,
            replicas.clone(),
        ));
        TopicController::new(store, keys, replicas, sync, 1, 1)
    }

    fn new_topic(name: &str, replication_factor: u32) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions: 1,
            replication_factor,
            configs: Default::default(),
        }
    }

    async fn register(store: &Arc<dyn MetadataStore>, id: i32) {
        let record = BrokerRecord {
            version: VERSION,
            broker_id: id,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
            http_port: None,
            kafka: None,
        };
        store
            .put(&Keys::new("test").broker(id), records::encode(&record))
            .await
            .unwrap();
    }

    /// A broker registered after the view last caught up (an operator
    /// scale-out) gets new partitions of a topic and can be a reassignment
    /// target right away, not once the watch delivers it.
    #[tokio::test]
    async fn partition_increase_and_reassignment_see_just_registered_brokers() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> =
            Arc::new(EmbeddedStore::open(&dir.path().join("meta")).unwrap());
        register(&store, 1).await;
        let topics = controller(store.clone(), &dir.path().join("logs"));
        topics
            .create_topics(&[new_topic("t", 1)], false)
            .await
            .unwrap();
        register(&store, 2).await;
        register(&store, 3).await;
        topics
            .alter_topic(&AlterTopicRequest {
                name: "t".into(),
                partitions: 4,
                ..Default::default()
            })
            .await
            .unwrap();
        register(&store, 4).await;
        topics
            .alter_reassignments(&[PartitionReassignment {
                topic: "t".into(),
                partition: 0,
                replicas: vec![4],
            }])
            .await
            .unwrap();
        let key = Keys::new("test").topic("t");
        let stored = store.get(&key).await.unwrap().unwrap();
        let record: TopicRecord = records::decode(&key, &stored.value).unwrap();
        let used: BTreeSet<i32> = record.assignment[1..].iter().flatten().copied().collect();
        assert_eq!(used, BTreeSet::from([1, 2, 3]), "{:?}", record.assignment);
        assert_eq!(record.reassignments[&0].target, vec![4]);
    }

    /// Two brokers registered in the store, but the view has not seen them
    /// yet (its watch is a moment behind): a topic with RF 2 is created, not
    /// refused, and RF 3 is refused naming the two.
    #[tokio::test]
    async fn brokers_registered_but_not_yet_watched_count_as_live() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> =
            Arc::new(EmbeddedStore::open(&dir.path().join("meta")).unwrap());
        register(&store, 1).await;
        register(&store, 2).await;
        let topics = controller(store, &dir.path().join("logs"));
        assert!(topics.live_brokers().is_empty(), "nothing watched yet");
        assert_eq!(
            topics
                .create_topics(&[new_topic("two", 2)], false)
                .await
                .unwrap(),
            vec!["two".to_owned()]
        );
        let err = topics
            .create_topics(&[new_topic("three", 3)], false)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 live broker(s) [1, 2]"), "{err}");
    }
}
