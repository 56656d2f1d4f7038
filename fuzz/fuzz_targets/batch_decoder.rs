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
//! through `records`, which does not check the CRC.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use runnel_proto::batch::{
    BATCH_HEADER_LEN, BatchBuilder, BatchHeader, Compression, Record, batches, records,
    restamped_header, validate_batch, verify_crc,
};

fuzz_target!(|data: &[u8]| {
    let _ = BatchHeader::parse(data);
    let whole = validate_batch(data);
    let _ = verify_crc(data);
    if let Ok(h) = &whole {
        assert_eq!(h.total_size(), data.len());
        if !matches!(h.compression(), Ok(Compression::Gzip | Compression::Snappy)) {
            let decoded = records(&Bytes::copy_from_slice(data))
                .expect("a validated batch has records")
                .map(|r| r.expect("a validated batch's records decode"))
                .count();
            assert_eq!(decoded, h.records_count as usize);
        }
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
});

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
