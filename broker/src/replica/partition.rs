//! One partition replica: log + leader epoch + high watermark.

use std::sync::Arc;

use tokio::sync::watch;

use crate::Result;
use crate::log::{Log, LogAppendInfo, LogReadInfo, TopicPartition, ValidatedRecords};

/// A partition this broker hosts (today always as leader).
pub struct Partition {
    pub tp: TopicPartition,
    log: Arc<Log>,
    /// Stamped into every appended batch; bumps on every leader change so a
    /// follower can find where its log diverged (cluster mode).
    leader_epoch: i32,
    /// High watermark: consumers see offsets below it. On a single node the
    /// ISR is this broker alone, so it is the log end offset.
    high_watermark: watch::Sender<i64>,
    /// Replicas in sync with this leader (this broker alone on a single node).
    isr: Vec<i32>,
    /// The topic's `min.insync.replicas`, for acks=all.
    min_insync_replicas: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("tp", &self.tp)
            .field("leader_epoch", &self.leader_epoch)
            .field("high_watermark", &*self.high_watermark.borrow())
            .finish()
    }
}

impl Partition {
    pub fn new(
        tp: TopicPartition,
        log: Arc<Log>,
        leader_epoch: i32,
        isr: Vec<i32>,
        min_insync_replicas: u32,
    ) -> Self {
        let (high_watermark, _) = watch::channel(log.log_end_offset());
        Partition {
            tp,
            log,
            leader_epoch,
            high_watermark,
            isr,
            min_insync_replicas: min_insync_replicas.into(),
        }
    }

    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// A receiver that wakes when the high watermark moves: long-poll fetches
    /// subscribe before reading so no append can slip between read and wait.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// The in-sync replicas. A single node is always its own ISR; cluster
    /// mode tracks followers here.
    pub fn isr(&self) -> Vec<i32> {
        self.isr.clone()
    }

    /// acks=all precondition: refuse before writing when the ISR is smaller
    /// than the topic's `min.insync.replicas` (Kafka's NOT_ENOUGH_REPLICAS).
    pub fn check_min_insync(&self) -> Result<()> {
        let min = self
            .min_insync_replicas
            .load(std::sync::atomic::Ordering::Relaxed);
        if self.isr.len() < min as usize {
            return Err(crate::Error::NotEnoughReplicas {
                topic_partition: self.tp.to_string(),
                isr: self.isr.len(),
                min,
            });
        }
        Ok(())
    }

    /// Follow a config change.
    pub fn set_min_insync_replicas(&self, min: u32) {
        self.min_insync_replicas
            .store(min, std::sync::atomic::Ordering::Relaxed);
    }

    /// Append batches [`Log::validate`] accepted, as leader.
    pub fn append_as_leader(
        &self,
        records: &[u8],
        valid: &ValidatedRecords,
        now_ms: i64,
    ) -> Result<LogAppendInfo> {
        let info = self
            .log
            .append_validated(records, valid, self.leader_epoch, now_ms)?;
        self.advance_high_watermark();
        Ok(info)
    }

    /// Records in `[offset, high watermark)`, whole batches, about `max_bytes`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<LogReadInfo> {
        self.log.read(offset, max_bytes, self.high_watermark())
    }

    fn advance_high_watermark(&self) {
        let leo = self.log.log_end_offset();
        // send_if_modified: only wake waiters when it really moved; max()
        // because concurrent appends may report in either order.
        self.high_watermark.send_if_modified(|hw| {
            if leo > *hw {
                *hw = leo;
                true
            } else {
                false
            }
        });
    }
}
