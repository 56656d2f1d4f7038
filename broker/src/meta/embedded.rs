//! [`EmbeddedStore`]: the single-node [`MetadataStore`], on redb.
//!
//! redb gives us crash-safe, durable transactions in one file
//! (`<data-dir>/metadata.redb`), so topics and configs survive restarts and
//! `kill -9` without a hand-rolled format. It serves exactly one process (redb
//! locks the file); it is not a second etcd.
//!
//! Revisions follow etcd: one store-wide counter bumped by every successful
//! write transaction; each key remembers its create and mod revision.
//!
//! Leases follow etcd too, but live in memory only (`meta/lease.rs`): a
//! lease cannot outlive this process. Which key is attached to which lease is
//! persisted (table `leased`), so that opening the store deletes every such
//! key — the process that kept their leases alive is gone. While the store is
//! open a background task deletes the keys of leases that were not kept alive
//! within their TTL; it starts with the first lease and stops when the store
//! is dropped.
//!
//! A write that fails on I/O (a full disk: the file lives in the data
//! directory) makes redb refuse every later transaction until the file is
//! opened again. So the store then drops its handle and opens the file anew
//! on the next call (`DbSlot`): once space is back, metadata writes
//! (topics, producer ids) work again without a broker restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::lease::LeaseTable;
use super::{Compare, KeyValue, LeaseId, MetadataStore, Op, TxnOutcome, Watch, WatchEvent};
use crate::{Error, Result};

/// The store's file inside the data directory.
pub const FILE_NAME: &str = "metadata.redb";

/// key -> create_revision (8 bytes LE) ++ mod_revision (8 bytes LE) ++ value.
const KV: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kv");
/// key -> the lease it is attached to, for keys put with a lease. A separate
/// table keeps `kv` entries in the format older stores wrote.
const LEASED: TableDefinition<'_, &str, i64> = TableDefinition::new("leased");
/// "revision" -> the store revision.
const META: TableDefinition<'_, &str, i64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

/// Watch fan-out capacity; a watcher further behind re-reads with `range`.
const WATCH_BUFFER: usize = 1024;

/// How long the lease sweeper waits after a failed sweep before it retries.
const SWEEP_RETRY: Duration = Duration::from_secs(1);

/// The open database, or none after a failed write until it is opened
/// again.
struct DbSlot {
    path: PathBuf,
    db: Mutex<Option<Arc<Database>>>,
}

impl DbSlot {
    /// The database, opened again if a failed write closed it. The open
    /// fails (and the next call tries again) while an operation that began
    /// before the failure still holds the old handle, or while the disk is
    /// still full and redb's recovery cannot write.
    fn get(&self) -> Result<Arc<Database>> {
        let mut slot = self
            .db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(db) = &*slot {
            return Ok(db.clone());
        }
        let db = Arc::new(Database::create(&self.path).map_err(|e| {
            Error::Metadata(format!(
                "embedded store: opening {} again after a failed write: {e}",
                self.path.display()
            ))
        })?);
        tracing::info!(path = %self.path.display(), "reopened the metadata store after a failed write");
        *slot = Some(db.clone());
        Ok(db)
    }

    /// `db` failed on I/O: forget it (if nobody did yet), so the next call
    /// opens the file again.
    fn failed(&self, db: &Arc<Database>) {
        let mut slot = self
            .db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, db))
        {
            tracing::warn!(path = %self.path.display(), "a metadata store write failed on I/O; it will be opened again");
            *slot = None;
        }
    }

    /// Run `f` on the database; an I/O failure closes it (see above) and
    /// names the store's file.
    fn with<T>(&self, f: impl FnOnce(&Database) -> Result<T>) -> Result<T> {
        let db = self.get()?;
        let result = f(&db);
        match result {
            Err(Error::Io {
                context, source, ..
            }) => {
                self.failed(&db);
                Err(Error::io(context, &self.path, source))
            }
            Err(Error::StorageFull {
                context, source, ..
            }) => {
                self.failed(&db);
                Err(Error::io(context, &self.path, source))
            }
            other => other,
        }
    }
}

