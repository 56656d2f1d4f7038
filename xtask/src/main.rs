//! `cargo xtask <command>`: development chores that need more than a shell
//! one-liner.
//!
//! - `dev-cluster`: a local cluster (etcd + N brokers) until Ctrl-C.
//! - `crdgen`: write the CRD YAML generated from `operator/src/crd` to
//!   `crds/` (and the Helm chart's copy when the chart exists).
//! - `render-manifests`: write the CRDs and the objects of the operator's
//!   sample Clusters as YAML files, for schema validation in
//!   `scripts/test.sh`.
//!
//! The machine baselines (`dd`, `iperf3`) moved to `runnel-bench baseline`,
//! which also records them with every benchmark run.

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
        Cmd::Crdgen => crdgen::run(),
        Cmd::RenderManifests { out } => render_manifests::run(&out),
    }
}
