//! What one `runnel-bench run` measured, as written to
//! `bench/results/<date>.json` (and rendered by [`crate::report`]).
//!
//! Throughput is in messages/s and MB/s with MB = 10^6 bytes, the unit `dd`
//! prints, so the ratios against the machine baselines need no conversion.
//! Latencies are milliseconds.

use serde::{Deserialize, Serialize};

/// One whole invocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// UTC date and time the run started, RFC 3339.
    pub started: String,
    /// The command line that produced it.
    pub command: String,
    pub machine: Machine,
    pub baselines: Baselines,
    /// Every system that took part, in the order of the tables.
    pub systems: Vec<SystemInfo>,
    pub workloads: Vec<WorkloadResult>,
}

/// Where it ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
}

/// The machine's own limits, measured in the same run. `None` when the
/// tool was missing or failed (the reason is in `notes`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baselines {
    /// `dd if=/dev/zero bs=1M` into the page cache.
    pub dd_page_cache_mb_s: Option<f64>,
    /// The same with `conv=fdatasync`.
    pub dd_fdatasync_mb_s: Option<f64>,
    /// `iperf3` over loopback (one stream).
    pub iperf3_loopback_mb_s: Option<f64>,
    /// `runnel-bench floor`, 1 KiB records in 1 MiB batches: the produce
    /// ceiling of any Kafka-style design here (bench/src/floor.rs), best
    /// of appending into fresh and into recycled page-cache pages.
    #[serde(default)]
    pub floor_page_cache_mb_s: Option<f64>,
    /// The same with an `fdatasync` after every batch.
    #[serde(default)]
    pub floor_fsync_per_batch_mb_s: Option<f64>,
    pub notes: Vec<String>,
}

/// A system under test: a server setup plus how its client is driven.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemInfo {
    /// Short name used in tables: `runnel`, `runnel-fsync`, `runnel-rf3`,
    /// `nats`, `redis`.
    pub name: String,
    /// `runnel`, `nats` or `redis`.
    pub kind: String,
    /// Server version string.
    pub version: String,
    /// Copies of each message.
    pub replicas: u32,
    /// When an acknowledged message is on disk, in words.
    pub durability: String,
    /// Client settings that matter (batching, in-flight window).
    pub client: String,
    /// A peer (not Runnel): ratios are Runnel ÷ the best peer.
    pub peer: bool,
}

/// One workload across all systems.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadResult {
    pub name: String,
    pub description: String,
    pub partitions: u32,
    pub message_size: usize,
    /// Length of the max-throughput and the fixed-rate phases, seconds.
    pub duration_s: f64,
    /// The offered load of every system's fixed-rate phase (messages/s):
    /// half the lowest max produce rate of Runnel and the peers.
    pub latency_rate: f64,
    pub runs: Vec<SystemRun>,
}

/// One system's phases in one workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemRun {
    pub system: String,
    /// Producer alone, as fast as acknowledgements allow.
    pub produce_max: Option<Phase>,
    /// A new consumer reading the backlog `produce_max` left.
    pub consume_backlog: Option<Phase>,
    /// Producer at `latency_rate` with a consumer attached: ack and
    /// end-to-end latency.
    pub end_to_end: Option<Phase>,
    /// Why a phase is missing.
    pub error: Option<String>,
}

/// One measured phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    /// Messages acknowledged (produce) or read (consume).
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub msgs_per_sec: f64,
    pub mb_per_sec: f64,
    /// Messages whose send failed (not counted above).
    pub errors: u64,
    /// Send → acknowledgement.
    pub ack_latency: Option<Latency>,
    /// Send → a consumer holds it.
    pub e2e_latency: Option<Latency>,
    /// CPU seconds (user + system) the server processes used during the
    /// phase: what the system costs, apart from its client, which shares
    /// the cores. Absent in results from before it was measured.
    #[serde(default)]
    pub server_cpu_s: Option<f64>,
    /// CPU seconds the benchmark process (the system's client and the
    /// harness) used during the phase.
    #[serde(default)]
    pub client_cpu_s: Option<f64>,
}

/// Percentiles of one latency distribution, milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}
