//! Topic configs, by Kafka's names, with broker-wide defaults.
//!
//! A topic stores only its overrides (`TopicRecord::configs`); the effective
//! value of every key is "override, else dynamic cluster-wide default, else
//! the broker's static config, else Kafka's default" and is computed here,
//! so changing a default reaches every topic that did not override it —
//! Kafka's behaviour.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use runnel_proto::v1::{ConfigEntry, ConfigSource};

use crate::log::{LogConfig, TimestampType};
use crate::{Error, Result};

/// Value kinds we can validate.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A signed integer within `[min, max]`.
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// One of a fixed set of words.
    Enum(&'static [&'static str]),
}

/// One topic-level config key.
#[derive(Debug)]
struct Def {
    name: &'static str,
    kind: Kind,
    /// Kafka's default when the broker config does not set one.
    default: &'static str,
}

const NEVER: i64 = i64::MAX;

/// Every topic config Runnel understands. Unknown keys are refused, so a
/// typo never silently does nothing.
const DEFS: &[Def] = &[
    Def {
        name: "cleanup.policy",
        kind: Kind::Enum(&["delete"]),
        default: "delete",
    },
    Def {
        name: "flush.messages",
        kind: Kind::Int { min: 1, max: NEVER },
        default: "9223372036854775807",
    },
    Def {
        name: "flush.ms",
        kind: Kind::Int { min: 0, max: NEVER },
        default: "1000",
    },
    Def {
        name: "index.interval.bytes",
        kind: Kind::Int {
            min: 0,
            max: i32::MAX as i64,
        },
        default: "4096",
    },
    Def {
        name: "max.message.bytes",
        kind: Kind::Int {
            min: 61,
            max: i32::MAX as i64,
        },
        default: "1048588",
    },
    Def {
        name: "message.timestamp.after.max.ms",
        kind: Kind::Int { min: 0, max: NEVER },
        default: "3600000",
    },
    Def {
        name: "message.timestamp.before.max.ms",
        kind: Kind::Int { min: 0, max: NEVER },
        default: "9223372036854775807",
    },
    Def {
        name: "message.timestamp.type",
        kind: Kind::Enum(&["CreateTime", "LogAppendTime"]),
        default: "CreateTime",
    },
    Def {
        name: "min.insync.replicas",
        kind: Kind::Int {
            min: 1,
            max: i32::MAX as i64,
        },
        default: "1",
    },
    Def {
        name: "page.cache.drop.behind.bytes",
        kind: Kind::Int {
            min: -1,
            max: NEVER,
        },
        default: "-1",
    },
    Def {
        name: "preallocate",
        kind: Kind::Bool,
        default: "false",
    },
    Def {
        name: "retention.bytes",
        kind: Kind::Int {
            min: -1,
            max: NEVER,
        },
        default: "-1",
    },
    Def {
        name: "retention.ms",
        kind: Kind::Int {
            min: -1,
            max: NEVER,
        },
        default: "604800000",
    },
    Def {
        name: "segment.bytes",
        kind: Kind::Int {
            min: 1024,
            max: u32::MAX as i64,
        },
        default: "1073741824",
    },
    Def {
        name: "segment.index.bytes",
        kind: Kind::Int {
            min: 4096,
            max: i32::MAX as i64,
        },
        default: "10485760",
    },
    Def {
        name: "segment.ms",
        kind: Kind::Int { min: 1, max: NEVER },
        default: "604800000",
    },
    Def {
        name: "unclean.leader.election.enable",
        kind: Kind::Bool,
        default: "false",
    },
];

fn def(name: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.name == name)
}

/// The names of every supported topic config.
pub fn known_keys() -> impl Iterator<Item = &'static str> {
    DEFS.iter().map(|d| d.name)
}

/// Whether `key` is a topic config Runnel understands.
pub fn is_known(key: &str) -> bool {
    def(key).is_some()
}

/// The error for a key Runnel does not understand, listing the ones it does.
pub fn unknown_key(key: &str, value: &str) -> Error {
    let known: Vec<_> = known_keys().collect();
    Error::InvalidConfig {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: format!("unknown topic config; supported keys: {}", known.join(", ")),
    }
}

