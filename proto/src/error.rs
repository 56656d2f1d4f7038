//! The crate's error type: everything that can be wrong with bytes that claim
//! to be a RecordBatch.
//!
//! Variants are structured (numbers, not formatted strings) so the broker can
//! map them to Kafka-style error codes in one place (`CORRUPT_MESSAGE`,
//! `INVALID_RECORD`, `UNSUPPORTED_COMPRESSION_TYPE`) and so that log recovery
//! can tell "the tail was cut short" ([`Error::Truncated`]) from "the bytes are
//! garbage" (every other variant).

use crate::batch::Compression;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why bytes were rejected as a RecordBatch v2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends before the batch does. `needed` is the number of bytes
    /// the batch (or, before its length is readable, its fixed prefix) takes;
    /// `available` is how many there were. In a log this is a torn write at
    /// the tail; on the wire it means the sender cut the batch short.
    #[error("record batch truncated: needed {needed} bytes, {available} available")]
    Truncated {
        /// Bytes needed to hold what is being read.
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },

    /// The magic byte is not 2. Older message formats (magic 0 and 1) are not
    /// supported, and anything else is not a record batch at all.
    #[error("unsupported record batch magic {0} (only 2 is supported)")]
    InvalidMagic(i8),

    /// `batchLength` is smaller than the fixed part of the header (49 bytes),
    /// negative included.
    #[error("invalid record batch length {0} (minimum 49)")]
    InvalidLength(i32),

    /// A function that takes exactly one batch got a slice of a different
    /// size than the batch's header says (`expected` = `LOG_OVERHEAD +
    /// batchLength`). Shorter slices give [`Error::Truncated`] instead.
    #[error("record batch is {expected} bytes but the buffer holds {actual}")]
    LengthMismatch {
        /// Size from the header.
        expected: usize,
        /// Size of the slice.
        actual: usize,
    },

    /// The CRC-32C stored in the header does not match the bytes after it.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// The CRC field of the header.
        stored: u32,
        /// CRC-32C of everything from `attributes` to the end of the batch.
        computed: u32,
    },

    /// `recordsCount` is below 1, or `lastOffsetDelta` is not
    /// `recordsCount - 1` (producers always send dense batches).
    #[error("invalid record count {records_count} with last offset delta {last_offset_delta}")]
    InvalidRecordCount {
        /// The `recordsCount` field.
        records_count: i32,
        /// The `lastOffsetDelta` field.
        last_offset_delta: i32,
    },

    /// Compression bits 0-2 of `attributes` hold 5, 6 or 7, which name no codec.
    #[error("unknown compression codec id {0}")]
    UnknownCompression(u8),

    /// A `compression.type` name that is none of Kafka's (`none`, `gzip`,
    /// `snappy`, `lz4`, `zstd`).
    #[error("unknown compression type {0:?}; expected none, gzip, snappy, lz4 or zstd")]
    UnknownCompressionName(String),

    /// The records section is not a valid stream of the batch's codec
    /// (bad magic, bad block, cut short, trailing garbage).
    #[error("corrupt {codec} records section: {reason}")]
    CorruptCompressed {
        /// The batch's codec.
        codec: Compression,
        /// The decoder's complaint.
        reason: String,
    },

    /// The records section inflates past
    /// [`MAX_DECOMPRESSED_LEN`](crate::batch::MAX_DECOMPRESSED_LEN): a
    /// decompression bomb, or a batch no producer writes.
    #[error("{codec} records section decompresses to more than {limit} bytes")]
    DecompressedTooLarge {
        /// The batch's codec.
        codec: Compression,
        /// The limit that was hit.
        limit: usize,
    },

    /// The records section of a batch does not decode. `index` is the
    /// zero-based position of the offending record within the batch.
    #[error("malformed record {index}: {reason}")]
    MalformedRecord {
        /// Which record (0 = first) failed to decode.
        index: i32,
        /// What was wrong with it.
        reason: &'static str,
    },

    /// A record's CreateTime lies outside the range the broker accepts
    /// ([`validate_batch_in`](crate::batch::validate_batch_in)).
    #[error("record {index} has timestamp {timestamp}, outside the accepted range")]
    TimestampOutOfRange {
        /// Which record (0 = first).
        index: i32,
        /// Its timestamp, ms since the Unix epoch.
        timestamp: i64,
    },
}
