//! Broker registration: `brokers/<id>` held under the broker's own lease.
//!
//! [`Registration::register`] grants a lease and creates `brokers/<id>` with
//! it, only if the key is absent, so two live brokers can never claim one id.
//! A background task keeps the lease alive (every third of its TTL); if the
//! lease is lost anyway (the store was unreachable for longer than the TTL)
//! the task registers again under a new lease as soon as the store answers.
//! A broker that stops keeping its lease alive — crashed, partitioned, or its
//! [`Registration`] dropped — disappears from [`live_brokers`] once the TTL
//! runs out; [`Registration::deregister`] (clean shutdown) removes it at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use super::keys::Keys;
use super::records::{self, BrokerRecord};
use super::{Compare, KeyValue, LeaseId, MetadataStore, Op, lease_ttl_seconds};
use crate::{Error, Result};

/// Every registered broker, sorted by id.
pub async fn live_brokers(store: &dyn MetadataStore, keys: &Keys) -> Result<Vec<BrokerRecord>> {
    let mut brokers = store
        .range(&keys.brokers_prefix())
        .await?
        .iter()
        .map(|kv| records::decode::<BrokerRecord>(&kv.key, &kv.value))
        .collect::<Result<Vec<_>>>()?;
    brokers.sort_by_key(|b| b.broker_id);
    Ok(brokers)
}

/// This broker's entry in `brokers/<id>`, kept alive in the background.
/// Dropping it stops the keep-alives without revoking anything, like a crash:
/// the entry goes away when the lease's TTL runs out.
pub struct Registration {
    store: Arc<dyn MetadataStore>,
    broker_id: i32,
    shared: Arc<Shared>,
    /// Tells the keep-alive task to stop between rounds (clean shutdown), so
    /// it never leaves a key under a lease we do not know about.
    stop: watch::Sender<bool>,
    /// `None` only once [`Registration::deregister`] has taken it.
    task: Mutex<Option<JoinHandle<()>>>,
}

/// State the keep-alive task updates and the owner reads.
struct Shared {
    /// The lease `brokers/<id>` is (or was last) attached to; replaced when
    /// the task re-registers.
    lease: Mutex<LeaseId>,
    /// False while the lease is known lost: the store said so, or no
    /// keep-alive succeeded for a whole TTL.
    registered: AtomicBool,
}

/// What the keep-alive task needs to re-register.
struct Claim {
    store: Arc<dyn MetadataStore>,
    key: String,
    value: Vec<u8>,
    broker_id: i32,
    ttl: Duration,
    /// Where the current lease id is written, if anywhere.
    lease_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("broker_id", &self.broker_id)
            .field("lease", &self.lease())
            .field("registered", &self.is_registered())
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// Grant a lease of `ttl` and create `brokers/<id>` under it, failing
    /// with [`Error::BrokerIdInUse`] (and writing nothing) if another broker
    /// holds the id; then keep the lease alive in the background.
    pub async fn register(
        store: Arc<dyn MetadataStore>,
        keys: Keys,
        record: BrokerRecord,
        ttl: Duration,
    ) -> Result<Registration> {
        Self::register_with_lease_file(store, keys, record, ttl, None, Duration::ZERO).await
    }

