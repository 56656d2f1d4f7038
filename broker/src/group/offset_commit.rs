//! OffsetCommit: store offsets, fenced by member id and generation.

use runnel_proto::v1::{OffsetCommitRequest, OffsetCommitResponse, OffsetCommitTopic};

use super::{GroupCoordinator, offsets};
use crate::Result;

pub async fn handle(
    coord: &GroupCoordinator,
    req: OffsetCommitRequest,
) -> Result<OffsetCommitResponse> {
    coord
        .commit_offsets(
            &req.group_id,
            &req.member_id,
            None,
            req.generation,
            &req.topics,
        )
        .await?;
    Ok(OffsetCommitResponse {})
}

impl GroupCoordinator {
    /// Commit offsets for `group_id`, fenced by whichever protocol runs the
    /// group: Runnel's (member id + the generation it was last told) or
    /// Kafka's classic one (member id + the group's generation, and
    /// `group_instance_id` if given; refused with `RebalanceInProgress`
    /// while the assignment is being made). Generation -1 without a member
    /// id (a consumer outside the group) only while the group has no
    /// members. The Kafka front end calls this with its OffsetCommit.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
        topics: &[OffsetCommitTopic],
    ) -> Result<()> {
        let rows = offsets::validate(self, topics)?;
        let entry = self.entry(group_id).await?;
        entry.check_commit(member_id, group_instance_id, generation)?;
        offsets::write(self, group_id, &entry, generation, rows).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::classic::test_support::{entry, join_req, sync_req};
    use super::super::classic_join::join;
    use super::super::classic_sync::sync;
    use crate::Error;

    #[tokio::test]
    async fn classic_commits_are_fenced_by_member_and_generation() {
        tokio::time::pause();
        let e = entry(Duration::ZERO);
        // No members: a consumer outside the group may commit.
        e.check_commit("", None, -1).unwrap();
        let a = join(&e, join_req("", &["range"])).await.unwrap();
        let id = a.member_id.as_str();
        // Joined, assignment not made yet: Kafka says rebalancing.
        assert!(matches!(
            e.check_commit(id, None, 1),
            Err(Error::RebalanceInProgress { .. })
        ));
        sync(&e, sync_req(id, 1, &[])).await.unwrap();
        e.check_commit(id, None, 1).unwrap();
        assert!(matches!(
            e.check_commit(id, None, 0),
            Err(Error::IllegalGeneration { .. })
        ));
        assert!(matches!(
            e.check_commit("ghost", None, 1),
            Err(Error::UnknownMemberId { .. })
        ));
        assert!(matches!(
            e.check_commit("", None, -1),
            Err(Error::NonEmptyGroup { .. })
        ));
        // A join phase: the current generation may still commit what it is
        // giving up.
        let e2 = e.clone();
        let b = tokio::spawn(async move { join(&e2, join_req("", &["range"])).await });
        tokio::task::yield_now().await;
        e.check_commit(id, None, 1).unwrap();
        // a rejoins; generation 2 is being assigned; 1 is stale.
        let a2 = join(&e, join_req(id, &["range"])).await.unwrap();
        b.await.unwrap().unwrap();
        assert_eq!(a2.generation, 2);
        assert!(matches!(
            e.check_commit(id, None, 1),
            Err(Error::IllegalGeneration { .. })
        ));
    }
}
