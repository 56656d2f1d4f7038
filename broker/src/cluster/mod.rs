//! This broker's picture of the cluster, mirrored from the metadata store.
//!
//! [`ClusterView`] holds the live brokers, the controller and every topic's
//! record and partition states, as last seen in the store. [`sync`] keeps
//! it current from one prefix watch over `/runnel/<cluster>/` and pushes
//! each change into the [`crate::replica::ReplicaManager`] (open logs,
//! become leader or follower, adopt new dynamic config defaults). The controller plans from this view and
//! relies on compare-and-swap, not on the view being perfectly fresh.

pub mod sync;

use std::collections::BTreeMap;

use parking_lot::RwLock;
use tokio::sync::watch;

use crate::auth::acl::{AclEntry, PatternType, ResourcePattern, ResourceType};
use crate::meta::records::{
    BrokerRecord, ClusterConfigRecord, ControllerRecord, PartitionState, TopicRecord,
};
use crate::replica::fetcher::BrokerAddresses;

/// A stored value and the store revision it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: i64,
}

/// Everything the store says about the cluster.
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// The live brokers: those whose registration (under its lease) is in
    /// the store.
    pub brokers: BTreeMap<i32, BrokerRecord>,
    /// Every registration seen since start-up, kept after its lease
    /// lapses (replaced when the broker registers again): where a broker
    /// was last, for replica fetchers and for Kafka clients told of a
    /// leader. When etcd stalls for longer than the lease TTL, every
    /// broker's registration lapses at once, while the brokers serve on.
    pub known_brokers: BTreeMap<i32, BrokerRecord>,
    pub controller: Option<Versioned<ControllerRecord>>,
    pub topics: BTreeMap<String, Versioned<TopicRecord>>,
    pub states: BTreeMap<(String, u32), Versioned<PartitionState>>,
    /// Dynamic cluster-wide config defaults (`config/brokers/default`).
    pub cluster_config: Option<Versioned<ClusterConfigRecord>>,
    /// Access control entries by resource pattern (`acls/...`).
    pub acls: BTreeMap<ResourcePattern, Versioned<Vec<AclEntry>>>,
}

impl Image {
    /// The ACL patterns of one resource type.
    pub fn acls_of(
        &self,
        resource_type: ResourceType,
    ) -> impl Iterator<Item = (&ResourcePattern, &Versioned<Vec<AclEntry>>)> {
        let from = ResourcePattern {
            resource_type,
            pattern_type: PatternType::Literal,
            name: String::new(),
        };
        self.acls
            .range(from..)
            .take_while(move |(p, _)| p.resource_type == resource_type)
    }

    /// Record a broker's registration (live, and known).
    pub fn register_broker(&mut self, broker: BrokerRecord) {
        self.known_brokers.insert(broker.broker_id, broker.clone());
        self.brokers.insert(broker.broker_id, broker);
    }

    /// The controller id to tell Kafka clients: the controller's, else
    /// `own` once that broker has registered (any broker serves the admin
    /// requests clients send to the controller), else -1.
    pub fn controller_for_clients(&self, own: i32) -> i32 {
        match &self.controller {
            Some(c) => c.value.broker_id,
            None if self.known_brokers.contains_key(&own) => own,
            None => -1,
        }
    }

    /// The brokers to tell Kafka clients of, by id: the live ones, and
    /// from their last registration `own` and every broker `named` (the
    /// leaders an answer points to) even while their leases have lapsed.
    ///
    /// Kafka clients forget every broker a Metadata answer leaves out
    /// (librdkafka decommissions them). An answer listing no broker, as
    /// one from a broker that has just seen every lease lapse in an etcd
    /// stall would, leaves a client with nobody to ask again; the broker
    /// answering is reachable by definition, so it is always listed.
    pub fn brokers_for_clients(&self, own: i32, named: impl Fn(i32) -> bool) -> Vec<&BrokerRecord> {
        let mut listed: BTreeMap<i32, &BrokerRecord> =
            self.brokers.iter().map(|(id, b)| (*id, b)).collect();
        for (id, b) in &self.known_brokers {
            if *id == own || named(*id) {
                listed.entry(*id).or_insert(b);
            }
        }
        listed.into_values().collect()
    }

