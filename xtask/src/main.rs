//! `cargo xtask <command>`: development chores that need more than a shell
//! one-liner.
//!
//! - `baseline`: measure this machine's disk and loopback limits (`dd` with
//!   and without `conv=fdatasync`, `iperf3` over loopback), the reference
//!   figures `docs/benchmarks.md` puts next to Runnel's numbers.
//! - `dev-cluster`: a local cluster (etcd + N brokers) until Ctrl-C.
//! - `crdgen`: write the CRD YAML generated from `operator/src/crd` to
//!   `crds/` (and the Helm chart's copy when the chart exists).
//! - `render-manifests`: write the CRDs and the objects of the operator's
//!   sample Clusters as YAML files, for schema validation in
//!   `scripts/test.sh`.

mod crdgen;
mod dev_cluster;
mod render_manifests;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a local cluster: a real etcd and N brokers on loopback, until Ctrl-C.
    DevCluster {
        /// Number of brokers (ids 1..=N).
        #[arg(long, default_value_t = 3)]
        brokers: u32,
        /// Keep data here instead of a temporary directory deleted at the end.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// gRPC port of broker 1; broker i uses base+i-1, HTTP base+100+i-1.
        #[arg(long, default_value_t = 9092)]
        base_port: u16,
        /// etcd client port (peer port is the next one).
        #[arg(long, default_value_t = 2379)]
        etcd_port: u16,
        /// Build and run the release broker (for benchmarks).
        #[arg(long)]
        release: bool,
        /// Extra runnel-broker flags for every broker, after `--`.
        #[arg(last = true)]
        broker_args: Vec<String>,
    },
    /// Write crds/*.yaml (and charts/runnel/crds/) from the operator's Rust types.
    Crdgen,
    /// Write the CRDs and every object of the operator's sample Clusters, one YAML file each.
    RenderManifests {
        /// Directory to write to (emptied first).
        #[arg(long)]
        out: PathBuf,
    },
    /// Measure disk (dd) and loopback network (iperf3) baselines.
    Baseline {
        /// Directory to write the dd test file in (on the disk under test).
        #[arg(long, default_value = "target")]
        dir: PathBuf,
        /// Megabytes dd writes.
        #[arg(long, default_value_t = 1024)]
        megabytes: u32,
        /// Seconds iperf3 runs.
        #[arg(long, default_value_t = 5)]
        seconds: u32,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::DevCluster {
            brokers,
            data_dir,
            base_port,
            etcd_port,
            release,
            broker_args,
        } => dev_cluster::run(dev_cluster::Options {
            brokers,
            data_dir,
            base_port,
            etcd_port,
            release,
            broker_args,
        }),
        Cmd::Crdgen => crdgen::run(),
        Cmd::RenderManifests { out } => render_manifests::run(&out),
        Cmd::Baseline {
            dir,
            megabytes,
            seconds,
        } => baseline(&dir, megabytes, seconds),
    }
}

fn baseline(dir: &std::path::Path, megabytes: u32, seconds: u32) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join("xtask-baseline.dd");
    for (label, extra) in [
        ("page cache", None),
        ("conv=fdatasync", Some("conv=fdatasync")),
    ] {
        let mut cmd = Command::new("dd");
        cmd.arg("if=/dev/zero")
            .arg(format!("of={}", file.display()))
            .arg("bs=1M")
            .arg(format!("count={megabytes}"));
        if let Some(e) = extra {
            cmd.arg(e);
        }
        let shown = format!("{cmd:?}").replace('"', "");
        let out = cmd.output().context("running dd")?;
        // dd reports on stderr: "... copied, 1.2 s, 870 MB/s"
        let report = String::from_utf8_lossy(&out.stderr);
        let rate = report
            .lines()
            .last()
            .and_then(|l| l.rsplit(", ").next())
            .unwrap_or("?");
        println!("dd ({label}): {rate}    [{shown}]");
    }
    let _ = std::fs::remove_file(&file);

    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-p", "5299"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("iperf3 not found: apt-get install iperf3")?;
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new("iperf3")
        .args([
            "-c",
            "127.0.0.1",
            "-p",
            "5299",
            "-t",
            &seconds.to_string(),
            "-f",
            "M",
        ])
        .output()
        .context("running iperf3 client")?;
    let _ = server.wait();
    if !out.status.success() {
        bail!("iperf3 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let receiver = text.lines().find(|l| l.contains("receiver")).unwrap_or("?");
    let rate = receiver.split_whitespace().collect::<Vec<_>>();
    let rate = rate
        .windows(2)
        .find(|w| w[1].starts_with("MBytes/sec"))
        .map(|w| format!("{} MB/s", w[0]));
    println!(
        "iperf3 loopback: {}    [iperf3 -c 127.0.0.1 -t {seconds} -f M]",
        rate.unwrap_or_else(|| "?".into())
    );
    Ok(())
}
