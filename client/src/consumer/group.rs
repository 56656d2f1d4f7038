//! Consumer group membership: the background task that finds the group's
//! coordinator, joins, heartbeats and learns the assignment, and the calls
//! that commit and fetch offsets.
//!
//! The coordinator computes assignments (docs/groups.md). The consumer
//! reports what it *owns* on every heartbeat; a partition it is told to give
//! up is revoked by the next `poll` (offsets committed first), reported as
//! no longer owned, and only then handed to another member. So no two
//! members of a group consume one partition at the same time.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_proto::v1::{
    ErrorCode, FindCoordinatorRequest, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    OffsetCommitPartition, OffsetCommitRequest, OffsetCommitTopic, OffsetFetchRequest,
    TopicPartitions,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, Conn, request};
use crate::error::Result;

/// A partition: (topic, partition).
pub type TopicPartition = (String, u32);

/// How a consumer takes part in a group.
#[derive(Debug, Clone)]
pub(crate) struct GroupSettings {
    pub group_id: String,
    pub topics: Vec<String>,
    pub assignor: String,
    pub session_timeout: Duration,
    pub client_id: String,
}

/// What the membership task and `poll` share.
#[derive(Default)]
struct Shared {
    member_id: String,
    generation: i32,
    /// The coordinator's latest word on what this member may consume.
    assignment: BTreeSet<TopicPartition>,
    /// What `poll` consumes now (reported on heartbeats).
    owned: BTreeSet<TopicPartition>,
    /// The membership was lost (session expired, coordinator moved): the
    /// owned partitions must be dropped without committing.
    lost: bool,
    coordinator: Option<Conn>,
}

impl Shared {
    /// Who commits now. Refused between losing the membership and the
    /// `poll` that drops the lost partitions: the background task may
    /// already have joined again, and a commit under the new member id
    /// would carry positions from the old membership — of partitions
    /// another member now consumes — and move their committed offsets back
    /// (found by the fault suite: `commit_backwards`, docs/testing.md).
    fn committer(&self) -> Result<(String, i32)> {
        if self.lost {
            return Err(crate::Error::Server {
                operation: "OffsetCommit",
                grpc_code: tonic::Code::FailedPrecondition,
                code: Some(ErrorCode::UnknownMemberId),
                message: "this consumer's group membership was lost (session expired or the \
                          coordinator moved); its partitions are revoked without a commit; poll \
                          to take part again"
                    .into(),
            });
        }
        Ok((self.member_id.clone(), self.generation))
    }
}

