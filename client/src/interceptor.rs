//! Producer interceptors, as Kafka's `ProducerInterceptor`: code that sees
//! every record on its way out ([`ProducerInterceptor::on_send`], which may
//! change it) and every record's final outcome
//! ([`ProducerInterceptor::on_acknowledgement`]).
//!
//! Configure a chain with [`ProducerConfig::interceptors`](crate::ProducerConfig::interceptors);
//! interceptors run in that order. An interceptor is never allowed to break
//! sending: one that returns `Err` or panics is logged with `tracing::warn!`
//! and skipped, and the record goes on as the previous interceptor left it.
//!
//! Two come with the crate: [`TimestampPrefixInterceptor`] (Kafka
//! tutorials' classic) and [`CountingInterceptor`].

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};

use crate::error::Error;
use crate::producer::{ProducerRecord, RecordMetadata};

/// The error an interceptor's [`on_send`](ProducerInterceptor::on_send)
/// may return: any error, since it is only logged.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Sees records before they are sent and their outcomes after.
///
/// Methods run on the producer's own tasks (`on_send` inside
/// [`Producer::send`](crate::Producer::send), `on_acknowledgement` where a
/// batch completes), so they should be quick and must not block.
///
/// ```
/// use runnel_client::interceptor::{BoxError, ProducerInterceptor};
/// use runnel_client::{Error, ProducerRecord, RecordMetadata};
///
/// /// Tags every record with the service that sent it.
/// struct Origin;
///
/// impl ProducerInterceptor for Origin {
///     fn on_send(&self, record: ProducerRecord) -> Result<ProducerRecord, BoxError> {
///         Ok(record.header("origin", Some("billing".into())))
///     }
///
///     fn on_acknowledgement(&self, _result: &Result<RecordMetadata, Error>) {}
/// }
///
/// let record = Origin.on_send(ProducerRecord::new("invoices", "42")).unwrap();
/// assert_eq!(record.headers[0].0, "origin");
/// ```
pub trait ProducerInterceptor: Send + Sync {
    /// Called for every record passed to `send`, before its partition is
    /// chosen; the record it returns is the one sent (and the input to the
    /// next interceptor). An `Err` (or a panic) is logged and the record
    /// continues unchanged by this interceptor.
    fn on_send(&self, record: ProducerRecord) -> Result<ProducerRecord, BoxError>;

    /// Called exactly once per record with its final outcome: the broker's
    /// acknowledgement, the error that failed its batch (after retries), or
    /// the error that made `send` refuse it.
    fn on_acknowledgement(&self, result: &Result<RecordMetadata, Error>);

    /// Called once from [`Producer::close`](crate::Producer::close), after
    /// every record has its outcome. Default: nothing.
    fn close(&self) {}

    /// A name for logs. Default: the type's name.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }
}

impl fmt::Debug for dyn ProducerInterceptor {
    // So that `ProducerConfig`, which holds a chain, stays `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Run `on_send` of each interceptor in order; one that fails or panics is
/// skipped (its input goes on to the next).
pub(crate) fn on_send(
    chain: &[Arc<dyn ProducerInterceptor>],
    mut record: ProducerRecord,
) -> ProducerRecord {
    for interceptor in chain {
        // `on_send` takes the record by value, so keep a copy to carry on
        // with if it fails: a clone is an Arc and ref-count bumps plus the
        // headers Vec.
        let fallback = record.clone();
        match catch_unwind(AssertUnwindSafe(|| interceptor.on_send(record))) {
            Ok(Ok(changed)) => record = changed,
            Ok(Err(error)) => {
                tracing::warn!(
                    interceptor = interceptor.name(),
                    topic = %fallback.topic,
                    error = %error,
                    "producer interceptor on_send failed; skipping it for this record"
                );
                record = fallback;
            }
            Err(panic) => {
                tracing::warn!(
                    interceptor = interceptor.name(),
                    topic = %fallback.topic,
                    panic = panic_message(&panic),
                    "producer interceptor on_send panicked; skipping it for this record"
                );
                record = fallback;
            }
        }
    }
    record
}

/// Tell every interceptor a record's outcome; a panic is logged and the
/// next interceptor still runs.
pub(crate) fn on_acknowledgement(
    chain: &[Arc<dyn ProducerInterceptor>],
    result: &Result<RecordMetadata, Error>,
) {
    for interceptor in chain {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| {
            interceptor.on_acknowledgement(result);
        })) {
            tracing::warn!(
                interceptor = interceptor.name(),
                panic = panic_message(&panic),
                "producer interceptor on_acknowledgement panicked"
            );
        }
    }
}