    /// [`register`](Self::register) for a broker with a data directory:
    /// the lease id is kept in `lease_file`, so a broker restarted before
    /// its old lease expired (a crash, `kill -9`) recognizes its own stale
    /// registration and revokes it — which the controller sees as the
    /// broker's death, moving leadership as for any failure — instead of
    /// failing with [`Error::BrokerIdInUse`]. Someone else's registration
    /// is waited out for up to `wait` (its lease may be about to expire).
    pub async fn register_with_lease_file(
        store: Arc<dyn MetadataStore>,
        keys: Keys,
        record: BrokerRecord,
        ttl: Duration,
        lease_file: Option<std::path::PathBuf>,
        wait: Duration,
    ) -> Result<Registration> {
        let claim = Claim {
            store: store.clone(),
            key: keys.broker(record.broker_id),
            value: records::encode(&record),
            broker_id: record.broker_id,
            ttl,
            lease_file,
        };
        let deadline = Instant::now() + wait;
        let lease = loop {
            match claim.claim(None).await {
                Ok(lease) => break lease,
                Err(Error::BrokerIdInUse { .. }) if claim.reclaim_own().await? => continue,
                Err(e @ Error::BrokerIdInUse { .. }) if Instant::now() >= deadline => {
                    return Err(e);
                }
                Err(Error::BrokerIdInUse { host, port, .. }) => {
                    warn!(broker_id = record.broker_id, %host, port,
                        "broker id registered by someone else; waiting for that lease to expire");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        info!(
            broker_id = record.broker_id,
            host = %record.host,
            port = record.port,
            %lease,
            "registered broker"
        );
        let shared = Arc::new(Shared {
            lease: Mutex::new(lease),
            registered: AtomicBool::new(true),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(keep_alive_loop(claim, shared.clone(), stopped));
        Ok(Registration {
            store,
            broker_id: record.broker_id,
            shared,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// False while the lease is known lost (the store said it expired, or no
    /// keep-alive got through for a whole TTL); true again once kept alive or
    /// re-registered.
    pub fn is_registered(&self) -> bool {
        self.shared.registered.load(Ordering::Acquire)
    }

    /// The lease `brokers/<id>` is attached to; a new one after the task has
    /// re-registered.
    pub fn lease(&self) -> LeaseId {
        *self.shared.lease.lock()
    }

    /// Clean shutdown: stop the keep-alives and revoke the lease, so the
    /// broker leaves [`live_brokers`] at once. Fails only if the store cannot
    /// be reached; the entry then goes away when the TTL runs out.
    pub async fn deregister(&self) -> Result<()> {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            // The task only stops between rounds; a panic in it is already
            // logged by tokio, and the revoke below still cleans up.
            let _ = task.await;
        }
        let lease = self.lease();
        self.store.revoke_lease(lease).await?;
        info!(broker_id = self.broker_id, %lease, "deregistered broker");
        Ok(())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

/// Keep the lease alive every third of its TTL; when the store says it is
/// gone, register again under a new lease (retrying each round).
async fn keep_alive_loop(claim: Claim, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let broker_id = claim.broker_id;
    // What we asked for until the store tells us what it granted.
    let mut ttl = Duration::from_secs(lease_ttl_seconds(claim.ttl).unsigned_abs());
    let mut last_renewed = Instant::now();
    loop {
        let period = (ttl / 3).max(Duration::from_millis(50));
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(period) => {}
        }
        let lease = *shared.lease.lock();
        // keep_alive changes nothing in the store, so it may be cut short.
        let renewed = tokio::select! {
            _ = stop.changed() => return,
            renewed = claim.store.keep_alive(lease) => renewed,
        };
        match renewed {
            Ok(granted) => {
                ttl = granted;
                last_renewed = Instant::now();
                if !shared.registered.swap(true, Ordering::AcqRel) {
                    info!(broker_id, %lease, "broker registration kept alive again");
                }
            }
            Err(Error::LeaseExpired { .. }) => {
                if shared.registered.swap(false, Ordering::AcqRel) {
                    warn!(broker_id, %lease, "lease lost: broker registration is gone; registering again");
                }
                // Not cut short by `stop`: a claim interrupted after its put
                // would leave the key under a lease nobody revokes.
                match claim.claim(Some(lease)).await {
                    Ok(new) => {
                        *shared.lease.lock() = new;
                        last_renewed = Instant::now();
                        shared.registered.store(true, Ordering::Release);
                        info!(broker_id, lease = %new, "broker registered again under a new lease");
                    }
                    Err(e) => warn!(broker_id, error = %e, "registering again failed; retrying"),
                }
            }
            Err(e) => {
                if last_renewed.elapsed() >= ttl {
                    if shared.registered.swap(false, Ordering::AcqRel) {
                        warn!(broker_id, %lease, ?ttl, error = %e,
                            "no keep-alive got through for a whole TTL: lease presumed lost");
                    }
                } else {
                    warn!(broker_id, %lease, error = %e, "lease keep-alive failed; retrying");
                }
            }
        }
    }
}

impl Claim {
    /// Grant a lease and put the key under it if the key is absent, or still
    /// attached to `stale` (our own lost lease, which the store has not
    /// cleaned up yet). On failure the new lease is revoked again.
    async fn claim(&self, stale: Option<LeaseId>) -> Result<LeaseId> {
        let lease = self.store.grant_lease(self.ttl).await?;
        match self.put(lease, stale).await {
            Ok(()) => {
                if let Some(path) = &self.lease_file {
                    // Best effort: without it a restart waits out the TTL.
                    if let Err(e) = std::fs::write(path, lease.get().to_string()) {
                        warn!(path = %path.display(), error = %e, "cannot record the lease id");
                    }
                }
                Ok(lease)
            }
            Err(e) => {
                // Best effort: an unrevoked lease holds no keys and expires.
                let _ = self.store.revoke_lease(lease).await;
                Err(e)
            }
        }
    }

    async fn put(&self, lease: LeaseId, stale: Option<LeaseId>) -> Result<()> {
        let put = || {
            vec![Op::PutWithLease(
                self.key.clone(),
                self.value.clone(),
                lease,
            )]
        };
        let absent = Compare::ModRevision(self.key.clone(), 0);
        if self.store.txn(vec![absent], put()).await?.succeeded {
            return Ok(());
        }
        let Some(kv) = self.store.get(&self.key).await? else {
            // Deleted between the txn and the get: the next round retries.
            return Err(Error::Metadata(format!(
                "broker id {}: {} changed while registering; retrying",
                self.broker_id, self.key
            )));
        };
        if stale.is_none() || kv.lease != stale {
            return Err(self.in_use(&kv));
        }
        let ours = Compare::ModRevision(self.key.clone(), kv.mod_revision);
        if self.store.txn(vec![ours], put()).await?.succeeded {
            Ok(())
        } else {
            Err(Error::Metadata(format!(
                "broker id {}: {} changed while registering; retrying",
                self.broker_id, self.key
            )))
        }
    }

    /// If `brokers/<id>` is held under the lease our lease file names (our
    /// previous life), revoke that lease and say so.
    async fn reclaim_own(&self) -> Result<bool> {
        let Some(path) = &self.lease_file else {
            return Ok(false);
        };
        let Some(previous) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .map(LeaseId)
        else {
            return Ok(false);
        };
        let holder = self.store.get(&self.key).await?;
        if holder.is_none_or(|kv| kv.lease != Some(previous)) {
            return Ok(false);
        }
        info!(broker_id = self.broker_id, lease = %previous, "revoking this broker's registration from before its restart");
        self.store.revoke_lease(previous).await?;
        Ok(true)
    }

    /// The error naming who holds `brokers/<id>`.
    fn in_use(&self, kv: &KeyValue) -> Error {
        match records::decode::<BrokerRecord>(&kv.key, &kv.value) {
            Ok(holder) => Error::BrokerIdInUse {
                broker_id: self.broker_id,
                host: holder.host,
                port: holder.port,
            },
            Err(e) => Error::Metadata(format!(
                "broker id {} is already registered, by a record this broker cannot read: {e}",
                self.broker_id
            )),
        }
    }
}
