//! Pure functions from a `Cluster` to the Kubernetes objects it needs. No
//! I/O: the Cluster reconciler applies what these return, golden tests pin
//! them, and `scripts/test.sh` validates them against the Kubernetes schemas.
//!
//! Naming (for `<c>` = the Cluster's name): StatefulSet and PDB `<c>-broker`
//! (pods `<c>-broker-<i>`, broker id = `i`), headless Service `<c>-brokers`
//! (stable per-pod DNS), client Service `<c>-client`, ConfigMap
//! `<c>-config`; a managed etcd is StatefulSet `<c>-etcd` with headless
//! Service `<c>-etcd` and client Service `<c>-etcd-client`.

pub mod names;

pub use names::client_bootstrap;
