//! The leader epoch cache: where each leader epoch starts in this replica's
//! log (Kafka's `LeaderEpochFileCache`).
//!
//! Every batch carries the epoch of the leader that appended it. The cache
//! keeps one `(epoch, start offset)` entry per epoch seen, so a leader can
//! answer "where does epoch E end in your log?" and a follower that comes
//! back after a leader change truncates exactly the records the new leader
//! does not have — not everything above its high watermark, and not less.
//!
//! Persisted as `leader-epoch-checkpoint` in the partition directory, in
//! Kafka's text format (version, count, then `epoch start_offset` lines),
//! replaced atomically on every change. Changes happen once per leader
//! change, never per append, and when retention moves the log start. The
//! last kind is written after the caller lets go of the cache
//! ([`Checkpoint`]), as Kafka does since KAFKA-15046: appends read the
//! cache, and an fsync on a busy disk must not hold them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{Error, Result};

/// File name inside the partition directory.
pub const FILE_NAME: &str = "leader-epoch-checkpoint";

/// Epoch "unknown" in answers (Kafka's UNDEFINED_EPOCH).
pub const UNDEFINED_EPOCH: i32 = -1;
/// Offset "unknown" in answers (Kafka's UNDEFINED_EPOCH_OFFSET).
pub const UNDEFINED_OFFSET: i64 = -1;

/// One leader epoch and the first offset appended under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The epoch → start offset map of one partition replica.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    /// Ascending in both epoch and start offset.
    entries: Vec<EpochEntry>,
    /// Bumped by every change that is to be written.
    version: u64,
    /// The version on disk; held while writing, so writers take turns and
    /// an older state never replaces a newer one.
    written: Arc<Mutex<u64>>,
}

/// The cache as of one change, to be written to its file.
#[derive(Debug)]
#[must_use = "a checkpoint does nothing until written"]
pub struct Checkpoint {
    path: PathBuf,
    text: String,
    version: u64,
    written: Arc<Mutex<u64>>,
}

impl Checkpoint {
    /// Write to a temp file, fsync, rename over the old one; skipped if a
    /// later change is on disk already.
    pub fn write(self) -> Result<()> {
        let mut written = self.written.lock();
        if *written >= self.version {
            return Ok(());
        }
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(self.text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            // A full disk fails the write half-way: do not keep the blocks.
            let _ = std::fs::remove_file(&tmp);
            Error::io("writing leader epoch checkpoint", &self.path, e)
        })?;
        *written = self.version;
        Ok(())
    }
}

impl LeaderEpochCache {
    /// Load the checkpoint in `dir` (none = empty cache), fitted to the log
    /// it describes: entries that start at or past `log_end_offset` go
    /// (after a crash the checkpoint may be ahead of the log), and so do
    /// those wholly before `log_start_offset` (retention deleted their
    /// records while the broker was down, or before the last trim).
    pub fn open(dir: &Path, log_start_offset: i64, log_end_offset: i64) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text).map_err(|reason| Error::Storage {
                path: path.clone(),
                reason,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("reading leader epoch checkpoint", &path, e)),
        };
        let mut cache = LeaderEpochCache {
            path,
            entries,
            version: 0,
            written: Arc::new(Mutex::new(0)),
        };
        cache.truncate_from_end(log_end_offset)?;
        if let Some(checkpoint) = cache.truncate_from_start(log_start_offset) {
            checkpoint.write()?;
        }
        Ok(cache)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest epoch in the log, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Record that `epoch` starts at `start_offset`. Epochs only grow: an
    /// epoch at or below the latest is ignored (a leader re-stamping its own
    /// epoch, a follower seeing a second batch of the same epoch).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<()> {
        if self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return Ok(());
        }
        // An older epoch that started at or after this offset never had
        // records that survived: the new epoch replaces it.
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < start_offset);
        if self.entries.len() != before {
            tracing::debug!(epoch, start_offset, "leader epoch replaces empty epochs");
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.persist()
    }

    /// Where `epoch` ends in this log: `(largest epoch <= epoch, first offset
    /// after it)`, like Kafka's `endOffsetFor`. The latest epoch ends at
    /// `log_end_offset`. An epoch older than everything known gives
    /// `(UNDEFINED_EPOCH, UNDEFINED_OFFSET)`.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        match self.latest_epoch() {
            Some(latest) if epoch >= latest => return (latest, log_end_offset),
            None => return (UNDEFINED_EPOCH, UNDEFINED_OFFSET),
            Some(_) => {}
        }
        let higher = self.entries.partition_point(|e| e.epoch <= epoch);
        if higher == 0 {
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        }
        (
            self.entries[higher - 1].epoch,
            self.entries[higher].start_offset,
        )
    }

    /// The log was truncated to end at `end_offset`: forget epochs that
    /// start at or after it.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// The log now starts at `start_offset` (retention): entries wholly
    /// before it go, and the epoch covering it now starts there. Returns
    /// the checkpoint to write if anything changed; the caller writes it
    /// once it has let go of the cache. Losing it costs nothing: opening
    /// the cache trims to the log start again.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Option<Checkpoint> {
        let covering = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if covering == 0 {
            return None;
        }
        let mut kept = self.entries.split_off(covering - 1);
        kept[0].start_offset = start_offset;
        let changed = kept != self.entries || covering > 1;
        self.entries = kept;
        changed.then(|| self.checkpoint())
    }

    /// Forget everything (the log was emptied).
    pub fn clear(&mut self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        self.entries.clear();
        self.persist()
    }

    /// The checkpoint to write again if the last change never made it to
    /// disk (its write failed: a full disk), so a periodic pass can retry.
    pub fn unwritten_checkpoint(&mut self) -> Option<Checkpoint> {
        let behind = *self.written.lock() < self.version;
        behind.then(|| self.checkpoint())
    }

    /// The cache as it is now, for [`Checkpoint::write`].
    fn checkpoint(&mut self) -> Checkpoint {
        self.version += 1;
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        Checkpoint {
            path: self.path.clone(),
            text,
            version: self.version,
            written: self.written.clone(),
        }
    }

    /// Write the checkpoint now (changes a reader of the cache must not
    /// see before they are on disk: a new epoch, a truncation).
    fn persist(&mut self) -> Result<()> {
        self.checkpoint().write()
    }
}

