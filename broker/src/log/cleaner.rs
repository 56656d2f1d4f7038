//! The background task behind [`LogManager::spawn_background`]: retention
//! and the `flush.ms` policy for every log, on two intervals.
//!
//! The file work (unlinking segments, fsync) is blocking, so each pass runs
//! on tokio's blocking pool. The task holds only a `Weak` reference to the
//! manager: dropping the manager stops it, as does the shutdown signal.

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval_at};
use tracing::{debug, warn};

use super::{LogManager, wall_clock_ms};

#[derive(Debug, Clone, Copy)]
enum Pass {
    Retention,
    Flush,
}

pub(crate) fn spawn(
    manager: Weak<LogManager>,
    retention_check_interval: Duration,
    flush_check_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut retention = interval_at(
            Instant::now() + retention_check_interval,
            retention_check_interval,
        );
        retention.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut flush = interval_at(Instant::now() + flush_check_interval, flush_check_interval);
        flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            let pass = tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
                _ = retention.tick() => Pass::Retention,
                _ = flush.tick() => Pass::Flush,
            };
            let Some(manager) = manager.upgrade() else {
                break;
            };
            let run = move || match pass {
                Pass::Retention => manager.delete_old_segments(wall_clock_ms()),
                Pass::Flush => manager.flush_due(wall_clock_ms()),
            };
            match tokio::task::spawn_blocking(run).await {
                Ok(n) => debug!(?pass, affected = n, "log cleaner pass"),
                Err(e) => warn!(?pass, error = %e, "log cleaner pass panicked"),
            }
        }
        debug!("log cleaner stopped");
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_util::batch_at;
    use crate::log::{LogConfig, TopicPartition};

    /// Poll `cond` until it holds, letting the runtime (and the blocking
    /// pool) make progress; fail after a generous real-time deadline.
    async fn eventually(mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "condition not reached in time"
            );
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cleaner_deletes_expired_segments_and_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let manager = LogManager::open(dir.path()).unwrap();
        let config = LogConfig {
            segment_bytes: 1, // every append rolls
            retention_ms: 60_000,
            flush_ms: 0,
            ..LogConfig::default()
        };
        let log = manager
            .get_or_create(&TopicPartition::new("t", 0), config)
            .unwrap();
        // Record timestamps from 1970: long expired by the wall clock.
        for i in 0..3 {
            log.append(&batch_at(1_000 + i, 2, 10), 0, 0).unwrap();
        }
        assert_eq!(log.num_segments(), 3);
        assert!(log.unflushed_messages() > 0);

        let (stop, stop_rx) = watch::channel(false);
        let task =
            manager.spawn_background(Duration::from_secs(300), Duration::from_secs(1), stop_rx);
        // Nothing happens before the first interval.
        tokio::task::yield_now().await;
        assert_eq!(log.num_segments(), 3);

        tokio::time::advance(Duration::from_secs(1)).await;
        eventually(|| log.unflushed_messages() == 0).await;
        assert_eq!(log.num_segments(), 3, "retention has not run yet");

        tokio::time::advance(Duration::from_secs(300)).await;
        eventually(|| log.num_segments() == 1).await;
        // Everything was expired, the active segment too: it rolled, so
        // one empty segment at LEO remains.
        assert_eq!(log.log_start_offset(), 6);
        assert_eq!(log.log_end_offset(), 6);

        stop.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn cleaner_stops_when_the_manager_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let manager = LogManager::open(dir.path()).unwrap();
        let (_stop, stop_rx) = watch::channel(false);
        let task =
            manager.spawn_background(Duration::from_secs(1), Duration::from_secs(1), stop_rx);
        drop(manager);
        tokio::time::advance(Duration::from_secs(2)).await;
        task.await.unwrap();
    }
}
