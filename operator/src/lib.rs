//! `runnel-operator`: the kube-rs operator that turns `Cluster`, `Topic` and
//! `ConsumerGroup` resources (group `runnel.dev`) into running brokers and
//! topics.
//!
//! Where to start reading:
//! - [`crd`]: the resource types (spec, status, CEL rules); `cargo xtask
//!   crdgen` writes their YAML to `crds/`.
//! - [`manifests`]: pure functions from a `Cluster` to the Kubernetes
//!   objects it needs (ConfigMap, Services, StatefulSet, PDB, managed etcd).
//! - [`controller`]: one reconciler per kind, and [`controller::run`] that
//!   starts them.

pub mod certs;
pub mod context;
pub mod controller;
pub mod crd;
pub mod error;
#[cfg(test)]
pub mod fixtures;
pub mod http;
pub mod leader;
pub mod manifests;
pub mod metrics;
pub mod yaml;

pub use context::{Connector, Context, OperatorConfig};
pub use error::{Error, Result};
