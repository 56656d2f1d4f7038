//! Replica placement for new topics and new partitions.
//!
//! Like Kafka's: partition `p`'s replicas start at broker `(first + p) % n`
//! of the broker list, so leaders (the first replica) spread evenly. When
//! brokers declare racks, the list alternates racks first (`a1, b1, c1, a2,
//! b2, ...`) and each partition's replicas are picked from distinct racks
//! while any are left, so one rack failing takes at most one replica.

use std::collections::{BTreeMap, BTreeSet};

/// A live broker as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSlot {
    pub id: i32,
    pub rack: Option<String>,
}

/// Replica lists for `partitions` partitions numbered from
/// `first_partition`, `rf` replicas each (`rf <= brokers.len()`, checked
/// by the caller).
pub fn assign_replicas(
    brokers: &[BrokerSlot],
    partitions: u32,
    rf: u32,
    first_partition: u32,
) -> Vec<Vec<i32>> {
    let list = rack_alternated(brokers);
    let n = list.len();
    let racks: BTreeSet<Option<&str>> = list.iter().map(|b| b.rack.as_deref()).collect();
    (0..partitions)
        .map(|i| {
            let start = (first_partition + i) as usize % n;
            let order: Vec<&BrokerSlot> = (0..n).map(|k| &list[(start + k) % n]).collect();
            let mut chosen: Vec<i32> = Vec::with_capacity(rf as usize);
            let mut used_racks = BTreeSet::new();
            // First pass: one replica per rack; then fill up in order.
            for b in &order {
                if chosen.len() == rf as usize {
                    break;
                }
                if racks.len() > 1 && !used_racks.insert(b.rack.as_deref()) {
                    continue;
                }
                chosen.push(b.id);
            }
            for b in &order {
                if chosen.len() == rf as usize {
                    break;
                }
                if !chosen.contains(&b.id) {
                    chosen.push(b.id);
                }
            }
            chosen
        })
        .collect()
}

/// Brokers sorted by id, interleaved by rack when racks are known.
fn rack_alternated(brokers: &[BrokerSlot]) -> Vec<BrokerSlot> {
    let mut sorted = brokers.to_vec();
    sorted.sort_by_key(|b| b.id);
    if sorted.iter().all(|b| b.rack.is_none()) {
        return sorted;
    }
    let mut by_rack: BTreeMap<Option<String>, Vec<BrokerSlot>> = BTreeMap::new();
    for b in sorted {
        by_rack.entry(b.rack.clone()).or_default().push(b);
    }
    let mut queues: Vec<std::collections::VecDeque<BrokerSlot>> =
        by_rack.into_values().map(Into::into).collect();
    let mut out = Vec::with_capacity(brokers.len());
    while out.len() < brokers.len() {
        for q in &mut queues {
            if let Some(b) = q.pop_front() {
                out.push(b);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(ids: &[i32]) -> Vec<BrokerSlot> {
        ids.iter()
            .map(|&id| BrokerSlot { id, rack: None })
            .collect()
    }

    #[test]
    fn replicas_spread_leaders() {
        let a = assign_replicas(&plain(&[1, 2, 3]), 6, 2, 0);
        assert_eq!(
            a,
            vec![
                vec![1, 2],
                vec![2, 3],
                vec![3, 1],
                vec![1, 2],
                vec![2, 3],
                vec![3, 1]
            ]
        );
        assert_eq!(
            assign_replicas(&plain(&[3, 1, 2]), 1, 3, 6),
            vec![vec![1, 2, 3]]
        );
    }

    #[test]
    fn racks_are_never_shared_while_there_are_enough() {
        let brokers: Vec<BrokerSlot> = [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]
            .iter()
            .map(|(id, r)| BrokerSlot {
                id: *id,
                rack: Some((*r).into()),
            })
            .collect();
        let rack = |id: i32| brokers.iter().find(|b| b.id == id).unwrap().rack.clone();
        let a = assign_replicas(&brokers, 12, 3, 0);
        let mut leaders = BTreeMap::new();
        for replicas in &a {
            let racks: BTreeSet<_> = replicas.iter().map(|&r| rack(r)).collect();
            assert_eq!(racks.len(), 3, "{replicas:?} shares a rack");
            *leaders.entry(replicas[0]).or_insert(0) += 1;
        }
        assert!(
            leaders.values().all(|&n| n == 2),
            "leaders unbalanced: {leaders:?}"
        );
        // Fewer racks than replicas: racks first, then anyone.
        let two_racks = &brokers[..4];
        for replicas in assign_replicas(two_racks, 4, 3, 0) {
            let racks: BTreeSet<_> = replicas.iter().map(|&r| rack(r)).collect();
            assert_eq!((replicas.len(), racks.len()), (3, 2));
        }
    }
}
