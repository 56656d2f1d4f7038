//! The reconcilers, one module per kind, each `reconcile(obj, ctx) ->
//! Result<Action>` plus `error_policy`.

pub mod cluster;
