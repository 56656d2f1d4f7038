//! [`Consumer`]: reads assigned partitions with long-poll fetches.
//!
//! Start with [`Consumer::assign`], [`Consumer::seek`] and
//! [`Consumer::poll`] (or [`Consumer::into_stream`]). The consumer keeps a
//! position per assigned partition: the offset of the next record to return.
//! `poll` fetches from every position at once (one `Fetch` per broker),
//! returns what arrived and moves the positions past it. While the caller
//! works on those records the next fetch is already in flight, so the
//! broker and the caller overlap.
//!
//! Two ways to use it, as in Kafka:
//! - **Low level**: [`Consumer::assign`] partitions yourself and
//!   [`Consumer::seek`]; no group needed. With a `group_id` you may still
//!   commit offsets ([`Consumer::commit_sync`]) while the group has no
//!   members.
//! - **Group**: [`Consumer::subscribe`] to topics with a `group_id`; the
//!   group's coordinator shares the partitions among the members and moves
//!   them as members come and go. `poll` applies assignment changes:
//!   partitions taken away are committed (with auto-commit) and dropped
//!   before the coordinator hands them on; new ones start from the group's
//!   committed offset, else from `auto_offset_reset`. Offsets are committed
//!   every `auto_commit_interval` (and on close) unless auto-commit is off.
//!
//! A partition without a position (never sought, or its offset fell out of
//! the log) starts from `auto_offset_reset`.
//!
//! Modules: `decode` (zero-copy batches → records), `fetch` (requests),
//! `group` (membership and offsets).

mod decode;
mod fetch;
pub(crate) mod group;

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use runnel_proto::v1::{ErrorCode, OffsetSpec};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use fetch::{Fetched, PlanItem};
use group::{GroupSettings, Membership};

/// Told when a group rebalance moves partitions to or from this consumer
/// (Kafka's `ConsumerRebalanceListener`). Called from `poll`.
pub trait RebalanceListener: Send + Sync {
    /// These partitions are about to be taken away; their positions are
    /// committed after this returns (with auto-commit).
    fn on_partitions_revoked(&self, _partitions: &[(String, u32)]) {}
    /// These partitions were added.
    fn on_partitions_assigned(&self, _partitions: &[(String, u32)]) {}
    /// The membership was lost (session expired, coordinator moved): these
    /// partitions may already be someone else's; nothing was committed.
    fn on_partitions_lost(&self, _partitions: &[(String, u32)]) {}
}

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The log start offset: the oldest record still kept.
    Earliest,
    /// The high watermark: only records written from now on.
    Latest,
    /// This exact offset.
    At(i64),
    /// The first record whose timestamp is at or after this (ms since the
    /// Unix epoch); the end of the log if there is none.
    Timestamp(i64),
}

impl FromStr for Offset {
    type Err = Error;

    /// `earliest`, `latest` or a non-negative offset.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "earliest" | "beginning" => Ok(Offset::Earliest),
            "latest" | "end" => Ok(Offset::Latest),
            n => match n.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(Offset::At(n)),
                _ => Err(Error::Config(format!(
                    "offset must be earliest, latest or a non-negative number, not {s:?}"
                ))),
            },
        }
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Offset::Earliest => f.write_str("earliest"),
            Offset::Latest => f.write_str("latest"),
            Offset::At(n) => write!(f, "{n}"),
            Offset::Timestamp(ts) => write!(f, "timestamp {ts}"),
        }
    }
}

/// What to do when a partition has no valid position (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoOffsetReset {
    /// Start from the log start.
    Earliest,
    /// Start from the end: only new records (Kafka's default).
    #[default]
    Latest,
    /// Fail with [`Error::NoOffset`].
    None,
}

impl FromStr for AutoOffsetReset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "earliest" => Ok(AutoOffsetReset::Earliest),
            "latest" => Ok(AutoOffsetReset::Latest),
            "none" => Ok(AutoOffsetReset::None),
            other => Err(Error::Config(format!(
                "auto_offset_reset must be earliest, latest or none, not {other:?}"
            ))),
        }
    }
}

