//! What the brokers say about themselves, reduced to what the Cluster
//! reconciler decides on: live brokers, the controller, every partition's
//! replicas and ISR with its topic's `min.insync.replicas`, and running
//! reassignments.

use std::collections::{BTreeMap, BTreeSet};

use runnel_client::Admin;
/// One partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub topic: String,
    pub partition: u32,
    /// -1 when offline.
    pub leader: i32,
    /// Preferred leader first.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// The topic's effective `min.insync.replicas`.
    pub min_insync: usize,
}

impl PartitionView {
    /// Fewer in-sync replicas than replicas.
    pub fn under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }

    pub fn offline(&self) -> bool {
        self.leader < 0
    }
}

/// The cluster as the admin API reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Registered (live) broker ids.
    pub brokers: BTreeSet<i32>,
    pub controller: Option<i32>,
    pub partitions: Vec<PartitionView>,
    /// Partitions with a reassignment in progress.
    pub reassigning: BTreeSet<(String, u32)>,
}

impl ClusterView {
    pub fn under_replicated(&self) -> usize {
        self.partitions
            .iter()
            .filter(|p| p.under_replicated())
            .count()
    }

    pub fn offline(&self) -> usize {
        self.partitions.iter().filter(|p| p.offline()).count()
    }

    /// Replicas each broker in `brokers` holds (0 for brokers holding none).
    pub fn replica_counts(&self, brokers: &BTreeSet<i32>) -> BTreeMap<i32, usize> {
        let mut counts: BTreeMap<i32, usize> = brokers.iter().map(|b| (*b, 0)).collect();
        for p in &self.partitions {
            for r in &p.replicas {
                if let Some(c) = counts.get_mut(r) {
                    *c += 1;
                }
            }
        }
        counts
    }

    /// Replicas held by `broker`.
    pub fn replicas_on(&self, broker: i32) -> usize {
        self.partitions
            .iter()
            .filter(|p| p.replicas.contains(&broker))
            .count()
    }

    /// Ask the brokers: metadata (brokers, controller), every topic's
    /// partitions and `min.insync.replicas`, running reassignments.
    pub async fn fetch(admin: &Admin) -> runnel_client::Result<ClusterView> {
        let metadata = admin.metadata(&[]).await?;
        let names: Vec<String> = admin
            .list_topics_with(true)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let topics = if refs.is_empty() {
            Vec::new()
        } else {
            admin.describe_topics(&refs).await?
        };
        let mut partitions = Vec::new();
        for topic in topics {
            let min_insync = topic
                .configs
                .iter()
                .find(|c| c.name == "min.insync.replicas")
                .and_then(|c| c.value.parse().ok())
                .unwrap_or(1);
            for p in topic.partitions {
                partitions.push(PartitionView {
                    topic: topic.name.clone(),
                    partition: p.partition,
                    leader: p.leader,
                    replicas: p.replicas,
                    isr: p.isr,
                    min_insync,
                });
            }
        }
        let reassigning = admin
            .list_partition_reassignments(&[])
            .await?
            .into_iter()
            .map(|r| (r.topic, r.partition))
            .collect();
        Ok(ClusterView {
            brokers: metadata.brokers.iter().map(|b| b.id).collect(),
            controller: (metadata.controller_id >= 0).then_some(metadata.controller_id),
            partitions,
            reassigning,
        })
    }
}
