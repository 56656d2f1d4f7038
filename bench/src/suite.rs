//! One whole benchmark run: baselines, then every workload on every
//! system, each system on a fresh server, and the files written at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::results::{Machine, Phase, Report, SystemRun, WorkloadResult};
use crate::runner::{self, Progress};
use crate::systems::{Server, System, process_cpu_seconds};
use crate::workload::Workload;
use crate::{baseline, report};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub workloads: Vec<Workload>,
    pub systems: Vec<System>,
    /// Replaces every workload's duration (smoke runs).
    pub duration: Option<Duration>,
    /// Measure dd/iperf3 first (MiB written by dd, seconds of iperf3).
    pub baseline: Option<(u32, u32)>,
    /// Where dd writes (the disk the servers use: the temp dir's).
    pub baseline_dir: PathBuf,
    pub command: String,
}

/// Run everything and return what was measured.
pub async fn run(opts: &Options) -> Result<Report> {
    let started = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let baselines = match opts.baseline {
        Some((mb, secs)) => {
            eprintln!("measuring machine baselines (dd {mb} MiB three times, iperf3 {secs} s)");
            let b = tokio::task::block_in_place(|| baseline::measure(&opts.baseline_dir, mb, secs));
            eprintln!(
                "  dd page cache {} MB/s, dd conv=fdatasync {} MB/s, iperf3 loopback {} MB/s, \
                 produce floor {} MB/s (fsync per batch {} MB/s)",
                fmt(b.dd_page_cache_mb_s),
                fmt(b.dd_fdatasync_mb_s),
                fmt(b.iperf3_loopback_mb_s),
                fmt(b.floor_page_cache_mb_s),
                fmt(b.floor_fsync_per_batch_mb_s)
            );
            b
        }
        None => Default::default(),
    };
    let mut workloads = Vec::new();
    for (i, w) in opts.workloads.iter().enumerate() {
        let w = Workload {
            duration: opts.duration.unwrap_or(w.duration),
            ..w.clone()
        };
        let label = format!("[{}/{}] {}", i + 1, opts.workloads.len(), w.name);
        workloads.push(run_workload(&w, &opts.systems, &label).await);
    }
    Ok(Report {
        started,
        command: opts.command.clone(),
        machine: machine(),
        baselines,
        systems: opts.systems.iter().map(|s| s.info()).collect(),
        workloads,
    })
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}"))
}

async fn run_workload(w: &Workload, systems: &[System], label: &str) -> WorkloadResult {
    let mut runs: Vec<SystemRun> = Vec::new();
    for &system in systems {
        let mut run = SystemRun {
            system: system.name().to_owned(),
            produce_max: None,
            consume_backlog: None,
            end_to_end: None,
            error: None,
        };
        if let Err(e) = throughput_phases(w, system, label, &mut run).await {
            eprintln!("{label} {}: {e:#}", system.name());
            run.error = Some(format!("{e:#}"));
        }
        runs.push(run);
    }
    // One offered load for everyone: half the slowest max of Runnel (over
    // gRPC or Kafka, with either Kafka client) and the peers (the fsync and
    // RF=3 variants run at it too, if they can); the slowest of all when
    // none of those finished.
    let slowest = |comparable_only: bool| {
        runs.iter()
            .filter(|r| {
                !comparable_only
                    || matches!(
                        r.system.as_str(),
                        "runnel" | "runnel-kafka" | "runnel-rskafka" | "tansu" | "nats" | "redis"
                    )
            })
            .filter_map(|r| r.produce_max.as_ref().map(|p| p.msgs_per_sec))
            .fold(f64::INFINITY, f64::min)
    };
    let slowest = Some(slowest(true))
        .filter(|v| v.is_finite())
        .unwrap_or_else(|| slowest(false));
    let rate = if slowest.is_finite() {
        (slowest / 2.0).max(1.0)
    } else {
        0.0
    };
    if rate > 0.0 {
        for (run, &system) in runs.iter_mut().zip(systems) {
            match latency_phase(w, system, label, rate).await {
                Ok(p) => run.end_to_end = Some(p),
                Err(e) => {
                    eprintln!("{label} {} end-to-end: {e:#}", system.name());
                    let prev = run.error.take();
                    run.error = Some(match prev {
                        Some(p) => format!("{p}; end-to-end: {e:#}"),
                        None => format!("end-to-end: {e:#}"),
                    });
                }
            }
        }
    }
    WorkloadResult {
        name: w.name.clone(),
        description: w.description.clone(),
        partitions: w.partitions,
        message_size: w.message_size,
        duration_s: w.duration.as_secs_f64(),
        latency_rate: rate,
        runs,
    }
}

