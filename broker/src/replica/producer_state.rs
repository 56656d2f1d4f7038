//! Idempotent producer state of one partition: the last sequence numbers
//! each producer id wrote (Kafka's `ProducerStateManager`).
//!
//! A producer stamps `(producer id, epoch, base sequence)` into every batch
//! and numbers its batches densely per partition. The leader accepts a batch
//! only if it continues the producer's sequence; a batch it already has
//! (one of the last [`BATCHES_KEPT`], as a retry after a lost response would
//! be) is answered with the offsets it was written at and not written again;
//! a gap is refused. Followers track the same state from the batches they
//! copy, so a new leader continues where the old one stopped.
//!
//! The state is rebuilt from the log on start-up and after truncation:
//! [`SNAPSHOT_FILE`] (written periodically and at shutdown) says what it was
//! at some offset, and the batch headers after that offset are replayed.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use runnel_proto::batch::{self, BatchHeader};
use serde::{Deserialize, Serialize};

use crate::log::Log;
use crate::{Error, Result};

/// Batches remembered per producer for duplicate detection (Kafka keeps 5,
/// its limit on in-flight requests per connection).
pub const BATCHES_KEPT: usize = 5;

/// File name inside the partition directory.
pub const SNAPSHOT_FILE: &str = "producer-state.snapshot";

/// Read size when replaying the log.
const REPLAY_CHUNK: usize = 4 << 20;

/// One batch a producer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ProducerEntry {
    epoch: i16,
    /// Oldest first, at most [`BATCHES_KEPT`].
    batches: VecDeque<BatchMeta>,
    /// Max timestamp of the last batch, for expiry.
    last_timestamp: i64,
}

/// What to do with a produced batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New and in sequence (or not idempotent): append it.
    Append,
    /// Already written at these offsets: answer with them, write nothing.
    Duplicate(BatchMeta),
}

/// Sequence state of every producer that wrote to one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStateMap {
    producers: HashMap<i64, ProducerEntry>,
}

#[derive(Serialize, Deserialize)]
struct Snapshot<'a> {
    version: u32,
    /// The state covers every batch below this offset.
    offset: i64,
    state: Cow<'a, ProducerStateMap>,
}

/// Kafka's sequence arithmetic: sequences wrap from `i32::MAX` to 0.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Whether `sequence` is ahead of `expected` (a gap, not a retry of
/// something older), with the wrap at `i32::MAX`: ahead means less than
/// half the sequence space further on.
pub fn sequence_ahead(sequence: i32, expected: i32) -> bool {
    let distance = (i64::from(sequence) - i64::from(expected)).rem_euclid(1 << 31);
    distance > 0 && distance < 1 << 30
}

impl ProducerStateMap {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Check the batches of one produce request, in order, as the leader
    /// appending them would. Either all are new (append them all) or all are
    /// retries of what is already written (the first one's offsets are
    /// returned); anything else is refused and nothing is written.
    pub fn check(&self, tp: &str, headers: &[&BatchHeader]) -> Result<SequenceCheck> {
        // Later batches of the same request continue earlier ones.
        let mut pending: HashMap<i64, (i16, i32)> = HashMap::new();
        let mut duplicates = Vec::new();
        for h in headers {
            if !h.has_producer_id() {
                continue;
            }
            let last_seq = increment_sequence(h.base_sequence, h.last_offset_delta);
            let entry = self.producers.get(&h.producer_id);
            let known = pending
                .get(&h.producer_id)
                .copied()
                .or_else(|| entry.and_then(|e| e.batches.back().map(|b| (e.epoch, b.last_seq))));
            if let Some(e) = entry
                && h.producer_epoch < e.epoch
            {
                return Err(Error::InvalidProducerEpoch {
                    topic_partition: tp.to_owned(),
                    producer_id: h.producer_id,
                    epoch: h.producer_epoch,
                    current: e.epoch,
                });
            }
            if let Some(e) = entry
                && e.epoch == h.producer_epoch
                && !pending.contains_key(&h.producer_id)
                && let Some(dup) = e
                    .batches
                    .iter()
                    .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
            {
                duplicates.push(*dup);
                continue;
            }
            let expected = match known {
                Some((epoch, last)) if epoch == h.producer_epoch => increment_sequence(last, 1),
                // A new producer, or a new epoch of one, starts at 0.
                _ => 0,
            };
            if h.base_sequence != expected {
                return Err(Error::OutOfOrderSequence {
                    topic_partition: tp.to_owned(),
                    producer_id: h.producer_id,
                    sequence: h.base_sequence,
                    expected,
                });
            }
            pending.insert(h.producer_id, (h.producer_epoch, last_seq));
        }
        match (duplicates.first(), pending.is_empty()) {
            (None, _) => Ok(SequenceCheck::Append),
            (Some(first), true) => Ok(SequenceCheck::Duplicate(*first)),
            (Some(_), false) => Err(Error::InvalidRequest(format!(
                "produce to {tp} mixes retried batches with new ones; send them separately"
            ))),
        }
    }

