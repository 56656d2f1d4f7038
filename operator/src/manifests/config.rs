//! The broker's config file: `spec.config` (Kafka-named keys, string values)
//! rendered as the TOML the broker reads with `--config`, in ConfigMap
//! `<c>-config`, and the hash of it that the broker pod template carries so
//! that a config change makes a new StatefulSet revision.
//!
//! Only static settings go into the file. Dynamic ones (the cluster-wide
//! defaults of topic configs, `log.retention.ms` and the like —
//! [`runnel_broker::config::is_dynamic`]) are applied live by the Cluster
//! reconciler through the admin API, so changing them restarts nothing.
//!
//! The file is checked with the broker's own parser
//! ([`runnel_broker::config::check_config_file`]), so a key or value the
//! broker would refuse at startup is refused here, when the Cluster is
//! reconciled, rather than as crash-looping pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{names, object_meta};
use crate::crd::Cluster;
use crate::{Error, Result};

/// Directory the ConfigMap is mounted at in broker pods.
pub const CONFIG_DIR: &str = "/etc/runnel";

/// The ConfigMap key (and so the file name under [`CONFIG_DIR`]).
pub const CONFIG_FILE: &str = "server.toml";

/// Pod template annotation holding [`config_hash`] of the broker config.
pub const CONFIG_HASH_ANNOTATION: &str = "runnel.dev/config-hash";

/// Broker settings the operator sets itself (through environment variables,
/// which beat the file), with where their value comes from. A user value
/// would be silently overridden or, worse, break the cluster's wiring, so
/// they are refused.
pub const OPERATOR_OWNED_KEYS: [(&str, &str); 21] = [
    ("broker.id", "the pod's StatefulSet index"),
    ("listen", "spec.listeners.grpc"),
    ("http.listen", "spec.listeners.http"),
    ("data.dir", "the pod's volume"),
    ("etcd.endpoints", "spec.metadataStore"),
    ("cluster.name", "the Cluster's namespace and name"),
    ("advertised.listener", "the pod's DNS name"),
    ("kafka.listen", "spec.kafka.port"),
    (
        "kafka.advertised.listener",
        "the pod's DNS name and spec.kafka.port",
    ),
    ("kafka.shared.listener", "spec.kafka"),
    ("broker.rack", "spec.rack"),
    ("ssl.certificate.location", "spec.security.tls"),
    ("ssl.key.location", "spec.security.tls"),
    ("ssl.ca.location", "spec.security.tls"),
    ("ssl.client.auth", "spec.security.tls.clientAuth"),
    ("authorizer.enable", "spec.security.authorization"),
    ("super.users", "spec.security.authorization.superUsers"),
    (
        "allow.everyone.if.no.acl.found",
        "spec.security.authorization.allowEveryoneIfNoAclFound",
    ),
    (
        "auth.tokens.file",
        "User resources with authentication.type Token",
    ),
    (
        "auth.token.review.enable",
        "spec.security.authentication.serviceAccountTokens",
    ),
    (
        "auth.token.review.audiences",
        "spec.security.authentication.audiences",
    ),
];

