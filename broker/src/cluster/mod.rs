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
    pub brokers: BTreeMap<i32, BrokerRecord>,
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

    /// The controller id to tell Kafka clients: the controller's, else
    /// `own` while that broker is live (any broker serves the admin
    /// requests clients send to the controller), else -1.
    pub fn controller_for_clients(&self, own: i32) -> i32 {
        match &self.controller {
            Some(c) => c.value.broker_id,
            None if self.brokers.contains_key(&own) => own,
            None => -1,
        }
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
            *self.addresses.write() = image
                .brokers
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
        image.brokers.insert(2, broker(2));
        image.brokers.insert(3, broker(3));
        assert_eq!(image.controller_for_clients(2), 2, "itself, not -1");
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
}