    /// The partition states of `topic`, by partition.
    pub fn topic_states(
        &self,
        topic: &str,
    ) -> impl Iterator<Item = (u32, &Versioned<PartitionState>)> {
        self.states
            .range((topic.to_owned(), 0)..=(topic.to_owned(), u32::MAX))
            .map(|((_, p), s)| (*p, s))
    }
}

/// The shared, watchable [`Image`].
#[derive(Debug)]
pub struct ClusterView {
    image: RwLock<Image>,
    /// Bumped after every change: the controller waits on it.
    changes: watch::Sender<u64>,
    /// Broker addresses for the replica fetchers.
    addresses: BrokerAddresses,
}

impl ClusterView {
    pub fn new(addresses: BrokerAddresses) -> Self {
        ClusterView {
            image: RwLock::new(Image::default()),
            changes: watch::channel(0).0,
            addresses,
        }
    }

    /// A copy of the current image.
    pub fn snapshot(&self) -> Image {
        self.image.read().clone()
    }

    /// Read the image without copying it.
    pub fn read<R>(&self, f: impl FnOnce(&Image) -> R) -> R {
        f(&self.image.read())
    }

    /// Change the image and tell watchers.
    pub fn update<R>(&self, f: impl FnOnce(&mut Image) -> R) -> R {
        let r = {
            let mut image = self.image.write();
            let r = f(&mut image);
            // Last known addresses: a follower keeps fetching from its
            // leader while their registrations are briefly gone.
            *self.addresses.write() = image
                .known_brokers
                .values()
                .map(|b| (b.broker_id, format!("{}:{}", b.host, b.port)))
                .collect();
            r
        };
        self.changes.send_modify(|n| *n += 1);
        r
    }

    /// Wakes after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Live broker ids.
    pub fn live_brokers(&self) -> Vec<i32> {
        self.image.read().brokers.keys().copied().collect()
    }

    /// The controller's broker id, or -1.
    pub fn controller_id(&self) -> i32 {
        self.image
            .read()
            .controller
            .as_ref()
            .map_or(-1, |c| c.value.broker_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: i32) -> BrokerRecord {
        BrokerRecord {
            version: 1,
            broker_id: id,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
            http_port: None,
            kafka: None,
        }
    }

    #[test]
    fn kafka_clients_are_told_a_controller_before_one_is_elected() {
        let mut image = Image::default();
        // Not registered yet: nobody to name.
        assert_eq!(image.controller_for_clients(2), -1);
        image.register_broker(broker(2));
        image.register_broker(broker(3));
        assert_eq!(image.controller_for_clients(2), 2, "itself, not -1");
        image.brokers.clear();
        assert_eq!(
            image.controller_for_clients(2),
            2,
            "still itself while every lease has lapsed"
        );
        image.register_broker(broker(2));
        image.controller = Some(Versioned {
            value: ControllerRecord {
                version: 1,
                broker_id: 3,
                epoch: 1,
            },
            revision: 7,
        });
        assert_eq!(image.controller_for_clients(2), 3, "the elected one");
    }

    fn ids(brokers: Vec<&BrokerRecord>) -> Vec<i32> {
        brokers.iter().map(|b| b.broker_id).collect()
    }

    #[test]
    fn kafka_clients_are_told_of_this_broker_and_the_leaders_they_need_while_leases_lapse() {
        let mut image = Image::default();
        assert!(
            image.brokers_for_clients(1, |_| false).is_empty(),
            "not registered yet"
        );
        for id in 1..=4 {
            image.register_broker(broker(id));
        }
        assert_eq!(ids(image.brokers_for_clients(1, |_| false)), [1, 2, 3, 4]);
        // An etcd stall: every registration lapsed at once.
        image.brokers.clear();
        assert_eq!(ids(image.brokers_for_clients(1, |_| false)), [1], "itself");
        assert_eq!(
            ids(image.brokers_for_clients(1, |id| id == 3)),
            [1, 3],
            "and the leader an answer names, at its last address"
        );
        // Broker 2 is back, at a new address; 4 is gone and named by nobody.
        let mut moved = broker(2);
        moved.host = "10.0.0.2".into();
        image.register_broker(moved);
        let listed = image.brokers_for_clients(1, |id| id == 3);
        assert_eq!(ids(listed.clone()), [1, 2, 3]);
        assert_eq!(listed[1].host, "10.0.0.2");
    }
}