/// Close every interceptor; a panic is logged and the others still close.
pub(crate) fn close(chain: &[Arc<dyn ProducerInterceptor>]) {
    for interceptor in chain {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| interceptor.close())) {
            tracing::warn!(
                interceptor = interceptor.name(),
                panic = panic_message(&panic),
                "producer interceptor close panicked"
            );
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}

/// Prefixes every record's value with the current time in ms and a comma:
/// `hello` becomes `1700000000000,hello` (a null value becomes just
/// `1700000000000,`). The example interceptor of Kafka's documentation.
///
/// ```
/// use runnel_client::interceptor::{ProducerInterceptor, TimestampPrefixInterceptor};
/// use runnel_client::ProducerRecord;
///
/// let out = TimestampPrefixInterceptor::new()
///     .on_send(ProducerRecord::new("t", "hello"))
///     .unwrap();
/// let value = std::str::from_utf8(out.value.as_deref().unwrap()).unwrap();
/// let (ms, rest) = value.split_once(',').unwrap();
/// assert!(ms.parse::<u64>().unwrap() > 1_600_000_000_000);
/// assert_eq!(rest, "hello");
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct TimestampPrefixInterceptor {
    _private: (),
}

impl TimestampPrefixInterceptor {
    /// The interceptor.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ProducerInterceptor for TimestampPrefixInterceptor {
    fn on_send(&self, mut record: ProducerRecord) -> Result<ProducerRecord, BoxError> {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
        let prefix = format!("{now_ms},");
        let old = record.value.take().unwrap_or_default();
        let mut value = BytesMut::with_capacity(prefix.len() + old.len());
        value.put_slice(prefix.as_bytes());
        value.put_slice(&old);
        record.value = Some(value.freeze());
        Ok(record)
    }

    fn on_acknowledgement(&self, _result: &Result<RecordMetadata, Error>) {}
}

/// How many records a [`CountingInterceptor`] saw succeed and fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Records the broker acknowledged.
    pub succeeded: u64,
    /// Records that failed for good (or that `send` refused).
    pub failed: u64,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records sent successfully, {} failed",
            self.succeeded, self.failed
        )
    }
}

/// Counts acknowledged and failed records; on close logs "N records sent
/// successfully, M failed" at info level.
///
/// Keep an `Arc` to read the counts while the producer runs:
///
/// ```
/// use std::sync::Arc;
/// use runnel_client::interceptor::{CountingInterceptor, ProducerInterceptor};
/// use runnel_client::{Error, ProducerConfig, RecordMetadata};
///
/// let counter = Arc::new(CountingInterceptor::new());
/// let config = ProducerConfig {
///     interceptors: vec![counter.clone()],
///     ..Default::default()
/// };
/// # let _ = config;
/// // The producer calls this once per record:
/// counter.on_acknowledgement(&Err(Error::Closed));
/// assert_eq!(counter.counts().failed, 1);
/// assert_eq!(counter.counts().to_string(), "0 records sent successfully, 1 failed");
/// ```
#[derive(Debug, Default)]
pub struct CountingInterceptor {
    succeeded: AtomicU64,
    failed: AtomicU64,
}

impl CountingInterceptor {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        Counts {
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// Log the counts (`tracing::info!`) and return them; what
    /// [`close`](ProducerInterceptor::close) does.
    pub fn report(&self) -> Counts {
        let counts = self.counts();
        tracing::info!(
            succeeded = counts.succeeded,
            failed = counts.failed,
            "{counts}"
        );
        counts
    }
}

impl ProducerInterceptor for CountingInterceptor {
    fn on_send(&self, record: ProducerRecord) -> Result<ProducerRecord, BoxError> {
        Ok(record)
    }

