//! Replica moves for scaling, as reassignments (topic, partition, new
//! replica list). Scale-in first moves every replica off the brokers being
//! removed; only when they hold nothing does the StatefulSet shrink, so a
//! scale-in can never delete the last copy of a record. Scale-out optionally
//! spreads existing replicas onto the new brokers.

use std::collections::{BTreeMap, BTreeSet};

use super::view::ClusterView;

/// One partition's new replica set, preferred leader first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: u32,
    pub replicas: Vec<i32>,
}

/// Moves that take every replica off `removing`, onto the least-loaded of
/// `remaining` that does not hold the partition yet. `Err` says why it is
/// impossible (a topic needs more brokers than would remain).
pub fn drain(
    view: &ClusterView,
    removing: &BTreeSet<i32>,
    remaining: &BTreeSet<i32>,
) -> Result<Vec<Move>, String> {
    let mut load = view.replica_counts(remaining);
    let mut moves = Vec::new();
    for p in &view.partitions {
        if !p.replicas.iter().any(|r| removing.contains(r)) {
            continue;
        }
        if p.replicas.len() > remaining.len() {
            return Err(format!(
                "topic {} has replication factor {}, more than the {} broker(s) that would remain",
                p.topic,
                p.replicas.len(),
                remaining.len()
            ));
        }
        let mut replicas = p.replicas.clone();
        for slot in 0..replicas.len() {
            if !removing.contains(&replicas[slot]) {
                continue;
            }
            let target = least_loaded(&load, &replicas).expect("enough brokers checked above");
            *load.get_mut(&target).expect("target is a remaining broker") += 1;
            // Same slot: a removed preferred leader is replaced as preferred
            // leader, keeping leadership spread as it was.
            replicas[slot] = target;
        }
        moves.push(Move {
            topic: p.topic.clone(),
            partition: p.partition,
            replicas,
        });
    }
    Ok(moves)
}

/// Moves that even out replica counts over `brokers` (after a scale-out):
/// while the fullest broker holds two or more replicas than the emptiest,
/// move one replica of a partition the emptiest lacks. Each partition moves
/// at most once per plan, so one pass never shuffles a partition twice.
pub fn rebalance(view: &ClusterView, brokers: &BTreeSet<i32>) -> Vec<Move> {
    let mut load = view.replica_counts(brokers);
    let mut planned: BTreeMap<(String, u32), Vec<i32>> = BTreeMap::new();
    while let (Some((&max_b, &max)), Some((&min_b, &min))) = (
        load.iter().max_by_key(|(b, c)| (**c, -**b)),
        load.iter().min_by_key(|(b, c)| (**c, **b)),
    ) {
        if max < min + 2 {
            break;
        }
        let candidate = view.partitions.iter().find(|p| {
            let key = (p.topic.clone(), p.partition);
            !planned.contains_key(&key)
                && !view.reassigning.contains(&key)
                && p.replicas.contains(&max_b)
                && !p.replicas.contains(&min_b)
        });
        let Some(p) = candidate else { break };
        let replicas: Vec<i32> = p
            .replicas
            .iter()
            .map(|r| if *r == max_b { min_b } else { *r })
            .collect();
        *load.get_mut(&max_b).expect("counted") -= 1;
        *load.get_mut(&min_b).expect("counted") += 1;
        planned.insert((p.topic.clone(), p.partition), replicas);
    }
    planned
        .into_iter()
        .map(|((topic, partition), replicas)| Move {
            topic,
            partition,
            replicas,
        })
        .collect()
}

fn least_loaded(load: &BTreeMap<i32, usize>, exclude: &[i32]) -> Option<i32> {
    load.iter()
        .filter(|(b, _)| !exclude.contains(b))
        .min_by_key(|(b, c)| (**c, **b))
        .map(|(b, _)| *b)
}

#[cfg(test)]
mod tests {
    use super::super::view::PartitionView;
    use super::*;

    fn view(replicas: &[&[i32]]) -> ClusterView {
        ClusterView {
            brokers: [0, 1, 2, 3].into(),
            controller: Some(0),
            partitions: replicas
                .iter()
                .enumerate()
                .map(|(i, r)| PartitionView {
                    topic: "t".into(),
                    partition: i as u32,
                    leader: r[0],
                    replicas: r.to_vec(),
                    isr: r.to_vec(),
                    min_insync: 1,
                })
                .collect(),
            reassigning: Default::default(),
        }
    }

    #[test]
    fn drain_moves_every_replica_off_the_removed_brokers() {
        let v = view(&[&[0, 3], &[3, 1], &[1, 2], &[2, 3]]);
        let moves = drain(&v, &[3].into(), &[0, 1, 2].into()).unwrap();
        assert_eq!(moves.len(), 3);
        for m in &moves {
            assert!(!m.replicas.contains(&3), "{m:?}");
            let unique: BTreeSet<_> = m.replicas.iter().collect();
            assert_eq!(unique.len(), m.replicas.len(), "{m:?}");
        }
        // The removed preferred leader of partition 1 ([3, 1]) is replaced
        // in its slot, not dropped with broker 1 promoted.
        assert_ne!(moves[1].replicas[0], 1);
        assert_eq!(moves[1].replicas[1], 1);
    }

    #[test]
    fn drain_refuses_when_a_topic_needs_more_brokers() {
        let v = view(&[&[0, 1, 2, 3]]);
        let err = drain(&v, &[3].into(), &[0, 1, 2].into()).unwrap_err();
        assert!(err.contains("replication factor 4"), "{err}");
    }

    #[test]
    fn drain_of_an_empty_broker_moves_nothing() {
        let v = view(&[&[0, 1], &[1, 2]]);
        assert!(
            drain(&v, &[3].into(), &[0, 1, 2].into())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn rebalance_fills_a_new_broker() {
        // Brokers 0-2 hold two replicas each of six RF-1 partitions... and 3 none.
        let v = view(&[&[0], &[1], &[2], &[0], &[1], &[2]]);
        let moves = rebalance(&v, &[0, 1, 2, 3].into());
        assert!(!moves.is_empty());
        let mut load = v.replica_counts(&[0, 1, 2, 3].into());
        for m in &moves {
            let old = &v.partitions[m.partition as usize].replicas;
            for r in old {
                *load.get_mut(r).unwrap() -= 1;
            }
            for r in &m.replicas {
                *load.get_mut(r).unwrap() += 1;
            }
        }
        let (min, max) = (load.values().min().unwrap(), load.values().max().unwrap());
        assert!(max - min <= 1, "{load:?}");
        assert!(load[&3] >= 1);
    }

    #[test]
    fn balanced_cluster_needs_no_moves() {
        let v = view(&[&[0, 1], &[2, 3], &[1, 0], &[3, 2]]);
        assert!(rebalance(&v, &[0, 1, 2, 3].into()).is_empty());
    }
}
