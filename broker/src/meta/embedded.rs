//! [`EmbeddedStore`]: the single-node [`MetadataStore`], on redb.
//!
//! redb gives us crash-safe, durable transactions in one file
//! (`<data-dir>/metadata.redb`), so topics and configs survive restarts and
//! `kill -9` without a hand-rolled format. It serves exactly one process (redb
//! locks the file); it is not a second etcd.
//!
//! Revisions follow etcd: one store-wide counter bumped by every successful
//! write transaction; each key remembers its create and mod revision.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::broadcast;

use super::{Compare, KeyValue, MetadataStore, Op, TxnOutcome, Watch, WatchEvent};
use crate::{Error, Result};

/// The store's file inside the data directory.
pub const FILE_NAME: &str = "metadata.redb";

/// key -> create_revision (8 bytes LE) ++ mod_revision (8 bytes LE) ++ value.
const KV: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kv");
/// "revision" -> the store revision.
const META: TableDefinition<'_, &str, i64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

/// Watch fan-out capacity; a watcher further behind re-reads with `range`.
const WATCH_BUFFER: usize = 1024;

/// redb-backed metadata for a single broker.
pub struct EmbeddedStore {
    db: Arc<Database>,
    events: broadcast::Sender<WatchEvent>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

fn meta_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Metadata(format!("embedded store: {what}: {e}"))
}

fn encode_entry(create: i64, modr: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(&modr.to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn decode_entry(key: &str, raw: &[u8]) -> Result<KeyValue> {
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
    })
}

/// etcd refuses a transaction that writes one key twice (two puts, a put
/// and a delete, or a put inside a deleted prefix); so do we, so the two
/// stores accept the same transactions.
fn check_distinct_keys(ops: &[Op]) -> Result<()> {
    let mut keys = std::collections::HashSet::new();
    let mut prefixes = Vec::new();
    for op in ops {
        match op {
            Op::Put(key, _) | Op::Delete(key) => {
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
        let txn = db.begin_write().map_err(|e| meta_err("begin", e))?;
        txn.open_table(KV).map_err(|e| meta_err("open kv", e))?;
        txn.open_table(META).map_err(|e| meta_err("open meta", e))?;
        txn.commit().map_err(|e| meta_err("commit", e))?;
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        Ok(EmbeddedStore {
            db: Arc::new(db),
            events,
        })
    }

    fn get_blocking(db: &Database, key: &str) -> Result<Option<KeyValue>> {
        let txn = db.begin_read().map_err(|e| meta_err("begin read", e))?;
        let table = txn.open_table(KV).map_err(|e| meta_err("open kv", e))?;
        let found = table.get(key).map_err(|e| meta_err("get", e))?;
        found.map(|v| decode_entry(key, v.value())).transpose()
    }

    fn range_blocking(db: &Database, prefix: &str) -> Result<Vec<KeyValue>> {
        let txn = db.begin_read().map_err(|e| meta_err("begin read", e))?;
        let table = txn.open_table(KV).map_err(|e| meta_err("open kv", e))?;
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(|e| meta_err("range", e))? {
            let (k, v) = item.map_err(|e| meta_err("range", e))?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push(decode_entry(key, v.value())?);
        }
        Ok(out)
    }

    fn txn_blocking(
        db: &Database,
        compares: &[Compare],
        ops: &[Op],
    ) -> Result<(TxnOutcome, Vec<WatchEvent>)> {
        let txn = db.begin_write().map_err(|e| meta_err("begin write", e))?;
        let mut events = Vec::new();
        let outcome = {
            let mut kv = txn.open_table(KV).map_err(|e| meta_err("open kv", e))?;
            let mut meta = txn.open_table(META).map_err(|e| meta_err("open meta", e))?;
            let current = meta
                .get(REVISION)
                .map_err(|e| meta_err("revision", e))?
                .map_or(0, |v| v.value());
            for Compare::ModRevision(key, expected) in compares {
                let actual = match kv.get(key.as_str()).map_err(|e| meta_err("get", e))? {
                    Some(v) => decode_entry(key, v.value())?.mod_revision,
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
            let rev = current + 1;
            for op in ops {
                match op {
                    Op::Put(key, value) => {
                        let create = match kv.get(key.as_str()).map_err(|e| meta_err("get", e))? {
                            Some(v) => decode_entry(key, v.value())?.create_revision,
                            None => rev,
                        };
                        kv.insert(key.as_str(), encode_entry(create, rev, value).as_slice())
                            .map_err(|e| meta_err("put", e))?;
                        events.push(WatchEvent::Put(KeyValue {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision: create,
                            mod_revision: rev,
                        }));
                    }
                    Op::Delete(key) => {
                        if kv
                            .remove(key.as_str())
                            .map_err(|e| meta_err("delete", e))?
                            .is_some()
                        {
                            events.push(WatchEvent::Delete {
                                key: key.clone(),
                                mod_revision: rev,
                            });
                        }
                    }
                    Op::DeletePrefix(prefix) => {
                        let doomed: Vec<String> = kv
                            .range(prefix.as_str()..)
                            .map_err(|e| meta_err("range", e))?
                            .map(|item| item.map(|(k, _)| k.value().to_owned()))
                            .take_while(|k| {
                                k.as_ref().map_or(true, |k| k.starts_with(prefix.as_str()))
                            })
                            .collect::<Result<_, _>>()
                            .map_err(|e| meta_err("range", e))?;
                        for key in doomed {
                            kv.remove(key.as_str()).map_err(|e| meta_err("delete", e))?;
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
                .map_err(|e| meta_err("revision", e))?;
            TxnOutcome {
                succeeded: true,
                revision: rev,
            }
        };
        txn.commit().map_err(|e| meta_err("commit", e))?;
        Ok((outcome, events))
    }

    /// Run blocking redb work off the async workers: commits fsync.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
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
        let (outcome, events) = self
            .blocking(move |db| Self::txn_blocking(db, &compares, &ops))
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
