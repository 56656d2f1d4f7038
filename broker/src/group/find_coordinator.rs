//! FindCoordinator: which broker coordinates a group. A lookup claims
//! nothing: a group nobody coordinates yet is given a live broker picked
//! by a hash of its id (so every client asking any broker hears the same
//! one), and that broker claims the group on its first real operation
//! (join, commit, offset fetch). Lookups of made-up group ids therefore
//! leave no state behind, in the metadata store or in broker memory.

use runnel_proto::v1::{FindCoordinatorRequest, FindCoordinatorResponse};

use super::{GroupCoordinator, validate_group_id};
use crate::{Error, Result};

pub async fn handle(
    coord: &GroupCoordinator,
    req: FindCoordinatorRequest,
) -> Result<FindCoordinatorResponse> {
    validate_group_id(&req.group_id)?;
    let broker = match coord.holder(&req.group_id).await? {
        Some((broker, _, _)) => broker,
        None => pick(&req.group_id, &coord.view().live_brokers()).ok_or_else(|| {
            Error::NotCoordinator {
                group: req.group_id.clone(),
                reason: "no broker is live; retry shortly".into(),
            }
        })?,
    };
    let record = coord
        .view()
        .read(|i| i.brokers.get(&broker).cloned())
        .ok_or_else(|| Error::NotCoordinator {
            group: req.group_id.clone(),
            reason: format!("its coordinator, broker {broker}, is not live; retry shortly"),
        })?;
    Ok(FindCoordinatorResponse {
        coordinator_id: broker,
        host: record.host,
        port: u32::from(record.port),
    })
}

/// The live broker for an unclaimed group: `live[hash(group) % n]` (FNV-1a,
/// stable across brokers and builds, unlike std's hasher).
fn pick(group: &str, live: &[i32]) -> Option<i32> {
    if live.is_empty() {
        return None;
    }
    let hash = group.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    Some(live[(hash % live.len() as u64) as usize])
}

#[cfg(test)]
mod tests {
    use super::pick;

    #[test]
    fn every_broker_picks_the_same_live_broker() {
        assert_eq!(pick("g", &[]), None);
        assert_eq!(pick("g", &[7]), Some(7));
        let live = [0, 1, 2];
        let first = pick("orders", &live);
        assert_eq!(first, pick("orders", &live));
        // Different groups spread over the brokers.
        let picked: std::collections::BTreeSet<i32> = (0..50)
            .filter_map(|i| pick(&format!("group-{i}"), &live))
            .collect();
        assert_eq!(picked.len(), 3);
    }
}
