//! [`Log`]: the segments of one partition.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use runnel_proto::batch::{
    BatchHeader, batches, records, validate_batch, validate_batch_header, validate_batch_in,
};
use tracing::{debug, info, warn};

use super::preallocate::{self, Spare};
use super::segment::{ActiveSegment, Segment, SegmentPaths, truncate_segment};
use super::{
    FlushTicket, INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX, LogAppendInfo, LogConfig, LogReadInfo,
    TIME_INDEX_FILE_SUFFIX, TimestampType, TopicPartition, delete_dir_later, fsync_dir,
    parse_segment_file_name, wall_clock_ms,
};
use crate::{Error, Result};

/// One partition's log: a directory of segments, appended to at the end,
/// read anywhere between the log start offset and the log end offset.
///
/// Every method takes `&self`. Appends, rolls, retention and truncation
/// serialize on one writer lock; reads never take it: they load the log end
/// offset, clone the `Arc` of the segment they need out of a briefly held
/// map lock and `pread` from it, so a read never waits behind an append's
/// fsync.
///
/// ```no_run
/// # fn main() -> runnel_broker::Result<()> {
/// use runnel_broker::log::{Log, LogConfig, TopicPartition};
///
/// let tp = TopicPartition::new("orders", 0);
/// let log = Log::open("/data/orders-0".into(), tp, LogConfig::default(), false)?;
/// # let batch: Vec<u8> = Vec::new();
/// let appended = log.append(&batch, 0, 1_700_000_000_000)?;
/// let read = log.read(appended.first_offset, 1 << 20, log.log_end_offset())?;
/// # let _ = read;
/// # Ok(()) }
/// ```
pub struct Log {
    dir: PathBuf,
    tp: TopicPartition,
    config: RwLock<LogConfig>,
    /// Every segment by base offset, the active one last. Held only long
    /// enough to clone an `Arc` or insert/remove an entry.
    segments: RwLock<BTreeMap<i64, Arc<Segment>>>,
    writer: Mutex<Writer>,
    /// Cached from `segments` for lock-free reads.
    log_start_offset: AtomicI64,
    /// Published after each append's data and indexes are in place.
    log_end_offset: AtomicI64,
    /// Retention never deletes a record at or above this offset: the
    /// replica layer keeps it at the partition's high watermark, so records
    /// consumers cannot see yet, and followers may not have copied, stay
    /// (Kafka's rule). `i64::MAX` for a log nobody replicates (tests,
    /// tools), where everything appended counts.
    retention_limit: AtomicI64,
    /// Appends (by [`FlushTicket`] number) that a finished flush covers.
    flushed: AtomicU64,
    /// Held by [`Log::flush_through`] for its fsync, so appends that want
    /// one while it runs wait and then find themselves covered (group
    /// commit) instead of each paying an fsync.
    group_commit: Mutex<()>,
}

/// A log dropped without [`Log::close`] (a replica removed, a crash
/// simulated in tests) still lets its last roll's background thread finish.
/// That thread trims the sealed segment's index files (`set_len`); left
/// running, it could shrink a file that a log opened again on the same
/// directory has just memory-mapped at its old length, and the next read
/// of that mapping would fault with SIGBUS. The thread has one segment's
/// indexes to trim and fsync, so the wait is short.
impl Drop for Log {
    fn drop(&mut self) {
        if let Some(sealing) = self.writer.get_mut().sealing.take()
            && let Err(e) = sealing.wait()
        {
            warn!(topic = %self.tp.topic, partition = self.tp.partition, error = %e,
                "background seal of a dropped log failed");
        }
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("topic_partition", &self.tp.to_string())
            .field("log_start_offset", &self.log_start_offset())
            .field("log_end_offset", &self.log_end_offset())
            .field("segments", &self.num_segments())
            .finish()
    }
}

/// What only the writer touches.
struct Writer {
    active: ActiveSegment,
    /// Appends so far (never goes back, not even on truncation): the
    /// number of the last [`FlushTicket`] given out.
    appends: u64,
    /// Records appended since the last fsync (`flush.messages`).
    unflushed_messages: u64,
    /// When the last flush happened (`flush.ms`).
    last_flush_ms: i64,
    /// A segment file was created or deleted since the last flush, so the
    /// directory needs an fsync too.
    dir_dirty: bool,
    /// The fsync of the most recently sealed segment, running in the
    /// background so that a roll does not stall appends (Kafka flushes
    /// rolled segments asynchronously too). The next roll waits for it, so
    /// at most one sealed segment is ever unflushed: the one recovery
    /// checks along with the active segment.
    sealing: Option<Sealing>,
    /// The next segment's `.log`, being preallocated in the background
    /// (`preallocate`): started when the active segment is half full,
    /// taken by the next roll.
    spare: Option<Spare>,
    state: State,
}

struct Sealing {
    /// Weak: retention may delete the segment before the next roll (an
    /// idle partition keeps its last `Sealing` indefinitely), and its disk
    /// is only freed once no one holds the open file.
    segment: Weak<Segment>,
    path: PathBuf,
    fsync: std::thread::JoinHandle<Result<()>>,
}

