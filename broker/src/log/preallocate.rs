//! Segment preallocation (`preallocate`): reserve a segment's disk blocks
//! before it is appended to.
//!
//! Off by default, as in Kafka. Why one would turn it on: ext4 and XFS
//! allocate the blocks of a buffered append late, when writeback runs
//! (delayed allocation). Writeback then holds the inode's extent lock
//! while it allocates, which can mean reading a block bitmap from a busy
//! disk, and an append that needs a new page of the same file waits for
//! that lock. On this project's benchmark machine (ext4) that put 20-40 ms
//! stalls into the produce path at 75 MB/s with RF=3 (docs/benchmarks.md).
//! With the blocks reserved up front neither writeback nor appends
//! allocate.
//!
//! The reservation is `fallocate(FALLOC_FL_KEEP_SIZE)`: the file's size,
//! so reads and crash recovery, are exactly as without it; only the
//! blocks past the end are spoken for. The reservation allocates, so it
//! must not run on a file that is being appended to: a [`Spare`] reserves
//! the next segment's file on a thread of its own once the active segment
//! is half full, and the roll renames it into place. A sealed segment
//! gives back what it did not use ([`trim`]).
//!
//! The cost: up to two segments' worth of disk per partition is reserved
//! (the active segment and the spare), which `df` shows as used.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, sync_channel};

use tracing::{debug, warn};

use super::segment::create_log_file;

/// The spare's name in the partition directory: not a segment name, so a
/// directory scan passes over it; a leftover is removed when the log opens.
pub(crate) const SPARE_FILE_NAME: &str = "next-segment.log.preallocated";

/// Reserve `bytes` of disk for `file` without changing its size. Advice:
/// a filesystem that cannot (tmpfs before 3.5, NFS, no space) leaves the
/// appends to allocate as they go.
pub(crate) fn reserve(file: &File, path: &Path, bytes: u64) {
    if let Err(e) = rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, bytes) {
        debug!(path = %path.display(), error = %e, "cannot preallocate; appends allocate as they go");
    }
}

/// Give back the blocks reserved past the end of a sealed segment's data.
/// Only a truncate to the current size (which Linux counts as a
/// modification time update) frees them, so it happens only when at least
/// a little is reserved.
pub(crate) fn trim(file: &File) -> io::Result<()> {
    const SLACK: u64 = 1 << 20;
    let meta = file.metadata()?;
    if meta.blocks() * 512 > meta.len().next_multiple_of(4096) + SLACK {
        file.set_len(meta.len())?;
    }
    Ok(())
}

/// The next segment's `.log`, being created and reserved in the background.
#[derive(Debug)]
pub(crate) struct Spare {
    path: PathBuf,
    ready: Receiver<io::Result<File>>,
}

impl Spare {
    /// Start creating `dir`'s spare with `bytes` reserved. `None` if no
    /// thread could be started (the next roll then creates its segment as
    /// usual).
    pub(crate) fn start(dir: &Path, bytes: u64) -> Option<Spare> {
        let path = dir.join(SPARE_FILE_NAME);
        let (tx, ready) = sync_channel(1);
        let job_path = path.clone();
        let spawned = std::thread::Builder::new()
            .name("runnel-preallocate".to_owned())
            .spawn(move || {
                let _ = tx.send(create(&job_path, bytes));
            });
        match spawned {
            Ok(_) => Some(Spare { path, ready }),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot start the preallocation thread");
                None
            }
        }
    }

    /// Wait for the spare (it had half a segment's worth of appends to get
    /// ready, so this rarely waits) and hand over its path and file, or
    /// `None` if it could not be made.
    pub(crate) fn finish(self) -> Option<(PathBuf, File)> {
        match self.ready.recv() {
            Ok(Ok(file)) => Some((self.path, file)),
            Ok(Err(e)) => {
                warn!(path = %self.path.display(), error = %e, "cannot create the preallocated next segment");
                None
            }
            Err(_) => None,
        }
    }

    /// Wait for the spare and delete it (the log closes or goes away).
    pub(crate) fn discard(self) {
        if let Some((path, _)) = self.finish() {
            remove(&path);
        }
    }
}

/// Remove a spare left by an earlier run, if any.
pub(crate) fn remove_leftover(dir: &Path) {
    remove(&dir.join(SPARE_FILE_NAME));
}

fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot remove a preallocated spare segment")
        }
    }
}

fn create(path: &Path, bytes: u64) -> io::Result<File> {
    remove(path);
    let file = create_log_file(path)?;
    reserve(&file, path, bytes);
    Ok(file)
}
