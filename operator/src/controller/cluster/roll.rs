//! Safe rolling restarts. The broker StatefulSet uses `OnDelete`, so a new
//! pod template (image, config hash, resources) restarts nothing by itself;
//! the reconciler deletes one outdated pod at a time, and only when doing so
//! cannot make a partition unavailable for `acks=all` writers:
//!
//! - every broker pod is Ready (the previous restart has finished);
//! - no partition is under-replicated (the restarted broker has rejoined
//!   every ISR — Kafka's and Strimzi's rule);
//! - no partition the broker is in sync for would drop below its topic's
//!   `min.insync.replicas` without it.
//!
//! The controller broker goes last, so leadership elections happen once.

use super::view::ClusterView;

/// A broker pod as the roll sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerPod {
    pub id: i32,
    /// Its revision differs from the StatefulSet's update revision.
    pub outdated: bool,
    pub ready: bool,
    /// Already being deleted (terminating).
    pub terminating: bool,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollStep {
    /// Every pod runs the current revision.
    Done,
    /// Delete this pod now.
    Restart(i32),
    /// Outdated pods remain but a restart now would be unsafe; why.
    Wait(String),
}

/// Why restarting `broker` now would hurt, if it would.
pub fn unsafe_to_restart(view: &ClusterView, broker: i32) -> Option<String> {
    let under = view.under_replicated();
    if under > 0 {
        let example = view
            .partitions
            .iter()
            .find(|p| p.under_replicated())
            .map(|p| format!(" (e.g. {}-{})", p.topic, p.partition))
            .unwrap_or_default();
        return Some(format!(
            "{under} partition(s) are under-replicated{example}; waiting for every ISR to be full"
        ));
    }
    view.partitions
        .iter()
        .find(|p| p.isr.contains(&broker) && p.isr.len() - 1 < p.min_insync)
        .map(|p| {
            format!(
                "restarting broker {broker} would leave {}-{} with {} in-sync replica(s), below min.insync.replicas={}",
                p.topic,
                p.partition,
                p.isr.len() - 1,
                p.min_insync
            )
        })
}

/// The next step of a roll over `pods`, given what the brokers report.
/// `view` is `None` when the brokers cannot be asked: then only a cluster
/// whose pods are all not ready may be restarted (nothing to protect yet —
/// e.g. a broken image being replaced).
pub fn next_step(pods: &[BrokerPod], view: Option<&ClusterView>) -> RollStep {
    let outdated: Vec<&BrokerPod> = pods.iter().filter(|p| p.outdated).collect();
    if outdated.is_empty() {
        return RollStep::Done;
    }
    if let Some(p) = pods.iter().find(|p| p.terminating) {
        return RollStep::Wait(format!("broker {} is restarting", p.id));
    }
    let Some(view) = view else {
        if pods.iter().all(|p| !p.ready) {
            return RollStep::Restart(outdated[0].id);
        }
        return RollStep::Wait("cannot reach the brokers to check partition health".into());
    };
    // A broker that is not ready holds nothing in sync: replace it first,
    // it cannot make things worse (and a crash-looping old revision is the
    // usual reason to roll).
    if let Some(p) = outdated.iter().find(|p| !p.ready) {
        return RollStep::Restart(p.id);
    }
    if let Some(p) = pods.iter().find(|p| !p.ready) {
        return RollStep::Wait(format!("broker {} is not ready", p.id));
    }
    let mut order = outdated.clone();
    // Controller last; otherwise by id, for a predictable order.
    order.sort_by_key(|p| (Some(p.id) == view.controller, p.id));
    let first = order[0];
    match unsafe_to_restart(view, first.id) {
        Some(reason) => RollStep::Wait(reason),
        None => RollStep::Restart(first.id),
    }
}

#[cfg(test)]
mod tests {
    use super::super::view::PartitionView;
    use super::*;

