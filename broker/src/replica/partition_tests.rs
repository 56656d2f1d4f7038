//! Leader and follower behaviour of one replica, in process: HW over the
//! ISR, acks=all waits, ISR proposals, divergence, truncation.

use std::time::Duration;

use super::*;
use crate::log::LogConfig;
use crate::log::test_util::batch_at;
use crate::meta::records::VERSION;
use crate::replica::epoch_cache;

fn replica(dir: &std::path::Path, broker: i32) -> Partition {
    replica_with(dir, broker, LogConfig::default())
}

fn replica_with(dir: &std::path::Path, broker: i32, config: LogConfig) -> Partition {
    let tp = TopicPartition::new("t", 0);
    let log =
        Arc::new(Log::open(dir.join(format!("b{broker}")), tp.clone(), config, false).unwrap());
    Partition::open(tp, broker, log, vec![1, 2, 3], 2).unwrap()
}

fn state(leader: i32, epoch: i32, isr: &[i32]) -> PartitionState {
    PartitionState {
        version: VERSION,
        leader,
        leader_epoch: epoch,
        isr: isr.to_vec(),
    }
}

fn append(p: &Partition, records: usize, acks_all: bool) -> Result<(LogAppendInfo, i32)> {
    let batch = batch_at(1000, records, 10);
    let valid = p.log().validate(&batch)?;
    p.append_as_leader(&batch, &valid, 0, acks_all)
}

/// Copy what `leader` has after `follower`'s end to `follower`, as one
/// fetch round would.
fn replicate(leader: &Partition, follower: &Partition, id: i32) {
    let s = follower.follower_fetch_state().unwrap();
    leader.record_follower_log_start(id, s.log_start_offset);
    let (read, _) = leader
        .fetch_for_follower(
            id,
            s.fetch_offset,
            s.leader_epoch,
            s.last_fetched_epoch,
            1 << 20,
        )
        .unwrap();
    match read {
        FollowerRead::Records {
            read,
            high_watermark,
        } => {
            follower
                .append_as_follower(s.leader_epoch, &read.records, high_watermark, 0)
                .unwrap();
            follower
                .follow_leader_log_start(s.leader_epoch, read.log_start_offset)
                .unwrap();
        }
        FollowerRead::Diverging { .. } => panic!("unexpected divergence"),
    }
}

#[tokio::test]
async fn high_watermark_is_the_lowest_leo_in_the_isr_and_acks_all_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let (l, f2, f3) = (
        replica(dir.path(), 1),
        replica(dir.path(), 2),
        replica(dir.path(), 3),
    );
    let st = state(1, 3, &[1, 2, 3]);
    assert_eq!(
        l.apply_state(&st, &[1, 2, 3], 10).unwrap(),
        Transition::BecameLeader { epoch: 3 }
    );
    for f in [&f2, &f3] {
        assert_eq!(
            f.apply_state(&st, &[1, 2, 3], 10).unwrap(),
            Transition::BecameFollower {
                leader: 1,
                epoch: 3
            }
        );
    }
    let (info, epoch) = append(&l, 5, true).unwrap();
    assert_eq!((info.first_offset, epoch), (0, 3));
    assert_eq!(l.high_watermark(), 0, "followers have not fetched yet");
    let wait = l.wait_for_replication(5, 3, Duration::from_secs(5));
    tokio::pin!(wait);
    // Follower 2 gets the records; its next fetch (offset 5) reports them.
    replicate(&l, &f2, 2);
    replicate(&l, &f2, 2);
    assert_eq!(l.high_watermark(), 0, "3 is in the ISR and has nothing");
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut wait)
            .await
            .is_err()
    );
    replicate(&l, &f3, 3);
    replicate(&l, &f3, 3);
    assert_eq!(l.high_watermark(), 5);
    wait.await.unwrap();
    // Followers learn the HW on their next fetch, capped by their LEO.
    replicate(&l, &f2, 2);
    assert_eq!(f2.high_watermark(), 5);
    // Consumers may not read from followers.
    assert!(matches!(
        f2.read(0, 1024),
        Err(Error::NotLeaderOrFollower { .. })
    ));
}

