//! The fixed 61-byte batch header: parsing, encoding, attribute bits.

use super::compression::{COMPRESSION_MASK, Compression};
use super::{BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, NO_PRODUCER_ID};
use crate::error::{Error, Result};

// Byte offsets of the header fields (see the table in the module docs).
pub(crate) const BASE_OFFSET_OFFSET: usize = 0;
pub(crate) const BATCH_LENGTH_OFFSET: usize = 8;
pub(crate) const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub(crate) const MAGIC_OFFSET: usize = 16;
pub(crate) const CRC_OFFSET: usize = 17;
/// The CRC covers everything from here to the end of the batch.
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
pub(crate) const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORDS_COUNT_OFFSET: usize = 57;

/// Smallest legal `batchLength`: the header minus the two fields before it
/// (an empty records section).
pub(crate) const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;

pub(crate) const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// Which clock a batch's timestamps come from (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Bit 3 clear: each record carries the producer's timestamp.
    CreateTime,
    /// Bit 3 set: the broker stamped the batch when appending it; every
    /// record's timestamp is the batch's `maxTimestamp`.
    LogAppendTime,
}

/// The fixed 61-byte header of a RecordBatch v2, field by field.
///
/// Fields keep Kafka's names and raw values; the accessor methods interpret
/// them. A header from [`BatchHeader::parse`] has `magic == 2` and
/// `batch_length >= 49`; nothing else is checked there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record; assigned by the partition leader on append.
    pub base_offset: i64,
    /// Bytes after this field to the end of the batch (total size − 12).
    pub batch_length: i32,
    /// Leader epoch of the broker that appended the batch; followers use it
    /// to find where their log diverged from a new leader's.
    pub partition_leader_epoch: i32,
    /// Format version; always [`MAGIC_V2`].
    pub magic: i8,
    /// CRC-32C (Castagnoli) of the bytes from `attributes` to the end.
    pub crc: u32,
    /// Compression (bits 0-2), timestamp type (bit 3), transactional (bit 4),
    /// control (bit 5).
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record; record timestamps are deltas from it.
    pub base_timestamp: i64,
    /// Largest record timestamp (or the append time for LogAppendTime).
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, or [`NO_PRODUCER_ID`].
    pub producer_id: i64,
    /// Epoch of `producer_id`, or `NO_PRODUCER_EPOCH`.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or `NO_SEQUENCE`.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