/// redb-backed metadata for a single broker.
pub struct EmbeddedStore {
    db: Arc<DbSlot>,
    events: broadcast::Sender<WatchEvent>,
    leases: Arc<LeaseTable>,
    /// The lease sweeper, once a lease was granted; aborted on drop.
    sweeper: Mutex<Option<AbortHandle>>,
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        let sweeper = self
            .sweeper
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sweeper) = sweeper.take() {
            sweeper.abort();
        }
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

fn meta_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Metadata(format!("embedded store: {what}: {e}"))
}

/// What an I/O error of the store was doing, for its message.
const STORE_CONTEXT: &str = "writing the metadata store";

/// A redb error: I/O failures (and redb's refusal after one) become
/// [`Error::Io`] / [`Error::StorageFull`], which [`DbSlot::with`] turns
/// into a reopen and completes with the file's path.
fn db_err(what: &str, e: impl Into<redb::Error>) -> Error {
    match e.into() {
        redb::Error::Io(io) => Error::io(STORE_CONTEXT, FILE_NAME, io),
        redb::Error::PreviousIo => Error::io(
            STORE_CONTEXT,
            FILE_NAME,
            std::io::Error::other("an earlier write to the metadata store failed"),
        ),
        e => meta_err(what, e),
    }
}

fn encode_entry(create: i64, modr: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(&modr.to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn decode_entry(key: &str, raw: &[u8], lease: Option<LeaseId>) -> Result<KeyValue> {
    if raw.len() < 16 {
        return Err(meta_err("corrupt entry", key));
    }
    let create = i64::from_le_bytes(raw[0..8].try_into().expect("8 bytes"));
    let modr = i64::from_le_bytes(raw[8..16].try_into().expect("8 bytes"));
    Ok(KeyValue {
        key: key.to_owned(),
        value: raw[16..].to_vec(),
        create_revision: create,
        mod_revision: modr,
        lease,
    })
}

/// The lease `key` is attached to, if any.
fn lease_of(leased: &impl ReadableTable<&'static str, i64>, key: &str) -> Result<Option<LeaseId>> {
    Ok(leased
        .get(key)
        .map_err(|e| db_err("get lease", e))?
        .map(|v| LeaseId(v.value())))
}

/// etcd refuses a transaction that writes one key twice (two puts, a put
/// and a delete, or a put inside a deleted prefix); so do we, so the two
/// stores accept the same transactions.
fn check_distinct_keys(ops: &[Op]) -> Result<()> {
    let mut keys = std::collections::HashSet::new();
    let mut prefixes = Vec::new();
    for op in ops {
        match op {
            Op::Put(key, _) | Op::PutWithLease(key, _, _) | Op::Delete(key) => {
                if !keys.insert(key.as_str()) {
                    return Err(meta_err("duplicate key given in txn request", key));
                }
            }
            Op::DeletePrefix(prefix) => prefixes.push(prefix.as_str()),
        }
    }
    for prefix in prefixes {
        if let Some(key) = keys.iter().find(|k| k.starts_with(prefix)) {
            return Err(meta_err("duplicate key given in txn request", key));
        }
    }
    Ok(())
}

impl EmbeddedStore {
    /// Open (or create) `<dir>/metadata.redb`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating data dir", dir, e))?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|e| {
            meta_err(
                &format!(
                    "opening {} (is another broker using this data dir?)",
                    path.display()
                ),
                e,
            )
        })?;
        // Create the tables so readers never see "table does not exist".
        let txn = db.begin_write().map_err(|e| db_err("begin", e))?;
        txn.open_table(KV).map_err(|e| db_err("open kv", e))?;
        txn.open_table(META).map_err(|e| db_err("open meta", e))?;
        txn.open_table(LEASED)
            .map_err(|e| db_err("open leased", e))?;
        txn.commit().map_err(|e| db_err("commit", e))?;
        // No lease is live in a new process: delete every leased key.
        let leases = Arc::new(LeaseTable::new());
        let orphans = Self::sweep_blocking(&db, &leases, Instant::now())?;
        if !orphans.is_empty() {
            tracing::info!(
                keys = orphans.len(),
                "deleted metadata keys whose leases ended with the previous process"
            );
        }
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        Ok(EmbeddedStore {
            db: Arc::new(DbSlot {
                path,
                db: Mutex::new(Some(Arc::new(db))),
            }),
            events,
            leases,
            sweeper: Mutex::new(None),
        })
    }

    fn get_blocking(db: &Database, key: &str) -> Result<Option<KeyValue>> {
        let txn = db.begin_read().map_err(|e| db_err("begin read", e))?;
        let table = txn.open_table(KV).map_err(|e| db_err("open kv", e))?;
        let leased = txn
            .open_table(LEASED)
            .map_err(|e| db_err("open leased", e))?;
        let found = table.get(key).map_err(|e| db_err("get", e))?;
        found
            .map(|v| decode_entry(key, v.value(), lease_of(&leased, key)?))
            .transpose()
    }

    fn range_blocking(db: &Database, prefix: &str) -> Result<Vec<KeyValue>> {
        let txn = db.begin_read().map_err(|e| db_err("begin read", e))?;
        let table = txn.open_table(KV).map_err(|e| db_err("open kv", e))?;
        let leased = txn
            .open_table(LEASED)
            .map_err(|e| db_err("open leased", e))?;
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(|e| db_err("range", e))? {
            let (k, v) = item.map_err(|e| db_err("range", e))?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push(decode_entry(key, v.value(), lease_of(&leased, key)?)?);
        }
        Ok(out)
    }

    /// `now` comes from the async caller: the lease clock is tokio's.
    fn txn_blocking(
        db: &Database,
        leases: &LeaseTable,
        now: Instant,
        compares: &[Compare],
        ops: &[Op],
    ) -> Result<(TxnOutcome, Vec<WatchEvent>)> {
        let txn = db.begin_write().map_err(|e| db_err("begin write", e))?;
        let mut events = Vec::new();
        let outcome = {
            let mut kv = txn.open_table(KV).map_err(|e| db_err("open kv", e))?;
            let mut meta = txn.open_table(META).map_err(|e| db_err("open meta", e))?;
            let mut leased = txn
                .open_table(LEASED)
                .map_err(|e| db_err("open leased", e))?;
            let current = meta
                .get(REVISION)
                .map_err(|e| db_err("revision", e))?
                .map_or(0, |v| v.value());
            for Compare::ModRevision(key, expected) in compares {
                let actual = match kv.get(key.as_str()).map_err(|e| db_err("get", e))? {
                    Some(v) => decode_entry(key, v.value(), None)?.mod_revision,
                    None => 0,
                };
                if actual != *expected {
                    return Ok((
                        TxnOutcome {
                            succeeded: false,
                            revision: current,
                        },
                        vec![],
                    ));
                }
            }
            if ops.is_empty() {
                return Ok((
                    TxnOutcome {
                        succeeded: true,
                        revision: current,
                    },
                    vec![],
                ));
            }
            check_distinct_keys(ops)?;
            // Checked inside the write transaction: a lease the sweeper has
            // dropped cannot gain a key it would miss.
            for op in ops {
                if let Op::PutWithLease(_, _, lease) = op
                    && !leases.is_alive(*lease, now)
                {
                    return Err(Error::LeaseExpired { lease: lease.get() });
                }
            }
            let rev = current + 1;
            for op in ops {
                match op {
                    Op::Put(key, value) | Op::PutWithLease(key, value, _) => {
                        let lease = match op {
                            Op::PutWithLease(_, _, lease) => Some(*lease),
                            _ => None,
                        };
                        let create = match kv.get(key.as_str()).map_err(|e| db_err("get", e))? {
                            Some(v) => decode_entry(key, v.value(), None)?.create_revision,
                            None => rev,
                        };
                        kv.insert(key.as_str(), encode_entry(create, rev, value).as_slice())
                            .map_err(|e| db_err("put", e))?;
                        // Like etcd, a put replaces the key's lease (or detaches it).
                        match lease {
                            Some(lease) => leased.insert(key.as_str(), lease.get()).map(drop),
                            None => leased.remove(key.as_str()).map(drop),
                        }
                        .map_err(|e| db_err("put lease", e))?;
                        events.push(WatchEvent::Put(KeyValue {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision: create,
                            mod_revision: rev,
                            lease,
                        }));
                    }
                    Op::Delete(key) => {
                        if remove_key(&mut kv, &mut leased, key)? {
                            events.push(WatchEvent::Delete {
                                key: key.clone(),
                                mod_revision: rev,
                            });
                        }
                    }
                    Op::DeletePrefix(prefix) => {
                        let doomed: Vec<String> = kv
                            .range(prefix.as_str()..)
                            .map_err(|e| db_err("range", e))?
                            .map(|item| item.map(|(k, _)| k.value().to_owned()))
                            .take_while(|k| {
                                k.as_ref().map_or(true, |k| k.starts_with(prefix.as_str()))
                            })
                            .collect::<Result<_, _>>()
                            .map_err(|e| db_err("range", e))?;
                        for key in doomed {
                            remove_key(&mut kv, &mut leased, &key)?;
                            events.push(WatchEvent::Delete {
                                key,
                                mod_revision: rev,
                            });
                        }
                    }
                }
            }
            if events.is_empty() {
                // Nothing changed (deletes of absent keys): like etcd, the
                // revision stays; dropping `txn` aborts it.
                return Ok((
                    TxnOutcome {
                        succeeded: true,
                        revision: current,
                    },
                    vec![],
                ));
            }
            meta.insert(REVISION, rev)
                .map_err(|e| db_err("revision", e))?;
            TxnOutcome {
                succeeded: true,
                revision: rev,
            }
        };
        txn.commit().map_err(|e| db_err("commit", e))?;
        Ok((outcome, events))
    }

    /// Forget leases past their deadline and delete every key attached to a
    /// lease that is not live (expired, revoked, or from a previous process),
    /// in one transaction at one revision. Returns the delete events.
    fn sweep_blocking(db: &Database, leases: &LeaseTable, now: Instant) -> Result<Vec<WatchEvent>> {
        leases.remove_expired(now);
        let txn = db.begin_write().map_err(|e| db_err("begin write", e))?;
        let mut events = Vec::new();
        {
            let mut kv = txn.open_table(KV).map_err(|e| db_err("open kv", e))?;
            let mut meta = txn.open_table(META).map_err(|e| db_err("open meta", e))?;
            let mut leased = txn
                .open_table(LEASED)
                .map_err(|e| db_err("open leased", e))?;
            let doomed: Vec<String> = leased
                .iter()
                .map_err(|e| db_err("scan leased", e))?
                .filter_map(|item| match item {
                    Ok((k, lease)) => (!leases.is_alive(LeaseId(lease.value()), now))
                        .then(|| Ok(k.value().to_owned())),
                    Err(e) => Some(Err(db_err("scan leased", e))),
                })
                .collect::<Result<_>>()?;
            if doomed.is_empty() {
                // Dropping `txn` aborts it: nothing changed.
                return Ok(events);
            }
            let rev = meta
                .get(REVISION)
                .map_err(|e| db_err("revision", e))?
                .map_or(0, |v| v.value())
                + 1;
            for key in doomed {
                remove_key(&mut kv, &mut leased, &key)?;
                events.push(WatchEvent::Delete {
                    key,
                    mod_revision: rev,
                });
            }
            meta.insert(REVISION, rev)
                .map_err(|e| db_err("revision", e))?;
        }
        txn.commit().map_err(|e| db_err("commit", e))?;
        Ok(events)
    }

    /// Run [`Self::sweep_blocking`] off the async workers and tell watchers.
    async fn sweep(
        db: Arc<DbSlot>,
        leases: Arc<LeaseTable>,
        events: &broadcast::Sender<WatchEvent>,
    ) -> Result<()> {
        let now = Instant::now();
        let deleted = tokio::task::spawn_blocking(move || {
            db.with(|db| Self::sweep_blocking(db, &leases, now))
        })
        .await
        .map_err(|e| meta_err("worker", e))??;
        for event in deleted {
            // No receivers is fine: nobody is watching.
            let _ = events.send(event);
        }
        Ok(())
    }

    /// Start the lease sweeper unless it runs already.
    fn start_sweeper(&self) {
        let mut sweeper = self
            .sweeper
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sweeper.is_none() {
            let task = tokio::spawn(sweep_loop(
                Arc::downgrade(&self.db),
                self.leases.clone(),
                self.events.clone(),
            ));
            *sweeper = Some(task.abort_handle());
        }
    }

    /// Run blocking redb work off the async workers: commits fsync.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.with(f))
            .await
            .map_err(|e| meta_err("worker", e))?
    }
}

