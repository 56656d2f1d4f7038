//! Unit tests of [`Log`](super::Log).

use std::path::Path;

use runnel_proto::batch::{BatchHeader, batches};

use super::*;
use crate::log::segment::SegmentPaths;
use crate::log::test_util::{batch_at, batch_offsets, decode, value_for};

const TS: i64 = 1_700_000_000_000;

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig, recover: bool) -> Log {
    Log::open(dir.join("t-0"), tp(), config, recover).unwrap()
}

fn paths(dir: &Path, base: i64) -> SegmentPaths {
    SegmentPaths::new(&dir.join("t-0"), base)
}

/// Append `n` batches of `records` records with values of `len` bytes, one
/// append each, batch `i` timestamped `TS + 1000 * i`.
fn fill(log: &Log, n: usize, records: usize, len: usize) {
    for i in 0..n {
        let first = log.log_end_offset();
        let info = log
            .append(&batch_at(TS + 1000 * i as i64, records, len), 7, TS)
            .unwrap();
        assert_eq!(info.first_offset, first);
        assert_eq!(info.last_offset, first + records as i64 - 1);
    }
}

fn read_all(log: &Log) -> Vec<(i64, i64, Vec<u8>)> {
    let read = log
        .read(log.log_start_offset(), usize::MAX, i64::MAX)
        .unwrap();
    decode(&read.records)
}

/// Offsets dense from `from` to the log end.
fn assert_dense(log: &Log, from: i64) {
    let offsets: Vec<i64> = read_all(log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, (from..log.log_end_offset()).collect::<Vec<_>>());
}

fn is_out_of_range(r: Result<LogReadInfo>) -> bool {
    matches!(r, Err(Error::OffsetOutOfRange { .. }))
}

#[test]
fn append_stamps_offsets_and_epoch_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), false);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    let two = [batch_at(TS, 3, 20), batch_at(TS + 5, 2, 20)].concat();
    let info = log.append(&two, 42, TS).unwrap();
    assert_eq!(
        info,
        LogAppendInfo {
            first_offset: 0,
            last_offset: 4,
            records: 5,
            bytes: two.len(),
            max_timestamp: TS + 6,
            log_append_time_ms: -1,
            flush: None,
        }
    );
    log.append(&batch_at(TS + 9, 1, 20), 43, TS).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(
        log.size_bytes(),
        (two.len() + batch_at(TS + 9, 1, 20).len()) as u64
    );

    let read = log.read(0, usize::MAX, i64::MAX).unwrap();
    assert_eq!((read.log_start_offset, read.log_end_offset), (0, 6));
    let headers: Vec<BatchHeader> = batches(&read.records).map(|b| b.unwrap().0).collect();
    let stamped: Vec<_> = headers
        .iter()
        .map(|h| (h.base_offset, h.partition_leader_epoch))
        .collect();
    assert_eq!(stamped, vec![(0, 42), (3, 42), (5, 43)]);
    let records = decode(&read.records);
    assert_eq!(
        records.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    assert_eq!(records[4], (4, TS + 6, value_for(TS + 5, 1, 20)));
}

#[test]
fn rolls_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(), false);
    let batch = batch_at(TS, 5, 100); // ~ 600 bytes
    for _ in 0..20 {
        log.append(&batch, 0, TS).unwrap();
    }
    let per_segment = 4096 / batch.len();
    let bases = log.segment_base_offsets();
    assert_eq!(bases.len(), 20_usize.div_ceil(per_segment));
    for (i, base) in bases.iter().enumerate() {
        assert_eq!(*base, (i * per_segment * 5) as i64);
        let log_file = paths(dir.path(), *base).log;
        assert!(std::fs::metadata(&log_file).unwrap().len() <= 4096);
    }
    // Sealed segments have trimmed indexes; the active one is preallocated.
    let sealed = paths(dir.path(), bases[0]);
    assert_eq!(std::fs::metadata(&sealed.index).unwrap().len() % 8, 0);
    assert!(std::fs::metadata(&sealed.index).unwrap().len() < 4096);
    assert_eq!(
        std::fs::metadata(paths(dir.path(), *bases.last().unwrap()).index)
            .unwrap()
            .len(),
        4096
    );
    assert_dense(&log, 0);
}

#[test]
fn a_batch_larger_than_segment_bytes_still_goes_in() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 100,
            ..small()
        },
        false,
    );
    for _ in 0..3 {
        log.append(&batch_at(TS, 2, 200), 0, TS).unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 4]);
    assert_dense(&log, 0);
}

#[test]
fn rolls_by_time_of_first_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_ms: 1000,
            ..LogConfig::default()
        },
        false,
    );
    log.append(&batch_at(TS, 1, 10), 0, 5_000).unwrap();
    log.append(&batch_at(TS, 1, 10), 0, 5_600).unwrap();
    log.append(&batch_at(TS, 1, 10), 0, 6_000).unwrap();
    assert_eq!(
        log.num_segments(),
        1,
        "exactly segment.ms old does not roll"
    );
    log.append(&batch_at(TS, 1, 10), 0, 6_001).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 3]);
    // The new segment's clock starts at its own first append.
    log.append(&batch_at(TS, 1, 10), 0, 7_000).unwrap();
    assert_eq!(log.num_segments(), 2);
    log.append(&batch_at(TS, 1, 10), 0, 7_002).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 3, 5]);
}

#[test]
fn rolls_when_the_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    // 3 offset-index entries, 2 time-index entries (one kept for sealing),
    // and an entry for every batch after the first.
    let config = LogConfig {
        index_interval_bytes: 0,
        segment_index_bytes: 24,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, false);
    for i in 0..9 {
        log.append(&batch_at(TS + i, 1, 10), 0, TS).unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 4, 6, 8]);
    for o in 0..9 {
        assert_eq!(
            batch_offsets(&log.read(o, 1, i64::MAX).unwrap().records),
            vec![(o, o)]
        );
    }
}

#[test]
fn reads_across_segment_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(), false);
    fill(&log, 30, 4, 50); // ~ 370 bytes a batch, 11 per segment
    assert!(log.num_segments() >= 3);
    let bases = log.segment_base_offsets();
    // One read from the middle of the first segment to the end.
    let all = decode(&log.read(5, usize::MAX, i64::MAX).unwrap().records);
    assert_eq!(
        all.first().unwrap().0,
        4,
        "starts with the batch containing 5"
    );
    assert_eq!(
        all.iter().map(|r| r.0).collect::<Vec<_>>(),
        (4..120).collect::<Vec<_>>()
    );
    // Reads starting exactly at, just before and just after a boundary.
    for base in &bases[1..] {
        for o in [base - 1, *base, base + 1] {
            let got = batch_offsets(&log.read(o, 1, i64::MAX).unwrap().records);
            assert_eq!(got.len(), 1);
            assert!(got[0].0 <= o && o <= got[0].1, "offset {o} in {got:?}");
        }
    }
    // Every record's value survived.
    for (offset, ts, value) in read_all(&log) {
        let batch = offset / 4;
        assert_eq!(
            value,
            value_for(TS + 1000 * batch, (offset % 4) as usize, 50)
        );
        assert_eq!(ts, TS + 1000 * batch + offset % 4);
    }
}