#[test]
fn retention_on_the_leader_keeps_what_followers_have_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    // One batch per segment, and a size limit that wants every closed
    // segment gone.
    let config = LogConfig {
        segment_bytes: 1,
        retention_bytes: 0,
        ..LogConfig::default()
    };
    let l = replica_with(dir.path(), 1, config.clone());
    let (f2, f3) = (replica(dir.path(), 2), replica(dir.path(), 3));
    let st = state(1, 3, &[1, 2, 3]);
    for p in [&l, &f2, &f3] {
        p.apply_state(&st, &[1, 2, 3], 10).unwrap();
    }
    for _ in 0..4 {
        append(&l, 2, false).unwrap();
    }
    assert_eq!(l.high_watermark(), 0);
    assert_eq!(
        l.log().delete_old_segments(i64::MAX).unwrap(),
        0,
        "nothing below the high watermark yet"
    );
    assert_eq!(l.log().log_start_offset(), 0);
    // Both followers copy everything and report it on their next fetch.
    for (f, id) in [(&f2, 2), (&f3, 3)] {
        replicate(&l, f, id);
        replicate(&l, f, id);
    }
    assert_eq!(l.high_watermark(), 8);
    assert_eq!(l.log().delete_old_segments(i64::MAX).unwrap(), 4);
    assert_eq!(l.log().log_start_offset(), 8);
}

#[test]
fn retention_trims_the_leader_epoch_cache_to_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1,
        retention_bytes: 0,
        ..LogConfig::default()
    };
    let l = replica_with(dir.path(), 1, config);
    // Three leader epochs of two records each: 3 at 0, 5 at 2, 7 at 4.
    for epoch in [3, 5, 7] {
        l.apply_state(&state(1, epoch, &[1]), &[1, 2, 3], 10)
            .unwrap();
        append(&l, 2, false).unwrap();
    }
    assert_eq!(l.high_watermark(), 6);
    assert_eq!(l.end_offset_for_epoch(5), (5, 4));
    l.trim_leader_epochs().unwrap();
    assert_eq!(l.end_offset_for_epoch(5), (5, 4), "nothing deleted yet");
    assert_eq!(l.log().delete_old_segments(i64::MAX).unwrap(), 3);
    assert_eq!(l.log().log_start_offset(), 6);
    l.trim_leader_epochs().unwrap();
    assert_eq!(
        l.end_offset_for_epoch(5),
        (epoch_cache::UNDEFINED_EPOCH, epoch_cache::UNDEFINED_OFFSET),
        "epoch 5's records are gone"
    );
    assert_eq!(
        l.latest_epoch(),
        7,
        "the latest epoch stays, now starting at 6"
    );
    let checkpoint = std::fs::read_to_string(l.log().dir().join(epoch_cache::FILE_NAME)).unwrap();
    assert_eq!(checkpoint, "0\n1\n7 6\n");
}

/// Put a FIFO at `tmp`, the temp file `write` goes through, so that
/// `write` blocks opening it (as a slow fsync would), and run `meanwhile`
/// while it is stuck. Returns what `meanwhile` gave, or `None` if it was
/// still waiting after 5 s. The writer is released either way (it then
/// fails: a FIFO cannot be fsynced), so nothing is left hanging.
fn while_a_write_is_stuck<T: Send + 'static>(
    tmp: &std::path::Path,
    write: impl FnOnce() -> Result<()> + Send + 'static,
    meanwhile: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let made = std::process::Command::new("mkfifo")
        .arg(tmp)
        .status()
        .unwrap();
    assert!(made.success());
    let writer = std::thread::spawn(write);
    std::thread::sleep(Duration::from_millis(50));
    assert!(!writer.is_finished(), "the write is stuck opening its file");
    let (done, result) = std::sync::mpsc::channel();
    let other = std::thread::spawn(move || {
        let _ = done.send(meanwhile());
    });
    let got = result.recv_timeout(Duration::from_secs(5)).ok();
    let _ = std::fs::read(tmp);
    let _ = writer.join().unwrap();
    other.join().unwrap();
    got
}

#[test]
fn readers_of_the_epoch_cache_do_not_wait_for_its_retention_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1,
        retention_bytes: 0,
        ..LogConfig::default()
    };
    let l = Arc::new(replica_with(dir.path(), 1, config));
    for epoch in [3, 5] {
        l.apply_state(&state(1, epoch, &[1]), &[1, 2, 3], 10)
            .unwrap();
        append(&l, 2, false).unwrap();
    }
    assert_eq!(l.log().delete_old_segments(i64::MAX).unwrap(), 2);
    let tmp = l
        .log()
        .dir()
        .join(epoch_cache::FILE_NAME)
        .with_extension("tmp");
    // Follower appends and OffsetForLeaderEpoch answers read the cache
    // while its checkpoint is being written.
    let trim = {
        let l = l.clone();
        move || l.trim_leader_epochs()
    };
    let got = while_a_write_is_stuck(&tmp, trim, move || l.latest_epoch());
    assert_eq!(
        got.expect("reading the cache waited for the checkpoint's write"),
        5
    );
}