#[async_trait]
impl MetadataStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.blocking(move |db| Self::get_blocking(db, &key)).await
    }

    async fn range(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let prefix = prefix.to_owned();
        self.blocking(move |db| Self::range_blocking(db, &prefix))
            .await
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome> {
        let leases = self.leases.clone();
        let now = Instant::now();
        let (outcome, events) = self
            .blocking(move |db| Self::txn_blocking(db, &leases, now, &compares, &ops))
            .await?;
        for event in events {
            // No receivers is fine: nobody is watching.
            let _ = self.events.send(event);
        }
        Ok(outcome)
    }

    fn watch(&self, prefix: &str) -> Watch {
        // One store-wide channel, filtered per watcher: single-node watchers are few.
        Watch::new(prefix, self.events.subscribe())
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        self.start_sweeper();
        Ok(self.leases.grant(ttl, Instant::now()))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        self.leases
            .keep_alive(lease, Instant::now())
            .ok_or(Error::LeaseExpired { lease: lease.get() })
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.leases.revoke(lease);
        Self::sweep(self.db.clone(), self.leases.clone(), &self.events).await
    }
}

/// Remove `key` and its lease attachment; true if the key existed.
fn remove_key(
    kv: &mut Table<'_, &'static str, &'static [u8]>,
    leased: &mut Table<'_, &'static str, i64>,
    key: &str,
) -> Result<bool> {
    leased.remove(key).map_err(|e| db_err("delete lease", e))?;
    Ok(kv.remove(key).map_err(|e| db_err("delete", e))?.is_some())
}

