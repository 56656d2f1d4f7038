//! Pure functions from a `Cluster` to the Kubernetes objects it needs.
