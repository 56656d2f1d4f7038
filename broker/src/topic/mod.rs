//! Topics as users see them: name rules ([`name`]) and Kafka-named topic
//! configs with their broker-wide defaults ([`config`]).

pub mod config;
pub mod name;

pub use config::{ConfigDefaults, SharedDefaults, TopicConfig};
pub use name::validate_topic_name;
