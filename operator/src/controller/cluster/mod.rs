//! The Cluster reconciler.

pub mod roll;
pub mod scale;
pub mod view;
