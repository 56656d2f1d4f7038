//! One consumer group's membership and assignment, as its coordinator
//! keeps it in memory. Pure: no I/O, no clock of its own (callers pass
//! `now`), so every rule here is unit-tested.
//!
//! The protocol is heartbeat-driven, with server-side assignment (in the
//! spirit of Kafka's KIP-848):
//! - Any change — a member joins, leaves or expires, changes its
//!   subscription, or a subscribed topic gains partitions — bumps the
//!   generation and recomputes the *target* assignment with the group's
//!   assignor (sticky keeps what members own).
//! - A member gets its target minus every partition another member still
//!   reports owning. The old owner learns on its next heartbeat that the
//!   partition is no longer its, stops consuming it (committing first) and
//!   stops reporting it; only then does the new owner get it. So no
//!   partition is consumed by two members at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::assignor::{Assignor, MemberSubscription, TopicPartition};
use crate::{Error, Result};

/// One member.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub client_id: String,
    pub topics: BTreeSet<String>,
    pub session_timeout: Duration,
    pub last_seen: Instant,
    /// What it last reported consuming.
    pub owned: BTreeSet<TopicPartition>,
    /// The generation it was last told; commits must carry it.
    pub generation: i32,
}

/// Where a group stands, for DescribeGroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupPhase {
    Empty,
    /// Every member owns exactly its target.
    Stable,
    /// Partitions are still moving between members.
    Reconciling,
}

impl GroupPhase {
    pub fn name(self) -> &'static str {
        match self {
            GroupPhase::Empty => "Empty",
            GroupPhase::Stable => "Stable",
            GroupPhase::Reconciling => "Reconciling",
        }
    }
}

/// The group.
#[derive(Debug)]
pub struct GroupState {
    pub group_id: String,
    pub generation: i32,
    pub assignor: Assignor,
    pub members: BTreeMap<String, Member>,
    /// The assignor's answer for the current generation.
    pub target: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// Partition counts of the subscribed topics at the last assignment.
    partitions: BTreeMap<String, u32>,
    next_member: u64,
}

/// Partition count of a topic, or `None` if it does not exist.
pub type PartitionCounts<'a> = &'a dyn Fn(&str) -> Option<u32>;

impl GroupState {
    pub fn new(group_id: &str) -> Self {
        GroupState {
            group_id: group_id.to_owned(),
            generation: 0,
            assignor: Assignor::Range,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            partitions: BTreeMap::new(),
            next_member: 0,
        }
    }

    /// Add a member (or refresh one re-joining with its id). Returns its id,
    /// the generation and what it may consume now.
    #[allow(clippy::too_many_arguments)]
    pub fn join(
        &mut self,
        member_id: &str,
        client_id: &str,
        topics: BTreeSet<String>,
        assignor: Assignor,
        session_timeout: Duration,
        now: Instant,
        counts: PartitionCounts<'_>,
    ) -> (String, i32, Vec<TopicPartition>) {
        if self.members.is_empty() {
            self.assignor = assignor;
        }
        let id = match self.members.get_mut(member_id) {
            Some(m) => {
                m.last_seen = now;
                m.session_timeout = session_timeout;
                let changed = m.topics != topics;
                m.topics = topics;
                if changed {
                    self.rebalance(counts);
                }
                member_id.to_owned()
            }
            None => {
                // Unknown or empty id: a new member (after a coordinator
                // failover old ids are unknown; the client simply joins).
                // An unknown id is kept: KIP-848 clients (ConsumerGroup-
                // Heartbeat v1) choose their own, and a member coming back
                // after a failover keeps its name.
                self.next_member += 1;
                let prefix = if client_id.is_empty() {
                    "member"
                } else {
                    client_id
                };
                let id = if member_id.is_empty() {
                    format!("{prefix}-{}-{:x}", self.next_member, rand::random::<u32>())
                } else {
                    member_id.to_owned()
                };
                self.members.insert(
                    id.clone(),
                    Member {
                        id: id.clone(),
                        client_id: client_id.to_owned(),
                        topics,
                        session_timeout,
                        last_seen: now,
                        owned: BTreeSet::new(),
                        generation: 0,
                    },
                );
                self.rebalance(counts);
                id
            }
        };
        let assignment = self.assignment_for(&id);
        let member = self.members.get_mut(&id).expect("just joined");
        member.generation = self.generation;
        // What it was told it may consume is its own until it reports
        // otherwise: nobody else may get it meanwhile.
        member.owned.extend(assignment.iter().cloned());
        (id, self.generation, assignment)
    }

