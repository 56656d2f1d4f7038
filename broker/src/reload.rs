//! Files that are read again when they change, without a restart: the
//! listener's TLS certificate, key and CA (`server::tls`) and the static
//! bearer tokens of `auth.tokens.file` (`auth`).
//!
//! A change is noticed by each file's modification time and length, checked
//! every interval (no inotify: a Kubernetes Secret volume is updated by
//! swapping a `..data` symlink, which `metadata` follows, and polling works
//! the same on every filesystem). A change that does not load — a
//! half-written file, a certificate whose key has not arrived yet — keeps
//! the previous value and is retried at the next check.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};

use crate::Result;

/// Modification time and length of each of a list of files (`None` for a
/// file that cannot be read), to notice a change without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamps(Vec<Option<(SystemTime, u64)>>);

impl FileStamps {
    pub fn of(files: &[PathBuf]) -> Self {
        FileStamps(files.iter().map(|p| stamp(p)).collect())
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    // Follows symlinks: a Secret volume swaps its `..data` link.
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A value loaded from files and loaded again when they change.
pub struct Reloading<T> {
    /// What the files are, for the log ("TLS files", "auth.tokens.file").
    what: &'static str,
    files: Vec<PathBuf>,
    load: Box<dyn Fn() -> Result<T> + Send + Sync>,
    current: RwLock<Arc<T>>,
    /// The stamps the current value was loaded at.
    stamps: Mutex<FileStamps>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Load now: a value that does not load is an error here (the broker
    /// does not start), unlike at a reload.
    pub fn new(
        what: &'static str,
        files: Vec<PathBuf>,
        load: impl Fn() -> Result<T> + Send + Sync + 'static,
    ) -> Result<Self> {
        // Stamps first: a change between them and the load is seen (and
        // loaded again) at the next check rather than missed.
        let stamps = FileStamps::of(&files);
        let value = load()?;
        Ok(Reloading {
            what,
            files,
            load: Box::new(load),
            current: RwLock::new(Arc::new(value)),
            stamps: Mutex::new(stamps),
        })
    }

    /// The value as last loaded.
    pub fn current(&self) -> Arc<T> {
        self.current.read().clone()
    }

    /// Load again if any file changed; true if the value was replaced. A
    /// change that does not load keeps the old value, with a warning.
    pub fn reload_if_changed(&self) -> bool {
        let now = FileStamps::of(&self.files);
        if *self.stamps.lock() == now {
            return false;
        }
        match (self.load)() {
            Ok(value) => {
                *self.current.write() = Arc::new(value);
                *self.stamps.lock() = now;
                tracing::info!(files = ?self.files, "{} changed; now in use", self.what);
                true
            }
            Err(e) => {
                // Not stored as loaded: retried at every check until it
                // loads, and warned about each time (it needs fixing).
                tracing::warn!(error = %e, "{} changed but cannot be loaded; still using the previous version", self.what);
                false
            }
        }
    }

    /// Check the files every `interval` until the task is dropped.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.reload_if_changed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn a_change_is_loaded_and_a_bad_one_keeps_the_old_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let file = path.clone();
        let reloading = Reloading::new("number file", vec![path.clone()], move || {
            let text =
                std::fs::read_to_string(&file).map_err(|e| Error::io("reading", &file, e))?;
            text.trim()
                .parse::<u32>()
                .map_err(|e| Error::InvalidRequest(e.to_string()))
        })
        .unwrap();
        assert_eq!(*reloading.current(), 1);
        assert!(!reloading.reload_if_changed(), "nothing changed");

        // Replaced by rename, as a Secret volume does.
        let next = dir.path().join("n.next");
        std::fs::write(&next, "22").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert!(reloading.reload_if_changed());
        assert_eq!(*reloading.current(), 22);

        std::fs::write(&path, "not a number").unwrap();
        assert!(!reloading.reload_if_changed());
        assert_eq!(*reloading.current(), 22, "a bad file keeps the old value");
        std::fs::write(&path, "333").unwrap();
        assert!(reloading.reload_if_changed(), "retried once fixed");
        assert_eq!(*reloading.current(), 333);
    }
}
