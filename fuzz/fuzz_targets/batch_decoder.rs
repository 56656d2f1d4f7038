//! Feed arbitrary bytes to every decoding entry point of
//! `runnel_proto::batch`. None may panic, whatever the input.
//!
//! Beyond "no panic" it checks a few invariants that hold for any input:
//! - `batches` yields at most one error, and only as its last item; the Ok
//!   slices tile the start of the buffer exactly;
//! - `validate_batch` never accepts what framing rejects, and a batch it
//!   accepts (of a codec this build reads) decodes to exactly its
//!   `recordsCount` records;
//! - whatever `records` decodes re-encodes with `BatchBuilder` into a batch
//!   that validates and decodes to the same keys, values, headers and
//!   timestamps (a differential check of decoder against encoder).
//!
//! CRCs of random bytes almost never match, so the record decoder is reached
//! through `records`, which does not check the CRC; and the input is also
//! wrapped as the records section of an uncompressed batch with a correct
//! CRC, so `validate_batch`'s record walk sees arbitrary records. It must
//! accept exactly the sections that `records` decodes to the claimed count
//! with offset deltas 0, 1, 2, ...

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use runnel_proto::batch::{
    BATCH_HEADER_LEN, BatchBuilder, BatchHeader, Record, batches, records, restamped_header,
    validate_batch, verify_crc,
};

fuzz_target!(|data: &[u8]| {
    let _ = BatchHeader::parse(data);
    let whole = validate_batch(data);
    let _ = verify_crc(data);
    if let Ok(h) = &whole {
        assert_eq!(h.total_size(), data.len());
        let decoded = records(&Bytes::copy_from_slice(data))
            .expect("a validated batch has records")
            .map(|r| r.expect("a validated batch's records decode"))
            .count();
        assert_eq!(decoded, h.records_count as usize);
    }

    // Walk the buffer as a log.
    let mut walk = batches(data);
    let mut end = 0;
    let mut errored = false;
    while let Some(item) = walk.next() {
        assert!(!errored, "batches() yielded an item after an error");
        match item {
            Ok((h, slice)) => {
                assert_eq!(slice.as_ptr(), data[end..].as_ptr());
                assert_eq!(slice.len(), h.total_size());
                assert!(slice.len() >= BATCH_HEADER_LEN);
                end += slice.len();
                let _ = (h.last_offset(), h.next_offset(), h.compression());
                let _ = (h.timestamp_type(), h.is_control(), h.is_transactional());
                let _ = validate_batch(slice);
                let restamped = restamped_header(slice, 1, 2);
                assert_eq!(&restamped[16..], &slice[16..BATCH_HEADER_LEN]);
                decode(&Bytes::copy_from_slice(slice));
            }
            Err(_) => errored = true,
        }
        assert_eq!(walk.position(), end);
    }
    // A single valid batch is also the first and only item of the walk.
    if whole.is_ok() {
        assert_eq!(end, data.len());
    }

    // The buffer as one batch, even if framing is off.
    decode(&Bytes::copy_from_slice(data));

    // The buffer as a records section under a valid header and CRC.
    if let Some((&count, section)) = data.split_first() {
        walk_agrees_with_decoder(i32::from(count % 16) + 1, section);
    }
});

/// `validate_batch` accepts `section` as `count` records exactly when the
/// decoder reads `count` records from it with dense offset deltas.
fn walk_agrees_with_decoder(count: i32, section: &[u8]) {
    let header = BatchHeader {
        base_offset: 0,
        batch_length: (BATCH_HEADER_LEN - 12 + section.len()) as i32,
        partition_leader_epoch: -1,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: count - 1,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count: count,
    };
    let mut batch = [&header.to_bytes()[..], section].concat();
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    let accepted = validate_batch(&batch).is_ok();
    let decoded: Result<Vec<Record>, _> = records(&Bytes::from(batch))
        .expect("framing and header are valid")
        .collect();
    let dense = decoded.as_ref().is_ok_and(|recs| {
        recs.len() == count as usize && recs.iter().enumerate().all(|(i, r)| r.offset == i as i64)
    });
    assert_eq!(accepted, dense, "validate_batch and records disagree");
}

fn decode(batch: &Bytes) {
    let Ok(iter) = records(batch) else { return };
    let header = *iter.header();
    let mut decoded: Vec<Record> = Vec::new();
    let mut errors = 0;
    for item in iter {
        match item {
            Ok(r) => decoded.push(r),
            Err(_) => errors += 1,
        }
    }
    assert!(errors <= 1);
    if errors > 0 || decoded.is_empty() || decoded.len() != header.records_count as usize {
        return;
    }

    // Differential check: rebuild the batch from what was decoded.
    let mut b = BatchBuilder::new();
    for r in &decoded {
        let headers: Vec<(&str, Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_deref()))
            .collect();
        b.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers);
    }
    let rebuilt = b.build().expect("at least one record");
    validate_batch(&rebuilt).expect("a rebuilt batch validates");
    let again: Vec<Record> = records(&rebuilt)
        .expect("a rebuilt batch decodes")
        .collect::<Result<_, _>>()
        .expect("rebuilt records decode");
    assert_eq!(again.len(), decoded.len());
    for (a, b) in again.iter().zip(&decoded) {
        assert_eq!(a.timestamp, b.timestamp);
        assert_eq!(a.key, b.key);
        assert_eq!(a.value, b.value);
        assert_eq!(a.headers, b.headers);
    }
}
