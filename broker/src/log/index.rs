//! The sparse offset index (`.index`) and the memory-mapped file both index
//! kinds are built on.
//!
//! An `.index` entry is 8 bytes, big-endian:
//!
//! ```text
//! relative offset  u32   batch base offset − segment base offset
//! position         u32   byte position of that batch in the segment's .log
//! ```
//!
//! One entry is added for the first batch that starts more than
//! `index.interval.bytes` after the previous entry's batch, so the index is
//! sparse and every entry has `position > 0`. (Unlike Kafka, which keys the
//! entry by the batch's *last* offset, we key it by the batch's *base*
//! offset: a lookup for any offset inside an indexed batch then lands exactly
//! on it.)
//!
//! Worked example, segment base offset 1000, `index.interval.bytes` 4096,
//! batches of 10 records and 1500 bytes:
//!
//! ```text
//! .log:    pos 0: 1000..1009   1500: 1010..1019   3000: 1020..1029
//!          4500: 1030..1039    6000: 1040..1049   ...  9000: 1060..1069
//! .index:  (30, 4500)  (60, 9000)  ...
//! ```
//!
//! (After the batch at 3000, 4500 bytes have gone by since position 0, more
//! than 4096, so the batch at 4500 gets an entry.) To find offset 1047:
//! relative offset 47; binary search for the last entry `<= 47` → `(30,
//! 4500)`; read batch headers from position 4500: `1030..1039` ends before
//! 1047, `1040..1049` contains it → the read starts at position 6000. A
//! lookup before the first entry starts at position 0; the scan after an
//! entry is never much longer than `index.interval.bytes` plus one batch.
//!
//! While its segment is active the file is preallocated to
//! `segment.index.bytes` and the unused tail is zeros; an all-zero entry can
//! never be real (position 0 is never indexed), so it marks the end. Sealing
//! a segment trims the file to its entries.
//!
//! That tail is a hole, and writing through a shared mapping into a page of
//! a hole on a full filesystem is SIGBUS, not an error: the process dies.
//! So disk blocks for entries are reserved (`fallocate`) a chunk ahead of
//! the writer ([`IndexFile::reserve`]), and a full disk fails the append
//! that needs the room, before anything is written.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

/// A file of fixed-size entries, memory-mapped read-write.
///
/// Invariant behind the `unsafe` map: the file is only ever resized through
/// [`IndexFile::resize`], which drops the mapping first, so no live mapping
/// ever extends past the end of the file.
pub(crate) struct IndexFile {
    path: PathBuf,
    file: File,
    /// `None` only transiently inside `resize`.
    mmap: Option<MmapMut>,
    entry_size: usize,
    /// Number of entries in use (a prefix of the mapping).
    entries: usize,
    /// Why the file on disk could not be trusted, if it could not; the
    /// segment then resets and rebuilds the index from the `.log`.
    problem: Option<String>,
    /// Bytes from the start of the file known to have disk blocks (written
    /// entries, or reserved by [`IndexFile::reserve`]). Only these may be
    /// written through the mapping: see the module docs on SIGBUS.
    reserved: usize,
}

/// How far ahead of the writer index blocks are reserved: one `fallocate`
/// per 64 KiB of index (8192 `.index` entries), so reserving costs nothing
/// measurable, and a segment does not hold `segment.index.bytes` of disk
/// per index while it is active.
const RESERVE_AHEAD: usize = 64 << 10;

/// The page size writes through the mapping allocate by.
const PAGE: usize = 4096;

/// Map `file` read-write. `used` is the length of its entries: when the
/// file is longer (the preallocated tail of an active segment's index, a
/// hole), kernel readahead is turned off for the mapping.
///
/// Why: the first write into a page of the hole faults, and with the
/// default advice the fault reads ahead, which for a hole means allocating
/// and zeroing up to `read_ahead_kb` of page cache (8 MiB on the benchmark
/// VM) on the thread that appends, under the partition's writer lock. After
/// a roll that cost ~15 ms of CPU per new segment on the append path
/// (docs/benchmarks.md, "What a roll costs"). Appends move one page at a
/// time and lookups are binary searches, so the mapping loses nothing by
/// going without. A trimmed (sealed) index keeps the default advice: a
/// cold lookup then reads it in one go.
#[allow(unsafe_code)]
fn map(file: &File, used: usize) -> io::Result<MmapMut> {
    // SAFETY: memory-mapping is unsafe because another process or another
    // mapping could change or shrink the file underneath us. The file lives
    // in a partition directory that only this broker process uses (the
    // `LogManager` opens each partition once), it is mapped by exactly one
    // `IndexFile`, every access goes through `&self`/`&mut self` of that
    // `IndexFile` (under the segment's lock), and it is only resized by
    // `IndexFile::resize`, which drops this mapping before `set_len`.
    let mmap = unsafe { MmapMut::map_mut(file) }?;
    if mmap.len() > used {
        // Advice: a kernel that refuses it only reads ahead as before.
        let _ = mmap.advise(memmap2::Advice::Random);
    }
    Ok(mmap)
}

