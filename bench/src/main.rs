//! `runnel-bench`: run the benchmark suite (`run`), measure only the
//! machine baselines (`baseline`), or re-render a results file (`render`).
//! `bench/run` is the one command that installs the peers, builds and runs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use runnel_bench::results::Report;
use runnel_bench::systems::{self, System};
use runnel_bench::workload::Workload;
use runnel_bench::{baseline, floor, suite};

// jemalloc instead of glibc's malloc, which maps and unmaps every buffer of
// 128 KiB or more: with megabyte produce requests that was page faults and
// page zeroing on every request (docs/benchmarks.md, "allocator").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(name = "runnel-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start each system's servers, run every workload, write
    /// <out>/<date>.json, .md and .svg.
    Run {
        /// A workload file or a directory of them.
        #[arg(long, default_value = "bench/workloads")]
        workloads: PathBuf,
        /// Systems to run, comma-separated: runnel, runnel-fsync,
        /// runnel-rf3, runnel-kafka, runnel-rskafka, tansu, nats, redis
        /// [default: all].
        #[arg(long, value_delimiter = ',')]
        systems: Vec<System>,
        /// Override every workload's phase duration (e.g. 2s for a smoke run).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Directory for the results.
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
        /// File name stem of the results [default: the UTC date and time].
        #[arg(long)]
        name: Option<String>,
        /// Skip the dd/iperf3 baselines.
        #[arg(long)]
        no_baseline: bool,
        /// MiB that dd writes for the disk baselines.
        #[arg(long, default_value_t = 1024)]
        baseline_mb: u32,
    },
    /// Measure only the machine baselines (dd, iperf3, the produce floor).
    Baseline {
        /// Directory dd writes in (on the disk under test).
        #[arg(long, default_value = "target")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1024)]
        megabytes: u32,
        #[arg(long, default_value_t = 5)]
        seconds: u32,
    },
    /// Write the .md and .svg of a results .json again.
    Render { json: PathBuf },
    /// The produce ceiling of any Kafka-style design here: two threads,
    /// one loopback TCP connection, batch + CRC32C on one side, CRC check
    /// + page-cache append on the other, nothing else (bench/src/floor.rs).
    Floor {
        /// Directory the log file goes in (on the disk under test).
        #[arg(long, default_value = "target")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        #[arg(long, default_value_t = 1 << 20)]
        batch_bytes: usize,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            workloads,
            systems,
            duration,
            out,
            name,
            no_baseline,
            baseline_mb,
        } => {
            let systems = if systems.is_empty() {
                systems::ALL.to_vec()
            } else {
                systems
            };
            for s in &systems {
                let bin = s.server_binary();
                if bin != "runnel-broker" && which(bin).is_none() {
                    bail!("{bin} is not installed (bench/run installs it from Debian packages)");
                }
            }
            let opts = suite::Options {
                workloads: Workload::load(&workloads)?,
                systems,
                duration,
                baseline: (!no_baseline).then_some((baseline_mb, 5)),
                baseline_dir: std::env::temp_dir(),
                command: std::env::args().collect::<Vec<_>>().join(" "),
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(suite::run(&opts))?;
            let stem = name.unwrap_or_else(|| {
                // 2026-11-26T10:31:07Z → 2026-11-26-1031
                let s = &report.started;
                format!("{}-{}{}", &s[..10], &s[11..13], &s[14..16])
            });
            for path in suite::write(&report, &out, &stem)? {
                println!("wrote {}", path.display());
            }
            let failed: Vec<_> = report
                .workloads
                .iter()
                .flat_map(|w| {
                    w.runs
                        .iter()
                        .filter_map(move |r| r.error.as_ref().map(|e| (w, r, e)))
                })
                .map(|(w, r, e)| format!("{} / {}: {e}", w.name, r.system))
                .collect();
            if !failed.is_empty() {
                bail!("some phases failed:\n{}", failed.join("\n"));
            }
            Ok(())
        }
        Command::Baseline {
            dir,
            megabytes,
            seconds,
        } => {
            let b = baseline::measure(&dir, megabytes, seconds);
            println!("{}", serde_json::to_string_pretty(&b)?);
            Ok(())
        }
        Command::Floor {
            dir,
            record_size,
            batch_bytes,
            duration,
        } => {
            for sink in floor::Sink::ALL {
                let f = floor::measure(sink, record_size, batch_bytes, duration, &dir)?;
                println!("{}", serde_json::to_string(&f)?);
            }
            Ok(())
        }
        Command::Render { json } => {
            let text = std::fs::read_to_string(&json)
                .with_context(|| format!("reading {}", json.display()))?;
            let report: Report = serde_json::from_str(&text)?;
            let dir = json.parent().map(PathBuf::from).unwrap_or_default();
            let stem = json
                .file_stem()
                .context("results file name")?
                .to_string_lossy()
                .into_owned();
            for path in suite::write(&report, &dir, &stem)? {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
    }
}

/// `bin` on PATH.
fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(bin))
            .find(|p| p.is_file())
    })
}
