//! The Kafka wire protocol, next to gRPC: existing Kafka clients (librdkafka,
//! the Java client and its ports, kcat, kafka-python, kafkajs) talk to
//! Runnel unchanged.
//!
//! Start reading at [`listener`]: a connection's first bytes (or, with TLS,
//! its ALPN protocol) tell an HTTP/2 client (gRPC) from a Kafka client on
//! the shared port; an optional Kafka-only port (`kafka.listen`) serves
//! Kafka alone. [`connection`] reads size-prefixed requests, runs them and
//! writes the answers back in request order. [`dispatch`] is the table of
//! APIs and the versions advertised in ApiVersions.
//!
//! One file per API (`produce`, `fetch`, `metadata`, ...), in the manner of
//! Redpanda's `kafka/server/handlers`: each declares its versions and a
//! `handle` that translates the request into the broker's own operation —
//! the same functions the gRPC services call (`crate::server`,
//! `crate::group`), authorized by the same ACL table — and the outcome back
//! into Kafka's response, errors into Kafka's codes ([`errors`]). The codec
//! is the `kafka-protocol` crate, generated from Kafka's message specs;
//! record batches pass through as the bytes the producer sent and the log
//! stores.

pub mod connection;
pub mod dispatch;
pub mod errors;
pub mod listener;

mod acl_codes;
mod alter_configs;
mod api_versions;
mod configs;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod fetch;
mod fetch_session;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leader_hint;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sasl_authenticate;
mod sasl_handshake;
mod sync_group;
pub(crate) mod topics;

pub use listener::{GrpcIncoming, accept};
