//! Whole-batch checks the broker runs on every produced batch: framing,
//! magic, CRC-32C, record count. One pass over the bytes (the CRC) plus O(1)
//! header checks; records are not decoded.

use super::header::{ATTRIBUTES_OFFSET, BatchHeader, frame_size};
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
/// broker stores compressed batches as they are, LZ4 and zstd as well as
/// gzip and snappy, which Kafka clients may send; only ids 5-7 name no
/// codec), and that the batch is what a producer
/// sends: `recordsCount >= 1` and `lastOffsetDelta == recordsCount - 1`.
///
/// Records are not decoded (a compressed section is never decompressed
/// here); the CRC vouches for their bytes and
/// [`records`](super::records) decodes them when somebody needs them.
///
/// # Errors
///
/// [`Error::Truncated`] (slice shorter than the batch),
/// [`Error::LengthMismatch`] (slice longer), [`Error::InvalidMagic`],
/// [`Error::InvalidLength`], [`Error::CrcMismatch`],
/// [`Error::UnknownCompression`], [`Error::InvalidRecordCount`].
pub fn validate_batch(batch: &[u8]) -> Result<BatchHeader> {
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
    fn unknown_codecs_are_rejected_known_ones_accepted() {
        for id in 1i16..8 {
            let mut batch = sample();
            batch[21..23].copy_from_slice(&id.to_be_bytes());
            fix_crc(&mut batch);
            let res = validate_batch(&batch);
            if id <= 4 {
                assert!(res.is_ok(), "codec {id}: {res:?}");
            } else {
                assert_eq!(res, Err(Error::UnknownCompression(id as u8)));
            }
        }
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
    fn compressed_batches_validate_without_decompressing() {
        use crate::batch::Compression;
        for codec in [Compression::Lz4, Compression::Zstd] {
            let mut b = BatchBuilder::new()
                .producer(5, 1, 0)
                .compression(codec)
                .unwrap();
            for i in 0..20 {
                b.push(1_000 + i, None, Some(b"compressible compressible"), &[]);
            }
            let batch = b.build().unwrap().to_vec();
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
            // A section that is garbage under a valid CRC still validates:
            // the broker never decompresses, consumers report it.
            let mut garbage = batch[..BATCH_HEADER_LEN].to_vec();
            garbage.extend_from_slice(b"definitely not compressed");
            let len = (garbage.len() - 12) as i32;
            garbage[8..12].copy_from_slice(&len.to_be_bytes());
            fix_crc(&mut garbage);
            assert!(validate_batch(&garbage).is_ok());
        }
    }
}
