//! The partition log storage engine: one segmented, append-only log per
//! partition, in Kafka's on-disk layout (`docs/storage.md` has it byte by
//! byte).
//!
//! Start reading at [`Log`] (one partition: append, read, roll, retention,
//! truncation, flush), then [`LogManager`] (the data directory: which
//! partitions exist, clean-shutdown marker, background cleaner).
//!
//! Modules, bottom up:
//! - `index` / `time_index`: the sparse memory-mapped `.index` (relative
//!   offset → file position) and `.timeindex` (max timestamp so far →
//!   relative offset) files.
//! - `scan`: walking the batch headers (or whole batches) of a `.log` file
//!   with few, large `pread`s.
//! - `segment`: one segment's three files. `Segment` is
//!   the shared read side; `ActiveSegment` adds the append-only state only
//!   the writer touches (fluvio's active/sealed split).
//! - `background`: the thread slow chores (page-cache drops, deleting
//!   removed partitions' files) run on.
//! - `deletion`: removing a partition's directory without stalling the
//!   caller (renamed at once, files deleted paced in the background).
//! - `drop_behind`: optional page-cache drop-behind for the active
//!   segment (`page.cache.drop.behind.bytes`).
//! - `preallocate`: optional disk reservation for segments
//!   (`preallocate`), prepared off the append path.
//! - `start_offset`: the log start offset checkpoint (DeleteRecords moves
//!   the start inside a segment).
//! - `partition`: [`Log`], the segments of one partition.
//! - `manager`: [`LogManager`].
//! - `cleaner`: the background task that applies `retention.*` and
//!   `flush.ms` to every log.
//!
//! Vocabulary is Kafka's: *LEO* (log end offset, the offset the next
//! appended record gets), *log start offset* (first offset still readable:
//! the oldest segment's base offset, or past it after DeleteRecords),
//! *base offset* (first offset of a segment or a batch), *HW* (high
//! watermark, passed in by the caller as `max_offset` on reads).

mod background;
mod cleaner;
mod deletion;
mod drop_behind;
mod index;
mod manager;
mod partition;
mod preallocate;
mod scan;
mod segment;
mod start_offset;
mod time_index;

pub(crate) use deletion::{delete_dir_later, delete_leftover_dirs};

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

pub use runnel_proto::batch::TimestampType;

pub use manager::LogManager;
pub use partition::{Log, ValidatedRecords};

/// Name of the file, in the data directory, whose presence at startup means
/// the previous broker process shut down cleanly (every log flushed and its
/// indexes trimmed), so the active segments need no CRC scan.
pub const CLEAN_SHUTDOWN_FILE: &str = ".runnel_clean_shutdown";

/// Extension of a segment's record data.
pub(crate) const LOG_FILE_SUFFIX: &str = "log";
/// Extension of a segment's sparse offset index.
pub(crate) const INDEX_FILE_SUFFIX: &str = "index";
/// Extension of a segment's time index.
pub(crate) const TIME_INDEX_FILE_SUFFIX: &str = "timeindex";