    /// Remember a batch written at `first_offset` (leader or follower).
    pub fn record(&mut self, h: &BatchHeader, first_offset: i64) {
        if !h.has_producer_id() {
            return;
        }
        let meta = BatchMeta {
            first_seq: h.base_sequence,
            last_seq: increment_sequence(h.base_sequence, h.last_offset_delta),
            first_offset,
            last_offset: first_offset + i64::from(h.last_offset_delta),
        };
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: h.max_timestamp,
            });
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(meta);
        entry.last_timestamp = entry.last_timestamp.max(h.max_timestamp);
    }

    /// Forget producers silent since before `cutoff_ms` (Kafka's
    /// `producer.id.expiration.ms`); returns how many went.
    pub fn expire(&mut self, cutoff_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| e.last_timestamp >= cutoff_ms);
        before - self.producers.len()
    }

    /// Replay the batch headers of `log` in `[from, log end)` into this state.
    pub fn replay(&mut self, log: &Log, from: i64) -> Result<()> {
        let mut offset = from.max(log.log_start_offset());
        let end = log.log_end_offset();
        while offset < end {
            let read = log.read(offset, REPLAY_CHUNK, end)?;
            if read.records.is_empty() {
                break;
            }
            for item in batch::batches(&read.records) {
                let (h, _) = item.map_err(|e| Error::Storage {
                    path: log.dir().to_owned(),
                    reason: format!("unreadable batch while rebuilding producer state: {e}"),
                })?;
                if h.next_offset() <= offset {
                    continue;
                }
                self.record(&h, h.base_offset);
                offset = h.next_offset();
            }
        }
        Ok(())
    }

    /// The state of `log` up to its end: the snapshot in its directory if it
    /// is not past the end, plus the batches after it.
    pub fn rebuild(log: &Log) -> Result<Self> {
        let (mut state, from) = match read_snapshot(log.dir())? {
            Some(s) if s.offset <= log.log_end_offset() && s.offset >= log.log_start_offset() => {
                (s.state.into_owned(), s.offset)
            }
            _ => (ProducerStateMap::default(), log.log_start_offset()),
        };
        state.replay(log, from)?;
        Ok(state)
    }

    /// Persist this state as covering every batch below `offset`.
    pub fn write_snapshot(&self, dir: &Path, offset: i64) -> Result<()> {
        let path = snapshot_path(dir);
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec(&Snapshot {
            version: 1,
            offset,
            state: Cow::Borrowed(self),
        })
        .expect("producer state serializes");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            // A full disk fails the write half-way: do not keep the blocks.
            let _ = std::fs::remove_file(&tmp);
            Error::io("writing producer state snapshot", &path, e)
        })
    }
}

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE)
}

