//! The key layout under `/runnel/<cluster>/` (DESIGN.md, docs/metadata.md).
//!
//! ```text
//! /runnel/<cluster>/topics/<name>                          TopicRecord (config, assignment)
//! /runnel/<cluster>/topics/<name>/partitions/<p>/state     PartitionState (leader, epoch, isr)
//! /runnel/<cluster>/brokers/<id>                           BrokerRecord (cluster mode)
//! /runnel/<cluster>/controller                             ControllerRecord, under the controller's lease
//! /runnel/<cluster>/controller_epoch                       ControllerEpoch (bumped by every election)
//! /runnel/<cluster>/producer-ids                           ProducerIdBlock (next unallocated id)
//! /runnel/<cluster>/config/brokers/default                 ClusterConfigRecord (dynamic cluster-wide defaults)
//! /runnel/<cluster>/groups/<g>/coordinator                 GroupCoordinatorRecord, under the coordinator's lease
//! /runnel/<cluster>/groups/<g>/offsets/<topic>/<p>         CommittedOffsetRecord
//! ```
//! Topic names cannot contain `/`, so a topic's own key and its partition
//! keys never collide with another topic's.

/// Builds keys for one cluster.
#[derive(Debug, Clone)]
pub struct Keys {
    root: String,
}

impl Keys {
    pub fn new(cluster: &str) -> Self {
        Keys {
            root: format!("/runnel/{cluster}/"),
        }
    }

    /// Prefix of every key of this cluster.
    pub fn root(&self) -> String {
        self.root.clone()
    }

    /// Prefix of every topic key (and their partition keys).
    pub fn topics_prefix(&self) -> String {
        format!("{}topics/", self.root)
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}topics/{name}", self.root)
    }

    /// Prefix of the topic's own partition keys (not of other topics whose
    /// name starts with this one's).
    pub fn topic_children(&self, name: &str) -> String {
        format!("{}topics/{name}/", self.root)
    }

    pub fn partition_state(&self, topic: &str, partition: u32) -> String {
        format!("{}topics/{topic}/partitions/{partition}/state", self.root)
    }

    /// Prefix of every broker registration key.
    pub fn brokers_prefix(&self) -> String {
        format!("{}brokers/", self.root)
    }

    /// A broker's registration, held under that broker's lease.
    pub fn broker(&self, id: i32) -> String {
        format!("{}brokers/{id}", self.root)
    }

    /// Who is controller: written under the winner's lease.
    pub fn controller(&self) -> String {
        format!("{}controller", self.root)
    }

    /// The last controller epoch; survives controllers (no lease).
    pub fn controller_epoch(&self) -> String {
        format!("{}controller_epoch", self.root)
    }

    /// The producer id allocator.
    pub fn producer_ids(&self) -> String {
        format!("{}producer-ids", self.root)
    }

    /// The dynamic cluster-wide defaults of topic configs (Kafka's
    /// `/config/brokers/<default>` znode). `config/` leaves room for
    /// per-broker dynamic configs (`config/brokers/<id>`) later.
    pub fn cluster_config(&self) -> String {
        format!("{}config/brokers/default", self.root)
    }

    /// Prefix of every consumer group key.
    /// ACLs, one key per resource pattern: `acls/<type>/<pattern>/<name>`.
    pub fn acls_prefix(&self) -> String {
        format!("{}acls/", self.root)
    }

    pub fn groups_prefix(&self) -> String {
        format!("{}groups/", self.root)
    }

    /// Prefix of one group's keys.
    pub fn group(&self, group: &str) -> String {
        format!("{}groups/{group}/", self.root)
    }

    /// Which broker coordinates `group`, under that broker's lease.
    pub fn group_coordinator(&self, group: &str) -> String {
        format!("{}groups/{group}/coordinator", self.root)
    }

    /// Prefix of `group`'s committed offsets.
    pub fn group_offsets(&self, group: &str) -> String {
        format!("{}groups/{group}/offsets/", self.root)
    }

    /// `group`'s committed offset for `topic`-`partition`.
    pub fn group_offset(&self, group: &str, topic: &str, partition: u32) -> String {
        format!("{}groups/{group}/offsets/{topic}/{partition}", self.root)
    }

    /// (group, rest) for a key under `groups/`.
    pub fn group_of<'k>(&self, key: &'k str) -> Option<(&'k str, &'k str)> {
        key.strip_prefix(&self.root)?
            .strip_prefix("groups/")?
            .split_once('/')
    }

    /// (topic, partition) of a committed-offset key of `group`.
    pub fn offset_of(&self, group: &str, key: &str) -> Option<(String, u32)> {
        let rest = key.strip_prefix(&self.group_offsets(group))?;
        let (topic, p) = rest.split_once('/')?;
        Some((topic.to_owned(), p.parse().ok()?))
    }

    /// The topic name if `key` is a topic's own key (not a partition key).
    pub fn topic_name_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        let rest = key.strip_prefix(&self.root)?.strip_prefix("topics/")?;
        (!rest.contains('/')).then_some(rest)
    }

    /// (topic, partition) if `key` is a partition state key.
    pub fn partition_of(&self, key: &str) -> Option<(String, u32)> {
        let rest = key.strip_prefix(&self.root)?.strip_prefix("topics/")?;
        let (topic, rest) = rest.split_once("/partitions/")?;
        let partition = rest.strip_suffix("/state")?.parse().ok()?;
        Some((topic.to_owned(), partition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips() {
        let k = Keys::new("prod");
        assert_eq!(k.topic("orders"), "/runnel/prod/topics/orders");
        assert_eq!(k.topic_name_of(&k.topic("orders")), Some("orders"));
        let p = k.partition_state("orders", 7);
        assert_eq!(p, "/runnel/prod/topics/orders/partitions/7/state");
        assert_eq!(k.topic_name_of(&p), None);
        assert_eq!(k.partition_of(&p), Some(("orders".into(), 7)));
        assert_eq!(k.partition_of(&k.topic("orders")), None);
        assert!(k.topic("orders").starts_with(&k.topics_prefix()));
        assert!(!k.topic("orders2").starts_with(&k.topic_children("orders")));
        assert_eq!(k.broker(3), "/runnel/prod/brokers/3");
        assert!(k.broker(3).starts_with(&k.brokers_prefix()));
        assert_eq!(k.cluster_config(), "/runnel/prod/config/brokers/default");
        assert!(!k.cluster_config().starts_with(&k.brokers_prefix()));
        assert!(
            k.cluster_config() < k.topics_prefix(),
            "listed before topics"
        );
    }
}
