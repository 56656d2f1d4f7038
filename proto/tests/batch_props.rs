//! Property tests for the RecordBatch v2 codec: whatever the builder makes,
//! `validate_batch` accepts and `records` gives back exactly; concatenations
//! walk correctly; corruption after the CRC field never goes unnoticed; and
//! no input makes the decoders panic.

use bytes::Bytes;
use proptest::prelude::*;
use runnel_proto::Error;
use runnel_proto::batch::{
    BATCH_HEADER_LEN, BatchBuilder, BatchHeader, LOG_OVERHEAD, NO_PARTITION_LEADER_EPOCH,
    RecordHeader, batches, records, restamped_header, set_base_offset, set_partition_leader_epoch,
    validate_batch, verify_crc,
};

/// A record as pushed into the builder.
#[derive(Debug, Clone)]
struct Input {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Byte fields: null, empty and short values all show up often.
fn field() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        4 => proptest::collection::vec(any::<u8>(), 1..200).prop_map(Some),
    ]
}

fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        // Realistic epoch milliseconds, close together.
        4 => 1_600_000_000_000i64..1_600_000_100_000,
        // Anything at all, including i64::MIN/MAX, so deltas wrap.
        1 => any::<i64>(),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    let header = (
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
        field(),
    );
    (
        timestamp(),
        field(),
        field(),
        proptest::collection::vec(header, 0..4),
    )
        .prop_map(|(timestamp, key, value, headers)| Input {
            timestamp,
            key,
            value,
            headers,
        })
}

#[derive(Debug, Clone)]
struct BatchSpec {
    producer: Option<(i64, i16, i32)>,
    records: Vec<Input>,
}

fn batch_spec() -> impl Strategy<Value = BatchSpec> {
    let producer = proptest::option::of((0i64..i64::MAX, 0i16..i16::MAX, 0i32..i32::MAX));
    (producer, proptest::collection::vec(input(), 1..24))
        .prop_map(|(producer, records)| BatchSpec { producer, records })
}

fn build(spec: &BatchSpec) -> Bytes {
    let mut b = BatchBuilder::new();
    if let Some((id, epoch, seq)) = spec.producer {
        b = b.producer(id, epoch, seq);
    }
    for r in &spec.records {
        let headers: Vec<(&str, Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let predicted =
            b.size() + b.record_size(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers);
        b.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers);
        assert_eq!(b.size(), predicted);
    }
    let size = b.size();
    let batch = b.build().expect("at least one record");
    assert_eq!(batch.len(), size);
    batch
}