    fn pod(id: i32, outdated: bool, ready: bool) -> BrokerPod {
        BrokerPod {
            id,
            outdated,
            ready,
            terminating: false,
        }
    }

    fn view(partitions: Vec<(Vec<i32>, Vec<i32>, usize)>) -> ClusterView {
        ClusterView {
            brokers: [0, 1, 2].into(),
            controller: Some(0),
            partitions: partitions
                .into_iter()
                .enumerate()
                .map(|(i, (replicas, isr, min_insync))| PartitionView {
                    topic: "t".into(),
                    partition: i as u32,
                    leader: isr.first().copied().unwrap_or(-1),
                    replicas,
                    isr,
                    min_insync,
                })
                .collect(),
            reassigning: Default::default(),
        }
    }

    #[test]
    fn nothing_outdated_is_done() {
        let pods = [pod(0, false, true), pod(1, false, true)];
        assert_eq!(next_step(&pods, Some(&view(vec![]))), RollStep::Done);
    }

    #[test]
    fn restarts_one_at_a_time_controller_last() {
        let healthy = view(vec![(vec![0, 1, 2], vec![0, 1, 2], 2)]);
        let pods = [pod(0, true, true), pod(1, true, true), pod(2, true, true)];
        assert_eq!(next_step(&pods, Some(&healthy)), RollStep::Restart(1));
        let pods = [pod(0, true, true), pod(1, false, true), pod(2, false, true)];
        assert_eq!(next_step(&pods, Some(&healthy)), RollStep::Restart(0));
    }

    #[test]
    fn waits_while_a_pod_restarts_or_is_not_ready() {
        let healthy = view(vec![(vec![0, 1, 2], vec![0, 1, 2], 2)]);
        let mut restarting = pod(1, false, false);
        restarting.terminating = true;
        let pods = [pod(0, true, true), restarting, pod(2, true, true)];
        assert!(matches!(
            next_step(&pods, Some(&healthy)),
            RollStep::Wait(_)
        ));
        let pods = [pod(0, true, true), pod(1, false, false), pod(2, true, true)];
        assert!(
            matches!(next_step(&pods, Some(&healthy)), RollStep::Wait(m) if m.contains("broker 1"))
        );
    }

    #[test]
    fn waits_until_every_isr_is_full() {
        let lagging = view(vec![(vec![0, 1, 2], vec![0, 2], 1)]);
        let pods = [pod(0, true, true), pod(1, true, true), pod(2, true, true)];
        match next_step(&pods, Some(&lagging)) {
            RollStep::Wait(reason) => assert!(reason.contains("under-replicated"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn never_drops_a_partition_below_min_insync() {
        // RF 2 with min.insync 2: any restart would block acks=all writers.
        let tight = view(vec![(vec![1, 2], vec![1, 2], 2)]);
        let pods = [pod(0, false, true), pod(1, true, true), pod(2, false, true)];
        match next_step(&pods, Some(&tight)) {
            RollStep::Wait(reason) => assert!(reason.contains("min.insync.replicas=2"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // Broker 0 holds nothing of it: fine to restart.
        let pods = [pod(0, true, true), pod(1, false, true), pod(2, false, true)];
        assert_eq!(next_step(&pods, Some(&tight)), RollStep::Restart(0));
    }

    #[test]
    fn a_broken_outdated_pod_is_replaced_first() {
        let healthy = view(vec![(vec![0, 1, 2], vec![0, 2], 1)]);
        let pods = [pod(0, true, true), pod(1, true, false), pod(2, true, true)];
        assert_eq!(next_step(&pods, Some(&healthy)), RollStep::Restart(1));
    }

    #[test]
    fn without_the_brokers_only_an_all_down_cluster_rolls() {
        let pods = [pod(0, true, false), pod(1, true, false)];
        assert_eq!(next_step(&pods, None), RollStep::Restart(0));
        let pods = [pod(0, true, true), pod(1, true, false)];
        assert!(matches!(next_step(&pods, None), RollStep::Wait(_)));
    }
}