/// A partition of a topic; also the name of its directory (`orders-3`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The partition's directory name under the data dir: `<topic>-<partition>`,
    /// as Kafka names it.
    pub fn dir_name(&self) -> String {
        self.to_string()
    }

    /// Inverse of [`dir_name`](Self::dir_name). Splits on the *last* `-`
    /// because topic names may contain dashes (`my-topic-12` is partition 12
    /// of `my-topic`). Returns `None` for anything else (Kafka's
    /// `-delete`/`-future` directories, stray files).
    ///
    /// ```
    /// use runnel_broker::log::TopicPartition;
    /// let tp = TopicPartition::parse_dir_name("my-topic-12").unwrap();
    /// assert_eq!((tp.topic.as_str(), tp.partition), ("my-topic", 12));
    /// assert!(TopicPartition::parse_dir_name("my-topic").is_none());
    /// ```
    pub fn parse_dir_name(name: &str) -> Option<Self> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(TopicPartition {
            topic: topic.to_owned(),
            partition: partition.parse().ok()?,
        })
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The storage knobs of one partition, named after Kafka's topic configs.
///
/// `Default` gives Kafka's defaults. Changes through [`Log::set_config`]
/// apply from the next append (roll and flush rules), the next retention
/// pass, and the next new segment (`segment_index_bytes`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment when an append would make the
    /// active one larger than this. Index positions are 32-bit, so values
    /// above 4 GiB act as 4 GiB.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first append is older
    /// than this (by the broker's clock at the append), so that time-based
    /// retention can delete data even on a quiet partition.
    pub segment_ms: i64,
    /// `retention.ms`: delete a segment once its largest record timestamp is
    /// older than this; -1 keeps data forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log stays at least
    /// this big without them; -1 = no size limit.
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest batch (including its 12-byte log
    /// overhead) an append accepts.
    pub max_message_bytes: usize,
    /// `index.interval.bytes`: bytes of log between two `.index` entries;
    /// bounds how far a lookup scans after its index hit.
    pub index_interval_bytes: usize,
    /// `segment.index.bytes`: size to which the active segment's `.index` and
    /// `.timeindex` are preallocated; a full index rolls the segment.
    pub segment_index_bytes: usize,
    /// `flush.messages`: fsync once this many records are unflushed; 1 means
    /// every append is on disk before it is acknowledged; `u64::MAX` never
    /// flushes by count.
    pub flush_messages: u64,
    /// `flush.ms`: [`Log::maybe_flush`] fsyncs when the last flush is older
    /// than this; `u64::MAX` never flushes by time.
    pub flush_ms: u64,
    /// `page.cache.drop.behind.bytes`: keep only this many bytes at the end
    /// of the active segment in the OS page cache, dropping older pages as
    /// they reach the disk (`drop_behind`); negative leaves caching to the
    /// kernel, as Kafka does.
    pub page_cache_drop_behind_bytes: i64,
    /// `preallocate`: reserve `segment_bytes` of disk for each segment
    /// before it is appended to, so that writeback does not allocate
    /// blocks under the appends' feet (`preallocate`). Off, as in Kafka.
    pub preallocate: bool,
    /// `message.timestamp.type`: `LogAppendTime` makes the leader stamp
    /// every batch with its own clock on append (records keep their bytes;
    /// the batch's timestamp type and `maxTimestamp` change); `CreateTime`
    /// keeps the producer's timestamps.
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`: a CreateTime record may be at
    /// most this much older than the leader's clock.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: ... and at most this much newer.
    pub message_timestamp_after_max_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        const DAY_MS: i64 = 24 * 60 * 60 * 1000;
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            max_message_bytes: 1024 * 1024 + 12,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            page_cache_drop_behind_bytes: -1,
            preallocate: false,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 60 * 60 * 1000,
        }
    }
}

/// What [`Log::append`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAppendInfo {
    /// Offset assigned to the first record of the first batch.
    pub first_offset: i64,
    /// Offset assigned to the last record of the last batch.
    pub last_offset: i64,
    /// Number of records appended.
    pub records: u32,
    /// Bytes appended (the size of the input).
    pub bytes: usize,
    /// Largest batch `max_timestamp` among the appended batches (the
    /// append time for a `LogAppendTime` topic).
    pub max_timestamp: i64,
    /// The broker's clock stamped on the batches (`LogAppendTime`), or -1
    /// (`CreateTime`, and a follower's copies).
    pub log_append_time_ms: i64,
    /// Set by [`Log::append_deferring_flush`] when the flush policy wants
    /// this append on disk before it is acknowledged: pass it to
    /// [`Log::flush_through`].
    pub flush: Option<FlushTicket>,
}

/// An append that the flush policy (`flush.messages`) wants fsynced before
/// it is acknowledged; appends are numbered in order, so one fsync that
/// starts after an append covers it and every append before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlushTicket(pub(crate) u64);

/// What [`Log::read`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReadInfo {
    /// Whole record batches, concatenated as stored (empty at the end of the
    /// log or when nothing is below `max_offset`).
    pub records: bytes::Bytes,
    /// Log start offset when the read happened.
    pub log_start_offset: i64,
    /// Log end offset when the read started.
    pub log_end_offset: i64,
}

/// File name of a segment file: the base offset padded to 20 digits, so that
/// names sort like offsets (`00000000000000000042.log`).
pub(crate) fn segment_file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// Inverse of [`segment_file_name`]: `(base_offset, suffix)`.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<(i64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix))
}

/// Milliseconds since the Unix epoch by the wall clock: the clock record
/// timestamps use, so the one retention compares them with.
pub(crate) fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// fsync a directory, so that files created or removed in it survive a
/// power loss.
pub(crate) fn fsync_dir(dir: &std::path::Path) -> crate::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| crate::Error::io("syncing directory", dir, e))
}

#[cfg(test)]
pub(crate) mod test_util;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_partition_dir_names_round_trip() {
        for (topic, p) in [
            ("orders", 0u32),
            ("my-topic", 12),
            ("a-b-c", u32::MAX),
            ("x.y_z", 7),
        ] {
            let tp = TopicPartition::new(topic, p);
            assert_eq!(tp.dir_name(), format!("{topic}-{p}"));
            assert_eq!(TopicPartition::parse_dir_name(&tp.dir_name()), Some(tp));
        }
    }

    #[test]
    fn bad_dir_names_are_not_partitions() {
        for name in [
            "orders",
            "-3",
            "orders-",
            "orders-x",
            "orders-+3",
            "orders-1.delete",
            "orders-99999999999",
        ] {
            assert_eq!(TopicPartition::parse_dir_name(name), None, "{name}");
        }
    }

    #[test]
    fn segment_file_names() {
        assert_eq!(segment_file_name(0, "log"), "00000000000000000000.log");
        assert_eq!(
            segment_file_name(42, "timeindex"),
            "00000000000000000042.timeindex"
        );
        assert_eq!(
            parse_segment_file_name("00000000000000000042.index"),
            Some((42, "index"))
        );
        assert_eq!(parse_segment_file_name("42.index"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.log"), None);
        assert_eq!(parse_segment_file_name(".runnel_clean_shutdown"), None);
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1_073_741_824);
        assert_eq!(c.segment_ms, 604_800_000);
        assert_eq!(c.retention_ms, 604_800_000);
        assert_eq!(c.retention_bytes, -1);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.index_interval_bytes, 4096);
        assert_eq!(c.segment_index_bytes, 10_485_760);
    }
}
