//! The time index (`.timeindex`): where to start looking for the first batch
//! at or after a timestamp.
//!
//! An entry is 12 bytes, big-endian:
//!
//! ```text
//! timestamp        i64   largest batch max timestamp in the segment so far
//! relative offset  u32   base offset of the batch that holds it − segment base offset
//! ```
//!
//! Entries are written next to `.index` entries (and once more when the
//! segment is sealed or closed, so the last entry is the segment's largest
//! timestamp), and only when the timestamp grew: timestamps are strictly
//! increasing, offsets never decrease, and every timestamp is > 0 (batches
//! without real timestamps are not indexed), so an all-zero entry marks the
//! end of a preallocated file just as in `.index`.
//!
//! Example: entries `(1_700_000_005_000, 30)`, `(1_700_000_009_000, 60)` in
//! a segment based at 1000. To find the first offset with a timestamp at or
//! after `1_700_000_007_000`: the last entry with a timestamp *below* it is
//! `(…5_000, 30)`; every batch before offset 1030 has a max timestamp `<=
//! …5_000`, so the scan starts at the batch containing 1030 (found through
//! `.index`) and walks forward to the first batch whose max timestamp is `>=
//! …7_000`.

use std::io;
use std::path::Path;

use super::index::IndexFile;

pub(crate) const TIME_INDEX_ENTRY_SIZE: usize = 12;

/// One `.timeindex` entry, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    /// Absolute base offset of the batch holding `timestamp`.
    pub offset: i64,
}

/// The time → offset index of one segment.
pub(crate) struct TimeIndex {
    base_offset: i64,
    file: IndexFile,
}

impl TimeIndex {
    pub(crate) fn open(path: &Path, base_offset: i64) -> io::Result<TimeIndex> {
        let mut index = TimeIndex {
            base_offset,
            file: IndexFile::open(path, TIME_INDEX_ENTRY_SIZE)?,
        };
        if index.file.problem().is_none()
            && let Some(reason) = index.monotonicity_problem()
        {
            index.file.set_problem(reason);
        }
        Ok(index)
    }

    fn monotonicity_problem(&self) -> Option<String> {
        let mut prev: Option<TimeEntry> = None;
        for n in 0..self.entries() {
            let e = self.entry(n);
            if e.timestamp <= 0 {
                return Some(format!("entry {n} has timestamp {}", e.timestamp));
            }
            if let Some(p) = prev
                && (e.timestamp <= p.timestamp || e.offset < p.offset)
            {
                return Some(format!(
                    "entry {n} ({e:?}) does not come after entry {} ({p:?})",
                    n - 1
                ));
            }
            prev = Some(e);
        }
        None
    }

    pub(crate) fn file(&self) -> &IndexFile {
        &self.file
    }

    pub(crate) fn file_mut(&mut self) -> &mut IndexFile {
        &mut self.file
    }

    pub(crate) fn entries(&self) -> usize {
        self.file.entries()
    }

    /// Entries that ordinary appends may still add. One slot is kept for the
    /// entry written when the segment is sealed, so the last entry can always
    /// be the segment's largest timestamp.
    pub(crate) fn free(&self) -> usize {
        self.file.capacity().saturating_sub(self.file.entries() + 1)
    }

