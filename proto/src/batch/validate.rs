//! Whole-batch checks the broker runs on every produced batch: framing,
//! magic, CRC-32C, record count, and a walk over the records' lengths. One
//! pass over the bytes (the CRC) plus one over the record boundaries; keys,
//! values and headers are not copied.

use std::ops::RangeInclusive;

use super::compression::{Compression, MAX_DECOMPRESSED_LEN, inflate};
use super::header::{ATTRIBUTES_OFFSET, BatchHeader, frame_size};
use super::records::check_records;
use super::{BATCH_HEADER_LEN, TimestampType};
use crate::error::{Error, Result};

/// Check that `batch` is exactly one batch: its header is readable, the
/// magic is 2, and the slice is exactly `LOG_OVERHEAD + batchLength` bytes.
/// Returns that size.
pub(crate) fn exact_frame(batch: &[u8]) -> Result<usize> {
    let total = frame_size(batch)?;
    match batch.len() {
        len if len < total => Err(Error::Truncated {
            needed: total,
            available: len,
        }),
        len if len > total => Err(Error::LengthMismatch {
            expected: total,
            actual: len,
        }),
        _ => Ok(total),
    }
}

/// CRC-32C of a framed batch's checked region (attributes to the end).
#[inline]
pub(crate) fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

fn check_crc(batch: &[u8], stored: u32) -> Result<()> {
    let computed = compute_crc(batch);
    if computed == stored {
        Ok(())
    } else {
        Err(Error::CrcMismatch { stored, computed })
    }
}

/// Fully check exactly one batch (`batch.len()` must equal its
/// [`total_size`](BatchHeader::total_size)) and return its header.
///
/// Checks, in order: framing and magic, the CRC-32C over everything from
/// `attributes` to the end, that the compression id names a codec (the
/// broker stores compressed batches as they are; ids 5-7 name no codec),
/// that the batch is what a producer sends: `recordsCount >= 1`
/// and `lastOffsetDelta == recordsCount - 1`, and that the records section
/// holds exactly `recordsCount` well-formed records with offset deltas
/// 0, 1, 2, ... (as Kafka's broker checks before assigning offsets).
///
/// The record walk reads lengths and varints, never copying a key or value.
/// Compressed sections are decompressed for it, as Kafka's broker does.
///
/// # Errors
///
/// [`Error::Truncated`] (slice shorter than the batch),
/// [`Error::LengthMismatch`] (slice longer), [`Error::InvalidMagic`],
/// [`Error::InvalidLength`], [`Error::CrcMismatch`],
/// [`Error::UnknownCompression`], [`Error::InvalidRecordCount`],
/// [`Error::MalformedRecord`] (the records do not match the header or do
/// not decode), and for compressed sections [`Error::CorruptCompressed`]
/// and [`Error::DecompressedTooLarge`].
pub fn validate_batch(batch: &[u8]) -> Result<BatchHeader> {
    check_batch(batch, None)
}

/// [`validate_batch`], and every record's timestamp must lie in
/// `timestamps` (the broker's `message.timestamp.before.max.ms` and
/// `after.max.ms` around its clock), checked in the same walk. Only
/// CreateTime batches are checked: a LogAppendTime one gets the broker's
/// clock anyway.
///
/// # Errors
///
/// As [`validate_batch`], and [`Error::TimestampOutOfRange`].
pub fn validate_batch_in(batch: &[u8], timestamps: RangeInclusive<i64>) -> Result<BatchHeader> {
    check_batch(batch, Some(&timestamps))
}

fn check_batch(batch: &[u8], timestamps: Option<&RangeInclusive<i64>>) -> Result<BatchHeader> {
    let header = validate_batch_header(batch)?;
    let section = &batch[BATCH_HEADER_LEN..];
    let compression = header.compression()?;
    let timestamps = timestamps.filter(|_| header.timestamp_type() == TimestampType::CreateTime);
    match compression {
        Compression::None => check_records(&header, section, timestamps)?,
        codec => check_records(
            &header,
            &inflate(codec, section, MAX_DECOMPRESSED_LEN)?,
            timestamps,
        )?,
    }
    Ok(header)
}