/// Consumer knobs, named and defaulted as in Kafka's consumer.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `fetch.min.bytes`: the broker answers a fetch as soon as this much
    /// data is there; default 1 (answer as soon as anything is).
    pub fetch_min_bytes: u32,
    /// `fetch.max.wait.ms`: how long the broker holds a fetch waiting for
    /// `fetch_min_bytes`; default 500 ms.
    pub fetch_max_wait: Duration,
    /// `fetch.max.bytes`: bytes per fetch response; default 50 MiB. At least
    /// one batch is always returned, however large.
    pub fetch_max_bytes: u32,
    /// `max.partition.fetch.bytes`: bytes per partition per fetch; default
    /// 1 MiB.
    pub max_partition_fetch_bytes: u32,
    /// `auto.offset.reset`; default `latest`.
    pub auto_offset_reset: AutoOffsetReset,
    /// `request.timeout.ms`: how long to wait for an answer beyond the
    /// fetch's own long-poll time; default 30 s.
    pub request_timeout: Duration,
    /// `group.id`: the consumer group, for [`Consumer::subscribe`] and
    /// committed offsets; default none.
    pub group_id: Option<String>,
    /// `client.id`: shown in group descriptions; default `runnel-consumer`.
    pub client_id: String,
    /// `session.timeout.ms`: without a heartbeat for this long the member
    /// is removed and its partitions move; default 45 s. Heartbeats go
    /// every third of it (at most every 3 s).
    pub session_timeout: Duration,
    /// `partition.assignment.strategy`: `range` (default), `roundrobin` or
    /// `sticky`; the group uses the first member's choice.
    pub assignment_strategy: String,
    /// `enable.auto.commit`: commit positions every `auto_commit_interval`,
    /// before revoking partitions and on close; default true.
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`; default 5 s.
    pub auto_commit_interval: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            fetch_max_bytes: 50 * 1024 * 1024,
            max_partition_fetch_bytes: 1024 * 1024,
            auto_offset_reset: AutoOffsetReset::Latest,
            request_timeout: Duration::from_secs(30),
            group_id: None,
            client_id: "runnel-consumer".into(),
            session_timeout: Duration::from_secs(45),
            assignment_strategy: "range".into(),
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
        }
    }
}

/// One record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: i64,
    /// CreateTime, or the broker's append time for LogAppendTime topics
    /// (ms since the Unix epoch).
    pub timestamp: i64,
    /// `None` is a null key.
    pub key: Option<Bytes>,
    /// `None` is a null value (a tombstone).
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// An assigned partition and where the consumer is in it.
struct Assigned {
    topic: Arc<str>,
    partition: u32,
    /// Offset of the next record to return; `None` until sought or reset.
    position: Option<i64>,
    /// How to find a position when there is none (after OFFSET_OUT_OF_RANGE
    /// this is the configured reset; `None` = fail).
    reset: AutoOffsetReset,
    /// From the last fetch; -1 before the first.
    high_watermark: i64,
}

/// A fetch sent ahead of the next `poll`.
struct InFlight {
    handle: JoinHandle<Result<Vec<Fetched>>>,
}

/// Reads records from assigned partitions.
///
/// ```no_run
/// # async fn example() -> runnel_client::Result<()> {
/// use std::time::Duration;
/// use runnel_client::{ClientConfig, Consumer, ConsumerConfig, Offset};
///
/// let mut consumer =
///     Consumer::connect(ClientConfig::new("127.0.0.1:9092")?, ConsumerConfig::default()).await?;
/// consumer.assign([("events", 0), ("events", 1)]);
/// consumer.seek("events", 0, Offset::Earliest).await?;
/// consumer.seek("events", 1, Offset::At(42)).await?;
/// loop {
///     for record in consumer.poll(Duration::from_secs(1)).await? {
///         println!("{}-{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
///     }
/// }
/// # }
/// ```
pub struct Consumer {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    assigned: Vec<Assigned>,
    in_flight: Option<InFlight>,
    /// An error from a fetch that also returned records: reported by the
    /// next `poll`, so the records are not lost.
    pending_error: Option<Error>,
    /// Group membership, after `subscribe`.
    membership: Option<Membership>,
    next_auto_commit: Instant,
    listener: Option<Arc<dyn RebalanceListener>>,
}