/// The parts of `file` between `from` and `to` that may hold data, as
/// byte ranges (`SEEK_DATA` / `SEEK_HOLE`); holes read as zeros.
///
/// Why not just read the mapping: on tmpfs (a memory-backed volume, a
/// container's scratch space) reading a hole through a shared mapping
/// allocates a page for it, so scanning a preallocated 10 MiB index took
/// 10 MiB of the filesystem, and on a full one the read was SIGBUS at
/// start-up. A filesystem that cannot tell returns the whole range.
fn data_ranges(file: &File, from: usize, to: usize) -> Vec<std::ops::Range<usize>> {
    use rustix::fs::{SeekFrom, seek};
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let data = match seek(file, SeekFrom::Data(at as u64)) {
            Ok(data) => data,
            // No data past `at`.
            Err(rustix::io::Errno::NXIO) => break,
            // Cannot tell: take it all as data.
            Err(_) => {
                out.push(at..to);
                break;
            }
        };
        let data = (data as usize).max(at);
        if data >= to {
            break;
        }
        let hole = seek(file, SeekFrom::Hole(data as u64)).map_or(to, |h| (h as usize).min(to));
        if hole <= data {
            out.push(data..to);
            break;
        }
        out.push(data..hole);
        at = hole;
    }
    out
}

