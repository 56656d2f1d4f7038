//! The embedded store's leases: in memory only.
//!
//! A lease cannot outlive the process that keeps it alive, so the table is
//! never persisted: only the key → lease attachments are (in redb), and on
//! open the embedded store deletes every attached key, because the process
//! that held their leases is gone. Deadlines use [`tokio::time::Instant`] so
//! tests can drive expiry with `tokio::time::pause()`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{LeaseId, lease_ttl_seconds};

/// One live lease.
#[derive(Debug, Clone, Copy)]
struct Lease {
    ttl: Duration,
    /// Past this the lease is dead, whether or not the sweeper has run yet.
    deadline: Instant,
}

/// Live leases and their deadlines.
#[derive(Debug)]
pub(crate) struct LeaseTable {
    leases: Mutex<HashMap<LeaseId, Lease>>,
    next_id: Mutex<i64>,
    /// Wakes the sweeper when a lease is granted (its deadline may be the
    /// earliest now). `notify_one` keeps a permit, so no wake-up is lost.
    pub(crate) changed: Notify,
}

impl LeaseTable {
    pub(crate) fn new() -> Self {
        LeaseTable {
            leases: Mutex::new(HashMap::new()),
            next_id: Mutex::new(0),
            changed: Notify::new(),
        }
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<LeaseId, Lease>> {
        // A panic while holding the lock cannot leave the map half-changed.
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn grant(&self, ttl: Duration, now: Instant) -> LeaseId {
        let ttl = Duration::from_secs(lease_ttl_seconds(ttl).unsigned_abs());
        let id = {
            let mut next = self
                .next_id
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *next += 1;
            LeaseId(*next)
        };
        self.leases().insert(
            id,
            Lease {
                ttl,
                deadline: now + ttl,
            },
        );
        self.changed.notify_one();
        id
    }

    /// Renew a live lease; `None` if it is dead or unknown.
    pub(crate) fn keep_alive(&self, id: LeaseId, now: Instant) -> Option<Duration> {
        let mut leases = self.leases();
        let lease = leases.get_mut(&id).filter(|l| l.deadline > now)?;
        lease.deadline = now + lease.ttl;
        Some(lease.ttl)
    }

    pub(crate) fn is_alive(&self, id: LeaseId, now: Instant) -> bool {
        self.leases().get(&id).is_some_and(|l| l.deadline > now)
    }

    pub(crate) fn revoke(&self, id: LeaseId) {
        self.leases().remove(&id);
    }

    /// Forget every lease past its deadline; true if any was.
    pub(crate) fn remove_expired(&self, now: Instant) -> bool {
        let mut leases = self.leases();
        let before = leases.len();
        leases.retain(|_, l| l.deadline > now);
        leases.len() != before
    }

    /// The earliest deadline, if any lease is live.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.leases().values().map(|l| l.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadlines_round_up_and_renew() {
        let table = LeaseTable::new();
        let start = Instant::now();
        let a = table.grant(Duration::from_millis(1500), start);
        let b = table.grant(Duration::ZERO, start);
        assert_ne!(a, b);
        assert_eq!(table.next_deadline(), Some(start + Duration::from_secs(1)));

        let later = start + Duration::from_millis(900);
        assert_eq!(table.keep_alive(a, later), Some(Duration::from_secs(2)));
        let dead = start + Duration::from_secs(1);
        assert!(!table.is_alive(b, dead), "a deadline is exclusive");
        assert_eq!(table.keep_alive(b, dead), None);
        assert!(table.remove_expired(dead));
        assert!(table.is_alive(a, dead));
        assert_eq!(table.next_deadline(), Some(later + Duration::from_secs(2)));

        table.revoke(a);
        assert_eq!(table.keep_alive(a, dead), None);
        assert_eq!(table.next_deadline(), None);
    }
}
