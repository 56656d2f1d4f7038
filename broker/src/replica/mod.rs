//! Partition replicas hosted by this broker, and replication between them.
//!
//! [`Partition`] wraps one partition's [`crate::log::Log`] with what a
//! replica adds on top: its role (leader or follower) and leader epoch, the
//! high watermark consumers read up to (published on a watch channel so
//! long-polling fetches wake when data arrives), the ISR and, as leader,
//! every follower's progress. [`ReplicaManager`] finds partitions by topic
//! and number and applies role changes from the metadata store;
//! [`fetcher`] runs the follower side of replication, [`isr`] writes ISR
//! changes, [`epoch_cache`] keeps where each leader epoch starts, and
//! [`producer_state`] the idempotent producers' sequence numbers.

pub mod epoch_cache;
pub mod fetcher;
pub mod isr;
mod manager;
mod partition;
pub mod producer_state;

pub use manager::{ReplicaManager, TopicState};
pub use partition::{
    FollowerFetchState, FollowerRead, IsrProposal, NO_LEADER, Partition, Role, Transition,
};
