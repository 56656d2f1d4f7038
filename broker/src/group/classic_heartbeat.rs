//! Kafka's Heartbeat (classic protocol): keep a session alive, learn that
//! the group is rebalancing.

use tokio::time::Instant;

use super::{GroupCoordinator, GroupEntry};
use crate::Result;

impl GroupCoordinator {
    /// Heartbeat from a Kafka client: refreshes the member's session
    /// (`session.timeout.ms`; the reaper removes members silent for longer,
    /// which starts a rebalance).
    ///
    /// Errors: `RebalanceInProgress` while the group's join phase runs (the
    /// client rejoins), `IllegalGeneration`, `UnknownMemberId`,
    /// `FencedInstanceId`, `NotCoordinator`.
    pub async fn classic_heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
    ) -> Result<()> {
        let entry = self.entry(group_id).await?;
        heartbeat(&entry, member_id, group_instance_id, generation)
    }
}

/// Heartbeat on a group this broker coordinates.
pub(super) fn heartbeat(
    entry: &GroupEntry,
    member_id: &str,
    group_instance_id: Option<&str>,
    generation: i32,
) -> Result<()> {
    let mut classic = entry.classic.lock();
    let result = classic
        .group
        .heartbeat(member_id, group_instance_id, generation, Instant::now());
    classic.deliver();
    result
}
