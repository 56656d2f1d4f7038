//! Property tests of the partition log against a model: random appends
//! (random batch counts, record counts, value sizes) into small segments so
//! that there are many rolls, mixed with clean and unclean reopens,
//! truncations and size retention; after every step the whole log is read
//! back the way a consumer does and compared with the model.

use std::path::Path;

use proptest::prelude::*;
use runnel_broker::log::{Log, LogConfig, TopicPartition};
use runnel_proto::batch::{BatchBuilder, batches, records};

#[derive(Debug, Clone)]
enum Op {
    /// One append of these batches; each batch is a list of value lengths.
    Append(Vec<Vec<usize>>),
    /// Close, drop and open again (`clean`), or drop without closing and
    /// open with recovery.
    Reopen { clean: bool },
    /// `truncate_to` at this fraction of the way from start to end.
    Truncate(f64),
    /// Apply `retention.bytes` = this fraction of the current size.
    RetainBytes(f64),
}

fn op() -> impl Strategy<Value = Op> {
    let batch = prop::collection::vec(0usize..300, 1..6);
    prop_oneof![
        8 => prop::collection::vec(batch, 1..4).prop_map(Op::Append),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => (0.0..1.0f64).prop_map(Op::Truncate),
        1 => (0.3..1.0f64).prop_map(Op::RetainBytes),
    ]
}

fn config() -> impl Strategy<Value = LogConfig> {
    (200u64..3000, 0usize..600, 2usize..40).prop_map(
        |(segment_bytes, index_interval_bytes, entries)| LogConfig {
            segment_bytes,
            index_interval_bytes,
            segment_index_bytes: entries * 12,
            ..LogConfig::default()
        },
    )
}

/// A stored batch as the model sees it.
#[derive(Debug, Clone)]
struct ModelBatch {
    base: i64,
    values: Vec<Vec<u8>>,
}

impl ModelBatch {
    fn last(&self) -> i64 {
        self.base + self.values.len() as i64 - 1
    }
}

fn open(dir: &Path, config: &LogConfig, recover: bool) -> Log {
    Log::open(
        dir.join("p-0"),
        TopicPartition::new("p", 0),
        config.clone(),
        recover,
    )
    .unwrap()
}

/// Read `[log start, log end)` in chunks of `max_bytes`, as a consumer
/// does, and return every record as (offset, value).
fn consume(log: &Log, max_bytes: usize) -> Vec<(i64, Vec<u8>)> {
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut out = Vec::new();
    while offset < end {
        let read = log.read(offset, max_bytes, end).unwrap();
        assert!(!read.records.is_empty(), "stuck at {offset}");
        for item in batches(&read.records) {
            let (_, raw) = item.unwrap();
            runnel_proto::batch::verify_crc(raw).unwrap();
            for rec in records(&read.records.slice_ref(raw)).unwrap() {
                let rec = rec.unwrap();
                if rec.offset >= offset {
                    out.push((rec.offset, rec.value.unwrap().to_vec()));
                }
            }
        }
        offset = out.last().map_or(offset, |r| r.0 + 1);
    }
    out
}

fn check(log: &Log, model: &[ModelBatch], start: i64, max_bytes: usize) {
    let expected: Vec<(i64, Vec<u8>)> = model
        .iter()
        .flat_map(|b| {
            b.values
                .iter()
                .enumerate()
                .map(|(i, v)| (b.base + i as i64, v.clone()))
        })
        .collect();
    let end = model.last().map_or(start, |b| b.last() + 1);
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.log_end_offset(), end);
    let got = consume(log, max_bytes);
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
    // Every offset can be looked up directly too.
    for b in model.iter().step_by(3) {
        let read = log.read(b.last(), 1, i64::MAX).unwrap();
        let first = batches(&read.records).next().unwrap().unwrap().0;
        assert_eq!((first.base_offset, first.last_offset()), (b.base, b.last()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(config in config(), ops in prop::collection::vec(op(), 1..40), max_bytes in 1usize..4000) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), &config, false);
        let mut model: Vec<ModelBatch> = Vec::new();
        let mut start = 0i64;
        let mut counter = 0u32;
        for op in ops {
            match op {
                Op::Append(spec) => {
                    let mut input = Vec::new();
                    let mut next = log.log_end_offset();
                    for lens in spec {
                        let mut b = BatchBuilder::new();
                        let mut values = Vec::new();
                        for len in lens {
                            counter += 1;
                            let value: Vec<u8> = counter.to_be_bytes().iter().copied().cycle().take(len).collect();
                            b.push(1_000 + i64::from(counter), None, Some(&value), &[]);
                            values.push(value);
                        }
                        input.extend_from_slice(&b.build().unwrap());
                        let batch = ModelBatch { base: next, values };
                        next = batch.last() + 1;
                        model.push(batch);
                    }
                    log.append(&input, 1, 0).unwrap();
                }
                Op::Reopen { clean } => {
                    if clean {
                        log.close().unwrap();
                    }
                    drop(log);
                    log = open(dir.path(), &config, !clean);
                }
                Op::Truncate(frac) => {
                    let (lso, leo) = (log.log_start_offset(), log.log_end_offset());
                    let target = lso + ((leo - lso) as f64 * frac) as i64;
                    log.truncate_to(target).unwrap();
                    model.retain(|b| b.last() < target);
                }
                Op::RetainBytes(frac) => {
                    let mut c = config.clone();
                    c.retention_bytes = (log.size_bytes() as f64 * frac) as i64;
                    log.set_config(c);
                    log.delete_old_segments(0).unwrap();
                    log.set_config(config.clone());
                    let lso = log.log_start_offset();
                    prop_assert!(model.iter().any(|b| b.base == lso) || model.last().is_none_or(|b| b.last() < lso));
                    model.retain(|b| b.base >= lso);
                    start = lso;
                }
            }
            if model.is_empty() {
                // An emptied log restarts wherever its end is.
                start = log.log_start_offset();
            }
            check(&log, &model, start, max_bytes);
        }
        // One more unclean and one clean restart keep everything.
        drop(log);
        let log = open(dir.path(), &config, true);
        check(&log, &model, start, max_bytes);
        log.close().unwrap();
        drop(log);
        let log = open(dir.path(), &config, false);
        check(&log, &model, start, max_bytes);
    }
}