/// The static part of `spec.config` as the broker's TOML config file (the
/// whole of it is checked). Values become TOML
/// integers when they parse as `i64`, booleans when `true`/`false`, strings
/// otherwise (a Kubernetes map holds only strings, the broker's file wants
/// typed values). Refuses operator-owned keys, and keys or values the broker
/// refuses, naming the key.
pub fn broker_config_toml(cluster: &Cluster) -> Result<String> {
    let config = &cluster.spec.config;
    for key in config.keys() {
        if let Some((_, source)) = OPERATOR_OWNED_KEYS.iter().find(|(k, _)| k == key) {
            return Err(Error::InvalidSpec(format!(
                "spec.config: {key:?} is set by the operator (from {source}) and cannot be set in spec.config"
            )));
        }
    }
    let text = render(config);
    if let Err(whole) = runnel_broker::config::check_config_file(&text) {
        // Name the key: the first one the broker refuses on its own (an
        // unknown key, a value of the wrong type or out of range). If each
        // is fine alone, it is their combination (a fetch wait not below the
        // ISR lag time).
        for (key, value) in config {
            let one = render(&BTreeMap::from([(key.clone(), value.clone())]));
            if let Err(e) = runnel_broker::config::check_config_file(&one) {
                return Err(Error::InvalidSpec(format!(
                    "spec.config: the broker refuses {key:?} = {value:?}: {}",
                    reason(&e.to_string())
                )));
            }
        }
        return Err(Error::InvalidSpec(format!(
            "spec.config: the broker refuses the combination: {}",
            reason(&whole.to_string())
        )));
    }
    let statics: BTreeMap<String, String> = config
        .iter()
        .filter(|(key, _)| !runnel_broker::config::is_dynamic(key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(render(&statics))
}

/// The dynamic part of `spec.config`: cluster-wide defaults the brokers
/// take live (Kafka's dynamic broker configs at the cluster default).
pub fn dynamic_config(cluster: &Cluster) -> BTreeMap<String, String> {
    cluster
        .spec
        .config
        .iter()
        .filter(|(key, _)| runnel_broker::config::is_dynamic(key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What the broker said, without the TOML parser's quote of the offending
/// line (line, caret, over several lines, before the reason on the last):
/// the caller names the key, and a condition message or event reads better
/// on one line.
fn reason(message: &str) -> &str {
    message
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or(message)
}

fn render(config: &BTreeMap<String, String>) -> String {
    let table: toml::Table = config
        .iter()
        .map(|(key, value)| (key.clone(), typed(value)))
        .collect();
    format!(
        "# Generated by runnel-operator from the Cluster's spec.config; edit that instead.\n{}",
        toml::to_string(&table).expect("a table of scalars serializes to TOML")
    )
}

fn typed(value: &str) -> toml::Value {
    if let Ok(n) = value.parse::<i64>() {
        toml::Value::Integer(n)
    } else if value == "true" || value == "false" {
        toml::Value::Boolean(value == "true")
    } else {
        toml::Value::String(value.to_owned())
    }
}

/// ConfigMap `<c>-config` holding [`CONFIG_FILE`].
pub fn config_map(cluster: &Cluster) -> Result<ConfigMap> {
    Ok(ConfigMap {
        metadata: object_meta(cluster, names::config_map(cluster), "broker")?,
        data: Some(BTreeMap::from([(
            CONFIG_FILE.to_owned(),
            broker_config_toml(cluster)?,
        )])),
        ..ConfigMap::default()
    })
}

/// A stable hash of the config file (64-bit FNV-1a, hex). Stable across
/// operator builds and platforms — unlike `std`'s `DefaultHasher` — because
/// a different value after an operator upgrade would roll every broker.
pub fn config_hash(toml: &str) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = toml
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::samples;

    fn with_config(pairs: &[(&str, &str)]) -> Cluster {
        let mut cluster = samples::minimal();
        cluster.spec.config = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cluster
    }

    #[test]
    fn values_are_typed_and_the_broker_accepts_them() {
        let cluster = with_config(&[
            ("log.retention.ms", "-1"),
            ("auto.leader.rebalance.enable", "false"),
            ("num.partitions", "6"),
        ]);
        let text = broker_config_toml(&cluster).unwrap();
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["num.partitions"], toml::Value::Integer(6));
        assert_eq!(
            parsed["auto.leader.rebalance.enable"],
            toml::Value::Boolean(false)
        );
        let broker = runnel_broker::BrokerConfig::from_toml(&text).unwrap();
        assert_eq!(broker.num_partitions, 6);
        assert!(!broker.auto_leader_rebalance_enable);
    }

    #[test]
    fn operator_owned_keys_are_refused_by_name() {
        for (key, _) in OPERATOR_OWNED_KEYS {
            let err = broker_config_toml(&with_config(&[(key, "1")])).unwrap_err();
            assert!(matches!(err, Error::InvalidSpec(_)), "{err:?}");
            let message = err.to_string();
            assert!(
                message.contains(&format!("{key:?} is set by the operator")),
                "{message}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let err = broker_config_toml(&with_config(&[
            ("num.partitions", "3"),
            ("log.retention.mins", "5"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("\"log.retention.mins\"") && err.contains("unknown field"),
            "{err}"
        );
        assert!(!err.contains('\n'), "one line: {err}");
        let err = broker_config_toml(&with_config(&[("num.partitions", "many")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"num.partitions\" = \"many\"") && err.contains("invalid type"),
            "{err}"
        );
        // Valid alone, refused together: the whole file is checked too.
        let err = broker_config_toml(&with_config(&[
            ("replica.fetch.wait.max.ms", "20000"),
            ("replica.lag.time.max.ms", "10000"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("combination") && err.contains("replica.fetch.wait.max.ms"),
            "{err}"
        );
        // A combination valid together though not with the defaults.
        broker_config_toml(&with_config(&[
            ("replica.fetch.wait.max.ms", "100"),
            ("replica.lag.time.max.ms", "400"),
        ]))
        .unwrap();
    }

    #[test]
    fn dynamic_keys_stay_out_of_the_file_and_so_out_of_the_hash() {
        let a = with_config(&[("num.partitions", "3"), ("log.retention.ms", "1000")]);
        let b = with_config(&[("num.partitions", "3"), ("log.retention.ms", "2000")]);
        let (text_a, text_b) = (
            broker_config_toml(&a).unwrap(),
            broker_config_toml(&b).unwrap(),
        );
        assert!(!text_a.contains("log.retention.ms"), "{text_a}");
        assert_eq!(
            config_hash(&text_a),
            config_hash(&text_b),
            "a dynamic change must not roll"
        );
        assert_eq!(
            dynamic_config(&b),
            BTreeMap::from([("log.retention.ms".to_owned(), "2000".to_owned())])
        );
        // Still checked: a bad dynamic value is refused like any other.
        let bad = with_config(&[("log.retention.ms", "soon")]);
        assert!(broker_config_toml(&bad).is_err());
    }

    #[test]
    fn config_hash_follows_the_config() {
        let a = broker_config_toml(&with_config(&[("num.partitions", "3")])).unwrap();
        let b = broker_config_toml(&with_config(&[("num.partitions", "4")])).unwrap();
        assert_ne!(config_hash(&a), config_hash(&b));
        assert_eq!(config_hash(&a), config_hash(&a.clone()));
        // Pinned: the hash must not change between operator builds, or an
        // operator upgrade would roll every broker.
        assert_eq!(config_hash(""), "cbf29ce484222325");
        assert_eq!(config_hash("a"), "af63dc4c8601ec8c");
    }

    #[test]
    fn config_map_holds_the_file() {
        let cluster = with_config(&[("num.partitions", "3")]);
        let cm = config_map(&cluster).unwrap();
        assert_eq!(cm.metadata.name.as_deref(), Some("minimal-config"));
        let data = cm.data.unwrap();
        assert!(data[CONFIG_FILE].contains("\"num.partitions\" = 3"));
    }
}
