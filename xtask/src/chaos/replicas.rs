//! What each replica holds, read from its data directory once its broker
//! has stopped: the record batches of every segment, in offset order, as
//! `(base_offset, last_offset, crc)`, and who wrote each (producer id,
//! epoch, base sequence). The checker compares the replicas of a partition
//! batch by batch up to its high watermark (the CRC covers every record, so
//! equal triples mean equal batches) and names the writers of duplicates.

use std::path::Path;

use anyhow::{Context, Result};
use runnel_proto::batch::{BATCH_HEADER_LEN, BatchHeader};

/// `(base_offset, last_offset, crc)` per batch, and `(producer_id,
/// producer_epoch, base_sequence)` per batch in the same order.
pub type Batches = (Vec<(i64, i64, u32)>, Vec<(i64, i16, i32)>);

/// The batches of partition `partition` of `topic` under `data_dir`; empty
/// when the broker holds no replica of it. Reading stops at the first bytes
/// that are not a whole batch (a torn tail the broker would cut on start).
pub fn batches(data_dir: &Path, topic: &str, partition: u32) -> Result<Batches> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    if !dir.exists() {
        return Ok(Batches::default());
    }
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    // Zero-padded base offsets: names sort as offsets.
    segments.sort();
    let mut out = Batches::default();
    for segment in segments {
        let bytes =
            std::fs::read(&segment).with_context(|| format!("reading {}", segment.display()))?;
        let mut at = 0;
        while at + BATCH_HEADER_LEN <= bytes.len() {
            let Ok(header) = BatchHeader::parse(&bytes[at..]) else {
                break;
            };
            if at + header.total_size() > bytes.len() {
                break;
            }
            out.0
                .push((header.base_offset, header.last_offset(), header.crc));
            out.1.push((
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
            ));
            at += header.total_size();
        }
    }
    Ok(out)
}
