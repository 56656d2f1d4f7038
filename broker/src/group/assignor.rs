//! Consumer-group partition assignment: which member of a group reads which
//! partitions. The group coordinator computes the assignment server side with
//! one of Kafka's `partition.assignment.strategy` choices, so every Runnel
//! client gets the same answer without shipping assignor code.
//!
//! Start at [`Assignor::assign`]. The strategies:
//!
//! - [`Assignor::Range`] (`range`): per topic, the members subscribed to it
//!   sorted by id take contiguous ranges of partitions; the first
//!   `partitions % members` take one extra. Members that read the same
//!   partition numbers of several topics (co-partitioned joins) get them
//!   together, at the price of skew: the extras land on the same members for
//!   every topic.
//! - [`Assignor::RoundRobin`] (`roundrobin`): all topic-partitions sorted,
//!   dealt to the members sorted by id in turn, skipping members not
//!   subscribed to the partition's topic. Balanced when subscriptions are
//!   identical.
//! - [`Assignor::Sticky`] (`sticky`, `cooperative-sticky`): as balanced as
//!   round robin, but each member keeps as many of the partitions it owns now
//!   as balance allows.
//!
//! Why sticky matters: every partition that changes hands on a rebalance is a
//! revocation. The old owner must stop, commit its offsets and drop any local
//! state (caches, aggregation windows); the new owner must fetch the committed
//! offset and rebuild that state before it makes progress. Range and round
//! robin recompute from scratch, so one member joining or leaving can shuffle
//! almost every partition; sticky moves only what balance requires (when a
//! member leaves, only its partitions move). `cooperative-sticky` computes the
//! same target assignment; revoking in two phases (so unaffected partitions
//! never stop) is the coordinator's job, not this module's.
//!
//! All strategies are pure functions of their input and independent of the
//! order of `members`: ties are always broken by member id, so a coordinator
//! that restarts, or a second coordinator replaying the same join, computes
//! the same assignment.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

/// A topic-partition: (topic, partition).
pub type TopicPartition = (String, u32);

/// One group member as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    pub member_id: String,
    /// Topics the member subscribed to.
    pub topics: BTreeSet<String>,
    /// Partitions it owns now (its previous assignment); only `Sticky` looks at it.
    pub owned: Vec<TopicPartition>,
}

/// Kafka's partition.assignment.strategy choices, computed server side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Assignor {
    Range,
    RoundRobin,
    Sticky,
}

impl Assignor {
    /// "range" | "roundrobin" | "sticky" (also accept Kafka's class-ish aliases
    /// "cooperative-sticky" → Sticky); None otherwise.
    ///
    /// Also accepted: the Java class names a Kafka client puts in
    /// `partition.assignment.strategy` (`org.apache.kafka.clients.consumer.RangeAssignor`
    /// and friends, with or without the package), so a config copied from a
    /// Java consumer works. Matching is exact (case-sensitive), as in Kafka,
    /// so a typo is rejected rather than guessed at.
    pub fn from_name(name: &str) -> Option<Self> {
        let class = name
            .strip_prefix("org.apache.kafka.clients.consumer.")
            .unwrap_or(name);
        match class {
            "range" | "RangeAssignor" => Some(Self::Range),
            "roundrobin" | "RoundRobinAssignor" => Some(Self::RoundRobin),
            "sticky" | "cooperative-sticky" | "StickyAssignor" | "CooperativeStickyAssignor" => {
                Some(Self::Sticky)
            }
            _ => None,
        }
    }

    /// The Kafka protocol name (`range`, `roundrobin`, `sticky`); round-trips
    /// through [`Assignor::from_name`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::RoundRobin => "roundrobin",
            Self::Sticky => "sticky",
        }
    }

    /// Every partition of every subscribed topic goes to exactly one member
    /// subscribed to its topic (topics in `partitions` nobody subscribes to
    /// are left out; members subscribed to topics absent from `partitions` get
    /// nothing for them). Deterministic: the same input gives the same output.
    /// Every member in `members` appears in the result (possibly with an empty
    /// Vec); each Vec sorted.
    ///
    /// `partitions` maps a topic to its partition count (partitions `0..count`).
    /// Member ids are expected to be unique (the coordinator keys members by
    /// id); if one repeats, its first entry is used and later ones are ignored.
    pub fn assign(
        self,
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, u32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let group = Group::new(members, partitions);
        let per_member = match self {
            Self::Range => group.range(),
            Self::RoundRobin => group.round_robin(),
            Self::Sticky => group.sticky(),
        };
        group
            .members
            .iter()
            .zip(per_member)
            .map(|(member, mut assigned)| {
                assigned.sort_unstable();
                let assigned = assigned
                    .into_iter()
                    .map(|(topic, partition)| (topic.to_owned(), partition))
                    .collect();
                (member.member_id.clone(), assigned)
            })
            .collect()
    }
}

