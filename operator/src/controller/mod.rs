//! The reconcilers, one per kind.
