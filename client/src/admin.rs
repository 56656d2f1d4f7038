//! [`Admin`]: topic administration, dynamic cluster configs and cluster
//! metadata.
//!
//! Thin wrappers over the `Admin` gRPC service: each method is one call, the
//! results are the generated `runnel.v1` messages (re-exported at the crate
//! root), and failures are [`Error::Server`](crate::Error::Server) with the
//! broker's Kafka-style code. Any broker can answer them: a call goes to
//! the broker that answered last and, if that one is unreachable, to the
//! next known broker (`Cluster::call_any`).

use std::collections::BTreeMap;
use std::sync::Arc;

use runnel_proto::v1::{
    AclBinding, AclFilter, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
};
use runnel_proto::v1::{
    AlterClusterConfigsRequest, ClusterConfigEntry, DescribeClusterConfigsRequest,
};
use runnel_proto::v1::{
    AlterPartitionReassignmentsRequest, AlterTopicRequest, CreateTopicsRequest,
    DeleteTopicsRequest, DescribeTopicsRequest, ListPartitionReassignmentsRequest,
    ListTopicsRequest, MetadataResponse, NewTopic, OngoingReassignment, PartitionReassignment,
    TopicDescription, TopicListing,
};
use runnel_proto::v1::{
    DeleteGroupRequest, DescribeGroupRequest, DescribeGroupResponse, GroupListing,
    ListGroupsRequest, OffsetCommitPartition, OffsetCommitTopic, ResetGroupOffsetsRequest,
    ResetSpec,
};

use crate::cluster::{Cluster, request};
use crate::config::ClientConfig;
use crate::error::{Error, Result};

/// Creates, lists, describes, alters and deletes topics.
///
/// ```no_run
/// # async fn example() -> runnel_client::Result<()> {
/// use runnel_client::{Admin, AlterTopic, ClientConfig};
///
/// let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")?).await?;
/// admin.create_topic("events", 3, 1, &[("retention.ms", "86400000")]).await?;
/// admin.alter_topic(AlterTopic::new("events").partitions(6)).await?;
/// for topic in admin.list_topics().await? {
///     println!("{} has {} partitions", topic.name, topic.partitions);
/// }
/// admin.delete_topic("events").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
}

impl Admin {
    /// Connect to the first bootstrap broker that answers. Later calls fail
    /// over to the other brokers when that one stops answering.
    pub async fn connect(config: ClientConfig) -> Result<Self> {
        Ok(Admin {
            cluster: Cluster::connect(config).await?,
        })
    }

    /// Store ACL bindings (all or none; bindings that exist already are
    /// kept once). Needs Alter on the cluster when authorization is on.
    pub async fn create_acls(&self, acls: Vec<AclBinding>) -> Result<()> {
        let message = CreateAclsRequest { acls };
        self.cluster
            .call_any("CreateAcls", |conn, timeout| {
                let message = message.clone();
                async move { conn.admin().create_acls(request(message, timeout)).await }
            })
            .await?;
        Ok(())
    }

    /// The ACL bindings that `filter` matches (the default filter: all).
    pub async fn describe_acls(&self, filter: AclFilter) -> Result<Vec<AclBinding>> {
        let message = DescribeAclsRequest {
            filter: Some(filter),
        };
        let response = self
            .cluster
            .call_any("DescribeAcls", |conn, timeout| {
                let message = message.clone();
                async move { conn.admin().describe_acls(request(message, timeout)).await }
            })
            .await?;
        Ok(response.acls)
    }

    /// Remove every binding some filter matches; returns what was removed.
    pub async fn delete_acls(&self, filters: Vec<AclFilter>) -> Result<Vec<AclBinding>> {
        let message = DeleteAclsRequest { filters };
        let response = self
            .cluster
            .call_any("DeleteAcls", |conn, timeout| {
                let message = message.clone();
                async move { conn.admin().delete_acls(request(message, timeout)).await }
            })
            .await?;
        Ok(response.deleted)
    }

