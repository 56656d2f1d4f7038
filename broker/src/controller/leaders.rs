//! Leader election and ISR clean-up, planned from the cluster image.
//!
//! [`plan`] is pure: given the image (live brokers, assignments, partition
//! states) it returns the partition states the controller should write.
//! Level-triggered — it looks at everything every time — so a missed event
//! or a lost write is corrected on the next pass.

use std::collections::BTreeSet;

use crate::cluster::Image;
use crate::meta::records::PartitionState;
use crate::replica::NO_LEADER;

/// A partition state to write, if the stored one is still at `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChange {
    pub topic: String,
    pub partition: u32,
    pub revision: i64,
    pub state: PartitionState,
    pub reason: &'static str,
}

/// What the controller should change. `preferred`: also move leadership
/// back to each partition's preferred (first assigned) replica when it is
/// alive and in sync. `unclean(topic)`: the topic allows electing an
/// out-of-sync replica when no in-sync one is alive.
pub fn plan(
    image: &Image,
    preferred: bool,
    unclean: impl Fn(&str) -> bool,
) -> Vec<PartitionChange> {
    let live: BTreeSet<i32> = image.brokers.keys().copied().collect();
    let mut changes = Vec::new();
    for (topic, record) in &image.topics {
        // A partition whose state was never written (its creator died
        // between chunks): give it the state creation would have.
        for (p, replicas) in record.value.assignment.iter().enumerate() {
            let p = p as u32;
            if image.states.contains_key(&(topic.clone(), p)) || replicas.is_empty() {
                continue;
            }
            changes.push(PartitionChange {
                topic: topic.clone(),
                partition: p,
                revision: 0,
                state: PartitionState {
                    version: crate::meta::records::VERSION,
                    leader: replicas[0],
                    leader_epoch: 0,
                    isr: replicas.clone(),
                },
                reason: "partition state missing",
            });
        }
        for (p, current) in image.topic_states(topic) {
            let Some(replicas) = record.value.assignment.get(p as usize) else {
                continue;
            };
            let cur = &current.value;
            let change = |state: PartitionState, reason| PartitionChange {
                topic: topic.clone(),
                partition: p,
                revision: current.revision,
                state,
                reason,
            };
            // A leader that is no longer a replica (a cancelled or finished
            // reassignment) counts as gone; the ISR holds replicas only.
            let leader_alive = cur.leader != NO_LEADER
                && live.contains(&cur.leader)
                && replicas.contains(&cur.leader);
            let live_isr: Vec<i32> = cur
                .isr
                .iter()
                .copied()
                .filter(|r| live.contains(r) && replicas.contains(r))
                .collect();
            if leader_alive {
                let preferred_replica = replicas[0];
                if preferred
                    && preferred_replica != cur.leader
                    && live_isr.contains(&preferred_replica)
                {
                    changes.push(change(
                        PartitionState {
                            leader: preferred_replica,
                            leader_epoch: cur.leader_epoch + 1,
                            isr: live_isr,
                            ..cur.clone()
                        },
                        "preferred leader election",
                    ));
                } else if live_isr != cur.isr {
                    changes.push(change(
                        PartitionState {
                            isr: live_isr,
                            ..cur.clone()
                        },
                        "dead brokers leave the ISR",
                    ));
                }
                continue;
            }
            // The leader is gone: the first live in-sync replica in
            // assignment order takes over.
            let clean = replicas.iter().copied().find(|r| live_isr.contains(r));
            let next = match clean {
                Some(leader) => Some((leader, live_isr.clone(), "leader failed")),
                None if unclean(topic) => replicas
                    .iter()
                    .copied()
                    .find(|r| live.contains(r))
                    .map(|leader| (leader, vec![leader], "unclean leader election")),
                None => None,
            };
            match next {
                Some((leader, isr, reason)) => changes.push(change(
                    PartitionState {
                        leader,
                        leader_epoch: cur.leader_epoch + 1,
                        isr,
                        ..cur.clone()
                    },
                    reason,
                )),
                // Offline: keep the last ISR, so the first of them to come
                // back leads without losing anything.
                None if cur.leader != NO_LEADER => changes.push(change(
                    PartitionState {
                        leader: NO_LEADER,
                        leader_epoch: cur.leader_epoch + 1,
                        ..cur.clone()
                    },
                    "no in-sync replica alive: partition offline",
                )),
                None => {}
            }
        }
    }
    changes
}