fn read_snapshot(dir: &Path) -> Result<Option<Snapshot<'static>>> {
    let path = snapshot_path(dir);
    match std::fs::read(&path) {
        // An unreadable snapshot only costs a longer replay.
        Ok(bytes) => Ok(serde_json::from_slice(&bytes)
            .inspect_err(|e| tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable producer state snapshot"))
            .ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading producer state snapshot", &path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_proto::batch::BatchBuilder;

    #[test]
    fn ahead_means_a_gap_across_the_wrap_too() {
        assert!(sequence_ahead(5, 2));
        assert!(!sequence_ahead(2, 2));
        assert!(!sequence_ahead(1, 2), "behind");
        assert!(sequence_ahead(3, i32::MAX - 1), "past the wrap");
        assert!(!sequence_ahead(i32::MAX - 1, 3), "behind, across the wrap");
    }

    fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        let mut b = BatchBuilder::new();
        for i in 0..records {
            b.push(i64::from(i), None, Some(b"v"), &[]);
        }
        let bytes = b.build().unwrap();
        let mut h = BatchHeader::parse(&bytes).unwrap();
        h.producer_id = pid;
        h.producer_epoch = epoch;
        h.base_sequence = seq;
        h
    }

    #[test]
    fn sequences_continue_duplicates_are_found_gaps_refused() {
        let mut s = ProducerStateMap::default();
        let first = header(7, 0, 0, 3);
        assert_eq!(s.check("t-0", &[&first]).unwrap(), SequenceCheck::Append);
        s.record(&first, 100);
        // The same batch again (a retry): its original offsets.
        assert_eq!(
            s.check("t-0", &[&first]).unwrap(),
            SequenceCheck::Duplicate(BatchMeta {
                first_seq: 0,
                last_seq: 2,
                first_offset: 100,
                last_offset: 102
            })
        );
        let gap = header(7, 0, 5, 1);
        let err = s.check("t-0", &[&gap]).unwrap_err().to_string();
        assert!(err.contains("expected 3"), "{err}");
        let next = header(7, 0, 3, 2);
        let after = header(7, 0, 5, 1);
        assert_eq!(
            s.check("t-0", &[&next, &after]).unwrap(),
            SequenceCheck::Append,
            "batches of one request continue each other"
        );
        // A new producer must start at 0; an old epoch is fenced.
        assert!(s.check("t-0", &[&header(8, 0, 4, 1)]).is_err());
        s.record(&header(7, 2, 0, 1), 110);
        let err = s.check("t-0", &[&header(7, 1, 1, 1)]).unwrap_err();
        assert!(
            matches!(err, Error::InvalidProducerEpoch { current: 2, .. }),
            "{err}"
        );
        // Non-idempotent batches are never checked.
        assert_eq!(
            s.check("t-0", &[&header(-1, -1, -1, 1)]).unwrap(),
            SequenceCheck::Append
        );
    }

    #[test]
    fn only_the_last_batches_are_remembered_and_sequences_wrap() {
        let mut s = ProducerStateMap::default();
        let mut seq = 0;
        for i in 0..(BATCHES_KEPT as i64 + 2) {
            let h = header(1, 0, seq, 1);
            s.record(&h, i);
            seq = increment_sequence(seq, 1);
        }
        assert!(
            s.check("t-0", &[&header(1, 0, 0, 1)]).is_err(),
            "too old to be known"
        );
        assert!(matches!(
            s.check("t-0", &[&header(1, 0, 2, 1)]).unwrap(),
            SequenceCheck::Duplicate(_)
        ));
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn rebuilt_from_snapshot_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let tp = crate::log::TopicPartition::new("t", 0);
        let log = Log::open(dir.path().join("t-0"), tp, Default::default(), false).unwrap();
        let mut live = ProducerStateMap::default();
        let append = |pid: i64, seq: i32, live: &mut ProducerStateMap| {
            let mut b = BatchBuilder::new();
            b.push(0, None, Some(b"v"), &[]);
            b.push(1, None, Some(b"w"), &[]);
            let mut bytes = b.build().unwrap().to_vec();
            let mut h = BatchHeader::parse(&bytes).unwrap();
            h.producer_id = pid;
            h.producer_epoch = 0;
            h.base_sequence = seq;
            bytes[..runnel_proto::batch::BATCH_HEADER_LEN].copy_from_slice(&h.to_bytes());
            // The header fields are inside the CRC: recompute it.
            let crc = crc32c::crc32c(&bytes[21..]);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
            let info = log.append(&bytes, 0, 0).unwrap();
            live.record(&h, info.first_offset);
        };
        append(1, 0, &mut live);
        append(2, 0, &mut live);
        live.write_snapshot(log.dir(), log.log_end_offset())
            .unwrap();
        append(1, 2, &mut live);
        append(3, 0, &mut live);
        assert_eq!(ProducerStateMap::rebuild(&log).unwrap(), live);
        // A snapshot past the end (after truncation) is ignored.
        live.write_snapshot(log.dir(), log.log_end_offset())
            .unwrap();
        log.truncate_to(4).unwrap();
        let rebuilt = ProducerStateMap::rebuild(&log).unwrap();
        assert_eq!(rebuilt.len(), 2, "producer 3 wrote after offset 4");
    }
}