#[test]
fn read_limits_max_bytes_and_max_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(), false);
    fill(&log, 20, 2, 100);
    let size = batch_at(TS, 2, 100).len();
    // max_bytes: whole batches only, never more than asked (after the first).
    for n in 1..5 {
        let got = log.read(0, n * size + size / 2, i64::MAX).unwrap();
        assert_eq!(got.records.len(), n * size);
        assert_eq!(batch_offsets(&got.records).len(), n);
    }
    // Also across a segment boundary.
    let total = log.size_bytes() as usize;
    assert_eq!(
        log.read(0, total - 1, i64::MAX).unwrap().records.len(),
        total - size
    );
    // max_offset (the high watermark): only batches entirely below it.
    let got = log.read(0, usize::MAX, 11).unwrap();
    assert_eq!(batch_offsets(&got.records).last(), Some(&(8, 9)));
    let got = log.read(10, usize::MAX, 12).unwrap();
    assert_eq!(batch_offsets(&got.records), vec![(10, 11)]);
    assert!(
        log.read(10, usize::MAX, 11).unwrap().records.is_empty(),
        "HW inside the batch"
    );
    assert!(
        log.read(10, usize::MAX, 10).unwrap().records.is_empty(),
        "at the HW"
    );
    let got = log.read(3, usize::MAX, 30).unwrap();
    assert_eq!(
        batch_offsets(&got.records),
        (1..15).map(|b| (2 * b, 2 * b + 1)).collect::<Vec<_>>()
    );
}

#[test]
fn first_batch_is_whole_even_above_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), false);
    let big = batch_at(TS, 10, 1000);
    log.append(&big, 0, TS).unwrap();
    log.append(&batch_at(TS, 1, 10), 0, TS).unwrap();
    for max_bytes in [0, 1, 100, big.len() - 1, big.len()] {
        let got = log.read(3, max_bytes, i64::MAX).unwrap();
        assert_eq!(got.records.len(), big.len(), "max_bytes {max_bytes}");
        assert_eq!(batch_offsets(&got.records), vec![(0, 9)]);
    }
}

#[test]
fn offsets_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(), false);
    fill(&log, 3, 2, 10);
    assert!(is_out_of_range(log.read(-1, 100, i64::MAX)));
    assert!(is_out_of_range(log.read(7, 100, i64::MAX)));
    let at_end = log.read(6, 100, i64::MAX).unwrap();
    assert!(at_end.records.is_empty());
    assert_eq!(at_end.log_end_offset, 6);
    match log.read(100, 1, i64::MAX) {
        Err(Error::OffsetOutOfRange {
            offset,
            log_start_offset,
            log_end_offset,
            ..
        }) => {
            assert_eq!((offset, log_start_offset, log_end_offset), (100, 0, 6));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejected_appends_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            max_message_bytes: 2000,
            ..LogConfig::default()
        },
        false,
    );
    log.append(&batch_at(TS, 2, 10), 0, TS).unwrap();
    let size_before = log.size_bytes();
    let log_file = paths(dir.path(), 0).log;
    let bytes_before = std::fs::read(&log_file).unwrap();

    let good = batch_at(TS, 3, 30);
    let mut bad_crc = batch_at(TS, 3, 30);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x55;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "bad CRC in the 2nd of 3 batches",
            [good.clone(), bad_crc, good.clone()].concat(),
        ),
        (
            "oversized batch",
            [good.clone(), batch_at(TS, 3, 1000)].concat(),
        ),
        (
            "trailing garbage",
            [good.clone(), good.clone(), vec![1, 2, 3]].concat(),
        ),
        (
            "a cut batch",
            [good.clone(), good[..good.len() - 1].to_vec()].concat(),
        ),
        ("no batches", Vec::new()),
    ];
    for (what, input) in cases {
        let err = log.append(&input, 0, TS).unwrap_err();
        match what {
            "oversized batch" => assert!(
                matches!(err, Error::MessageTooLarge { max: 2000, .. }),
                "{err}"
            ),
            "no batches" => assert!(matches!(err, Error::InvalidRequest(_)), "{err}"),
            "bad CRC in the 2nd of 3 batches" => assert!(
                matches!(err, Error::CorruptBatch { position, source: runnel_proto::Error::CrcMismatch { .. }, .. } if position == good.len()),
                "{err}"
            ),
            _ => assert!(matches!(err, Error::CorruptBatch { .. }), "{what}: {err}"),
        }
        assert_eq!(log.log_end_offset(), 2, "{what}");
        assert_eq!(log.size_bytes(), size_before, "{what}");
        assert_eq!(std::fs::read(&log_file).unwrap(), bytes_before, "{what}");
    }
    // The log is fine afterwards.
    log.append(&good, 0, TS).unwrap();
    assert_dense(&log, 0);
}

/// A log of three batches in one segment; returns (end of the second
/// batch, end of the third, its pristine .log bytes).
fn three_batch_log(dir: &Path) -> (u64, u64, Vec<u8>) {
    let log = open(dir, small(), false);
    log.append(&batch_at(TS, 2, 30), 0, TS).unwrap();
    log.append(&batch_at(TS + 1, 3, 30), 0, TS).unwrap();
    let second_end = log.size_bytes();
    log.append(&batch_at(TS + 2, 4, 30), 0, TS).unwrap();
    let end = log.size_bytes();
    drop(log);
    (second_end, end, std::fs::read(paths(dir, 0).log).unwrap())
}

#[test]
fn torn_tail_at_every_byte_is_cut_on_recovery() {
    let origin = tempfile::tempdir().unwrap();
    let (second_end, end, pristine) = three_batch_log(origin.path());
    for cut in second_end..end {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("t-0")).unwrap();
        std::fs::write(paths(dir.path(), 0).log, &pristine[..cut as usize]).unwrap();
        let log = open(dir.path(), small(), true);
        assert_eq!(log.log_end_offset(), 5, "cut at {cut}");
        assert_eq!(log.size_bytes(), second_end, "cut at {cut}");
        let info = log.append(&batch_at(TS, 2, 5), 0, TS).unwrap();
        assert_eq!(info.first_offset, 5);
        assert_dense(&log, 0);
    }
}