    /// Create one topic. `partitions` or `replication_factor` 0 take the
    /// broker's defaults (`num.partitions`, `default.replication.factor`).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        configs: &[(&str, &str)],
    ) -> Result<TopicDescription> {
        let topic = NewTopic {
            name: name.to_owned(),
            partitions,
            replication_factor,
            configs: configs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let mut created = self.create_topics(vec![topic], false).await?;
        created.pop().ok_or_else(|| missing("CreateTopics", name))
    }

    /// Create several topics, all or nothing. With `validate_only` the broker
    /// checks everything and creates nothing.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<Vec<TopicDescription>> {
        let message = CreateTopicsRequest {
            topics,
            validate_only,
        };
        let response = self
            .cluster
            .call_any("CreateTopics", |conn, timeout| {
                let message = message.clone();
                async move { conn.admin().create_topics(request(message, timeout)).await }
            })
            .await?;
        Ok(response.topics)
    }

    /// Delete one topic.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.delete_topics(&[name]).await.map(drop)
    }

    /// Delete topics; returns the names deleted.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<Vec<String>> {
        let message = DeleteTopicsRequest {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
        };
        let response = self
            .cluster
            .call_any("DeleteTopics", |conn, timeout| {
                let message = message.clone();
                async move { conn.admin().delete_topics(request(message, timeout)).await }
            })
            .await?;
        for name in names {
            self.cluster.invalidate(name);
        }
        Ok(response.deleted)
    }

    /// Every topic except internal ones, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicListing>> {
        self.list_topics_with(false).await
    }

    /// Every topic, internal ones too when `include_internal`, sorted by name.
    pub async fn list_topics_with(&self, include_internal: bool) -> Result<Vec<TopicListing>> {
        let mut topics = self
            .cluster
            .call_any("ListTopics", |conn, timeout| async move {
                let message = ListTopicsRequest { include_internal };
                conn.admin().list_topics(request(message, timeout)).await
            })
            .await?
            .topics;
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Partitions (leader, replicas, ISR, offsets, size) and every config
    /// with its source, for one topic.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let mut topics = self.describe_topics(&[name]).await?;
        topics.pop().ok_or_else(|| missing("DescribeTopics", name))
    }

    /// [`Admin::describe_topic`] for several topics (all topics when
    /// `names` is empty).
    pub async fn describe_topics(&self, names: &[&str]) -> Result<Vec<TopicDescription>> {
        let message = DescribeTopicsRequest {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
        };
        let response = self
            .cluster
            .call_any("DescribeTopics", |conn, timeout| {
                let message = message.clone();
                async move {
                    conn.admin()
                        .describe_topics(request(message, timeout))
                        .await
                }
            })
            .await?;
        let mut topics = response.topics;
        self.fill_offsets_from_leaders(&mut topics).await;
        Ok(topics)
    }

    /// A broker reports log offsets only for the partitions it leads (-1
    /// elsewhere): ask each leader for the rest. Best effort — a leader
    /// that does not answer leaves its partitions at -1.
    async fn fill_offsets_from_leaders(&self, topics: &mut [TopicDescription]) {
        let mut by_leader: std::collections::BTreeMap<i32, Vec<String>> = Default::default();
        for t in topics.iter() {
            for p in &t.partitions {
                if p.log_end_offset < 0 && p.leader >= 0 {
                    let names = by_leader.entry(p.leader).or_default();
                    if !names.contains(&t.name) {
                        names.push(t.name.clone());
                    }
                }
            }
        }
        if by_leader.is_empty() || self.cluster.refresh(&[]).await.is_err() {
            return;
        }
        let timeout = self.cluster.request_timeout();
        for (leader, names) in by_leader {
            let Ok(conn) = self.cluster.broker_conn(leader).await else {
                continue;
            };
            let message = DescribeTopicsRequest { names };
            let Ok(response) = conn
                .call(
                    "DescribeTopics",
                    timeout,
                    conn.admin().describe_topics(request(message, timeout)),
                )
                .await
            else {
                continue;
            };
            for from_leader in response.topics {
                let Some(t) = topics.iter_mut().find(|t| t.name == from_leader.name) else {
                    continue;
                };
                for lp in from_leader.partitions {
                    if let Some(p) = t
                        .partitions
                        .iter_mut()
                        .find(|p| p.partition == lp.partition && p.leader == leader)
                        && lp.log_end_offset >= 0
                    {
                        p.log_start_offset = lp.log_start_offset;
                        p.high_watermark = lp.high_watermark;
                        p.log_end_offset = lp.log_end_offset;
                        p.size_bytes = lp.size_bytes;
                    }
                }
            }
        }
    }

    /// Grow the partition count and/or set or remove config overrides.
    /// Returns the topic as it is afterwards.
    pub async fn alter_topic(&self, alter: AlterTopic) -> Result<TopicDescription> {
        let name = alter.0.name.clone();
        let response = self
            .cluster
            .call_any("AlterTopic", |conn, timeout| {
                let message = alter.0.clone();
                async move { conn.admin().alter_topic(request(message, timeout)).await }
            })
            .await?;
        self.cluster.invalidate(&name);
        response.topic.ok_or_else(|| missing("AlterTopic", &name))
    }

    /// Move partitions to new replica sets: `(topic, partition, replicas)`,
    /// preferred leader first; empty `replicas` cancels a reassignment in
    /// progress. Returns once the controller has the request; the move
    /// finishes when the new replicas have caught up (see
    /// [`Admin::list_partition_reassignments`]).
    pub async fn alter_partition_reassignments(
        &self,
        moves: &[(&str, u32, Vec<i32>)],
    ) -> Result<()> {
        let message = AlterPartitionReassignmentsRequest {
            reassignments: moves
                .iter()
                .map(|(topic, partition, replicas)| PartitionReassignment {
                    topic: (*topic).to_owned(),
                    partition: *partition,
                    replicas: replicas.clone(),
                })
                .collect(),
        };
        self.cluster
            .call_any("AlterPartitionReassignments", |conn, timeout| {
                let message = message.clone();
                async move {
                    conn.admin()
                        .alter_partition_reassignments(request(message, timeout))
                        .await
                }
            })
            .await?;
        for (topic, _, _) in moves {
            self.cluster.invalidate(topic);
        }
        Ok(())
    }

    /// Reassignments still in progress (in `topics`, or everywhere).
    pub async fn list_partition_reassignments(
        &self,
        topics: &[&str],
    ) -> Result<Vec<OngoingReassignment>> {
        let message = ListPartitionReassignmentsRequest {
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        };
        let response = self
            .cluster
            .call_any("ListPartitionReassignments", |conn, timeout| {
                let message = message.clone();
                async move {
                    conn.admin()
                        .list_partition_reassignments(request(message, timeout))
                        .await
                }
            })
            .await?;
        Ok(response.reassignments)
    }

    /// The dynamic cluster-wide defaults of topic configs (Kafka's dynamic
    /// broker configs at `--entity-default`), by broker config name, each
    /// with its value and source: `DynamicDefault` (set with
    /// [`Admin::alter_cluster_configs`]), `Broker` (the answering broker's
    /// config file or flags) or `Default` (Kafka's).
    pub async fn describe_cluster_configs(&self) -> Result<Vec<ClusterConfigEntry>> {
        let response = self
            .cluster
            .call_any("DescribeClusterConfigs", |conn, timeout| async move {
                conn.admin()
                    .describe_cluster_configs(request(DescribeClusterConfigsRequest {}, timeout))
                    .await
            })
            .await?;
        Ok(response.configs)
    }

    /// Set (`set`, e.g. `log.retention.ms` → `3600000`) and remove
    /// (`delete`, back to each broker's static config) dynamic cluster-wide
    /// defaults, all or nothing. Every broker applies them live to every
    /// topic without its own override. Only the keys
    /// [`Admin::describe_cluster_configs`] lists are accepted; any other
    /// fails with `INVALID_CONFIG` and changes nothing. With
    /// `validate_only` the broker checks and returns what the configs would
    /// be. Returns every dynamic key as it is afterwards.
    ///
    /// ```no_run
    /// # async fn example(admin: runnel_client::Admin) -> runnel_client::Result<()> {
    /// use std::collections::BTreeMap;
    ///
    /// let set = BTreeMap::from([("log.retention.ms".to_string(), "3600000".to_string())]);
    /// admin.alter_cluster_configs(&set, &[], false).await?;
    /// admin.alter_cluster_configs(&BTreeMap::new(), &["log.retention.ms".into()], false).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn alter_cluster_configs(
        &self,
        set: &BTreeMap<String, String>,
        delete: &[String],
        validate_only: bool,
    ) -> Result<Vec<ClusterConfigEntry>> {
        let message = AlterClusterConfigsRequest {
            set_configs: set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            delete_configs: delete.to_vec(),
            validate_only,
        };
        let response = self
            .cluster
            .call_any("AlterClusterConfigs", |conn, timeout| {
                let message = message.clone();
                async move {
                    conn.admin()
                        .alter_cluster_configs(request(message, timeout))
                        .await
                }
            })
            .await?;
        Ok(response.configs)
    }

    /// Every consumer group.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let response = self
            .cluster
            .call_any("ListGroups", |conn, timeout| async move {
                conn.group()
                    .list_groups(request(ListGroupsRequest {}, timeout))
                    .await
            })
            .await?;
        Ok(response.groups)
    }

    /// A group's state, members, assignments and committed offsets, with
    /// each committed partition's lag (high watermark − committed offset).
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let conn = crate::consumer::group::find_coordinator(&self.cluster, group).await?;
        let timeout = self.cluster.request_timeout();
        let message = DescribeGroupRequest {
            group_id: group.to_owned(),
        };
        let described = conn
            .call(
                "DescribeGroup",
                timeout,
                conn.group().describe_group(request(message, timeout)),
            )
            .await?;
        let lag = described
            .lag
            .iter()
            .map(|l| PartitionLag {
                topic: l.topic.clone(),
                partition: l.partition,
                committed: l.committed,
                end_offset: l.end_offset,
                lag: l.lag,
            })
            .collect();
        Ok(GroupDescription { described, lag })
    }

    /// Delete a group without members and its committed offsets.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let conn = crate::consumer::group::find_coordinator(&self.cluster, group).await?;
        let timeout = self.cluster.request_timeout();
        let message = DeleteGroupRequest {
            group_id: group.to_owned(),
        };
        conn.call(
            "DeleteGroup",
            timeout,
            conn.group().delete_group(request(message, timeout)),
        )
        .await?;
        Ok(())
    }

    /// Overwrite a group's committed offsets (only while it has no
    /// members): `(topic, partition, offset)` rows.
    pub async fn reset_group_offsets(
        &self,
        group: &str,
        offsets: &[(String, u32, i64)],
    ) -> Result<()> {
        let topics = crate::consumer::group::commit_topics(
            offsets.iter().map(|(t, p, o)| (t.as_str(), *p, *o)),
        );
        self.reset(group, topics, ResetSpec::Explicit, 0, false)
            .await
            .map(|_| ())
    }

    /// Move a group's committed offsets for `topic` (`partitions`, or all)
    /// to `to`: earliest, latest, the first record at a time, or an offset.
    /// The broker works the offsets out from the partitions' leaders; with
    /// `dry_run` it only returns them. Refused while the group has members.
    pub async fn reset_group_offsets_to(
        &self,
        group: &str,
        topic: &str,
        partitions: Option<&[u32]>,
        to: crate::Offset,
        dry_run: bool,
    ) -> Result<Vec<(String, u32, i64)>> {
        let (spec, timestamp, explicit) = match to {
            crate::Offset::Earliest => (ResetSpec::Earliest, 0, 0),
            crate::Offset::Latest => (ResetSpec::Latest, 0, 0),
            crate::Offset::Timestamp(ts) => (ResetSpec::Timestamp, ts, 0),
            crate::Offset::At(n) => (ResetSpec::Explicit, 0, n),
        };
        let listed: Vec<u32> = match (partitions, spec) {
            (Some(p), _) => p.to_vec(),
            (None, ResetSpec::Explicit) => {
                (0..self.cluster.refresh_topic(topic).await?.partitions()).collect()
            }
            (None, _) => Vec::new(),
        };
        let topics = vec![OffsetCommitTopic {
            topic: topic.to_owned(),
            partitions: listed
                .into_iter()
                .map(|partition| OffsetCommitPartition {
                    partition,
                    offset: explicit,
                    metadata: String::new(),
                })
                .collect(),
        }];
        self.reset(group, topics, spec, timestamp, dry_run).await
    }

    async fn reset(
        &self,
        group: &str,
        topics: Vec<OffsetCommitTopic>,
        spec: ResetSpec,
        timestamp_ms: i64,
        dry_run: bool,
    ) -> Result<Vec<(String, u32, i64)>> {
        let conn = crate::consumer::group::find_coordinator(&self.cluster, group).await?;
        let timeout = self.cluster.request_timeout();
        let message = ResetGroupOffsetsRequest {
            group_id: group.to_owned(),
            topics,
            spec: spec as i32,
            timestamp_ms,
            dry_run,
        };
        let response = conn
            .call(
                "ResetGroupOffsets",
                timeout,
                conn.group().reset_group_offsets(request(message, timeout)),
            )
            .await?;
        Ok(response
            .offsets
            .into_iter()
            .map(|o| (o.topic, o.partition, o.offset))
            .collect())
    }

    /// Brokers, controller and partition leadership for `topics` (all topics
    /// when empty).
    pub async fn metadata(&self, topics: &[&str]) -> Result<MetadataResponse> {
        self.cluster.refresh(topics).await
    }
}

