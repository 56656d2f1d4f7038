//! Keeping the [`ClusterView`] and the hosted replicas in step with the
//! metadata store.
//!
//! [`MetadataSync::load`] reads everything under `/runnel/<cluster>/` once
//! (start-up); [`MetadataSync::run`] then follows a prefix watch. When the
//! watch breaks (the store was unreachable, or we fell behind) it reads
//! everything again and carries on: every apply is idempotent and ignores
//! values older than what it already has, so replaying is harmless.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{ClusterView, Versioned};
use crate::Result;
use crate::auth::acl::{AclRecord, ResourcePattern};
use crate::meta::keys::Keys;
use crate::meta::records::{
    self, BrokerRecord, ClusterConfigRecord, ControllerRecord, PartitionState, TopicRecord,
};
use crate::meta::{KeyValue, MetadataStore, WatchEvent};
use crate::replica::ReplicaManager;

/// Applies store changes to the view and the replicas.
pub struct MetadataSync {
    store: Arc<dyn MetadataStore>,
    keys: Keys,
    view: Arc<ClusterView>,
    replicas: Arc<ReplicaManager>,
}

impl std::fmt::Debug for MetadataSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataSync").finish_non_exhaustive()
    }
}

impl MetadataSync {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        keys: Keys,
        view: Arc<ClusterView>,
        replicas: Arc<ReplicaManager>,
    ) -> Self {
        MetadataSync {
            store,
            keys,
            view,
            replicas,
        }
    }

    pub fn view(&self) -> &Arc<ClusterView> {
        &self.view
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Read everything and apply it; returns the number of topics.
    pub async fn load(&self) -> Result<usize> {
        let all = self.store.range(&self.keys.root()).await?;
        self.apply_all(all)?;
        Ok(self.view.read(|i| i.topics.len()))
    }

    /// Apply a full listing: every key present, and the deletion of every
    /// topic or broker we knew that is no longer there.
    fn apply_all(&self, mut all: Vec<KeyValue>) -> Result<()> {
        // Dynamic config defaults first, so topics opened by this listing
        // start with them (a stable sort keeps the rest in key order).
        let config_key = self.keys.cluster_config();
        all.sort_by_key(|kv| kv.key != config_key);
        let present: std::collections::BTreeSet<&str> =
            all.iter().map(|kv| kv.key.as_str()).collect();
        // The listing is at least this new. A topic we know from a later
        // revision (created while the listing was read) is not gone: the
        // watch, started before the listing, reports what happens to it.
        let listed_at = all.iter().map(|kv| kv.mod_revision).max().unwrap_or(0);
        let config_gone = self.view.read(|i| {
            i.cluster_config
                .as_ref()
                .is_some_and(|c| c.revision <= listed_at)
                && !present.contains(config_key.as_str())
        });
        let (gone_topics, gone_brokers, controller_gone) = self.view.read(|i| {
            (
                i.topics
                    .iter()
                    .filter(|(n, t)| {
                        t.revision <= listed_at && !present.contains(self.keys.topic(n).as_str())
                    })
                    .map(|(n, v)| (n.clone(), v.revision))
                    .collect::<Vec<_>>(),
                i.brokers
                    .keys()
                    .filter(|id| !present.contains(self.keys.broker(**id).as_str()))
                    .copied()
                    .collect::<Vec<_>>(),
                i.controller.is_some() && !present.contains(self.keys.controller().as_str()),
            )
        });
        for (name, revision) in gone_topics {
            self.delete_topic(&name, revision + 1)?;
        }
        for id in gone_brokers {
            self.view.update(|i| i.brokers.remove(&id));
        }
        if controller_gone {
            self.view.update(|i| i.controller = None);
        }
        if config_gone {
            self.view.update(|i| i.cluster_config = None);
            self.apply_cluster_config(&BTreeMap::new())?;
        }
        let acls_prefix = self.keys.acls_prefix();
        self.view.update(|i| {
            i.acls.retain(|pattern, entries| {
                entries.revision > listed_at || present.contains(pattern.key(&acls_prefix).as_str())
            })
        });
        for kv in all {
            self.apply_put(kv)?;
        }
        Ok(())
    }

    /// Apply one change.
    pub fn apply(&self, event: WatchEvent) -> Result<()> {
        match event {
            WatchEvent::Put(kv) => self.apply_put(kv),
            WatchEvent::Delete { key, mod_revision } => self.apply_delete(&key, mod_revision),
        }
    }

    fn apply_put(&self, kv: KeyValue) -> Result<()> {
        let keys = &self.keys;
        if let Some(name) = keys.topic_name_of(&kv.key) {
            let record: TopicRecord = records::decode(&kv.key, &kv.value)?;
            let name = name.to_owned();
            let newer = self.view.update(|i| {
                let newer = i
                    .topics
                    .get(&name)
                    .is_none_or(|t| t.revision <= kv.mod_revision);
                if newer {
                    i.topics.insert(
                        name.clone(),
                        Versioned {
                            value: record.clone(),
                            revision: kv.mod_revision,
                        },
                    );
                }
                newer
            });
            if newer {
                self.replicas.apply_topic(&name, record, kv.mod_revision)?;
                // States that arrived before their topic (or were kept
                // across a re-list) apply now.
                let states: Vec<_> = self
                    .view
                    .read(|i| i.topic_states(&name).map(|(p, s)| (p, s.clone())).collect());
                for (p, s) in states {
                    self.replicas
                        .apply_partition_state(&name, p, s.value, s.revision)?;
                }
            }
        } else if let Some((topic, p)) = keys.partition_of(&kv.key) {
            let state: PartitionState = records::decode(&kv.key, &kv.value)?;
            let newer = self.view.update(|i| {
                let slot = i.states.get(&(topic.clone(), p));
                let newer = slot.is_none_or(|s| s.revision <= kv.mod_revision);
                if newer {
                    i.states.insert(
                        (topic.clone(), p),
                        Versioned {
                            value: state.clone(),
                            revision: kv.mod_revision,
                        },
                    );
                }
                newer
            });
            if newer {
                self.replicas
                    .apply_partition_state(&topic, p, state, kv.mod_revision)?;
            }
        } else if kv.key.starts_with(&keys.brokers_prefix()) {
            let broker: BrokerRecord = records::decode(&kv.key, &kv.value)?;
            self.view.update(|i| i.register_broker(broker));
        } else if kv.key == keys.cluster_config() {
            let record: ClusterConfigRecord = records::decode(&kv.key, &kv.value)?;
            let newer = self.view.update(|i| {
                let newer = i
                    .cluster_config
                    .as_ref()
                    .is_none_or(|c| c.revision <= kv.mod_revision);
                if newer {
                    i.cluster_config = Some(Versioned {
                        value: record.clone(),
                        revision: kv.mod_revision,
                    });
                }
                newer
            });
            if newer {
                self.apply_cluster_config(&record.configs)?;
            }
        } else if let Some(pattern) = ResourcePattern::from_key(&keys.acls_prefix(), &kv.key) {
            let record: AclRecord = records::decode(&kv.key, &kv.value)?;
            self.view.update(|i| {
                if i.acls
                    .get(&pattern)
                    .is_none_or(|a| a.revision <= kv.mod_revision)
                {
                    i.acls.insert(
                        pattern,
                        Versioned {
                            value: record.entries,
                            revision: kv.mod_revision,
                        },
                    );
                }
            });
        } else if kv.key == keys.controller() {
            let controller: ControllerRecord = records::decode(&kv.key, &kv.value)?;
            self.view.update(|i| {
                if i.controller
                    .as_ref()
                    .is_none_or(|c| c.revision <= kv.mod_revision)
                {
                    i.controller = Some(Versioned {
                        value: controller,
                        revision: kv.mod_revision,
                    });
                }
            });
        }
        Ok(())
    }

    fn apply_delete(&self, key: &str, revision: i64) -> Result<()> {
        let keys = &self.keys;
        if let Some(name) = keys.topic_name_of(key) {
            self.delete_topic(name, revision)?;
        } else if let Some((topic, p)) = keys.partition_of(key) {
            self.view.update(|i| {
                if i.states
                    .get(&(topic.clone(), p))
                    .is_some_and(|s| s.revision < revision)
                {
                    i.states.remove(&(topic, p));
                }
            });
        } else if let Some(id) = key
            .strip_prefix(&keys.brokers_prefix())
            .and_then(|id| id.parse::<i32>().ok())
        {
            self.view.update(|i| i.brokers.remove(&id));
        } else if key == keys.controller() {
            self.view.update(|i| {
                if i.controller.as_ref().is_some_and(|c| c.revision < revision) {
                    i.controller = None;
                }
            });
        } else if let Some(pattern) = ResourcePattern::from_key(&keys.acls_prefix(), key) {
            self.view.update(|i| {
                if i.acls.get(&pattern).is_some_and(|a| a.revision < revision) {
                    i.acls.remove(&pattern);
                }
            });
        } else if key == keys.cluster_config() {
            let deleted = self.view.update(|i| {
                let older = i
                    .cluster_config
                    .as_ref()
                    .is_some_and(|c| c.revision < revision);
                if older {
                    i.cluster_config = None;
                }
                older
            });
            if deleted {
                self.apply_cluster_config(&BTreeMap::new())?;
            }
        }
        Ok(())
    }

    /// Hand dynamic defaults (by broker key, as stored) to the replicas,
    /// which re-resolve every topic if anything changed. An entry this
    /// broker cannot use (written by a newer broker, or by hand with
    /// etcdctl) is skipped with a warning rather than failing the rest.
    fn apply_cluster_config(&self, configs: &BTreeMap<String, String>) -> Result<()> {
        let mut by_topic_key = BTreeMap::new();
        for (key, value) in configs {
            match crate::config::validate_dynamic(key, value) {
                Ok(topic_key) => {
                    by_topic_key.insert(topic_key.to_owned(), value.clone());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring a stored dynamic config");
                }
            }
        }
        self.replicas.set_dynamic_defaults(by_topic_key)
    }

    fn delete_topic(&self, name: &str, revision: i64) -> Result<()> {
        let deleted = self.view.update(|i| {
            let older = i.topics.get(name).is_some_and(|t| t.revision < revision);
            if older {
                i.topics.remove(name);
                let doomed: Vec<_> = i.topic_states(name).map(|(p, _)| p).collect();
                for p in doomed {
                    i.states.remove(&(name.to_owned(), p));
                }
            }
            older
        });
        if deleted {
            tracing::info!(topic = %name, "topic deleted");
            self.replicas.remove_topic(name)?;
        }
        Ok(())
    }

    /// Follow the store until the task is aborted, re-reading everything
    /// whenever the watch breaks.
    pub async fn run(self: Arc<Self>) {
        // Changes between `load` and the first watch are caught by re-reading.
        let mut needs_relist = true;
        loop {
            let mut watch = self.store.watch(&self.keys.root());
            if needs_relist {
                match self.store.range(&self.keys.root()).await {
                    Ok(all) => {
                        if let Err(e) = self.apply_all(all) {
                            tracing::warn!(error = %e, "applying metadata failed");
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "metadata store unreachable; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            needs_relist = true;
            loop {
                match watch.next().await {
                    Ok(event) => {
                        if let Err(e) = self.apply(event) {
                            tracing::warn!(error = %e, "applying a metadata change failed");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metadata watch broke; re-reading the metadata");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    }
                }
            }
        }
    }
}
