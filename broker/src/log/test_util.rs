//! Helpers shared by the log unit tests.

use bytes::Bytes;
use runnel_proto::batch::{BatchBuilder, batches, records, set_base_offset};

/// A batch of `count` records whose values are `value_len` bytes long and
/// whose timestamps are `ts`, `ts + 1`, ...; base offset 0 as a producer
/// sends it. Values encode the record's position so reads can be checked.
pub(crate) fn batch_at(ts: i64, count: usize, value_len: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for i in 0..count {
        let value = value_for(ts, i, value_len);
        b.push(
            ts + i as i64,
            Some(format!("k{i}").as_bytes()),
            Some(&value),
            &[],
        );
    }
    b.build().expect("at least one record").to_vec()
}

/// A batch like [`batch_at`] (timestamp 1000) stamped with `base_offset`,
/// as stored in a log.
pub(crate) fn batch_of(base_offset: i64, count: usize, value_len: usize) -> Vec<u8> {
    let mut b = batch_at(1000, count, value_len);
    set_base_offset(&mut b, base_offset);
    b
}

/// The value [`batch_at`] gives record `i` of the batch with timestamp `ts`.
pub(crate) fn value_for(ts: i64, i: usize, len: usize) -> Vec<u8> {
    let seed = format!("{ts}/{i};");
    seed.bytes().cycle().take(len).collect()
}

/// Every record of a read result as `(offset, timestamp, value)`, checking
/// that the bytes are whole, CRC-valid batches.
pub(crate) fn decode(bytes: &Bytes) -> Vec<(i64, i64, Vec<u8>)> {
    let mut out = Vec::new();
    for item in batches(bytes) {
        let (_, raw) = item.expect("whole batches");
        runnel_proto::batch::verify_crc(raw).expect("CRC holds");
        let raw = bytes.slice_ref(raw);
        for rec in records(&raw).expect("decodable") {
            let rec = rec.expect("record");
            out.push((
                rec.offset,
                rec.timestamp,
                rec.value.map(|v| v.to_vec()).unwrap_or_default(),
            ));
        }
    }
    out
}

/// Offsets of the batches in a read result, as `(base, last)`.
pub(crate) fn batch_offsets(bytes: &[u8]) -> Vec<(i64, i64)> {
    batches(bytes)
        .map(|b| b.expect("whole batches").0)
        .map(|h| (h.base_offset, h.last_offset()))
        .collect()
}
