//! What each replica holds, read from its data directory once its broker
//! has stopped: the record batches of every segment, in offset order, as
//! `(base_offset, last_offset, crc)`. The checker compares the replicas of a
//! partition batch by batch up to its high watermark; the CRC covers every
//! record, so equal triples mean equal batches.

use std::path::Path;

use anyhow::{Context, Result};
use runnel_proto::batch::{BATCH_HEADER_LEN, BatchHeader};

/// The batches of partition `partition` of `topic` under `data_dir`; empty
/// when the broker holds no replica of it. Reading stops at the first bytes
/// that are not a whole batch (a torn tail the broker would cut on start).
pub fn batches(data_dir: &Path, topic: &str, partition: u32) -> Result<Vec<(i64, i64, u32)>> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    // Zero-padded base offsets: names sort as offsets.
    segments.sort();
    let mut out = Vec::new();
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
            out.push((header.base_offset, header.last_offset(), header.crc));
            at += header.total_size();
        }
    }
    Ok(out)
}
