//! Kafka's DescribeGroups and ListGroups views of the groups this broker
//! coordinates, whichever protocol runs them.

use super::classic::{ClassicDescription, ClassicMemberDescription, ClassicState};
use super::{GroupCoordinator, GroupEntry, offsets};
use crate::Result;

/// The protocol type reported for a group run by Runnel's own protocol.
pub const RUNNEL_PROTOCOL_TYPE: &str = "runnel";

/// One group as Kafka's ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicListing {
    pub group_id: String,
    /// `consumer` for Kafka consumer groups, `runnel` for groups of Runnel
    /// consumers, empty for a group that never had members here.
    pub protocol_type: String,
    /// Kafka's state name (ListGroups v4+).
    pub state: String,
}

impl GroupCoordinator {
    /// What Kafka's DescribeGroups shows: state (Kafka's names), protocol
    /// type, chosen protocol and members (metadata and assignment only while
    /// `Stable`, as Kafka does). A group run by Runnel's own protocol is
    /// shown with protocol type `runnel`, its assignor as the protocol and
    /// its members' client ids. A group with no members and no committed
    /// offsets is `Dead`, as Kafka reports unknown groups.
    pub async fn classic_describe(&self, group_id: &str) -> Result<ClassicDescription> {
        let entry = self.entry(group_id).await?;
        let mut description = describe(&entry);
        if description.state == ClassicState::Empty.name()
            && offsets::read_all(self, group_id).await?.is_empty()
        {
            description.state = ClassicState::Dead.name().to_owned();
        }
        Ok(description)
    }

    /// What Kafka's ListGroups shows: the groups this broker coordinates.
    pub fn classic_list(&self) -> Vec<ClassicListing> {
        let entries: Vec<std::sync::Arc<GroupEntry>> =
            self.groups.lock().values().cloned().collect();
        let mut out: Vec<ClassicListing> = entries
            .iter()
            .map(|e| {
                let d = describe(e);
                ClassicListing {
                    group_id: d.group_id,
                    protocol_type: d.protocol_type,
                    state: d.state,
                }
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }
}

/// The Kafka view of one group.
pub(super) fn describe(entry: &GroupEntry) -> ClassicDescription {
    let state = entry.state.lock();
    if state.members.is_empty() {
        drop(state);
        return entry.classic.lock().group.describe();
    }
    ClassicDescription {
        group_id: state.group_id.clone(),
        // Runnel's Reconciling is between assignments, like a rebalance.
        state: match state.phase() {
            super::state::GroupPhase::Empty => ClassicState::Empty,
            super::state::GroupPhase::Stable => ClassicState::Stable,
            super::state::GroupPhase::Reconciling => ClassicState::PreparingRebalance,
        }
        .name()
        .to_owned(),
        protocol_type: RUNNEL_PROTOCOL_TYPE.to_owned(),
        protocol_name: state.assignor.name().to_owned(),
        members: state
            .members
            .values()
            .map(|m| ClassicMemberDescription {
                member_id: m.id.clone(),
                group_instance_id: None,
                client_id: m.client_id.clone(),
                client_host: String::new(),
                metadata: Default::default(),
                assignment: Default::default(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::super::classic::test_support::{entry, join_req, sync_req};
    use super::super::classic_join::join;
    use super::super::classic_sync::sync;
    use super::*;

    #[tokio::test]
    async fn describe_shows_kafka_state_names_and_stable_members_bytes() {
        tokio::time::pause();
        let e = entry(Duration::ZERO);
        assert_eq!(describe(&e).state, "Empty");
        let a = join(&e, join_req("", &["range"])).await.unwrap();
        let d = describe(&e);
        assert_eq!(d.state, "CompletingRebalance");
        assert_eq!(d.protocol_type, "consumer");
        assert_eq!(d.protocol_name, "", "only while Stable");
        assert_eq!(d.members[0].metadata, Bytes::new());
        sync(&e, sync_req(&a.member_id, 1, &[(&a.member_id, "A")]))
            .await
            .unwrap();
        let d = describe(&e);
        assert_eq!(d.state, "Stable");
        assert_eq!(d.protocol_name, "range");
        let m = &d.members[0];
        assert_eq!(m.member_id, a.member_id);
        assert_eq!(m.client_id, "client");
        assert_eq!(m.client_host, "/127.0.0.1");
        assert_eq!(m.metadata, Bytes::from(":range"));
        assert_eq!(m.assignment, Bytes::from("A"));
    }

    #[test]
    fn a_runnel_group_is_shown_with_its_own_protocol_type() {
        let e = entry(Duration::ZERO);
        e.state.lock().join(
            "",
            "runnel-client",
            ["t".to_string()].into(),
            super::super::assignor::Assignor::Sticky,
            Duration::from_secs(10),
            std::time::Instant::now(),
            &|_| Some(2),
        );
        let d = describe(&e);
        assert_eq!(d.protocol_type, RUNNEL_PROTOCOL_TYPE);
        assert_eq!(d.protocol_name, "sticky");
        assert_eq!(d.members[0].client_id, "runnel-client");
    }
}
