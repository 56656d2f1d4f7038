//! Partition replicas hosted by this broker.
//!
//! [`Partition`] wraps one partition's [`crate::log::Log`] with what a
//! replica adds on top: the leader epoch stamped into appended batches and
//! the high watermark consumers read up to, published on a watch channel so
//! long-polling fetches wake when data arrives. [`ReplicaManager`] finds
//! partitions by topic and number and creates or removes them as topics
//! change. Followers and ISR tracking join here in cluster mode.

mod manager;
mod partition;

pub use manager::{ReplicaManager, TopicState};
pub use partition::Partition;