/// A partition borrowed from the input, so the strategies clone topic names
/// only once, when building the result.
type Tp<'a> = (&'a str, u32);

/// The input normalised once for all strategies: members sorted by id and
/// de-duplicated, and for each topic that can be assigned, who subscribes.
struct Group<'a> {
    /// Sorted by member id; a member's index here is how the strategies refer to it.
    members: Vec<&'a MemberSubscription>,
    /// Topics present in `partitions` with at least one subscriber, with
    /// their partition count and subscriber indexes (ascending, so sorted
    /// by member id). Other topics are never assigned.
    topics: BTreeMap<&'a str, (u32, Vec<usize>)>,
}

impl<'a> Group<'a> {
    fn new(members: &'a [MemberSubscription], partitions: &'a BTreeMap<String, u32>) -> Self {
        let mut by_id: BTreeMap<&str, &MemberSubscription> = BTreeMap::new();
        for member in members {
            by_id.entry(member.member_id.as_str()).or_insert(member);
        }
        let members: Vec<&MemberSubscription> = by_id.into_values().collect();
        let mut topics: BTreeMap<&str, (u32, Vec<usize>)> = BTreeMap::new();
        for (index, member) in members.iter().enumerate() {
            for topic in &member.topics {
                if let Some((name, &count)) = partitions.get_key_value(topic) {
                    topics
                        .entry(name.as_str())
                        .or_insert_with(|| (count, Vec::new()))
                        .1
                        .push(index);
                }
            }
        }
        Self { members, topics }
    }

    /// Every assignable partition, sorted by (topic, partition).
    fn all_partitions(&self) -> impl Iterator<Item = Tp<'a>> + '_ {
        self.topics
            .iter()
            .flat_map(|(&topic, &(count, _))| (0..count).map(move |p| (topic, p)))
    }