#[test]
fn torn_tail_is_cut_even_without_recovery() {
    // With the marker present but a torn tail anyway (e.g. the disk lied),
    // the framing check of the tail scan still cuts it.
    let origin = tempfile::tempdir().unwrap();
    let (second_end, end, pristine) = three_batch_log(origin.path());
    for cut in [second_end + 1, second_end + 30, end - 1] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("t-0")).unwrap();
        std::fs::write(paths(dir.path(), 0).log, &pristine[..cut as usize]).unwrap();
        let log = open(dir.path(), small(), false);
        assert_eq!(
            (log.log_end_offset(), log.size_bytes()),
            (5, second_end),
            "cut at {cut}"
        );
    }
}

#[test]
fn garbage_and_bad_crc_at_the_tail_are_cut() {
    let origin = tempfile::tempdir().unwrap();
    let (second_end, end, pristine) = three_batch_log(origin.path());
    let mut flipped = pristine.clone();
    flipped[end as usize - 5] ^= 0xff; // inside the third batch's records
    let cases = [
        (
            "zeros after the last batch",
            [pristine.clone(), vec![0; 100]].concat(),
            9,
            end,
        ),
        (
            "random bytes after the last batch",
            [pristine.clone(), (0..200u8).collect()].concat(),
            9,
            end,
        ),
        ("CRC mismatch in the last batch", flipped, 5, second_end),
    ];
    for (what, bytes, leo, size) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("t-0")).unwrap();
        std::fs::write(paths(dir.path(), 0).log, &bytes).unwrap();
        let log = open(dir.path(), small(), true);
        assert_eq!(
            (log.log_end_offset(), log.size_bytes()),
            (leo, size),
            "{what}"
        );
        assert_eq!(
            std::fs::metadata(paths(dir.path(), 0).log).unwrap().len(),
            size,
            "{what}"
        );
        log.append(&batch_at(TS, 1, 5), 0, TS).unwrap();
        assert_dense(&log, 0);
    }
}

/// Bytes of every index file in the partition dir, by name.
fn index_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir.join("t-0"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn damaged_indexes_are_rebuilt_identically() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 200,
        max_message_bytes: 1000,
        segment_index_bytes: 8192,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config.clone(), false);
    for i in 0..150 {
        log.append(&batch_at(TS + 10 * i, 1 + (i as usize % 3), 40), 0, TS)
            .unwrap();
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3, "{bases:?}");
    let expected_records = read_all(&log);
    log.close().unwrap();
    drop(log);
    let pristine = index_files(dir.path());
    let (sealed, active) = (
        paths(dir.path(), bases[1]),
        paths(dir.path(), *bases.last().unwrap()),
    );
    assert!(
        std::fs::metadata(&sealed.index).unwrap().len() >= 32,
        "the test needs a few entries"
    );

    type Damage = Box<dyn Fn()>;
    // Flip bits of the byte `from_end` bytes before the end of the file.
    let xor_end = |path: std::path::PathBuf, from_end: usize, mask: u8| -> Damage {
        Box::new(move || {
            let mut b = std::fs::read(&path).unwrap();
            let at = b.len() - from_end;
            b[at] ^= mask;
            std::fs::write(&path, b).unwrap();
        })
    };
    let write_at = |path: std::path::PathBuf, at: usize, bytes: Vec<u8>| -> Damage {
        Box::new(move || {
            let mut b = std::fs::read(&path).unwrap();
            b[at..at + bytes.len()].copy_from_slice(&bytes);
            std::fs::write(&path, b).unwrap();
        })
    };
    let cut_to = |path: std::path::PathBuf, len: u64| -> Damage {
        Box::new(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(len)
                .unwrap()
        })
    };
    let remove = |path: std::path::PathBuf| -> Damage {
        Box::new(move || std::fs::remove_file(&path).unwrap())
    };
    let damages: Vec<(&str, Damage)> = vec![
        ("sealed .index deleted", remove(sealed.index.clone())),
        (
            "sealed .timeindex deleted",
            remove(sealed.time_index.clone()),
        ),
        ("active .index deleted", remove(active.index.clone())),
        (
            "active .timeindex deleted",
            remove(active.time_index.clone()),
        ),
        (
            "sealed .index cut mid-entry",
            cut_to(sealed.index.clone(), 13),
        ),
        (
            "sealed .index cut to one entry",
            cut_to(sealed.index.clone(), 8),
        ),
        (
            "sealed .timeindex cut mid-entry",
            cut_to(sealed.time_index.clone(), 20),
        ),
        (
            "sealed .index position past the log",
            write_at(sealed.index.clone(), 4, vec![0x7f, 0, 0, 0]),
        ),
        (
            "sealed .index offsets backwards",
            write_at(sealed.index.clone(), 8, vec![0, 0, 0, 0]),
        ),
        (
            "sealed .index last entry off its batch",
            xor_end(sealed.index.clone(), 1, 0x01),
        ),
        (
            "sealed .index last offset wrong",
            xor_end(sealed.index.clone(), 5, 0x01),
        ),
        (
            "active .index garbage",
            write_at(active.index.clone(), 0, vec![0xff; 8]),
        ),
        (
            "sealed .timeindex last timestamp wrong",
            xor_end(sealed.time_index.clone(), 5, 0x01),
        ),
        (
            "active .timeindex offset beyond",
            write_at(active.time_index.clone(), 8, vec![0x7f, 0, 0, 0]),
        ),
    ];
    for (what, damage) in damages {
        damage();
        assert_ne!(
            index_files(dir.path()),
            pristine,
            "{what}: the damage did something"
        );
        let log = open(dir.path(), config.clone(), false);
        assert_eq!(read_all(&log), expected_records, "{what}");
        for o in (0..log.log_end_offset()).step_by(7) {
            let got = batch_offsets(&log.read(o, 1, i64::MAX).unwrap().records);
            assert!(
                got[0].0 <= o && o <= got[0].1,
                "{what}: offset {o} in {got:?}"
            );
        }
        log.close().unwrap();
        drop(log);
        assert_eq!(
            index_files(dir.path()),
            pristine,
            "{what}: rebuilt index differs"
        );
    }
}

#[test]
fn clean_close_and_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(), false);
    fill(&log, 25, 3, 60);
    let before = read_all(&log);
    log.close().unwrap();
    assert!(matches!(
        log.append(&batch_at(TS, 1, 1), 0, TS),
        Err(Error::NotAvailable(_))
    ));
    assert_eq!(read_all(&log), before, "reads work after close");
    let active = paths(dir.path(), *log.segment_base_offsets().last().unwrap());
    assert_eq!(std::fs::metadata(&active.index).unwrap().len() % 8, 0);
    assert!(
        std::fs::metadata(&active.index).unwrap().len() < 4096,
        "trimmed on close"
    );
    drop(log);
    let log = open(dir.path(), small(), false);
    assert_eq!(read_all(&log), before);
    assert_eq!(
        std::fs::metadata(&active.index).unwrap().len(),
        4096,
        "preallocated again"
    );
    fill(&log, 5, 3, 60);
    assert_dense(&log, 0);
}

