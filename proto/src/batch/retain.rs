//! Rewriting a batch with only some of its records: the log cleaner's
//! step (`cleanup.policy=compact`).
//!
//! What a rewritten batch keeps, as Kafka's `MemoryRecords.filterTo`
//! does for v2 batches:
//! - its base offset, and every kept record's offset: kept records are
//!   copied byte for byte, so their offset and timestamp deltas (relative
//!   to the unchanged base offset and base timestamp), keys, values and
//!   headers are exactly as written;
//! - its `lastOffsetDelta`, even when the last record goes: the producer's
//!   last sequence is `baseSequence + lastOffsetDelta`, and the idempotent
//!   producer state rebuilt from the log must not move back;
//! - its attributes (codec, timestamp type, transactional and control
//!   flags), producer id, epoch, base sequence, partition leader epoch and
//!   max timestamp.
//!
//! Only `recordsCount`, `batchLength`, the CRC and the (recompressed, with
//! the same codec) records section change. A batch that keeps nothing is
//! [`Retained::Empty`]; the caller decides whether to drop it or keep its
//! header alone ([`Retained::header_only`]) for the producer's sake.

use bytes::{BufMut, Bytes, BytesMut};

use super::compression::compress;
use super::header::{BatchHeader, CRC_OFFSET};
use super::records::{Record, decode_record, open};
use super::validate::compute_crc;
use super::{BATCH_HEADER_LEN, LOG_OVERHEAD};
use crate::error::{Error, Result};

/// What [`retain`] made of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retained {
    /// Every record kept: the original bytes serve as they are.
    Unchanged,
    /// Some records kept: the rewritten batch.
    Rewritten(Bytes),
    /// No record kept. The original header, for [`Retained::header_only`].
    Empty(BatchHeader),
}

impl Retained {
    /// A batch of `header` with no records (`recordsCount` 0, an empty
    /// records section, a fresh CRC): what Kafka keeps of a cleaned-out
    /// batch that is the last one of its producer.
    pub fn header_only(header: &BatchHeader) -> Bytes {
        let mut kept = *header;
        kept.records_count = 0;
        kept.batch_length = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
        seal(kept, BytesMut::from(&kept.to_bytes()[..]))
    }
}

/// Keep the records of `batch` for which `keep` says yes (see the module
/// docs for what the rewritten batch keeps).
///
/// # Errors
///
/// The framing errors of [`records`](super::records), a compressed section
/// that does not decompress, or a record that does not decode
/// ([`Error::MalformedRecord`]); `batch` is not rewritten then.
pub fn retain(batch: &Bytes, mut keep: impl FnMut(&Record) -> bool) -> Result<Retained> {
    let (header, body) = open(batch)?;
    let codec = header.compression()?;
    // Kept records as byte ranges of `body`, each with its length prefix.
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let (mut pos, mut count) = (0, 0);
    for index in 0..header.records_count {
        let (record, next) = decode_record(&header, &body, pos)
            .map_err(|reason| Error::MalformedRecord { index, reason })?;
        if keep(&record) {
            count += 1;
            match kept.last_mut() {
                // Runs of kept records are copied in one piece.
                Some((_, end)) if *end == pos => *end = next,
                _ => kept.push((pos, next)),
            }
        }
        pos = next;
    }
    if pos != body.len() {
        return Err(Error::MalformedRecord {
            index: header.records_count,
            reason: "bytes left after the last record",
        });
    }
    if count == header.records_count {
        return Ok(Retained::Unchanged);
    }
    if count == 0 {
        return Ok(Retained::Empty(header));
    }
    let plain_len: usize = kept.iter().map(|(a, b)| b - a).sum();
    let mut plain = BytesMut::with_capacity(plain_len);
    for (a, b) in &kept {
        plain.put_slice(&body[*a..*b]);
    }
    let mut out = BytesMut::with_capacity(BATCH_HEADER_LEN + plain_len);
    out.put_bytes(0, BATCH_HEADER_LEN);
    match codec {
        super::Compression::None => out.put_slice(&plain),
        codec => compress(codec, &plain, &mut out)?,
    }
    let mut rewritten = header;
    rewritten.records_count = count;
    rewritten.batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
        .expect("a rewritten batch is no longer than the original");
    out[..BATCH_HEADER_LEN].copy_from_slice(&rewritten.to_bytes());
    Ok(Retained::Rewritten(seal(rewritten, out)))
}