    pub(crate) fn entry(&self, n: usize) -> TimeEntry {
        let e = self.file.entry(n);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&e[..8]);
        let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            offset: self.base_offset + i64::from(rel),
        }
    }

    pub(crate) fn last_entry(&self) -> Option<TimeEntry> {
        self.entries().checked_sub(1).map(|n| self.entry(n))
    }

    /// The last entry whose timestamp is strictly below `timestamp`: every
    /// batch before its offset is older than `timestamp`. `None` means
    /// "start at the beginning of the segment".
    pub(crate) fn lookup(&self, timestamp: i64) -> Option<TimeEntry> {
        let (mut lo, mut hi) = (0, self.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).timestamp < timestamp {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map(|n| self.entry(n))
    }

    /// Add `(timestamp, offset)` if the timestamp is larger than the last
    /// entry's (and positive) and there is room. `sealing` may use the slot
    /// kept back by [`free`](Self::free).
    pub(crate) fn maybe_append(&mut self, timestamp: i64, offset: i64, sealing: bool) -> bool {
        let room = if sealing {
            self.file.capacity() > self.entries()
        } else {
            self.free() > 0
        };
        let grew = self
            .last_entry()
            .map_or(timestamp > 0, |e| timestamp > e.timestamp);
        if !room || !grew {
            return false;
        }
        debug_assert!(self.last_entry().is_none_or(|e| e.offset <= offset));
        let rel = u32::try_from(offset - self.base_offset).expect("relative offset fits in u32");
        let mut entry = [0u8; TIME_INDEX_ENTRY_SIZE];
        entry[..8].copy_from_slice(&timestamp.to_be_bytes());
        entry[8..].copy_from_slice(&rel.to_be_bytes());
        self.file.push(&entry)
    }

    /// Remove every entry whose offset is `>= offset`.
    pub(crate) fn truncate_to(&mut self, offset: i64) {
        let keep = (0..self.entries())
            .position(|n| self.entry(n).offset >= offset)
            .unwrap_or(self.entries());
        self.file.truncate_entries(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(dir: &Path, base: i64, bytes: usize) -> TimeIndex {
        let mut idx = TimeIndex::open(&dir.join("0.timeindex"), base).unwrap();
        idx.file_mut().reset();
        idx.file_mut().resize(bytes).unwrap();
        idx
    }

    #[test]
    fn appends_only_growing_positive_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = fresh(dir.path(), 100, 1200);
        assert!(!idx.maybe_append(0, 100, false), "no real timestamp");
        assert!(!idx.maybe_append(-1, 100, false));
        assert!(idx.maybe_append(5_000, 100, false));
        assert!(!idx.maybe_append(5_000, 110, false), "not larger");
        assert!(!idx.maybe_append(4_000, 110, false));
        assert!(idx.maybe_append(9_000, 130, false));
        assert_eq!(idx.entries(), 2);
        assert_eq!(
            idx.last_entry(),
            Some(TimeEntry {
                timestamp: 9_000,
                offset: 130
            })
        );
    }

    #[test]
    fn lookup_finds_last_entry_strictly_below() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = fresh(dir.path(), 1000, 1200);
        for (ts, o) in [(5_000, 1030), (9_000, 1060), (12_000, 1090)] {
            assert!(idx.maybe_append(ts, o, false));
        }
        let e = |timestamp, offset| Some(TimeEntry { timestamp, offset });
        assert_eq!(idx.lookup(1), None);
        assert_eq!(idx.lookup(5_000), None);
        assert_eq!(idx.lookup(5_001), e(5_000, 1030));
        assert_eq!(idx.lookup(7_000), e(5_000, 1030));
        assert_eq!(idx.lookup(9_000), e(5_000, 1030));
        assert_eq!(idx.lookup(9_001), e(9_000, 1060));
        assert_eq!(idx.lookup(i64::MAX), e(12_000, 1090));
    }

    #[test]
    fn one_slot_is_kept_for_sealing() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = fresh(dir.path(), 0, 3 * TIME_INDEX_ENTRY_SIZE);
        assert_eq!(idx.free(), 2);
        assert!(idx.maybe_append(10, 1, false));
        assert!(idx.maybe_append(20, 2, false));
        assert_eq!(idx.free(), 0);
        assert!(!idx.maybe_append(30, 3, false));
        assert!(idx.maybe_append(30, 3, true));
        assert!(!idx.maybe_append(40, 4, true));
    }

    #[test]
    fn reopen_truncate_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        {
            let mut idx = fresh(dir.path(), 0, 1200);
            for (ts, o) in [(10, 1), (20, 5), (30, 9)] {
                idx.maybe_append(ts, o, false);
            }
            idx.truncate_to(5);
            assert_eq!(idx.entries(), 1);
            idx.maybe_append(25, 7, false);
        }
        let idx = TimeIndex::open(&path, 0).unwrap();
        assert_eq!(idx.file().problem(), None);
        assert_eq!(idx.entries(), 2);
        assert_eq!(
            idx.last_entry(),
            Some(TimeEntry {
                timestamp: 25,
                offset: 7
            })
        );
        drop(idx);

        let entry = |ts: i64, rel: u32| [&ts.to_be_bytes()[..], &rel.to_be_bytes()[..]].concat();
        std::fs::write(&path, [entry(20, 1), entry(10, 2)].concat()).unwrap();
        assert!(
            TimeIndex::open(&path, 0)
                .unwrap()
                .file()
                .problem()
                .is_some(),
            "timestamps go backwards"
        );
        std::fs::write(&path, [entry(10, 5), entry(20, 2)].concat()).unwrap();
        assert!(
            TimeIndex::open(&path, 0)
                .unwrap()
                .file()
                .problem()
                .is_some(),
            "offsets go backwards"
        );
        std::fs::write(&path, &entry(10, 5)[..7]).unwrap();
        assert!(
            TimeIndex::open(&path, 0)
                .unwrap()
                .file()
                .problem()
                .is_some(),
            "partial entry"
        );
    }
}
