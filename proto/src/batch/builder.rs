//! Building a batch on the producer side.
//!
//! Records are encoded straight into one `BytesMut` behind 61 reserved
//! header bytes, so building a batch is one growing buffer and no
//! per-record allocation; [`BatchBuilder::build`] fills the header in and
//! computes the CRC over the finished bytes. With a codec
//! ([`BatchBuilder::compression`]) `build` compresses the records section
//! into a second buffer first: records are always encoded plain, because
//! the codec needs the whole section and sizes (`batch.size`) are counted
//! uncompressed, as in Kafka.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::compression::{COMPRESSION_MASK, Compression, compress};
use super::header::{BatchHeader, CRC_OFFSET};
use super::validate::compute_crc;
use super::varint::{put_varint, put_varlong, varint_len, varlong_len};
use super::{
    BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID, NO_SEQUENCE,
};

/// Largest batch, in bytes after the log overhead, that `batchLength` (an
/// `i32`) can describe.
const MAX_BATCH_LENGTH: usize = i32::MAX as usize;

/// Builds one RecordBatch v2 with CreateTime timestamps, uncompressed unless
/// [`compression`](Self::compression) names a codec.
///
/// ```
/// use runnel_proto::batch::{BatchBuilder, validate_batch};
///
/// let mut b = BatchBuilder::with_capacity(16 * 1024).producer(42, 0, 7);
/// b.push(1_700_000_000_000, Some(b"user-1"), Some(b"{\"clicks\":3}"), &[]);
/// b.push(1_700_000_000_005, None, None, &[("trace-id", Some(b"abc"))]);
/// assert_eq!(b.len(), 2);
/// let size = b.size();
///
/// let batch = b.build().expect("two records");
/// assert_eq!(batch.len(), size);
/// let header = validate_batch(&batch)?;
/// assert_eq!((header.records_count, header.base_sequence), (2, 7));
/// # Ok::<(), runnel_proto::Error>(())
/// ```
///
/// Compressed, the header is the same but the records section shrinks:
///
/// ```
/// use runnel_proto::batch::{BatchBuilder, Compression, records, validate_batch};
///
/// let mut b = BatchBuilder::new().compression(Compression::Zstd);
/// for i in 0..100 {
///     b.push(1_700_000_000_000 + i, None, Some(b"the same value, again and again"), &[]);
/// }
/// let plain_size = b.size();
/// let batch = b.build().expect("100 records");
/// assert!(batch.len() < plain_size / 4);
///
/// let header = validate_batch(&batch)?;
/// assert_eq!(header.compression()?, Compression::Zstd);
/// assert_eq!((header.records_count, header.last_offset_delta), (100, 99));
/// assert_eq!(records(&batch)?.count(), 100);
/// # Ok::<(), runnel_proto::Error>(())
/// ```
pub struct BatchBuilder {
    /// 61 placeholder header bytes followed by the encoded records.
    buf: BytesMut,
    /// Records pushed; the next record's offset delta.
    count: i32,
    /// Timestamp of the first record; later records store deltas from it.
    base_timestamp: i64,
    /// Largest timestamp pushed.
    max_timestamp: i64,
    /// Idempotent producer id, or [`NO_PRODUCER_ID`].
    producer_id: i64,
    /// Producer epoch, or [`NO_PRODUCER_EPOCH`].
    producer_epoch: i16,
    /// Sequence number of the first record, or [`NO_SEQUENCE`].
    base_sequence: i32,
    /// Codec for the records section; always one this build can write.
    compression: Compression,
}

impl fmt::Debug for BatchBuilder {
    // Not derived: the buffer can be megabytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchBuilder")
            .field("records", &self.count)
            .field("size", &self.size())
            .field("base_timestamp", &self.base_timestamp)
            .field("max_timestamp", &self.max_timestamp)
            .field("producer_id", &self.producer_id)
            .field("producer_epoch", &self.producer_epoch)
            .field("base_sequence", &self.base_sequence)
            .field("compression", &self.compression)
            .finish()
    }
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// `len` as a Kafka length field.
///
/// # Panics
///
/// If `len` exceeds `i32::MAX`: no such field fits in a batch.
fn length_field(len: usize) -> i32 {
    i32::try_from(len).expect("record field longer than i32::MAX bytes")
}

