//! Dynamic cluster-wide defaults of topic configs (Kafka's dynamic broker
//! configs at `--entity-default`): describe them, and change them with one
//! compare-and-swap on `config/brokers/default`.
//!
//! Only the broker keys in [`crate::config::DYNAMIC_CONFIGS`] are accepted.
//! Every broker follows the key through [`MetadataSync`] and re-resolves
//! every topic's config when it changes; this module only validates and
//! writes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use runnel_proto::v1::ClusterConfigEntry;

use crate::cluster::sync::MetadataSync;
use crate::config::{DYNAMIC_CONFIGS, check_dynamic_key, validate_dynamic};
use crate::meta::keys::Keys;
use crate::meta::records::{self, ClusterConfigRecord, VERSION};
use crate::meta::{Compare, KeyValue, MetadataStore, Op, WatchEvent};
use crate::replica::ReplicaManager;
use crate::topic::ConfigDefaults;
use crate::{Error, Result};

/// Compare-and-swap attempts before giving up: each failure means another
/// alter landed in between, which a human-driven API sees rarely.
const CAS_ATTEMPTS: usize = 5;

/// Describes and alters the dynamic cluster-wide defaults.
pub struct ClusterConfigs {
    store: Arc<dyn MetadataStore>,
    keys: Keys,
    replicas: Arc<ReplicaManager>,
    sync: Arc<MetadataSync>,
}

impl std::fmt::Debug for ClusterConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfigs").finish_non_exhaustive()
    }
}

impl ClusterConfigs {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        keys: Keys,
        replicas: Arc<ReplicaManager>,
        sync: Arc<MetadataSync>,
    ) -> Self {
        ClusterConfigs {
            store,
            keys,
            replicas,
            sync,
        }
    }

    /// Every dynamic key with the value in force on this broker.
    pub fn describe(&self) -> Vec<ClusterConfigEntry> {
        describe(&self.replicas.defaults())
    }

    /// Set and remove dynamic defaults, all or nothing; returns every
    /// dynamic key as it is afterwards (or would be, with `validate_only`).
    /// A request wrong as a whole (a static or unknown key, a bad value, a
    /// key both set and deleted, nothing to do) writes nothing.
    pub async fn alter(
        &self,
        set: &HashMap<String, String>,
        delete: &[String],
        validate_only: bool,
    ) -> Result<Vec<ClusterConfigEntry>> {
        if set.is_empty() && delete.is_empty() {
            return Err(Error::InvalidRequest(
                "nothing to change: give configs to set or to delete".into(),
            ));
        }
        // Sorted, so the first bad key reported does not depend on hashing.
        let set: BTreeMap<&String, &String> = set.iter().collect();
        for (key, value) in &set {
            validate_dynamic(key, value)?;
        }
        for key in delete {
            check_dynamic_key(key, "")?;
            if set.contains_key(key) {
                return Err(Error::InvalidRequest(format!(
                    "{key} is both set and deleted; do one or the other"
                )));
            }
        }
        let key = self.keys.cluster_config();
        for _ in 0..CAS_ATTEMPTS {
            let current = self.store.get(&key).await?;
            let (revision, mut record) = match &current {
                Some(kv) => (
                    kv.mod_revision,
                    records::decode::<ClusterConfigRecord>(&key, &kv.value)?,
                ),
                None => (0, ClusterConfigRecord::default()),
            };
            let before = record.configs.clone();
            record.version = VERSION;
            for k in delete {
                record.configs.remove(k);
            }
            for (k, v) in &set {
                record.configs.insert((*k).clone(), (*v).clone());
            }
            if validate_only || record.configs == before {
                let after = self
                    .replicas
                    .defaults()
                    .with_dynamic(by_topic_key(&record))?;
                return Ok(describe(&after));
            }
            // An empty record is no record: the key goes, as if never set.
            let op = if record.configs.is_empty() {
                Op::Delete(key.clone())
            } else {
                Op::Put(key.clone(), records::encode(&record))
            };
            let outcome = self
                .store
                .txn(
                    vec![Compare::ModRevision(key.clone(), revision)],
                    vec![op.clone()],
                )
                .await?;
            if !outcome.succeeded {
                // Another alter landed in between: merge into its result.
                continue;
            }
            tracing::info!(configs = ?record.configs, "dynamic cluster configs changed");
            // Apply it here now so the answer shows it (the watch brings it
            // again, harmlessly).
            self.sync.apply(match op {
                Op::Put(key, value) => WatchEvent::Put(KeyValue {
                    key,
                    value,
                    create_revision: outcome.revision,
                    mod_revision: outcome.revision,
                    lease: None,
                }),
                _ => WatchEvent::Delete {
                    key,
                    mod_revision: outcome.revision,
                },
            })?;
            return Ok(self.describe());
        }
        Err(Error::Metadata(format!(
            "{key} kept changing concurrently ({CAS_ATTEMPTS} attempts); retry"
        )))
    }
}

/// A stored record's entries by topic config name (already validated).
fn by_topic_key(record: &ClusterConfigRecord) -> BTreeMap<String, String> {
    record
        .configs
        .iter()
        .filter_map(|(k, v)| Some((validate_dynamic(k, v).ok()?.to_owned(), v.clone())))
        .collect()
}