#[tokio::test]
async fn acks_all_fails_precisely_when_leadership_moves_or_time_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let l = replica(dir.path(), 1);
    l.apply_state(&state(1, 0, &[1, 2]), &[1, 2, 3], 1).unwrap();
    let (info, epoch) = append(&l, 1, true).unwrap();
    let err = l
        .wait_for_replication(info.last_offset + 1, epoch, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RequestTimedOut { .. }), "{err}");
    // Below min.insync.replicas (2): refused before writing.
    l.apply_state(&state(1, 0, &[1]), &[1, 2, 3], 2).unwrap();
    let end = l.log().log_end_offset();
    assert!(matches!(
        append(&l, 1, true),
        Err(Error::NotEnoughReplicas { isr: 1, min: 2, .. })
    ));
    assert_eq!(l.log().log_end_offset(), end, "nothing written");
    // Leadership moves while waiting.
    l.apply_state(&state(1, 0, &[1, 2]), &[1, 2, 3], 3).unwrap();
    let (info, epoch) = append(&l, 1, true).unwrap();
    let wait = l.wait_for_replication(info.last_offset + 1, epoch, Duration::from_secs(5));
    tokio::pin!(wait);
    assert!(
        tokio::time::timeout(Duration::from_millis(20), &mut wait)
            .await
            .is_err()
    );
    l.apply_state(&state(2, 1, &[2]), &[1, 2, 3], 4).unwrap();
    let err = wait.await.unwrap_err();
    assert!(matches!(err, Error::NotLeaderOrFollower { .. }), "{err}");
    // Stale states are ignored.
    assert_eq!(
        l.apply_state(&state(1, 0, &[1]), &[1, 2, 3], 3).unwrap(),
        Transition::Unchanged
    );
}

#[test]
fn isr_shrinks_after_the_lag_and_expands_once_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let (l, f2) = (replica(dir.path(), 1), replica(dir.path(), 2));
    let st = state(1, 0, &[1, 2]);
    l.apply_state(&st, &[1, 2, 3], 1).unwrap();
    f2.apply_state(&st, &[1, 2, 3], 1).unwrap();
    append(&l, 3, false).unwrap();
    assert_eq!(l.isr_shrink_proposal(Duration::from_secs(60)), None);
    std::thread::sleep(Duration::from_millis(30));
    let shrink = l.isr_shrink_proposal(Duration::from_millis(10)).unwrap();
    assert_eq!(shrink.isr, vec![1]);
    assert_eq!(
        l.isr_shrink_proposal(Duration::from_millis(10)),
        None,
        "one change at a time"
    );
    l.isr_committed(Some((&shrink.isr, 2)));
    assert_eq!(l.isr(), vec![1]);
    assert_eq!(l.high_watermark(), 3, "the leader alone is the ISR");
    // Follower 2 catches up: its fetch at the HW proposes it back.
    let s = f2.follower_fetch_state().unwrap();
    let (_, proposal) = l
        .fetch_for_follower(2, s.fetch_offset, 0, s.last_fetched_epoch, 1 << 20)
        .unwrap();
    assert_eq!(proposal, None, "behind the HW");
    replicate(&l, &f2, 2);
    let s = f2.follower_fetch_state().unwrap();
    let (_, proposal) = l
        .fetch_for_follower(2, s.fetch_offset, 0, s.last_fetched_epoch, 1 << 20)
        .unwrap();
    assert_eq!(proposal.map(|p| p.isr), Some(vec![1, 2]));
    // A refused write leaves the ISR as it was.
    l.isr_committed(None);
    assert_eq!(l.isr(), vec![1]);
}