impl Consumer {
    /// Connect to the cluster. Nothing is assigned yet.
    pub async fn connect(client: ClientConfig, config: ConsumerConfig) -> Result<Self> {
        if config.max_partition_fetch_bytes == 0 || config.fetch_max_bytes == 0 {
            return Err(Error::Config(
                "fetch_max_bytes and max_partition_fetch_bytes must be at least 1".into(),
            ));
        }
        if config.group_id.as_deref() == Some("") {
            return Err(Error::Config("group_id must not be empty".into()));
        }
        Ok(Consumer {
            cluster: Cluster::connect(client).await?,
            next_auto_commit: Instant::now() + config.auto_commit_interval,
            config,
            assigned: Vec::new(),
            in_flight: None,
            pending_error: None,
            membership: None,
            listener: None,
        })
    }

    /// Join the consumer group (`group_id`) and consume what it assigns
    /// from `topics`. Replaces any manual assignment.
    pub fn subscribe<T: AsRef<str>>(&mut self, topics: impl IntoIterator<Item = T>) -> Result<()> {
        let group_id =
            self.config.group_id.clone().ok_or_else(|| {
                Error::Config("subscribe needs a group_id in ConsumerConfig".into())
            })?;
        let topics: Vec<String> = topics.into_iter().map(|t| t.as_ref().to_owned()).collect();
        if topics.is_empty() {
            return Err(Error::Config("subscribe to at least one topic".into()));
        }
        self.assign(std::iter::empty::<(&str, u32)>());
        self.membership = Some(Membership::start(
            self.cluster.clone(),
            GroupSettings {
                group_id,
                topics,
                assignor: self.config.assignment_strategy.clone(),
                session_timeout: self.config.session_timeout,
                client_id: self.config.client_id.clone(),
            },
        ));
        Ok(())
    }

    /// Be told about partitions moving in and out (group consumers).
    pub fn set_rebalance_listener(&mut self, listener: Arc<dyn RebalanceListener>) {
        self.listener = Some(listener);
    }

    /// Commit the current position of every assigned partition to the
    /// group (as a member after `subscribe`; else from outside the group,
    /// which the coordinator accepts only while the group has no members).
    pub async fn commit_sync(&self) -> Result<()> {
        let offsets: Vec<((String, u32), i64)> = self
            .assigned
            .iter()
            .filter_map(|a| Some(((a.topic.to_string(), a.partition), a.position?)))
            .collect();
        self.commit_offsets(&offsets).await
    }

    /// [`Consumer::commit_sync`] in the background: the positions are
    /// taken now, the commit runs on its own task; await the handle for
    /// the outcome, or drop it (Kafka's `commitAsync`).
    pub fn commit_async(&self) -> JoinHandle<Result<()>> {
        let offsets: Vec<((String, u32), i64)> = self
            .assigned
            .iter()
            .filter_map(|a| Some(((a.topic.to_string(), a.partition), a.position?)))
            .collect();
        let cluster = self.cluster.clone();
        let group = self.config.group_id.clone();
        let committer = self.membership.as_ref().map(Membership::committer);
        tokio::spawn(async move {
            match (committer, group) {
                (Some(c), _) => c.commit(&offsets).await,
                (None, Some(group)) => group::commit(&cluster, &group, "", -1, &offsets).await,
                (None, None) => Err(Error::Config("committing offsets needs a group_id".into())),
            }
        })
    }

    /// Commit these offsets (the next offset to read, per partition).
    pub async fn commit_offsets(&self, offsets: &[((String, u32), i64)]) -> Result<()> {
        match (&self.membership, &self.config.group_id) {
            (Some(m), _) => m.commit(offsets).await,
            (None, Some(group)) => group::commit(&self.cluster, group, "", -1, offsets).await,
            (None, None) => Err(Error::Config("committing offsets needs a group_id".into())),
        }
    }

    /// The group's committed offsets for `partitions` (-1 where none).
    pub async fn committed(&self, partitions: &[(String, u32)]) -> Result<Vec<i64>> {
        let group = self
            .config
            .group_id
            .as_deref()
            .ok_or_else(|| Error::Config("committed offsets need a group_id".into()))?;
        group::committed(&self.cluster, group, partitions).await
    }

    /// Leave cleanly: commit (with auto-commit) and leave the group, so the
    /// partitions move at once rather than after the session timeout.
    pub async fn close(mut self) -> Result<()> {
        self.cancel_fetch();
        let committed = if self.membership.is_some() && self.config.enable_auto_commit {
            self.commit_sync().await
        } else {
            Ok(())
        };
        if let Some(m) = self.membership.take() {
            m.leave().await;
        }
        committed
    }