/// [`Admin::describe_group`]'s answer.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// What the coordinator said.
    pub described: DescribeGroupResponse,
    /// Committed offsets with their lag.
    pub lag: Vec<PartitionLag>,
}

/// A committed partition's lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: u32,
    pub committed: i64,
    /// The high watermark now.
    pub end_offset: i64,
    pub lag: i64,
}

/// A change to one topic for [`Admin::alter_topic`].
///
/// ```
/// use runnel_client::AlterTopic;
///
/// let change = AlterTopic::new("events")
///     .partitions(12)
///     .set_config("retention.ms", "3600000")
///     .delete_config("segment.bytes");
/// ```
#[derive(Debug, Clone)]
pub struct AlterTopic(AlterTopicRequest);

impl AlterTopic {
    /// No change yet to topic `name`.
    pub fn new(name: impl Into<String>) -> Self {
        AlterTopic(AlterTopicRequest {
            name: name.into(),
            ..Default::default()
        })
    }

    /// Grow the topic to `partitions` (it can never shrink).
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.0.partitions = partitions;
        self
    }

    /// Set a topic config override, e.g. `retention.ms`.
    pub fn set_config(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.set_configs.insert(name.into(), value.into());
        self
    }

    /// Remove a topic config override, back to the broker default.
    pub fn delete_config(mut self, name: impl Into<String>) -> Self {
        self.0.delete_configs.push(name.into());
        self
    }

    /// Only check the change; make none.
    pub fn validate_only(mut self, validate_only: bool) -> Self {
        self.0.validate_only = validate_only;
        self
    }

    /// The request this change sends.
    pub fn as_request(&self) -> &AlterTopicRequest {
        &self.0
    }
}

/// The broker answered success but left out the topic asked about.
fn missing(operation: &'static str, name: &str) -> Error {
    Error::Server {
        operation,
        grpc_code: tonic::Code::Internal,
        code: None,
        message: format!("broker's {operation} answer does not mention topic {name:?}"),
    }
}
