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
//! call, as every call covers the segment from its start. A sealed segment
//! is dropped whole after its fsync (see `Log::roll`).
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

use std::sync::Arc;

use tracing::warn;

use super::background::Background;
use super::segment::Segment;

/// Grow this much past the last drop before asking again: one syscall per
/// 4 MiB appended keeps the cost out of sight.
const STEP: u64 = 4 << 20;

/// Per active segment: how far its last drop reached.
#[derive(Debug, Default)]
pub(crate) struct DropBehind {
    dropped_to: u64,
}

impl DropBehind {
    /// After an append to the active `segment`: queue a drop when `behind`
    /// (the topic's setting, negative = off) allows one and the segment grew
    /// by [`STEP`] since the last.
    pub(crate) fn after_append(&mut self, segment: &Arc<Segment>, behind: i64) {
        let Ok(behind) = u64::try_from(behind) else {
            return;
        };
        let upto = segment.size().saturating_sub(behind);
        if upto >= self.dropped_to + STEP {
            self.dropped_to = upto;
            submit(segment.clone(), upto);
        }
    }
}

/// Drop the cached pages of `segment` below byte `upto`, on the background
/// thread (the call may start writeback, which is block allocation and I/O
/// submission: not work for an append's thread).
fn submit(segment: Arc<Segment>, upto: u64) {
    static WORKER: Background = Background::new("runnel-drop-behind");
    WORKER.submit(move || {
        if let Err(e) = segment.drop_cached(upto) {
            // Advice only: the next drop tries again, nothing else depends on it.
            warn!(path = %segment.paths().log.display(), error = %e, "page-cache drop-behind failed");
        }
    });
}