#[test]
fn a_deposed_leader_finds_and_cuts_its_divergent_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (replica(dir.path(), 1), replica(dir.path(), 2));
    // Epoch 0: broker 1 leads, both get 4 records.
    let st = state(1, 0, &[1, 2]);
    old.apply_state(&st, &[1, 2], 1).unwrap();
    new.apply_state(&st, &[1, 2], 1).unwrap();
    append(&old, 4, false).unwrap();
    replicate(&old, &new, 2);
    // Broker 1 writes 3 more nobody copies, then broker 2 takes over at
    // epoch 1 and writes 2 of its own.
    append(&old, 3, false).unwrap();
    let st = state(2, 1, &[2]);
    new.apply_state(&st, &[1, 2], 2).unwrap();
    append(&new, 2, false).unwrap();
    old.apply_state(&st, &[1, 2], 2).unwrap();
    let s = old.follower_fetch_state().unwrap();
    assert_eq!((s.leader, s.fetch_offset, s.last_fetched_epoch), (2, 7, 0));
    let (read, _) = new
        .fetch_for_follower(
            1,
            s.fetch_offset,
            s.leader_epoch,
            s.last_fetched_epoch,
            1 << 20,
        )
        .unwrap();
    let FollowerRead::Diverging { epoch, end_offset } = read else {
        panic!("divergence not found: {read:?}");
    };
    assert_eq!(
        (epoch, end_offset),
        (0, 4),
        "epoch 0 ends at 4 on the new leader"
    );
    old.truncate_to(1, end_offset.min(old.end_offset_for_epoch(epoch).1))
        .unwrap();
    assert_eq!(old.log().log_end_offset(), 4);
    replicate(&new, &old, 1);
    assert_eq!(old.log().log_end_offset(), 6);
    let bytes = |p: &Partition| p.log().read(0, 1 << 20, i64::MAX).unwrap().records;
    assert_eq!(bytes(&old), bytes(&new), "byte-identical after the rejoin");
}

/// An idempotent batch of producer 7, epoch 0: `count` records from
/// `sequence`.
fn sequenced(sequence: i32, count: usize) -> Vec<u8> {
    let mut b = runnel_proto::batch::BatchBuilder::new();
    for i in 0..count {
        b.push(1000 + i as i64, None, Some(&[b'x'; 10]), &[]);
    }
    b.producer(7, 0, sequence).build().unwrap().to_vec()
}

