//! Page-cache drop-behind (`page.cache.drop.behind.bytes`): keep only the
//! tail of each partition's active segment in the OS page cache.
//!
//! Off by default (-1): like Kafka, the log leaves caching to the kernel.
//! When set, every time the active segment has grown by [`STEP`] past the
//! last drop, one background thread calls
//! `posix_fadvise(POSIX_FADV_DONTNEED)` on the segment from its start to
//! `size - drop_behind_bytes`. For pages still dirty that starts their
//! writeback now instead of after `dirty_expire_centisecs` (so writeback
//! comes in a steady stream, not in bursts that stall appends), and clean
//! pages leave the cache; pages that were dirty are dropped by a later
//! call, as every call covers the segment from its start.
//!
//! The window spans a roll: right after one, the end of the sealed segment
//! is still among the last `drop_behind_bytes` of the log, and it leaves
//! the cache in the same [`STEP`]s as the new segment grows (its last
//! pages are clean by then: the roll fsyncs them). Dropping the sealed
//! segment whole at the roll instead freed ~64 MiB of pages per replica at
//! once; with every replica rolling together that burst took both cores of
//! the benchmark VM for ~100 ms and stalled produce for as long
//! (docs/benchmarks.md, "What a roll costs").
//!
//! Why: on virtual machines whose balloon device reports free pages to the
//! host (Firecracker, cloud-hypervisor), a page the kernel has not reused
//! for a few seconds costs a host fault when it is next written, and a log
//! that keeps growing the page cache writes into such pages: this VM writes
//! ~0.45 GB/s into fresh pages and 2-5 GB/s into recycled ones (see
//! docs/benchmarks.md). Recycling the log's own old pages keeps the writes
//! on warm memory. It also bounds the page cache a broker pins in a
//! memory-limited container. The cost: consumers more than
//! `drop_behind_bytes` behind the end read from disk.
//!
//! Readers and durability are unaffected: dropping clean pages loses
//! nothing, and fsync (`flush.*`) still decides what is durable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use tracing::warn;

use super::background::Background;
use super::segment::Segment;

/// Grow this much past the last drop before asking again: one syscall per
/// 4 MiB appended keeps the cost out of sight.
const STEP: u64 = 4 << 20;

/// Per active segment: how far its last drop reached, and the segment
/// sealed before it while the window still reaches into that one.
#[derive(Default)]
pub(crate) struct DropBehind {
    dropped_to: u64,
    sealed: Option<Arc<Sealed>>,
}

/// A sealed segment the window is leaving, shared by the active segment's
/// [`DropBehind`] (which moves `passed`) and the roll's background fsync
/// (which sets `clean`). Until the fsync is done the segment's last pages
/// are dirty and a drop would not free them, so whichever of the two comes
/// second drops what the window has passed: with sequentially consistent
/// stores and loads at least one of them sees the other's.
pub(crate) struct Sealed {
    /// Weak, so that a segment retention deletes meanwhile is not kept
    /// open (its disk is freed with the last handle).
    segment: Weak<Segment>,
    /// Its size: final, nothing appends to a sealed segment.
    end: u64,
    /// How far the window has passed, in bytes from the segment's start.
    passed: AtomicU64,
    clean: AtomicBool,
}

impl Sealed {
    /// The roll's fsync of the segment is done: drop what the window has
    /// passed so far (on the caller's thread, already a background one).
    pub(crate) fn flushed(&self) {
        self.clean.store(true, Ordering::SeqCst);
        if let Some(segment) = self.segment.upgrade() {
            drop_now(&segment, self.passed.load(Ordering::SeqCst));
        }
    }

    /// The window has passed byte `upto` of the segment. A segment
    /// retention deleted meanwhile took its pages with it.
    fn pass(&self, upto: u64) {
        self.passed.store(upto, Ordering::SeqCst);
        if self.clean.load(Ordering::SeqCst)
            && let Some(segment) = self.segment.upgrade()
        {
            submit(segment, upto);
        }
    }
}

impl DropBehind {
    /// After an append to the active `segment`: queue a drop when `behind`
    /// (the topic's setting, negative = off) allows one and the window
    /// moved by [`STEP`] since the last.
    pub(crate) fn after_append(&mut self, segment: &Arc<Segment>, behind: i64) {
        let Ok(behind) = u64::try_from(behind) else {
            // Turned off: nothing to hold on to.
            self.sealed = None;
            return;
        };
        let size = segment.size();
        if let Some(sealed) = &self.sealed {
            // The window takes from the sealed segment what the active one
            // does not fill yet.
            let end = sealed.end;
            let upto = end.saturating_sub(behind.saturating_sub(size));
            if upto == end || upto >= sealed.passed.load(Ordering::Relaxed) + STEP {
                sealed.pass(upto);
                if upto == end {
                    self.sealed = None;
                }
            }
        }
        let upto = size.saturating_sub(behind);
        if upto >= self.dropped_to + STEP {
            self.dropped_to = upto;
            submit(segment.clone(), upto);
        }
    }

    /// A roll sealed `segment`, the one this drop-behind was for: returns
    /// the new segment's, through which the window goes on, and the handle
    /// the roll's fsync reports to ([`Sealed::flushed`]). A segment sealed
    /// before, still partly in the window (it was shorter than the window),
    /// is let go whole now.
    pub(crate) fn after_roll(&mut self, segment: &Arc<Segment>) -> (DropBehind, Arc<Sealed>) {
        if let Some(older) = self.sealed.take() {
            older.pass(older.end);
        }
        let sealed = Arc::new(Sealed {
            segment: Arc::downgrade(segment),
            end: segment.size(),
            passed: AtomicU64::new(self.dropped_to),
            clean: AtomicBool::new(false),
        });
        let next = DropBehind {
            dropped_to: 0,
            sealed: Some(sealed.clone()),
        };
        (next, sealed)
    }
}

/// Drop the cached pages of `segment` below byte `upto`, on the background
/// thread (the call may start writeback, which is block allocation and I/O
/// submission: not work for an append's thread).
fn submit(segment: Arc<Segment>, upto: u64) {
    static WORKER: Background = Background::new("runnel-drop-behind");
    WORKER.submit(move || drop_now(&segment, upto));
}

fn drop_now(segment: &Segment, upto: u64) {
    if let Err(e) = segment.drop_cached(upto) {
        // Advice only: the next drop tries again, nothing else depends on it.
        warn!(path = %segment.paths().log.display(), error = %e, "page-cache drop-behind failed");
    }
}