/// Every dynamic key, sorted by broker key, with its value and source
/// under `defaults`.
pub fn describe(defaults: &ConfigDefaults) -> Vec<ClusterConfigEntry> {
    DYNAMIC_CONFIGS
        .iter()
        .filter_map(|d| {
            let (value, source) = defaults.effective(d.topic_key)?;
            Some(ClusterConfigEntry {
                name: d.broker_key.to_owned(),
                value,
                source: source as i32,
                topic_config: d.topic_key.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use runnel_proto::v1::ConfigSource;

    use super::*;
    use crate::cluster::ClusterView;
    use crate::config::BrokerConfig;
    use crate::log::LogManager;
    use crate::meta::embedded::EmbeddedStore;
    use crate::replica::fetcher::{FetchSettings, FetcherManager};

    /// One broker's view of a shared store: replicas, sync, admin.
    struct Node {
        configs: ClusterConfigs,
        sync: Arc<MetadataSync>,
    }

    fn node(store: Arc<dyn MetadataStore>, dir: &std::path::Path) -> Node {
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
        Node {
            configs: ClusterConfigs::new(store, keys, replicas, sync.clone()),
            sync,
        }
    }

    fn set(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn entry(entries: &[ClusterConfigEntry], name: &str) -> (String, ConfigSource) {
        let e = entries.iter().find(|e| e.name == name).unwrap();
        (e.value.clone(), e.source())
    }

    async fn stored(store: &Arc<dyn MetadataStore>) -> Option<ClusterConfigRecord> {
        let key = Keys::new("test").cluster_config();
        let kv = store.get(&key).await.unwrap()?;
        Some(records::decode(&key, &kv.value).unwrap())
    }

    #[tokio::test]
    async fn alter_writes_one_record_that_other_brokers_load() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> =
            Arc::new(EmbeddedStore::open(&dir.path().join("meta")).unwrap());
        let a = node(store.clone(), &dir.path().join("a"));
        let b = node(store.clone(), &dir.path().join("b"));

        let after = a
            .configs
            .alter(&set(&[("log.retention.ms", "3600000")]), &[], false)
            .await
            .unwrap();
        assert_eq!(
            entry(&after, "log.retention.ms"),
            ("3600000".into(), ConfigSource::DynamicDefault)
        );
        assert_eq!(entry(&after, "log.retention.ms").0, "3600000");
        // Another broker that has not loaded yet still sees the default.
        assert_eq!(
            entry(&b.configs.describe(), "log.retention.ms").1,
            ConfigSource::Default
        );
        b.sync.load().await.unwrap();
        assert_eq!(
            entry(&b.configs.describe(), "log.retention.ms"),
            ("3600000".into(), ConfigSource::DynamicDefault)
        );

        // b's alter merges with a's (compare-and-swap on the current record).
        b.configs
            .alter(&set(&[("log.segment.bytes", "4096")]), &[], false)
            .await
            .unwrap();
        let record = stored(&store).await.unwrap();
        assert_eq!(record.version, 1);
        assert_eq!(
            record.configs.keys().collect::<Vec<_>>(),
            ["log.retention.ms", "log.segment.bytes"]
        );

        // Removing every entry removes the key; a re-list on `a` notices.
        b.configs
            .alter(
                &HashMap::new(),
                &["log.retention.ms".into(), "log.segment.bytes".into()],
                false,
            )
            .await
            .unwrap();
        assert!(stored(&store).await.is_none());

        // `a` follows the store through its watch: it sees b's change and
        // the delete without being told.
        let following = tokio::spawn(a.sync.clone().run());
        let seen = |want: ConfigSource| {
            let a = &a;
            async move {
                for _ in 0..200 {
                    if entry(&a.configs.describe(), "log.segment.bytes").1 == want {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("broker a never saw log.segment.bytes from {want:?}");
            }
        };
        seen(ConfigSource::Default).await;
        b.configs
            .alter(&set(&[("log.segment.bytes", "4096")]), &[], false)
            .await
            .unwrap();
        seen(ConfigSource::DynamicDefault).await;
        b.configs
            .alter(&HashMap::new(), &["log.segment.bytes".into()], false)
            .await
            .unwrap();
        seen(ConfigSource::Default).await;
        following.abort();
    }

    #[tokio::test]
    async fn wrong_requests_and_validate_only_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> =
            Arc::new(EmbeddedStore::open(&dir.path().join("meta")).unwrap());
        let a = node(store.clone(), &dir.path().join("a"));
        let would = a
            .configs
            .alter(&set(&[("min.insync.replicas", "2")]), &[], true)
            .await
            .unwrap();
        assert_eq!(
            entry(&would, "min.insync.replicas"),
            ("2".into(), ConfigSource::DynamicDefault)
        );
        assert!(stored(&store).await.is_none(), "validate_only wrote");
        assert_eq!(
            entry(&a.configs.describe(), "min.insync.replicas").1,
            ConfigSource::Default
        );
        for (set_, delete, code) in [
            // One good key does not let a bad one through.
            (
                set(&[("log.retention.ms", "1"), ("data.dir", "/x")]),
                vec![],
                "INVALID_CONFIG",
            ),
            (set(&[("log.retention.ms", "-5")]), vec![], "INVALID_CONFIG"),
            (HashMap::new(), vec!["nope".to_string()], "INVALID_CONFIG"),
            (
                set(&[("log.retention.ms", "1")]),
                vec!["log.retention.ms".to_string()],
                "INVALID_REQUEST",
            ),
            (HashMap::new(), vec![], "INVALID_REQUEST"),
        ] {
            let err = a.configs.alter(&set_, &delete, false).await.unwrap_err();
            assert_eq!(err.error_code().as_str_name(), code, "{err}");
            assert_eq!(err.grpc_code(), tonic::Code::InvalidArgument, "{err}");
        }
        assert!(stored(&store).await.is_none(), "a refused request wrote");
    }
}
