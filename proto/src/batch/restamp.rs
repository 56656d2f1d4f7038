//! Rewriting the header fields the broker owns. `baseOffset` and
//! `partitionLeaderEpoch` sit before the CRC field, outside the checked
//! region, so the CRC the producer computed stays valid and the records are
//! never touched. A `LogAppendTime` topic also owns the timestamp type and
//! `maxTimestamp`, which the CRC covers: [`set_log_append_time`] computes it
//! again.

use super::BATCH_HEADER_LEN;
use super::header::{
    ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET, CRC_OFFSET, MAX_TIMESTAMP_OFFSET,
    PARTITION_LEADER_EPOCH_OFFSET, TIMESTAMP_TYPE_BIT,
};

/// Overwrite `baseOffset` (bytes 0..8) in place.
///
/// # Panics
///
/// If `batch` is shorter than 8 bytes.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Overwrite `partitionLeaderEpoch` (bytes 12..16) in place.
///
/// # Panics
///
/// If `batch` is shorter than 16 bytes.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// A copy of the batch's 61 header bytes with `baseOffset` and
/// `partitionLeaderEpoch` replaced.
///
/// The broker appends `[restamped_header(..), batch[61..]]` with one
/// vectored write, so a produced batch (often shared `Bytes` from the
/// request) is stamped without copying its body. The CRC in the copy still
/// matches the body because neither field is covered by it.
///
/// # Panics
///
/// If `batch` is shorter than [`BATCH_HEADER_LEN`]; call it on a batch
/// [`validate_batch`](super::validate_batch) accepted.
pub fn restamped_header(
    batch: &[u8],
    base_offset: i64,
    leader_epoch: i32,
) -> [u8; BATCH_HEADER_LEN] {
    let mut header = [0u8; BATCH_HEADER_LEN];
    header.copy_from_slice(&batch[..BATCH_HEADER_LEN]);
    set_base_offset(&mut header, base_offset);
    set_partition_leader_epoch(&mut header, leader_epoch);
    header
}

/// Stamp a batch with the broker's clock (`message.timestamp.type =
/// LogAppendTime`, as Kafka does): set the timestamp-type bit, set
/// `maxTimestamp` to `append_time_ms`, and compute the CRC again over the
/// changed header and the unchanged `body` (the batch after its 61 header
/// bytes). Record timestamps then read as `append_time_ms`
/// ([`records`](super::records)); the record bytes are not touched.
pub fn set_log_append_time(header: &mut [u8; BATCH_HEADER_LEN], body: &[u8], append_time_ms: i64) {
    let attributes = i16::from_be_bytes([header[ATTRIBUTES_OFFSET], header[ATTRIBUTES_OFFSET + 1]])
        | TIMESTAMP_TYPE_BIT;
    header[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    header[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&append_time_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[ATTRIBUTES_OFFSET..]), body);
    header[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, BatchHeader, validate_batch};

    fn sample() -> Vec<u8> {
        let mut b = BatchBuilder::new();
        b.push(5, Some(b"k"), Some(b"v"), &[]);
        b.push(6, Some(b"k2"), Some(b"v2"), &[]);
        b.build().unwrap().to_vec()
    }

    #[test]
    fn in_place_restamp_keeps_the_crc_valid() {
        let mut batch = sample();
        let before = batch.clone();
        set_base_offset(&mut batch, 0x7fff_ffff_0000_0001);
        set_partition_leader_epoch(&mut batch, 42);
        let h = validate_batch(&batch).unwrap();
        assert_eq!(h.base_offset, 0x7fff_ffff_0000_0001);
        assert_eq!(h.partition_leader_epoch, 42);
        assert_eq!(h.last_offset(), 0x7fff_ffff_0000_0002);
        // Only bytes 0..8 and 12..16 changed.
        for (i, (a, b)) in before.iter().zip(&batch).enumerate() {
            if !(0..8).contains(&i) && !(12..16).contains(&i) {
                assert_eq!(a, b, "byte {i} changed");
            }
        }
    }

    #[test]
    fn restamped_header_plus_body_is_a_valid_batch() {
        let batch = sample();
        let header = restamped_header(&batch, 1000, 3);
        // The source is not modified.
        assert_eq!(batch, sample());
        let joined = [&header[..], &batch[BATCH_HEADER_LEN..]].concat();
        let h = validate_batch(&joined).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (1000, 3));
        assert_eq!(h.next_offset(), 1002);
        // Same as restamping in place.
        let mut in_place = batch.clone();
        set_base_offset(&mut in_place, 1000);
        set_partition_leader_epoch(&mut in_place, 3);
        assert_eq!(joined, in_place);
    }

    #[test]
    fn log_append_time_rewrites_the_timestamps_and_the_crc() {
        use crate::batch::{TimestampType, records};
        let batch = sample();
        let mut header = restamped_header(&batch, 7, 2);
        set_log_append_time(&mut header, &batch[BATCH_HEADER_LEN..], 1_700_000_000_123);
        let joined = [&header[..], &batch[BATCH_HEADER_LEN..]].concat();
        let h = validate_batch(&joined).expect("the new CRC matches");
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 1_700_000_000_123);
        assert_eq!((h.base_offset, h.partition_leader_epoch), (7, 2));
        let original = BatchHeader::parse(&batch).unwrap();
        assert_eq!(h.base_timestamp, original.base_timestamp);
        assert_eq!(h.compression().unwrap(), original.compression().unwrap());
        let stamps: Vec<i64> = records(&bytes::Bytes::from(joined.clone()))
            .unwrap()
            .map(|r| r.unwrap().timestamp)
            .collect();
        assert_eq!(stamps, [1_700_000_000_123, 1_700_000_000_123]);
        // The body is the producer's, byte for byte.
        assert_eq!(&joined[BATCH_HEADER_LEN..], &batch[BATCH_HEADER_LEN..]);
    }

    #[test]
    #[should_panic]
    fn restamped_header_of_a_short_slice_panics() {
        let _ = restamped_header(&[0u8; 60], 0, 0);
    }
}