/// Encoded size of a length-prefixed nullable byte field.
fn field_size(field: Option<&[u8]>) -> usize {
    match field {
        None => 1, // varint -1
        Some(bytes) => varint_len(length_field(bytes.len())) + bytes.len(),
    }
}

fn put_field(buf: &mut BytesMut, field: Option<&[u8]>) {
    match field {
        None => put_varint(buf, -1),
        Some(bytes) => {
            put_varint(buf, bytes.len() as i32);
            buf.put_slice(bytes);
        }
    }
}

impl BatchBuilder {
    /// An empty builder: uncompressed, CreateTime, no producer id.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty builder whose buffer holds `bytes` (at least the header)
    /// before it has to grow. Pass the producer's `batch.size` to build a
    /// full batch without reallocating.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = BytesMut::with_capacity(bytes.max(BATCH_HEADER_LEN));
        buf.put_bytes(0, BATCH_HEADER_LEN);
        Self {
            buf,
            count: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            compression: Compression::None,
        }
    }

    /// Compress the records section with `codec` when the batch is built
    /// (attributes bits 0-2 say which). Record count, offset deltas and
    /// timestamps are unchanged; only the bytes after the header shrink.
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self
    }

    /// Stamp the batch with an idempotent producer's id, epoch and the
    /// sequence number of its first record (the broker uses them to drop
    /// retried duplicates).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    fn timestamp_delta(&self, timestamp_ms: i64) -> i64 {
        if self.count == 0 {
            0
        } else {
            timestamp_ms.wrapping_sub(self.base_timestamp)
        }
    }

    /// Size of the record body (everything after its length varint).
    fn body_size(
        &self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> usize {
        let mut size = 1 // attributes
            + varlong_len(self.timestamp_delta(timestamp_ms))
            + varint_len(self.count)
            + field_size(key)
            + field_size(value)
            + varint_len(length_field(headers.len()));
        for (k, v) in headers {
            size += field_size(Some(k.as_bytes())) + field_size(*v);
        }
        size
    }

    /// The bytes [`push`](Self::push) would add for this record, length
    /// prefix included. A producer checks `size() + record_size(..)` against
    /// its `batch.size` before pushing.
    ///
    /// # Panics
    ///
    /// If a key, value or header is longer than `i32::MAX` bytes.
    pub fn record_size(
        &self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> usize {
        let body = self.body_size(timestamp_ms, key, value, headers);
        varint_len(length_field(body)) + body
    }

    /// Append a record. `None` key/value/header value is Kafka's null, which
    /// is distinct from an empty slice (a `None` value is a tombstone).
    ///
    /// The first record's timestamp becomes the batch's `baseTimestamp`;
    /// timestamps need not be in order.
    ///
    /// # Panics
    ///
    /// If the batch would exceed `i32::MAX` bytes, the most its length field
    /// can describe.
    pub fn push(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        let body = self.body_size(timestamp_ms, key, value, headers);
        let record = varint_len(length_field(body)) + body;
        let batch_length = self.buf.len() - LOG_OVERHEAD + record;
        assert!(
            batch_length <= MAX_BATCH_LENGTH,
            "record batch would exceed i32::MAX bytes"
        );

        let timestamp_delta = self.timestamp_delta(timestamp_ms);
        if self.count == 0 {
            self.base_timestamp = timestamp_ms;
            self.max_timestamp = timestamp_ms;
        } else {
            self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        }

        let buf = &mut self.buf;
        buf.reserve(record);
        let start = buf.len();
        put_varint(buf, body as i32);
        buf.put_u8(0); // record attributes: unused
        put_varlong(buf, timestamp_delta);
        put_varint(buf, self.count);
        put_field(buf, key);
        put_field(buf, value);
        put_varint(buf, headers.len() as i32);
        for (k, v) in headers {
            put_field(buf, Some(k.as_bytes()));
            put_field(buf, *v);
        }
        debug_assert_eq!(buf.len() - start, record);
        // Cannot overflow: every record is at least 7 bytes and the batch is
        // at most i32::MAX bytes.
        self.count += 1;
    }

    /// Number of records pushed.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record has been pushed yet (then [`build`](Self::build)
    /// returns `None`).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The size in bytes of the batch uncompressed: header plus records
    /// ([`BATCH_HEADER_LEN`] when empty). Exactly what
    /// [`build`](Self::build) returns without a codec; with one, `build`
    /// returns the compressed size, usually less (but a few bytes more
    /// for incompressible records). Producers compare this against
    /// `batch.size`, which counts uncompressed bytes as in Kafka.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// Finish the batch: compress the records section if a codec is set,
    /// fill in the header (`baseOffset` 0 and `partitionLeaderEpoch` −1,
    /// both for the broker to stamp) and the CRC-32C, which covers the
    /// compressed bytes.
    ///
    /// Returns `None` if no record was pushed: Kafka has no valid empty
    /// batch (`recordsCount` must be at least 1), so an empty builder cannot
    /// produce bytes that the broker would reject.
    ///
    /// # Panics
    ///
    /// If the compressed batch would exceed `i32::MAX` bytes.
    pub fn build(self) -> Option<Bytes> {
        if self.count == 0 {
            return None;
        }
        let mut buf = match self.compression {
            Compression::None => self.buf,
            codec => {
                let plain = &self.buf[BATCH_HEADER_LEN..];
                // Most record batches shrink; start at the plain size so
                // the common case never reallocates.
                let mut out = BytesMut::with_capacity(self.buf.len());
                out.put_bytes(0, BATCH_HEADER_LEN);
                compress(codec, plain, &mut out)
                    .expect("compressing less than 2 GiB into memory cannot fail");
                assert!(
                    out.len() - LOG_OVERHEAD <= MAX_BATCH_LENGTH,
                    "compressed record batch would exceed i32::MAX bytes"
                );
                out
            }
        };
        let header = BatchHeader {
            base_offset: 0,
            batch_length: (buf.len() - LOG_OVERHEAD) as i32,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            magic: MAGIC_V2,
            crc: 0,
            // Codec in bits 0-2; CreateTime, not transactional, not control.
            attributes: i16::from(self.compression.id()) & COMPRESSION_MASK,
            last_offset_delta: self.count - 1,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            records_count: self.count,
        };
        buf[..BATCH_HEADER_LEN].copy_from_slice(&header.to_bytes());
        let crc = compute_crc(&buf);
        buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Some(buf.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Compression, TimestampType, records, validate_batch};

    #[test]
    fn empty_builder_builds_nothing() {
        let b = BatchBuilder::new();
        assert!(b.is_empty());
        assert_eq!(b.len(), 0);
        assert_eq!(b.size(), BATCH_HEADER_LEN);
        assert_eq!(b.build(), None);
        assert_eq!(BatchBuilder::default().producer(1, 1, 1).build(), None);
    }

    #[test]
    fn header_fields() {
        let mut b = BatchBuilder::new();
        b.push(1_000, None, Some(b"a"), &[]);
        b.push(900, None, Some(b"b"), &[]);
        b.push(1_500, None, Some(b"c"), &[]);
        let batch = b.build().unwrap();
        let h = validate_batch(&batch).unwrap();
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.partition_leader_epoch, NO_PARTITION_LEADER_EPOCH);
        assert_eq!(h.magic, MAGIC_V2);
        assert_eq!(h.compression(), Ok(Compression::None));
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert!(!h.is_transactional() && !h.is_control() && !h.has_producer_id());
        assert_eq!((h.records_count, h.last_offset_delta), (3, 2));
        assert_eq!((h.base_timestamp, h.max_timestamp), (1_000, 1_500));
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (-1, -1, -1)
        );
        assert_eq!(h.total_size(), batch.len());

        let recs: Vec<_> = records(&batch).unwrap().map(Result::unwrap).collect();
        let got: Vec<_> = recs.iter().map(|r| (r.offset, r.timestamp)).collect();
        assert_eq!(got, [(0, 1_000), (1, 900), (2, 1_500)]);
    }

    #[test]
    fn producer_fields() {
        let mut b = BatchBuilder::new().producer(77, 4, 1_000);
        b.push(0, None, None, &[]);
        let h = validate_batch(&b.build().unwrap()).unwrap();
        assert!(h.has_producer_id());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (77, 4, 1_000)
        );
    }

    #[test]
    fn size_and_record_size_are_exact() {
        let mut b = BatchBuilder::with_capacity(10);
        let big = vec![7u8; 300];
        type Case<'a> = (
            i64,
            Option<&'a [u8]>,
            Option<&'a [u8]>,
            Vec<(&'a str, Option<&'a [u8]>)>,
        );
        let cases: [Case<'_>; 5] = [
            (i64::MIN, None, None, vec![]),
            (
                i64::MAX,
                Some(b""),
                Some(&big),
                vec![("", None), ("k", Some(b""))],
            ),
            (0, Some(&big), None, vec![("ü", Some(&big))]),
            (-1, None, Some(b"v"), vec![]),
            (1 << 40, Some(b"k"), Some(b"v"), vec![("h", Some(b"x")); 70]),
        ];
        for (ts, k, v, hs) in &cases {
            let before = b.size();
            let predicted = b.record_size(*ts, *k, *v, hs);
            b.push(*ts, *k, *v, hs);
            assert_eq!(b.size() - before, predicted);
        }
        let size = b.size();
        let batch = b.build().unwrap();
        assert_eq!(batch.len(), size);
        // Extreme timestamp deltas wrap and decode back exactly.
        let recs: Vec<_> = records(&batch).unwrap().map(Result::unwrap).collect();
        let ts: Vec<_> = recs.iter().map(|r| r.timestamp).collect();
        assert_eq!(ts, cases.iter().map(|c| c.0).collect::<Vec<_>>());
        assert_eq!(recs[4].headers.len(), 70);
        assert_eq!(recs[2].headers[0].key, "ü");
    }

    #[test]
    fn with_capacity_does_not_reallocate_when_big_enough() {
        let mut b = BatchBuilder::with_capacity(4096);
        let ptr = b.buf.as_ptr();
        for i in 0..30 {
            b.push(i, Some(b"key"), Some(&[0u8; 100]), &[]);
        }
        assert!(b.size() <= 4096);
        assert_eq!(b.buf.as_ptr(), ptr);
    }

    /// The same records, built plain and with `codec`.
    fn plain_and_compressed(codec: Compression) -> (Bytes, Bytes) {
        let build = |codec| {
            let mut b = BatchBuilder::new().producer(9, 2, 100).compression(codec);
            for i in 0..50 {
                b.push(
                    1_000 + i,
                    Some(format!("key-{i}").as_bytes()),
                    Some(b"a value that repeats, a value that repeats"),
                    &[("h", Some(b"header value"))],
                );
            }
            b.push(900, None, None, &[("n", None)]);
            b.build().unwrap()
        };
        (build(Compression::None), build(codec))
    }

    #[test]
    fn compressed_batches_keep_the_header_and_shrink_the_records() {
        for codec in [Compression::Lz4, Compression::Zstd] {
            let (plain, compressed) = plain_and_compressed(codec);
            assert!(
                compressed.len() < plain.len() / 2,
                "{codec}: {} vs {}",
                compressed.len(),
                plain.len()
            );
            let hp = validate_batch(&plain).unwrap();
            let hc = validate_batch(&compressed).unwrap();
            assert_eq!(hc.compression(), Ok(codec));
            assert_eq!(hc.attributes, i16::from(codec.id()));
            assert_eq!(hc.total_size(), compressed.len());
            // Everything but length, CRC and attributes is the plain header.
            assert_eq!(
                (hc.records_count, hc.last_offset_delta, hc.base_timestamp),
                (hp.records_count, hp.last_offset_delta, hp.base_timestamp)
            );
            assert_eq!(
                (hc.max_timestamp, hc.producer_id, hc.producer_epoch),
                (hp.max_timestamp, hp.producer_id, hp.producer_epoch)
            );
            assert_eq!(hc.base_sequence, hp.base_sequence);
            // The CRC covers the compressed bytes (validate_batch checked
            // it); and the records decode to the same thing.
            let a: Vec<_> = records(&plain).unwrap().map(Result::unwrap).collect();
            let b: Vec<_> = records(&compressed).unwrap().map(Result::unwrap).collect();
            assert_eq!(a, b);
            assert_eq!(b.len(), 51);
        }
    }

    #[test]
    fn none_builds_exactly_the_default_batch() {
        let mut a = BatchBuilder::new().compression(Compression::None);
        let mut b = BatchBuilder::new();
        a.push(1, None, Some(b"v"), &[]);
        b.push(1, None, Some(b"v"), &[]);
        assert_eq!(a.build(), b.build());
    }

    #[test]
    fn incompressible_records_still_round_trip() {
        // Pseudo-random bytes: the compressed batch may be a little larger
        // than the plain one, and must still validate and decode.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..5_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for codec in Compression::ALL[1..].iter().copied() {
            let mut b = BatchBuilder::new().compression(codec);
            b.push(0, None, Some(&noise), &[]);
            let size = b.size();
            let batch = b.build().unwrap();
            assert!(
                batch.len() < size + 64,
                "{codec}: {} vs {size}",
                batch.len()
            );
            validate_batch(&batch).unwrap();
            let rec = records(&batch).unwrap().next().unwrap().unwrap();
            assert_eq!(rec.value.as_deref(), Some(&noise[..]));
        }
    }

    type Row = (
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
    );

    fn row() -> impl proptest::strategy::Strategy<Value = Row> {
        use proptest::prelude::*;
        let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64));
        (
            any::<i64>(),
            bytes(),
            bytes(),
            proptest::collection::vec(("[a-z]{0,8}", bytes()), 0..3),
        )
    }

    proptest::proptest! {
        #[test]
        fn every_codec_round_trips_records(
            rows in proptest::collection::vec(row(), 1..40),
            codec in proptest::sample::select(&Compression::ALL[..]),
        ) {
            let mut b = BatchBuilder::new().compression(codec);
            for (ts, k, v, hs) in &rows {
                let hs: Vec<(&str, Option<&[u8]>)> =
                    hs.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
                b.push(*ts, k.as_deref(), v.as_deref(), &hs);
            }
            let batch = b.build().unwrap();
            let h = validate_batch(&batch).unwrap();
            proptest::prop_assert_eq!(h.compression(), Ok(codec));
            proptest::prop_assert_eq!(h.records_count as usize, rows.len());
            let recs: Vec<_> = records(&batch).unwrap().collect::<Result<_, _>>().unwrap();
            proptest::prop_assert_eq!(recs.len(), rows.len());
            for (i, (rec, (ts, k, v, hs))) in recs.iter().zip(&rows).enumerate() {
                proptest::prop_assert_eq!(rec.offset, i as i64);
                proptest::prop_assert_eq!(rec.timestamp, *ts);
                proptest::prop_assert_eq!(rec.key.as_deref(), k.as_deref());
                proptest::prop_assert_eq!(rec.value.as_deref(), v.as_deref());
                let got: Vec<_> = rec.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref())).collect();
                let want: Vec<_> = hs.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
                proptest::prop_assert_eq!(got, want);
            }
        }
    }
}