#[inline]
fn i16_at(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

#[inline]
fn i32_at(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

#[inline]
fn i64_at(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

/// Size of the batch that starts at `buf[0]`, read from its length field,
/// checking what can be checked without the whole header.
///
/// Errors, in order: [`Error::Truncated`] if the 12-byte log overhead is not
/// there; [`Error::InvalidMagic`] if the magic byte is present and not 2
/// (checked before the length because a non-v2 batch's length means nothing
/// to us); [`Error::InvalidLength`] if `batchLength < 49`.
pub(crate) fn frame_size(buf: &[u8]) -> Result<usize> {
    if buf.len() < LOG_OVERHEAD {
        return Err(Error::Truncated {
            needed: LOG_OVERHEAD,
            available: buf.len(),
        });
    }
    if let Some(&magic) = buf.get(MAGIC_OFFSET) {
        let magic = magic as i8;
        if magic != MAGIC_V2 {
            return Err(Error::InvalidMagic(magic));
        }
    }
    let batch_length = i32_at(buf, BATCH_LENGTH_OFFSET);
    if batch_length < MIN_BATCH_LENGTH {
        return Err(Error::InvalidLength(batch_length));
    }
    // batch_length is positive, so this cannot wrap on 32- or 64-bit targets.
    Ok(LOG_OVERHEAD + batch_length as usize)
}

impl BatchHeader {
    /// Parse the fixed 61-byte header at the start of `buf`. The CRC is not
    /// checked.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] if `buf` is shorter than [`BATCH_HEADER_LEN`],
    /// [`Error::InvalidMagic`] if the magic byte is not 2,
    /// [`Error::InvalidLength`] if `batchLength < 49`.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(Error::Truncated {
                needed: BATCH_HEADER_LEN,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(Error::InvalidMagic(magic));
        }
        let batch_length = i32_at(buf, BATCH_LENGTH_OFFSET);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(Error::InvalidLength(batch_length));
        }
        Ok(Self {
            base_offset: i64_at(buf, BASE_OFFSET_OFFSET),
            batch_length,
            partition_leader_epoch: i32_at(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic,
            crc: i32_at(buf, CRC_OFFSET) as u32,
            attributes: i16_at(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: i32_at(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: i64_at(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: i64_at(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: i64_at(buf, PRODUCER_ID_OFFSET),
            producer_epoch: i16_at(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: i32_at(buf, BASE_SEQUENCE_OFFSET),
            records_count: i32_at(buf, RECORDS_COUNT_OFFSET),
        })
    }

    /// The 61 header bytes for these field values, exactly as stored
    /// (including `crc` as it is; nothing is recomputed).
    pub fn to_bytes(&self) -> [u8; BATCH_HEADER_LEN] {
        let mut out = [0u8; BATCH_HEADER_LEN];
        let mut put = |at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
        put(BASE_OFFSET_OFFSET, &self.base_offset.to_be_bytes());
        put(BATCH_LENGTH_OFFSET, &self.batch_length.to_be_bytes());
        put(
            PARTITION_LEADER_EPOCH_OFFSET,
            &self.partition_leader_epoch.to_be_bytes(),
        );
        put(MAGIC_OFFSET, &self.magic.to_be_bytes());
        put(CRC_OFFSET, &self.crc.to_be_bytes());
        put(ATTRIBUTES_OFFSET, &self.attributes.to_be_bytes());
        put(
            LAST_OFFSET_DELTA_OFFSET,
            &self.last_offset_delta.to_be_bytes(),
        );
        put(BASE_TIMESTAMP_OFFSET, &self.base_timestamp.to_be_bytes());
        put(MAX_TIMESTAMP_OFFSET, &self.max_timestamp.to_be_bytes());
        put(PRODUCER_ID_OFFSET, &self.producer_id.to_be_bytes());
        put(PRODUCER_EPOCH_OFFSET, &self.producer_epoch.to_be_bytes());
        put(BASE_SEQUENCE_OFFSET, &self.base_sequence.to_be_bytes());
        put(RECORDS_COUNT_OFFSET, &self.records_count.to_be_bytes());
        out
    }

    /// Size of the whole batch in bytes: [`LOG_OVERHEAD`] + `batch_length`
    /// (a negative `batch_length`, impossible after [`parse`](Self::parse),
    /// counts as 0).
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record: `base_offset + last_offset_delta`
    /// (wrapping, so hostile headers cannot cause an overflow panic).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The offset the record after this batch gets: `last_offset() + 1`.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// The codec of the records section.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownCompression`] if bits 0-2 hold 5, 6 or 7.
    pub fn compression(&self) -> Result<Compression> {
        let id = (self.attributes & COMPRESSION_MASK) as u8;
        Compression::from_id(id).ok_or(Error::UnknownCompression(id))
    }

    /// Whether record timestamps are the producer's or the broker's.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Attributes bit 4: the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Attributes bit 5: the batch holds a control record (transaction
    /// commit/abort marker), not application data.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Whether the batch comes from an idempotent or transactional producer
    /// (`producer_id` is not [`NO_PRODUCER_ID`]; like Kafka, any negative id
    /// counts as none).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id > NO_PRODUCER_ID
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_SEQUENCE};

    fn sample() -> BatchHeader {
        BatchHeader {
            base_offset: 0x0102_0304_0506_0708,
            batch_length: 49 + 10,
            partition_leader_epoch: 7,
            magic: MAGIC_V2,
            crc: 0xdead_beef,
            attributes: 0,
            last_offset_delta: 2,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_042,
            producer_id: 99,
            producer_epoch: 3,
            base_sequence: 17,
            records_count: 3,
        }
    }

    #[test]
    fn layout_offsets_add_up() {
        // Each field starts where the previous one ends; the header is 61 bytes.
        let fields = [
            (BASE_OFFSET_OFFSET, 8),
            (BATCH_LENGTH_OFFSET, 4),
            (PARTITION_LEADER_EPOCH_OFFSET, 4),
            (MAGIC_OFFSET, 1),
            (CRC_OFFSET, 4),
            (ATTRIBUTES_OFFSET, 2),
            (LAST_OFFSET_DELTA_OFFSET, 4),
            (BASE_TIMESTAMP_OFFSET, 8),
            (MAX_TIMESTAMP_OFFSET, 8),
            (PRODUCER_ID_OFFSET, 8),
            (PRODUCER_EPOCH_OFFSET, 2),
            (BASE_SEQUENCE_OFFSET, 4),
            (RECORDS_COUNT_OFFSET, 4),
        ];
        let mut next = 0;
        for (at, len) in fields {
            assert_eq!(at, next);
            next = at + len;
        }
        assert_eq!(next, BATCH_HEADER_LEN);
        assert_eq!(MIN_BATCH_LENGTH, 49);
    }

    #[test]
    fn to_bytes_then_parse_round_trips() {
        let h = sample();
        let bytes = h.to_bytes();
        // Big-endian on the wire.
        assert_eq!(&bytes[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[17..21], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(BatchHeader::parse(&bytes), Ok(h));
        // Extra bytes after the header are ignored by parse.
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(&[0xff; 10]);
        assert_eq!(BatchHeader::parse(&longer), Ok(h));
    }

    #[test]
    fn parse_rejects_short_buffers() {
        let bytes = sample().to_bytes();
        for cut in 0..BATCH_HEADER_LEN {
            assert_eq!(
                BatchHeader::parse(&bytes[..cut]),
                Err(Error::Truncated {
                    needed: BATCH_HEADER_LEN,
                    available: cut
                })
            );
        }
    }

    #[test]
    fn parse_rejects_other_magics() {
        for magic in [0i8, 1, 3, -1, i8::MAX, i8::MIN] {
            let mut bytes = sample().to_bytes();
            bytes[MAGIC_OFFSET] = magic as u8;
            assert_eq!(BatchHeader::parse(&bytes), Err(Error::InvalidMagic(magic)));
        }
    }

    #[test]
    fn parse_rejects_short_batch_lengths() {
        for len in [i32::MIN, -1, 0, 12, 48] {
            let mut h = sample();
            h.batch_length = len;
            assert_eq!(
                BatchHeader::parse(&h.to_bytes()),
                Err(Error::InvalidLength(len))
            );
        }
        let mut h = sample();
        h.batch_length = 49;
        assert!(BatchHeader::parse(&h.to_bytes()).is_ok());
        h.batch_length = i32::MAX;
        assert_eq!(
            BatchHeader::parse(&h.to_bytes()).unwrap().total_size(),
            12 + i32::MAX as usize
        );
    }

    #[test]
    fn frame_size_checks_in_order() {
        let bytes = sample().to_bytes();
        assert_eq!(
            frame_size(&bytes[..11]),
            Err(Error::Truncated {
                needed: 12,
                available: 11
            })
        );
        assert_eq!(frame_size(&bytes[..12]), Ok(12 + 59));
        assert_eq!(frame_size(&bytes), Ok(12 + 59));
        let mut bad = bytes;
        bad[MAGIC_OFFSET] = 1;
        // Magic is only looked at once it is in the buffer.
        assert_eq!(frame_size(&bad[..16]), Ok(12 + 59));
        assert_eq!(frame_size(&bad[..17]), Err(Error::InvalidMagic(1)));
        let mut short = sample();
        short.batch_length = 10;
        assert_eq!(frame_size(&short.to_bytes()), Err(Error::InvalidLength(10)));
    }

    #[test]
    fn derived_offsets() {
        let h = sample();
        assert_eq!(h.total_size(), 12 + 59);
        assert_eq!(h.last_offset(), h.base_offset + 2);
        assert_eq!(h.next_offset(), h.base_offset + 3);
        let mut edge = h;
        edge.base_offset = i64::MAX;
        // Wraps instead of panicking on hostile input.
        assert_eq!(edge.next_offset(), i64::MIN + 2);
        edge.batch_length = -5;
        assert_eq!(edge.total_size(), LOG_OVERHEAD);
    }

    #[test]
    fn attribute_bits() {
        let mut h = sample();
        assert_eq!(h.compression(), Ok(Compression::None));
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert!(!h.is_transactional());
        assert!(!h.is_control());

        for id in 0u8..8 {
            h.attributes = i16::from(id) | 0b11_1000;
            match Compression::from_id(id) {
                Some(c) => assert_eq!(h.compression(), Ok(c)),
                None => assert_eq!(h.compression(), Err(Error::UnknownCompression(id))),
            }
            assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
            assert!(h.is_transactional());
            assert!(h.is_control());
        }
        h.attributes = 1 << 4;
        assert!(h.is_transactional() && !h.is_control());
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        h.attributes = 1 << 5;
        assert!(!h.is_transactional() && h.is_control());
    }

    #[test]
    fn producer_id_sentinels() {
        let mut h = sample();
        assert!(h.has_producer_id());
        h.producer_id = 0;
        assert!(h.has_producer_id());
        h.producer_id = NO_PRODUCER_ID;
        assert!(!h.has_producer_id());
        h.producer_id = -2;
        assert!(!h.has_producer_id());
        // The other sentinels are Kafka's -1 too.
        assert_eq!(
            (NO_PRODUCER_EPOCH, NO_SEQUENCE, NO_PARTITION_LEADER_EPOCH),
            (-1, -1, -1)
        );
    }
}