#[test]
fn retention_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 10_000,
        ..small()
    };
    let log = open(dir.path(), config, false);
    fill(&log, 40, 2, 100); // batch i at TS + 1000 i
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3, "{bases:?}");
    // Segment 0 holds batches 0..per; its largest timestamp is the last
    // batch's second record.
    let per = bases[1] / 2;
    let largest = TS + 1000 * (per - 1) + 1;
    assert_eq!(
        log.delete_old_segments(largest + 10_000).unwrap(),
        0,
        "exactly retention.ms old stays"
    );
    assert_eq!(log.delete_old_segments(largest + 10_001).unwrap(), 1);
    assert_eq!(log.log_start_offset(), bases[1]);
    assert_eq!(log.segment_base_offsets(), bases[1..].to_vec());
    assert!(!paths(dir.path(), 0).log.exists());
    assert!(!paths(dir.path(), 0).index.exists());
    assert!(!paths(dir.path(), 0).time_index.exists());
    assert!(is_out_of_range(log.read(0, 100, i64::MAX)));
    assert!(is_out_of_range(log.read(bases[1] - 1, 100, i64::MAX)));
    assert_eq!(read_all(&log)[0].0, bases[1]);
    // Everything expired, the active segment too: it rolls first, so one
    // empty segment at the log end offset remains.
    assert_eq!(
        log.delete_old_segments(TS + 1_000_000).unwrap(),
        bases.len() - 1
    );
    assert_eq!(log.num_segments(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (80, 80));
    assert!(log.read(80, 100, i64::MAX).unwrap().records.is_empty());
    log.append(&batch_at(TS, 1, 1), 0, TS).unwrap();
    assert_dense(&log, 80);
    // Retention survives a reopen.
    drop(log);
    let log = open(dir.path(), small(), false);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (80, 81));
}

#[test]
fn expired_segments_free_their_disk_without_waiting_for_the_next_roll() {
    // Open files of `dir` that are deleted: disk that is not free yet.
    let deleted_but_open = |dir: &Path| -> Vec<String> {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|p| p.display().to_string())
            .filter(|p| p.starts_with(&dir.display().to_string()) && p.ends_with(" (deleted)"))
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 10_000,
        // Its window holds on to the sealed segment too.
        page_cache_drop_behind_bytes: 1 << 20,
        ..small()
    };
    let log = open(dir.path(), config, false);
    fill(&log, 40, 2, 100);
    // Everything expires, the active segment too: it rolls, and the
    // partition then stays idle, so no later roll comes to let go of it.
    assert!(log.delete_old_segments(TS + 1_000_000).unwrap() >= 3);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !deleted_but_open(dir.path()).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        deleted_but_open(dir.path()),
        Vec::<String>::new(),
        "deleted segments still open"
    );
    assert_eq!(log.num_segments(), 1);
}

#[test]
fn retention_by_time_stops_at_the_first_young_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            retention_ms: 10_000,
            segment_bytes: 1,
            ..small()
        },
        false,
    );
    // One batch per segment; the second is young, the third old again.
    for ts in [TS, TS + 50_000, TS] {
        log.append(&batch_at(ts, 1, 10), 0, TS).unwrap();
    }
    assert_eq!(log.delete_old_segments(TS + 20_000).unwrap(), 1);
    assert_eq!(log.segment_base_offsets(), vec![1, 2]);
}

#[test]
fn retention_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(), false);
    fill(&log, 40, 2, 100);
    let sizes: Vec<u64> = log
        .segment_base_offsets()
        .iter()
        .map(|b| std::fs::metadata(paths(dir.path(), *b).log).unwrap().len())
        .collect();
    let total: u64 = sizes.iter().sum();
    assert_eq!(total, log.size_bytes());
    // Room for everything but one byte of the first segment: it stays.
    let mut config = log.config();
    config.retention_bytes = (total - sizes[0] + 1) as i64;
    log.set_config(config.clone());
    assert_eq!(log.delete_old_segments(TS).unwrap(), 0);
    // Exactly the rest: the first goes, the second must stay.
    config.retention_bytes = (total - sizes[0]) as i64;
    log.set_config(config.clone());
    assert_eq!(log.delete_old_segments(TS).unwrap(), 1);
    assert_eq!(log.size_bytes(), total - sizes[0]);
    // A tiny limit leaves only the (new, empty) active segment.
    config.retention_bytes = 0;
    log.set_config(config);
    assert_eq!(log.delete_old_segments(TS).unwrap(), sizes.len() - 1);
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(log.log_start_offset(), log.log_end_offset());
    assert_eq!(
        log.delete_old_segments(TS).unwrap(),
        0,
        "an empty active segment is never deleted"
    );
}

#[test]
fn retention_keeps_every_segment_that_reaches_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(), false);
    fill(&log, 40, 2, 100);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3, "{bases:?}");
    let mut config = log.config();
    config.retention_bytes = 0;
    log.set_config(config);
    // Followers have copied only part of segment 1: segment 0 may go,
    // segment 1 holds records above the high watermark and stays.
    log.set_retention_limit(bases[1] + 1);
    assert_eq!(log.delete_old_segments(TS).unwrap(), 1);
    assert_eq!(log.log_start_offset(), bases[1]);
    // Exactly at the next base: segment 1 is wholly below it.
    log.set_retention_limit(bases[2]);
    assert_eq!(log.delete_old_segments(TS).unwrap(), 1);
    assert_eq!(log.log_start_offset(), bases[2]);
    // Only when the high watermark reaches the log end may the active
    // segment roll and go.
    let end = log.log_end_offset();
    log.set_retention_limit(end - 1);
    assert_eq!(log.delete_old_segments(TS).unwrap(), bases.len() - 3);
    assert_eq!(log.log_start_offset(), bases[bases.len() - 1]);
    log.set_retention_limit(end);
    assert_eq!(log.delete_old_segments(TS).unwrap(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (end, end));
}