    fn empty(&self) -> Vec<Vec<Tp<'a>>> {
        vec![Vec::new(); self.members.len()]
    }

    fn range(&self) -> Vec<Vec<Tp<'a>>> {
        let mut assigned = self.empty();
        for (&topic, (count, subscribers)) in &self.topics {
            // More than u32::MAX subscribers cannot happen in practice; if it
            // did, saturating just means everyone gets 0 or 1 partitions.
            let n = u32::try_from(subscribers.len()).unwrap_or(u32::MAX);
            let (per_member, extra) = (count / n, count % n);
            let mut next = 0;
            for (rank, &member) in (0u32..).zip(subscribers) {
                let len = per_member + u32::from(rank < extra);
                assigned[member].extend((next..next + len).map(|p| (topic, p)));
                next += len;
            }
        }
        assigned
    }

    fn round_robin(&self) -> Vec<Vec<Tp<'a>>> {
        let mut assigned = self.empty();
        let n = self.members.len();
        let mut cursor = 0;
        for (topic, partition) in self.all_partitions() {
            // Terminates: `topics` only holds topics with a subscriber. Kafka
            // skips non-subscribers without consuming their turn, and so do we,
            // to give the same answers as a Java client would.
            while !self.members[cursor].topics.contains(topic) {
                cursor = (cursor + 1) % n;
            }
            assigned[cursor].push((topic, partition));
            cursor = (cursor + 1) % n;
        }
        assigned
    }

    /// Number of members that could take a partition of `topic`. Partitions
    /// with fewer candidates are placed (and kept) first, so members with
    /// narrow subscriptions are not starved by members who could have taken
    /// something else.
    fn candidates(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |(_, subs)| subs.len())
    }

    fn sticky(&self) -> Vec<Vec<Tp<'a>>> {
        let n = self.members.len();
        let mut assigned = self.empty();

        // 1. Valid claims. A claim is valid if the claimant still subscribes
        // to the topic and the partition still exists. Members are visited in
        // id order, so when two members claim the same partition (a member
        // that missed the last sync, say) the smaller id wins; the loser
        // simply does not own it, which keeps the outcome order-independent.
        let mut previous_owner: BTreeMap<Tp<'a>, usize> = BTreeMap::new();
        let mut claims: Vec<Vec<Tp<'a>>> = self.empty();
        for (index, member) in self.members.iter().enumerate() {
            for (topic, partition) in &member.owned {
                let valid = member.topics.contains(topic)
                    && self
                        .topics
                        .get(topic.as_str())
                        .is_some_and(|(count, _)| partition < count);
                if !valid {
                    continue;
                }
                let tp = (topic.as_str(), *partition);
                if let Entry::Vacant(slot) = previous_owner.entry(tp) {
                    slot.insert(index);
                    claims[index].push(tp);
                }
            }
        }

        // 2. Quotas: total / eligible members, floor or ceil so they sum to
        // the total. Members that can receive nothing are not counted, or the
        // others' quotas would be too small. The ceil quotas go to the members
        // with the most claims: any balanced result gives exactly `extra`
        // members one more, and picking the largest owners for that minimises
        // how many partitions must move.
        let can_receive = |index: usize| {
            let member = self.members[index];
            member.topics.iter().any(|t| {
                self.topics
                    .get(t.as_str())
                    .is_some_and(|&(count, _)| count > 0)
            })
        };
        let mut eligible: Vec<usize> = (0..n).filter(|&i| can_receive(i)).collect();
        let total = self.all_partitions().count();
        let mut quota = vec![0usize; n];
        if !eligible.is_empty() {
            let (floor, extra) = (total / eligible.len(), total % eligible.len());
            eligible.sort_by(|&a, &b| claims[b].len().cmp(&claims[a].len()).then(a.cmp(&b)));
            for (rank, &member) in eligible.iter().enumerate() {
                quota[member] = floor + usize::from(rank < extra);
            }
        }

        // 3. Keep claims up to the quota, preferring partitions few others
        // could take: with uneven subscriptions, a shed partition that only
        // this member can read would come straight back, while one that
        // others can read helps balance.
        let mut taken: BTreeSet<Tp<'a>> = BTreeSet::new();
        for (index, member_claims) in claims.iter_mut().enumerate() {
            member_claims
                .sort_by_key(|&(topic, partition)| (self.candidates(topic), topic, partition));
            for &tp in member_claims.iter().take(quota[index]) {
                assigned[index].push(tp);
                taken.insert(tp);
            }
        }

        // 4. Everything else (new partitions, partitions of departed members,
        // claims over quota) goes to the candidate with the fewest partitions.
        // Ties go to the previous owner (so a shed partition returns rather
        // than moves when that costs no balance), then to the smallest id.
        let mut unassigned: Vec<Tp<'a>> = self
            .all_partitions()
            .filter(|tp| !taken.contains(tp))
            .collect();
        unassigned.sort_by_key(|&(topic, partition)| (self.candidates(topic), topic, partition));
        for tp in unassigned {
            let owner = previous_owner.get(&tp).copied();
            let subscribers = self.topics.get(tp.0).map_or(&[][..], |(_, subs)| subs);
            let chosen = subscribers
                .iter()
                .copied()
                .min_by_key(|&member| (assigned[member].len(), Some(member) != owner, member));
            if let Some(member) = chosen {
                assigned[member].push(tp);
            }
        }
        assigned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Assignor; 3] = [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky];

    fn member(id: &str, topics: &[&str], owned: &[(&str, u32)]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            owned: tps(owned),
        }
    }

    fn tps(list: &[(&str, u32)]) -> Vec<TopicPartition> {
        list.iter().map(|&(t, p)| (t.to_owned(), p)).collect()
    }

    fn topics(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|&(t, n)| (t.to_owned(), n)).collect()
    }

    /// The contract every strategy must meet: each member listed, each Vec
    /// sorted, each partition of a subscribed topic assigned exactly once and
    /// only to a subscriber.
    fn check_valid(
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, u32>,
        result: &BTreeMap<String, Vec<TopicPartition>>,
    ) {
        let ids: BTreeSet<&String> = members.iter().map(|m| &m.member_id).collect();
        assert_eq!(result.keys().collect::<BTreeSet<_>>(), ids);
        let mut seen = BTreeSet::new();
        for (id, assigned) in result {
            assert!(
                assigned.windows(2).all(|w| w[0] < w[1]),
                "{id}: {assigned:?}"
            );
            let Some(sub) = members.iter().find(|m| &m.member_id == id) else {
                panic!("unknown member {id}");
            };
            for tp in assigned {
                assert!(sub.topics.contains(&tp.0), "{id} got {tp:?} unsubscribed");
                assert!(tp.1 < partitions[&tp.0], "{id} got {tp:?} out of range");
                assert!(seen.insert(tp.clone()), "{tp:?} assigned twice");
            }
        }
        let expected: BTreeSet<TopicPartition> = partitions
            .iter()
            .filter(|(t, _)| members.iter().any(|m| m.topics.contains(*t)))
            .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
            .collect();
        assert_eq!(seen, expected);
    }

    fn counts(result: &BTreeMap<String, Vec<TopicPartition>>) -> (usize, usize) {
        let lens = result.values().map(Vec::len);
        (lens.clone().min().unwrap_or(0), lens.max().unwrap_or(0))
    }

    /// Members whose `owned` is `result`: the next generation of the group.
    fn owning(
        members: &[MemberSubscription],
        result: &BTreeMap<String, Vec<TopicPartition>>,
    ) -> Vec<MemberSubscription> {
        members
            .iter()
            .map(|m| MemberSubscription {
                owned: result.get(&m.member_id).cloned().unwrap_or_default(),
                ..m.clone()
            })
            .collect()
    }

    #[test]
    fn names_round_trip_and_kafka_aliases() {
        for a in ALL {
            assert_eq!(Assignor::from_name(a.name()), Some(a));
        }
        for (name, want) in [
            ("cooperative-sticky", Assignor::Sticky),
            (
                "org.apache.kafka.clients.consumer.RangeAssignor",
                Assignor::Range,
            ),
            (
                "org.apache.kafka.clients.consumer.RoundRobinAssignor",
                Assignor::RoundRobin,
            ),
            (
                "org.apache.kafka.clients.consumer.StickyAssignor",
                Assignor::Sticky,
            ),
            (
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
                Assignor::Sticky,
            ),
            ("RangeAssignor", Assignor::Range),
        ] {
            assert_eq!(Assignor::from_name(name), Some(want), "{name}");
        }
        for bad in [
            "",
            "Range",
            "round-robin",
            "uniform",
            "org.apache.kafka.clients.consumer.",
        ] {
            assert_eq!(Assignor::from_name(bad), None, "{bad}");
        }
    }

    /// Kafka's documented example (RangeAssignor javadoc): two members, two
    /// topics of three partitions.
    #[test]
    fn range_kafka_example() {
        let members = [
            member("C0", &["t0", "t1"], &[]),
            member("C1", &["t0", "t1"], &[]),
        ];
        let got = Assignor::Range.assign(&members, &topics(&[("t0", 3), ("t1", 3)]));
        assert_eq!(
            got["C0"],
            tps(&[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)])
        );
        assert_eq!(got["C1"], tps(&[("t0", 2), ("t1", 2)]));
    }

    #[test]
    fn range_extras_go_to_first_members_of_each_topic() {
        // C1 is not subscribed to t1, so t1's ranges are split between C0 and C2.
        let members = [
            member("C2", &["t0", "t1"], &[]),
            member("C0", &["t0", "t1"], &[]),
            member("C1", &["t0"], &[]),
        ];
        let got = Assignor::Range.assign(&members, &topics(&[("t0", 5), ("t1", 3)]));
        assert_eq!(
            got["C0"],
            tps(&[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)])
        );
        assert_eq!(got["C1"], tps(&[("t0", 2), ("t0", 3)]));
        assert_eq!(got["C2"], tps(&[("t0", 4), ("t1", 2)]));
    }

    /// Kafka's documented example (RoundRobinAssignor javadoc), same input as Range.
    #[test]
    fn roundrobin_kafka_example() {
        let members = [
            member("C0", &["t0", "t1"], &[]),
            member("C1", &["t0", "t1"], &[]),
        ];
        let got = Assignor::RoundRobin.assign(&members, &topics(&[("t0", 3), ("t1", 3)]));
        assert_eq!(got["C0"], tps(&[("t0", 0), ("t0", 2), ("t1", 1)]));
        assert_eq!(got["C1"], tps(&[("t0", 1), ("t1", 0), ("t1", 2)]));
    }

    /// Kafka's javadoc example with unequal subscriptions: non-subscribers are
    /// skipped without using up a turn.
    #[test]
    fn roundrobin_kafka_uneven_example() {
        let members = [
            member("C0", &["t0"], &[]),
            member("C1", &["t0", "t1"], &[]),
            member("C2", &["t0", "t1", "t2"], &[]),
        ];
        let got =
            Assignor::RoundRobin.assign(&members, &topics(&[("t0", 1), ("t1", 2), ("t2", 3)]));
        assert_eq!(got["C0"], tps(&[("t0", 0)]));
        assert_eq!(got["C1"], tps(&[("t1", 0)]));
        assert_eq!(
            got["C2"],
            tps(&[("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)])
        );
    }

    /// Kafka's StickyAssignor javadoc example: from scratch, then C1 leaves.
    #[test]
    fn sticky_kafka_example() {
        let subs = ["t0", "t1", "t2", "t3"];
        let parts = topics(&[("t0", 2), ("t1", 2), ("t2", 2), ("t3", 2)]);
        let members = [
            member("C0", &subs, &[]),
            member("C1", &subs, &[]),
            member("C2", &subs, &[]),
        ];
        let first = Assignor::Sticky.assign(&members, &parts);
        assert_eq!(first["C0"], tps(&[("t0", 0), ("t1", 1), ("t3", 0)]));
        assert_eq!(first["C1"], tps(&[("t0", 1), ("t2", 0), ("t3", 1)]));
        assert_eq!(first["C2"], tps(&[("t1", 0), ("t2", 1)]));

        let remaining = [
            member("C0", &subs, &[("t0", 0), ("t1", 1), ("t3", 0)]),
            member("C2", &subs, &[("t1", 0), ("t2", 1)]),
        ];
        let second = Assignor::Sticky.assign(&remaining, &parts);
        assert_eq!(
            second["C0"],
            tps(&[("t0", 0), ("t1", 1), ("t2", 0), ("t3", 0)])
        );
        assert_eq!(
            second["C2"],
            tps(&[("t0", 1), ("t1", 0), ("t2", 1), ("t3", 1)])
        );
    }

    #[test]
    fn sticky_member_leaving_moves_only_its_partitions() {
        let subs = ["a", "b", "c"];
        let parts = topics(&[("a", 7), ("b", 5), ("c", 3)]);
        let ids = ["m0", "m1", "m2", "m3"];
        let members: Vec<_> = ids.iter().map(|id| member(id, &subs, &[])).collect();
        let before = Assignor::Sticky.assign(&members, &parts);
        let members = owning(&members, &before);
        for leaver in ids {
            let stay: Vec<_> = members
                .iter()
                .filter(|m| m.member_id != leaver)
                .cloned()
                .collect();
            let after = Assignor::Sticky.assign(&stay, &parts);
            check_valid(&stay, &parts, &after);
            for m in &stay {
                let kept = &after[&m.member_id];
                assert!(
                    m.owned.iter().all(|tp| kept.contains(tp)),
                    "{} lost some of {:?}",
                    m.member_id,
                    m.owned
                );
            }
            let (min, max) = counts(&after);
            assert!(max - min <= 1, "{leaver} left: {after:?}");
        }
    }

    #[test]
    fn sticky_member_joining_moves_the_minimum() {
        let subs = ["t"];
        let parts = topics(&[("t", 15)]);
        let members: Vec<_> = ["m0", "m1", "m2"]
            .iter()
            .map(|id| member(id, &subs, &[]))
            .collect();
        let before = Assignor::Sticky.assign(&members, &parts);
        assert!(before.values().all(|v| v.len() == 5));
        let mut members = owning(&members, &before);
        members.push(member("m3", &subs, &[]));
        let after = Assignor::Sticky.assign(&members, &parts);
        check_valid(&members, &parts, &after);
        // 15 over 4 members is 4, 4, 4, 3: each old member gives up exactly
        // one partition and the joiner gets the three freed ones.
        for m in &members[..3] {
            let kept = m
                .owned
                .iter()
                .filter(|tp| after[&m.member_id].contains(tp))
                .count();
            assert_eq!(kept, 4, "{}", m.member_id);
            assert_eq!(after[&m.member_id].len(), 4);
        }
        assert_eq!(after["m3"].len(), 3);
    }

    #[test]
    fn sticky_resolves_claims_by_validity_then_smaller_id() {
        let parts = topics(&[("t0", 2), ("t1", 1)]);
        let members = [
            // m1 claims t0-0 too, but m0 has the smaller id; m1 also claims a
            // topic it dropped, a partition that no longer exists and a topic
            // that was deleted.
            member(
                "m1",
                &["t0", "t1"],
                &[("t0", 0), ("t0", 1), ("t0", 9), ("gone", 0)],
            ),
            member("m0", &["t0", "t1"], &[("t0", 0), ("t0", 0)]),
            // m2 claims t1-0 but dropped t1, so m3's claim on it is the valid one.
            member("m2", &["t0"], &[("t1", 0)]),
            member("m3", &["t1"], &[("t1", 0)]),
        ];
        let got = Assignor::Sticky.assign(&members, &parts);
        check_valid(&members, &parts, &got);
        assert_eq!(got["m0"], tps(&[("t0", 0)]));
        assert_eq!(got["m1"], tps(&[("t0", 1)]));
        assert_eq!(got["m3"], tps(&[("t1", 0)]));
        assert_eq!(got["m2"], tps(&[]));
    }

    #[test]
    fn sticky_keeps_partitions_only_it_can_read() {
        // m0 owns everything; m1 can only read t1. m0 should give up t1, not
        // t0 partitions that would just come back to it.
        let all: Vec<(&str, u32)> = vec![
            ("t0", 0),
            ("t0", 1),
            ("t0", 2),
            ("t0", 3),
            ("t1", 0),
            ("t1", 1),
        ];
        let members = [
            member("m0", &["t0", "t1"], &all),
            member("m1", &["t1"], &[]),
        ];
        let got = Assignor::Sticky.assign(&members, &topics(&[("t0", 4), ("t1", 2)]));
        assert_eq!(got["m0"], tps(&all[..4]));
        assert_eq!(got["m1"], tps(&[("t1", 0), ("t1", 1)]));
    }

    #[test]
    fn edges_empty_groups_unsubscribed_and_missing_topics_duplicate_ids() {
        let parts = topics(&[("t0", 2), ("nobody", 3), ("empty", 0)]);
        for a in ALL {
            assert!(a.assign(&[], &parts).is_empty());
            let members = [
                member("m0", &["t0", "missing"], &[]),
                member("m1", &["missing", "empty"], &[("missing", 0)]),
                // A repeated id: the first entry wins.
                member("m0", &["nobody"], &[]),
            ];
            let got = a.assign(&members, &parts);
            assert_eq!(got.len(), 2, "{a:?}");
            assert_eq!(got["m0"], tps(&[("t0", 0), ("t0", 1)]), "{a:?}");
            assert_eq!(got["m1"], tps(&[]), "{a:?}");
        }
    }

    /// Topic names the generated scenarios draw from; `partitions` holds only
    /// a prefix of them, so members also subscribe to and claim absent topics.
    const NAMES: [&str; 5] = ["t0", "t1", "t2", "t3", "t4"];

    type Scenario = (Vec<MemberSubscription>, BTreeMap<String, u32>);

    /// Turns generated raw data into a scenario; outside `prop_compose!` so
    /// rustfmt can format it.
    fn build(
        identical: bool,
        counts: &[u32],
        ids: BTreeSet<String>,
        masks: &[Vec<bool>],
        owned: &[Vec<(usize, u32)>],
    ) -> Scenario {
        let partitions = NAMES
            .iter()
            .zip(counts)
            .map(|(t, &n)| ((*t).to_owned(), n))
            .collect();
        let members = ids
            .into_iter()
            .enumerate()
            .map(|(i, member_id)| {
                let mask = &masks[if identical { 0 } else { i }];
                let topics = NAMES.iter().zip(mask).filter(|(_, on)| **on);
                MemberSubscription {
                    member_id,
                    topics: topics.map(|(t, _)| (*t).to_owned()).collect(),
                    owned: owned[i]
                        .iter()
                        .map(|&(t, p)| (NAMES[t].to_owned(), p))
                        .collect(),
                }
            })
            .collect();
        (members, partitions)
    }

    prop_compose! {
        /// 1..8 members, 1..=4 topics of 0..20 partitions, random
        /// subscriptions (the same for everyone if `identical`) and random
        /// `owned`, including stale and conflicting claims.
        fn scenario(identical: bool)(
            counts in prop::collection::vec(0u32..20, 1..=4),
            ids in prop::collection::btree_set("[a-z]{1,3}", 1..8),
            masks in prop::collection::vec(prop::collection::vec(any::<bool>(), NAMES.len()), 8),
            owned in prop::collection::vec(
                prop::collection::vec((0..NAMES.len(), 0u32..24), 0..12),
                8,
            ),
        ) -> Scenario {
            build(identical, &counts, ids, &masks, &owned)
        }
    }

    fn any_scenario() -> impl Strategy<Value = Scenario> {
        any::<bool>().prop_flat_map(scenario)
    }

    /// Valid claims per member after conflict resolution, computed the slow
    /// obvious way, independently of the implementation.
    fn valid_claims(
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, u32>,
    ) -> BTreeMap<String, BTreeSet<TopicPartition>> {
        let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
        sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        let mut seen = BTreeSet::new();
        let mut claims = BTreeMap::new();
        for m in sorted {
            let mine: BTreeSet<TopicPartition> = m
                .owned
                .iter()
                .filter(|(t, p)| m.topics.contains(t) && partitions.get(t).is_some_and(|n| p < n))
                .filter(|tp| seen.insert((*tp).clone()))
                .cloned()
                .collect();
            claims.insert(m.member_id.clone(), mine);
        }
        claims
    }

    proptest! {
        #[test]
        fn every_strategy_is_complete_and_deterministic((members, partitions) in any_scenario()) {
            for a in ALL {
                let got = a.assign(&members, &partitions);
                check_valid(&members, &partitions, &got);
                prop_assert_eq!(&got, &a.assign(&members, &partitions), "{:?}", a);
                // Input order does not matter: ties are broken by id.
                let mut reversed = members.clone();
                reversed.reverse();
                prop_assert_eq!(&got, &a.assign(&reversed, &partitions), "{:?}", a);
            }
        }

        #[test]
        fn identical_subscriptions_are_balanced((members, partitions) in scenario(true)) {
            for a in [Assignor::RoundRobin, Assignor::Sticky] {
                let (min, max) = counts(&a.assign(&members, &partitions));
                prop_assert!(max - min <= 1, "{:?}: {} vs {}", a, min, max);
            }
        }

        /// With identical subscriptions a balanced result gives `extra` members
        /// ceil(total/n) and the rest floor; the fewest moves any balanced
        /// result can make is when the largest owners get the ceil quotas, and
        /// sticky must hit exactly that.
        #[test]
        fn sticky_moves_only_what_balance_requires((members, partitions) in scenario(true)) {
            let got = Assignor::Sticky.assign(&members, &partitions);
            let claims = valid_claims(&members, &partitions);
            let total: usize = got.values().map(Vec::len).sum();
            let n = members.len();
            let (floor, extra) = (total / n, total % n);
            let mut sizes: Vec<usize> = claims.values().map(BTreeSet::len).collect();
            sizes.sort_unstable_by(|a, b| b.cmp(a));
            let required: usize = sizes
                .iter()
                .enumerate()
                .map(|(rank, &c)| c.saturating_sub(floor + usize::from(rank < extra)))
                .sum();
            let moved: usize = claims
                .iter()
                .map(|(id, mine)| mine.iter().filter(|tp| !got[id].contains(tp)).count())
                .sum();
            prop_assert_eq!(moved, required);

            // Stable: feeding the result back in changes nothing.
            let again = Assignor::Sticky.assign(&owning(&members, &got), &partitions);
            prop_assert_eq!(&again, &got);
        }

        /// Whatever the subscriptions, nobody loses a valid claim while it
        /// holds fewer than floor(total / eligible members) of them.
        #[test]
        fn sticky_keeps_claims_up_to_the_floor_quota((members, partitions) in any_scenario()) {
            let got = Assignor::Sticky.assign(&members, &partitions);
            let total: usize = got.values().map(Vec::len).sum();
            let eligible = members
                .iter()
                .filter(|m| m.topics.iter().any(|t| partitions.get(t).is_some_and(|&n| n > 0)))
                .count();
            let floor = total.checked_div(eligible).unwrap_or(0);
            for (id, mine) in valid_claims(&members, &partitions) {
                let kept = mine.iter().filter(|tp| got[&id].contains(tp)).count();
                prop_assert!(kept >= mine.len().min(floor), "{} kept {} of {:?}", id, kept, mine);
            }
        }
    }
}
