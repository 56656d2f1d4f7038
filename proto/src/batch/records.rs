//! Decoding the records inside a batch.
//!
//! A record, after its own length varint:
//!
//! ```text
//! attributes      i8        unused, 0
//! timestampDelta  varlong   record timestamp − baseTimestamp
//! offsetDelta     varint    record offset − baseOffset
//! keyLength       varint    −1 = null key
//! key             bytes
//! valueLength     varint    −1 = null value
//! value           bytes
//! headersCount    varint
//! headers         per header: keyLength varint, key (UTF-8),
//!                             valueLength varint (−1 = null), value
//! ```
//!
//! Keys and values come out as [`Bytes::slice`]s of the batch: a reference
//! count bump, never a copy. Header keys are the only allocation (`String`).
//! A compressed batch (LZ4, zstd) is decompressed once into a new buffer
//! when the iterator is created, and keys and values are slices of that.

use std::fmt;
use std::iter::FusedIterator;
use std::ops::RangeInclusive;

use bytes::Bytes;

use super::compression::decompress;
use super::header::BatchHeader;
use super::validate::exact_frame;
use super::varint::{get_varint, get_varlong};
use super::{BATCH_HEADER_LEN, TimestampType};
use crate::error::{Error, Result};

/// One record header: a UTF-8 key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// Header name. Kafka requires UTF-8 and forbids null.
    pub key: String,
    /// Header value; `None` is Kafka's null (length −1), distinct from empty.
    pub value: Option<Bytes>,
}

/// One decoded record with absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `baseOffset + offsetDelta`.
    pub offset: i64,
    /// `baseTimestamp + timestampDelta` for CreateTime batches; the batch's
    /// `maxTimestamp` for LogAppendTime batches (the broker's clock wins).
    pub timestamp: i64,
    /// Key; `None` is a null key (length −1), distinct from an empty one.
    pub key: Option<Bytes>,
    /// Value; `None` is a null value, i.e. a tombstone under compaction.
    pub value: Option<Bytes>,
    /// Headers in the order they were written.
    pub headers: Vec<RecordHeader>,
}

/// Decode the records of exactly one batch.
///
/// The framing is checked (magic, length, `batch.len() == total_size`) but
/// not the CRC: call [`validate_batch`](super::validate_batch) first on bytes
/// you do not trust. Record-level problems surface as `Err` items from the
/// iterator, which then stops.
///
/// ```
/// use runnel_proto::batch::{BatchBuilder, records};
///
/// let mut b = BatchBuilder::new();
/// b.push(1_000, Some(b"k"), Some(b"v"), &[("trace", Some(b"abc"))]);
/// let batch = b.build().unwrap();
/// let recs: Vec<_> = records(&batch)?.collect::<Result<_, _>>()?;
/// assert_eq!(recs[0].key.as_deref(), Some(&b"k"[..]));
/// assert_eq!(recs[0].headers[0].key, "trace");
/// # Ok::<(), runnel_proto::Error>(())
/// ```
///
/// # Errors
///
/// Framing errors as in [`validate_batch`](super::validate_batch),
/// [`Error::UnknownCompression`], [`Error::CorruptCompressed`] and
/// [`Error::DecompressedTooLarge`] for compressed sections that do not
/// decompress (see [`MAX_DECOMPRESSED_LEN`](super::MAX_DECOMPRESSED_LEN)),
/// and [`Error::InvalidRecordCount`] if `recordsCount` is negative.
pub fn records(batch: &Bytes) -> Result<RecordIter> {
    let (header, body) = open(batch)?;
    Ok(RecordIter {
        header,
        body,
        pos: 0,
        index: 0,
        done: false,
    })
}

