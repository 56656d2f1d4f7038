//! Producer id allocation for the idempotent producer.
//!
//! Brokers take blocks of [`BLOCK_SIZE`] ids from `producer-ids` with a
//! compare-and-swap (Kafka's ZooKeeper-era `ProducerIdManager`), then hand
//! ids out of their block locally: one metadata round trip per thousand
//! producers, and no id is ever given to two producers, whichever broker
//! they asked.

use std::sync::Arc;

use super::keys::Keys;
use super::records::{self, ProducerIdBlock, VERSION};
use super::{Compare, MetadataStore, Op};
use crate::{Error, Result};

/// Ids taken per round trip to the store.
pub const BLOCK_SIZE: i64 = 1000;

/// How often a block allocation may lose a race before giving up.
const MAX_ATTEMPTS: usize = 20;

/// Hands out producer ids from blocks reserved in the metadata store.
pub struct ProducerIdManager {
    store: Arc<dyn MetadataStore>,
    key: String,
    /// `[next, end)` of the current block.
    block: tokio::sync::Mutex<(i64, i64)>,
}

impl std::fmt::Debug for ProducerIdManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerIdManager")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ProducerIdManager {
    pub fn new(store: Arc<dyn MetadataStore>, keys: &Keys) -> Self {
        ProducerIdManager {
            store,
            key: keys.producer_ids(),
            block: tokio::sync::Mutex::new((0, 0)),
        }
    }

    /// A producer id nobody else has.
    pub async fn next_id(&self) -> Result<i64> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            *block = self.reserve_block().await?;
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    async fn reserve_block(&self) -> Result<(i64, i64)> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self.store.get(&self.key).await?;
            let (start, revision) = match &current {
                Some(kv) => (
                    records::decode::<ProducerIdBlock>(&kv.key, &kv.value)?.next,
                    kv.mod_revision,
                ),
                None => (0, 0),
            };
            let end = start
                .checked_add(BLOCK_SIZE)
                .ok_or_else(|| Error::Metadata("producer ids exhausted".into()))?;
            let next = ProducerIdBlock {
                version: VERSION,
                next: end,
            };
            let outcome = self
                .store
                .txn(
                    vec![Compare::ModRevision(self.key.clone(), revision)],
                    vec![Op::Put(self.key.clone(), records::encode(&next))],
                )
                .await?;
            if outcome.succeeded {
                tracing::debug!(start, end, "reserved producer id block");
                return Ok((start, end));
            }
        }
        Err(Error::Metadata(
            "could not reserve a producer id block: too much contention; retry".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::embedded::EmbeddedStore;

    #[tokio::test]
    async fn managers_sharing_a_store_never_repeat_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let keys = Keys::new("t");
        let a = Arc::new(ProducerIdManager::new(store.clone(), &keys));
        let b = Arc::new(ProducerIdManager::new(store.clone(), &keys));
        let mut tasks = Vec::new();
        for m in [a, b] {
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..1500 {
                    ids.push(m.next_id().await.unwrap());
                }
                ids
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "an id was handed out twice");
        // A manager started later (a restarted broker) continues after them.
        let c = ProducerIdManager::new(store, &keys);
        assert_eq!(c.next_id().await.unwrap(), 4 * BLOCK_SIZE);
    }
}