/// Decode every record of a batch and compare it with what was pushed.
fn assert_round_trip(
    batch: &Bytes,
    spec: &BatchSpec,
    base_offset: i64,
) -> Result<(), TestCaseError> {
    let decoded: Vec<_> = records(batch)
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .collect::<Result<_, Error>>()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(decoded.len(), spec.records.len());
    for (i, (got, want)) in decoded.iter().zip(&spec.records).enumerate() {
        prop_assert_eq!(got.offset, base_offset + i as i64);
        prop_assert_eq!(got.timestamp, want.timestamp);
        prop_assert_eq!(got.key.as_deref(), want.key.as_deref());
        prop_assert_eq!(got.value.as_deref(), want.value.as_deref());
        let want_headers: Vec<RecordHeader> = want
            .headers
            .iter()
            .map(|(k, v)| RecordHeader {
                key: k.clone(),
                value: v.clone().map(Bytes::from),
            })
            .collect();
        prop_assert_eq!(&got.headers, &want_headers);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn built_batches_validate_and_round_trip(spec in batch_spec()) {
        let batch = build(&spec);
        let h = validate_batch(&batch).unwrap();
        let n = spec.records.len() as i32;
        prop_assert_eq!(h.records_count, n);
        prop_assert_eq!(h.last_offset_delta, n - 1);
        prop_assert_eq!(h.base_offset, 0);
        prop_assert_eq!(h.partition_leader_epoch, NO_PARTITION_LEADER_EPOCH);
        prop_assert_eq!(h.total_size(), batch.len());
        prop_assert_eq!(h.base_timestamp, spec.records[0].timestamp);
        prop_assert_eq!(h.max_timestamp, spec.records.iter().map(|r| r.timestamp).max().unwrap());
        match spec.producer {
            Some((id, epoch, seq)) => {
                prop_assert!(h.has_producer_id());
                prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (id, epoch, seq));
            }
            None => prop_assert!(!h.has_producer_id()),
        }
        prop_assert_eq!(verify_crc(&batch), Ok(()));
        prop_assert_eq!(*records(&batch).unwrap().header(), h);
        assert_round_trip(&batch, &spec, 0)?;
    }

    #[test]
    fn restamping_keeps_batches_valid(
        spec in batch_spec(),
        base_offset in 0i64..i64::MAX / 2,
        epoch in any::<i32>(),
    ) {
        let batch = build(&spec);
        // Vectored-write style: new header + untouched body.
        let header = restamped_header(&batch, base_offset, epoch);
        let joined = Bytes::from([&header[..], &batch[BATCH_HEADER_LEN..]].concat());
        let h = validate_batch(&joined).unwrap();
        prop_assert_eq!((h.base_offset, h.partition_leader_epoch), (base_offset, epoch));
        prop_assert_eq!(h.next_offset(), base_offset + spec.records.len() as i64);
        assert_round_trip(&joined, &spec, base_offset)?;
        // In place gives the same bytes.
        let mut in_place = batch.to_vec();
        set_base_offset(&mut in_place, base_offset);
        set_partition_leader_epoch(&mut in_place, epoch);
        prop_assert_eq!(&in_place[..], &joined[..]);
    }

    #[test]
    fn concatenated_batches_walk_in_order(specs in proptest::collection::vec(batch_spec(), 1..6)) {
        // Lay the batches out as a leader would: consecutive offsets.
        let mut log = Vec::new();
        let mut next_offset = 0i64;
        let mut sizes = Vec::new();
        for spec in &specs {
            let mut batch = build(spec).to_vec();
            set_base_offset(&mut batch, next_offset);
            next_offset += spec.records.len() as i64;
            sizes.push(batch.len());
            log.extend_from_slice(&batch);
        }
        let mut it = batches(&log);
        let mut expected_offset = 0i64;
        let mut at = 0;
        for (spec, size) in specs.iter().zip(&sizes) {
            let (h, slice) = it.next().expect("a batch").unwrap();
            prop_assert_eq!(slice.len(), *size);
            prop_assert_eq!(slice, &log[at..at + size]);
            prop_assert_eq!(h.base_offset, expected_offset);
            prop_assert_eq!(validate_batch(slice).unwrap(), h);
            assert_round_trip(&Bytes::copy_from_slice(slice), spec, expected_offset)?;
            expected_offset = h.next_offset();
            at += size;
            prop_assert_eq!(it.position(), at);
        }
        prop_assert!(it.next().is_none());
    }

    #[test]
    fn a_cut_log_yields_the_whole_batches_then_truncated_once(
        specs in proptest::collection::vec(batch_spec(), 1..4),
        cut_frac in 0.0f64..1.0,
    ) {
        let parts: Vec<Bytes> = specs.iter().map(build).collect();
        let log = parts.concat();
        let cut = ((log.len() as f64) * cut_frac) as usize; // < log.len()
        let mut it = batches(&log[..cut]);
        let mut start = 0;
        for part in &parts {
            if start + part.len() > cut {
                // This is the batch the cut falls in (possibly at its start).
                if cut > start {
                    let available = cut - start;
                    let needed = if available < LOG_OVERHEAD { LOG_OVERHEAD } else { part.len() };
                    prop_assert_eq!(it.next(), Some(Err(Error::Truncated { needed, available })));
                }
                break;
            }
            let (_, slice) = it.next().unwrap().unwrap();
            prop_assert_eq!(slice, &part[..]);
            start += part.len();
        }
        prop_assert_eq!(it.next(), None);
        prop_assert_eq!(it.position(), start);
    }

    #[test]
    fn corrupting_one_byte_after_the_crc_field_is_detected(
        spec in batch_spec(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut batch = build(&spec).to_vec();
        let at = 21 + at.index(batch.len() - 21);
        batch[at] ^= xor;
        let detected = matches!(validate_batch(&batch), Err(Error::CrcMismatch { .. }));
        prop_assert!(detected, "byte {} ^ {:#x} not detected", at, xor);
    }

    #[test]
    fn corrupting_a_burst_of_up_to_32_bits_is_detected(
        spec in batch_spec(),
        at in any::<prop::sample::Index>(),
        burst in any::<u32>().prop_filter("non-zero", |b| *b != 0),
    ) {
        // CRC-32C detects every error burst of at most 32 bits, so this is
        // a guarantee, not a probability.
        let mut batch = build(&spec).to_vec();
        let at = 21 + at.index(batch.len() - 21 - 3);
        for (i, b) in burst.to_be_bytes().iter().enumerate() {
            batch[at + i] ^= b;
        }
        let detected = matches!(validate_batch(&batch), Err(Error::CrcMismatch { .. }));
        prop_assert!(detected, "burst {:#x} at {} not detected", burst, at);
    }

    #[test]
    fn decoders_never_panic_on_a_corrupted_batch(
        spec in batch_spec(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut batch = build(&spec).to_vec();
        for (at, byte) in &edits {
            let i = at.index(batch.len());
            batch[i] = *byte;
        }
        // Exercise the whole surface; only the absence of panics matters.
        let _ = validate_batch(&batch);
        let _ = verify_crc(&batch);
        let _ = BatchHeader::parse(&batch);
        for (h, _) in batches(&batch).flatten() {
            let _ = (h.total_size(), h.last_offset(), h.next_offset(), h.compression());
        }
        let bytes = Bytes::from(batch);
        if let Ok(iter) = records(&bytes) {
            let hint = iter.size_hint().1.unwrap();
            prop_assert!(iter.count() <= hint);
        }
        let short = bytes.slice(..cut.index(bytes.len()));
        prop_assert!(validate_batch(&short).is_err());
        prop_assert!(records(&short).is_err());
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        records_count in any::<i32>(),
    ) {
        // Give the random bytes a plausible header so the record decoder,
        // not the framing, is what gets exercised.
        let header = BatchHeader {
            base_offset: 0,
            batch_length: (49 + bytes.len()) as i32,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records_count.wrapping_sub(1),
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count,
        };
        let batch = Bytes::from([&header.to_bytes()[..], &bytes[..]].concat());
        if let Ok(iter) = records(&batch) {
            let mut errors = 0;
            for item in iter {
                if item.is_err() {
                    errors += 1;
                }
            }
            prop_assert!(errors <= 1);
        }
        let _ = validate_batch(&batch);
        let _ = batches(&bytes).count();
    }
}