/// The header of exactly one batch and its plain (decompressed) records
/// section, with the errors [`records`] documents.
pub(crate) fn open(batch: &Bytes) -> Result<(BatchHeader, Bytes)> {
    exact_frame(batch)?;
    let header = BatchHeader::parse(batch)?;
    if header.records_count < 0 {
        return Err(Error::InvalidRecordCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let body = decompress(header.compression()?, batch.slice(BATCH_HEADER_LEN..))?;
    Ok((header, body))
}

/// Iterator over the records of one batch, returned by [`records`].
///
/// Yields `Ok(Record)` for each of the header's `recordsCount` records. If a
/// record does not decode, or bytes are left over after the last one, it
/// yields one `Err(Error::MalformedRecord { .. })` and stops.
#[derive(Clone)]
pub struct RecordIter {
    /// The batch header, for base offset/timestamp and the record count.
    header: BatchHeader,
    /// The plain (decompressed) records section.
    body: Bytes,
    /// Read position within `body`.
    pos: usize,
    /// Records decoded so far; also the index of the next one.
    index: i32,
    /// Set after an error or after the trailing-bytes check.
    done: bool,
}

impl RecordIter {
    /// The header of the batch being iterated.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    fn malformed(&mut self, reason: &'static str) -> Error {
        self.done = true;
        Error::MalformedRecord {
            index: self.index,
            reason,
        }
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.index >= self.header.records_count {
            self.done = true;
            return if self.pos == self.body.len() {
                None
            } else {
                Some(Err(self.malformed("bytes left after the last record")))
            };
        }
        Some(match decode_record(&self.header, &self.body, self.pos) {
            Ok((record, next)) => {
                self.pos = next;
                self.index += 1;
                Ok(record)
            }
            Err(reason) => Err(self.malformed(reason)),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        // Every record takes at least 7 bytes, which bounds a hostile count.
        let left = (self.header.records_count - self.index).max(0) as usize;
        let fit = (self.body.len() - self.pos) / MIN_RECORD_LEN;
        (0, Some(left.min(fit) + 1))
    }
}

impl FusedIterator for RecordIter {}

impl fmt::Debug for RecordIter {
    // Not derived: that would print every record byte.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordIter")
            .field("header", &self.header)
            .field("body_len", &self.body.len())
            .field("position", &self.pos)
            .field("index", &self.index)
            .field("done", &self.done)
            .finish()
    }
}

/// Smallest possible record: length, attributes, timestampDelta,
/// offsetDelta, keyLength, valueLength, headersCount, one byte each.
const MIN_RECORD_LEN: usize = 7;

/// Bounds-checked reader over a record's bytes. Positions are indexes into
/// the batch body so that slices can be cut from the shared `Bytes`.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl Reader<'_> {
    fn varint(&mut self, what: &'static str) -> Result<i32, &'static str> {
        let (v, n) = get_varint(&self.buf[self.pos..self.end]).map_err(|_| what)?;
        self.pos += n;
        Ok(v)
    }

    fn varlong(&mut self, what: &'static str) -> Result<i64, &'static str> {
        let (v, n) = get_varlong(&self.buf[self.pos..self.end]).map_err(|_| what)?;
        self.pos += n;
        Ok(v)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        if self.pos >= self.end {
            return Err("record ends before its attributes");
        }
        self.pos += 1;
        Ok(self.buf[self.pos - 1])
    }

    /// Range of a `length`-prefixed byte field (`None` for length −1).
    fn field(
        &mut self,
        what: &'static str,
        negative: &'static str,
        overrun: &'static str,
    ) -> Result<Option<(usize, usize)>, &'static str> {
        let len = self.varint(what)?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| negative)?;
        if len > self.end - self.pos {
            return Err(overrun);
        }
        let start = self.pos;
        self.pos += len;
        Ok(Some((start, self.pos)))
    }
}

/// The fields of one record, as ranges of the body it was read from.
struct RecordFields {
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<(usize, usize)>,
    value: Option<(usize, usize)>,
    /// Position just past the record.
    end: usize,
}

/// Read the record starting at `pos` in `body`, checking every length
/// against the record's own, and hand each header's key and value range to
/// `on_header` (keys already checked to be UTF-8). Allocates nothing.
fn walk_record(
    body: &[u8],
    pos: usize,
    mut on_header: impl FnMut(&str, Option<(usize, usize)>),
) -> Result<RecordFields, &'static str> {
    let (length, n) = get_varint(&body[pos..]).map_err(|_| "bad record length")?;
    let length = usize::try_from(length).map_err(|_| "negative record length")?;
    let start = pos + n;
    if length > body.len() - start {
        return Err("record length runs past the end of the batch");
    }
    let mut r = Reader {
        buf: body,
        pos: start,
        end: start + length,
    };

    let _attributes = r.u8()?; // unused by Kafka; any value is accepted
    let timestamp_delta = r.varlong("bad timestamp delta")?;
    let offset_delta = r.varint("bad offset delta")?;
    let key = r.field(
        "bad key length",
        "negative key length",
        "key runs past the end of the record",
    )?;
    let value = r.field(
        "bad value length",
        "negative value length",
        "value runs past the end of the record",
    )?;
    let count = r.varint("bad header count")?;
    let count = usize::try_from(count).map_err(|_| "negative header count")?;
    for _ in 0..count {
        let (a, b) = r
            .field(
                "bad header key length",
                "negative header key length",
                "header key runs past the end of the record",
            )?
            .ok_or("null header key")?;
        let key = std::str::from_utf8(&body[a..b]).map_err(|_| "header key is not UTF-8")?;
        let value = r.field(
            "bad header value length",
            "negative header value length",
            "header value runs past the end of the record",
        )?;
        on_header(key, value);
    }
    if r.pos != r.end {
        return Err("record length does not match its fields");
    }
    Ok(RecordFields {
        timestamp_delta,
        offset_delta,
        key,
        value,
        end: r.end,
    })
}

