//! `runnel-bench`: Runnel side by side with NATS JetStream and Redis
//! Streams, on one machine, in one run, next to the machine's own limits.
//!
//! - [`workload`]: the workload files (`bench/workloads/*.toml`).
//! - [`driver`]: one trait over each system's client.
//! - [`systems`]: starting each system's server(s) and what durability
//!   each offers.
//! - [`runner`]: the phases (max produce, backlog consume, fixed-rate
//!   end to end) run the same way for every system.
//! - [`baseline`]: `dd` and `iperf3` figures from the same run.
//! - [`suite`]: the whole run; [`results`] what it measured;
//!   [`report`] the Markdown table and the SVG chart.
//!
//! `bench/run` installs the peers and runs everything; see
//! `docs/benchmarks.md`.

pub mod baseline;
pub mod driver;
pub mod floor;
pub mod report;
pub mod results;
pub mod runner;
pub mod suite;
pub mod systems;
pub mod workload;
