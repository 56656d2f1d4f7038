//! Turning a fetched partition's `records` bytes into [`ConsumerRecord`]s
//! without copying: keys and values are [`Bytes`] slices of the response.

use std::sync::Arc;

use bytes::Bytes;
use runnel_proto::batch::{batches, records};

use crate::consumer::ConsumerRecord;
use crate::error::{Error, Result};

/// The position after the last complete batch in `data` (`None` if there
/// is none), from the batch headers alone.
///
/// A batch cut short at the end of `data` is ignored: the next fetch starts
/// at it again. (The broker returns whole batches; this is defensive.)
pub(crate) fn next_position(topic: &str, partition: u32, data: &[u8]) -> Result<Option<i64>> {
    let mut next = None;
    for (i, batch) in batches(data).enumerate() {
        match batch {
            Ok((header, _)) => next = Some(header.next_offset()),
            Err(runnel_proto::Error::Truncated { .. }) if i > 0 => break,
            Err(source) => {
                return Err(Error::Codec {
                    topic: topic.to_owned(),
                    partition,
                    source,
                });
            }
        }
    }
    Ok(next)
}

/// Append the records of `data` at or after `fetch_offset` to `out`.
///
/// The broker returns whole batches starting with the one that contains
/// `fetch_offset`, so records before it are skipped; control batches
/// (transaction markers) are skipped whole.
///
/// On a batch that does not decode, the records of the batches before it
/// stay in `out` and the error comes with the offset to resume from: the
/// bad batch's first wanted offset (as Kafka's consumer stops at a corrupt
/// record).
pub(crate) fn decode(
    topic: &Arc<str>,
    partition: u32,
    fetch_offset: i64,
    data: &Bytes,
    out: &mut Vec<ConsumerRecord>,
) -> Result<(), (Error, i64)> {
    let codec = |source| Error::Codec {
        topic: topic.to_string(),
        partition,
        source,
    };
    let mut resume = fetch_offset;
    for (i, batch) in batches(data).enumerate() {
        let (header, slice) = match batch {
            Ok(b) => b,
            Err(runnel_proto::Error::Truncated { .. }) if i > 0 => break,
            Err(e) => return Err((codec(e), resume)),
        };
        if header.last_offset() < fetch_offset || header.is_control() {
            resume = resume.max(header.next_offset());
            continue;
        }
        let before = out.len();
        let fail = |out: &mut Vec<ConsumerRecord>, e| {
            out.truncate(before);
            Err((codec(e), resume))
        };
        let batch = data.slice_ref(slice);
        let iter = match records(&batch) {
            Ok(iter) => iter,
            Err(e) => return fail(out, e),
        };
        out.reserve(header.records_count.max(0) as usize);
        for record in iter {
            let record = match record {
                Ok(r) => r,
                Err(e) => return fail(out, e),
            };
            if record.offset < fetch_offset {
                continue;
            }
            out.push(ConsumerRecord {
                topic: topic.clone(),
                partition,
                offset: record.offset,
                timestamp: record.timestamp,
                key: record.key,
                value: record.value,
                headers: record
                    .headers
                    .into_iter()
                    .map(|h| (h.key, h.value))
                    .collect(),
            });
        }
        resume = header.next_offset();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use runnel_proto::batch::{BatchBuilder, set_base_offset};

    use super::*;

    fn batch(base: i64, values: &[&str]) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for (i, v) in values.iter().enumerate() {
            b.push(100 + i as i64, Some(b"k"), Some(v.as_bytes()), &[]);
        }
        let mut bytes = b.build().unwrap().to_vec();
        set_base_offset(&mut bytes, base);
        bytes
    }

    fn values(records: &[ConsumerRecord]) -> Vec<(i64, String)> {
        records
            .iter()
            .map(|r| {
                (
                    r.offset,
                    String::from_utf8_lossy(r.value.as_deref().unwrap()).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn skips_records_before_the_fetch_offset() {
        let data = Bytes::from([batch(10, &["a", "b", "c"]), batch(13, &["d", "e"])].concat());
        let mut out = Vec::new();
        decode(&"t".into(), 0, 12, &data, &mut out).unwrap();
        assert_eq!(next_position("t", 0, &data).unwrap(), Some(15));
        assert_eq!(
            values(&out),
            [(12, "c".into()), (13, "d".into()), (14, "e".into())]
        );
        assert_eq!(out[0].timestamp, 102);
        assert_eq!(out[0].key.as_deref(), Some(&b"k"[..]));
    }

    #[test]
    fn skips_whole_batches_and_ignores_a_cut_tail() {
        let second = batch(3, &["d"]);
        let data = Bytes::from(
            [
                batch(0, &["a", "b", "c"]),
                second.clone(),
                second[..20].to_vec(),
            ]
            .concat(),
        );
        let mut out = Vec::new();
        decode(&"t".into(), 0, 3, &data, &mut out).unwrap();
        assert_eq!(next_position("t", 0, &data).unwrap(), Some(4));
        assert_eq!(values(&out), [(3, "d".into())]);
    }

    #[test]
    fn a_bad_batch_keeps_the_records_before_it() {
        let mut bad = batch(3, &["x", "y"]);
        bad[57..61].copy_from_slice(&3i32.to_be_bytes()); // claims 3 records, has 2
        let data = Bytes::from([batch(0, &["a", "b", "c"]), bad, batch(5, &["z"])].concat());
        let mut out = Vec::new();
        let (err, resume) = decode(&"t".into(), 0, 1, &data, &mut out).unwrap_err();
        assert!(matches!(err, Error::Codec { .. }), "{err}");
        assert_eq!(resume, 3, "resume at the bad batch");
        assert_eq!(values(&out), [(1, "b".into()), (2, "c".into())]);
    }

    #[test]
    fn values_are_slices_of_the_response() {
        let data = Bytes::from(batch(0, &["hello"]));
        let mut out = Vec::new();
        decode(&"t".into(), 0, 0, &data, &mut out).unwrap();
        let value = out[0].value.as_ref().unwrap();
        let range = data.as_ptr_range();
        assert!(range.contains(&value.as_ptr()), "zero-copy slice");
    }

    #[test]
    fn garbage_is_a_codec_error_and_empty_is_nothing() {
        let mut out = Vec::new();
        decode(&"t".into(), 0, 0, &Bytes::new(), &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(next_position("t", 0, &[]).unwrap(), None);
        let garbage = Bytes::from_static(&[0; 70]);
        let (err, resume) = decode(&"t".into(), 5, 0, &garbage, &mut out).unwrap_err();
        assert!(matches!(err, Error::Codec { partition: 5, .. }), "{err}");
        assert_eq!(resume, 0);
        let err = next_position("t", 5, &garbage).unwrap_err();
        assert!(matches!(err, Error::Codec { partition: 5, .. }), "{err}");
    }
}
