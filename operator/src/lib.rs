//! `runnel-operator`: the kube-rs operator that turns `Cluster`, `Topic` and
//! `ConsumerGroup` resources (group `runnel.dev`) into running brokers and
//! topics. Empty until the operator work (issue 5) lands; the crate exists so
//! the workspace layout matches `DESIGN.md` from the start.