impl Sealing {
    /// Wait for the background fsync and return its outcome.
    fn wait(self) -> Result<()> {
        self.fsync.join().unwrap_or_else(|_| {
            Err(Error::Storage {
                path: self.path,
                reason: "background fsync of a sealed segment panicked".to_owned(),
            })
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Flushed and indexes trimmed; reads still work, writes fail.
    Closed,
    /// Directory removed.
    Deleted,
}

/// The batches of one append, checked by [`Log::validate`]: proof that they
/// may be written, so the produce path can validate every partition of a
/// request first and append afterwards without a second CRC pass.
#[derive(Debug)]
pub struct ValidatedRecords {
    /// Start of each batch in the input, and its header.
    batches: Vec<(usize, BatchHeader)>,
    records: u32,
    offsets: i64,
    max_timestamp: i64,
}

impl ValidatedRecords {
    /// The header of every batch, in order.
    pub fn headers(&self) -> impl Iterator<Item = &BatchHeader> {
        self.batches.iter().map(|(_, h)| h)
    }

    /// Offsets the batches span (the sum of their record-offset ranges).
    pub fn offset_count(&self) -> i64 {
        self.offsets
    }
}

impl Log {
    /// Open the log in `dir` (created if missing), or start an empty one at
    /// offset 0.
    ///
    /// Every sealed segment's indexes are checked and rebuilt if needed. The
    /// last segment becomes the active one. With `recover` (the previous
    /// shutdown was not clean) the active segment and the most recently
    /// sealed one (whose fsync may not have finished) are scanned with CRC
    /// checks and cut at the first bad batch; if the sealed one is cut,
    /// the segment after it is deleted and it becomes the active one.
    pub fn open(dir: PathBuf, tp: TopicPartition, config: LogConfig, recover: bool) -> Result<Log> {
        if !dir.exists() {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io("creating partition directory", &dir, e))?;
            if let Some(parent) = dir.parent() {
                fsync_dir(parent)?;
            }
        }
        let bases = scan_dir(&dir)?;
        preallocate::remove_leftover(&dir);
        let mut segments = BTreeMap::new();
        let active = match bases.split_last() {
            None => ActiveSegment::create(&dir, 0, &config)?,
            Some((&last, sealed)) => {
                let mut cut = None;
                for (i, &base) in sealed.iter().enumerate() {
                    let next = bases[i + 1];
                    if recover && i + 1 == sealed.len() {
                        let (seg, was_cut) = Segment::recover_sealed(&dir, base, &config, &tp)?;
                        if was_cut {
                            cut = Some(seg);
                            break;
                        }
                        segments.insert(base, Arc::new(seg));
                    } else {
                        let seg = Segment::open_sealed(&dir, base, next, &config, &tp)?;
                        segments.insert(base, Arc::new(seg));
                    }
                }
                match cut {
                    None => ActiveSegment::open(&dir, last, recover, &config, &tp)?,
                    Some(seg) => {
                        // What followed the cut cannot be trusted to follow on.
                        warn!(
                            topic = %tp.topic, partition = tp.partition, base_offset = last,
                            "deleting the active segment after a cut in the segment before it"
                        );
                        SegmentPaths::new(&dir, last).delete()?;
                        ActiveSegment::load(Arc::new(seg), false, &config, &tp)?
                    }
                }
            }
        };
        segments.insert(active.seg.base_offset(), active.seg.clone());
        let log_end_offset = active.next_offset;
        // DeleteRecords may have moved the start inside a segment. A
        // checkpoint past the recovered end (its records were acknowledged
        // but not yet fsynced when the broker died) starts the log at its end.
        let checkpointed = super::start_offset::read(&dir)?.map_or(0, |c| c.min(log_end_offset));
        let log_start_offset =
            checkpointed.max(*segments.keys().next().expect("at least the active segment"));
        info!(
            topic = %tp.topic, partition = tp.partition, segments = segments.len(), log_start_offset,
            log_end_offset, recover, "opened log"
        );
        Ok(Log {
            dir,
            tp,
            config: RwLock::new(config),
            segments: RwLock::new(segments),
            writer: Mutex::new(Writer {
                active,
                appends: 0,
                unflushed_messages: 0,
                last_flush_ms: wall_clock_ms(),
                dir_dirty: bases.is_empty(),
                sealing: None,
                spare: None,
                state: State::Open,
            }),
            log_start_offset: AtomicI64::new(log_start_offset),
            log_end_offset: AtomicI64::new(log_end_offset),
            retention_limit: AtomicI64::new(i64::MAX),
            flushed: AtomicU64::new(0),
            group_commit: Mutex::new(()),
        })
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Tell retention the partition's high watermark: segments holding any
    /// offset at or above it are kept.
    pub fn set_retention_limit(&self, high_watermark: i64) {
        self.retention_limit
            .store(high_watermark, Ordering::Release);
    }

    /// First offset still readable: the oldest segment's base offset, or
    /// where [`Log::advance_log_start_offset`] moved it.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    /// Bytes of all `.log` files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.read().values().map(|s| s.size()).sum()
    }

    pub fn num_segments(&self) -> usize {
        self.segments.read().len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.read().keys().copied().collect()
    }

    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    /// Replace the config; see [`LogConfig`] for when each knob applies.
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    fn corrupt(&self, position: usize, source: runnel_proto::Error) -> Error {
        Error::CorruptBatch {
            topic_partition: self.tp.to_string(),
            position,
            source,
        }
    }

    fn out_of_range(&self, offset: i64, log_start_offset: i64, log_end_offset: i64) -> Error {
        Error::OffsetOutOfRange {
            topic_partition: self.tp.to_string(),
            offset,
            log_start_offset,
            log_end_offset,
        }
    }

    fn check_open(&self, w: &Writer) -> Result<()> {
        match w.state {
            State::Open => Ok(()),
            State::Closed => Err(Error::NotAvailable(format!("log {} is closed", self.tp))),
            State::Deleted => Err(Error::NotAvailable(format!("log {} was deleted", self.tp))),
        }
    }

    /// Check every batch of an append (framing, CRC, record count, every
    /// record there and well-formed, size <= `max.message.bytes`, nothing
    /// left over, and for a CreateTime topic every record's timestamp
    /// within `message.timestamp.before.max.ms` / `after.max.ms` of this
    /// broker's clock) without writing anything.
    pub fn validate(&self, records: &[u8]) -> Result<ValidatedRecords> {
        let (max, timestamp_type, before, after) = {
            let c = self.config.read();
            (
                c.max_message_bytes,
                c.message_timestamp_type,
                c.message_timestamp_before_max_ms,
                c.message_timestamp_after_max_ms,
            )
        };
        if timestamp_type == TimestampType::LogAppendTime
            || (before == i64::MAX && after == i64::MAX)
        {
            return self.validate_with(records, max, validate_batch);
        }
        let now = wall_clock_ms();
        let range = now.saturating_sub(before)..=now.saturating_add(after);
        self.validate_with(records, max, |batch| {
            validate_batch_in(batch, range.clone())
        })
        .map_err(|e| match e {
            Error::CorruptBatch {
                topic_partition,
                source: runnel_proto::Error::TimestampOutOfRange { index, timestamp },
                ..
            } => {
                let late = timestamp > now;
                Error::InvalidTimestamp {
                    topic_partition,
                    index,
                    timestamp,
                    now,
                    distance: timestamp.abs_diff(now).min(i64::MAX as u64) as i64,
                    direction: if late { "after" } else { "before" },
                    config: if late {
                        "message.timestamp.after.max.ms"
                    } else {
                        "message.timestamp.before.max.ms"
                    },
                    limit: if late { after } else { before },
                }
            }
            other => other,
        })
    }

    /// [`validate`](Self::validate) for batches the leader already checked
    /// in full (a follower's copies): the records are not walked again.
    pub fn validate_replicated(&self, records: &[u8]) -> Result<ValidatedRecords> {
        let max = self.config.read().max_message_bytes;
        self.validate_with(records, max, validate_batch_header)
    }

    fn validate_with(
        &self,
        records: &[u8],
        max_message_bytes: usize,
        check: impl Fn(&[u8]) -> runnel_proto::Result<BatchHeader>,
    ) -> Result<ValidatedRecords> {
        let mut out = ValidatedRecords {
            batches: Vec::new(),
            records: 0,
            offsets: 0,
            max_timestamp: -1,
        };
        let mut it = batches(records);
        loop {
            let at = it.position();
            let Some(item) = it.next() else { break };
            let (_, batch) = item.map_err(|e| self.corrupt(at, e))?;
            if batch.len() > max_message_bytes {
                return Err(Error::MessageTooLarge {
                    topic_partition: self.tp.to_string(),
                    size: batch.len(),
                    max: max_message_bytes,
                });
            }
            let header = check(batch).map_err(|e| self.corrupt(at, e))?;
            out.records = out.records.saturating_add(header.records_count as u32);
            out.offsets += i64::from(header.last_offset_delta) + 1;
            out.max_timestamp = out.max_timestamp.max(header.max_timestamp);
            out.batches.push((at, header));
        }
        if out.batches.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "produce to {} carries no record batches",
                self.tp
            )));
        }
        // Segment positions are 32-bit; no sane request comes near this.
        if records.len() > i32::MAX as usize {
            return Err(Error::MessageTooLarge {
                topic_partition: self.tp.to_string(),
                size: records.len(),
                max: i32::MAX as usize,
            });
        }
        Ok(out)
    }

    /// Append record batches as the partition leader (or as a follower
    /// copying the leader's batches: offsets are reassigned from the log
    /// end offset either way, which is what the leader gave them).
    ///
    /// Every batch is validated (framing, CRC, record count, size <=
    /// `max.message.bytes`, nothing left over) before anything is written;
    /// a rejected append changes nothing. Each batch is then stamped with
    /// its base offset and `leader_epoch` and written in one vectored write.
    /// `now_ms` is the broker's clock, for `segment.ms`.
    pub fn append(&self, records: &[u8], leader_epoch: i32, now_ms: i64) -> Result<LogAppendInfo> {
        let valid = self.validate(records)?;
        self.append_validated(records, &valid, leader_epoch, now_ms)
    }

    /// [`append`](Self::append) for `records` that [`validate`](Self::validate)
    /// has already accepted (`valid` must come from these exact bytes).
    pub fn append_validated(
        &self,
        records: &[u8],
        valid: &ValidatedRecords,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<LogAppendInfo> {
        let info = self.append_deferring_flush(records, valid, leader_epoch, now_ms)?;
        if let Some(ticket) = info.flush {
            self.flush_through(ticket)?;
        }
        Ok(LogAppendInfo {
            flush: None,
            ..info
        })
    }

    /// [`append_validated`](Self::append_validated) without the fsync the
    /// flush policy may want: that comes back as
    /// [`LogAppendInfo::flush`], for the caller to pass to
    /// [`flush_through`](Self::flush_through) before acknowledging (the
    /// produce path does it off the async runtime's threads, and several
    /// requests share one fsync).
    pub fn append_deferring_flush(
        &self,
        records: &[u8],
        valid: &ValidatedRecords,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<LogAppendInfo> {
        self.append_stamped(records, valid, Some(leader_epoch), now_ms, None)
    }

    /// Append batches copied from the leader, as a follower: each batch
    /// keeps the offsets and leader epoch the leader gave it, and the first
    /// must start exactly at this log's end offset (anything else means the
    /// follower asked for the wrong range; nothing is written).
    pub fn append_as_follower(
        &self,
        records: &[u8],
        valid: &ValidatedRecords,
        now_ms: i64,
    ) -> Result<LogAppendInfo> {
        let first = valid.batches[0].1.base_offset;
        let info = self.append_stamped(records, valid, None, now_ms, Some(first))?;
        if let Some(ticket) = info.flush {
            self.flush_through(ticket)?;
        }
        Ok(LogAppendInfo {
            flush: None,
            ..info
        })
    }

    fn append_stamped(
        &self,
        records: &[u8],
        valid: &ValidatedRecords,
        leader_epoch: Option<i32>,
        now_ms: i64,
        expect_first_offset: Option<i64>,
    ) -> Result<LogAppendInfo> {
        let config = self.config();
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        let first_offset = w.active.next_offset;
        if let Some(expected) = expect_first_offset {
            let mut next = expected;
            let contiguous = valid.batches.iter().all(|(_, h)| {
                let ok = h.base_offset == next;
                next = h.next_offset();
                ok
            });
            if expected != first_offset || !contiguous {
                return Err(Error::Storage {
                    path: self.dir.clone(),
                    reason: format!(
                        "replicated batches start at offset {expected} (contiguous: {contiguous}) \
                         but the log ends at {first_offset}"
                    ),
                });
            }
        }
        let last_offset = first_offset + valid.offsets - 1;
        if let Some(reason) = roll_reason(
            &w.active,
            &config,
            records.len(),
            valid.batches.len(),
            last_offset,
            now_ms,
        ) {
            self.roll(&mut w, &config, reason)?;
        }
        // The leader's clock, for a LogAppendTime topic; a follower keeps
        // what its leader stamped.
        let log_append_time = (leader_epoch.is_some()
            && config.message_timestamp_type == TimestampType::LogAppendTime)
            .then_some(now_ms);
        w.active.append(
            records,
            &valid.batches,
            leader_epoch,
            log_append_time,
            now_ms,
            config.index_interval_bytes,
        )?;
        debug_assert_eq!(w.active.next_offset, last_offset + 1);
        w.active.drop_behind(config.page_cache_drop_behind_bytes);
        if config.preallocate && w.spare.is_none() && w.active.size() >= config.segment_bytes / 2 {
            w.spare = Spare::start(&self.dir, config.segment_bytes);
        }
        self.log_end_offset
            .store(w.active.next_offset, Ordering::Release);
        w.unflushed_messages += u64::from(valid.records);
        w.appends += 1;
        let flush =
            (w.unflushed_messages >= config.flush_messages).then_some(FlushTicket(w.appends));
        Ok(LogAppendInfo {
            first_offset,
            last_offset,
            records: valid.records,
            bytes: records.len(),
            max_timestamp: log_append_time.unwrap_or(valid.max_timestamp),
            log_append_time_ms: log_append_time.unwrap_or(-1),
            flush,
        })
    }

    /// Seal the active segment and start a new one at the log end offset.
    fn roll(&self, w: &mut Writer, config: &LogConfig, reason: &'static str) -> Result<()> {
        // Appends to the partition wait for this: its time is in the log.
        let started = std::time::Instant::now();
        let base_offset = w.active.next_offset;
        // At most one sealed segment may be unflushed (recovery relies on
        // it): wait for the previous roll's fsync. It had a whole segment's
        // worth of appends to finish, so this rarely waits.
        if let Some(sealing) = w.sealing.take() {
            sealing.wait()?;
        }
        w.active.seal_time_index();
        let spare = w.spare.take().and_then(Spare::finish);
        // On failure the active segment stays as it is (its indexes are
        // trimmed only after a successful roll) and takes the next append.
        let new = ActiveSegment::create_on_roll(&self.dir, base_offset, config, spare)?;
        self.segments.write().insert(base_offset, new.seg.clone());
        let mut old = std::mem::replace(&mut w.active, new);
        let drop_behind = (config.page_cache_drop_behind_bytes >= 0)
            .then(|| w.active.continue_drop_behind(&mut old));
        let segment = old.seg.clone();
        let fsync = std::thread::Builder::new()
            .name("runnel-seal-fsync".to_owned())
            .spawn(move || {
                segment.trim_indexes()?;
                if let Err(e) = segment.trim_preallocation() {
                    // Only disk the segment keeps reserved until retention
                    // deletes it: not worth failing the roll for.
                    warn!(error = %e, "cannot trim a sealed segment's preallocation");
                }
                segment.flush()?;
                if let Some(sealed) = drop_behind {
                    // Clean now: what the window has already passed can go.
                    sealed.flushed();
                }
                Ok(())
            })
            .map_err(|e| Error::io("spawning fsync thread", &self.dir, e))?;
        w.sealing = Some(Sealing {
            segment: Arc::downgrade(&old.seg),
            path: old.seg.paths().log.clone(),
            fsync,
        });
        w.dir_dirty = true;
        // Their records are in the sealed segment, whose fsync is under way
        // (and which `flush` fsyncs too while it is).
        w.unflushed_messages = 0;
        info!(
            topic = %self.tp.topic, partition = self.tp.partition, base_offset,
            previous_size = old.size(), reason,
            elapsed_us = started.elapsed().as_micros() as u64, "rolled segment"
        );
        Ok(())
    }

    /// Whole batches starting with the one that contains `offset`, about
    /// `max_bytes` of them (the first batch comes whole even if it is
    /// bigger, so a consumer is never stuck), only batches whose last offset
    /// is below `max_offset` (the high watermark). Reads continue across
    /// segment boundaries.
    ///
    /// `offset == log_end_offset` (or nothing below `max_offset`) gives an
    /// empty result; an offset below the log start offset or above the log
    /// end offset is [`Error::OffsetOutOfRange`].
    pub fn read(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<LogReadInfo> {
        let log_end_offset = self.log_end_offset();
        let log_start_offset = self.log_start_offset();
        if offset < log_start_offset || offset > log_end_offset {
            return Err(self.out_of_range(offset, log_start_offset, log_end_offset));
        }
        let done = |buf: Vec<u8>| LogReadInfo {
            records: Bytes::from(buf),
            log_start_offset,
            log_end_offset,
        };
        if offset == log_end_offset || offset >= max_offset {
            return Ok(done(Vec::new()));
        }
        let interval = self.config.read().index_interval_bytes;
        let first = self
            .segments
            .read()
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s.clone());
        // Retention may have removed the segment since we loaded the start offset.
        let Some(mut seg) = first else {
            return Err(self.out_of_range(offset, self.log_start_offset(), log_end_offset));
        };
        let mut buf = Vec::new();
        let mut target = offset;
        loop {
            let end = seg.size();
            if let Some((position, header)) = seg.find_batch(target, end, interval)? {
                if header.base_offset >= log_end_offset || header.last_offset() >= max_offset {
                    break;
                }
                let budget = max_bytes.saturating_sub(buf.len());
                let want = if buf.is_empty() {
                    budget.max(header.total_size())
                } else {
                    budget
                };
                let want = want.min(usize::try_from(end - position).unwrap_or(usize::MAX));
                if want < header.total_size() {
                    break;
                }
                let from = buf.len();
                buf.reserve_exact(want);
                seg.read_into(position, want, &mut buf)?;
                // Keep the whole batches below max_offset; stop at a batch
                // the budget cut or the high watermark excludes.
                let mut kept = 0;
                for item in batches(&buf[from..]) {
                    match item {
                        Ok((h, b))
                            if h.last_offset() < max_offset && h.base_offset < log_end_offset =>
                        {
                            kept += b.len();
                            target = h.next_offset();
                        }
                        _ => break,
                    }
                }
                buf.truncate(from + kept);
                // Go on into the next segment only if this one was used up.
                if position + kept as u64 != end || kept == 0 || buf.len() >= max_bytes {
                    break;
                }
            }
            let next = self
                .segments
                .read()
                .range(seg.base_offset() + 1..)
                .next()
                .map(|(_, s)| s.clone());
            match next {
                Some(s) => seg = s,
                None => break,
            }
        }
        Ok(done(buf))
    }

    /// The first record whose timestamp is `>= timestamp_ms`, as `(offset,
    /// timestamp)`: Kafka's ListOffsets by time. The time index finds the
    /// segment and a start position, a scan finds the first batch whose max
    /// timestamp is late enough, and its records are decoded to find the
    /// record. `None` if no record is that recent.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>> {
        let log_end_offset = self.log_end_offset();
        // Records below it (DeleteRecords) are not to be found any more.
        let log_start_offset = self.log_start_offset();
        let interval = self.config.read().index_interval_bytes;
        let segments: Vec<Arc<Segment>> = self.segments.read().values().cloned().collect();
        for seg in segments {
            if seg.max_timestamp() < timestamp_ms {
                continue;
            }
            let end = seg.size();
            let Some((position, header)) = seg.find_timestamp(timestamp_ms, end, interval)? else {
                continue;
            };
            if header.base_offset >= log_end_offset {
                return Ok(None);
            }
            let mut buf = Vec::with_capacity(header.total_size());
            seg.read_into(position, header.total_size(), &mut buf)?;
            let batch = Bytes::from(buf);
            // Compressed batches we cannot decode answer with the batch.
            let found = records(&batch).ok().and_then(|mut recs| {
                recs.find_map(|r| {
                    r.ok()
                        .filter(|r| r.timestamp >= timestamp_ms && r.offset >= log_start_offset)
                        .map(|r| (r.offset, r.timestamp))
                })
            });
            return Ok(Some(found.unwrap_or((
                header.base_offset.max(log_start_offset),
                header.max_timestamp,
            ))));
        }
        Ok(None)
    }

    /// fsync the active segment, the most recently sealed one if its
    /// background fsync may still be running, and the directory if
    /// segments were created or deleted since the last flush. Everything
    /// appended before the call is on disk when it returns.
    pub fn flush(&self) -> Result<()> {
        self.flush_at(wall_clock_ms())
    }

    /// A ticket covering every append so far, if a `flush.messages` policy
    /// is set and something is not yet flushed: for an idempotent retry
    /// answered from the log, whose first append's flush may still be
    /// under way (or may have failed).
    pub fn pending_flush(&self) -> Option<FlushTicket> {
        if self.config.read().flush_messages == u64::MAX {
            return None;
        }
        let appends = self.writer.lock().appends;
        (self.flushed.load(Ordering::Acquire) < appends).then_some(FlushTicket(appends))
    }

    /// Make the append `ticket` was given for durable: fsync, unless a
    /// flush that started after that append has finished. Callers that
    /// come while an fsync runs wait for it, and most then need none of
    /// their own: one fsync per group of concurrent appends. Blocks; call
    /// it outside the async runtime's threads.
    pub fn flush_through(&self, ticket: FlushTicket) -> Result<()> {
        if self.flushed.load(Ordering::Acquire) >= ticket.0 {
            return Ok(());
        }
        let _turn = self.group_commit.lock();
        if self.flushed.load(Ordering::Acquire) >= ticket.0 {
            return Ok(());
        }
        self.flush()
    }

    fn flush_at(&self, now_ms: i64) -> Result<()> {
        let (seg, sealed, unflushed, dir_dirty, appends) = {
            let mut w = self.writer.lock();
            if w.state == State::Deleted {
                return Ok(());
            }
            let sealed = w
                .sealing
                .as_ref()
                .filter(|s| !s.fsync.is_finished())
                .and_then(|s| s.segment.upgrade());
            (
                w.active.seg.clone(),
                sealed,
                w.unflushed_messages,
                std::mem::take(&mut w.dir_dirty),
                w.appends,
            )
        };
        // Outside the writer lock; an fsync racing the background one on the
        // same sealed segment is harmless.
        let result = sealed
            .map_or(Ok(()), |s| s.flush())
            .and_then(|()| seg.flush_log())
            .and_then(|()| {
                if dir_dirty {
                    fsync_dir(&self.dir)
                } else {
                    Ok(())
                }
            });
        let mut w = self.writer.lock();
        if let Err(e) = result {
            w.dir_dirty |= dir_dirty;
            return Err(e);
        }
        w.unflushed_messages = w.unflushed_messages.saturating_sub(unflushed);
        w.last_flush_ms = now_ms;
        self.flushed.fetch_max(appends, Ordering::Release);
        debug!(topic = %self.tp.topic, partition = self.tp.partition, messages = unflushed, "flushed log");
        Ok(())
    }

    /// The `flush.ms` policy: flush if there are unflushed records and the
    /// last flush is at least `flush.ms` old. Returns whether it flushed.
    pub fn maybe_flush(&self, now_ms: i64) -> Result<bool> {
        let flush_ms = self.config.read().flush_ms;
        let due = {
            let w = self.writer.lock();
            w.state == State::Open
                && w.unflushed_messages > 0
                && i128::from(now_ms) - i128::from(w.last_flush_ms) >= i128::from(flush_ms)
        };
        if due {
            self.flush_at(now_ms)?;
        }
        Ok(due)
    }

    /// Records appended but not yet fsynced.
    pub fn unflushed_messages(&self) -> u64 {
        self.writer.lock().unflushed_messages
    }

    /// Apply `retention.ms` and `retention.bytes`: delete whole segments,
    /// oldest first. By time, while a segment's largest timestamp is more
    /// than `retention.ms` before `now_ms`; by size, while the log without
    /// its oldest segment is still at least `retention.bytes`. If that
    /// includes the active segment, it is rolled first so the log keeps an
    /// (empty) active segment at the log end offset. Only segments wholly
    /// below the [retention limit](Self::set_retention_limit) (the high
    /// watermark) go. Returns how many segments were deleted.
    pub fn delete_old_segments(&self, now_ms: i64) -> Result<usize> {
        let config = self.config();
        if config.retention_ms < 0 && config.retention_bytes < 0 {
            return Ok(0);
        }
        let mut w = self.writer.lock();
        if w.state != State::Open {
            return Ok(0);
        }
        let segments: Vec<Arc<Segment>> = self.segments.read().values().cloned().collect();
        let active_base = w.active.seg.base_offset();
        let log_end = w.active.next_offset;
        let limit = self.retention_limit.load(Ordering::Acquire);
        let deletable = |i: usize| {
            let s = &segments[i];
            // An empty active segment is never deleted: it is where LEO lives.
            let empty_active = s.base_offset() == active_base && s.size() == 0;
            // Every offset of segment i is below the next one's base.
            let end = segments
                .get(i + 1)
                .map_or(log_end, |next| next.base_offset());
            !empty_active && end <= limit
        };
        let mut n = 0;
        if config.retention_ms >= 0 {
            while n < segments.len()
                && deletable(n)
                && now_ms.saturating_sub(segments[n].largest_timestamp()) > config.retention_ms
            {
                n += 1;
            }
        }
        let by_time = n;
        if config.retention_bytes >= 0 {
            let total: u64 = segments[n..].iter().map(|s| s.size()).sum();
            let mut excess = total as i64 - config.retention_bytes;
            while n < segments.len() && deletable(n) && excess - segments[n].size() as i64 >= 0 {
                excess -= segments[n].size() as i64;
                n += 1;
            }
        }
        if n == 0 {
            return Ok(0);
        }
        if n == segments.len() {
            self.roll(&mut w, &config, "retention")?;
        }
        let doomed = &segments[..n];
        {
            let mut map = self.segments.write();
            for s in doomed {
                map.remove(&s.base_offset());
            }
            let start = *map.keys().next().expect("the active segment remains");
            // Never back: DeleteRecords may have moved it past that base.
            self.log_start_offset.fetch_max(start, Ordering::AcqRel);
        }
        w.dir_dirty = true;
        for (i, s) in doomed.iter().enumerate() {
            s.delete_files()?;
            info!(
                topic = %self.tp.topic, partition = self.tp.partition, base_offset = s.base_offset(),
                size = s.size(), largest_timestamp = s.largest_timestamp(),
                reason = if i < by_time { "retention.ms" } else { "retention.bytes" },
                log_start_offset = self.log_start_offset(), "deleted segment"
            );
        }
        Ok(n)
    }

    /// Kafka's DeleteRecords on this log: records below `offset` are no
    /// longer readable (reads below it are [`Error::OffsetOutOfRange`],
    /// ListOffsets earliest gives it), and segments wholly below it are
    /// deleted. The new start is checkpointed before anything is deleted, so
    /// a restart does not bring the records back. Never moves the start
    /// back; past the log end offset is out of range. Returns the log start
    /// offset afterwards.
    ///
    /// The caller bounds `offset` by the high watermark (the partition's
    /// leader) or the leader's log start (a follower).
    pub fn advance_log_start_offset(&self, offset: i64) -> Result<i64> {
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        let log_end = w.active.next_offset;
        let current = self.log_start_offset();
        if offset > log_end {
            return Err(self.out_of_range(offset, current, log_end));
        }
        if offset <= current {
            return Ok(current);
        }
        super::start_offset::write(&self.dir, offset)?;
        self.log_start_offset.store(offset, Ordering::Release);
        // Segments whose every offset is below the new start: each one's
        // records end where the next one begins; the active one stays.
        let doomed: Vec<Arc<Segment>> = {
            let mut map = self.segments.write();
            let bases: Vec<i64> = map.keys().copied().collect();
            let gone: Vec<i64> = bases
                .windows(2)
                .take_while(|pair| pair[1] <= offset)
                .map(|pair| pair[0])
                .collect();
            gone.iter().filter_map(|b| map.remove(b)).collect()
        };
        for s in &doomed {
            s.delete_files()?;
        }
        w.dir_dirty |= !doomed.is_empty();
        info!(
            topic = %self.tp.topic, partition = self.tp.partition, log_start_offset = offset,
            previous_log_start_offset = current, deleted_segments = doomed.len(), "advanced log start offset"
        );
        Ok(offset)
    }

    /// Remove every record at or after `offset` (a follower cutting a
    /// divergent tail). If `offset` falls inside a batch, that whole batch
    /// goes and the log end offset becomes its base offset. Below the log
    /// start offset the log is emptied and restarts at `offset`.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        let config = self.config();
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        let old_end = w.active.next_offset;
        if offset >= old_end {
            return Ok(());
        }
        // The segment the cut reopens may be the one whose indexes the last
        // roll's thread is trimming: let it finish first.
        if let Some(sealing) = w.sealing.take() {
            sealing.wait()?;
        }
        if offset < self.log_start_offset() {
            return self.truncate_fully(&mut w, offset, &config);
        }
        // Readers must not go past the cut while it happens.
        self.log_end_offset.store(offset, Ordering::Release);
        let (target, doomed) = {
            let mut map = self.segments.write();
            let doomed = map.split_off(&(offset + 1));
            let target = map
                .range(..=offset)
                .next_back()
                .map(|(_, s)| s.clone())
                .expect("offset >= log start");
            (target, doomed)
        };
        truncate_segment(&target, offset, config.index_interval_bytes)?;
        w.active = ActiveSegment::load(target, false, &config, &self.tp)?;
        for s in doomed.values() {
            s.delete_files()?;
        }
        w.dir_dirty = true;
        let new_end = w.active.next_offset;
        self.log_end_offset.store(new_end, Ordering::Release);
        info!(
            topic = %self.tp.topic, partition = self.tp.partition, offset, old_log_end_offset = old_end,
            log_end_offset = new_end, deleted_segments = doomed.len(), "truncated log"
        );
        Ok(())
    }

    /// Delete every segment and restart the log, empty, at `offset` (log
    /// start offset = log end offset = `offset`).
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        let config = self.config();
        let mut w = self.writer.lock();
        self.check_open(&w)?;
        self.truncate_fully(&mut w, offset, &config)
    }

    fn truncate_fully(&self, w: &mut Writer, offset: i64, config: &LogConfig) -> Result<()> {
        self.log_end_offset
            .store(offset.min(self.log_end_offset()), Ordering::Release);
        let old = std::mem::take(&mut *self.segments.write());
        // Delete first: the new segment may have the same name as an old one.
        for s in old.values() {
            s.delete_files()?;
        }
        w.active = ActiveSegment::create(&self.dir, offset, config)?;
        self.segments.write().insert(offset, w.active.seg.clone());
        // A checkpoint from before would put the start past the new log.
        if super::start_offset::read(&self.dir)?.is_some() {
            super::start_offset::write(&self.dir, offset)?;
        }
        self.log_start_offset.store(offset, Ordering::Release);
        self.log_end_offset.store(offset, Ordering::Release);
        w.dir_dirty = true;
        w.unflushed_messages = 0;
        warn!(topic = %self.tp.topic, partition = self.tp.partition, offset, "emptied log and restarted it");
        Ok(())
    }

    /// Flush, add the final time index entry, trim the indexes. Reads keep
    /// working; appends and truncation fail afterwards. Idempotent.
    pub fn close(&self) -> Result<()> {
        let mut w = self.writer.lock();
        if w.state != State::Open {
            return Ok(());
        }
        if let Some(sealing) = w.sealing.take() {
            sealing.wait()?;
        }
        if let Some(spare) = w.spare.take() {
            spare.discard();
        }
        w.active.seal()?;
        w.active.seg.flush()?;
        if w.dir_dirty {
            fsync_dir(&self.dir)?;
            w.dir_dirty = false;
        }
        w.state = State::Closed;
        w.unflushed_messages = 0;
        info!(topic = %self.tp.topic, partition = self.tp.partition, log_end_offset = w.active.next_offset, "closed log");
        Ok(())
    }

    /// Stop writing and remove the partition directory with everything in
    /// it.
    pub fn delete(&self) -> Result<()> {
        let mut w = self.writer.lock();
        if w.state == State::Deleted {
            return Ok(());
        }
        w.state = State::Deleted;
        // Its thread must not create the file while the directory goes.
        if let Some(spare) = w.spare.take() {
            spare.discard();
        }
        delete_dir_later(&self.dir)?;
        info!(topic = %self.tp.topic, partition = self.tp.partition, "deleted log");
        Ok(())
    }
}

