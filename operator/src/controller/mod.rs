//! The reconcilers, one module per kind, each `reconcile(obj, ctx) ->
//! Result<Action>` plus `error_policy`.
//!
//! - [`topic`]: creates, alters and (through a finalizer) deletes topics on
//!   the brokers.
//! - [`consumer_group`]: reports a group's members and lag and applies
//!   one-shot offset resets.
//! - `shared`: what both need (finding the Cluster, status writes, events).

pub mod cluster;
pub mod consumer_group;
mod shared;
pub mod topic;

#[cfg(test)]
mod test_support;