/// Check one key=value pair; the error says what is accepted.
pub fn validate(key: &str, value: &str) -> Result<()> {
    let invalid = |reason: String| Error::InvalidConfig {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let Some(def) = def(key) else {
        return Err(unknown_key(key, value));
    };
    match def.kind {
        Kind::Int { min, max } => {
            let v: i64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("expected an integer".into()))?;
            if v < min || v > max {
                return Err(invalid(format!("must be between {min} and {max}")));
            }
        }
        Kind::Bool => {
            if !matches!(value, "true" | "false") {
                return Err(invalid("expected true or false".into()));
            }
        }
        Kind::Enum(allowed) => {
            if !allowed.contains(&value) {
                let extra = if def.name == "cleanup.policy" && value.contains("compact") {
                    "; log compaction is not supported yet"
                } else {
                    ""
                };
                return Err(invalid(format!(
                    "expected one of: {}{extra}",
                    allowed.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// The defaults every topic config falls back to, keyed by topic config
/// name, in two layers kept apart: the broker's static config (file, env,
/// flags) and the dynamic cluster-wide defaults from the metadata store,
/// which win. Cheap to clone (a dozen short strings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDefaults {
    /// From this broker's configuration; fixed for the process' life.
    broker: BTreeMap<String, String>,
    /// `config/brokers/default` in the store; changes at run time.
    dynamic: BTreeMap<String, String>,
}

impl ConfigDefaults {
    /// Static defaults from the broker config; every entry is validated.
    pub fn new(values: BTreeMap<String, String>) -> Result<Self> {
        for (k, v) in &values {
            validate(k, v)?;
        }
        Ok(ConfigDefaults {
            broker: values,
            dynamic: BTreeMap::new(),
        })
    }

    /// These static defaults under `dynamic` ones (by topic config name,
    /// each validated), replacing any dynamic defaults set before.
    pub fn with_dynamic(&self, dynamic: BTreeMap<String, String>) -> Result<Self> {
        for (k, v) in &dynamic {
            validate(k, v)?;
        }
        Ok(ConfigDefaults {
            broker: self.broker.clone(),
            dynamic,
        })
    }

    /// The dynamic layer, by topic config name.
    pub fn dynamic(&self) -> &BTreeMap<String, String> {
        &self.dynamic
    }

    /// The default of topic config `key` and where it comes from, or
    /// `None` for a key Runnel does not know.
    pub fn effective(&self, key: &str) -> Option<(String, ConfigSource)> {
        def(key).map(|d| self.lookup(d))
    }

    /// Dynamic, else static broker config, else Kafka's default. A static
    /// value equal to Kafka's default reports `Default`: every static key
    /// has a value (the broker's built-in defaults are Kafka's), so this is
    /// how "nobody configured it" shows.
    fn lookup(&self, def: &Def) -> (String, ConfigSource) {
        if let Some(v) = self.dynamic.get(def.name) {
            return (v.clone(), ConfigSource::DynamicDefault);
        }
        match self.broker.get(def.name) {
            Some(v) if v != def.default => (v.clone(), ConfigSource::Broker),
            _ => (def.default.to_owned(), ConfigSource::Default),
        }
    }
}

/// The [`ConfigDefaults`] in force right now, shared by everything that
/// resolves topic configs (the replica manager, topic admin, the
/// controller), so all of them see a dynamic change at the same moment.
#[derive(Debug, Clone, Default)]
pub struct SharedDefaults(Arc<RwLock<ConfigDefaults>>);

impl SharedDefaults {
    pub fn new(defaults: ConfigDefaults) -> Self {
        SharedDefaults(Arc::new(RwLock::new(defaults)))
    }

    /// A snapshot of the current defaults.
    pub fn get(&self) -> ConfigDefaults {
        self.0.read().clone()
    }

    /// Swap in new defaults; returns whether they differ from the old.
    pub fn replace(&self, defaults: ConfigDefaults) -> bool {
        let mut current = self.0.write();
        let changed = *current != defaults;
        *current = defaults;
        changed
    }
}

/// A topic's effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Effective value of every known key.
    values: BTreeMap<&'static str, (String, ConfigSource)>,
}

impl TopicConfig {
    /// Validate `overrides` and merge them over `defaults`.
    pub fn resolve(
        overrides: &BTreeMap<String, String>,
        defaults: &ConfigDefaults,
    ) -> Result<Self> {
        for (k, v) in overrides {
            validate(k, v)?;
        }
        let values = DEFS
            .iter()
            .map(|d| {
                let entry = match overrides.get(d.name) {
                    Some(v) => (v.clone(), ConfigSource::Topic),
                    None => defaults.lookup(d),
                };
                (d.name, entry)
            })
            .collect();
        Ok(TopicConfig { values })
    }

    fn int(&self, key: &str) -> i64 {
        self.values[key]
            .0
            .trim()
            .parse()
            .expect("validated integer")
    }

    fn as_u64(&self, key: &str) -> u64 {
        u64::try_from(self.int(key)).unwrap_or(u64::MAX)
    }

    /// `min.insync.replicas`.
    pub fn min_insync_replicas(&self) -> u32 {
        self.int("min.insync.replicas") as u32
    }

    /// `unclean.leader.election.enable`: may an out-of-sync replica lead
    /// (losing acknowledged records) rather than the partition stay offline?
    pub fn unclean_leader_election(&self) -> bool {
        self.values["unclean.leader.election.enable"].0.trim() == "true"
    }

    /// The storage engine's view of this config.
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.as_u64("segment.bytes"),
            segment_ms: self.int("segment.ms"),
            retention_ms: self.int("retention.ms"),
            retention_bytes: self.int("retention.bytes"),
            max_message_bytes: self.int("max.message.bytes") as usize,
            index_interval_bytes: self.int("index.interval.bytes") as usize,
            segment_index_bytes: self.int("segment.index.bytes") as usize,
            flush_messages: self.as_u64("flush.messages"),
            flush_ms: self.as_u64("flush.ms"),
            page_cache_drop_behind_bytes: self.int("page.cache.drop.behind.bytes"),
            preallocate: self.values["preallocate"].0.trim() == "true",
            message_timestamp_type: match self.values["message.timestamp.type"].0.trim() {
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => TimestampType::CreateTime,
            },
            message_timestamp_before_max_ms: self.int("message.timestamp.before.max.ms"),
            message_timestamp_after_max_ms: self.int("message.timestamp.after.max.ms"),
        }
    }

    /// Every key with its effective value and source, for DescribeTopics.
    pub fn entries(&self) -> Vec<ConfigEntry> {
        self.values
            .iter()
            .map(|(name, (value, source))| ConfigEntry {
                name: (*name).to_owned(),
                value: value.clone(),
                source: *source as i32,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_beat_broker_defaults_beat_kafka_defaults() {
        let defaults = ConfigDefaults::new(map(&[("retention.ms", "1000")])).unwrap();
        let c = TopicConfig::resolve(&map(&[("segment.bytes", "4096")]), &defaults).unwrap();
        let log = c.log_config();
        assert_eq!(log.segment_bytes, 4096);
        assert_eq!(log.retention_ms, 1000);
        assert_eq!(log.retention_bytes, -1);
        let entries = c.entries();
        let src = |k: &str| entries.iter().find(|e| e.name == k).unwrap().source;
        assert_eq!(src("segment.bytes"), ConfigSource::Topic as i32);
        assert_eq!(src("retention.ms"), ConfigSource::Broker as i32);
        assert_eq!(src("retention.bytes"), ConfigSource::Default as i32);
    }

    #[test]
    fn topic_beats_dynamic_beats_static_beats_kafka_default() {
        let defaults = ConfigDefaults::new(map(&[
            ("retention.ms", "1000"),
            ("segment.bytes", "8192"),
            ("flush.ms", "1000"),
        ]))
        .unwrap()
        .with_dynamic(map(&[("retention.ms", "2000"), ("segment.ms", "60000")]))
        .unwrap();
        let c = TopicConfig::resolve(&map(&[("segment.ms", "5000")]), &defaults).unwrap();
        let entries = c.entries();
        let got = |k: &str| {
            let e = entries.iter().find(|e| e.name == k).unwrap();
            (e.value.as_str(), e.source)
        };
        // Topic override over a dynamic default.
        assert_eq!(got("segment.ms"), ("5000", ConfigSource::Topic as i32));
        // Dynamic over static.
        assert_eq!(
            got("retention.ms"),
            ("2000", ConfigSource::DynamicDefault as i32)
        );
        // Static over Kafka's default.
        assert_eq!(got("segment.bytes"), ("8192", ConfigSource::Broker as i32));
        // A static value equal to Kafka's default reports the default.
        assert_eq!(got("flush.ms"), ("1000", ConfigSource::Default as i32));
        assert_eq!(got("retention.bytes"), ("-1", ConfigSource::Default as i32));
        assert_eq!(c.log_config().retention_ms, 2000);
        assert_eq!(c.log_config().segment_ms, 5000);

        // Replacing the dynamic layer drops what it no longer holds.
        let back = defaults.with_dynamic(BTreeMap::new()).unwrap();
        assert_eq!(
            back.effective("retention.ms"),
            Some(("1000".into(), ConfigSource::Broker))
        );
        assert!(
            defaults
                .with_dynamic(map(&[("segment.bytes", "1")]))
                .is_err()
        );
    }

    #[test]
    fn shared_defaults_report_changes() {
        let shared = SharedDefaults::new(ConfigDefaults::default());
        let next = shared
            .get()
            .with_dynamic(map(&[("retention.ms", "5")]))
            .unwrap();
        assert!(shared.replace(next.clone()));
        assert!(!shared.replace(next), "same value is no change");
        assert_eq!(shared.get().dynamic()["retention.ms"], "5");
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        let d = ConfigDefaults::default();
        for (k, v, want) in [
            ("retention.ms", "soon", "integer"),
            ("retention.ms", "-2", "between -1"),
            ("cleanup.policy", "compact", "compaction is not supported"),
            ("unclean.leader.election.enable", "yes", "true or false"),
            ("preallocate", "1", "true or false"),
            ("retention.msec", "1", "supported keys: cleanup.policy"),
            ("segment.bytes", "10", "between 1024"),
        ] {
            let err = TopicConfig::resolve(&map(&[(k, v)]), &d)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{k}={v}: {err}");
        }
    }
}
