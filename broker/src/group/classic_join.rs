//! Kafka's JoinGroup (classic protocol): join or rejoin, parked until the
//! join phase completes.

use tokio::time::Instant;

use super::classic::{self, ClassicJoin, ClassicJoined, JoinStep};
use super::{GroupCoordinator, GroupEntry};
use crate::{Error, Result};

impl GroupCoordinator {
    /// JoinGroup from a Kafka client. Waits until the group's join phase
    /// completes (every known member rejoined, or the rebalance timeout
    /// passed) unless the member can be answered at once. The leader's
    /// answer lists every member's metadata, for it to compute the
    /// assignment it then sends with SyncGroup.
    ///
    /// Errors a client acts on: `MemberIdRequired` (KIP-394: join again with
    /// the id in it), `InconsistentGroupProtocol` (protocol type or
    /// assignors do not fit, or the group has Runnel-protocol members),
    /// `UnknownMemberId`, `FencedInstanceId`, `InvalidSessionTimeout`,
    /// `NotCoordinator`.
    pub async fn classic_join(&self, req: ClassicJoin) -> Result<ClassicJoined> {
        let entry = self.entry(&req.group_id).await?;
        join(&entry, req).await
    }
}

/// JoinGroup on a group this broker coordinates.
pub(super) async fn join(entry: &GroupEntry, req: ClassicJoin) -> Result<ClassicJoined> {
    let rx = {
        let state = entry.state.lock();
        if !state.members.is_empty() {
            return Err(Error::InconsistentGroupProtocol {
                group: req.group_id.clone(),
                reason: format!(
                    "it has {} member(s) using Runnel's own group protocol (Runnel consumers); a \
                     Kafka consumer can join once they have left, or use another group.id",
                    state.members.len()
                ),
            });
        }
        let mut classic = entry.classic.lock();
        // Held with `state`, so no Runnel member joins meanwhile.
        drop(state);
        let step = classic.group.join(&req, Instant::now());
        let rx = match &step {
            Ok(JoinStep::Wait { member_id }) => Some(classic.park_join(member_id)),
            _ => None,
        };
        classic.deliver();
        match (step, rx) {
            (Ok(JoinStep::Done(joined)), _) => return Ok(joined),
            (Err(e), _) => return Err(e),
            (Ok(JoinStep::Wait { .. }), rx) => rx.expect("parked"),
        }
    };
    classic::wait(entry, rx).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use super::super::classic::test_support::{entry, join_req, sync_req};
    use super::super::classic::{ClassicJoined, ClassicState, ClassicSynced};
    use super::super::classic_heartbeat::heartbeat;
    use super::super::classic_sync::sync;
    use super::*;

    fn spawn_join(
        e: &Arc<GroupEntry>,
        req: ClassicJoin,
    ) -> tokio::task::JoinHandle<Result<ClassicJoined>> {
        let e = e.clone();
        tokio::spawn(async move { join(&e, req).await })
    }

    fn spawn_sync(
        e: &Arc<GroupEntry>,
        member: &str,
        generation: i32,
        assignments: &[(&str, &str)],
    ) -> tokio::task::JoinHandle<Result<ClassicSynced>> {
        let e = e.clone();
        let req = sync_req(member, generation, assignments);
        tokio::spawn(async move { sync(&e, req).await })
    }

    /// Let spawned tasks run up to their next wait, without moving the
    /// (paused) clock.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// a and b join an empty group and sync: a leads.
    async fn stable_pair(e: &Arc<GroupEntry>) -> (ClassicJoined, ClassicJoined) {
        let ja = spawn_join(e, join_req("", &["range"]));
        settle().await;
        let jb = spawn_join(e, join_req("", &["range"]));
        let (a, b) = (ja.await.unwrap().unwrap(), jb.await.unwrap().unwrap());
        let sb = spawn_sync(e, &b.member_id, b.generation, &[]);
        settle().await;
        assert!(!sb.is_finished(), "a follower waits for the leader");
        let sa = spawn_sync(
            e,
            &a.member_id,
            a.generation,
            &[(&a.member_id, "for-a"), (&b.member_id, "for-b")],
        );
        assert_eq!(sa.await.unwrap().unwrap().assignment, Bytes::from("for-a"));
        assert_eq!(sb.await.unwrap().unwrap().assignment, Bytes::from("for-b"));
        assert_eq!(e.classic.lock().group.state(), ClassicState::Stable);
        (a, b)
    }

    #[tokio::test]
    async fn two_members_get_one_leader_one_generation_and_their_assignments() {
        tokio::time::pause();
        let e = entry(Duration::from_millis(3000));
        let start = Instant::now();
        let (a, b) = stable_pair(&e).await;
        // The initial delay ran (and was extended once, for b).
        assert!(Instant::now() - start >= Duration::from_millis(3000));
        assert_eq!(a.generation, 1);
        assert_eq!(b.generation, 1);
        assert_eq!(a.leader, a.member_id);
        assert_eq!(b.leader, a.member_id);
        assert_eq!(a.protocol_name.as_deref(), Some("range"));
        let members: Vec<&str> = a.members.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(members, [a.member_id.as_str(), b.member_id.as_str()]);
        assert!(b.members.is_empty());
    }

    #[tokio::test]
    async fn a_third_member_makes_the_others_rejoin_and_bumps_the_generation() {
        tokio::time::pause();
        let e = entry(Duration::from_millis(100));
        let (a, b) = stable_pair(&e).await;
        let jc = spawn_join(&e, join_req("", &["range"]));
        settle().await;
        for m in [&a, &b] {
            let err = heartbeat(&e, &m.member_id, None, m.generation).unwrap_err();
            assert!(matches!(err, Error::RebalanceInProgress { .. }), "{err}");
        }
        let ja = spawn_join(&e, join_req(&a.member_id, &["range"]));
        settle().await;
        assert!(!jc.is_finished(), "b has not rejoined yet");
        let jb = spawn_join(&e, join_req(&b.member_id, &["range"]));
        let (a2, b2, c) = (
            ja.await.unwrap().unwrap(),
            jb.await.unwrap().unwrap(),
            jc.await.unwrap().unwrap(),
        );
        for j in [&a2, &b2, &c] {
            assert_eq!(j.generation, 2);
            assert_eq!(j.leader, a.member_id);
        }
        assert_eq!(a2.members.len(), 3);
        // The old generation is over.
        let err = heartbeat(&e, &b.member_id, None, 1).unwrap_err();
        assert!(matches!(err, Error::IllegalGeneration { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_member_that_does_not_rejoin_in_time_is_dropped() {
        tokio::time::pause();
        let e = entry(Duration::from_millis(100));
        let (a, b) = stable_pair(&e).await;
        let start = Instant::now();
        let ja = spawn_join(&e, join_req(&a.member_id, &["range"]));
        // b keeps heartbeating (so its session stays alive) but never
        // rejoins: the rebalance timeout (30 s) drops it.
        for _ in 0..9 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert!(heartbeat(&e, &b.member_id, None, 1).is_err());
        }
        let a2 = ja.await.unwrap().unwrap();
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
            "{waited:?}"
        );
        assert_eq!(a2.generation, 2);
        assert_eq!(a2.members.len(), 1);
        let err = heartbeat(&e, &b.member_id, None, 1).unwrap_err();
        assert!(matches!(err, Error::UnknownMemberId { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_expired_session_seen_by_the_reaper_path_triggers_a_rebalance() {
        tokio::time::pause();
        let e = entry(Duration::from_millis(100));
        let (a, b) = stable_pair(&e).await;
        let counts = |_: &str| None;
        // 9 s: a heartbeats, b is silent; both sessions are 10 s.
        tokio::time::advance(Duration::from_secs(9)).await;
        heartbeat(&e, &a.member_id, None, 1).unwrap();
        assert!(
            e.tick(std::time::Instant::now(), Instant::now(), &counts)
                .is_empty()
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        let gone = e.tick(std::time::Instant::now(), Instant::now(), &counts);
        assert_eq!(gone, vec![b.member_id.clone()]);
        let err = heartbeat(&e, &a.member_id, None, 1).unwrap_err();
        assert!(matches!(err, Error::RebalanceInProgress { .. }), "{err}");
        let a2 = join(&e, join_req(&a.member_id, &["range"])).await.unwrap();
        assert_eq!(a2.generation, 2);
        assert_eq!(a2.members.len(), 1);
    }

    #[tokio::test]
    async fn member_id_required_then_join_with_it() {
        tokio::time::pause();
        let e = entry(Duration::from_millis(100));
        let mut req = join_req("", &["range"]);
        req.client_id = "rdkafka".into();
        req.require_known_member_id = true;
        let Err(Error::MemberIdRequired { member, .. }) = join(&e, req.clone()).await else {
            panic!("MEMBER_ID_REQUIRED first");
        };
        assert!(member.starts_with("rdkafka-"), "{member}");
        assert_eq!(e.member_count(), 0);
        req.member_id = member.clone();
        let joined = join(&e, req).await.unwrap();
        assert_eq!(joined.member_id, member);
        assert_eq!(joined.leader, member);
        assert_eq!(joined.generation, 1);
        // An id nobody handed out is refused.
        let err = join(&e, join_req("made-up", &["range"])).await.unwrap_err();
        assert!(matches!(err, Error::UnknownMemberId { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_static_member_takes_its_slot_back_without_a_rebalance() {
        tokio::time::pause();
        let e = entry(Duration::from_millis(100));
        let static_req = |member: &str, instance: &str| ClassicJoin {
            group_instance_id: Some(instance.into()),
            ..join_req(member, &["range"])
        };
        let ja = spawn_join(&e, static_req("", "a-1"));
        settle().await;
        let jb = spawn_join(&e, static_req("", "b-1"));
        let (a, b) = (ja.await.unwrap().unwrap(), jb.await.unwrap().unwrap());
        let sb = spawn_sync(&e, &b.member_id, 1, &[]);
        settle().await;
        spawn_sync(
            &e,
            &a.member_id,
            1,
            &[(&a.member_id, "for-a"), (&b.member_id, "for-b")],
        )
        .await
        .unwrap()
        .unwrap();
        sb.await.unwrap().unwrap();
        // b restarts: a new member id, same instance id, same protocols.
        let b2 = join(&e, static_req("", "b-1")).await.unwrap();
        assert_ne!(b2.member_id, b.member_id);
        assert_eq!(b2.generation, 1, "no rebalance");
        assert!(!b2.skip_assignment);
        assert_eq!(e.classic.lock().group.state(), ClassicState::Stable);
        let mut sync_b2 = sync_req(&b2.member_id, 1, &[]);
        sync_b2.group_instance_id = Some("b-1".into());
        let got = sync(&e, sync_b2).await.unwrap();
        assert_eq!(
            got.assignment,
            Bytes::from("for-b"),
            "it keeps b's assignment"
        );
        // The old b is fenced.
        let err = heartbeat(&e, &b.member_id, Some("b-1"), 1).unwrap_err();
        assert!(matches!(err, Error::FencedInstanceId { .. }), "{err}");
        // The leader restarts: it learns it leads, but must keep the assignment.
        let a2 = join(&e, static_req("", "a-1")).await.unwrap();
        assert_eq!(a2.generation, 1);
        assert_eq!(a2.leader, a2.member_id);
        assert!(a2.skip_assignment);
        assert_eq!(a2.members.len(), 2);
        // A protocol change costs a rebalance.
        let changed = ClassicJoin {
            protocols: vec![
                ("roundrobin".into(), Bytes::new()),
                ("range".into(), Bytes::new()),
            ],
            ..static_req("", "b-1")
        };
        let jb3 = spawn_join(&e, changed);
        settle().await;
        assert_eq!(
            e.classic.lock().group.state(),
            ClassicState::PreparingRebalance
        );
        jb3.abort();
    }

    #[tokio::test]
    async fn parked_requests_are_told_when_the_group_is_dropped() {
        tokio::time::pause();
        let e = entry(Duration::from_millis(100));
        let j = spawn_join(&e, join_req("", &["range"]));
        settle().await;
        super::super::kill(&e, "test");
        let err = j.await.unwrap().unwrap_err();
        assert!(
            matches!(err, Error::CoordinatorNotAvailable { .. }),
            "{err}"
        );
        let err = join(&e, join_req("", &["range"])).await.unwrap_err();
        assert!(
            matches!(err, Error::CoordinatorNotAvailable { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn classic_and_runnel_members_exclude_each_other() {
        tokio::time::pause();
        let e = entry(Duration::ZERO);
        let counts = |_: &str| Some(1);
        super::super::join::join_members(
            &e,
            "",
            "runnel-client",
            ["t".to_string()].into(),
            super::super::assignor::Assignor::Range,
            Duration::from_secs(10),
            std::time::Instant::now(),
            &counts,
        )
        .unwrap();
        let err = join(&e, join_req("", &["range"])).await.unwrap_err();
        assert!(
            matches!(err, Error::InconsistentGroupProtocol { .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("Runnel's own group protocol"),
            "{err}"
        );

        let e = entry(Duration::ZERO);
        join(&e, join_req("", &["range"])).await.unwrap();
        let err = super::super::join::join_members(
            &e,
            "",
            "runnel-client",
            ["t".to_string()].into(),
            super::super::assignor::Assignor::Range,
            Duration::from_secs(10),
            std::time::Instant::now(),
            &counts,
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::InconsistentGroupProtocol { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("Kafka"), "{err}");
    }
}