fn parse(text: &str) -> std::result::Result<Vec<EpochEntry>, String> {
    let mut lines = text.lines();
    match lines.next() {
        Some("0") => {}
        other => return Err(format!("unsupported checkpoint version {other:?}")),
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("missing entry count")?;
    let mut entries = Vec::with_capacity(count);
    for line in lines.take(count) {
        let mut fields = line.split_whitespace();
        let (Some(epoch), Some(offset)) = (fields.next(), fields.next()) else {
            return Err(format!("bad line {line:?}"));
        };
        let entry = EpochEntry {
            epoch: epoch
                .parse()
                .map_err(|_| format!("bad epoch in {line:?}"))?,
            start_offset: offset
                .parse()
                .map_err(|_| format!("bad offset in {line:?}"))?,
        };
        if entries.last().is_some_and(|l: &EpochEntry| {
            l.epoch >= entry.epoch || l.start_offset > entry.start_offset
        }) {
            return Err(format!("entries out of order at {line:?}"));
        }
        entries.push(entry);
    }
    if entries.len() != count {
        return Err(format!("expected {count} entries, found {}", entries.len()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path, entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::open(dir, 0, i64::MAX).unwrap();
        for &(e, o) in entries {
            c.assign(e, o).unwrap();
        }
        c
    }

    #[test]
    fn end_offsets_follow_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), &[(1, 0), (3, 100), (4, 250)]);
        assert_eq!(c.end_offset_for(4, 300), (4, 300), "latest ends at the LEO");
        assert_eq!(c.end_offset_for(9, 300), (4, 300));
        assert_eq!(c.end_offset_for(3, 300), (3, 250));
        assert_eq!(
            c.end_offset_for(2, 300),
            (1, 100),
            "unknown epoch: the one below it, ending where the next starts"
        );
        assert_eq!(c.end_offset_for(1, 300), (1, 100));
        assert_eq!(
            c.end_offset_for(0, 300),
            (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
        );
        let empty = LeaderEpochCache::open(tempfile::tempdir().unwrap().path(), 0, 0).unwrap();
        assert_eq!(
            empty.end_offset_for(0, 0),
            (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
        );
    }

    #[test]
    fn assign_ignores_old_epochs_and_replaces_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cache(dir.path(), &[(1, 0), (2, 10)]);
        c.assign(2, 20).unwrap();
        c.assign(1, 30).unwrap();
        assert_eq!(c.latest_epoch(), Some(2));
        // Epoch 3 became leader at 10 with nothing appended under epoch 2
        // that survived.
        c.assign(3, 10).unwrap();
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 1,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 3,
                    start_offset: 10
                }
            ]
        );
    }

    #[test]
    fn a_late_retention_checkpoint_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cache(dir.path(), &[(1, 0), (3, 100)]);
        // Taken under the lock, written after it is released ...
        let late = c.truncate_from_start(120).expect("a change to write");
        // ... by which time a new epoch was written.
        c.assign(5, 200).unwrap();
        late.write().unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(text, "0\n2\n3 120\n5 200\n");
    }

    #[test]
    fn truncation_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cache(dir.path(), &[(1, 0), (3, 100), (4, 250)]);
        c.truncate_from_end(250).unwrap();
        assert_eq!(c.latest_epoch(), Some(3));
        c.truncate_from_start(120)
            .expect("a change to write")
            .write()
            .unwrap();
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 3,
                start_offset: 120
            }]
        );
        // Reopened: what was persisted, cut to the log end offset.
        let again = LeaderEpochCache::open(dir.path(), 0, 1000).unwrap();
        assert_eq!(again.entries(), c.entries());
        let cut = LeaderEpochCache::open(dir.path(), 0, 120).unwrap();
        assert!(
            cut.entries().is_empty(),
            "an epoch starting at the LEO has no records"
        );
    }

    #[test]
    fn open_fits_the_checkpoint_to_the_log_start() {
        let dir = tempfile::tempdir().unwrap();
        cache(dir.path(), &[(1, 0), (3, 100), (4, 250)]);
        // Retention deleted offsets below 180 since the checkpoint was
        // written: epoch 1 is gone and epoch 3 now starts at 180.
        let c = LeaderEpochCache::open(dir.path(), 180, 300).unwrap();
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 3,
                    start_offset: 180
                },
                EpochEntry {
                    epoch: 4,
                    start_offset: 250
                }
            ]
        );
        assert_eq!(
            c.end_offset_for(2, 300),
            (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
        );
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(text, "0\n2\n3 180\n4 250\n", "the trim is persisted");
    }

    #[test]
    fn corrupt_checkpoint_is_a_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "0\n2\n3 10\n1 20\n").unwrap();
        let err = LeaderEpochCache::open(dir.path(), 0, 100)
            .unwrap_err()
            .to_string();
        assert!(err.contains("out of order"), "{err}");
    }
}
