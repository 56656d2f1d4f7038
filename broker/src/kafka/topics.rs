//! Small translations every handler needs: names and ids of topics,
//! partitions, and where Kafka clients reach a broker.

use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::meta::records::BrokerRecord;
use crate::server::Context;

/// A Kafka string from ours.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A topic name for a response.
pub fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// A topic's Kafka id (its UUID), nil for a malformed one.
pub fn topic_uuid(id: &str) -> Uuid {
    Uuid::parse_str(id).unwrap_or(Uuid::nil())
}

/// The name of the topic with Kafka id `id`, if this broker knows it.
pub fn name_of_id(ctx: &Context, id: Uuid) -> Option<String> {
    if id.is_nil() {
        return None;
    }
    ctx.replicas
        .topics()
        .into_iter()
        .find(|t| topic_uuid(&t.record.topic_id) == id)
        .map(|t| t.name.clone())
}

/// Whether partition `index` (from the wire, so maybe negative) exists in
/// a topic of `count` partitions.
pub fn exists(index: i32, count: u32) -> bool {
    u32::try_from(index).is_ok_and(|i| i < count)
}

/// Where Kafka clients reach `broker`: its Kafka-only listener if it has
/// one, else its shared listener.
pub fn kafka_endpoint(broker: &BrokerRecord) -> (String, i32) {
    match &broker.kafka {
        Some(k) => (k.host.clone(), i32::from(k.port)),
        None => (broker.host.clone(), i32::from(broker.port)),
    }
}

/// The brokers Kafka clients should see, (id, host, port, rack): every
/// live one, this broker, and each broker `named` (see
/// [`crate::cluster::Image::brokers_for_clients`]).
pub fn client_brokers(
    ctx: &Context,
    named: impl Fn(i32) -> bool,
) -> Vec<(BrokerId, String, i32, Option<String>)> {
    ctx.sync.view().read(|i| {
        i.brokers_for_clients(ctx.config.broker_id, named)
            .into_iter()
            .map(|b| {
                let (host, port) = kafka_endpoint(b);
                (BrokerId(b.broker_id), host, port, b.rack.clone())
            })
            .collect()
    })
}

/// The controller id Kafka clients are told (Metadata, DescribeCluster):
/// the controller when one is known, else this broker while it is one of
/// the live brokers. Any Runnel broker serves the admin requests clients
/// send to the "controller" (they are metadata-store transactions), as a
/// KRaft broker forwards them; and librdkafka, told -1 by a broker that
/// has just started, waits for a controller without asking again until its
/// admin request times out (60 s).
pub fn controller_id(ctx: &Context) -> BrokerId {
    let own = ctx.config.broker_id;
    BrokerId(ctx.sync.view().read(|i| i.controller_for_clients(own)))
}

/// Whether the connection's principal may do `operation` on `topic`, for
/// Kafka's per-topic answers (TOPIC_AUTHORIZATION_FAILED for one topic,
/// the others served). The shared operation checks again, as for gRPC.
pub fn allowed(
    ctx: &Context,
    who: &crate::auth::Principal,
    operation: crate::auth::acl::Operation,
    topic: &str,
) -> bool {
    // `authorize`, not `allowed`: a refusal is counted and audited as
    // for gRPC.
    ctx.authorizer
        .authorize(who, operation, crate::auth::acl::ResourceType::Topic, topic)
        .is_ok()
}

/// Kafka's TOPIC_AUTHORIZATION_FAILED.
pub const TOPIC_AUTHORIZATION_FAILED: i16 =
    kafka_protocol::ResponseError::TopicAuthorizationFailed.code();