/// Decode the record starting at `pos` in `body`; returns it and the
/// position just past it.
pub(crate) fn decode_record(
    header: &BatchHeader,
    body: &Bytes,
    pos: usize,
) -> Result<(Record, usize), &'static str> {
    let slice = |range: Option<(usize, usize)>| range.map(|(a, b)| body.slice(a..b));
    let mut headers = Vec::new();
    let fields = walk_record(body, pos, |key, value| {
        headers.push(RecordHeader {
            key: key.to_owned(),
            value: slice(value),
        });
    })?;
    let offset = header
        .base_offset
        .wrapping_add(i64::from(fields.offset_delta));
    let timestamp = match header.timestamp_type() {
        TimestampType::CreateTime => header.base_timestamp.wrapping_add(fields.timestamp_delta),
        TimestampType::LogAppendTime => header.max_timestamp,
    };
    Ok((
        Record {
            offset,
            timestamp,
            key: slice(fields.key),
            value: slice(fields.value),
            headers,
        },
        fields.end,
    ))
}

/// Check that `body`, the plain records section of a batch with `header`,
/// holds exactly `recordsCount` well-formed records whose offset deltas are
/// 0, 1, 2, ... in order: what a producer writes, and what Kafka's broker
/// checks before it assigns offsets. Without this a batch could claim
/// 2^31 records (moving the log end that far) while holding one, or carry a
/// record every consumer fails to decode.
///
/// Walks lengths and varints only: no allocation, no copy. With
/// `timestamps`, every record's CreateTime must also lie in that range
/// ([`Error::TimestampOutOfRange`] otherwise).
pub(crate) fn check_records(
    header: &BatchHeader,
    body: &[u8],
    timestamps: Option<&RangeInclusive<i64>>,
) -> Result<()> {
    let malformed = |index: i32, reason: &'static str| Error::MalformedRecord { index, reason };
    let mut pos = 0;
    for index in 0..header.records_count {
        if pos == body.len() {
            return Err(malformed(
                index,
                "batch ends before its recordsCount records",
            ));
        }
        let fields =
            walk_record(body, pos, |_, _| {}).map_err(|reason| malformed(index, reason))?;
        if fields.offset_delta != index {
            return Err(malformed(
                index,
                "offset delta is not the record's position in the batch",
            ));
        }
        if let Some(range) = timestamps {
            let timestamp = header.base_timestamp.wrapping_add(fields.timestamp_delta);
            if !range.contains(&timestamp) {
                return Err(Error::TimestampOutOfRange { index, timestamp });
            }
        }
        pos = fields.end;
    }
    if pos != body.len() {
        return Err(malformed(
            header.records_count,
            "bytes left after the last record",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;
    use crate::batch::header::ATTRIBUTES_OFFSET;
    use crate::batch::varint::put_varint;

    /// A batch whose records section is `body` (hand-encoded), with `count`
    /// records claimed. CRC is left zero: `records` does not check it.
    fn batch_with_body(count: i32, body: &[u8]) -> Bytes {
        let header = BatchHeader {
            base_offset: 100,
            batch_length: (49 + body.len()) as i32,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 5_000,
            max_timestamp: 5_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: count,
        };
        [&header.to_bytes()[..], body].concat().into()
    }

    /// Encode one record body (without its length) from raw parts.
    fn record(fields: &[i32], tail: &[u8]) -> Vec<u8> {
        let mut inner = vec![0u8]; // attributes
        for &f in fields {
            put_varint(&mut inner, f);
        }
        inner.extend_from_slice(tail);
        let mut out = Vec::new();
        put_varint(&mut out, inner.len() as i32);
        out.extend_from_slice(&inner);
        out
    }

    fn first_error(batch: &Bytes) -> Error {
        records(batch)
            .unwrap()
            .find_map(|r| r.err())
            .expect("an error")
    }

    #[test]
    fn decodes_a_minimal_record() {
        // tsDelta 3, offsetDelta 0, null key, null value, 0 headers.
        let batch = batch_with_body(1, &record(&[3, 0, -1, -1, 0], &[]));
        let mut it = records(&batch).unwrap();
        assert_eq!(it.header().records_count, 1);
        let rec = it.next().unwrap().unwrap();
        assert_eq!(
            rec,
            Record {
                offset: 100,
                timestamp: 5_003,
                key: None,
                value: None,
                headers: vec![]
            }
        );
        assert!(it.next().is_none());
    }

    #[test]
    fn key_and_value_are_zero_copy() {
        let mut b = BatchBuilder::new();
        b.push(
            1,
            Some(b"the-key"),
            Some(b"the-value"),
            &[("h", Some(b"hv"))],
        );
        let batch = b.build().unwrap();
        let rec = records(&batch).unwrap().next().unwrap().unwrap();
        let range = batch.as_ptr_range();
        for part in [
            rec.key.unwrap(),
            rec.value.unwrap(),
            rec.headers[0].value.clone().unwrap(),
        ] {
            assert!(range.contains(&part.as_ptr()), "{part:?} was copied");
        }
    }

    #[test]
    fn log_append_time_uses_max_timestamp() {
        let mut b = BatchBuilder::new();
        b.push(10, None, None, &[]);
        b.push(20, None, None, &[]);
        let mut batch = b.build().unwrap().to_vec();
        batch[ATTRIBUTES_OFFSET + 1] |= 1 << 3;
        batch[35..43].copy_from_slice(&777i64.to_be_bytes());
        let batch = Bytes::from(batch);
        let ts: Vec<i64> = records(&batch)
            .unwrap()
            .map(|r| r.unwrap().timestamp)
            .collect();
        assert_eq!(ts, [777, 777]);
    }

    #[test]
    fn framing_errors() {
        let batch = batch_with_body(1, &record(&[0, 0, -1, -1, 0], &[]));
        for cut in 0..batch.len() {
            assert!(matches!(
                records(&batch.slice(..cut)),
                Err(Error::Truncated { .. })
            ));
        }
        let mut longer = batch.to_vec();
        longer.push(0);
        assert!(matches!(
            records(&longer.into()),
            Err(Error::LengthMismatch { .. })
        ));
        let negative = batch_with_body(-1, &[]);
        assert!(matches!(
            records(&negative),
            Err(Error::InvalidRecordCount { .. })
        ));
    }

    #[test]
    fn codec_ids_naming_no_codec_are_errors() {
        let mut batch = batch_with_body(1, &[1, 2, 3]).to_vec();
        batch[ATTRIBUTES_OFFSET + 1] = 6;
        assert_eq!(
            records(&batch.into()).unwrap_err(),
            Error::UnknownCompression(6)
        );
    }

    #[test]
    fn compressed_batches_decode() {
        use crate::batch::Compression;
        for codec in Compression::ALL[1..].iter().copied() {
            let mut b = BatchBuilder::new().compression(codec);
            b.push(7, Some(b"k1"), Some(b"v1"), &[("h", Some(b"x"))]);
            b.push(9, None, Some(b"v2"), &[]);
            let batch = b.build().unwrap();
            let recs: Vec<_> = records(&batch).unwrap().map(Result::unwrap).collect();
            assert_eq!(recs.len(), 2);
            assert_eq!(recs[0].key.as_deref(), Some(&b"k1"[..]));
            assert_eq!(recs[1].value.as_deref(), Some(&b"v2"[..]));
            assert_eq!((recs[0].timestamp, recs[1].offset), (7, 1));
            assert_eq!(recs[0].headers[0].value.as_deref(), Some(&b"x"[..]));
        }
    }

    #[test]
    fn a_corrupt_compressed_section_is_an_error() {
        // Labelled lz4/zstd, but the section is plain records.
        let mut batch = batch_with_body(1, &record(&[0, 0, -1, -1, 0], &[])).to_vec();
        for (id, codec) in [(3, "lz4"), (4, "zstd")] {
            batch[ATTRIBUTES_OFFSET + 1] = id;
            let err = records(&batch.clone().into()).unwrap_err();
            assert!(
                matches!(err, Error::CorruptCompressed { .. }),
                "{codec}: {err:?}"
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("corrupt {codec} records section"))
            );
        }
    }

    #[test]
    fn zero_records() {
        assert_eq!(records(&batch_with_body(0, &[])).unwrap().count(), 0);
        let err = first_error(&batch_with_body(0, &[0]));
        assert_eq!(
            err,
            Error::MalformedRecord {
                index: 0,
                reason: "bytes left after the last record"
            }
        );
    }

    #[test]
    fn malformed_records_are_reported_once() {
        let good = record(&[0, 0, -1, -1, 0], &[]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "bad record length"),
            (vec![0x80], "bad record length"),
            (vec![0x01], "negative record length"),
            (
                vec![0x10, 0],
                "record length runs past the end of the batch",
            ),
            (vec![0x00], "record ends before its attributes"),
            (record(&[], &[]), "bad timestamp delta"),
            (record(&[0], &[]), "bad offset delta"),
            (record(&[0, 0], &[]), "bad key length"),
            (record(&[0, 0, -2], &[]), "negative key length"),
            (
                record(&[0, 0, 5], &[1, 2]),
                "key runs past the end of the record",
            ),
            (record(&[0, 0, -1], &[]), "bad value length"),
            (record(&[0, 0, -1, -7], &[]), "negative value length"),
            (
                record(&[0, 0, -1, 3], &[]),
                "value runs past the end of the record",
            ),
            (record(&[0, 0, -1, -1], &[]), "bad header count"),
            (record(&[0, 0, -1, -1, -1], &[]), "negative header count"),
            (
                record(&[0, 0, -1, -1, i32::MAX], &[]),
                "bad header key length",
            ),
            (record(&[0, 0, -1, -1, 1, -1], &[]), "null header key"),
            (
                record(&[0, 0, -1, -1, 1, -3], &[]),
                "negative header key length",
            ),
            (
                record(&[0, 0, -1, -1, 1, 4], &[]),
                "header key runs past the end of the record",
            ),
            (
                record(&[0, 0, -1, -1, 1, 1], b"a"),
                "bad header value length",
            ),
            (
                record(&[0, 0, -1, -1, 1, 1], &[0xff, 0x01]),
                "header key is not UTF-8",
            ),
            (
                record(&[0, 0, -1, -1, 1, 1], &[b'a', 0x03]),
                "negative header value length",
            ),
            (
                record(&[0, 0, -1, -1, 1, 1], &[b'a', 0x04]),
                "header value runs past the end of the record",
            ),
            (
                record(&[0, 0, -1, -1, 0, 0], &[]),
                "record length does not match its fields",
            ),
        ];
        for (bad, reason) in cases {
            // One good record first, so the index is 1.
            let body = [&good[..], &bad[..]].concat();
            let batch = batch_with_body(2, &body);
            let items: Vec<_> = records(&batch).unwrap().collect();
            assert_eq!(items.len(), 2, "{reason}");
            assert!(items[0].is_ok());
            assert_eq!(
                items[1],
                Err(Error::MalformedRecord { index: 1, reason }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn claimed_count_larger_than_records_is_malformed() {
        let batch = batch_with_body(i32::MAX, &record(&[0, 0, -1, -1, 0], &[]));
        let it = records(&batch).unwrap();
        // The size hint is bounded by the bytes, not by the hostile count.
        assert!(it.size_hint().1.unwrap() <= 2);
        let items: Vec<_> = it.collect();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[1],
            Err(Error::MalformedRecord {
                index: 1,
                reason: "bad record length"
            })
        );
    }

    #[test]
    fn offsets_and_timestamps_wrap_instead_of_panicking() {
        let mut batch = batch_with_body(1, &record(&[0, i32::MAX, -1, -1, 0], &[])).to_vec();
        batch[..8].copy_from_slice(&i64::MAX.to_be_bytes());
        batch[27..35].copy_from_slice(&i64::MAX.to_be_bytes());
        // timestampDelta is a varlong; put 1 there (zigzag 2).
        batch[BATCH_HEADER_LEN + 2] = 2;
        let rec = records(&batch.into()).unwrap().next().unwrap().unwrap();
        assert_eq!(rec.offset, i64::MAX.wrapping_add(i64::from(i32::MAX)));
        assert_eq!(rec.timestamp, i64::MIN);
    }
}