async fn throughput_phases(
    w: &Workload,
    system: System,
    label: &str,
    run: &mut SystemRun,
) -> Result<()> {
    let (server, driver) = tokio::task::block_in_place(|| system.start(&w.runnel_producer))
        .with_context(|| format!("starting {}", system.name()))?;
    let topic = "bench";
    let d = driver.as_ref();
    let (partitions, size) = (w.partitions, w.message_size);
    let cpu_before = Cpu::now(&server)?;
    let mut produced = shown(
        format!("{label} {} produce-max", system.name()),
        |p| async move { runner::produce_max(d, topic, partitions, size, w.duration, &p).await },
    )
    .await?;
    let cpu_between = Cpu::now(&server)?;
    cpu_between.since(&cpu_before, &mut produced);
    let expected = produced.messages;
    run.produce_max = Some(produced);
    let mut consumed = shown(
        format!("{label} {} consume-backlog", system.name()),
        |p| async move { runner::consume_backlog(d, topic, partitions, size, expected, &p).await },
    )
    .await?;
    Cpu::now(&server)?.since(&cpu_between, &mut consumed);
    run.consume_backlog = Some(consumed);
    drop(driver);
    tokio::task::block_in_place(|| drop(server));
    Ok(())
}

async fn latency_phase(w: &Workload, system: System, label: &str, rate: f64) -> Result<Phase> {
    let (server, driver) = tokio::task::block_in_place(|| system.start(&w.runnel_producer))
        .with_context(|| format!("starting {}", system.name()))?;
    let d = driver.as_ref();
    let label = format!("{label} {} end-to-end at {rate:.0} msg/s", system.name());
    let cpu_before = Cpu::now(&server)?;
    let p = shown(label, |p| async move {
        runner::end_to_end(
            d,
            "bench-e2e",
            w.partitions,
            w.message_size,
            w.duration,
            rate,
            &p,
        )
        .await
    })
    .await
    .and_then(|mut p| {
        Cpu::now(&server)?.since(&cpu_before, &mut p);
        Ok(p)
    });
    drop(driver);
    tokio::task::block_in_place(|| drop(server));
    p
}

/// CPU seconds used so far by the server processes and by this process.
struct Cpu {
    server: f64,
    client: f64,
}

impl Cpu {
    fn now(server: &Server) -> Result<Cpu> {
        Ok(Cpu {
            server: server.cpu_seconds()?,
            client: process_cpu_seconds("self")?,
        })
    }

    /// Record what was used since `before` in `phase`.
    fn since(&self, before: &Cpu, phase: &mut Phase) {
        phase.server_cpu_s = Some(self.server - before.server);
        phase.client_cpu_s = Some(self.client - before.client);
    }
}

/// Run one phase under a spinner, then print its summary line.
async fn shown<F, Fut>(label: String, phase: F) -> Result<Phase>
where
    F: FnOnce(Arc<Progress>) -> Fut,
    Fut: Future<Output = Result<Phase>>,
{
    let progress = Arc::new(Progress::default());
    let bar = spinner(&label, &progress);
    let result = phase(progress).await;
    finish(&bar, result.as_ref().ok());
    result
}

/// A spinner on stderr showing the phase's message count and rate.
fn spinner(label: &str, progress: &Arc<Progress>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
        ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(label.to_owned());
    let (bar2, progress, label) = (bar.clone(), progress.clone(), label.to_owned());
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        while !bar2.is_finished() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let n = progress.messages.load(Ordering::Relaxed);
            let rate = n as f64 / start.elapsed().as_secs_f64().max(1e-3);
            bar2.set_message(format!("{label}: {n} messages ({rate:.0}/s)"));
            bar2.tick();
        }
    });
    bar
}

fn finish(bar: &ProgressBar, phase: Option<&Phase>) {
    let summary = match phase {
        Some(p) => {
            let lat = p
                .ack_latency
                .as_ref()
                .map(|l| format!(", ack p50 {:.2} ms p99 {:.2} ms", l.p50_ms, l.p99_ms))
                .unwrap_or_default();
            let e2e = p
                .e2e_latency
                .as_ref()
                .map(|l| format!(", e2e p50 {:.2} ms p99 {:.2} ms", l.p50_ms, l.p99_ms))
                .unwrap_or_default();
            format!(
                "{} messages, {:.0} msg/s, {:.1} MB/s{lat}{e2e}",
                p.messages, p.msgs_per_sec, p.mb_per_sec
            )
        }
        None => "failed".to_owned(),
    };
    let msg = bar.message();
    let label = msg.split(':').next().unwrap_or("").to_owned();
    bar.finish_and_clear();
    eprintln!("{label}: {summary}");
}

/// CPU, memory and kernel of this machine, from /proc.
fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model,
        memory_gib: memory_kib / (1024.0 * 1024.0),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
    }
}

/// Write `<stem>.json`, `<stem>.md` and `<stem>.svg` into `dir`; returns
/// the paths.
pub fn write(report: &Report, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join(format!("{stem}.json"));
    let md = dir.join(format!("{stem}.md"));
    let svg = dir.join(format!("{stem}.svg"));
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")?;
    let chart = format!("{stem}.svg");
    std::fs::write(
        &md,
        report::markdown(report) + &format!("\n![throughput and latency]({chart})\n"),
    )?;
    std::fs::write(&svg, report::svg(report))?;
    Ok(vec![json, md, svg])
}
