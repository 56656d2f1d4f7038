//! Disruption budgets: voluntary disruptions (node drains, cluster
//! upgrades) take at most one broker, and at most one managed etcd member,
//! at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{names, object_meta, selector};
use crate::Result;
use crate::crd::Cluster;

/// PDB `<c>-broker`: one broker down at a time, so a partition with
/// replication factor 3 keeps two replicas (min.insync.replicas 2 still
/// accepts writes).
pub fn broker_pdb(cluster: &Cluster) -> Result<PodDisruptionBudget> {
    pdb(cluster, names::pdb(cluster), "broker")
}

/// PDB `<c>-etcd` for a managed etcd of `members` members, or `None` for a
/// single member: it has no redundancy for a budget to protect, and a budget
/// allowing no disruption would block every node drain forever.
pub fn etcd_pdb(cluster: &Cluster, members: i32) -> Result<Option<PodDisruptionBudget>> {
    if members < 3 {
        return Ok(None);
    }
    // One member down keeps a quorum of 3 (2 of 3) and of 5 (4 of 5).
    pdb(cluster, names::etcd_statefulset(cluster), "etcd").map(Some)
}

fn pdb(cluster: &Cluster, name: String, component: &str) -> Result<PodDisruptionBudget> {
    Ok(PodDisruptionBudget {
        metadata: object_meta(cluster, name, component)?,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(cluster, component)),
            // A pod that is not ready serves nothing, so evicting it costs
            // no availability; with the default (IfHealthyBudget) a
            // crash-looping pod would block node drains.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::samples;

    #[test]
    fn one_broker_at_a_time() {
        let cluster = samples::minimal();
        let pdb = broker_pdb(&cluster).unwrap();
        assert_eq!(pdb.metadata.name.as_deref(), Some("minimal-broker"));
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(
            spec.selector.unwrap().match_labels.unwrap(),
            names::selector_labels(&cluster, "broker")
        );
    }

    #[test]
    fn no_etcd_budget_for_one_member() {
        let cluster = samples::minimal();
        assert!(etcd_pdb(&cluster, 1).unwrap().is_none());
        let pdb = etcd_pdb(&cluster, 3).unwrap().unwrap();
        assert_eq!(pdb.metadata.name.as_deref(), Some("minimal-etcd"));
    }
}