#[test]
fn truncate_to_within_a_segment_mid_batch_and_at_a_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(), false);
    fill(&log, 40, 2, 100); // batches [2i, 2i+1]
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3 && bases[bases.len() - 1] < 70, "{bases:?}");

    log.truncate_to(1_000).unwrap();
    assert_eq!(log.log_end_offset(), 80, "beyond the end: nothing to do");

    // Inside the last segment, at a batch boundary.
    log.truncate_to(76).unwrap();
    assert_eq!(log.log_end_offset(), 76);
    assert_dense(&log, 0);
    // Mid-batch: the whole batch goes.
    log.truncate_to(71).unwrap();
    assert_eq!(log.log_end_offset(), 70);
    assert_dense(&log, 0);
    // Back into an earlier segment: later segments are deleted, the
    // target segment becomes active again.
    let target = bases[1] + 3;
    log.truncate_to(target).unwrap();
    assert_eq!(log.log_end_offset(), target - 1);
    assert_eq!(log.segment_base_offsets(), bases[..2].to_vec());
    assert!(!paths(dir.path(), bases[2]).log.exists());
    assert_eq!(
        std::fs::metadata(paths(dir.path(), bases[1]).index)
            .unwrap()
            .len(),
        4096,
        "writable again"
    );
    assert!(is_out_of_range(log.read(target, 1, i64::MAX)));
    // At exactly a segment's base offset: it stays, empty, as the active one.
    log.truncate_to(bases[1]).unwrap();
    assert_eq!(log.segment_base_offsets(), bases[..2].to_vec());
    assert_eq!(log.log_end_offset(), bases[1]);

    fill(&log, 30, 2, 100);
    assert_dense(&log, 0);
    let expected = read_all(&log);
    drop(log);
    for recover in [false, true] {
        let log = open(dir.path(), small(), recover);
        assert_eq!(read_all(&log), expected);
    }
}

#[test]
fn truncate_below_log_start_empties_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            retention_bytes: 0,
            ..small()
        },
        false,
    );
    fill(&log, 40, 2, 100);
    log.delete_old_segments(TS).unwrap();
    assert_eq!(log.log_start_offset(), 80);
    log.truncate_to(50).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.num_segments()
        ),
        (50, 50, 1)
    );
    log.truncate_fully_and_start_at(1_000).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (1_000, 1_000)
    );
    assert_eq!(log.segment_base_offsets(), vec![1_000]);
    fill(&log, 3, 2, 10);
    assert_dense(&log, 1_000);
    drop(log);
    let log = open(dir.path(), small(), true);
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (1_000, 1_006)
    );
}

#[test]
fn offset_for_timestamp_follows_list_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 100,
            ..small()
        },
        false,
    );
    // Batch i: records at TS + 1000 i + 0..3, offsets 3i..3i+3.
    fill(&log, 40, 3, 80);
    assert!(log.num_segments() > 2);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, TS)));
    assert_eq!(log.offset_for_timestamp(TS).unwrap(), Some((0, TS)));
    assert_eq!(log.offset_for_timestamp(TS + 1).unwrap(), Some((1, TS + 1)));
    assert_eq!(
        log.offset_for_timestamp(TS + 3).unwrap(),
        Some((3, TS + 1000)),
        "between batches"
    );
    for i in 0..40i64 {
        for j in 0..3 {
            let ts = TS + 1000 * i + j;
            assert_eq!(log.offset_for_timestamp(ts).unwrap(), Some((3 * i + j, ts)));
        }
    }
    assert_eq!(
        log.offset_for_timestamp(TS + 39_002).unwrap(),
        Some((119, TS + 39_002))
    );
    assert_eq!(log.offset_for_timestamp(TS + 39_003).unwrap(), None);

    // Out-of-order timestamps: the first batch whose max reaches it.
    log.append(&batch_at(TS + 500, 1, 10), 0, TS).unwrap();
    assert_eq!(log.offset_for_timestamp(TS + 39_003).unwrap(), None);
    log.append(&batch_at(TS + 90_000, 1, 10), 0, TS).unwrap();
    assert_eq!(
        log.offset_for_timestamp(TS + 39_003).unwrap(),
        Some((121, TS + 90_000))
    );
    // Through a reopen (indexes from disk).
    drop(log);
    let log = open(dir.path(), small(), false);
    assert_eq!(
        log.offset_for_timestamp(TS + 17_001).unwrap(),
        Some((52, TS + 17_001))
    );
}

#[test]
fn flush_by_messages_and_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            flush_messages: 1,
            ..LogConfig::default()
        },
        false,
    );
    log.append(&batch_at(TS, 3, 10), 0, TS).unwrap();
    assert_eq!(
        log.unflushed_messages(),
        0,
        "flush.messages=1 fsyncs every append"
    );

    log.set_config(LogConfig {
        flush_messages: 5,
        ..LogConfig::default()
    });
    log.append(&batch_at(TS, 3, 10), 0, TS).unwrap();
    assert_eq!(log.unflushed_messages(), 3);
    log.append(&batch_at(TS, 3, 10), 0, TS).unwrap();
    assert_eq!(log.unflushed_messages(), 0);

    log.set_config(LogConfig {
        flush_ms: 1000,
        ..LogConfig::default()
    });
    let now = wall_clock_ms();
    log.flush().unwrap();
    assert!(!log.maybe_flush(now + 10_000).unwrap(), "nothing to flush");
    log.append(&batch_at(TS, 2, 10), 0, TS).unwrap();
    // `flush()` stamped the wall clock; pretend time went on from there.
    let flushed_at = wall_clock_ms();
    assert!(!log.maybe_flush(flushed_at - 1).unwrap());
    assert!(log.maybe_flush(flushed_at + 2_000).unwrap());
    assert_eq!(log.unflushed_messages(), 0);
    log.append(&batch_at(TS, 2, 10), 0, TS).unwrap();
    assert!(!log.maybe_flush(flushed_at + 2_999).unwrap());
    assert!(log.maybe_flush(flushed_at + 3_000).unwrap());
    // Never by time.
    log.set_config(LogConfig::default());
    log.append(&batch_at(TS, 2, 10), 0, TS).unwrap();
    assert!(!log.maybe_flush(i64::MAX).unwrap());
}

#[test]
fn index_stays_sparse_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 1000,
        segment_bytes: 1 << 20,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, false);
    fill(&log, 200, 1, 200);
    let seg = log.segments.read().values().next().unwrap().clone();
    let size = seg.size() as usize;
    let batch = batch_at(TS, 1, 200).len();
    // One entry per (interval + one batch) or so.
    let entries = seg.index_entries();
    assert!(
        entries + 1 >= size / (1000 + batch) && entries <= size / 1000,
        "{entries} entries for {size} bytes"
    );
    assert_eq!(
        seg.time_index_entries(),
        entries,
        "timestamps grow with every entry here"
    );
}