/// [`validate_batch`] without the walk over the records: framing, magic,
/// CRC-32C, codec id and the record-count fields. For batches a leader
/// already validated in full, such as a follower's copies (Kafka's
/// followers, too, check only each batch's CRC).
///
/// # Errors
///
/// As [`validate_batch`], minus [`Error::MalformedRecord`] and the
/// decompression errors.
pub fn validate_batch_header(batch: &[u8]) -> Result<BatchHeader> {
    exact_frame(batch)?;
    let header = BatchHeader::parse(batch)?;
    check_crc(batch, header.crc)?;
    header.compression()?;
    if header.records_count < 1 || header.last_offset_delta != header.records_count - 1 {
        return Err(Error::InvalidRecordCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Check only the framing and the CRC-32C of exactly one batch.
///
/// Use this where the record-count rules of [`validate_batch`] do not apply,
/// e.g. log recovery reading batches that compaction may have thinned.
///
/// # Errors
///
/// As [`validate_batch`], minus the compression and record-count checks.
pub fn verify_crc(batch: &[u8]) -> Result<()> {
    exact_frame(batch)?;
    let stored = u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]);
    check_crc(batch, stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BATCH_HEADER_LEN, BatchBuilder};

    fn sample() -> Vec<u8> {
        let mut b = BatchBuilder::new().producer(5, 1, 0);
        b.push(1_000, Some(b"key"), Some(b"value"), &[("h", Some(b"v"))]);
        b.push(1_010, None, Some(b""), &[]);
        b.push(990, Some(b""), None, &[("n", None)]);
        b.build().expect("non-empty").to_vec()
    }

    /// Recompute the CRC after editing a field inside the CRC'd region, so
    /// the test reaches the check after the CRC.
    fn fix_crc(batch: &mut [u8]) {
        let crc = compute_crc(batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn timestamps_are_checked_per_record_in_the_walk() {
        // Records at 1000, 1010 and 990: the first is not the smallest.
        let batch = sample();
        assert!(validate_batch_in(&batch, 990..=1010).is_ok());
        assert!(matches!(
            validate_batch_in(&batch, 991..=1010),
            Err(Error::TimestampOutOfRange {
                index: 2,
                timestamp: 990
            })
        ));
        assert!(matches!(
            validate_batch_in(&batch, 990..=1009),
            Err(Error::TimestampOutOfRange {
                index: 1,
                timestamp: 1010
            })
        ));
        // A LogAppendTime batch gets the broker's clock: not checked.
        let mut stamped = [0u8; BATCH_HEADER_LEN];
        stamped.copy_from_slice(&batch[..BATCH_HEADER_LEN]);
        crate::batch::set_log_append_time(&mut stamped, &batch[BATCH_HEADER_LEN..], 5);
        let stamped = [&stamped[..], &batch[BATCH_HEADER_LEN..]].concat();
        assert!(validate_batch_in(&stamped, 2000..=3000).is_ok());
    }

    #[test]
    fn accepts_a_built_batch() {
        let batch = sample();
        let h = validate_batch(&batch).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.total_size(), batch.len());
        assert_eq!(verify_crc(&batch), Ok(()));
    }

    #[test]
    fn any_flipped_bit_after_the_crc_field_is_detected() {
        let batch = sample();
        for at in ATTRIBUTES_OFFSET..batch.len() {
            for bit in 0..8 {
                let mut bad = batch.clone();
                bad[at] ^= 1 << bit;
                assert!(
                    matches!(validate_batch(&bad), Err(Error::CrcMismatch { .. })),
                    "flip of bit {bit} at byte {at} not detected"
                );
                assert!(matches!(verify_crc(&bad), Err(Error::CrcMismatch { .. })));
            }
        }
    }

    #[test]
    fn a_wrong_stored_crc_is_reported_with_both_values() {
        let mut batch = sample();
        let good = compute_crc(&batch);
        batch[17] ^= 0x80;
        let stored = good ^ 0x8000_0000;
        assert_eq!(
            validate_batch(&batch),
            Err(Error::CrcMismatch {
                stored,
                computed: good
            })
        );
    }

    #[test]
    fn fields_outside_the_crc_may_change() {
        let mut batch = sample();
        batch[..8].copy_from_slice(&1234i64.to_be_bytes());
        batch[12..16].copy_from_slice(&9i32.to_be_bytes());
        let h = validate_batch(&batch).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (1234, 9));
    }

    #[test]
    fn every_cut_is_truncated() {
        let batch = sample();
        for cut in 0..batch.len() {
            let err = validate_batch(&batch[..cut]).unwrap_err();
            let needed = if cut < 12 { 12 } else { batch.len() };
            assert_eq!(
                err,
                Error::Truncated {
                    needed,
                    available: cut
                },
                "cut at {cut}"
            );
            assert_eq!(verify_crc(&batch[..cut]).unwrap_err(), err);
        }
    }

    #[test]
    fn a_longer_slice_is_a_length_mismatch() {
        let mut batch = sample();
        let expected = batch.len();
        batch.push(0);
        assert_eq!(
            validate_batch(&batch),
            Err(Error::LengthMismatch {
                expected,
                actual: expected + 1
            })
        );
    }

    #[test]
    fn magic_and_length_are_checked() {
        let mut batch = sample();
        batch[16] = 1;
        assert_eq!(validate_batch(&batch), Err(Error::InvalidMagic(1)));
        let mut batch = sample();
        batch[8..12].copy_from_slice(&48i32.to_be_bytes());
        assert_eq!(validate_batch(&batch), Err(Error::InvalidLength(48)));
    }

    #[test]
    fn record_count_rules() {
        let cases = [(0, -1), (3, 3), (3, 1), (-1, -2), (i32::MIN, i32::MAX)];
        for (count, delta) in cases {
            let mut batch = sample();
            batch[57..61].copy_from_slice(&count.to_be_bytes());
            batch[23..27].copy_from_slice(&delta.to_be_bytes());
            fix_crc(&mut batch);
            assert_eq!(
                validate_batch(&batch),
                Err(Error::InvalidRecordCount {
                    records_count: count,
                    last_offset_delta: delta
                })
            );
            // verify_crc does not care.
            assert_eq!(verify_crc(&batch), Ok(()));
        }
    }

    #[test]
    fn unknown_codecs_are_rejected_known_ones_checked() {
        for id in 1i16..8 {
            let mut batch = sample();
            batch[21..23].copy_from_slice(&id.to_be_bytes());
            fix_crc(&mut batch);
            let res = validate_batch(&batch);
            match id {
                // Every codec is decompressed to check the records: plain
                // record bytes are no stream of theirs (or, for a raw
                // snappy block, not one that decodes to these records).
                1..=4 => assert!(
                    matches!(
                        res,
                        Err(Error::CorruptCompressed { .. } | Error::MalformedRecord { .. })
                    ),
                    "codec {id}: {res:?}"
                ),
                _ => assert_eq!(res, Err(Error::UnknownCompression(id as u8))),
            }
        }
    }

    /// Rewrite the header's count fields to claim `count` records and fix
    /// the CRC, as a client lying about its batch would.
    fn claiming(mut batch: Vec<u8>, count: i32) -> Vec<u8> {
        batch[57..61].copy_from_slice(&count.to_be_bytes());
        batch[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        fix_crc(&mut batch);
        batch
    }

    #[test]
    fn a_count_the_records_do_not_back_is_refused() {
        // sample() holds 3 records. Claiming more would move the log end
        // by the claim; claiming fewer leaves records nobody can address.
        for (count, index, reason) in [
            (4, 3, "batch ends before its recordsCount records"),
            (i32::MAX, 3, "batch ends before its recordsCount records"),
            (2, 2, "bytes left after the last record"),
            (1, 1, "bytes left after the last record"),
        ] {
            let batch = claiming(sample(), count);
            assert_eq!(
                validate_batch(&batch),
                Err(Error::MalformedRecord { index, reason }),
                "claiming {count}"
            );
            // Recovery reads such a batch without judging it, and the
            // header-only check (for copies of validated batches) does not
            // walk the records.
            assert_eq!(verify_crc(&batch), Ok(()));
            assert!(validate_batch_header(&batch).is_ok());
        }
    }

    #[test]
    fn offset_deltas_must_count_up_from_zero() {
        let mut b = BatchBuilder::new();
        b.push(1, None, Some(b"a"), &[]);
        b.push(2, None, Some(b"b"), &[]);
        let mut batch = b.build().unwrap().to_vec();
        // Second record: length varint, attributes, timestampDelta (1 byte
        // for small deltas), then offsetDelta 1 = zigzag 2.
        let first_len = batch[BATCH_HEADER_LEN] as usize / 2; // zigzag
        let second = BATCH_HEADER_LEN + 1 + first_len;
        assert_eq!(batch[second + 3], 2, "offsetDelta of record 1");
        batch[second + 3] = 4; // offsetDelta 2
        fix_crc(&mut batch);
        assert_eq!(
            validate_batch(&batch),
            Err(Error::MalformedRecord {
                index: 1,
                reason: "offset delta is not the record's position in the batch"
            })
        );
    }

    #[test]
    fn a_record_that_does_not_decode_is_refused() {
        let mut batch = sample();
        // First record's key length (after length, attributes, timestamp
        // delta 0, offset delta 0): "key" is 3 = zigzag 6; make it 100.
        let key_len_at = BATCH_HEADER_LEN + 4;
        assert_eq!(batch[key_len_at], 6);
        batch[key_len_at] = 200;
        batch[key_len_at + 1] = 1; // varint continues: 200 | 1<<7 = zigzag 100
        fix_crc(&mut batch);
        assert!(matches!(
            validate_batch(&batch),
            Err(Error::MalformedRecord { index: 0, .. })
        ));
    }

    #[test]
    fn header_only_batch() {
        // An empty records section with count 0: the CRC holds but a
        // producer never sends it.
        let mut batch = sample()[..BATCH_HEADER_LEN].to_vec();
        batch[8..12].copy_from_slice(&49i32.to_be_bytes());
        batch[57..61].copy_from_slice(&0i32.to_be_bytes());
        batch[23..27].copy_from_slice(&(-1i32).to_be_bytes());
        fix_crc(&mut batch);
        assert_eq!(verify_crc(&batch), Ok(()));
        assert!(matches!(
            validate_batch(&batch),
            Err(Error::InvalidRecordCount { .. })
        ));
    }

    #[test]
    fn compressed_batches_are_checked_inside() {
        use crate::batch::Compression;
        for codec in [Compression::Lz4, Compression::Zstd] {
            let build = || {
                let mut b = BatchBuilder::new().producer(5, 1, 0).compression(codec);
                for i in 0..20 {
                    b.push(1_000 + i, None, Some(b"compressible compressible"), &[]);
                }
                b.build().unwrap().to_vec()
            };
            let batch = build();
            let h = validate_batch(&batch).unwrap();
            assert_eq!(h.compression(), Ok(codec));
            assert_eq!((h.records_count, h.last_offset_delta), (20, 19));
            // The CRC covers the compressed bytes: flipping one is caught.
            let mut bad = batch.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(matches!(
                validate_batch(&bad),
                Err(Error::CrcMismatch { .. })
            ));
            // A section that is garbage under a valid CRC is refused, not
            // left for every consumer to trip over.
            let mut garbage = batch[..BATCH_HEADER_LEN].to_vec();
            garbage.extend_from_slice(b"definitely not compressed");
            let len = (garbage.len() - 12) as i32;
            garbage[8..12].copy_from_slice(&len.to_be_bytes());
            fix_crc(&mut garbage);
            assert!(matches!(
                validate_batch(&garbage),
                Err(Error::CorruptCompressed { .. })
            ));
            // A count the compressed records do not back is refused too.
            assert_eq!(
                validate_batch(&claiming(build(), 1_000_000)),
                Err(Error::MalformedRecord {
                    index: 20,
                    reason: "batch ends before its recordsCount records"
                })
            );
        }
    }
}
