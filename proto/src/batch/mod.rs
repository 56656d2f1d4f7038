//! Kafka's RecordBatch v2 (magic 2): the unit Runnel produces, replicates,
//! stores and fetches.
//!
//! # Why Kafka's layout
//!
//! Runnel stores batches byte for byte as Kafka does. The layout already has
//! everything a replicated log needs (a checksum the broker verifies once,
//! fields the broker may restamp without touching the checksum, producer
//! ids for idempotence, leader epochs for follower truncation), it costs
//! nothing extra to keep, and it means a Kafka-protocol listener can later
//! store and serve Kafka clients' batches without converting them.
//!
//! # Batch layout
//!
//! All integers are big-endian. Offsets are from the start of the batch.
//!
//! | offset | size | field                  | notes                                                         |
//! |-------:|-----:|------------------------|---------------------------------------------------------------|
//! |      0 |    8 | `baseOffset`           | i64; offset of the first record, set by the leader on append  |
//! |      8 |    4 | `batchLength`          | i32; bytes after this field (total size − 12), ≥ 49           |
//! |     12 |    4 | `partitionLeaderEpoch` | i32; set by the leader on append, −1 from producers           |
//! |     16 |    1 | `magic`                | i8; always 2                                                  |
//! |     17 |    4 | `crc`                  | u32; CRC-32C (Castagnoli) of bytes 21 to the end              |
//! |     21 |    2 | `attributes`           | i16; bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control |
//! |     23 |    4 | `lastOffsetDelta`      | i32; last record's offset − `baseOffset`                      |
//! |     27 |    8 | `baseTimestamp`        | i64; first record's timestamp (ms)                            |
//! |     35 |    8 | `maxTimestamp`         | i64; largest record timestamp (ms)                            |
//! |     43 |    8 | `producerId`           | i64; −1 without an idempotent producer                        |
//! |     51 |    2 | `producerEpoch`        | i16; −1 without                                               |
//! |     53 |    4 | `baseSequence`         | i32; −1 without                                               |
//! |     57 |    4 | `recordsCount`         | i32; number of records                                        |
//! |     61 |    … | records                | compressed as a whole if bits 0-2 say so                      |
//!
//! The first 12 bytes (`baseOffset`, `batchLength`) are the *log overhead*
//! every Kafka log entry starts with; `partitionLeaderEpoch` and `baseOffset`
//! sit before the CRC'd region so the broker can restamp them without
//! recomputing the checksum (see [`restamped_header`]).
//!
//! Compression ids (attributes bits 0-2): 0 none, 1 gzip, 2 snappy, 3 lz4,
//! 4 zstd. Timestamp type (bit 3): 0 CreateTime, 1 LogAppendTime. With a
//! codec, everything after the 61-byte header is one compressed stream of
//! the records; the header (record count, offset deltas, timestamps) stays
//! plain and the CRC covers the compressed bytes, so the broker validates
//! and stores a compressed batch without ever decompressing it. LZ4 (the
//! frame format) and zstd are built in; gzip and snappy are stored but not
//! read or written.
//!
//! # Record layout
//!
//! Each record is framed by a length and uses zigzag varints (as protobuf's
//! `sint32`/`sint64`):
//!
//! | field            | encoding | notes                                   |
//! |------------------|----------|-----------------------------------------|
//! | `length`         | varint   | bytes of the record after this field    |
//! | `attributes`     | i8       | unused, 0                               |
//! | `timestampDelta` | varlong  | timestamp − `baseTimestamp`             |
//! | `offsetDelta`    | varint   | offset − `baseOffset`                   |
//! | `keyLength`      | varint   | −1 = null key                           |
//! | `key`            | bytes    |                                         |
//! | `valueLength`    | varint   | −1 = null value                         |
//! | `value`          | bytes    |                                         |
//! | `headersCount`   | varint   |                                         |
//! | per header       |          | `keyLength` varint, key (UTF-8), `valueLength` varint (−1 = null), value |
//!
//! # Where to start
//!
//! - Clients: [`BatchBuilder`].
//! - Broker, produce path: [`validate_batch`], then [`restamped_header`] (or
//!   [`set_base_offset`] / [`set_partition_leader_epoch`] in place).
//! - Broker, follower copying the leader's batches: [`validate_batch_header`].
//! - Broker, log recovery and fetch: [`batches`], [`verify_crc`].
//! - Consumers: [`records`].
//!
//! Modules: `header` (the 61-byte header), `validate` (CRC and producer
//! rules), `walk` (concatenated batches), `restamp` (broker-owned fields),
//! `retain` (rewriting a batch with some of its records, for compaction),
//! `builder`, `records` (record decoding), `compression` (codec ids, the
//! LZ4 and zstd codecs), `varint`.

mod builder;
mod compression;
mod header;
mod records;
mod restamp;
mod retain;
mod validate;
mod varint;
mod walk;

pub use builder::BatchBuilder;
pub use compression::{Compression, MAX_DECOMPRESSED_LEN};
pub use header::{BatchHeader, TimestampType};
pub use records::{Record, RecordHeader, RecordIter, records};
pub use restamp::{
    restamped_header, set_base_offset, set_log_append_time, set_partition_leader_epoch,
};
pub use retain::{Retained, retain};
pub use validate::{validate_batch, validate_batch_header, validate_batch_in, verify_crc};
pub use walk::{Batches, batches};

/// The only `magic` (format version) Runnel reads and writes.
pub const MAGIC_V2: i8 = 2;

/// Bytes before `batchLength` counts: `baseOffset` (8) + `batchLength` (4).
/// A batch's total size is `LOG_OVERHEAD + batchLength`.
pub const LOG_OVERHEAD: usize = 12;

/// Size of the fixed header, from `baseOffset` through `recordsCount`.
pub const BATCH_HEADER_LEN: usize = 61;

/// `producerId` of a batch from a producer without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;

/// `producerEpoch` of a batch from a producer without idempotence.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// `baseSequence` of a batch from a producer without idempotence.
pub const NO_SEQUENCE: i32 = -1;

/// `partitionLeaderEpoch` of a batch no leader has appended yet.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