/// A finished reassignment: the topic record with the new assignment, and
/// the partition states that go with it, written together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentDone {
    pub topic: String,
    /// Revision the topic record must still have.
    pub revision: i64,
    pub record: crate::meta::records::TopicRecord,
    pub states: Vec<PartitionChange>,
}

/// Reassignments whose target replicas are all in sync: switch the
/// assignment to the target, and move leadership into it if needed.
pub fn plan_reassignments(image: &Image) -> Vec<ReassignmentDone> {
    let live: BTreeSet<i32> = image.brokers.keys().copied().collect();
    let mut done = Vec::new();
    for (topic, record) in &image.topics {
        let mut next = record.value.clone();
        let mut states = Vec::new();
        for (&p, reassignment) in &record.value.reassignments {
            let Some(current) = image.states.get(&(topic.clone(), p)) else {
                continue;
            };
            let cur = &current.value;
            let target = &reassignment.target;
            let caught_up = target
                .iter()
                .all(|r| cur.isr.contains(r) && live.contains(r));
            if !caught_up || cur.leader == NO_LEADER || !live.contains(&cur.leader) {
                continue;
            }
            next.assignment[p as usize] = target.clone();
            next.reassignments.remove(&p);
            let isr: Vec<i32> = cur
                .isr
                .iter()
                .copied()
                .filter(|r| target.contains(r))
                .collect();
            let state = if target.contains(&cur.leader) {
                PartitionState { isr, ..cur.clone() }
            } else {
                PartitionState {
                    leader: target[0],
                    leader_epoch: cur.leader_epoch + 1,
                    isr,
                    ..cur.clone()
                }
            };
            if state != *cur {
                states.push(PartitionChange {
                    topic: topic.clone(),
                    partition: p,
                    revision: current.revision,
                    state,
                    reason: "reassignment complete",
                });
            }
        }
        // A topic's replication factor is what its partitions have (as in
        // Kafka): once every move is done and they agree, record it, so
        // Describe reports it and later partitions get as many replicas.
        if next.reassignments.is_empty()
            && let Some(first) = next.assignment.first()
            && next.assignment.iter().all(|r| r.len() == first.len())
        {
            next.replication_factor = first.len() as u32;
        }
        if next != record.value {
            done.push(ReassignmentDone {
                topic: topic.clone(),
                revision: record.revision,
                record: next,
                states,
            });
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Versioned;
    use crate::meta::records::{BrokerRecord, TopicRecord, VERSION};

    fn image(live: &[i32], replicas: Vec<i32>, leader: i32, isr: Vec<i32>) -> Image {
        let mut i = Image::default();
        for &b in live {
            i.brokers.insert(
                b,
                BrokerRecord {
                    version: VERSION,
                    broker_id: b,
                    host: "h".into(),
                    port: 1,
                    rack: None,
                    http_port: None,
                    kafka: None,
                },
            );
        }
        i.topics.insert(
            "t".into(),
            Versioned {
                value: TopicRecord {
                    version: VERSION,
                    topic_id: "id".into(),
                    replication_factor: replicas.len() as u32,
                    configs: Default::default(),
                    assignment: vec![replicas],
                    reassignments: Default::default(),
                },
                revision: 1,
            },
        );
        i.states.insert(
            ("t".into(), 0),
            Versioned {
                value: PartitionState {
                    version: VERSION,
                    leader,
                    leader_epoch: 4,
                    isr,
                },
                revision: 7,
            },
        );
        i
    }

    fn one(changes: Vec<PartitionChange>) -> PartitionState {
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(
            changes[0].revision, 7,
            "writes are conditional on what was read"
        );
        changes[0].state.clone()
    }

    #[test]
    fn a_missing_partition_state_is_created() {
        let mut i = image(&[1, 2], vec![2, 1], 2, vec![2, 1]);
        i.states.clear();
        let changes = plan(&i, false, |_| false);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].revision, 0, "only if still absent");
        assert_eq!(
            (changes[0].state.leader, changes[0].state.isr.clone()),
            (2, vec![2, 1])
        );
    }

    #[test]
    fn healthy_partition_is_left_alone() {
        assert!(
            plan(
                &image(&[1, 2, 3], vec![1, 2, 3], 1, vec![1, 2, 3]),
                true,
                |_| false
            )
            .is_empty()
        );
    }

    #[test]
    fn dead_leader_is_replaced_from_the_isr_with_a_new_epoch() {
        let s = one(plan(
            &image(&[2, 3], vec![1, 2, 3], 1, vec![1, 3]),
            false,
            |_| false,
        ));
        assert_eq!(
            (s.leader, s.leader_epoch, s.isr),
            (3, 5, vec![3]),
            "2 is alive but not in sync"
        );
    }

    #[test]
    fn no_live_isr_member_means_offline_unless_unclean_is_allowed() {
        let i = image(&[2], vec![1, 2], 1, vec![1]);
        let s = one(plan(&i, false, |_| false));
        assert_eq!(
            (s.leader, s.leader_epoch, s.isr.clone()),
            (NO_LEADER, 5, vec![1])
        );
        let s = one(plan(&i, false, |_| true));
        assert_eq!((s.leader, s.isr), (2, vec![2]));
        // Already offline: nothing more to write until someone returns.
        let offline = image(&[2], vec![1, 2], NO_LEADER, vec![1]);
        assert!(plan(&offline, false, |_| false).is_empty());
        // The last in-sync replica returns and leads.
        let back = image(&[1, 2], vec![1, 2], NO_LEADER, vec![1]);
        assert_eq!(one(plan(&back, false, |_| false)).leader, 1);
    }

    #[test]
    fn reassignment_completes_once_the_target_is_in_sync() {
        use crate::meta::records::Reassignment;
        // Moving from [1, 2] to [3, 2]: all three are replicas meanwhile.
        let mut i = image(&[1, 2, 3], vec![3, 2, 1], 1, vec![1, 2]);
        i.topics.get_mut("t").unwrap().value.reassignments.insert(
            0,
            Reassignment {
                target: vec![3, 2],
                original: vec![1, 2],
            },
        );
        assert!(plan_reassignments(&i).is_empty(), "3 is not in sync yet");
        i.states.get_mut(&("t".into(), 0)).unwrap().value.isr = vec![1, 2, 3];
        let done = plan_reassignments(&i);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].record.assignment, vec![vec![3, 2]]);
        assert!(done[0].record.reassignments.is_empty());
        let s = &done[0].states[0].state;
        assert_eq!(
            (s.leader, s.leader_epoch, s.isr.clone()),
            (3, 5, vec![2, 3]),
            "the old leader is leaving: the target's first replica leads"
        );
        // A leader that is not a replica any more is replaced by plan().
        let i = image(&[1, 2, 3], vec![3, 2], 1, vec![1, 2, 3]);
        let s = one(plan(&i, false, |_| false));
        assert_eq!(
            (s.leader, s.leader_epoch, s.isr),
            (3, 5, vec![2, 3]),
            "first in assignment order"
        );
    }

    #[test]
    fn a_completed_replication_factor_change_is_recorded() {
        use crate::meta::records::Reassignment;
        // RF 3 -> 2: [1, 2, 3] to [1, 2].
        let mut i = image(&[1, 2, 3], vec![1, 2, 3], 1, vec![1, 2, 3]);
        i.topics.get_mut("t").unwrap().value.reassignments.insert(
            0,
            Reassignment {
                target: vec![1, 2],
                original: vec![1, 2, 3],
            },
        );
        let done = plan_reassignments(&i);
        assert_eq!(done[0].record.assignment, vec![vec![1, 2]]);
        assert_eq!(done[0].record.replication_factor, 2);
    }

    #[test]
    fn dead_followers_leave_the_isr_and_preferred_leaders_return() {
        let s = one(plan(
            &image(&[1, 2], vec![1, 2, 3], 1, vec![1, 2, 3]),
            false,
            |_| false,
        ));
        assert_eq!((s.leader, s.leader_epoch, s.isr), (1, 4, vec![1, 2]));
        let i = image(&[1, 2, 3], vec![1, 2, 3], 2, vec![1, 2, 3]);
        assert!(plan(&i, false, |_| false).is_empty());
        let s = one(plan(&i, true, |_| false));
        assert_eq!((s.leader, s.leader_epoch), (1, 5));
        // Not in sync yet: it waits.
        let i = image(&[1, 2, 3], vec![1, 2, 3], 2, vec![2, 3]);
        assert!(plan(&i, true, |_| false).is_empty());
    }
}