    fn on_acknowledgement(&self, result: &Result<RecordMetadata, Error>) {
        let counter = if result.is_ok() {
            &self.succeeded
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn close(&self) {
        self.report();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Appends `marker` to the value.
    struct Append(&'static str);

    impl ProducerInterceptor for Append {
        fn on_send(&self, mut record: ProducerRecord) -> Result<ProducerRecord, BoxError> {
            let mut v = record.value.take().unwrap_or_default().to_vec();
            v.extend_from_slice(self.0.as_bytes());
            record.value = Some(v.into());
            Ok(record)
        }
        fn on_acknowledgement(&self, _: &Result<RecordMetadata, Error>) {}
    }

    struct Fails;

    impl ProducerInterceptor for Fails {
        fn on_send(&self, _: ProducerRecord) -> Result<ProducerRecord, BoxError> {
            Err("no thanks".into())
        }
        fn on_acknowledgement(&self, _: &Result<RecordMetadata, Error>) {
            panic!("acknowledgement panic");
        }
        fn close(&self) {
            panic!("close panic");
        }
    }

    struct Panics;

    impl ProducerInterceptor for Panics {
        fn on_send(&self, _: ProducerRecord) -> Result<ProducerRecord, BoxError> {
            panic!("on_send panic")
        }
        fn on_acknowledgement(&self, _: &Result<RecordMetadata, Error>) {}
    }

    /// Records the order of the calls it gets.
    #[derive(Default)]
    struct Log(Mutex<Vec<&'static str>>);

    impl ProducerInterceptor for Log {
        fn on_send(&self, record: ProducerRecord) -> Result<ProducerRecord, BoxError> {
            self.0.lock().unwrap().push("send");
            Ok(record)
        }
        fn on_acknowledgement(&self, _: &Result<RecordMetadata, Error>) {
            self.0.lock().unwrap().push("ack");
        }
        fn close(&self) {
            self.0.lock().unwrap().push("close");
        }
    }

    fn value(record: &ProducerRecord) -> &str {
        std::str::from_utf8(record.value.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn chain_runs_in_order() {
        let chain: Vec<Arc<dyn ProducerInterceptor>> =
            vec![Arc::new(Append("-a")), Arc::new(Append("-b"))];
        let out = on_send(&chain, ProducerRecord::new("t", "v"));
        assert_eq!(value(&out), "v-a-b");
    }

    #[test]
    fn failing_and_panicking_interceptors_are_skipped() {
        let log = Arc::new(Log::default());
        let chain: Vec<Arc<dyn ProducerInterceptor>> = vec![
            Arc::new(Append("-a")),
            Arc::new(Fails),
            Arc::new(Panics),
            Arc::new(Append("-b")),
            log.clone(),
        ];
        let out = on_send(&chain, ProducerRecord::new("t", "v").key("k"));
        assert_eq!(value(&out), "v-a-b");
        assert_eq!(out.key.as_deref(), Some(&b"k"[..]));
        // A panic in one acknowledgement or close does not stop the others.
        on_acknowledgement(&chain, &Err(Error::Closed));
        close(&chain);
        assert_eq!(*log.0.lock().unwrap(), ["send", "ack", "close"]);
    }

    #[test]
    fn timestamp_prefix() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let i = TimestampPrefixInterceptor::new();
        let out = i.on_send(ProducerRecord::new("t", "value")).unwrap();
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let (ms, rest) = value(&out).split_once(',').unwrap();
        let ms: u128 = ms.parse().unwrap();
        assert!(
            (before..=after).contains(&ms),
            "{before} <= {ms} <= {after}"
        );
        assert_eq!(rest, "value");

        let mut tombstone = ProducerRecord::new("t", "");
        tombstone.value = None;
        let out = i.on_send(tombstone).unwrap();
        assert!(value(&out).ends_with(','));
    }

    #[test]
    fn counting() {
        let c = CountingInterceptor::new();
        let ok = Ok(RecordMetadata {
            topic: "t".into(),
            partition: 0,
            offset: 1,
            timestamp: 2,
        });
        c.on_acknowledgement(&ok);
        c.on_acknowledgement(&ok);
        c.on_acknowledgement(&Err(Error::Closed));
        let want = Counts {
            succeeded: 2,
            failed: 1,
        };
        assert_eq!(c.counts(), want);
        assert_eq!(c.report(), want);
        assert_eq!(want.to_string(), "2 records sent successfully, 1 failed");
    }

    #[test]
    fn debug_names_the_interceptor() {
        let i: Arc<dyn ProducerInterceptor> = Arc::new(CountingInterceptor::new());
        assert!(format!("{i:?}").ends_with("CountingInterceptor"));
    }
}
