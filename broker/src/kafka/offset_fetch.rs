//! OffsetFetch: committed offsets from the one store, for the named
//! partitions or (topics null, v2+) every partition the group committed.

use std::sync::Arc;

pub use kafka_protocol::messages::OffsetFetchRequest;
use kafka_protocol::messages::OffsetFetchResponse;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::code;
use super::topics::{str_bytes, topic_name};

/// v1 to v7 (v8+ batch several groups in one request).
pub const VERSIONS: (i16, i16) = (1, 7);

pub async fn handle(conn: Arc<Conn>, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let ctx = &conn.ctx;
    let proto = v1::OffsetFetchRequest {
        group_id: req.group_id.0.to_string(),
        partitions: req
            .topics
            .iter()
            .flatten()
            .map(|t| v1::TopicPartitions {
                topic: t.name.0.to_string(),
                partitions: t
                    .partition_indexes
                    .iter()
                    .filter_map(|&p| u32::try_from(p).ok())
                    .collect(),
            })
            .collect(),
    };

    let fetched = crate::server::run(ctx, "OffsetFetch", &conn.principal(), proto, |body| {
        crate::group::offset_fetch::handle(&ctx.groups, body)
    })
    .await;
    let offsets = match fetched {
        Ok(r) => r.offsets,
        Err(e) => {
            let mut response = OffsetFetchResponse::default();
            if version >= 2 {
                response.error_code = code(&e);
            } else {
                // v1 has no top-level error: every asked partition says it.
                response.topics = per_topic(req.topics.iter().flatten().flat_map(|t| {
                    t.partition_indexes.iter().map(|&p| {
                        (
                            t.name.0.to_string(),
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(-1)
                                .with_error_code(code(&e)),
                        )
                    })
                }));
            }
            return response;
        }
    };
    let rows = offsets.into_iter().map(|o| {
        let mut p = OffsetFetchResponsePartition::default()
            .with_partition_index(o.partition as i32)
            .with_committed_offset(o.offset)
            .with_metadata(Some(str_bytes(o.metadata)));
        if version >= 5 {
            p.committed_leader_epoch = -1;
        }
        (o.topic, p)
    });
    OffsetFetchResponse::default().with_topics(per_topic(rows))
}

/// Rows grouped by topic, in first-seen order.
fn per_topic(
    rows: impl Iterator<Item = (String, OffsetFetchResponsePartition)>,
) -> Vec<OffsetFetchResponseTopic> {
    let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
    for (topic, p) in rows {
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetFetchResponseTopic::default()
                    .with_name(topic_name(&topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    topics
}
