//! ListGroups: every group with a coordinator or committed offsets.

use std::collections::BTreeMap;

use runnel_proto::v1::{GroupListing, ListGroupsRequest, ListGroupsResponse};

use super::GroupCoordinator;
use crate::Result;
use crate::meta::records::{self, GroupCoordinatorRecord};

pub async fn handle(
    coord: &GroupCoordinator,
    _req: ListGroupsRequest,
) -> Result<ListGroupsResponse> {
    let keys = coord.keys();
    let mut groups: BTreeMap<String, i32> = BTreeMap::new();
    for kv in coord.store().range(&keys.groups_prefix()).await? {
        let Some((group, rest)) = keys.group_of(&kv.key) else {
            continue;
        };
        let slot = groups.entry(group.to_owned()).or_insert(-1);
        if rest == "coordinator" {
            *slot = records::decode::<GroupCoordinatorRecord>(&kv.key, &kv.value)?.broker_id;
        }
    }
    Ok(ListGroupsResponse {
        groups: groups
            .into_iter()
            .map(|(group_id, coordinator_id)| GroupListing {
                group_id,
                coordinator_id,
            })
            .collect(),
    })
}
