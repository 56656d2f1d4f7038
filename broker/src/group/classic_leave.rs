//! Kafka's LeaveGroup (classic protocol): members leave at once instead of
//! after their session timeout; the others rebalance.

use tokio::time::Instant;

use super::{GroupCoordinator, GroupEntry};
use crate::Result;

/// One leaving member's outcome: (member id, group.instance.id, result).
pub type LeaveOutcome = (String, Option<String>, Result<()>);

impl GroupCoordinator {
    /// LeaveGroup from a Kafka client or admin: each of `members` is a
    /// member id and/or a `group.instance.id` (v3+ sends several, v0-2 one
    /// member id without instance id: use the single result as the
    /// response's error). Per member: `UnknownMemberId`, or
    /// `FencedInstanceId` when the instance id now belongs to another
    /// member id. The outer error is for the whole request
    /// (`NotCoordinator`, `CoordinatorNotAvailable`).
    pub async fn classic_leave(
        &self,
        group_id: &str,
        members: Vec<(String, Option<String>)>,
    ) -> Result<Vec<LeaveOutcome>> {
        let entry = self.entry(group_id).await?;
        leave(&entry, members)
    }
}

/// LeaveGroup on a group this broker coordinates.
pub(super) fn leave(
    entry: &GroupEntry,
    members: Vec<(String, Option<String>)>,
) -> Result<Vec<LeaveOutcome>> {
    let mut classic = entry.classic.lock();
    let results = classic.group.leave(&members, Instant::now());
    classic.deliver();
    Ok(members
        .into_iter()
        .zip(results?)
        .map(|((member, instance), result)| (member, instance, result))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::classic::ClassicState;
    use super::super::classic::test_support::{entry, join_req};
    use super::super::classic_heartbeat::heartbeat;
    use super::super::classic_join::join;
    use super::*;
    use crate::Error;

    #[tokio::test]
    async fn one_member_leaves_then_a_batch() {
        tokio::time::pause();
        let e = entry(Duration::from_millis(100));
        let mut ids = Vec::new();
        let mut tasks = Vec::new();
        for instance in [None, Some("s-1"), None] {
            let e = e.clone();
            let req = crate::group::classic::ClassicJoin {
                group_instance_id: instance.map(String::from),
                ..join_req("", &["range"])
            };
            tasks.push(tokio::spawn(async move { join(&e, req).await }));
            tokio::task::yield_now().await;
        }
        for t in tasks {
            ids.push(t.await.unwrap().unwrap().member_id);
        }
        assert_eq!(e.member_count(), 3);
        // v0-2: one member id.
        let out = leave(&e, vec![(ids[0].clone(), None)]).unwrap();
        assert!(out[0].2.is_ok());
        assert_eq!(e.member_count(), 2);
        assert_eq!(
            e.classic.lock().group.state(),
            ClassicState::PreparingRebalance
        );
        assert!(matches!(
            heartbeat(&e, &ids[0], None, 1),
            Err(Error::UnknownMemberId { .. })
        ));
        // v3+: a batch — the static member by instance id alone (as an
        // admin does), a stale instance claim, an unknown member, and the
        // last dynamic member.
        let out = leave(
            &e,
            vec![
                ("".into(), Some("s-1".into())),
                ("someone-else".into(), Some("s-1".into())),
                ("ghost".into(), None),
                (ids[2].clone(), None),
            ],
        )
        .unwrap();
        assert!(out[0].2.is_ok(), "{:?}", out[0].2);
        // s-1 left already: the instance id is unknown now.
        assert!(
            matches!(out[1].2, Err(Error::UnknownMemberId { .. })),
            "{:?}",
            out[1].2
        );
        assert!(matches!(out[2].2, Err(Error::UnknownMemberId { .. })));
        assert!(out[3].2.is_ok());
        assert_eq!(out[3].0, ids[2]);
        assert_eq!(e.member_count(), 0);
        assert_eq!(e.classic.lock().group.state(), ClassicState::Empty);
    }

    #[tokio::test]
    async fn a_stale_instance_claim_is_fenced() {
        tokio::time::pause();
        let e = entry(Duration::ZERO);
        let req = crate::group::classic::ClassicJoin {
            group_instance_id: Some("s-1".into()),
            ..join_req("", &["range"])
        };
        let first = join(&e, req.clone()).await.unwrap();
        let second = join(&e, req).await.unwrap();
        let out = leave(&e, vec![(first.member_id.clone(), Some("s-1".into()))]).unwrap();
        assert!(
            matches!(out[0].2, Err(Error::FencedInstanceId { .. })),
            "{:?}",
            out[0].2
        );
        assert_eq!(e.member_count(), 1);
        let out = leave(&e, vec![(second.member_id, Some("s-1".into()))]).unwrap();
        assert!(out[0].2.is_ok());
        assert_eq!(e.member_count(), 0);
    }
}