/// The lease sweeper: sleeps until the earliest lease deadline (or a new
/// lease), then deletes the keys of every expired lease. It holds the
/// database weakly: an aborted task is dropped only when next polled, and a
/// reopen in the same process must not find the file still open.
async fn sweep_loop(
    db: std::sync::Weak<DbSlot>,
    leases: Arc<LeaseTable>,
    events: broadcast::Sender<WatchEvent>,
) {
    loop {
        match leases.next_deadline() {
            None => leases.changed.notified().await,
            Some(deadline) if deadline > Instant::now() => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = leases.changed.notified() => continue,
                }
            }
            Some(_) => {}
        }
        if leases.next_deadline().is_none_or(|d| d > Instant::now()) {
            continue;
        }
        // A failed sweep has already forgotten the expired leases; the retry
        // still finds their keys, as they are attached to no live lease.
        let Some(db) = db.upgrade() else { return };
        while let Err(e) = EmbeddedStore::sweep(db.clone(), leases.clone(), &events).await {
            tracing::warn!(error = %e, "deleting keys of expired leases failed; retrying");
            tokio::time::sleep(SWEEP_RETRY).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revisions_cas_and_prefix_ops() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut watch = store.watch("/a/");
        let r1 = store.put("/a/x", b"1".to_vec()).await.unwrap();
        assert_eq!(r1, 1);
        let kv = store.get("/a/x").await.unwrap().unwrap();
        assert_eq!((kv.create_revision, kv.mod_revision), (1, 1));

        // CAS on a stale revision fails and writes nothing.
        let stale = store
            .txn(
                vec![Compare::ModRevision("/a/x".into(), 0)],
                vec![Op::Put("/a/x".into(), b"2".to_vec())],
            )
            .await
            .unwrap();
        assert!(!stale.succeeded);
        assert_eq!(store.get("/a/x").await.unwrap().unwrap().value, b"1");

        let ok = store
            .txn(
                vec![Compare::ModRevision("/a/x".into(), 1)],
                vec![
                    Op::Put("/a/x".into(), b"2".to_vec()),
                    Op::Put("/a/y".into(), b"3".to_vec()),
                ],
            )
            .await
            .unwrap();
        assert!(ok.succeeded);
        let kv = store.get("/a/x").await.unwrap().unwrap();
        assert_eq!(
            (kv.create_revision, kv.mod_revision, kv.value.as_slice()),
            (1, 2, &b"2"[..])
        );
        store.put("/ab", b"outside".to_vec()).await.unwrap();
        let keys: Vec<_> = store
            .range("/a/")
            .await
            .unwrap()
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        assert_eq!(keys, ["/a/x", "/a/y"]);

        store
            .txn(vec![], vec![Op::DeletePrefix("/a/".into())])
            .await
            .unwrap();
        assert!(store.range("/a/").await.unwrap().is_empty());
        assert!(store.get("/ab").await.unwrap().is_some());

        assert_eq!(watch.next().await.unwrap().key(), "/a/x");
    }

    /// Expiry runs on tokio's clock: a kept-alive lease keeps its key past
    /// the TTL; once not kept alive, the key is deleted at the deadline and
    /// watchers see it.
    #[tokio::test(start_paused = true)]
    async fn lease_expiry_on_paused_clock() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut watch = store.watch("/b/");
        let lease = store.grant_lease(Duration::from_millis(300)).await.unwrap();
        let put = store
            .txn(
                vec![],
                vec![Op::PutWithLease("/b/1".into(), b"x".to_vec(), lease)],
            )
            .await
            .unwrap();
        assert_eq!(store.get("/b/1").await.unwrap().unwrap().lease, Some(lease));
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(800)).await;
            let ttl = store.keep_alive(lease).await.unwrap();
            assert_eq!(ttl, Duration::from_secs(1), "rounded up to whole seconds");
        }
        assert!(store.get("/b/1").await.unwrap().is_some());
        let renewed = Instant::now();

        assert!(matches!(watch.next().await.unwrap(), WatchEvent::Put(_)));
        assert_eq!(
            watch.next().await.unwrap(),
            WatchEvent::Delete {
                key: "/b/1".into(),
                mod_revision: put.revision + 1
            }
        );
        assert_eq!(renewed.elapsed(), Duration::from_secs(1));
        assert_eq!(store.get("/b/1").await.unwrap(), None);
        assert!(matches!(
            store.keep_alive(lease).await,
            Err(Error::LeaseExpired { lease: l }) if l == lease.get()
        ));
    }

    /// A lease dies with its process: reopening deletes every leased key (at
    /// one new revision) and keeps the others.
    #[tokio::test]
    async fn reopen_deletes_leased_keys() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
            store.put("/plain", b"p".to_vec()).await.unwrap();
            store
                .txn(
                    vec![],
                    vec![
                        Op::PutWithLease("/b/1".into(), b"1".to_vec(), lease),
                        Op::PutWithLease("/b/2".into(), b"2".to_vec(), lease),
                    ],
                )
                .await
                .unwrap()
                .revision
        };
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert!(store.range("/b/").await.unwrap().is_empty());
        let plain = store.get("/plain").await.unwrap().unwrap();
        assert_eq!(plain.lease, None);
        assert_eq!(
            store.txn(vec![], vec![]).await.unwrap().revision,
            before + 1
        );
        drop(store);
        // Nothing left to delete: the revision stays.
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(
            store.txn(vec![], vec![]).await.unwrap().revision,
            before + 1
        );
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            store.put("/k", b"v".to_vec()).await.unwrap();
            store.put("/k", b"w".to_vec()).await.unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let kv = store.get("/k").await.unwrap().unwrap();
        assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"w"[..], 2));
        assert_eq!(store.put("/k2", vec![]).await.unwrap(), 3);
    }
}
