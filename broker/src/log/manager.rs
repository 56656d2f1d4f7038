//! [`LogManager`]: every partition log under one data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{
    CLEAN_SHUTDOWN_FILE, Log, LogConfig, TopicPartition, cleaner, delete_dir_later,
    delete_leftover_dirs, fsync_dir,
};
use crate::{Error, Result};

/// Owns the data directory: one subdirectory per partition
/// (`<topic>-<partition>`) and the clean-shutdown marker.
///
/// The marker is removed as soon as the manager opens, so a crash at any
/// later point leaves it absent; [`shutdown`](Self::shutdown) writes it
/// back once every log is flushed and closed. Logs opened after an unclean
/// stop are recovered (CRC scan of their active segment).
pub struct LogManager {
    data_dir: PathBuf,
    clean_shutdown: bool,
    logs: Mutex<BTreeMap<TopicPartition, Arc<Log>>>,
    shut_down: AtomicBool,
}

impl std::fmt::Debug for LogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogManager")
            .field("data_dir", &self.data_dir)
            .field("clean_shutdown", &self.clean_shutdown)
            .field("logs", &self.logs.lock().len())
            .finish()
    }
}

impl LogManager {
    /// Open `data_dir` (created if missing): note whether the last shutdown
    /// was clean and remove the marker. Partitions are opened lazily by
    /// [`get_or_create`](Self::get_or_create).
    pub fn open(data_dir: &Path) -> Result<Arc<LogManager>> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::io("creating data directory", data_dir, e))?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean_shutdown = match std::fs::remove_file(&marker) {
            Ok(()) => {
                fsync_dir(data_dir)?;
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io("removing clean-shutdown marker", &marker, e)),
        };
        delete_leftover_dirs(data_dir)?;
        info!(data_dir = %data_dir.display(), clean_shutdown, "opened log manager");
        Ok(Arc::new(LogManager {
            data_dir: data_dir.to_owned(),
            clean_shutdown,
            logs: Mutex::new(BTreeMap::new()),
            shut_down: AtomicBool::new(false),
        }))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether the marker was there: the previous process flushed and
    /// closed every log.
    pub fn was_clean_shutdown(&self) -> bool {
        self.clean_shutdown
    }

    /// Partitions with a directory in the data dir, sorted.
    pub fn existing_partitions(&self) -> Result<Vec<TopicPartition>> {
        let entries = std::fs::read_dir(&self.data_dir)
            .map_err(|e| Error::io("listing data directory", &self.data_dir, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| Error::io("listing data directory", &self.data_dir, e))?;
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if let (true, Some(tp)) = (
                is_dir,
                entry
                    .file_name()
                    .to_str()
                    .and_then(TopicPartition::parse_dir_name),
            ) {
                out.push(tp);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The partition's log, opened (with recovery after an unclean stop)
    /// or created with `config` on first use. An already open log keeps its
    /// config; use [`Log::set_config`] to change it.
    pub fn get_or_create(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<Log>> {
        let mut logs = self.logs.lock();
        if let Some(log) = logs.get(tp) {
            return Ok(log.clone());
        }
        if self.shut_down.load(Ordering::Acquire) {
            return Err(Error::NotAvailable("log manager is shut down".to_owned()));
        }
        let log = Arc::new(Log::open(
            self.data_dir.join(tp.dir_name()),
            tp.clone(),
            config,
            !self.clean_shutdown,
        )?);
        logs.insert(tp.clone(), log.clone());
        Ok(log)
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        self.logs.lock().get(tp).cloned()
    }

    /// Delete the partition's files, open or not.
    pub fn remove(&self, tp: &TopicPartition) -> Result<()> {
        let log = self.logs.lock().remove(tp);
        match log {
            Some(log) => log.delete(),
            None => {
                delete_dir_later(&self.data_dir.join(tp.dir_name()))?;
                info!(topic = %tp.topic, partition = tp.partition, "deleted log");
                Ok(())
            }
        }
    }

    /// Every open log, sorted by partition.
    pub fn logs(&self) -> Vec<(TopicPartition, Arc<Log>)> {
        self.logs
            .lock()
            .iter()
            .map(|(tp, log)| (tp.clone(), log.clone()))
            .collect()
    }

    /// Start the cleaner: every `retention_check_interval` it applies
    /// retention to every log, every `flush_check_interval` the `flush.ms`
    /// policy, until `shutdown` turns true (or its sender or this manager
    /// is dropped).
    pub fn spawn_background(
        self: &Arc<Self>,
        retention_check_interval: Duration,
        flush_check_interval: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        cleaner::spawn(
            Arc::downgrade(self),
            retention_check_interval,
            flush_check_interval,
            shutdown,
        )
    }

    /// One retention pass over every log; errors are logged, not returned,
    /// so one bad partition does not stop the others.
    pub fn delete_old_segments(&self, now_ms: i64) -> usize {
        let mut deleted = 0;
        for (tp, log) in self.logs() {
            match log.delete_old_segments(now_ms) {
                Ok(n) => deleted += n,
                Err(e) => {
                    warn!(topic = %tp.topic, partition = tp.partition, error = %e, "retention failed")
                }
            }
        }
        deleted
    }

    /// One `flush.ms` pass over every log; returns how many flushed.
    pub fn flush_due(&self, now_ms: i64) -> usize {
        let mut flushed = 0;
        for (tp, log) in self.logs() {
            match log.maybe_flush(now_ms) {
                Ok(true) => flushed += 1,
                Ok(false) => {}
                Err(e) => {
                    warn!(topic = %tp.topic, partition = tp.partition, error = %e, "flush failed")
                }
            }
        }
        flushed
    }

    /// Flush and close every log, then write the clean-shutdown marker and
    /// fsync the directory. If any log fails to close the marker is not
    /// written (the next start recovers) and the first error is returned.
    pub fn shutdown(&self) -> Result<()> {
        self.shut_down.store(true, Ordering::Release);
        let mut first_error = None;
        for (tp, log) in self.logs() {
            if let Err(e) = log.close() {
                warn!(topic = %tp.topic, partition = tp.partition, error = %e, "closing log failed");
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let marker = self.data_dir.join(CLEAN_SHUTDOWN_FILE);
        std::fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("writing clean-shutdown marker", &marker, e))?;
        fsync_dir(&self.data_dir)?;
        info!(data_dir = %self.data_dir.display(), logs = self.logs.lock().len(), "log manager shut down cleanly");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_util::{batch_at, decode};

    fn tp(p: u32) -> TopicPartition {
        TopicPartition::new("orders", p)
    }

    #[test]
    fn marker_lifecycle_and_recovery_flag() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join(CLEAN_SHUTDOWN_FILE);
        {
            let m = LogManager::open(dir.path()).unwrap();
            assert!(!m.was_clean_shutdown(), "a new data dir has no marker");
            let log = m.get_or_create(&tp(0), LogConfig::default()).unwrap();
            log.append(&batch_at(1000, 3, 10), 0, 0).unwrap();
            m.shutdown().unwrap();
            assert!(marker.exists());
            assert!(m.get_or_create(&tp(1), LogConfig::default()).is_err());
        }
        {
            let m = LogManager::open(dir.path()).unwrap();
            assert!(m.was_clean_shutdown());
            assert!(
                !marker.exists(),
                "removed on open so a crash leaves it absent"
            );
            assert_eq!(m.existing_partitions().unwrap(), vec![tp(0)]);
            let log = m.get_or_create(&tp(0), LogConfig::default()).unwrap();
            assert_eq!(log.log_end_offset(), 3);
            // Crash: no shutdown.
        }
        let m = LogManager::open(dir.path()).unwrap();
        assert!(!m.was_clean_shutdown());
        let log = m.get_or_create(&tp(0), LogConfig::default()).unwrap();
        assert_eq!(
            decode(&log.read(0, 1 << 20, i64::MAX).unwrap().records).len(),
            3
        );
    }

    #[test]
    fn get_or_create_get_logs_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("not-a-partition")).unwrap();
        std::fs::write(dir.path().join("stray-3"), b"a file, not a dir").unwrap();
        let m = LogManager::open(dir.path()).unwrap();
        assert!(m.get(&tp(0)).is_none());
        let a = m.get_or_create(&tp(0), LogConfig::default()).unwrap();
        let b = m.get_or_create(&tp(0), LogConfig::default()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        m.get_or_create(&TopicPartition::new("my-topic", 2), LogConfig::default())
            .unwrap();
        assert_eq!(m.logs().len(), 2);
        assert_eq!(
            m.existing_partitions().unwrap(),
            vec![TopicPartition::new("my-topic", 2), tp(0)]
        );

        m.remove(&tp(0)).unwrap();
        assert!(m.get(&tp(0)).is_none());
        assert!(!dir.path().join("orders-0").exists());
        assert!(
            a.append(&batch_at(1, 1, 1), 0, 0).is_err(),
            "a deleted log takes no writes"
        );
        // Removing a partition that is on disk but not open.
        std::fs::create_dir(dir.path().join("orders-7")).unwrap();
        m.remove(&tp(7)).unwrap();
        assert!(!dir.path().join("orders-7").exists());
        m.remove(&tp(8)).unwrap();
    }

    /// Names in `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Wait (at most 10 s) until no `-delete` directory is left in `dir`.
    fn wait_for_deletions(dir: &Path) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let names = listing(dir);
            if !names.iter().any(|n| n.ends_with("-delete")) || std::time::Instant::now() > deadline
            {
                return names;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn removed_partitions_are_renamed_at_once_and_deleted_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        // Left by a run that crashed while deleting.
        let leftover = dir.path().join("orders-3.18c1e2-delete");
        std::fs::create_dir(&leftover).unwrap();
        std::fs::write(leftover.join("00000000000000000000.log"), b"old").unwrap();
        let m = LogManager::open(dir.path()).unwrap();
        let log = m.get_or_create(&tp(0), LogConfig::default()).unwrap();
        log.append(&batch_at(1, 10, 100), 0, 0).unwrap();
        // A segment big enough to be cut in steps before it is unlinked.
        std::fs::File::create(dir.path().join("orders-0/00000000000000001000.log"))
            .and_then(|f| f.set_len(40 << 20))
            .unwrap();
        m.get_or_create(&tp(1), LogConfig::default()).unwrap();
        assert_eq!(wait_for_deletions(dir.path()), vec!["orders-0", "orders-1"]);

        m.remove(&tp(0)).unwrap();
        // Gone from its place at once: neither a partition on disk nor one
        // a new log of the same name would collide with.
        assert!(!dir.path().join("orders-0").exists());
        assert_eq!(m.existing_partitions().unwrap(), vec![tp(1)]);
        let again = m.get_or_create(&tp(0), LogConfig::default()).unwrap();
        assert_eq!(again.log_end_offset(), 0);
        assert_eq!(wait_for_deletions(dir.path()), vec!["orders-0", "orders-1"]);
    }
}
