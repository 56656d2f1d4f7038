//! Removing a partition's directory (topic deleted, replica moved away)
//! without making the caller wait: the directory is renamed to
//! `<name>.<id>-delete` at once and its files are deleted, paced, on a
//! background thread; leftovers of a crash go at the next start.

use super::background::Background;
use super::{LOG_FILE_SUFFIX, wall_clock_ms};

/// Suffix of a partition directory on its way out (Kafka's too): not a
/// partition name, so nothing opens it again.
const DELETE_DIR_SUFFIX: &str = "-delete";

/// Where removed partitions' files are deleted.
static DELETER: Background = Background::new("runnel-delete-logs");

/// Remove a partition directory without making the caller wait for it:
/// rename it out of the way (one metadata operation), then delete the files
/// in the background. Unlinking gigabytes of segments takes seconds (more
/// with the `discard` mount option), and the caller is the metadata sync:
/// a topic deletion that stalled it cost every broker its etcd lease.
/// A directory that is not there is already deleted.
pub(crate) fn delete_dir_later(dir: &std::path::Path) -> crate::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let doomed = dir.with_file_name(format!(
        "{name}.{:x}{:x}{DELETE_DIR_SUFFIX}",
        wall_clock_ms(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    match std::fs::rename(dir, &doomed) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(crate::Error::io(
                "renaming partition directory to delete it",
                dir,
                e,
            ));
        }
    }
    DELETER.submit(move || remove_dir(&doomed));
    Ok(())
}

/// Delete what an earlier run renamed for deletion but did not finish
/// (in the background, like [`delete_dir_later`]).
pub(crate) fn delete_leftover_dirs(data_dir: &std::path::Path) -> crate::Result<()> {
    let entries = std::fs::read_dir(data_dir)
        .map_err(|e| crate::Error::io("listing data directory", data_dir, e))?;
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(DELETE_DIR_SUFFIX)
        {
            let doomed = entry.path();
            DELETER.submit(move || remove_dir(&doomed));
        }
    }
    Ok(())
}

fn remove_dir(dir: &std::path::Path) {
    let started = std::time::Instant::now();
    match remove_files_paced(dir).and_then(|bytes| std::fs::remove_dir(dir).map(|()| bytes)) {
        Ok(bytes) => tracing::info!(
            dir = %dir.display(), bytes, elapsed_ms = started.elapsed().as_millis() as u64,
            "deleted partition files"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // The next start tries again (`delete_leftover_dirs`).
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "deleting partition files failed")
        }
    }
}

/// How much of a file one step of a paced deletion frees.
const DELETE_CHUNK_BYTES: u64 = 16 << 20;
/// How fast a paced deletion frees disk and page cache.
const DELETE_BYTES_PER_SEC: u64 = 256 << 20;

/// Delete the files in `dir` (a partition directory: no subdirectories),
/// cutting big segment `.log`s from the end in [`DELETE_CHUNK_BYTES`] steps at
/// [`DELETE_BYTES_PER_SEC`] before unlinking them, as RocksDB's
/// `DeleteScheduler` does. Unlinking a 1 GiB segment frees its page cache
/// and its blocks (a discard, on a filesystem mounted with `discard`) in
/// one go; nine of them at once held every broker of the benchmark
/// cluster's acks=all produce requests for 0.5 s. Returns the bytes freed.
fn remove_files_paced(dir: &std::path::Path) -> std::io::Result<u64> {
    let step =
        std::time::Duration::from_secs_f64(DELETE_CHUNK_BYTES as f64 / DELETE_BYTES_PER_SEC as f64);
    let mut freed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        freed += entry.metadata()?.len();
        // Only `.log` files are cut: a reader still holding the segment gets
        // a short `pread` from a cut one, while a cut memory-mapped index
        // would fault (SIGBUS).
        if path.extension().is_some_and(|e| e == LOG_FILE_SUFFIX) {
            let file = std::fs::OpenOptions::new().write(true).open(&path)?;
            let mut len = file.metadata()?.len();
            while len > DELETE_CHUNK_BYTES {
                len -= DELETE_CHUNK_BYTES;
                file.set_len(len)?;
                std::thread::sleep(step);
            }
        }
        std::fs::remove_file(&path)?;
    }
    Ok(freed)
}
