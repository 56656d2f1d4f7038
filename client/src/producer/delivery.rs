//! Delivery results: one [`BatchResult`] per batch, shared by the
//! [`DeliveryFuture`]s of all the records in it.
//!
//! A record's future is an `Arc` clone of its batch's result plus the
//! record's index, so enqueueing a record allocates nothing; a batch is
//! acknowledged (or fails) as a whole, and each record's offset is the
//! batch's base offset plus its index.
//!
//! With producer interceptors, a batch's result also remembers each
//! record's timestamp, so that completing the batch can tell every
//! interceptor every record's outcome (`on_acknowledgement`), whoever
//! completes it: the sender on an answer, a failure after retries, or an
//! abort.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};
use crate::interceptor::{self, ProducerInterceptor};
use crate::producer::RecordMetadata;

/// What the broker said about one batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchAck {
    /// Offset of the batch's first record; -1 with acks=0.
    pub base_offset: i64,
    /// Broker append time for LogAppendTime topics, else -1.
    pub log_append_time: i64,
}

/// The outcome of one batch, set once, awaited by many.
#[derive(Default)]
pub(crate) struct BatchResult {
    outcome: OnceLock<Result<BatchAck>>,
    /// Wakers of futures polled before the outcome was known.
    waiters: Mutex<Vec<Waker>>,
    /// Interceptors to tell each record's outcome; `None` without any, so
    /// the common case records nothing per record.
    acks: Option<AckHook>,
}

/// What completing a batch needs to call `on_acknowledgement` per record.
struct AckHook {
    chain: Arc<[Arc<dyn ProducerInterceptor>]>,
    topic: Arc<str>,
    partition: u32,
    /// CreateTime of each record, in batch order (index = offset delta).
    timestamps: Mutex<Vec<i64>>,
}

impl BatchResult {
    /// A result for a batch of `topic`-`partition` whose records'
    /// outcomes go to `chain` (plain [`Default`] when it is empty).
    pub fn with_interceptors(
        chain: &Arc<[Arc<dyn ProducerInterceptor>]>,
        topic: &Arc<str>,
        partition: u32,
    ) -> Self {
        BatchResult {
            acks: (!chain.is_empty()).then(|| AckHook {
                chain: chain.clone(),
                topic: topic.clone(),
                partition,
                timestamps: Mutex::default(),
            }),
            ..Default::default()
        }
    }

    /// A record with `timestamp` was added to the batch (in order).
    pub fn record_added(&self, timestamp: i64) {
        if let Some(hook) = &self.acks {
            hook.timestamps
                .lock()
                .expect("timestamps lock")
                .push(timestamp);
        }
    }

    /// Set the outcome (first call wins), wake every waiting future and
    /// tell the interceptors each record's outcome.
    pub fn complete(&self, outcome: Result<BatchAck>) {
        if self.outcome.set(outcome).is_ok() {
            let waiters = std::mem::take(&mut *self.waiters.lock().expect("waiters lock"));
            for waker in waiters {
                waker.wake();
            }
            if let (Some(hook), Some(outcome)) = (&self.acks, self.outcome.get()) {
                let timestamps =
                    std::mem::take(&mut *hook.timestamps.lock().expect("timestamps lock"));
                for (index, timestamp) in timestamps.into_iter().enumerate() {
                    let result = record_metadata(
                        &hook.topic,
                        hook.partition,
                        index as u32,
                        timestamp,
                        outcome,
                    );
                    interceptor::on_acknowledgement(&hook.chain, &result);
                }
            }
        }
    }

    pub fn is_complete(&self) -> bool {
        self.outcome.get().is_some()
    }
}

/// Resolves when the record's batch is acknowledged, to the record's offset
/// and timestamp, or to the error that failed the batch.
///
/// Dropping it does not cancel the record: it is still sent (fire and
/// forget). Returned by [`Producer::send`](crate::Producer::send).
pub struct DeliveryFuture {
    batch: Arc<BatchResult>,
    topic: Arc<str>,
    partition: u32,
    /// Position of the record in its batch.
    index: u32,
    /// The record's CreateTime.
    timestamp: i64,
    /// Index of this future's waker in `batch.waiters`, once registered.
    slot: Option<usize>,
}

impl DeliveryFuture {
    pub(crate) fn new(
        batch: Arc<BatchResult>,
        topic: Arc<str>,
        partition: u32,
        index: u32,
        timestamp: i64,
    ) -> Self {
        DeliveryFuture {
            batch,
            topic,
            partition,
            index,
            timestamp,
            slot: None,
        }
    }

    /// The partition the record was assigned to.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Whether the outcome is known (awaiting will not wait).
    pub fn is_done(&self) -> bool {
        self.batch.is_complete()
    }