#[tokio::test]
async fn a_batch_that_overtook_its_predecessor_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(replica(dir.path(), 1));
    l.apply_state(&state(1, 1, &[1]), &[1, 2, 3], 10).unwrap();
    let (first, second) = (sequenced(0, 3), sequenced(3, 2));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);

    // Sequence 3 arrives first and waits.
    let waiting = {
        let l = l.clone();
        let second = second.clone();
        tokio::spawn(async move {
            let valid = l.log().validate(&second).unwrap();
            l.append_as_leader_in_sequence(&second, &valid, 0, false, deadline)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "sequence 3 must wait for 0..=2");
    assert_eq!(l.log().log_end_offset(), 0, "nothing written yet");

    let valid = l.log().validate(&first).unwrap();
    let (info, _) = l
        .append_as_leader_in_sequence(&first, &valid, 0, false, deadline)
        .await
        .unwrap();
    assert_eq!(info.first_offset, 0);
    let (info, _) = waiting.await.unwrap().unwrap();
    assert_eq!(info.first_offset, 3, "written after its predecessor");
    assert_eq!(l.log().log_end_offset(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_gap_nobody_fills_is_refused_at_the_deadline_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let l = replica(dir.path(), 1);
    l.apply_state(&state(1, 1, &[1]), &[1, 2, 3], 10).unwrap();
    let batch = sequenced(0, 2);
    let valid = l.log().validate(&batch).unwrap();
    l.append_as_leader(&batch, &valid, 0, false).unwrap();

    let gap = sequenced(5, 1);
    let valid = l.log().validate(&gap).unwrap();
    let start = tokio::time::Instant::now();
    let err = l
        .append_as_leader_in_sequence(&gap, &valid, 0, false, start + Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfOrderSequence {
                sequence: 5,
                expected: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "waited for the gap"
    );
    assert_eq!(l.log().log_end_offset(), 2);

    // A sequence behind the producer's (not a retry of a known batch) is
    // wrong at once: waiting cannot fix it.
    let behind = sequenced(1, 1);
    let valid = l.log().validate(&behind).unwrap();
    let start = tokio::time::Instant::now();
    let err = l
        .append_as_leader_in_sequence(&behind, &valid, 0, false, start + Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OutOfOrderSequence { .. }), "{err}");
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[test]
fn appends_do_not_wait_for_a_producer_state_snapshot_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(replica(dir.path(), 1));
    l.apply_state(&state(1, 1, &[1]), &[1, 2, 3], 10).unwrap();
    let first = sequenced(0, 3);
    let valid = l.log().validate(&first).unwrap();
    l.append_as_leader(&first, &valid, 0, false).unwrap();
    let tmp = l
        .log()
        .dir()
        .join(crate::replica::producer_state::SNAPSHOT_FILE)
        .with_extension("tmp");
    // The producer's next batch is appended while the snapshot is written.
    let snapshot = {
        let l = l.clone();
        move || l.snapshot_producer_state(0)
    };
    let got = while_a_write_is_stuck(&tmp, snapshot, move || {
        let next = sequenced(3, 2);
        let valid = l.log().validate(&next).unwrap();
        l.append_as_leader(&next, &valid, 0, false)
            .map(|(i, _)| i.first_offset)
    });
    let first_offset = got
        .expect("the append waited for the snapshot's file write")
        .unwrap();
    assert_eq!(first_offset, 3);
}

#[test]
fn log_append_time_producers_expire_by_the_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: crate::log::TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let l = replica_with(dir.path(), 1, config);
    l.apply_state(&state(1, 1, &[1]), &[1, 2, 3], 10).unwrap();
    // The producer's clock says 1000; the leader's says `now`.
    let now = 1_800_000_000_000;
    let first = sequenced(0, 3);
    let valid = l.log().validate(&first).unwrap();
    l.append_as_leader(&first, &valid, now, false).unwrap();
    // Producers idle since before now - 1 s go: this one wrote at `now`.
    l.snapshot_producer_state(now - 1000).unwrap();
    let next = sequenced(3, 1);
    let valid = l.log().validate(&next).unwrap();
    let (info, _) = l
        .append_as_leader(&next, &valid, now, false)
        .expect("the producer is still known, so its next sequence is accepted");
    assert_eq!(info.first_offset, 3);
}

#[tokio::test]
async fn delete_records_moves_the_leaders_start_and_answers_once_the_isr_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (l, f2, f3) = (
        Arc::new(replica(dir.path(), 1)),
        replica(dir.path(), 2),
        replica(dir.path(), 3),
    );
    let st = state(1, 3, &[1, 2, 3]);
    l.apply_state(&st, &[1, 2, 3], 10).unwrap();
    f2.apply_state(&st, &[1, 2, 3], 10).unwrap();
    f3.apply_state(&st, &[1, 2, 3], 10).unwrap();
    append(&l, 10, false).unwrap();
    for _ in 0..2 {
        replicate(&l, &f2, 2);
        replicate(&l, &f3, 3);
    }
    assert_eq!(l.high_watermark(), 10);
    append(&l, 5, false).unwrap(); // not committed: offsets 10..15

    // Only committed records can go; a follower refuses.
    for offset in [11, -2] {
        assert!(
            matches!(
                l.delete_records_before(offset),
                Err(Error::OffsetOutOfRange { .. })
            ),
            "{offset}"
        );
    }
    assert!(matches!(
        f2.delete_records_before(3),
        Err(Error::NotLeaderOrFollower { .. })
    ));
    assert_eq!(l.log().log_start_offset(), 0, "refusals changed nothing");

    assert_eq!(l.delete_records_before(4).unwrap(), 4);
    assert_eq!(l.log().log_start_offset(), 4);
    assert!(matches!(
        l.read(3, 1 << 20),
        Err(Error::OffsetOutOfRange { .. })
    ));
    // The followers have not heard yet: the low watermark waits for them.
    assert_eq!(l.low_watermark(), 0);
    assert!(matches!(
        l.wait_for_low_watermark(4, Duration::from_millis(50)).await,
        Err(Error::RequestTimedOut { .. })
    ));
    let waiter = tokio::spawn({
        let l = l.clone();
        async move { l.wait_for_low_watermark(4, Duration::from_secs(10)).await }
    });
    // A fetch tells each follower the leader's start; the next one tells
    // the leader the follower's.
    for _ in 0..2 {
        replicate(&l, &f2, 2);
    }
    assert_eq!(f2.log().log_start_offset(), 4);
    assert!(
        !waiter.is_finished(),
        "broker 3 is in the ISR and has not deleted"
    );
    for _ in 0..2 {
        replicate(&l, &f3, 3);
    }
    assert_eq!(f3.log().log_start_offset(), 4);
    assert_eq!(waiter.await.unwrap().unwrap(), 4);
    assert_eq!(l.low_watermark(), 4);

    // -1: everything committed. Followers never pass their own HW.
    assert_eq!(l.delete_records_before(-1).unwrap(), l.high_watermark());
    assert_eq!(
        l.delete_records_before(2).unwrap(),
        l.high_watermark(),
        "never back"
    );
}
