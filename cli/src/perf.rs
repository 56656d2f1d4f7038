//! `runnel perf produce|consume`: load generators in the style of Kafka's
//! `kafka-producer-perf-test` and `kafka-consumer-perf-test`.
//!
//! `perf produce` builds one payload and sends it `--num-records` times
//! (a `Bytes` clone per record, as Kafka's tool reuses its payload array),
//! recording each record's send→ack latency in an HDR histogram. `perf
//! consume` reads from the start of every partition and records how long
//! each poll took. Both show a progress bar on a terminal and end with one
//! summary line (or a JSON object with `--output json`).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use runnel_client::{
    Acks, AutoOffsetReset, Compression, Consumer, ConsumerConfig, DeliveryFuture, Offset, Producer,
    ProducerConfig, ProducerRecord,
};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::Global;
use crate::output::{self, OutputFormat};

#[derive(Debug, Args)]
pub struct PerfArgs {
    #[command(subcommand)]
    command: PerfCommand,
}

#[derive(Debug, Subcommand)]
enum PerfCommand {
    /// Send records as fast as allowed and report throughput and latency.
    Produce(ProducePerf),
    /// Read records from the start and report throughput and fetch latency.
    Consume(ConsumePerf),
}

#[derive(Debug, Args)]
pub struct ProducePerf {
    /// Topic to write to (it must exist).
    #[arg(long)]
    topic: String,
    /// How many records to send.
    #[arg(long)]
    num_records: u64,
    /// Value size in bytes.
    #[arg(long)]
    record_size: usize,
    /// Acknowledgement level: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: Acks,
    /// Idempotent producer (enable.idempotence) [default: true with
    /// --acks all, else false].
    #[arg(long, value_name = "true|false")]
    idempotence: Option<bool>,
    /// Codec for each batch (compression.type): none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = crate::produce::parse_compression)]
    compression: Compression,
    /// Producer batch.size in bytes.
    #[arg(long, default_value_t = ProducerConfig::default().batch_size)]
    batch_size: usize,
    /// Producer linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Producer max.in.flight.requests.per.connection.
    #[arg(long, default_value_t = ProducerConfig::default().max_in_flight_requests)]
    max_in_flight: usize,
    /// Producer max.request.size in bytes.
    #[arg(long, default_value_t = ProducerConfig::default().max_request_size)]
    max_request_size: usize,
    /// Records per second to aim for; -1 for as fast as possible.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    throughput: i64,
    /// Also print a line per window of this length (e.g. 5s, as Kafka's
    /// tool does) to stderr: records, rate, average and max latency of the
    /// acknowledgements in it, so a burst of slow ones shows when it happened.
    #[arg(long, value_parser = humantime::parse_duration)]
    reporting_interval: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct ConsumePerf {
    /// Topic to read (from the start of every partition).
    #[arg(long)]
    topic: String,
    /// How many records to read.
    #[arg(long)]
    messages: u64,
    /// Consumer fetch.max.bytes.
    #[arg(long, default_value_t = ConsumerConfig::default().fetch_max_bytes)]
    fetch_max_bytes: u32,
    /// Consumer max.partition.fetch.bytes.
    #[arg(long, default_value_t = ConsumerConfig::default().max_partition_fetch_bytes)]
    max_partition_fetch_bytes: u32,
    /// Give up when no record arrives for this long (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Consume as this consumer group (its committed offsets, else from the
    /// start), with --members consumers sharing the partitions.
    #[arg(long)]
    group: Option<String>,
    /// Group members, in this process; the last one joins once the others
    /// are consuming, and the time until it gets its first record (the
    /// rebalance) is reported.
    #[arg(long, default_value_t = 1, requires = "group")]
    members: usize,
}

fn parse_acks(s: &str) -> Result<Acks, String> {
    s.parse().map_err(|e: runnel_client::Error| e.to_string())
}

pub async fn run(global: &Global, args: PerfArgs) -> Result<()> {
    match args.command {
        PerfCommand::Produce(p) => produce(global, p).await,
        PerfCommand::Consume(c) => consume(global, c).await,
    }
}

/// Kafka's tools count MB as 2^20 bytes.
const MB: f64 = 1024.0 * 1024.0;

/// A bar on stderr while stdout is a terminal; nothing when piped.
fn progress(len: u64, unit: &str) -> ProgressBar {
    let target = if std::io::stdout().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let template = format!(
        "{{elapsed_precise}} [{{bar:40}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, eta {{eta}})"
    );
    let style =
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::with_draw_target(Some(len), target).with_style(style.progress_chars("=> "))
}

/// A histogram of microseconds from 1 µs to 1 hour, 3 significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// The payload every record carries: printable letters, as Kafka's tool
/// uses, so a consumer printing them does not garble a terminal.
fn payload(size: usize) -> Bytes {
    (0..size)
        .map(|i| b'A' + ((i * 7 + i / 26) % 26) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Results of `perf produce`.
#[derive(Debug)]
pub struct ProduceSummary {
    pub records: u64,
    pub failed: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl ProduceSummary {
    fn rate(&self) -> (f64, f64) {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        (self.records as f64 / secs, self.bytes as f64 / MB / secs)
    }

    /// kafka-producer-perf-test's final line.
    pub fn line(&self) -> String {
        let (rps, mbps) = self.rate();
        let h = &self.latency;
        format!(
            "{} records sent, {rps:.1} records/sec ({mbps:.2} MB/sec), {:.2} ms avg latency, \
             {:.2} ms max latency, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
            self.records,
            h.mean() / 1000.0,
            ms(h.max()),
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.95)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
        )
    }

    pub fn json(&self) -> Value {
        let (rps, mbps) = self.rate();
        let h = &self.latency;
        json!({
            "records": self.records,
            "failed": self.failed,
            "bytes": self.bytes,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "records_per_sec": rps,
            "mb_per_sec": mbps,
            "latency_ms": {
                "avg": h.mean() / 1000.0,
                "max": ms(h.max()),
                "p50": ms(h.value_at_quantile(0.50)),
                "p95": ms(h.value_at_quantile(0.95)),
                "p99": ms(h.value_at_quantile(0.99)),
                "p99_9": ms(h.value_at_quantile(0.999)),
            },
        })
    }
}

async fn produce(global: &Global, args: ProducePerf) -> Result<()> {
    let base = crate::produce::base_config(global, args.acks, args.idempotence);
    let linger = Duration::from_millis(args.linger_ms);
    let config = ProducerConfig {
        compression: args.compression,
        batch_size: args.batch_size,
        linger,
        max_in_flight_requests: args.max_in_flight,
        max_request_size: args.max_request_size,
        buffer_memory: base
            .buffer_memory
            .max(args.batch_size)
            .max(args.max_request_size),
        delivery_timeout: base.delivery_timeout.max(linger + global.request_timeout),
        ..base
    };
    let producer = Producer::connect(global.client_config(), config).await?;
    producer.partition_count(&args.topic).await?;
    let bar = progress(args.num_records, "records");

    // Acks are awaited in send order on their own task, so the sending loop
    // never waits for them; a batch's records all complete at once, so
    // awaiting in order costs little accuracy.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, DeliveryFuture)>();
    let (reporting_interval, record_size) = (args.reporting_interval, args.record_size);
    let collector = tokio::spawn({
        let bar = bar.clone();
        async move {
            let mut latency = latency_histogram();
            let (mut ok, mut failed, mut first_error) = (0u64, 0u64, None);
            let mut last_ack = Instant::now();
            let mut window =
                reporting_interval.map(|every| Window::new(every, record_size, Instant::now()));
            // When this task catches up a completed future it was finished
            // by the last wake-up at the latest: reuse that clock reading
            // (one per batch, not per record) unless the record is newer.
            let mut now = Instant::now();
            while let Some((sent_at, delivery)) = rx.recv().await {
                let waited = !delivery.is_done();
                let outcome = delivery.await;
                if waited || sent_at > now {
                    now = Instant::now();
                }
                match outcome {
                    Ok(_) => {
                        last_ack = now;
                        let micros = (now - sent_at).as_micros().max(1) as u64;
                        latency.saturating_record(micros);
                        ok += 1;
                        if let Some(w) = &mut window {
                            w.record(micros, now, &bar);
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(e);
                    }
                }
                if (ok + failed) % 4096 == 0 {
                    bar.set_position(ok + failed);
                }
            }
            (latency, ok, failed, first_error, last_ack)
        }
    });

    let record = ProducerRecord {
        topic: Arc::from(args.topic.as_str()),
        partition: None,
        key: None,
        value: Some(payload(args.record_size)),
        headers: Vec::new(),
        timestamp: None,
    };
    let per_record =
        (args.throughput > 0).then(|| Duration::from_secs_f64(1.0 / args.throughput as f64));
    let start = Instant::now();
    for i in 0..args.num_records {
        if let Some(interval) = per_record {
            let due = start + interval.mul_f64(i as f64);
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
        }
        let sent_at = Instant::now();
        let delivery = producer
            .send(record.clone())
            .await
            .with_context(|| format!("record {i}"))?;
        tx.send((sent_at, delivery))
            .context("ack collector stopped")?;
    }
    drop(tx);
    producer.flush().await;
    let (latency, ok, failed, first_error, last_ack) =
        collector.await.context("ack collector failed")?;
    producer.close().await;
    bar.finish_and_clear();

    let summary = ProduceSummary {
        records: ok,
        failed,
        bytes: ok * args.record_size as u64,
        elapsed: last_ack.saturating_duration_since(start),
        latency,
    };
    match global.output {
        OutputFormat::Json => output::print_json(&summary.json())?,
        OutputFormat::Table => output::print_line(&summary.line())?,
    }
    if let Some(e) = first_error {
        bail!(
            "{failed} of {} records failed; first error: {e}",
            args.num_records
        );
    }
    Ok(())
}

/// `perf produce --reporting-interval`: acknowledgements of the current
/// window, printed as one line (Kafka's per-window format) when it ends.
struct Window {
    every: Duration,
    record_size: usize,
    started: Instant,
    records: u64,
    latency_sum_us: u64,
    latency_max_us: u64,
}

impl Window {
    fn new(every: Duration, record_size: usize, now: Instant) -> Self {
        Window {
            every,
            record_size,
            started: now,
            records: 0,
            latency_sum_us: 0,
            latency_max_us: 0,
        }
    }

    fn record(&mut self, micros: u64, now: Instant, bar: &ProgressBar) {
        self.records += 1;
        self.latency_sum_us += micros;
        self.latency_max_us = self.latency_max_us.max(micros);
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed >= self.every {
            let line = self.line(elapsed);
            bar.suspend(|| eprintln!("{line}"));
            *self = Window::new(self.every, self.record_size, now);
        }
    }

    fn line(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = self.records as f64 / secs;
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency.",
            self.records,
            rate,
            rate * self.record_size as f64 / MB,
            self.latency_sum_us as f64 / self.records as f64 / 1000.0,
            ms(self.latency_max_us),
        )
    }
}

/// Results of `perf consume`.
#[derive(Debug)]
pub struct ConsumeSummary {
    pub records: u64,
    pub bytes: u64,
    pub fetches: u64,
    pub elapsed: Duration,
    pub fetch_latency: Histogram<u64>,
}

impl ConsumeSummary {
    fn rate(&self) -> (f64, f64) {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        (self.records as f64 / secs, self.bytes as f64 / MB / secs)
    }

    pub fn line(&self) -> String {
        let (rps, mbps) = self.rate();
        let h = &self.fetch_latency;
        format!(
            "{} records consumed in {:.2} s, {rps:.1} records/sec ({mbps:.2} MB/sec), {} fetches, \
             {:.2} ms avg fetch latency, {:.2} ms max, {:.2} ms 50th, {:.2} ms 99th, {:.2} ms 99.9th.",
            self.records,
            self.elapsed.as_secs_f64(),
            self.fetches,
            h.mean() / 1000.0,
            ms(h.max()),
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
        )
    }

    pub fn json(&self) -> Value {
        let (rps, mbps) = self.rate();
        let h = &self.fetch_latency;
        json!({
            "records": self.records,
            "bytes": self.bytes,
            "fetches": self.fetches,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "records_per_sec": rps,
            "mb_per_sec": mbps,
            "fetch_latency_ms": {
                "avg": h.mean() / 1000.0,
                "max": ms(h.max()),
                "p50": ms(h.value_at_quantile(0.50)),
                "p99": ms(h.value_at_quantile(0.99)),
                "p99_9": ms(h.value_at_quantile(0.999)),
            },
        })
    }
}

async fn consume(global: &Global, args: ConsumePerf) -> Result<()> {
    if args.group.is_some() {
        return consume_group(global, args).await;
    }
    let config = ConsumerConfig {
        fetch_max_bytes: args.fetch_max_bytes,
        max_partition_fetch_bytes: args.max_partition_fetch_bytes,
        auto_offset_reset: AutoOffsetReset::Earliest,
        request_timeout: global.request_timeout,
        ..Default::default()
    };
    let mut consumer = Consumer::connect(global.client_config(), config).await?;
    let count = consumer.partition_count(&args.topic).await?;
    let partitions: Vec<(&str, u32)> = (0..count).map(|p| (args.topic.as_str(), p)).collect();
    consumer.assign(partitions.iter().copied());
    for (t, p) in &partitions {
        consumer.seek(t, *p, Offset::Earliest).await?;
    }
    let bar = progress(args.messages, "records");

    let mut summary = ConsumeSummary {
        records: 0,
        bytes: 0,
        fetches: 0,
        elapsed: Duration::ZERO,
        fetch_latency: latency_histogram(),
    };
    let start = Instant::now();
    let mut last_record = start;
    let mut timed_out = false;
    while summary.records < args.messages {
        let polled_at = Instant::now();
        let records = consumer.poll(Duration::from_millis(500)).await?;
        if records.is_empty() {
            if last_record.elapsed() >= args.timeout {
                timed_out = true;
                break;
            }
            continue;
        }
        last_record = Instant::now();
        summary
            .fetch_latency
            .saturating_record((last_record - polled_at).as_micros().max(1) as u64);
        summary.fetches += 1;
        let wanted = (args.messages - summary.records).min(records.len() as u64) as usize;
        for r in &records[..wanted] {
            summary.bytes += (r.key.as_ref().map_or(0, Bytes::len)
                + r.value.as_ref().map_or(0, Bytes::len)) as u64;
        }
        summary.records += wanted as u64;
        bar.set_position(summary.records);
    }
    summary.elapsed = last_record.saturating_duration_since(start);
    bar.finish_and_clear();
    match global.output {
        OutputFormat::Json => output::print_json(&summary.json())?,
        OutputFormat::Table => output::print_line(&summary.line())?,
    }
    if timed_out {
        bail!(
            "consumed only {} of {} records: none arrived for {}",
            summary.records,
            args.messages,
            humantime::format_duration(args.timeout)
        );
    }
    Ok(())
}

/// `perf consume --group`: N members share the topic; aggregate rate, and
/// how long the last member to join waited for its first record.
async fn consume_group(global: &Global, args: ConsumePerf) -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let group = args.group.clone().expect("checked by the caller");
    anyhow::ensure!(args.members >= 1, "--members must be at least 1");
    let config = ConsumerConfig {
        fetch_max_bytes: args.fetch_max_bytes,
        max_partition_fetch_bytes: args.max_partition_fetch_bytes,
        auto_offset_reset: AutoOffsetReset::Earliest,
        request_timeout: global.request_timeout,
        group_id: Some(group),
        client_id: "runnel-perf".into(),
        session_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let records = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let target = args.messages;
    let member = |join_delay: Option<Arc<AtomicU64>>| {
        let (records, bytes, config, client) = (
            records.clone(),
            bytes.clone(),
            config.clone(),
            global.client_config(),
        );
        let topic = args.topic.clone();
        let timeout = args.timeout;
        tokio::spawn(async move {
            if let Some(first) = &join_delay {
                // Join once the others are consuming.
                while first.load(Ordering::Acquire) == 0 && records.load(Ordering::Acquire) == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            let joined = Instant::now();
            let mut consumer = Consumer::connect(client, config).await?;
            consumer.subscribe([&topic])?;
            let mut first_record: Option<Duration> = None;
            let mut last = Instant::now();
            while records.load(Ordering::Acquire) < target {
                let polled = consumer.poll(Duration::from_millis(200)).await?;
                if polled.is_empty() {
                    if last.elapsed() >= timeout && first_record.is_some() {
                        break;
                    }
                    continue;
                }
                last = Instant::now();
                first_record.get_or_insert_with(|| joined.elapsed());
                let n: u64 = polled
                    .iter()
                    .map(|r| {
                        (r.key.as_ref().map_or(0, Bytes::len)
                            + r.value.as_ref().map_or(0, Bytes::len)) as u64
                    })
                    .sum();
                bytes.fetch_add(n, Ordering::AcqRel);
                records.fetch_add(polled.len() as u64, Ordering::AcqRel);
            }
            consumer.close().await?;
            anyhow::Ok(first_record)
        })
    };
    let start = Instant::now();
    let bar = progress(args.messages, "records");
    let mut tasks: Vec<_> = (0..args.members - 1).map(|_| member(None)).collect();
    let started = Arc::new(AtomicU64::new(if args.members == 1 { 1 } else { 0 }));
    tasks.push(member(Some(started)));
    while records.load(Ordering::Acquire) < target && !tasks.iter().all(|t| t.is_finished()) {
        bar.set_position(records.load(Ordering::Acquire));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let mut last_join = None;
    for t in tasks {
        last_join = t.await??;
    }
    let (n, b) = (
        records.load(Ordering::Acquire),
        bytes.load(Ordering::Acquire),
    );
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rebalance_ms = last_join.map(|d| d.as_secs_f64() * 1000.0);
    match global.output {
        OutputFormat::Json => output::print_json(&serde_json::json!({
            "records": n, "bytes": b, "elapsed_s": secs, "members": args.members,
            "records_per_sec": n as f64 / secs, "mb_per_sec": b as f64 / secs / (1 << 20) as f64,
            "last_member_first_record_ms": rebalance_ms,
        }))?,
        OutputFormat::Table => output::print_line(&format!(
            "{n} records consumed by {} member(s) in {secs:.2} s, {:.1} records/sec ({:.2} MB/sec); \
             last member's first record {} after it joined",
            args.members,
            n as f64 / secs,
            b as f64 / secs / (1 << 20) as f64,
            rebalance_ms.map_or("n/a".to_owned(), |ms| format!("{ms:.0} ms")),
        ))?,
    }
    anyhow::ensure!(n >= target, "consumed only {n} of {target} records");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values: &[u64]) -> Histogram<u64> {
        let mut h = latency_histogram();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    #[test]
    fn produce_summary_reads_like_kafkas() {
        let s = ProduceSummary {
            records: 1000,
            failed: 0,
            bytes: 1000 * 1024,
            elapsed: Duration::from_secs(2),
            latency: histogram(&[1000, 2000, 3000, 4000]),
        };
        let line = s.line();
        assert!(line.starts_with("1000 records sent, 500.0 records/sec (0.49 MB/sec), 2.50 ms avg latency, 4.00 ms max latency"), "{line}");
        assert!(line.ends_with("ms 99.9th."), "{line}");
        let v = s.json();
        assert_eq!(v["records"], 1000);
        assert_eq!(v["records_per_sec"], 500.0);
        // HDR buckets: within 0.1% of the recorded value.
        assert!(
            (v["latency_ms"]["max"].as_f64().unwrap() - 4.0).abs() < 0.01,
            "{v}"
        );
    }

    #[test]
    fn window_line_reads_like_kafkas() {
        let start = Instant::now();
        let mut w = Window::new(Duration::from_secs(5), 1024, start);
        let bar = ProgressBar::hidden();
        for micros in [1_000, 3_000] {
            w.record(micros, start, &bar);
        }
        assert_eq!(w.records, 2, "the window is still open");
        assert_eq!(
            w.line(Duration::from_secs(2)),
            "2 records sent, 1.0 records/sec (0.00 MB/sec), 2.00 ms avg latency, 3.00 ms max latency."
        );
        // An acknowledgement after the interval prints and starts a new window.
        w.record(9_000, start + Duration::from_secs(5), &bar);
        assert_eq!((w.records, w.latency_max_us), (0, 0));
    }

    #[test]
    fn consume_summary() {
        let s = ConsumeSummary {
            records: 2048,
            bytes: 2 * 1024 * 1024,
            fetches: 2,
            elapsed: Duration::from_secs(1),
            fetch_latency: histogram(&[500, 1500]),
        };
        assert!(
            s.line().starts_with(
                "2048 records consumed in 1.00 s, 2048.0 records/sec (2.00 MB/sec), 2 fetches"
            ),
            "{}",
            s.line()
        );
        assert_eq!(s.json()["mb_per_sec"], 2.0);
    }

    #[test]
    fn payload_is_printable_and_sized() {
        let p = payload(1000);
        assert_eq!(p.len(), 1000);
        assert!(p.iter().all(u8::is_ascii_uppercase));
    }
}