/// Fill in the CRC-32C of a batch whose header bytes are written.
fn seal(header: BatchHeader, mut buf: BytesMut) -> Bytes {
    debug_assert_eq!(buf.len(), header.total_size());
    let crc = compute_crc(&buf);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Compression, records, set_base_offset, verify_crc};

    /// Records `k0=v0 .. k{n-1}=v{n-1}` at offsets `base..base+n`, written
    /// by producer 7 epoch 2 from sequence 100, with `codec`.
    fn batch(base: i64, n: usize, codec: Compression) -> Bytes {
        let mut b = BatchBuilder::new().compression(codec).producer(7, 2, 100);
        for i in 0..n {
            let (k, v) = (format!("k{i}"), format!("v{i}"));
            b.push(
                1_000 + i as i64,
                Some(k.as_bytes()),
                Some(v.as_bytes()),
                &[("h", Some(b"x"))],
            );
        }
        let mut bytes = BytesMut::from(&b.build().unwrap()[..]);
        set_base_offset(&mut bytes, base);
        let crc = compute_crc(&bytes);
        bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        bytes.freeze()
    }

    fn read(batch: &Bytes) -> Vec<Record> {
        records(batch).unwrap().collect::<Result<_>>().unwrap()
    }

    #[test]
    fn kept_records_keep_their_offsets_bytes_and_the_batch_its_identity() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let original = batch(500, 6, codec);
            let before = read(&original);
            let keep = |r: &Record| r.offset % 2 == 0; // 500, 502, 504
            let Retained::Rewritten(cleaned) = retain(&original, keep).unwrap() else {
                panic!("{codec:?}: expected a rewritten batch");
            };
            verify_crc(&cleaned).unwrap();
            let (h, o) = (
                BatchHeader::parse(&cleaned).unwrap(),
                BatchHeader::parse(&original).unwrap(),
            );
            assert_eq!(h.records_count, 3);
            assert!(cleaned.len() < original.len() || codec != Compression::None);
            assert_eq!(h.compression().unwrap(), codec);
            // The last record (505) went; lastOffsetDelta stays for the
            // producer's last sequence.
            assert_eq!((h.base_offset, h.last_offset_delta), (500, 5));
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (o.producer_id, o.producer_epoch, o.base_sequence)
            );
            assert_eq!(
                (h.base_timestamp, h.max_timestamp),
                (o.base_timestamp, o.max_timestamp)
            );
            let after = read(&cleaned);
            let expected: Vec<Record> = before.into_iter().filter(keep).collect();
            assert_eq!(after, expected, "{codec:?}");
        }
    }

    #[test]
    fn keeping_all_or_nothing() {
        let original = batch(0, 3, Compression::None);
        assert_eq!(retain(&original, |_| true).unwrap(), Retained::Unchanged);
        let Retained::Empty(header) = retain(&original, |_| false).unwrap() else {
            panic!("expected nothing kept");
        };
        let alone = Retained::header_only(&header);
        verify_crc(&alone).unwrap();
        let h = BatchHeader::parse(&alone).unwrap();
        assert_eq!(
            (h.records_count, h.last_offset_delta, h.base_sequence),
            (0, 2, 100)
        );
        assert_eq!(alone.len(), BATCH_HEADER_LEN);
        assert!(read(&alone).is_empty());
    }

    #[test]
    fn a_corrupt_record_is_refused() {
        let original = batch(0, 3, Compression::None);
        let mut bad = BytesMut::from(&original[..]);
        let last = bad.len() - 1;
        bad.truncate(last); // the last record's last byte is gone
        let len = (bad.len() - LOG_OVERHEAD) as i32;
        bad[8..12].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            retain(&bad.freeze(), |_| true),
            Err(Error::MalformedRecord { .. })
        ));
    }
}
