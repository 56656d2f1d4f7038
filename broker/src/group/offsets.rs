//! Committed offsets in the metadata store: `groups/<g>/offsets/<t>/<p>`.
//!
//! A commit of many partitions is written in transactions of up to
//! [`OPS_PER_TXN`] puts (etcd's default `--max-txn-ops` is 128), run
//! concurrently, so a thousand partitions cost a handful of round trips,
//! not a thousand. Each transaction also checks the coordinator still holds
//! the group (its `coordinator` key's revision): a deposed coordinator's
//! commit writes nothing.

use std::collections::BTreeMap;

use runnel_proto::v1::{CommittedOffset, OffsetCommitTopic};

use super::{GroupCoordinator, GroupEntry};
use crate::meta::records::{self, CommittedOffsetRecord, VERSION};
use crate::meta::{Compare, Op};
use crate::{Error, Result};

/// Puts per transaction, under etcd's default limit of 128 operations.
pub const OPS_PER_TXN: usize = 100;

/// Longest metadata string stored with an offset (Kafka's
/// `offset.metadata.max.bytes`): a commit is not a blob store, and etcd
/// refuses requests over 1.5 MiB.
pub const MAX_METADATA_BYTES: usize = 4096;

/// Check a commit's topics and partitions exist and offsets are sane;
/// returns `(topic, partition, offset, metadata)` rows.
pub fn validate(
    coord: &GroupCoordinator,
    topics: &[OffsetCommitTopic],
) -> Result<Vec<(String, u32, i64, String)>> {
    let mut rows = Vec::new();
    for t in topics {
        crate::topic::validate_topic_name(&t.topic)?;
        let count = coord
            .partition_count(&t.topic)
            .ok_or_else(|| Error::UnknownTopic(t.topic.clone()))?;
        for p in &t.partitions {
            if p.partition >= count {
                return Err(Error::UnknownPartition {
                    topic: t.topic.clone(),
                    partition: p.partition,
                    partitions: count,
                });
            }
            if p.offset < 0 {
                return Err(Error::InvalidRequest(format!(
                    "offset {} for {}-{} is negative",
                    p.offset, t.topic, p.partition
                )));
            }
            if p.metadata.len() > MAX_METADATA_BYTES {
                return Err(Error::InvalidRequest(format!(
                    "the metadata committed with {}-{} is {} bytes; at most \
                     {MAX_METADATA_BYTES} are kept (offset.metadata.max.bytes)",
                    t.topic,
                    p.partition,
                    p.metadata.len()
                )));
            }
            rows.push((t.topic.clone(), p.partition, p.offset, p.metadata.clone()));
        }
    }
    if rows.is_empty() {
        return Err(Error::InvalidRequest("no offsets given".into()));
    }
    Ok(rows)
}

/// Write `rows` for `group` as coordinator `entry`, tagged with `generation`.
pub async fn write(
    coord: &GroupCoordinator,
    group: &str,
    entry: &GroupEntry,
    generation: i32,
    rows: Vec<(String, u32, i64, String)>,
) -> Result<()> {
    let keys = coord.keys();
    let fence = Compare::ModRevision(keys.group_coordinator(group), entry.claim_revision);
    let now = crate::log::wall_clock_ms();
    let txns = rows.chunks(OPS_PER_TXN).map(|chunk| {
        let ops: Vec<Op> = chunk
            .iter()
            .map(|(topic, partition, offset, metadata)| {
                let record = CommittedOffsetRecord {
                    version: VERSION,
                    offset: *offset,
                    metadata: metadata.clone(),
                    generation,
                    commit_timestamp_ms: now,
                };
                Op::Put(
                    keys.group_offset(group, topic, *partition),
                    records::encode(&record),
                )
            })
            .collect();
        coord.store().txn(vec![fence.clone()], ops)
    });
    for outcome in futures::future::join_all(txns).await {
        if !outcome.map_err(|e| e.for_group(group))?.succeeded {
            coord.forget(group);
            return Err(Error::NotCoordinator {
                group: group.to_owned(),
                reason: "its coordinator claim was lost".into(),
            });
        }
    }
    Ok(())
}

/// Every committed offset of `group`, by (topic, partition).
pub async fn read_all(
    coord: &GroupCoordinator,
    group: &str,
) -> Result<BTreeMap<(String, u32), CommittedOffsetRecord>> {
    let keys = coord.keys();
    let mut out = BTreeMap::new();
    let offsets = coord
        .store()
        .range(&keys.group_offsets(group))
        .await
        .map_err(|e| e.for_group(group))?;
    for kv in offsets {
        if let Some(tp) = keys.offset_of(group, &kv.key) {
            out.insert(tp, records::decode(&kv.key, &kv.value)?);
        }
    }
    Ok(out)
}

/// The wire form of committed offsets.
pub fn to_wire(offsets: &BTreeMap<(String, u32), CommittedOffsetRecord>) -> Vec<CommittedOffset> {
    offsets
        .iter()
        .map(|((topic, partition), r)| CommittedOffset {
            topic: topic.clone(),
            partition: *partition,
            offset: r.offset,
            metadata: r.metadata.clone(),
        })
        .collect()
}
