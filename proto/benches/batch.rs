//! Hot paths of the RecordBatch v2 codec, on a 64 KiB batch of 1 KiB
//! records (64 records; the batch is 64 KiB of values plus framing).
//!
//! - `build`: a producer encoding the batch (`BatchBuilder`, sized up front).
//! - `validate`: the broker's per-produce check (one CRC-32C pass, then a
//!   walk over the record boundaries).
//! - `crc32c_raw`: the CRC alone, the floor `validate` can reach.
//! - `batch_64k_100B/validate` and `crc32c_raw`: the same on 100-byte
//!   records (560 of them), where the per-record walk costs the most.
//! - `restamp`: the header copy the broker writes before the body.
//! - `records`: a consumer decoding all records (zero-copy key/value).
//! - `walk_16`: framing 16 concatenated batches (1 MiB) without CRC checks.
//!
//! Run: `cargo bench -p runnel-proto --bench batch`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use runnel_proto::batch::{BatchBuilder, batches, records, restamped_header, validate_batch};

const RECORD_VALUE: usize = 1024;
const RECORDS: usize = 64;

fn build(records: usize, value_len: usize) -> Bytes {
    let value = vec![0xa5u8; value_len];
    let mut b = BatchBuilder::with_capacity(records * (value_len + 32) + 64);
    for i in 0..records {
        let key = (i as u64).to_be_bytes();
        b.push(1_700_000_000_000 + i as i64, Some(&key), Some(&value), &[]);
    }
    b.build().expect("non-empty")
}

fn bench(c: &mut Criterion) {
    let batch = build(RECORDS, RECORD_VALUE);
    let mut g = c.benchmark_group("batch_64k");
    g.throughput(Throughput::Bytes(batch.len() as u64));

    let value = vec![0xa5u8; RECORD_VALUE];
    g.bench_function("build", |b| {
        b.iter(|| {
            let mut builder = BatchBuilder::with_capacity(batch.len());
            for i in 0..RECORDS {
                let key = (i as u64).to_be_bytes();
                builder.push(1_700_000_000_000 + i as i64, Some(&key), Some(&value), &[]);
            }
            black_box(builder.build())
        })
    });
    g.bench_function("validate", |b| {
        b.iter(|| validate_batch(black_box(&batch)).unwrap())
    });
    g.bench_function("crc32c_raw", |b| {
        b.iter(|| crc32c::crc32c(black_box(&batch[21..])))
    });
    g.bench_function("records", |b| {
        b.iter(|| {
            let mut n = 0;
            for r in records(black_box(&batch)).unwrap() {
                n += r.unwrap().value.map_or(0, |v| v.len());
            }
            n
        })
    });
    g.finish();

    let small = build(560, 100);
    let mut g = c.benchmark_group("batch_64k_100B");
    g.throughput(Throughput::Bytes(small.len() as u64));
    g.bench_function("validate", |b| {
        b.iter(|| validate_batch(black_box(&small)).unwrap())
    });
    g.bench_function("crc32c_raw", |b| {
        b.iter(|| crc32c::crc32c(black_box(&small[21..])))
    });
    g.finish();

    let mut g = c.benchmark_group("batch_header");
    g.bench_function("restamp", |b| {
        b.iter(|| restamped_header(black_box(&batch), 42, 7))
    });
    g.finish();

    let log: Vec<u8> = (0..16).flat_map(|_| batch.iter().copied()).collect();
    let mut g = c.benchmark_group("log_1m");
    g.throughput(Throughput::Bytes(log.len() as u64));
    g.bench_function("walk_16", |b| b.iter(|| batches(black_box(&log)).count()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