impl IndexFile {
    /// Open (or create) an index file and find its used prefix.
    ///
    /// The used prefix ends at the first all-zero entry (the preallocated
    /// tail of an active segment's index) or at the end of the file. Whether
    /// the entries make sense is checked by the caller through `is_valid`;
    /// here only what the bytes alone can tell is recorded in `problem`:
    /// a missing file, a size that is not a whole number of entries, and
    /// non-zero bytes after the end marker.
    pub(crate) fn open(path: &Path, entry_size: usize) -> io::Result<IndexFile> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len() as usize;
        let mut problem = None;
        if !existed {
            problem = Some("missing".to_owned());
        } else if !len.is_multiple_of(entry_size) {
            problem = Some(format!(
                "size {len} is not a multiple of the {entry_size}-byte entry"
            ));
        }
        let usable = len - len % entry_size;
        // Readahead stays on while the entries are looked for: the scan
        // reads the whole file (the advice is set below once they are known).
        let mmap = map(&file, len)?;
        let zero = vec![0u8; entry_size];
        // Entries end at the first all-zero one, or where the first hole
        // starts (written entries have blocks; see `data_ranges` on why a
        // hole must not be read through the mapping).
        let written = data_ranges(&file, 0, usable)
            .first()
            .filter(|r| r.start == 0)
            .map_or(0, |r| r.end);
        let scanned = written - written % entry_size;
        let entries = mmap[..scanned]
            .chunks_exact(entry_size)
            .position(|e| e == zero.as_slice())
            .unwrap_or(scanned / entry_size);
        let tail = entries * entry_size;
        let garbage = data_ranges(&file, tail, len)
            .into_iter()
            .any(|r| mmap[r].iter().any(|&b| b != 0));
        if problem.is_none() && garbage {
            problem = Some(format!(
                "non-zero bytes after the end of the {entries} entries"
            ));
        }
        if entries * entry_size < len {
            // See `map`: the rest is the preallocated tail appends go to.
            let _ = mmap.advise(memmap2::Advice::Random);
        }
        Ok(IndexFile {
            path: path.to_owned(),
            file,
            mmap: Some(mmap),
            entry_size,
            entries,
            problem,
            // The pages holding entries were written, so they have blocks.
            reserved: (entries * entry_size).next_multiple_of(PAGE).min(len),
        })
    }

    /// Make sure the next `more` entries can be written through the map:
    /// allocate disk blocks for them (and up to [`RESERVE_AHEAD`] past,
    /// within the file) unless they have some already. Fails with the
    /// filesystem's error (ENOSPC, EDQUOT) if it cannot; then nothing was
    /// written and the caller must not add the entries.
    pub(crate) fn reserve(&mut self, more: usize) -> io::Result<()> {
        let len = self.bytes().len();
        let need = (self.entries + more)
            .saturating_mul(self.entry_size)
            .min(len);
        if need <= self.reserved {
            return Ok(());
        }
        let to = need
            .saturating_add(RESERVE_AHEAD)
            .next_multiple_of(PAGE)
            .min(len);
        let from = self.reserved - self.reserved % PAGE;
        // Mode 0 inside the file's size: allocates, never changes the size.
        match rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::empty(),
            from as u64,
            (to - from) as u64,
        ) {
            Ok(()) => {}
            // A filesystem without fallocate: writes into the hole are all
            // there is, as before.
            Err(rustix::io::Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
        self.reserved = to;
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// Record a problem found by a check that knows what entries mean.
    pub(crate) fn set_problem(&mut self, reason: String) {
        self.problem.get_or_insert(reason);
    }

    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// How many entries fit in the file as it is sized now.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes().len() / self.entry_size
    }

    fn bytes(&self) -> &[u8] {
        self.mmap.as_deref().unwrap_or(&[])
    }

    pub(crate) fn entry(&self, n: usize) -> &[u8] {
        &self.bytes()[n * self.entry_size..(n + 1) * self.entry_size]
    }

    /// Append one entry; the caller checked `entries < capacity`. Appends
    /// reserve their room beforehand ([`reserve`](Self::reserve)); anyone
    /// else (a rebuild) gets it reserved here, and if the disk is full the
    /// entry is left out (an index with fewer entries only makes lookups
    /// scan further) rather than written into a hole. Returns whether it
    /// was added.
    pub(crate) fn push(&mut self, entry: &[u8]) -> bool {
        debug_assert_eq!(entry.len(), self.entry_size);
        if let Err(e) = self.reserve(1) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot reserve disk for an index entry; leaving it out");
            return false;
        }
        let at = self.entries * self.entry_size;
        let mmap = self.mmap.as_mut().expect("index is mapped");
        mmap[at..at + entry.len()].copy_from_slice(entry);
        self.entries += 1;
        true
    }

    /// Forget every entry from `n` on, zeroing them so the end marker holds.
    pub(crate) fn truncate_entries(&mut self, n: usize) {
        if n >= self.entries {
            return;
        }
        let (from, to) = (n * self.entry_size, self.entries * self.entry_size);
        if let Some(mmap) = self.mmap.as_mut() {
            mmap[from..to].fill(0);
        }
        self.entries = n;
    }

    /// Drop every entry and the recorded problem (before a rebuild).
    pub(crate) fn reset(&mut self) {
        self.truncate_entries(0);
        // Bytes after the old end marker may be garbage too. Only write to
        // pages that are not already zero: writing zeros into the untouched
        // (sparse) tail of a preallocated file would allocate disk blocks.
        // And only look at pages that have blocks (see `data_ranges`).
        let ranges = data_ranges(&self.file, 0, self.bytes().len());
        if let Some(mmap) = self.mmap.as_mut() {
            for range in ranges {
                for page in mmap[range].chunks_mut(PAGE) {
                    if page.iter().any(|&b| b != 0) {
                        page.fill(0);
                    }
                }
            }
        }
        self.problem = None;
    }

    /// Resize the file to `bytes` (rounded down to whole entries, never below
    /// the entries in use) and map it again. `bytes = 0` trims to the used
    /// size. Dropping the old mapping before `set_len` is what keeps the map
    /// in [`map`] sound.
    ///
    /// No `msync` here, as in Kafka's `AbstractIndex.resize`: entries written
    /// through the old mapping stay dirty in the page cache after it is
    /// dropped, and the segment's fsync ([`flush`](Self::flush)) writes
    /// them. A roll trims the sealed segment's indexes under the partition's
    /// writer lock, and a synchronous `msync` there held every append to the
    /// partition for 200-300 ms on the benchmark VM (docs/benchmarks.md).
    pub(crate) fn resize(&mut self, bytes: usize) -> io::Result<()> {
        let len = (bytes - bytes % self.entry_size).max(self.entries * self.entry_size);
        if len == self.bytes().len() && len as u64 == self.file.metadata()?.len() {
            return Ok(());
        }
        drop(self.mmap.take());
        self.file.set_len(len as u64)?;
        // Growing adds a hole; shrinking gives back what was past the end.
        self.reserved = self.reserved.min(len);
        self.mmap = Some(map(&self.file, self.entries * self.entry_size)?);
        Ok(())
    }

    /// msync the mapping and fsync the file.
    pub(crate) fn flush(&self) -> io::Result<()> {
        if let Some(mmap) = &self.mmap {
            mmap.flush()?;
        }
        self.file.sync_data()
    }
}

/// One `.index` entry, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Absolute base offset of the batch.
    pub offset: i64,
    /// Its position in the `.log`.
    pub position: u32,
}