/// Why the active segment must roll before an append of `bytes` bytes in
/// `batches` batches ending at `last_offset`, if it must. An empty segment
/// never rolls (the append goes in whatever its size).
fn roll_reason(
    active: &ActiveSegment,
    config: &LogConfig,
    bytes: usize,
    batches: usize,
    last_offset: i64,
    now_ms: i64,
) -> Option<&'static str> {
    if active.is_empty() {
        return None;
    }
    // Index positions are u32.
    let limit = config.segment_bytes.min(u64::from(u32::MAX));
    if active.size() + bytes as u64 > limit {
        return Some("segment.bytes");
    }
    if active
        .rolling_base_ms
        .is_some_and(|base| now_ms.saturating_sub(base) > config.segment_ms)
    {
        return Some("segment.ms");
    }
    // At most one entry per batch, and at most one per index interval.
    let entries = batches.min(bytes / config.index_interval_bytes.saturating_add(1) + 1);
    if active.index_room() < entries {
        return Some("index full");
    }
    if last_offset - active.seg.base_offset() > i64::from(u32::MAX) {
        return Some("relative offset overflow");
    }
    None
}

/// Base offsets of the segments in `dir`, sorted. Index files without a
/// `.log` are deleted (a crash between deleting a segment's files); other
/// files are left alone.
fn scan_dir(dir: &Path) -> Result<Vec<i64>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io("listing partition directory", dir, e))?;
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing partition directory", dir, e))?;
        let name = entry.file_name();
        let Some((base, suffix)) = name.to_str().and_then(parse_segment_file_name) else {
            continue;
        };
        match suffix {
            LOG_FILE_SUFFIX => logs.push(base),
            INDEX_FILE_SUFFIX | TIME_INDEX_FILE_SUFFIX => indexes.push((base, entry.path())),
            _ => {}
        }
    }
    logs.sort_unstable();
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            warn!(path = %path.display(), "deleting index file without a segment");
            std::fs::remove_file(&path)
                .map_err(|e| Error::io("deleting orphan index", &path, e))?;
        }
    }
    Ok(logs)
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