/// A running membership.
pub(crate) struct Membership {
    cluster: Arc<Cluster>,
    settings: GroupSettings,
    shared: Arc<Mutex<Shared>>,
    /// Wakes the task to heartbeat now (after a revocation).
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("group_id", &self.settings.group_id)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// Start taking part in the group in the background.
    pub fn start(cluster: Arc<Cluster>, settings: GroupSettings) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            cluster.clone(),
            settings.clone(),
            shared.clone(),
            wake.clone(),
        ));
        Membership {
            cluster,
            settings,
            shared,
            wake,
            task,
        }
    }

    pub fn group_id(&self) -> &str {
        &self.settings.group_id
    }

    /// The current target, and whether the previous membership was lost
    /// (clears the flag).
    pub fn assignment(&self) -> (BTreeSet<TopicPartition>, bool) {
        let mut s = self.shared.lock().expect("membership lock");
        let lost = std::mem::take(&mut s.lost);
        (s.assignment.clone(), lost)
    }

    /// `poll` now consumes exactly `owned`; tell the coordinator at once.
    pub fn set_owned(&self, owned: BTreeSet<TopicPartition>) {
        let changed = {
            let mut s = self.shared.lock().expect("membership lock");
            let changed = s.owned != owned;
            s.owned = owned;
            changed
        };
        if changed {
            self.wake.notify_one();
        }
    }

    /// Commit `offsets` (next offset to read) as this member.
    pub async fn commit(&self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        self.committer().commit(offsets).await
    }

    /// A handle that commits as this member from another task.
    pub fn committer(&self) -> Committer {
        Committer {
            cluster: self.cluster.clone(),
            group_id: self.settings.group_id.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Leave the group (clean close): the partitions move at once.
    pub async fn leave(self) {
        self.task.abort();
        let (member_id, coordinator) = {
            let s = self.shared.lock().expect("membership lock");
            (s.member_id.clone(), s.coordinator.clone())
        };
        if member_id.is_empty() {
            return;
        }
        let Some(conn) = coordinator else { return };
        let timeout = self.cluster.request_timeout();
        let message = LeaveGroupRequest {
            group_id: self.settings.group_id.clone(),
            member_id,
        };
        if let Err(e) = conn
            .call(
                "LeaveGroup",
                timeout,
                conn.group().leave_group(request(message, timeout)),
            )
            .await
        {
            tracing::debug!(error = %e, "leaving the group failed; the session will expire");
        }
    }
}

/// Commits as a member, usable from a spawned task (`commit_async`).
pub(crate) struct Committer {
    cluster: Arc<Cluster>,
    group_id: String,
    shared: Arc<Mutex<Shared>>,
}

impl Committer {
    /// Commit with the member id and generation current at call time.
    pub async fn commit(&self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let (member_id, generation) = self.shared.lock().expect("membership lock").committer()?;
        commit(
            &self.cluster,
            &self.group_id,
            &member_id,
            generation,
            offsets,
        )
        .await
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The connection to `group`'s coordinator, found through any broker.
pub(crate) async fn find_coordinator(cluster: &Cluster, group: &str) -> Result<Conn> {
    let message = FindCoordinatorRequest {
        group_id: group.to_owned(),
    };
    let found = cluster
        .call_any("FindCoordinator", |conn, timeout| {
            let message = message.clone();
            async move {
                conn.group()
                    .find_coordinator(request(message, timeout))
                    .await
            }
        })
        .await?;
    match cluster.broker_conn(found.coordinator_id).await {
        Ok(conn) => Ok(conn),
        // A broker the cached metadata does not know yet.
        Err(_) => {
            cluster.refresh(&[]).await?;
            cluster.broker_conn(found.coordinator_id).await
        }
    }
}

/// Commit as `member_id` at `generation` (or `""`/-1 from outside the
/// group), retrying once on a moved coordinator.
pub(crate) async fn commit(
    cluster: &Cluster,
    group: &str,
    member_id: &str,
    generation: i32,
    offsets: &[(TopicPartition, i64)],
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let topics = commit_topics(offsets.iter().map(|((t, p), o)| (t.as_str(), *p, *o)));
    let message = OffsetCommitRequest {
        group_id: group.to_owned(),
        member_id: member_id.to_owned(),
        generation,
        topics,
    };
    let timeout = cluster.request_timeout();
    let mut last = None;
    for _ in 0..3 {
        let conn = find_coordinator(cluster, group).await?;
        match conn
            .call(
                "OffsetCommit",
                timeout,
                conn.group()
                    .offset_commit(request(message.clone(), timeout)),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some(ErrorCode::NotCoordinator) || e.is_retriable() => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("three attempts"))
}

/// `(topic, partition, offset)` rows grouped by topic, as commits and
/// resets carry them.
pub(crate) fn commit_topics<'a>(
    rows: impl IntoIterator<Item = (&'a str, u32, i64)>,
) -> Vec<OffsetCommitTopic> {
    let mut topics: Vec<OffsetCommitTopic> = Vec::new();
    for (topic, partition, offset) in rows {
        let partition = OffsetCommitPartition {
            partition,
            offset,
            metadata: String::new(),
        };
        match topics.iter_mut().find(|t| t.topic == topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(OffsetCommitTopic {
                topic: topic.to_owned(),
                partitions: vec![partition],
            }),
        }
    }
    topics
}

/// Committed offsets of `partitions` (-1 where none).
pub(crate) async fn committed(
    cluster: &Cluster,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<Vec<i64>> {
    let message = OffsetFetchRequest {
        group_id: group.to_owned(),
        partitions: to_wire(partitions.iter().cloned()),
    };
    let found = cluster
        .call_any("OffsetFetch", |conn, timeout| {
            let message = message.clone();
            async move { conn.group().offset_fetch(request(message, timeout)).await }
        })
        .await?;
    Ok(partitions
        .iter()
        .map(|(t, p)| {
            found
                .offsets
                .iter()
                .find(|o| &o.topic == t && o.partition == *p)
                .map_or(-1, |o| o.offset)
        })
        .collect())
}

fn to_wire(tps: impl IntoIterator<Item = TopicPartition>) -> Vec<TopicPartitions> {
    let mut out: Vec<TopicPartitions> = Vec::new();
    for (topic, partition) in tps {
        match out.iter_mut().find(|t| t.topic == topic) {
            Some(t) => t.partitions.push(partition),
            None => out.push(TopicPartitions {
                topic,
                partitions: vec![partition],
            }),
        }
    }
    out
}

fn from_wire(tps: &[TopicPartitions]) -> BTreeSet<TopicPartition> {
    tps.iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.clone(), *p)))
        .collect()
}

/// Find the coordinator, join, heartbeat; start over on any loss.
async fn run(
    cluster: Arc<Cluster>,
    settings: GroupSettings,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
) {
    let timeout = cluster.request_timeout();
    let mut interval = settings.session_timeout / 3;
    loop {
        let coordinator = shared.lock().expect("membership lock").coordinator.clone();
        let conn = match coordinator {
            Some(c) => c,
            None => match find_coordinator(&cluster, &settings.group_id).await {
                Ok(c) => {
                    shared.lock().expect("membership lock").coordinator = Some(c.clone());
                    c
                }
                Err(e) => {
                    tracing::debug!(error = %e, group = %settings.group_id, "no coordinator yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let (member_id, generation, owned) = {
            let s = shared.lock().expect("membership lock");
            (s.member_id.clone(), s.generation, s.owned.clone())
        };
        let outcome = if member_id.is_empty() {
            let message = JoinGroupRequest {
                group_id: settings.group_id.clone(),
                member_id: String::new(),
                topics: settings.topics.clone(),
                assignor: settings.assignor.clone(),
                session_timeout_ms: settings.session_timeout.as_millis() as u32,
                client_id: settings.client_id.clone(),
            };
            conn.call(
                "JoinGroup",
                timeout,
                conn.group().join_group(request(message, timeout)),
            )
            .await
            .map(|r| {
                interval = Duration::from_millis(u64::from(r.heartbeat_interval_ms));
                (r.member_id, r.generation, from_wire(&r.assignment))
            })
        } else {
            let message = HeartbeatRequest {
                group_id: settings.group_id.clone(),
                member_id: member_id.clone(),
                generation,
                owned: to_wire(owned),
            };
            conn.call(
                "Heartbeat",
                timeout,
                conn.group().heartbeat(request(message, timeout)),
            )
            .await
            .map(|r| {
                interval = Duration::from_millis(u64::from(r.heartbeat_interval_ms));
                (member_id.clone(), r.generation, from_wire(&r.assignment))
            })
        };
        match outcome {
            Ok((member_id, generation, assignment)) => {
                let mut s = shared.lock().expect("membership lock");
                s.member_id = member_id;
                s.generation = generation;
                s.assignment = assignment;
            }
            Err(e) => {
                let rejoin = matches!(
                    e.code(),
                    Some(ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration)
                );
                {
                    let mut s = shared.lock().expect("membership lock");
                    if rejoin {
                        s.member_id.clear();
                        s.generation = 0;
                        s.assignment.clear();
                        s.lost = true;
                    } else {
                        s.coordinator = None;
                    }
                }
                if rejoin {
                    tracing::info!(group = %settings.group_id, error = %e, "membership lost; joining again");
                } else {
                    tracing::debug!(group = %settings.group_id, error = %e, "heartbeat failed; finding the coordinator again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        }
        // Heartbeat again after the interval, or at once when `poll`
        // changed what it owns.
        let _ =
            tokio::time::timeout(interval.max(Duration::from_millis(10)), wake.notified()).await;
    }
}

#[cfg(test)]
mod lost_membership_tests {
    use super::*;

    #[test]
    fn no_commit_between_a_lost_membership_and_the_poll_that_drops_it() {
        let mut s = Shared {
            member_id: "m-2".into(),
            generation: 7,
            ..Shared::default()
        };
        assert_eq!(s.committer().unwrap(), ("m-2".to_string(), 7));
        // Lost, and already joined again in the background as m-3.
        s.lost = true;
        s.member_id = "m-3".into();
        s.generation = 8;
        let e = s.committer().unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::UnknownMemberId));
        assert!(e.to_string().contains("membership was lost"), "{e}");
    }
}