    fn metadata(&self, outcome: &Result<BatchAck>) -> Result<RecordMetadata> {
        record_metadata(
            &self.topic,
            self.partition,
            self.index,
            self.timestamp,
            outcome,
        )
    }
}

/// The outcome of record `index` (CreateTime `timestamp`) of a batch whose
/// outcome is `outcome`.
fn record_metadata(
    topic: &Arc<str>,
    partition: u32,
    index: u32,
    timestamp: i64,
    outcome: &Result<BatchAck>,
) -> Result<RecordMetadata> {
    let ack = outcome.as_ref().map_err(Error::clone)?;
    Ok(RecordMetadata {
        topic: topic.clone(),
        partition,
        offset: if ack.base_offset < 0 {
            -1
        } else {
            ack.base_offset + i64::from(index)
        },
        timestamp: if ack.log_append_time >= 0 {
            ack.log_append_time
        } else {
            timestamp
        },
    })
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(outcome) = this.batch.outcome.get() {
            return Poll::Ready(this.metadata(outcome));
        }
        let mut waiters = this.batch.waiters.lock().expect("waiters lock");
        // `complete` sets the outcome before taking the lock, so checking
        // again under the lock cannot miss a completion.
        if let Some(outcome) = this.batch.outcome.get() {
            drop(waiters);
            return Poll::Ready(this.metadata(outcome));
        }
        match this.slot {
            Some(i) if i < waiters.len() => {
                if !waiters[i].will_wake(cx.waker()) {
                    waiters[i] = cx.waker().clone();
                }
            }
            _ => {
                this.slot = Some(waiters.len());
                waiters.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl std::fmt::Debug for DeliveryFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryFuture")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("index", &self.index)
            .field("done", &self.is_done())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future(batch: &Arc<BatchResult>, index: u32) -> DeliveryFuture {
        DeliveryFuture::new(
            batch.clone(),
            "t".into(),
            2,
            index,
            1_000 + i64::from(index),
        )
    }

    #[tokio::test]
    async fn every_record_of_a_batch_gets_its_offset() {
        let batch = Arc::new(BatchResult::default());
        let futures: Vec<_> = (0..3).map(|i| future(&batch, i)).collect();
        let waiting = tokio::spawn(futures::future::join_all(futures));
        tokio::task::yield_now().await;
        batch.complete(Ok(BatchAck {
            base_offset: 40,
            log_append_time: -1,
        }));
        let results = waiting.await.unwrap();
        let offsets: Vec<_> = results.iter().map(|r| r.as_ref().unwrap().offset).collect();
        assert_eq!(offsets, [40, 41, 42]);
        assert_eq!(results[1].as_ref().unwrap().timestamp, 1_001);
        assert_eq!(&*results[1].as_ref().unwrap().topic, "t");
    }

    #[tokio::test]
    async fn failure_reaches_every_record_and_append_time_wins() {
        let batch = Arc::new(BatchResult::default());
        batch.complete(Err(Error::Closed));
        assert!(matches!(future(&batch, 0).await, Err(Error::Closed)));
        assert!(matches!(future(&batch, 1).await, Err(Error::Closed)));

        let batch = Arc::new(BatchResult::default());
        batch.complete(Ok(BatchAck {
            base_offset: -1,
            log_append_time: 77,
        }));
        let meta = future(&batch, 5).await.unwrap();
        assert_eq!((meta.offset, meta.timestamp), (-1, 77));
    }

    #[test]
    fn interceptors_hear_every_record_once() {
        use crate::interceptor::CountingInterceptor;
        let counter = Arc::new(CountingInterceptor::new());
        let chain: Arc<[Arc<dyn ProducerInterceptor>]> = Arc::new([counter.clone() as _]);
        let topic: Arc<str> = "t".into();
        let ok = BatchResult::with_interceptors(&chain, &topic, 0);
        for ts in [1, 2, 3] {
            ok.record_added(ts);
        }
        let ack = BatchAck {
            base_offset: 10,
            log_append_time: -1,
        };
        ok.complete(Ok(ack));
        // Only the first completion counts.
        ok.complete(Err(Error::Closed));
        let failed = BatchResult::with_interceptors(&chain, &topic, 0);
        failed.record_added(4);
        failed.complete(Err(Error::Closed));
        let c = counter.counts();
        assert_eq!((c.succeeded, c.failed), (3, 1));

        // Without interceptors nothing is remembered per record.
        let empty: Arc<[Arc<dyn ProducerInterceptor>]> = Arc::new([]);
        let none = BatchResult::with_interceptors(&empty, &topic, 0);
        none.record_added(1);
        assert!(none.acks.is_none());
    }
}