pub(crate) const INDEX_ENTRY_SIZE: usize = 8;

/// The sparse offset → position index of one segment.
pub(crate) struct OffsetIndex {
    base_offset: i64,
    file: IndexFile,
}

impl OffsetIndex {
    pub(crate) fn open(path: &Path, base_offset: i64) -> io::Result<OffsetIndex> {
        let mut index = OffsetIndex {
            base_offset,
            file: IndexFile::open(path, INDEX_ENTRY_SIZE)?,
        };
        if index.file.problem.is_none()
            && let Some(reason) = index.monotonicity_problem()
        {
            index.file.set_problem(reason);
        }
        Ok(index)
    }

    fn monotonicity_problem(&self) -> Option<String> {
        let mut prev: Option<IndexEntry> = None;
        for n in 0..self.entries() {
            let e = self.entry(n);
            if e.position == 0 {
                return Some(format!("entry {n} has position 0"));
            }
            if let Some(p) = prev
                && (e.offset <= p.offset || e.position <= p.position)
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

    /// Free entries at the current file size.
    pub(crate) fn free(&self) -> usize {
        self.file.capacity() - self.file.entries()
    }

    pub(crate) fn entry(&self, n: usize) -> IndexEntry {
        let e = self.file.entry(n);
        let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let position = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
        IndexEntry {
            offset: self.base_offset + i64::from(rel),
            position,
        }
    }

    pub(crate) fn last_entry(&self) -> Option<IndexEntry> {
        self.entries().checked_sub(1).map(|n| self.entry(n))
    }

    /// The last entry whose offset is `<= offset`, or the start of the
    /// segment (`base_offset`, position 0) when there is none.
    pub(crate) fn lookup(&self, offset: i64) -> IndexEntry {
        // partition_point: number of entries with entry.offset <= offset.
        let (mut lo, mut hi) = (0, self.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).offset <= offset {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        match lo {
            0 => IndexEntry {
                offset: self.base_offset,
                position: 0,
            },
            n => self.entry(n - 1),
        }
    }

    /// Append an entry if there is room (a full index only makes lookups
    /// scan further; the writer rolls before that happens). Returns whether
    /// it was added.
    pub(crate) fn append(&mut self, offset: i64, position: u32) -> bool {
        if self.free() == 0 {
            return false;
        }
        debug_assert!(position > 0, "position 0 is never indexed");
        debug_assert!(
            self.last_entry()
                .is_none_or(|e| e.offset < offset && e.position < position)
        );
        let rel = u32::try_from(offset - self.base_offset).expect("relative offset fits in u32");
        let mut entry = [0u8; INDEX_ENTRY_SIZE];
        entry[..4].copy_from_slice(&rel.to_be_bytes());
        entry[4..].copy_from_slice(&position.to_be_bytes());
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

    fn index_with(dir: &Path, base: i64, entries: &[(i64, u32)], prealloc: usize) -> OffsetIndex {
        let mut idx = OffsetIndex::open(&dir.join("0.index"), base).unwrap();
        idx.file_mut().reset();
        idx.file_mut().resize(prealloc).unwrap();
        for &(o, p) in entries {
            assert!(idx.append(o, p));
        }
        idx
    }

    #[test]
    fn lookup_exact_between_before_and_after() {
        let dir = tempfile::tempdir().unwrap();
        let idx = index_with(
            dir.path(),
            1000,
            &[(1030, 4500), (1060, 9000), (1090, 13500)],
            1024,
        );
        let e = |offset, position| IndexEntry { offset, position };
        // Before the first entry: the segment start.
        assert_eq!(idx.lookup(1000), e(1000, 0));
        assert_eq!(idx.lookup(1029), e(1000, 0));
        // Exact hits.
        assert_eq!(idx.lookup(1030), e(1030, 4500));
        assert_eq!(idx.lookup(1060), e(1060, 9000));
        assert_eq!(idx.lookup(1090), e(1090, 13500));
        // Between entries.
        assert_eq!(idx.lookup(1047), e(1030, 4500));
        assert_eq!(idx.lookup(1089), e(1060, 9000));
        // After the last.
        assert_eq!(idx.lookup(1091), e(1090, 13500));
        assert_eq!(idx.lookup(i64::MAX), e(1090, 13500));
        // An empty index always answers the segment start.
        let other = tempfile::tempdir().unwrap();
        let empty = index_with(other.path(), 5, &[], 64);
        assert_eq!(empty.lookup(100), e(5, 0));
    }

    #[test]
    fn preallocated_file_reopens_with_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        {
            let idx = index_with(dir.path(), 0, &[(3, 100), (7, 250)], 10 * 1024);
            assert_eq!(idx.free(), 10 * 1024 / 8 - 2);
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 10 * 1024);
        let idx = OffsetIndex::open(&path, 0).unwrap();
        assert_eq!(idx.file().problem(), None);
        assert_eq!(idx.entries(), 2);
        assert_eq!(
            idx.last_entry(),
            Some(IndexEntry {
                offset: 7,
                position: 250
            })
        );
    }

    #[test]
    fn trim_and_regrow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = index_with(dir.path(), 0, &[(3, 100), (7, 250)], 4096);
        idx.file_mut().resize(0).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16);
        assert_eq!(idx.free(), 0);
        assert!(!idx.append(9, 300), "a trimmed index is full");
        idx.file_mut().resize(4096).unwrap();
        assert!(idx.append(9, 300));
        assert_eq!(
            idx.lookup(8),
            IndexEntry {
                offset: 7,
                position: 250
            }
        );
        assert_eq!(
            idx.lookup(9),
            IndexEntry {
                offset: 9,
                position: 300
            }
        );
    }

    #[test]
    fn truncate_removes_entries_at_or_after() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = index_with(dir.path(), 0, &[(3, 100), (7, 250), (12, 400)], 4096);
        idx.truncate_to(8);
        assert_eq!(idx.entries(), 2);
        idx.truncate_to(7);
        assert_eq!(idx.entries(), 1);
        assert_eq!(
            idx.lookup(100),
            IndexEntry {
                offset: 3,
                position: 100
            }
        );
        // The zeroed tail keeps the end marker valid on reopen.
        drop(idx);
        let idx = OffsetIndex::open(&dir.path().join("0.index"), 0).unwrap();
        assert_eq!((idx.entries(), idx.file().problem()), (1, None));
    }

