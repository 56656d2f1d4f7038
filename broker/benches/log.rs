//! Partition log hot paths: appending 64 KiB batches of 1 KiB records into a
//! log in a temp dir (lands in the page cache; default flush policy, no
//! fsync) and reading them back sequentially in 1 MiB fetches.
//!
//! `cargo bench -p runnel-broker --bench log -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use runnel_broker::log::{Log, LogConfig, TopicPartition};
use runnel_proto::batch::BatchBuilder;

/// A 64 KiB batch: 64 records with 1 KiB values (plus keys and framing).
fn batch() -> Vec<u8> {
    let value = vec![0x5a; 1024];
    let mut b = BatchBuilder::with_capacity(70 * 1024);
    for i in 0..64i64 {
        let key = format!("key-{i}");
        b.push(
            1_700_000_000_000 + i,
            Some(key.as_bytes()),
            Some(&value),
            &[],
        );
    }
    b.build().expect("records").to_vec()
}

fn open(dir: &std::path::Path, config: LogConfig) -> Log {
    Log::open(
        dir.join("bench-0"),
        TopicPartition::new("bench", 0),
        config,
        false,
    )
    .expect("open log")
}

/// Append `iters` batches, timing only the appends. Every `reset_bytes` the
/// log is emptied (untimed) so the temp dir stays small and, with no roll
/// in between, the dirty data stays below the kernel's writeback
/// thresholds: what is measured is the append path into the page cache.
fn timed_appends(log: &Log, batch: &[u8], iters: u64, reset_bytes: u64) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..iters {
        if log.size_bytes() >= reset_bytes {
            log.truncate_fully_and_start_at(log.log_end_offset())
                .expect("reset");
        }
        let start = Instant::now();
        black_box(log.append(batch, 0, 1_700_000_000_000).expect("append"));
        spent += start.elapsed();
    }
    spent
}

fn append(c: &mut Criterion) {
    let batch = batch();
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(batch.len() as u64));

    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    group.bench_function("append_64KiB_batch", |b| {
        b.iter_custom(|iters| timed_appends(&log, &batch, iters, 256 << 20))
    });

    // The same with 64 MiB segments: rolls (index trimming, new files, the
    // sealed segment's background fsync) are on the measured path.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 64 << 20,
            ..LogConfig::default()
        },
    );
    group.bench_function("append_64KiB_batch_rolling_64MiB_segments", |b| {
        b.iter_custom(|iters| timed_appends(&log, &batch, iters, 1 << 30))
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let batch = batch();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    // 256 MiB of data, read in 1 MiB fetches from start to end, then again.
    while log.size_bytes() < 256 << 20 {
        log.append(&batch, 0, 1_700_000_000_000).expect("append");
    }
    let end = log.log_end_offset();
    let fetch = 1 << 20;
    let per_read = log.read(0, fetch, end).expect("read").records.len();
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(per_read as u64));
    let mut offset = 0;
    group.bench_function("read_1MiB_sequential", |b| {
        b.iter(|| {
            if offset >= end {
                offset = 0;
            }
            let read = log.read(offset, fetch, end).expect("read");
            offset += (read.records.len() / batch.len()) as i64 * 64;
            black_box(read)
        })
    });
    group.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
