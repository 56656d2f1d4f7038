//! Cluster metadata: the ZooKeeper-style state every broker agrees on.
//!
//! [`MetadataStore`] is a small etcd-shaped key-value interface: keys with
//! revisions, compare-and-swap transactions and prefix watches. Two
//! implementations share it: [`embedded::EmbeddedStore`] (redb, one process,
//! the single-node default) and [`etcd::EtcdStore`] (cluster mode). Everything above
//! this module (topics, partition state) talks only to the trait, so the
//! single-node broker and a cluster store the same keys — see [`keys`] and
//! `docs/metadata.md`.
//!
//! Leases (etcd's): [`MetadataStore::grant_lease`] hands out a [`LeaseId`]
//! with a time to live; keys written with [`Op::PutWithLease`] are deleted by
//! the store (watchers see [`WatchEvent::Delete`]) once the lease is revoked or
//! not kept alive within its TTL. Broker registration ([`registration`]) rests
//! on this.

pub mod embedded;
pub mod etcd;
pub mod keys;
mod lease;
pub mod producer_ids;
pub mod records;
pub mod registration;

pub use etcd::EtcdTls;

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc};

use crate::Result;

/// A stored key with etcd-style revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Store revision at which the key was created.
    pub create_revision: i64,
    /// Store revision of the last change; the token for compare-and-swap.
    pub mod_revision: i64,
    /// The lease the key is attached to (etcd's `lease`, where 0 means none):
    /// the key goes away with it.
    pub lease: Option<LeaseId>,
}

/// A lease granted by [`MetadataStore::grant_lease`]; etcd's lease id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl LeaseId {
    /// The raw id, as etcd (and `etcdctl lease list`, in hex) shows it.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// A lease TTL as the stores keep it: whole seconds, rounded up, at least 1
/// (etcd's `LeaseGrant` takes seconds; etcd may raise it further to its own
/// minimum, 2 s with the default election timeout).
pub fn lease_ttl_seconds(ttl: Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs).unwrap_or(i64::MAX).max(1)
}

/// A condition a transaction checks before applying its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's `mod_revision` equals this; 0 means "the key does not exist".
    ModRevision(String, i64),
}

/// One write in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Put, detaching the key from any lease it had (as etcd does).
    Put(String, Vec<u8>),
    /// Put, attached to a live lease: the key is deleted when the lease ends.
    /// An expired, revoked or unknown lease fails the whole transaction with
    /// [`crate::Error::LeaseExpired`] and nothing is written.
    PutWithLease(String, Vec<u8>, LeaseId),
    Delete(String),
    /// Delete every key starting with this prefix.
    DeletePrefix(String),
}

/// What a committed (or refused) transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    /// False when a compare failed; then nothing was written.
    pub succeeded: bool,
    /// Store revision after the transaction.
    pub revision: i64,
}

/// A change seen by a watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Put(KeyValue),
    Delete { key: String, mod_revision: i64 },
}

impl WatchEvent {
    /// The key this event is about.
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put(kv) => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }
}

/// A stream of changes under one prefix.
pub struct Watch {
    prefix: String,
    source: Source,
}

/// Where a [`Watch`]'s events come from.
enum Source {
    /// A store-wide fan-out channel, filtered here by prefix (embedded store).
    Broadcast(broadcast::Receiver<WatchEvent>),
    /// Events already filtered by the store, fed by a background task that
    /// stops when this receiver is dropped (etcd). An `Err` item ends the
    /// watch.
    Channel(mpsc::Receiver<Result<WatchEvent>>),
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// Filter a store-wide event channel down to `prefix`.
    pub fn new(prefix: &str, rx: broadcast::Receiver<WatchEvent>) -> Self {
        Watch {
            prefix: prefix.to_owned(),
            source: Source::Broadcast(rx),
        }
    }

    /// A watch fed by a task that already filters to `prefix`. The task sends
    /// `Err` once when the watch breaks and should stop when `rx` is dropped
    /// ([`mpsc::Sender::closed`]).
    pub fn from_channel(prefix: &str, rx: mpsc::Receiver<Result<WatchEvent>>) -> Self {
        Watch {
            prefix: prefix.to_owned(),
            source: Source::Channel(rx),
        }
    }

    /// The next change under the prefix. `Err` means events were missed (the
    /// watcher fell behind, or lost its connection) or the store closed:
    /// re-read with [`MetadataStore::range`] and watch again.
    pub async fn next(&mut self) -> Result<WatchEvent> {
        match &mut self.source {
            Source::Broadcast(rx) => loop {
                match rx.recv().await {
                    Ok(event) if event.key().starts_with(&self.prefix) => return Ok(event),
                    Ok(_) => continue,
                    Err(e) => {
                        return Err(crate::Error::Metadata(format!(
                            "watch on {}: {e}",
                            self.prefix
                        )));
                    }
                }
            },
            Source::Channel(rx) => rx.recv().await.unwrap_or_else(|| {
                Err(crate::Error::Metadata(format!(
                    "watch on {}: closed",
                    self.prefix
                )))
            }),
        }
    }
}

/// etcd-shaped metadata storage. Implementations must apply a transaction's
/// compares and ops atomically and durably before returning.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// One key, if present.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;
    /// Every key under `prefix`, in key order.
    async fn range(&self, prefix: &str) -> Result<Vec<KeyValue>>;
    /// Apply `ops` atomically if every compare holds.
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome>;
    /// Changes to keys under `prefix` from now on. A store may also deliver
    /// changes committed shortly before the call (etcd starts at the last
    /// revision this client saw), never fewer; compare `mod_revision` with
    /// what you read to skip them.
    fn watch(&self, prefix: &str) -> Watch;

    /// A new lease living `ttl` (see [`lease_ttl_seconds`] for rounding) unless
    /// kept alive.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;
    /// One keep-alive round: the lease lives a full TTL from now; returns that
    /// TTL. An expired, revoked or unknown lease gives
    /// [`crate::Error::LeaseExpired`]: its keys are gone (or about to be), so
    /// grant a new lease and write them again.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration>;
    /// End the lease now, deleting every key attached to it (watchers see the
    /// deletes). Revoking a lease that has already ended is not an error.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;

    /// Unconditional put.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        Ok(self
            .txn(vec![], vec![Op::Put(key.to_owned(), value)])
            .await?
            .revision)
    }
}
