//! The controller: the one place that changes cluster metadata.
//!
//! - [`active`]: every broker campaigns for controller through the
//!   metadata store (lease + transaction, with a controller epoch); the
//!   winner elects partition leaders from the ISR when brokers die, drops
//!   dead brokers from ISRs and restores preferred leaders, fenced by the
//!   revision of its `controller` key.
//! - [`leaders`]: what should change, planned from the cluster image (pure).
//! - [`placement`]: replica assignment for new topics and partitions
//!   (balanced leaders, rack-aware).
//! - [`topics`]: topic create/alter/delete by compare-and-swap; any broker
//!   can serve these admin requests, the store orders them.
//! - [`cluster_configs`]: dynamic cluster-wide defaults of topic configs,
//!   one compare-and-swapped key every broker follows live.

pub mod active;
pub mod cluster_configs;
pub mod leaders;
pub mod placement;
pub mod topics;

pub use active::{Controller, ControllerSettings};
pub use cluster_configs::ClusterConfigs;
pub use topics::TopicController;