#[test]
fn concurrent_reads_see_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 8192,
            index_interval_bytes: 500,
            ..small()
        },
        false,
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..400 {
                log.append(&batch_at(TS + i, 1 + (i as usize % 4), 50), 0, TS)
                    .unwrap();
            }
            stop.store(true, std::sync::atomic::Ordering::Release);
        });
        for _ in 0..2 {
            s.spawn(|| {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Acquire) || reads < 10 {
                    let leo = log.log_end_offset();
                    let from = leo / 2;
                    let got = log.read(from, 4096, leo).unwrap();
                    assert!(got.log_end_offset >= leo);
                    let recs = decode(&got.records);
                    if let Some(first) = recs.first() {
                        assert!(first.0 <= from);
                        assert!(recs.last().unwrap().0 < leo);
                        assert!(recs.windows(2).all(|w| w[1].0 == w[0].0 + 1));
                    }
                    reads += 1;
                }
            });
        }
    });
    assert_dense(&log, 0);
}

#[test]
fn orphan_index_files_are_removed_and_empty_dirs_start_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    std::fs::create_dir(&pdir).unwrap();
    std::fs::write(pdir.join("00000000000000000500.index"), [0u8; 16]).unwrap();
    std::fs::write(pdir.join("unrelated.txt"), b"kept").unwrap();
    let log = open(dir.path(), small(), false);
    assert!(!pdir.join("00000000000000000500.index").exists());
    assert!(pdir.join("unrelated.txt").exists());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert!(paths(dir.path(), 0).log.exists());
    log.delete().unwrap();
    assert!(!pdir.exists());
}

#[test]
fn recovery_also_checks_the_last_sealed_segment() {
    // Its fsync runs in the background after a roll, so a power loss can
    // tear it too: the unclean restart cuts it and drops what followed.
    for damage in ["bit flip", "torn"] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), small(), false);
        fill(&log, 40, 2, 100);
        let bases = log.segment_base_offsets();
        assert!(bases.len() >= 3);
        drop(log); // unclean
        let (sealed, active) = (
            paths(dir.path(), bases[bases.len() - 2]),
            paths(dir.path(), bases[bases.len() - 1]),
        );
        let mut bytes = std::fs::read(&sealed.log).unwrap();
        let batch = batch_at(TS, 2, 100).len();
        // Damage the third batch of the last sealed segment.
        match damage {
            "bit flip" => bytes[2 * batch + 100] ^= 0x10,
            _ => bytes.truncate(2 * batch + 100),
        }
        std::fs::write(&sealed.log, &bytes).unwrap();

        let log = open(dir.path(), small(), true);
        let cut_at = bases[bases.len() - 2] + 4;
        assert_eq!(log.log_end_offset(), cut_at, "{damage}");
        assert_eq!(
            log.segment_base_offsets(),
            bases[..bases.len() - 1].to_vec(),
            "{damage}"
        );
        assert!(!active.log.exists() && !active.index.exists(), "{damage}");
        assert_eq!(
            std::fs::metadata(&sealed.log).unwrap().len(),
            2 * batch as u64,
            "{damage}"
        );
        fill(&log, 3, 2, 100);
        assert_dense(&log, 0);
        // A clean restart keeps the repaired log as it is.
        log.close().unwrap();
        drop(log);
        let log = open(dir.path(), small(), false);
        assert_eq!(log.log_end_offset(), cut_at + 6, "{damage}");
        assert_dense(&log, 0);
    }
}

#[test]
fn rolls_fsync_sealed_segments_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1,
            flush_messages: 4,
            ..small()
        },
        false,
    );
    for _ in 0..5 {
        log.append(&batch_at(TS, 1, 10), 0, TS).unwrap();
    }
    // Each roll waited for the previous background fsync; the last one
    // may still be running, and flush() covers it.
    assert_eq!(log.num_segments(), 5);
    log.flush().unwrap();
    assert_eq!(log.unflushed_messages(), 0);
    log.close().unwrap();
    assert!(log.writer.lock().sealing.is_none(), "close waited for it");
}

#[test]
fn a_dropped_log_lets_its_seal_finish_before_its_files_are_reopened() {
    // A big preallocated index makes the background trim take a while, so
    // without the wait in Drop the thread is still running (and holding the
    // sealed segment) when `drop` returns.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1,
        segment_index_bytes: 64 << 20,
        ..small()
    };
    let log = open(dir.path(), config.clone(), false);
    log.append(&batch_at(TS, 1, 10), 0, TS).unwrap();
    log.append(&batch_at(TS, 1, 10), 0, TS).unwrap();
    let sealed = log
        .writer
        .lock()
        .sealing
        .as_ref()
        .expect("the roll started a seal")
        .segment
        .clone();
    drop(log);
    assert!(
        sealed.upgrade().is_none(),
        "the seal thread still holds the segment after the log is gone"
    );
    let log = open(dir.path(), config, true);
    assert_eq!(log.log_end_offset(), 2);
    assert_dense(&log, 0);
}

#[test]
fn deferred_flush_hands_out_tickets_and_one_fsync_covers_earlier_appends() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: 1,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, false);
    let append = |ts| {
        let batch = batch_at(ts, 2, 20);
        let valid = log.validate(&batch).unwrap();
        log.append_deferring_flush(&batch, &valid, 0, TS).unwrap()
    };
    let (first, second) = (append(TS), append(TS + 1));
    let (t1, t2) = (first.flush.unwrap(), second.flush.unwrap());
    assert!(t1 < t2, "tickets follow append order");
    assert_eq!(log.unflushed_messages(), 4, "nothing fsynced yet");
    assert_eq!(log.pending_flush(), Some(t2));

    // The later ticket's flush covers the earlier append too.
    log.flush_through(t2).unwrap();
    assert_eq!(log.unflushed_messages(), 0);
    assert_eq!(log.pending_flush(), None);
    log.flush_through(t1).unwrap();

    // The plain append flushes inline and hands out no ticket.
    let batch = batch_at(TS + 2, 1, 20);
    assert_eq!(log.append(&batch, 0, TS).unwrap().flush, None);
    assert_eq!(log.unflushed_messages(), 0);

    // Without a flush.messages policy there is nothing to wait for.
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), false);
    let batch = batch_at(TS, 1, 20);
    let valid = log.validate(&batch).unwrap();
    assert_eq!(
        log.append_deferring_flush(&batch, &valid, 0, TS)
            .unwrap()
            .flush,
        None
    );
    assert_eq!(log.pending_flush(), None);
}

