//! The controller: the one place that changes cluster metadata.
//!
//! Today the single-node broker is its own controller; [`topics`] creates,
//! alters and deletes topics by compare-and-swap transactions on the
//! [`crate::meta::MetadataStore`] and then tells the [`crate::replica::ReplicaManager`]
//! to serve the result. In cluster mode the controller is elected through
//! etcd and brokers learn about changes by watching the same keys.

pub mod topics;

pub use topics::TopicController;
