//! Kafka's SyncGroup (classic protocol): the leader hands in the
//! assignment, every member gets its part.

use tokio::time::Instant;

use super::classic::{self, ClassicSync, ClassicSynced, SyncStep};
use super::{GroupCoordinator, GroupEntry};
use crate::Result;

impl GroupCoordinator {
    /// SyncGroup from a Kafka client. The leader's carries every member's
    /// assignment (member id → bytes; members it leaves out get empty
    /// ones); a follower's waits until the leader's has arrived. In a
    /// `Stable` group the member's current assignment comes back at once.
    ///
    /// Errors: `RebalanceInProgress` (a join phase started: rejoin),
    /// `IllegalGeneration`, `UnknownMemberId`, `FencedInstanceId`,
    /// `InconsistentGroupProtocol` (protocol type or name given and not the
    /// group's), `NotCoordinator`.
    pub async fn classic_sync(&self, req: ClassicSync) -> Result<ClassicSynced> {
        let entry = self.entry(&req.group_id).await?;
        sync(&entry, req).await
    }
}

/// SyncGroup on a group this broker coordinates.
pub(super) async fn sync(entry: &GroupEntry, req: ClassicSync) -> Result<ClassicSynced> {
    let rx = {
        let mut classic = entry.classic.lock();
        let step = classic.group.sync(&req, Instant::now());
        let rx = matches!(step, Ok(SyncStep::Wait)).then(|| classic.park_sync(&req.member_id));
        classic.deliver();
        match (step, rx) {
            (Ok(SyncStep::Done(synced)), _) => return Ok(synced),
            (Err(e), _) => return Err(e),
            (Ok(SyncStep::Wait), rx) => rx.expect("parked"),
        }
    };
    classic::wait(entry, rx).await
}