/// Bytes of `path` in the page cache, by util-linux's `fincore`.
fn cached_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("running fincore (util-linux)");
    assert!(out.status.success(), "fincore: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn drop_behind_keeps_only_the_end_of_the_log_in_the_page_cache() {
    const MIB: u64 = 1 << 20;
    let config = |behind| LogConfig {
        segment_bytes: 16 * MIB,
        page_cache_drop_behind_bytes: behind,
        ..LogConfig::default()
    };
    // ~64 KiB batches up to `to` bytes in the active segment's sense of the
    // whole log (two sealed 16 MiB segments, then the active one).
    let write = |log: &Log, mib: u64| {
        let batch = batch_at(TS, 64, 1000);
        for _ in 0..(mib * MIB).div_ceil(batch.len() as u64) {
            log.append(&batch, 0, TS).unwrap();
        }
    };
    let run = |behind: i64| {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(behind), false);
        write(&log, 40);
        // Clean pages can be dropped, dirty ones only start writeback: make
        // everything clean, then grow the active segment past the next
        // drop, whose range starts at the segment's beginning.
        log.flush().unwrap();
        write(&log, 4);
        assert_eq!(log.num_segments(), 3);
        let files: Vec<_> = std::fs::read_dir(dir.path().join("t-0"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        let total = || files.iter().map(|p| cached_bytes(p)).sum::<u64>();
        // The drops run on a background thread: wait for them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while behind >= 0 && total() > 8 * MIB && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        total()
    };
    let kept = run(MIB as i64);
    assert!(
        kept <= 8 * MIB,
        "with 1 MiB drop-behind only the unflushed end stays cached, got {kept} bytes of 44 MiB"
    );
    // Off (the default) leaves every page to the kernel: the check above is
    // not passing because fincore sees nothing.
    let all = run(-1);
    assert!(all >= 40 * MIB, "without drop-behind, {all} bytes cached");
}

#[test]
fn drop_behind_window_spans_a_roll() {
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 16 * MIB,
        page_cache_drop_behind_bytes: 8 * MIB as i64,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, false);
    let batch = batch_at(TS, 64, 1000);
    let write = |bytes: u64| {
        for _ in 0..bytes.div_ceil(batch.len() as u64) {
            log.append(&batch, 0, TS).unwrap();
        }
    };
    let sealed = dir.path().join("t-0").join("00000000000000000000.log");
    // Cached bytes of the sealed segment once the background drops are done
    // (`settled` says when).
    let sealed_cached = |settled: &dyn Fn(u64) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let cached = cached_bytes(&sealed);
            if settled(cached) || std::time::Instant::now() >= deadline {
                return cached;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    // Roll once, make every page clean, then grow the new segment to ~5 MiB:
    // the last 8 MiB of the log are the new segment's 5 and the sealed
    // one's last 3-4 (drops go in 4 MiB steps), and only those stay.
    write(17 * MIB);
    assert_eq!(log.num_segments(), 2);
    log.flush().unwrap();
    write(4 * MIB);
    let cached = sealed_cached(&|c| c <= 6 * MIB);
    assert!(
        (2 * MIB..=6 * MIB).contains(&cached),
        "right after a roll the sealed segment's end is still in the window: {cached} bytes cached"
    );
    // Once the new segment holds the whole window, none of the sealed one is left.
    write(8 * MIB);
    assert_eq!(log.num_segments(), 2);
    let cached = sealed_cached(&|c| c == 0);
    assert_eq!(cached, 0, "the window has moved past the sealed segment");
}

#[test]
fn log_append_time_stamps_the_leaders_clock_and_followers_keep_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..small()
    };
    let leader = open(dir.path(), config.clone(), false);
    // The producer's clock says TS; the leader's says an hour later.
    let appended_at = TS + 3_600_000;
    let info = leader.append(&batch_at(TS, 3, 20), 5, appended_at).unwrap();
    assert_eq!(info.log_append_time_ms, appended_at);
    assert_eq!(info.max_timestamp, appended_at);
    let read = leader.read(0, usize::MAX, i64::MAX).unwrap();
    let records = decode(&read.records);
    assert!(
        records.iter().all(|r| r.1 == appended_at),
        "every record reads as the append time: {records:?}"
    );
    let values: Vec<Vec<u8>> = records.into_iter().map(|r| r.2).collect();
    assert_eq!(
        values,
        (0..3).map(|i| value_for(TS, i, 20)).collect::<Vec<_>>()
    );
    let (header, _) = batches(&read.records).next().unwrap().unwrap();
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(
        header.base_timestamp, TS,
        "the producer's base timestamp stays"
    );
    // Time lookups and retention see the append time.
    assert_eq!(
        leader.offset_for_timestamp(TS + 10).unwrap(),
        Some((0, appended_at))
    );

    // A follower with the same topic config copies the stamped bytes as
    // they are, even though its own clock differs.
    let follower = Log::open(dir.path().join("f-0"), tp(), config, false).unwrap();
    let valid = follower.validate_replicated(&read.records).unwrap();
    let copied = follower
        .append_as_follower(&read.records, &valid, appended_at + 999)
        .unwrap();
    assert_eq!(copied.log_append_time_ms, -1);
    let again = follower.read(0, usize::MAX, i64::MAX).unwrap();
    assert_eq!(again.records, read.records, "byte-identical to the leader");

    // CreateTime (the default) keeps the producer's timestamps.
    let create = open(&dir.path().join("c"), small(), false);
    let info = create.append(&batch_at(TS, 2, 20), 5, appended_at).unwrap();
    assert_eq!((info.log_append_time_ms, info.max_timestamp), (-1, TS + 1));
    let stamps: Vec<i64> = read_all(&create).iter().map(|r| r.1).collect();
    assert_eq!(stamps, [TS, TS + 1]);
}

#[test]
fn create_time_outside_the_configured_window_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    const HOUR: i64 = 3_600_000;
    let config = LogConfig {
        message_timestamp_before_max_ms: 24 * HOUR,
        ..small()
    };
    assert_eq!(
        config.message_timestamp_after_max_ms, HOUR,
        "Kafka 4's default"
    );
    let log = open(dir.path(), config.clone(), false);
    let now = wall_clock_ms();
    log.append(&batch_at(now - HOUR, 2, 10), 1, now).unwrap();
    log.append(&batch_at(now + HOUR / 2, 2, 10), 1, now)
        .unwrap();

    let err = log
        .append(&batch_at(now + 2 * HOUR, 3, 10), 1, now)
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            Error::InvalidTimestamp {
                index: 0,
                config: "message.timestamp.after.max.ms",
                limit: HOUR,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(message.contains("after the broker's clock"), "{message}");
    let err = log
        .append(&batch_at(now - 2 * 24 * HOUR, 1, 10), 1, now)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidTimestamp {
                config: "message.timestamp.before.max.ms",
                ..
            }
        ),
        "{err:?}"
    );
    // A good batch followed by a bad one in the same request: nothing of it.
    let mixed = [batch_at(now, 1, 10), batch_at(now + 3 * HOUR, 1, 10)].concat();
    assert!(matches!(
        log.append(&mixed, 1, now),
        Err(Error::InvalidTimestamp { .. })
    ));
    assert_eq!(log.log_end_offset(), 4, "refused appends wrote nothing");

    // LogAppendTime replaces the producer's clock, so any CreateTime goes.
    let stamped = Log::open(
        dir.path().join("s-0"),
        tp(),
        LogConfig {
            message_timestamp_type: TimestampType::LogAppendTime,
            ..config
        },
        false,
    )
    .unwrap();
    stamped
        .append(&batch_at(now + 5 * HOUR, 1, 10), 1, now)
        .unwrap();
}