    /// Apply the group's latest assignment: revoke (committing first),
    /// then add partitions at their committed offsets.
    async fn reconcile_group(&mut self) -> Result<()> {
        let Some((target, lost)) = self.membership.as_ref().map(Membership::assignment) else {
            return Ok(());
        };
        let current: std::collections::BTreeSet<(String, u32)> = self
            .assigned
            .iter()
            .map(|a| (a.topic.to_string(), a.partition))
            .collect();
        let set_owned = |c: &Consumer, owned| {
            if let Some(m) = &c.membership {
                m.set_owned(owned);
            }
        };
        if lost && !current.is_empty() {
            let all: Vec<_> = current.iter().cloned().collect();
            if let Some(l) = &self.listener {
                l.on_partitions_lost(&all);
            }
            self.assign(std::iter::empty::<(&str, u32)>());
            set_owned(self, Default::default());
            return Ok(());
        }
        if target == current {
            set_owned(self, target);
            return Ok(());
        }
        let revoked: Vec<(String, u32)> = current.difference(&target).cloned().collect();
        let added: Vec<(String, u32)> = target.difference(&current).cloned().collect();
        if !revoked.is_empty() {
            if let Some(l) = &self.listener {
                l.on_partitions_revoked(&revoked);
            }
            if self.config.enable_auto_commit {
                let offsets: Vec<((String, u32), i64)> = self
                    .assigned
                    .iter()
                    .filter(|a| {
                        revoked
                            .iter()
                            .any(|(t, p)| **t == *a.topic && *p == a.partition)
                    })
                    .filter_map(|a| Some(((a.topic.to_string(), a.partition), a.position?)))
                    .collect();
                if let Err(e) = self.commit_offsets(&offsets).await {
                    // The next owner re-reads from the last good commit:
                    // duplicates, never gaps (at-least-once).
                    tracing::warn!(error = %e, "committing revoked partitions failed");
                }
            }
        }
        let committed = match (&self.membership, added.is_empty()) {
            (Some(m), false) => group::committed(&self.cluster, m.group_id(), &added).await?,
            _ => Vec::new(),
        };
        let keep: Vec<(String, u32)> = current.intersection(&target).cloned().collect();
        self.assign(
            keep.iter()
                .chain(added.iter())
                .map(|(t, p)| (t.as_str(), *p)),
        );
        for ((t, p), offset) in added.iter().zip(committed) {
            if offset >= 0
                && let Some(i) = self.find(t, *p)
            {
                self.assigned[i].position = Some(offset);
            }
        }
        set_owned(self, target);
        if !added.is_empty()
            && let Some(l) = &self.listener
        {
            l.on_partitions_assigned(&added);
        }
        Ok(())
    }

    /// Commit every `auto_commit_interval` (group consumers).
    async fn maybe_auto_commit(&mut self) {
        if self.membership.is_none() || !self.config.enable_auto_commit {
            return;
        }
        let now = Instant::now();
        if now < self.next_auto_commit {
            return;
        }
        self.next_auto_commit = now + self.config.auto_commit_interval;
        if let Err(e) = self.commit_sync().await {
            tracing::warn!(error = %e, "auto-commit failed; retrying at the next interval");
        }
    }

    /// Read exactly these partitions from now on. Partitions that stay
    /// assigned keep their positions; new ones start without one.
    pub fn assign<T: AsRef<str>>(&mut self, partitions: impl IntoIterator<Item = (T, u32)>) {
        self.cancel_fetch();
        let mut old = std::mem::take(&mut self.assigned);
        for (topic, partition) in partitions {
            let topic = topic.as_ref();
            if self.find(topic, partition).is_some() {
                continue;
            }
            let kept = old
                .iter()
                .position(|a| &*a.topic == topic && a.partition == partition);
            self.assigned.push(match kept {
                Some(i) => old.swap_remove(i),
                None => Assigned {
                    topic: topic.into(),
                    partition,
                    position: None,
                    reset: self.config.auto_offset_reset,
                    high_watermark: -1,
                },
            });
        }
    }

    /// The assigned partitions, in assignment order.
    pub fn assignment(&self) -> Vec<(Arc<str>, u32)> {
        self.assigned
            .iter()
            .map(|a| (a.topic.clone(), a.partition))
            .collect()
    }