    /// A member's heartbeat: it owns `owned` now. Returns the generation and
    /// what it may consume.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        generation: i32,
        owned: BTreeSet<TopicPartition>,
        now: Instant,
        counts: PartitionCounts<'_>,
    ) -> Result<(i32, Vec<TopicPartition>)> {
        let current = self.generation;
        // Unknown first: after a coordinator move the member's generation
        // means nothing here, and it must simply join again.
        self.member_mut(member_id)?;
        if generation > current {
            return Err(Error::IllegalGeneration {
                group: self.group_id.clone(),
                member: member_id.to_owned(),
                generation,
                current,
            });
        }
        let member = self.member_mut(member_id)?;
        member.last_seen = now;
        member.owned = owned;
        if self.partitions_changed(counts) {
            self.rebalance(counts);
        }
        let assignment = self.assignment_for(member_id);
        let generation = self.generation;
        let member = self.member_mut(member_id)?;
        member.generation = generation;
        member.owned.extend(assignment.iter().cloned());
        Ok((generation, assignment))
    }

    /// A member leaves (clean shutdown).
    pub fn leave(&mut self, member_id: &str, counts: PartitionCounts<'_>) -> Result<()> {
        self.member_mut(member_id)?;
        self.members.remove(member_id);
        self.rebalance(counts);
        Ok(())
    }

    /// Remove members silent for longer than their session timeout;
    /// returns who went.
    pub fn expire(&mut self, now: Instant, counts: PartitionCounts<'_>) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| now.duration_since(m.last_seen) > m.session_timeout)
            .map(|m| m.id.clone())
            .collect();
        if !gone.is_empty() {
            for id in &gone {
                self.members.remove(id);
            }
            self.rebalance(counts);
        }
        gone
    }

    /// May this committer commit? Members commit with the generation they
    /// were last told; a consumer outside the group (empty member id,
    /// generation < 0) only while the group has no members.
    pub fn check_commit(&self, member_id: &str, generation: i32) -> Result<()> {
        if member_id.is_empty() && generation < 0 {
            if self.members.is_empty() {
                return Ok(());
            }
            return Err(Error::NonEmptyGroup {
                group: self.group_id.clone(),
                members: self.members.len(),
            });
        }
        let Some(member) = self.members.get(member_id) else {
            return Err(Error::UnknownMemberId {
                group: self.group_id.clone(),
                member: member_id.to_owned(),
            });
        };
        if generation != member.generation {
            return Err(Error::IllegalGeneration {
                group: self.group_id.clone(),
                member: member_id.to_owned(),
                generation,
                current: member.generation,
            });
        }
        Ok(())
    }

    pub fn phase(&self) -> GroupPhase {
        if self.members.is_empty() {
            return GroupPhase::Empty;
        }
        let settled = self.members.values().all(|m| {
            self.target
                .get(&m.id)
                .map_or(m.owned.is_empty(), |t| *t == m.owned)
        });
        if settled {
            GroupPhase::Stable
        } else {
            GroupPhase::Reconciling
        }
    }

    /// Target for `member_id` minus what other members still own.
    pub fn assignment_for(&self, member_id: &str) -> Vec<TopicPartition> {
        let Some(target) = self.target.get(member_id) else {
            return Vec::new();
        };
        target
            .iter()
            .filter(|tp| {
                !self
                    .members
                    .values()
                    .any(|m| m.id != member_id && m.owned.contains(*tp))
            })
            .cloned()
            .collect()
    }

    fn partitions_changed(&self, counts: PartitionCounts<'_>) -> bool {
        let topics: BTreeSet<&String> = self.members.values().flat_map(|m| &m.topics).collect();
        topics
            .into_iter()
            .any(|t| counts(t) != self.partitions.get(t).copied())
    }

    fn rebalance(&mut self, counts: PartitionCounts<'_>) {
        self.generation += 1;
        let topics: BTreeSet<String> = self
            .members
            .values()
            .flat_map(|m| m.topics.iter().cloned())
            .collect();
        self.partitions = topics
            .iter()
            .filter_map(|t| counts(t).map(|n| (t.clone(), n)))
            .collect();
        let subscriptions: Vec<MemberSubscription> = self
            .members
            .values()
            .map(|m| MemberSubscription {
                member_id: m.id.clone(),
                topics: m.topics.clone(),
                // What it will own once it has taken its current target:
                // sticky keeps that in place.
                owned: self
                    .target
                    .get(&m.id)
                    .cloned()
                    .unwrap_or_else(|| m.owned.clone())
                    .into_iter()
                    .collect(),
            })
            .collect();
        self.target = self
            .assignor
            .assign(&subscriptions, &self.partitions)
            .into_iter()
            .map(|(m, tps)| (m, tps.into_iter().collect()))
            .collect();
        tracing::info!(group = %self.group_id, generation = self.generation, members = self.members.len(),
            assignor = self.assignor.name(), "group rebalanced");
    }

    fn member_mut(&mut self, member_id: &str) -> Result<&mut Member> {
        let group = self.group_id.clone();
        self.members
            .get_mut(member_id)
            .ok_or_else(|| Error::UnknownMemberId {
                group,
                member: member_id.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn counts(t: &str) -> Option<u32> {
        (t == "t").then_some(6)
    }

    /// Drive every member's heartbeats until nobody's assignment changes,
    /// checking that no partition is ever given to two members at once.
    fn settle(g: &mut GroupState, now: Instant) {
        for _ in 0..10 {
            let ids: Vec<String> = g.members.keys().cloned().collect();
            let mut changed = false;
            for id in ids {
                let generation0 = g.members[&id].generation;
                let owned = g.members[&id].owned.clone();
                let (_, assignment) = g
                    .heartbeat(&id, generation0, owned.clone(), now, &counts)
                    .unwrap();
                let assignment: BTreeSet<_> = assignment.into_iter().collect();
                // The member drops what it lost and takes what it got.
                g.members.get_mut(&id).unwrap().owned = assignment.clone();
                changed |= assignment != owned;
                let mut seen = BTreeSet::new();
                for m in g.members.values() {
                    for tp in &m.owned {
                        assert!(seen.insert(tp.clone()), "{tp:?} owned twice");
                    }
                }
            }
            if !changed {
                return;
            }
        }
        panic!("group did not settle");
    }

    #[test]
    fn members_share_the_partitions_and_hand_them_over_safely() {
        let now = Instant::now();
        let mut g = GroupState::new("g");
        let s = Duration::from_secs(10);
        let mut ids = Vec::new();
        for c in ["a", "b", "c"] {
            let (id, _, _) = g.join("", c, topics(&["t"]), Assignor::Sticky, s, now, &counts);
            ids.push(id);
            settle(&mut g, now);
        }
        assert_eq!(g.phase(), GroupPhase::Stable);
        let owned: usize = g.members.values().map(|m| m.owned.len()).sum();
        assert_eq!(owned, 6);
        assert!(g.members.values().all(|m| m.owned.len() == 2));
        let generation = g.generation;
        // A fourth joins: generation bumps, hand-over without overlap.
        let (d, generation0, first) =
            g.join("", "d", topics(&["t"]), Assignor::Sticky, s, now, &counts);
        assert_eq!(generation0, generation + 1);
        assert!(first.is_empty(), "others still own everything: {first:?}");
        assert_eq!(g.phase(), GroupPhase::Reconciling);
        settle(&mut g, now);
        assert!(!g.members[&d].owned.is_empty());
        // One leaves; its partitions go to the others.
        g.leave(&ids[0], &counts).unwrap();
        settle(&mut g, now);
        let owned: usize = g.members.values().map(|m| m.owned.len()).sum();
        assert_eq!(owned, 6);
    }

    #[test]
    fn what_a_member_was_given_is_not_given_to_another_before_it_reports() {
        let now = Instant::now();
        let mut g = GroupState::new("g");
        let s = Duration::from_secs(10);
        let (_, _, first) = g.join("", "a", topics(&["t"]), Assignor::Range, s, now, &counts);
        assert_eq!(first.len(), 6);
        // b joins before a has sent a single heartbeat.
        let (b, _, given) = g.join("", "b", topics(&["t"]), Assignor::Range, s, now, &counts);
        assert!(given.is_empty(), "a still holds everything: {given:?}");
        settle(&mut g, now);
        assert_eq!(g.members[&b].owned.len(), 3);
    }

    #[test]
    fn silent_members_expire_and_stale_commits_are_refused() {
        let start = Instant::now();
        let mut g = GroupState::new("g");
        let (a, _, _) = g.join(
            "",
            "a",
            topics(&["t"]),
            Assignor::Range,
            Duration::from_secs(1),
            start,
            &counts,
        );
        let (b, gen_b, _) = g.join(
            "",
            "b",
            topics(&["t"]),
            Assignor::Range,
            Duration::from_secs(30),
            start,
            &counts,
        );
        // a has not heard of generation 2 yet: its commit with 1 is its own
        // generation and still fine; b commits with the current one.
        g.check_commit(&a, 1).unwrap();
        g.check_commit(&b, gen_b).unwrap();
        let err = g.check_commit(&b, gen_b - 1).unwrap_err();
        assert!(matches!(err, Error::IllegalGeneration { .. }), "{err}");
        assert!(matches!(
            g.check_commit("ghost", 1),
            Err(Error::UnknownMemberId { .. })
        ));
        assert!(matches!(
            g.check_commit("", -1),
            Err(Error::NonEmptyGroup { .. })
        ));
        let gone = g.expire(start + Duration::from_secs(2), &counts);
        assert_eq!(gone, vec![a.clone()]);
        assert!(matches!(
            g.heartbeat(&a, 1, BTreeSet::new(), start, &counts),
            Err(Error::UnknownMemberId { .. })
        ));
        g.leave(&b, &counts).unwrap();
        assert_eq!(g.phase(), GroupPhase::Empty);
        g.check_commit("", -1).unwrap();
    }

    #[test]
    fn new_partitions_trigger_a_rebalance() {
        let now = Instant::now();
        let mut g = GroupState::new("g");
        let (a, generation0, _) = g.join(
            "",
            "a",
            topics(&["t"]),
            Assignor::RoundRobin,
            Duration::from_secs(9),
            now,
            &counts,
        );
        let more = |t: &str| (t == "t").then_some(8);
        let (gen2, assignment) = g
            .heartbeat(&a, generation0, BTreeSet::new(), now, &more)
            .unwrap();
        assert_eq!(gen2, generation0 + 1);
        assert_eq!(assignment.len(), 8);
    }
}
