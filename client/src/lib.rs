//! `runnel-client`: the Rust client for Runnel, a Kafka-style commit log
//! that speaks gRPC.
//!
//! Where to start:
//!
//! - [`ClientConfig`] says where the brokers are (`bootstrap`) and how long
//!   to wait for them.
//! - [`Admin`] creates, describes, alters and deletes topics.
//! - [`Producer`] batches records per partition and sends them in the
//!   background: [`Producer::send`] returns a [`DeliveryFuture`] that
//!   resolves to the record's offset.
//! - [`Consumer`] reads partitions: as a member of a consumer group
//!   ([`Consumer::subscribe`], committed offsets, rebalancing) or on its own
//!   ([`Consumer::assign`], [`Consumer::seek`]); then [`Consumer::poll`] or
//!   [`Consumer::into_stream`].
//! - [`streams`] builds stream-processing jobs: source → map / filter /
//!   flat_map → sink, parallel through a consumer group, at least once.
//! - [`Error`] is the one error type; its `Display` is a single line meant
//!   for a person, and [`Error::code`] gives the Kafka-style error code.
//!
//! Modules: `config`, `error`, `cluster` (connections, the metadata
//! cache that routes a partition to its leader, and failover between
//! brokers), `admin`, `producer`
//! (`partitioner`, `accumulator`, `sender`, `delivery`), `consumer`
//! (`fetch`, `decode`, `group`), `interceptor` (producer interceptors),
//! `streams`,
//! `serialization` (opt-in typed keys and values: bytes, UTF-8, JSON).
//!
//! ```no_run
//! # async fn example() -> runnel_client::Result<()> {
//! use std::time::Duration;
//! use runnel_client::*;
//!
//! let config = ClientConfig::new("127.0.0.1:9092")?;
//! Admin::connect(config.clone()).await?.create_topic("greetings", 1, 1, &[]).await?;
//!
//! let producer = Producer::connect(config.clone(), ProducerConfig::default()).await?;
//! let meta = producer.send(ProducerRecord::new("greetings", "hello")).await?.await?;
//!
//! let mut consumer = Consumer::connect(config, ConsumerConfig::default()).await?;
//! consumer.assign([("greetings", 0)]);
//! consumer.seek("greetings", 0, Offset::At(meta.offset)).await?;
//! let records = consumer.poll(Duration::from_secs(5)).await?;
//! assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
//! # Ok(())
//! # }
//! ```

mod admin;
mod cluster;
mod config;
pub mod consumer;
mod error;
pub mod interceptor;
pub mod producer;
pub mod serialization;
pub mod streams;

pub use admin::{Admin, AlterTopic, GroupDescription, PartitionLag};
pub use config::{BearerToken, ClientConfig, TlsConfig, TlsPem, parse_bootstrap};
pub use consumer::{
    AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, Offset, RebalanceListener,
};
pub use error::{Error, Result};
pub use producer::{
    Acks, Compression, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};

/// The `runnel.v1` messages `Admin` returns, and [`ErrorCode`].
pub use runnel_proto::v1::{
    AclBinding, AclFilter, AclOperation, AclPatternType, AclPermission, AclResourceType,
    ClusterConfigEntry, ConfigEntry, ConfigSource, DescribeGroupResponse, ErrorCode, GroupListing,
    GroupMember, MetadataResponse, NewTopic, OngoingReassignment, PartitionDescription,
    TopicDescription, TopicListing, TopicPartitions,
};