/// Disk blocks allocated to `path`, in bytes.
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn preallocate_reserves_segments_off_the_append_path_and_trims_sealed_ones() {
    const MIB: u64 = 1 << 20;
    const LATER: i64 = TS + 3_600_000;
    let config = |preallocate| LogConfig {
        segment_bytes: 8 * MIB,
        segment_ms: 60_000,
        preallocate,
        ..LogConfig::default()
    };
    let batch = batch_at(TS, 64, 1000);
    let write = |log: &Log, bytes: u64| {
        for _ in 0..bytes.div_ceil(batch.len() as u64) {
            log.append(&batch, 0, TS).unwrap();
        }
    };
    let spare = |dir: &Path| dir.join("t-0").join(preallocate::SPARE_FILE_NAME);
    let len = |path: &Path| std::fs::metadata(path).unwrap().len();

    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(true), false);
    // A new log's first segment is reserved at once; its size stays 0.
    let first = paths(dir.path(), 0).log;
    assert_eq!(len(&first), 0);
    assert!(allocated(&first) >= 8 * MIB, "{}", allocated(&first));
    write(&log, 4 * MIB + MIB / 2);
    // Half full: the spare is on its way, on its own thread.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !spare(dir.path()).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(spare(dir.path()).exists(), "no spare after half a segment");
    // An hour later segment.ms rolls the half-full segment; the new one is
    // the spare, renamed into place.
    let second = log.log_end_offset();
    log.append(&batch_at(LATER, 64, 1000), 0, LATER).unwrap();
    assert_eq!(log.num_segments(), 2);
    log.close().unwrap();
    assert!(!spare(dir.path()).exists(), "close discards the spare");
    assert!(
        allocated(&first) <= len(&first).next_multiple_of(4096) + MIB,
        "the sealed segment gives back what it did not use: {} bytes for {} of data",
        allocated(&first),
        len(&first)
    );
    let active = paths(dir.path(), second).log;
    assert!(len(&active) < MIB);
    assert!(
        allocated(&active) >= 8 * MIB,
        "the segment the roll started came from the spare: {}",
        allocated(&active)
    );
    let end = log.log_end_offset();
    drop(log);
    // A spare left by a crash is removed; the reserved tail of the active
    // segment is not data: recovery finds the same log end.
    std::fs::write(spare(dir.path()), b"leftover").unwrap();
    let log = open(dir.path(), config(true), true);
    assert!(!spare(dir.path()).exists());
    assert_eq!(log.log_end_offset(), end);
    assert_dense(&log, 0);
    drop(log);
    // A torn write cut by recovery, then a follower's truncation: each cut
    // frees the reserved tail with the data past it, and the segment is
    // reserved again.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&active)
            .unwrap();
        f.write_all(&[0xAB; 3000]).unwrap();
    }
    let torn = len(&active);
    let log = open(dir.path(), config(true), true);
    assert!(len(&active) < torn, "recovery cut the torn tail");
    assert_eq!(log.log_end_offset(), end);
    assert!(
        allocated(&active) >= 8 * MIB,
        "reserved again after recovery: {}",
        allocated(&active)
    );
    log.truncate_to(second).unwrap();
    assert_eq!(log.log_end_offset(), second);
    assert_eq!(len(&active), 0);
    assert!(
        allocated(&active) >= 8 * MIB,
        "reserved again after truncation: {}",
        allocated(&active)
    );
    drop(log);

    // Off (the default): no reservation, no spare.
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(false), false);
    write(&log, 5 * MIB);
    assert!(!spare(dir.path()).exists());
    log.close().unwrap();
    let first = paths(dir.path(), 0).log;
    assert!(allocated(&first) <= len(&first).next_multiple_of(4096) + MIB);
}

#[test]
fn delete_records_moves_the_start_inside_a_segment_and_a_restart_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(), false);
    fill(&log, 60, 2, 100);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4, "{bases:?}");
    let target = bases[2] + 1; // the second record of segment 2's first batch
    assert_eq!(log.advance_log_start_offset(target).unwrap(), target);
    assert_eq!(log.log_start_offset(), target);
    // Segments 0 and 1 were wholly below it and are gone; 2 stays.
    assert_eq!(log.segment_base_offsets(), bases[2..].to_vec());
    assert!(!paths(dir.path(), bases[1]).log.exists());
    assert!(is_out_of_range(log.read(target - 1, 100, i64::MAX)));
    assert!(is_out_of_range(log.read(0, 100, i64::MAX)));
    // A read at the start gives the batch holding it, whole, as Kafka does.
    let read = log.read(target, usize::MAX, i64::MAX).unwrap();
    assert_eq!(read.log_start_offset, target);
    assert_eq!(decode(&read.records)[0].0, bases[2]);
    // Timestamp lookups skip what is deleted.
    assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().0, target);
    // Never back, and never past the log end.
    assert_eq!(log.advance_log_start_offset(bases[1]).unwrap(), target);
    let end = log.log_end_offset();
    assert!(matches!(
        log.advance_log_start_offset(end + 1),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.log_start_offset(), target);
    // Retention deleting older segments does not move it back either.
    assert_eq!(log.delete_old_segments(TS).unwrap(), 0);
    assert_eq!(log.log_start_offset(), target);

    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), small(), true);
    assert_eq!(log.log_start_offset(), target, "survives a restart");
    assert!(is_out_of_range(log.read(target - 1, 100, i64::MAX)));
    // Up to the log end: every sealed segment goes, the active one stays.
    assert_eq!(log.advance_log_start_offset(end).unwrap(), end);
    assert_eq!(log.num_segments(), 1);
    assert!(log.read(end, 100, i64::MAX).unwrap().records.is_empty());
    log.append(&batch_at(TS, 1, 1), 0, TS).unwrap();
    assert_eq!(log.log_end_offset(), end + 1);
    // A follower restarting below the checkpoint takes the new start.
    log.truncate_fully_and_start_at(3).unwrap();
    drop(log);
    let log = open(dir.path(), small(), false);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 3));
}

#[test]
fn a_start_checkpoint_past_the_recovered_end_starts_the_log_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(), false);
    fill(&log, 3, 2, 10);
    log.close().unwrap();
    drop(log);
    // As if DeleteRecords had been checkpointed up to records a crash lost.
    super::super::start_offset::write(&dir.path().join("t-0"), 100).unwrap();
    let log = open(dir.path(), small(), true);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 6));
}