    /// Blocks of `path` on disk, in bytes.
    fn allocated(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn entries_get_disk_reserved_ahead_and_holes_are_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = index_with(dir.path(), 0, &[], 1 << 20);
        // A fresh preallocated index is a hole: nothing allocated yet.
        assert_eq!(allocated(&path), 0);
        idx.file_mut().reserve(1).unwrap();
        let reserved = allocated(&path);
        assert!(
            reserved >= RESERVE_AHEAD as u64 && reserved < 1 << 20,
            "{reserved} bytes allocated"
        );
        // Entries within the reservation allocate nothing more.
        for n in 1..=100u32 {
            assert!(idx.append(i64::from(n), n * 100));
        }
        assert_eq!(allocated(&path), reserved);
        drop(idx);
        // Opening (and resetting) it finds the entries without touching
        // the rest of the hole.
        let mut idx = OffsetIndex::open(&path, 0).unwrap();
        assert_eq!((idx.entries(), idx.file().problem()), (100, None));
        assert_eq!(data_ranges(&idx.file().file, 0, 1 << 20).len(), 1);
        idx.file_mut().reset();
        assert_eq!(idx.entries(), 0);
        assert_eq!(allocated(&path), reserved);
    }

    #[test]
    fn damaged_files_report_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let missing = OffsetIndex::open(&path, 0).unwrap();
        assert_eq!(missing.file().problem(), Some("missing"));
        drop(missing);

        // Size not a multiple of 8.
        std::fs::write(&path, [0, 0, 0, 1, 0, 0, 0, 9, 0, 0]).unwrap();
        assert!(
            OffsetIndex::open(&path, 0)
                .unwrap()
                .file()
                .problem()
                .unwrap()
                .contains("multiple")
        );
        // Offsets going backwards.
        std::fs::write(&path, [0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 4, 0, 0, 0, 20]).unwrap();
        assert!(
            OffsetIndex::open(&path, 0)
                .unwrap()
                .file()
                .problem()
                .unwrap()
                .contains("does not come after")
        );
        // Positions going backwards.
        std::fs::write(&path, [0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 6, 0, 0, 0, 8]).unwrap();
        assert!(
            OffsetIndex::open(&path, 0)
                .unwrap()
                .file()
                .problem()
                .is_some()
        );
        // Garbage after the end marker.
        std::fs::write(
            &path,
            [
                0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 8,
            ],
        )
        .unwrap();
        assert!(
            OffsetIndex::open(&path, 0)
                .unwrap()
                .file()
                .problem()
                .unwrap()
                .contains("after the end")
        );
        // A well-formed file.
        std::fs::write(&path, [0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 6, 0, 0, 0, 18]).unwrap();
        let ok = OffsetIndex::open(&path, 0).unwrap();
        assert_eq!((ok.entries(), ok.file().problem()), (2, None));
    }
}