    /// Move the position of an assigned partition. `Earliest`, `Latest` and
    /// `Timestamp` are resolved now with a `ListOffsets` call.
    pub async fn seek(&mut self, topic: &str, partition: u32, offset: Offset) -> Result<()> {
        let index = self.index(topic, partition)?;
        self.cancel_fetch();
        let position = match offset {
            Offset::At(n) => n,
            other => self.offsets(&[(topic, partition)], other).await?[0],
        };
        let a = &mut self.assigned[index];
        a.position = Some(position);
        a.reset = self.config.auto_offset_reset;
        Ok(())
    }

    /// The offset of the next record `poll` returns for this partition,
    /// `None` if it has no position yet.
    pub fn position(&self, topic: &str, partition: u32) -> Option<i64> {
        self.find(topic, partition)
            .and_then(|i| self.assigned[i].position)
    }

    /// The partition's high watermark as of the last fetch (`None` before
    /// one). `high_watermark - position` is the consumer's lag.
    pub fn high_watermark(&self, topic: &str, partition: u32) -> Option<i64> {
        self.find(topic, partition)
            .map(|i| self.assigned[i].high_watermark)
            .filter(|hw| *hw >= 0)
    }

    /// Wait up to `timeout` for records from the assigned partitions and
    /// move their positions past what is returned. Returns an empty `Vec`
    /// when nothing arrived in time.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.reconcile_group().await?;
            self.maybe_auto_commit().await;
            self.ensure_positions().await?;
            if self.assigned.is_empty() {
                if self.membership.is_some() {
                    // Waiting for an assignment: look again soon.
                    let next = (Instant::now() + GROUP_POLL).min(deadline);
                    tokio::time::sleep_until(next).await;
                    if next < deadline {
                        continue;
                    }
                    return Ok(Vec::new());
                }
                tokio::time::sleep_until(deadline).await;
                return Ok(Vec::new());
            }
            if self.in_flight.is_none() {
                let wait = self
                    .config
                    .fetch_max_wait
                    .min(deadline.saturating_duration_since(Instant::now()));
                self.start_fetch(wait);
            }
            let in_flight = self.in_flight.as_mut().expect("started above");
            let Ok(joined) = tokio::time::timeout_at(deadline, &mut in_flight.handle).await else {
                // Keep the fetch going; the next poll picks it up.
                return Ok(Vec::new());
            };
            self.in_flight = None;
            let fetched = joined.map_err(|e| Error::Transport {
                operation: "Fetch",
                address: self.cluster.current_address(),
                reason: format!("fetch task failed: {e}"),
            })??;
            // `apply` starts the next fetch itself when records arrived.
            let (records, retry) = self.apply(fetched)?;
            if !records.is_empty() {
                return Ok(records);
            }
            if self.membership.is_some() && self.in_flight.is_none() {
                // Empty answer: re-check the assignment before fetching
                // again (a revocation must not wait for data).
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(records);
            }
            if retry {
                // Leadership moving or similar: do not spin on the broker.
                tokio::time::sleep_until((now + RETRY_BACKOFF).min(deadline)).await;
            }
        }
    }

    /// Records as a stream, polling as needed. Errors are yielded as items;
    /// the stream then goes on polling (stop on the first `Err` if that
    /// suits). It never ends by itself.
    pub fn into_stream(self) -> impl Stream<Item = Result<ConsumerRecord>> + Send + 'static {
        futures::stream::unfold(
            (self, VecDeque::new()),
            |(mut consumer, mut buffer)| async move {
                loop {
                    if let Some(record) = buffer.pop_front() {
                        return Some((Ok(record), (consumer, buffer)));
                    }
                    match consumer.poll(STREAM_POLL).await {
                        Ok(records) => buffer = VecDeque::from(records),
                        Err(e) => return Some((Err(e), (consumer, buffer))),
                    }
                }
            },
        )
    }

    /// Resolve `offset` for each partition (whether or not assigned) with
    /// one `ListOffsets` call per broker.
    pub async fn offsets(&self, partitions: &[(&str, u32)], offset: Offset) -> Result<Vec<i64>> {
        let (spec, timestamp) = match offset {
            Offset::At(n) => return Ok(vec![n; partitions.len()]),
            Offset::Earliest => (OffsetSpec::Earliest, 0),
            Offset::Latest => (OffsetSpec::Latest, 0),
            Offset::Timestamp(ts) => (OffsetSpec::Timestamp, ts),
        };
        let timeout = self.config.request_timeout;
        let list = |spec, timestamp| {
            fetch::list_offsets(
                &self.cluster,
                timeout,
                RETRY_BACKOFF,
                partitions,
                spec,
                timestamp,
            )
        };
        let mut found = list(spec, timestamp).await?;
        if spec == OffsetSpec::Timestamp && found.contains(&-1) {
            // No record that new: start at the end, as Kafka's tools do.
            let latest = list(OffsetSpec::Latest, 0).await?;
            for (f, l) in found.iter_mut().zip(latest) {
                if *f < 0 {
                    *f = l;
                }
            }
        }
        Ok(found)
    }

    /// Log start offsets of `partitions`.
    pub async fn beginning_offsets(&self, partitions: &[(&str, u32)]) -> Result<Vec<i64>> {
        self.offsets(partitions, Offset::Earliest).await
    }

    /// High watermarks of `partitions`: the offset the next record written
    /// will get, as far as consumers can see.
    pub async fn end_offsets(&self, partitions: &[(&str, u32)]) -> Result<Vec<i64>> {
        self.offsets(partitions, Offset::Latest).await
    }

    /// How many partitions `topic` has (fails for an unknown topic). Asks
    /// any live broker, failing over like every metadata call.
    pub async fn partition_count(&self, topic: &str) -> Result<u32> {
        Ok(self.cluster.refresh_topic(topic).await?.partitions())
    }

    fn find(&self, topic: &str, partition: u32) -> Option<usize> {
        self.assigned
            .iter()
            .position(|a| &*a.topic == topic && a.partition == partition)
    }

    fn index(&self, topic: &str, partition: u32) -> Result<usize> {
        self.find(topic, partition)
            .ok_or_else(|| Error::NotAssigned {
                topic: topic.to_owned(),
                partition,
            })
    }

    fn cancel_fetch(&mut self) {
        if let Some(f) = self.in_flight.take() {
            f.handle.abort();
        }
    }

    /// Give every partition without a position one, from its reset policy.
    async fn ensure_positions(&mut self) -> Result<()> {
        for policy in [AutoOffsetReset::Earliest, AutoOffsetReset::Latest] {
            let missing: Vec<usize> = (0..self.assigned.len())
                .filter(|i| {
                    self.assigned[*i].position.is_none() && self.assigned[*i].reset == policy
                })
                .collect();
            if missing.is_empty() {
                continue;
            }
            let names: Vec<(&str, u32)> = missing
                .iter()
                .map(|i| (&*self.assigned[*i].topic, self.assigned[*i].partition))
                .collect();
            let offset = if policy == AutoOffsetReset::Earliest {
                Offset::Earliest
            } else {
                Offset::Latest
            };
            let found = self.offsets(&names, offset).await?;
            for (i, position) in missing.into_iter().zip(found) {
                self.assigned[i].position = Some(position);
                self.assigned[i].reset = self.config.auto_offset_reset;
            }
        }
        if let Some(a) = self.assigned.iter().find(|a| a.position.is_none()) {
            return Err(Error::NoOffset {
                topic: a.topic.to_string(),
                partition: a.partition,
                offset: None,
            });
        }
        Ok(())
    }

    fn start_fetch(&mut self, max_wait: Duration) {
        let plan: Vec<PlanItem> = self
            .assigned
            .iter()
            .enumerate()
            .filter_map(|(index, a)| {
                Some(PlanItem {
                    index,
                    topic: a.topic.clone(),
                    partition: a.partition,
                    offset: a.position?,
                })
            })
            .collect();
        let params = fetch::Params {
            max_wait,
            min_bytes: self.config.fetch_min_bytes,
            max_bytes: self.config.fetch_max_bytes,
            partition_max_bytes: self.config.max_partition_fetch_bytes,
            request_timeout: self.config.request_timeout,
        };
        let handle = tokio::spawn(fetch::fetch(self.cluster.clone(), params, plan));
        self.in_flight = Some(InFlight { handle });
    }

    /// Handle a fetch's per-partition results: move positions past the
    /// batches received (read from their headers alone), deal with errors,
    /// start the next fetch, and only then decode the records, so the
    /// broker works on the next fetch meanwhile. Returns the records and
    /// whether a partition asked to back off.
    fn apply(&mut self, fetched: Vec<Fetched>) -> Result<(Vec<ConsumerRecord>, bool)> {
        let mut retry = false;
        let mut first_error = None;
        let mut to_decode = Vec::new();
        for f in fetched {
            let Some(a) = self.assigned.get_mut(f.item.index) else {
                continue;
            };
            // Sought or reassigned since the fetch was sent: not ours.
            if a.position != Some(f.item.offset)
                || a.topic != f.item.topic
                || a.partition != f.item.partition
            {
                continue;
            }
            let (result, error) = match f.result {
                Ok(result) => {
                    a.high_watermark = result.high_watermark;
                    let error = Error::from_partition(&a.topic, a.partition, result.error.as_ref());
                    (result, error)
                }
                Err(e) => (Default::default(), Some(e)),
            };
            let outcome = match error {
                None => decode::next_position(&a.topic, a.partition, &result.records).map(|next| {
                    if let Some(next) = next {
                        a.position = Some(next.max(f.item.offset));
                        to_decode.push((f.item, result.records));
                    }
                }),
                Some(e) if e.code() == Some(ErrorCode::OffsetOutOfRange) => {
                    if a.reset == AutoOffsetReset::None {
                        Err(Error::NoOffset {
                            topic: a.topic.to_string(),
                            partition: a.partition,
                            offset: Some(f.item.offset),
                        })
                    } else {
                        tracing::info!(topic = %a.topic, partition = a.partition, offset = f.item.offset,
                            reset = ?a.reset, "offset out of range; resetting");
                        a.position = None;
                        retry = true;
                        Ok(())
                    }
                }
                // Leadership moved or the leader is gone: Kafka's consumer
                // retries forever, keeping the position; the next fetch
                // goes to the new leader after the backoff.
                Some(e) if e.is_retriable() || fetch::transient(&e) => {
                    tracing::debug!(error = %e, "retriable fetch error");
                    self.cluster.invalidate(&a.topic);
                    retry = true;
                    Ok(())
                }
                Some(e) => Err(e),
            };
            if let Err(e) = outcome {
                first_error.get_or_insert(e);
            }
        }
        if !to_decode.is_empty() && first_error.is_none() {
            // Fetch ahead while these are decoded and handled.
            self.start_fetch(self.config.fetch_max_wait);
        }
        let mut records = Vec::new();
        for (item, data) in to_decode {
            let decoded = decode::decode(
                &item.topic,
                item.partition,
                item.offset,
                &data,
                &mut records,
            );
            if let Err((e, resume)) = decoded {
                // Return what came before the bad batch, then report it and
                // stay there; the caller may seek past it.
                self.assigned[item.index].position = Some(resume);
                self.cancel_fetch();
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) if records.is_empty() => Err(e),
            Some(e) => {
                self.pending_error = Some(e);
                Ok((records, retry))
            }
            None => Ok((records, retry)),
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.cancel_fetch();
    }
}

