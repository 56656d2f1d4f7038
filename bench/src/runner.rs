//! The phases every system goes through, with the same loop for all:
//!
//! 1. `produce_max`: one producer offers messages as fast as the system
//!    acknowledges them (bounded by its client's window) for the workload's
//!    duration.
//! 2. `consume_backlog`: a new consumer reads everything phase 1 wrote,
//!    from the start.
//! 3. `end_to_end`: on a fresh topic, a consumer waits while one producer
//!    sends at a fixed rate; each payload carries its send time, so both
//!    the acknowledgement latency and the publish → consume latency are
//!    measured, after a short warm-up at the same rate.
//!
//! Acks are awaited in send order on their own task so the sending loop
//! never waits for them; each system acknowledges in order per connection,
//! so this costs no accuracy beyond one clock read per wake-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use crate::driver::{AckFuture, Driver};
use crate::results::{Latency, Phase};

/// Bytes at the start of an end-to-end payload: nanoseconds since
/// the process's clock origin (`epoch()`) at send time, little endian.
pub const STAMP_LEN: usize = 8;

/// How long a consumer may see nothing before the phase fails.
const STALL: Duration = Duration::from_secs(15);

/// One poll's wait.
const POLL: Duration = Duration::from_millis(100);

/// Most messages offered in one call at the max rate.
const CHUNK: usize = 256;

/// The process-wide clock origin the payload stamps count from (producer
/// and consumer share the process, so one monotonic clock serves both).
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Counters the progress display reads while a phase runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub messages: AtomicU64,
}

/// A histogram of microseconds, 1 µs to 1 hour, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn latency(h: &Histogram<u64>) -> Option<Latency> {
    let ms = |micros: u64| micros as f64 / 1000.0;
    (!h.is_empty()).then(|| Latency {
        samples: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p99_9_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    })
}

fn phase(messages: u64, size: usize, elapsed: Duration, errors: u64) -> Phase {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let bytes = messages * size as u64;
    Phase {
        messages,
        bytes,
        seconds,
        msgs_per_sec: messages as f64 / seconds,
        mb_per_sec: bytes as f64 / 1e6 / seconds,
        errors,
        ack_latency: None,
        e2e_latency: None,
        server_cpu_s: None,
        client_cpu_s: None,
    }
}

