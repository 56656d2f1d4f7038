//! The key layout under `/runnel/<cluster>/` (DESIGN.md, docs/metadata.md).
//!
//! ```text
//! /runnel/<cluster>/topics/<name>                          TopicRecord (config, assignment)
//! /runnel/<cluster>/topics/<name>/partitions/<p>/state     PartitionState (leader, epoch, isr)
//! /runnel/<cluster>/brokers/<id>                           BrokerRecord (cluster mode)
//! /runnel/<cluster>/controller                             ControllerRecord, under the controller's lease
//! /runnel/<cluster>/controller_epoch                       ControllerEpoch (bumped by every election)
//! /runnel/<cluster>/producer-ids                           ProducerIdBlock (next unallocated id)
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
    }
}