/// Pause after a retriable per-partition error (`retry.backoff.ms`).
/// How often a group consumer without partitions looks for an assignment.
const GROUP_POLL: Duration = Duration::from_millis(50);

const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Poll timeout inside `into_stream`: long, since an empty poll just loops.
const STREAM_POLL: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_argument_parsing() {
        assert_eq!("earliest".parse::<Offset>().unwrap(), Offset::Earliest);
        assert_eq!("Latest".parse::<Offset>().unwrap(), Offset::Latest);
        assert_eq!(" 42 ".parse::<Offset>().unwrap(), Offset::At(42));
        assert_eq!("0".parse::<Offset>().unwrap(), Offset::At(0));
        for bad in ["-1", "first", "", "1.5"] {
            let err = bad.parse::<Offset>().unwrap_err();
            assert!(
                err.to_string().contains("earliest, latest"),
                "{bad:?}: {err}"
            );
        }
        assert_eq!(Offset::At(7).to_string(), "7");
    }

    #[test]
    fn auto_offset_reset_parsing() {
        assert_eq!(
            "earliest".parse::<AutoOffsetReset>().unwrap(),
            AutoOffsetReset::Earliest
        );
        assert_eq!(
            "none".parse::<AutoOffsetReset>().unwrap(),
            AutoOffsetReset::None
        );
        assert!("smallest".parse::<AutoOffsetReset>().is_err());
        assert_eq!(AutoOffsetReset::default(), AutoOffsetReset::Latest);
    }
}