/// A payload of `size` printable bytes.
pub fn payload(size: usize) -> Bytes {
    (0..size)
        .map(|i| b'A' + ((i * 7 + i / 26) % 26) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// `template` with the current time in its first [`STAMP_LEN`] bytes, or
/// 0 for a warm-up message (not measured).
fn stamped(template: &[u8], measured: bool) -> Bytes {
    let mut b = BytesMut::with_capacity(template.len());
    // Never 0 for a measured one: the epoch is taken before any send.
    let stamp = if measured {
        (epoch().elapsed().as_nanos() as u64).max(1)
    } else {
        0
    };
    b.put_u64_le(stamp);
    b.put_slice(&template[STAMP_LEN..]);
    b.freeze()
}

/// How long ago the payload was stamped; `None` for a warm-up message.
fn since_stamp(payload: &[u8], now: Instant) -> Option<Duration> {
    let stamp = u64::from_le_bytes(payload.get(..STAMP_LEN)?.try_into().ok()?);
    if stamp == 0 {
        return None;
    }
    let now = now.duration_since(epoch()).as_nanos() as u64;
    Some(Duration::from_nanos(now.saturating_sub(stamp)))
}

/// What [`produce`] measured (after the warm-up).
struct Produced {
    acked: u64,
    /// Including the warm-up's.
    acked_total: u64,
    errors: u64,
    first_error: Option<anyhow::Error>,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Produced {
    /// The measured phase, or the first failed send.
    fn into_phase(self, size: usize) -> Result<Phase> {
        if let Some(e) = self.first_error {
            bail!(
                "{} of {} sends failed; first: {e:#}",
                self.errors,
                self.acked + self.errors
            );
        }
        let mut out = phase(self.acked, size, self.elapsed, self.errors);
        out.ack_latency = latency(&self.latency);
        Ok(out)
    }
}

/// Send for `warmup` then `duration`, at `rate` messages/s or as fast as
/// acks allow; only what was sent after the warm-up is measured.
#[allow(clippy::too_many_arguments)]
async fn produce(
    driver: &dyn Driver,
    topic: &str,
    partitions: u32,
    size: usize,
    warmup: Duration,
    duration: Duration,
    rate: Option<f64>,
    progress: &Progress,
) -> Result<Produced> {
    let mut producer = driver.producer(topic, partitions).await?;
    let template = payload(size);
    let window_size = driver.window().max(1);
    let window = Arc::new(Semaphore::new(window_size));
    // (send time, measured, acks of one chunk)
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, bool, Vec<AckFuture>)>();
    let collector = tokio::spawn({
        let window = window.clone();
        async move {
            let mut h = histogram();
            let (mut acked, mut acked_total, mut errors, mut first_error) =
                (0u64, 0u64, 0u64, None);
            let mut last = Instant::now();
            // A future already complete when this task reaches it finished
            // by the previous wake-up at the latest: reuse that clock reading.
            let mut now = Instant::now();
            while let Some((sent_at, measured, acks)) = rx.recv().await {
                let mut released = 0;
                for mut ack in acks {
                    let outcome = match futures::FutureExt::now_or_never(&mut ack) {
                        Some(outcome) => {
                            if sent_at > now {
                                now = Instant::now();
                            }
                            outcome
                        }
                        None => {
                            // Give the window back before sleeping.
                            window.add_permits(std::mem::take(&mut released));
                            let outcome = ack.await;
                            now = Instant::now();
                            outcome
                        }
                    };
                    released += 1;
                    match outcome {
                        Ok(()) => {
                            acked_total += 1;
                            if measured {
                                acked += 1;
                                last = now;
                                h.saturating_record((now - sent_at).as_micros().max(1) as u64);
                            }
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                window.add_permits(released);
            }
            (acked, acked_total, errors, first_error, last, h)
        }
    });

    let start = Instant::now();
    let measure_from = start + warmup;
    let deadline = measure_from + duration;
    let mut sent = 0u64;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        // Fixed rate: send what is due, then sleep until the next message
        // is (tokio's timer has 1 ms granularity, so messages go in small
        // chunks at high rates). Max rate: chunks of CHUNK, checking the
        // clock between them. A chunk's messages share one send time: the
        // time the first of them was offered.
        let due = match rate {
            Some(r) => {
                let due = ((now - start).as_secs_f64() * r) as u64 + 1;
                if due <= sent {
                    producer.flush().await?;
                    let next = start + Duration::from_secs_f64(sent as f64 / r);
                    tokio::time::sleep_until(next.min(deadline)).await;
                    continue;
                }
                due - sent
            }
            None => CHUNK as u64,
        };
        let n = (due as usize).min(CHUNK).min(window_size);
        match window.try_acquire_many(n as u32) {
            Ok(permits) => permits.forget(),
            Err(_) => {
                producer.flush().await?;
                window.acquire_many(n as u32).await?.forget();
            }
        }
        let measured = Instant::now() >= measure_from;
        let payloads: Vec<Bytes> = (0..n)
            .map(|_| {
                if rate.is_some() {
                    stamped(&template, measured)
                } else {
                    template.clone()
                }
            })
            .collect();
        let sent_at = Instant::now();
        let mut acks = Vec::with_capacity(n);
        producer.send_all(payloads, &mut acks).await?;
        if tx.send((sent_at, measured, acks)).is_err() {
            break;
        }
        sent += n as u64;
        progress.messages.store(sent, Ordering::Relaxed);
    }
    producer.flush().await?;
    drop(tx);
    let (acked, acked_total, errors, first_error, last, latency) =
        collector.await.context("ack collector failed")?;
    producer.close().await?;
    Ok(Produced {
        acked,
        acked_total,
        errors,
        first_error,
        elapsed: last.saturating_duration_since(measure_from),
        latency,
    })
}

/// Phase 1: producer only, as fast as it goes.
pub async fn produce_max(
    driver: &dyn Driver,
    topic: &str,
    partitions: u32,
    size: usize,
    duration: Duration,
    progress: &Progress,
) -> Result<Phase> {
    driver.create_topic(topic, partitions).await?;
    let p = produce(
        driver,
        topic,
        partitions,
        size,
        Duration::ZERO,
        duration,
        None,
        progress,
    )
    .await?;
    p.into_phase(size)
}

/// Phase 2: read `expected` messages of `topic` from the start.
pub async fn consume_backlog(
    driver: &dyn Driver,
    topic: &str,
    partitions: u32,
    size: usize,
    expected: u64,
    progress: &Progress,
) -> Result<Phase> {
    let mut consumer = driver.consumer(topic, partitions).await?;
    let start = Instant::now();
    let mut read = 0u64;
    let mut last_progress = start;
    while read < expected {
        let batch = consumer.poll(POLL).await?;
        let now = Instant::now();
        if batch.is_empty() {
            if now - last_progress > STALL {
                bail!("consumer stalled at {read} of {expected} messages");
            }
            continue;
        }
        last_progress = now;
        read += batch.len() as u64;
        progress.messages.store(read, Ordering::Relaxed);
    }
    Ok(phase(read, size, start.elapsed(), 0))
}

/// The unmeasured start of the fixed-rate phase: a fifth of it, at most
/// 2 s. A fresh topic's first seconds pay for new files (segments, index
/// pages) and connections, a cost every system pays once, not per message;
/// the OpenMessaging Benchmark warms up for the same reason.
pub fn warmup(duration: Duration) -> Duration {
    (duration / 5).min(Duration::from_secs(2))
}

/// Phase 3: a consumer on a fresh topic while a producer sends at `rate`
/// (after a [`warmup`] at the same rate whose latencies are not counted).
pub async fn end_to_end(
    driver: &dyn Driver,
    topic: &str,
    partitions: u32,
    size: usize,
    duration: Duration,
    rate: f64,
    progress: &Progress,
) -> Result<Phase> {
    driver.create_topic(topic, partitions).await?;
    let mut consumer = driver.consumer(topic, partitions).await?;
    // The producer says how many were acknowledged once it is done; the
    // consumer stops when it has seen them all.
    let (done_tx, done_rx) = watch::channel(None::<u64>);
    let reader = tokio::spawn(async move {
        let mut h = histogram();
        let mut read = 0u64;
        let mut last_progress = Instant::now();
        loop {
            if let Some(total) = *done_rx.borrow()
                && read >= total
            {
                break;
            }
            let batch = consumer.poll(POLL).await?;
            let now = Instant::now();
            if batch.is_empty() {
                if done_rx.borrow().is_some() && now - last_progress > STALL {
                    bail!("consumer stalled after {read} messages");
                }
                continue;
            }
            last_progress = now;
            for payload in &batch {
                if let Some(d) = since_stamp(payload, now) {
                    h.saturating_record(d.as_micros().max(1) as u64);
                }
            }
            read += batch.len() as u64;
        }
        anyhow::Ok(h)
    });
    let p = produce(
        driver,
        topic,
        partitions,
        size,
        warmup(duration),
        duration,
        Some(rate),
        progress,
    )
    .await;
    let p = match p {
        Ok(p) => p,
        Err(e) => {
            reader.abort();
            return Err(e);
        }
    };
    let _ = done_tx.send(Some(p.acked_total));
    let e2e = reader.await.context("consumer task failed")??;
    let mut out = p.into_phase(size)?;
    out.e2e_latency = latency(&e2e);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let template = payload(100);
        let body = stamped(&template, true);
        assert_eq!(body.len(), 100);
        assert_eq!(&body[STAMP_LEN..], &template[STAMP_LEN..]);
        let later = Instant::now() + Duration::from_millis(5);
        let d = since_stamp(&body, later).unwrap();
        assert!(
            d >= Duration::from_millis(5) && d < Duration::from_secs(5),
            "{d:?}"
        );
        assert!(since_stamp(b"short", later).is_none());
        // Warm-up messages carry no time and are not measured.
        assert!(since_stamp(&stamped(&template, false), later).is_none());
        assert_eq!(warmup(Duration::from_secs(10)), Duration::from_secs(2));
        assert_eq!(warmup(Duration::from_secs(1)), Duration::from_millis(200));
    }

    #[test]
    fn phase_rates() {
        let p = phase(1000, 1000, Duration::from_millis(500), 2);
        assert_eq!(p.bytes, 1_000_000);
        assert!((p.msgs_per_sec - 2000.0).abs() < 1e-6);
        assert!((p.mb_per_sec - 2.0).abs() < 1e-9);
        let mut h = histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let l = latency(&h).unwrap();
        assert!(
            (l.p50_ms - 500.0).abs() < 1.0 && (l.p99_ms - 990.0).abs() < 1.0,
            "{l:?}"
        );
        assert!(latency(&histogram()).is_none());
    }
}
