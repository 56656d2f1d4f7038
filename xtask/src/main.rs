//! `cargo xtask <command>`: development chores that need more than a shell
//! one-liner.
//!
//! - `dev-cluster`: a local cluster (etcd + N brokers) until Ctrl-C.
//! - `crdgen`: write the CRD YAML generated from `operator/src/crd` to
//!   `crds/` (and the Helm chart's copy when the chart exists).
//! - `chaos`: the fault suite (`chaos/`, docs/testing.md): brokers and a
//!   3-member etcd in network namespaces, faults, a history, a checker.
//! - `render-manifests`: write the CRDs and the objects of the operator's
//!   sample Clusters as YAML files, for schema validation in
//!   `scripts/test.sh`.
//!
//! The machine baselines (`dd`, `iperf3`) moved to `runnel-bench baseline`,
//! which also records them with every benchmark run.

mod chaos;
mod crdgen;
mod dev_cluster;
mod render_manifests;

use std::path::PathBuf;

use anyhow::Result;
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
    /// Run the fault suite: 3 brokers and 3 etcd members in network namespaces
    /// under a recorded workload and nemeses, then check the history (needs root).
    Chaos {
        /// Seconds of faults (the workload runs a little longer, to recover).
        #[arg(long, default_value_t = 120)]
        time_limit: u64,
        /// Comma-separated nemeses, or `all`: partition-leader, partition-follower,
        /// partition-controller, majority-minority, pause-leader, kill-broker,
        /// kill-etcd, etcd-quorum-loss, disk-full, torn-write.
        #[arg(long, default_value = "all")]
        nemesis: String,
        /// Where the history, summary.json and process logs go.
        #[arg(long, default_value = "target/chaos")]
        out: PathBuf,
        /// Seed for the nemesis schedule (random when not given; printed).
        #[arg(long)]
        seed: Option<u64>,
        /// The broker binary (default: target/debug/runnel-broker).
        #[arg(long)]
        broker_bin: Option<PathBuf>,
    },
    /// Check a chaos history again (DIR/history.jsonl), without running anything.
    ChaosCheck {
        /// A chaos run's output directory.
        dir: PathBuf,
    },
    /// Write crds/*.yaml (and charts/runnel/crds/) from the operator's Rust types.
    Crdgen,
    /// Write the CRDs and every object of the operator's sample Clusters, one YAML file each.
    RenderManifests {
        /// Directory to write to (emptied first).
        #[arg(long)]
        out: PathBuf,
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
        Cmd::Chaos {
            time_limit,
            nemesis,
            out,
            seed,
            broker_bin,
        } => chaos::run(chaos::Options {
            time_limit,
            nemeses: chaos::parse_nemeses(&nemesis)?,
            out,
            seed,
            broker_bin: broker_bin.unwrap_or_else(|| target_dir().join("debug/runnel-broker")),
        }),
        Cmd::ChaosCheck { dir } => chaos::check_again(&dir),
        Cmd::Crdgen => crdgen::run(),
        Cmd::RenderManifests { out } => render_manifests::run(&out),
    }
}

/// The workspace's target directory (`CARGO_TARGET_DIR`, else `target/`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}
